"""Transformer blocks: TransformerEncoder and TransformerDecoder.

Built as keras-hub builds them: klayers' own MultiHeadAttention, Dense, Dropout and
LayerNormalization as sublayers created in `build`, residual connections around each
sublayer, and one `normalize_first` flag for pre-norm (True) or post-norm (False).
"""

from __future__ import annotations

import keras
from keras import initializers, ops

from keraslayers.layers import validation
from keraslayers.layers.attention import MultiHeadAttention
from keraslayers.layers.core import Dense
from keraslayers.layers.lora import LoRAComposite
from keraslayers.layers.normalization import LayerNormalization
from keraslayers.layers.regularization import Dropout


def merge_padding_and_attention_mask(layer, padding_mask, attention_mask,
                                     padding_name="padding_mask",
                                     attention_name="attention_mask"):
    """`(batch, 1, source)` padding mask AND `(batch, target, source)` attention mask."""
    for name, given, rank, axes in ((padding_name, padding_mask, 2, "(batch, source)"),
                                    (attention_name, attention_mask, 3,
                                     "(batch, target, source)")):
        if given is not None and len(given.shape) != rank:
            raise ValueError(
                f"{validation.describe(layer)}: `{name}` must have shape {axes}, received "
                f"shape {tuple(given.shape)}."
            )
    mask = None
    if padding_mask is not None:
        mask = ops.expand_dims(ops.cast(padding_mask, "bool"), 1)
    if attention_mask is not None:
        attention_mask = ops.cast(attention_mask, "bool")
        mask = attention_mask if mask is None else ops.logical_and(mask, attention_mask)
    return mask


class _TransformerBlock(LoRAComposite, keras.layers.Layer):
    """Arguments, sublayer factories and the feedforward half shared by both blocks, and
    `enable_lora`: the attention projections ("query", "key", "value", "attention_output")
    and the feedforward layers ("feedforward_intermediate_dense", "feedforward_output_dense")
    can be adapted; by default the query and value projections of every attention layer, as
    keras-hub's `Backbone.enable_lora`. Subclasses call `_build_lora_layers()` at the end
    of `build`.
    """

    def __init__(
        self,
        intermediate_dim,
        num_heads,
        dropout=0,
        activation="relu",
        layer_norm_epsilon=1e-05,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        normalize_first=False,
        **kwargs,
    ):
        # Build shapes a config may carry (keras-hub's TransformerDecoder saves them).
        build_shapes = [kwargs.pop(name, None) for name in self._config_build_shapes]
        # `lora_layers` (a keyword only in configs): the sublayers `enable_lora` adapted.
        lora_layers = self._init_lora_layers(kwargs)
        super().__init__(**kwargs)
        self._set_lora_layers(lora_layers)
        self.intermediate_dim = validation.positive_int(self, "intermediate_dim", intermediate_dim)
        self.num_heads = validation.positive_int(self, "num_heads", num_heads)
        self.dropout = validation.rate(self, "dropout", dropout)
        self.activation = validation.activation(self, activation)
        self.layer_norm_epsilon = float(
            validation.non_negative(self, "layer_norm_epsilon", layer_norm_epsilon)
        )
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.normalize_first = bool(normalize_first)
        self.supports_masking = True
        if build_shapes and build_shapes[0] is not None:
            self.build(*build_shapes)

    # Names of the `build` arguments that `get_config` records (none by default).
    _config_build_shapes = ()

    def _initializers(self):
        # Fresh objects per sublayer, so seeded initializers do not repeat their values.
        return {
            "kernel_initializer": self.kernel_initializer.__class__.from_config(
                self.kernel_initializer.get_config()
            ),
            "bias_initializer": self.bias_initializer.__class__.from_config(
                self.bias_initializer.get_config()
            ),
        }

    def _hidden_dim(self, sequence_shape, what):
        validation.min_rank(self, sequence_shape, 3, what)
        (hidden_dim,) = validation.known_sizes(self, sequence_shape, [len(sequence_shape) - 1])
        if hidden_dim < self.num_heads:
            raise ValueError(
                f"{validation.describe(self)}: the feature size of the {what} ({hidden_dim}) "
                f"must be at least num_heads={self.num_heads}, received shape "
                f"{tuple(sequence_shape)}."
            )
        return hidden_dim

    def _attention(self, name, hidden_dim, query_shape, value_shape):
        layer = MultiHeadAttention(
            num_heads=self.num_heads,
            key_dim=hidden_dim // self.num_heads,
            dropout=self.dropout,
            **self._initializers(),
            dtype=self.dtype_policy,
            name=name,
        )
        layer.build(query_shape, value_shape)
        return layer

    def _norm(self, name, shape):
        layer = LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name=name
        )
        layer.build(shape)
        return layer

    def _dropout(self, name):
        return Dropout(self.dropout, dtype=self.dtype_policy, name=name)

    def _build_feedforward_dense(self, sequence_shape, hidden_dim):
        self.feedforward_intermediate_dense = Dense(
            self.intermediate_dim,
            activation=self.activation,
            **self._initializers(),
            dtype=self.dtype_policy,
            name="feedforward_intermediate_dense",
        )
        self.feedforward_intermediate_dense.build(sequence_shape)
        self.feedforward_output_dense = Dense(
            hidden_dim, **self._initializers(), dtype=self.dtype_policy,
            name="feedforward_output_dense",
        )
        self.feedforward_output_dense.build((*sequence_shape[:-1], self.intermediate_dim))

    def _residual(self, x, norm, dropout, sublayer, training):
        """`x + dropout(sublayer(x))`, normalized before (pre-norm) or after (post-norm)."""
        residual = x
        if self.normalize_first:
            x = norm(x)
        x = dropout(sublayer(x), training=training)
        x = x + residual
        if not self.normalize_first:
            x = norm(x)
        return x

    def _attention_residual(self, x, norm, dropout, attention, value, training, cache,
                            **attention_kwargs):
        """`_residual` around `attention(x, value)`; also returns its updated decoding cache
        (None without one)."""
        updated = []

        def attend(x):
            outputs = attention(x, x if value is None else value, training=training,
                                cache=cache, **attention_kwargs)
            if cache is None:
                return outputs
            outputs, new_cache = outputs
            updated.append(new_cache)
            return outputs

        x = self._residual(x, norm, dropout, attend, training)
        return x, (updated[0] if updated else None)

    def _feedforward(self, x, training):
        def feedforward(x):
            return self.feedforward_output_dense(self.feedforward_intermediate_dense(x))

        return self._residual(
            x, self.feedforward_layer_norm, self.feedforward_dropout, feedforward, training
        )

    def get_config(self):
        return {
            **super().get_config(),
            "intermediate_dim": self.intermediate_dim,
            "num_heads": self.num_heads,
            "dropout": self.dropout,
            "activation": keras.activations.serialize(self.activation),
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "normalize_first": self.normalize_first,
            **self._lora_layers_config(),
        }


@keras.saving.register_keras_serializable(package="keraslayers")
class TransformerEncoder(_TransformerBlock):
    """Transformer encoder block (Vaswani et al., 2017), as keras-hub's.

    Post-norm (`normalize_first=False`):
    `x = norm(x + dropout(self_attention(x)))`, then `x = norm(x + dropout(ffn(x)))` with
    `ffn(x) = dense(activation(dense(x)))`. Pre-norm: `x = x + dropout(self_attention(norm(x)))`
    and likewise for the feedforward. The attention has `num_heads` heads of size
    `hidden_dim // num_heads`. Padded positions (the padding mask, or the Keras mask of the
    input) are hidden as keys from every position.

    Args:
        intermediate_dim: size of the feedforward's hidden layer.
        num_heads: number of attention heads; at most the input's feature size.
        dropout: rate of dropout on attention weights and after each sublayer.
        activation: activation of the feedforward's hidden layer.
        layer_norm_epsilon: epsilon of the layer normalizations.
        kernel_initializer, bias_initializer: for the attention and dense sublayers.
        normalize_first: pre-norm (True) or post-norm (False).

    Call arguments:
        inputs: `(batch, sequence, hidden_dim)`.
        padding_mask: boolean `(batch, sequence)`, False for padding; overrides `mask`.
        attention_mask: boolean `(batch, sequence, sequence)`.
        mask: the input's Keras mask, filled in by Keras.

    Input shape:
        `(batch, sequence, hidden_dim)`.

    Output shape:
        Same as the input.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> tuple(kl.TransformerEncoder(16, num_heads=2)(np.ones((2, 5, 8), "float32")).shape)
        (2, 5, 8)
    """

    def build(self, inputs_shape):
        hidden_dim = self._hidden_dim(inputs_shape, "input")
        self.self_attention_layer = self._attention(
            "self_attention_layer", hidden_dim, inputs_shape, inputs_shape
        )
        self.self_attention_layer_norm = self._norm("self_attention_layer_norm", inputs_shape)
        self.self_attention_dropout = self._dropout("self_attention_dropout")
        # Sublayers in keras-hub's order, so its weights load in order.
        self.feedforward_layer_norm = self._norm("feedforward_layer_norm", inputs_shape)
        self._build_feedforward_dense(inputs_shape, hidden_dim)
        self.feedforward_dropout = self._dropout("feedforward_dropout")
        self._build_lora_layers()

    def call(self, inputs, padding_mask=None, attention_mask=None, training=None,
             return_attention_scores=False, mask=None):
        padding_mask = mask if padding_mask is None else padding_mask
        self_attention_mask = merge_padding_and_attention_mask(self, padding_mask, attention_mask)
        scores = []

        def self_attention(x):
            outputs = self.self_attention_layer(
                x, x, attention_mask=self_attention_mask,
                return_attention_scores=return_attention_scores, training=training,
            )
            if not return_attention_scores:
                return outputs
            outputs, attention_scores = outputs
            scores.append(attention_scores)
            return outputs

        x = self._residual(
            inputs, self.self_attention_layer_norm, self.self_attention_dropout,
            self_attention, training,
        )
        x = self._feedforward(x, training)
        return (x, scores[0]) if return_attention_scores else x

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def compute_output_spec(self, inputs, padding_mask=None, attention_mask=None,
                            training=None, return_attention_scores=False, mask=None):
        outputs = keras.KerasTensor(inputs.shape, dtype=self.compute_dtype)
        if not return_attention_scores:
            return outputs
        batch, length = inputs.shape[0], inputs.shape[1]
        # (batch, heads, target, source)
        scores = keras.KerasTensor((batch, self.num_heads, length, length),
                                   dtype=self.compute_dtype)
        return outputs, scores


@keras.saving.register_keras_serializable(package="keraslayers")
class TransformerDecoder(_TransformerBlock):
    """Transformer decoder block (Vaswani et al., 2017), as keras-hub's.

    Causal self-attention, then (when built with an encoder sequence) cross-attention to
    the encoder's outputs, then the feedforward; each sublayer wrapped as in
    `TransformerEncoder` (`x + dropout(sublayer(x))`, normalized after or, with
    `normalize_first`, before). Without an encoder sequence it is a decoder-only (GPT-style)
    block. The output at position `t` depends only on decoder positions `<= t`.

    Args:
        intermediate_dim, num_heads, dropout, activation, layer_norm_epsilon,
        kernel_initializer, bias_initializer, normalize_first: as in `TransformerEncoder`.

    Decoding cache (as keras-hub's): with `self_attention_cache`
    `(batch, 2, max_length, num_heads, head_dim)`, the projected keys and values of the
    decoder positions seen so far, a call on the next position(s) writes theirs into the
    cache at `self_attention_cache_update_index`, attends to the cache (causally, from that
    position on) and returns `(outputs, self_attention_cache)`. With cross-attention a
    `cross_attention_cache` `(batch, 2, source, num_heads, head_dim)` is required too: filled
    from `encoder_sequence` with `cross_attention_cache_update_index=0`, then read with None;
    the call returns `(outputs, self_attention_cache, cross_attention_cache)`. Decoding
    token by token this way gives the outputs of the full causal pass.

    Call arguments:
        decoder_sequence: `(batch, target, hidden_dim)`.
        encoder_sequence: `(batch, source, encoder_dim)`, or None for a decoder-only block;
            must be given (or not) as at build.
        decoder_padding_mask: boolean `(batch, target)` (`(batch, max_length)`, over the
            cached positions, with a cache); overrides the Keras mask.
        decoder_attention_mask: boolean `(batch, target, target)` (`(batch, target,
            max_length)` with a cache).
        encoder_padding_mask: boolean `(batch, source)`; overrides the Keras mask.
        encoder_attention_mask: boolean `(batch, target, source)`.
        self_attention_cache, self_attention_cache_update_index, cross_attention_cache,
        cross_attention_cache_update_index: the decoding cache, above.
        use_causal_mask: whether self-attention is causal (default True).
        mask, decoder_sequence_mask, encoder_sequence_mask: Keras masks of the inputs,
            filled in by Keras; with a cache the decoder's is not used (it covers only the
            new positions; give `decoder_padding_mask` over the cache instead).

    Input shape:
        See the call arguments.

    Output shape:
        `(batch, target, hidden_dim)`, followed by the caches when they are given.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> decoder = kl.TransformerDecoder(16, num_heads=2)
        >>> tuple(decoder(np.ones((2, 5, 8), "float32"), np.ones((2, 7, 8), "float32")).shape)
        (2, 5, 8)
    """

    _config_build_shapes = ("decoder_sequence_shape", "encoder_sequence_shape")
    _build_shapes = (None, None)  # until built

    def build(self, decoder_sequence_shape, encoder_sequence_shape=None):
        decoder_sequence_shape = tuple(decoder_sequence_shape)
        if encoder_sequence_shape is not None:
            encoder_sequence_shape = tuple(encoder_sequence_shape)
        self._build_shapes = (decoder_sequence_shape, encoder_sequence_shape)
        hidden_dim = self._hidden_dim(decoder_sequence_shape, "decoder_sequence")
        self.self_attention = self._attention(
            "self_attention", hidden_dim, decoder_sequence_shape, decoder_sequence_shape
        )
        self.self_attention_layer_norm = self._norm(
            "self_attention_layer_norm", decoder_sequence_shape
        )
        self.self_attention_dropout = self._dropout("self_attention_dropout")
        self.cross_attention = None
        if encoder_sequence_shape is not None:
            validation.min_rank(self, encoder_sequence_shape, 3, "encoder_sequence")
            self.cross_attention = self._attention(
                "cross_attention", hidden_dim, decoder_sequence_shape, encoder_sequence_shape
            )
            self.cross_attention_layer_norm = self._norm(
                "cross_attention_layer_norm", decoder_sequence_shape
            )
            self.cross_attention_dropout = self._dropout("cross_attention_dropout")
        # keras-hub's order: the feedforward's norm after its dense layers.
        self._build_feedforward_dense(decoder_sequence_shape, hidden_dim)
        self.feedforward_layer_norm = self._norm("feedforward_layer_norm", decoder_sequence_shape)
        self.feedforward_dropout = self._dropout("feedforward_dropout")
        self._build_lora_layers()

    def call(
        self,
        decoder_sequence,
        encoder_sequence=None,
        decoder_padding_mask=None,
        decoder_attention_mask=None,
        encoder_padding_mask=None,
        encoder_attention_mask=None,
        self_attention_cache=None,
        self_attention_cache_update_index=None,
        cross_attention_cache=None,
        cross_attention_cache_update_index=None,
        use_causal_mask=True,
        training=None,
        mask=None,
        decoder_sequence_mask=None,
        encoder_sequence_mask=None,
    ):
        has_encoder = encoder_sequence is not None
        self._check_call(has_encoder, self_attention_cache, cross_attention_cache)
        if decoder_padding_mask is None and self_attention_cache is None:
            decoder_padding_mask = mask if decoder_sequence_mask is None else decoder_sequence_mask
        if encoder_padding_mask is None:
            encoder_padding_mask = encoder_sequence_mask
        x, self_attention_cache = self._attention_residual(
            decoder_sequence, self.self_attention_layer_norm, self.self_attention_dropout,
            self.self_attention, None, training, self_attention_cache,
            cache_update_index=self_attention_cache_update_index,
            attention_mask=merge_padding_and_attention_mask(
                self, decoder_padding_mask, decoder_attention_mask,
                "decoder_padding_mask", "decoder_attention_mask",
            ),
            use_causal_mask=use_causal_mask,
        )
        if has_encoder:
            x, cross_attention_cache = self._attention_residual(
                x, self.cross_attention_layer_norm, self.cross_attention_dropout,
                self.cross_attention, encoder_sequence, training, cross_attention_cache,
                cache_update_index=cross_attention_cache_update_index,
                attention_mask=merge_padding_and_attention_mask(
                    self, encoder_padding_mask, encoder_attention_mask,
                    "encoder_padding_mask", "encoder_attention_mask",
                ),
            )
        x = self._feedforward(x, training)
        if self_attention_cache is None:
            return x
        if has_encoder:
            return x, self_attention_cache, cross_attention_cache
        return x, self_attention_cache

    def _check_call(self, has_encoder, self_attention_cache, cross_attention_cache):
        if has_encoder != (self.cross_attention is not None):
            built = "with" if self.cross_attention is not None else "without"
            raise ValueError(
                f"{validation.describe(self)}: the layer was built {built} an "
                f"encoder_sequence and must be called {built} one; received "
                f"encoder_sequence={'a tensor' if has_encoder else None}."
            )
        wanted = self_attention_cache is not None and has_encoder
        if wanted != (cross_attention_cache is not None):
            raise ValueError(
                f"{validation.describe(self)}: `cross_attention_cache` goes with a "
                f"`self_attention_cache` in a layer with cross-attention, and only there; "
                f"received self_attention_cache="
                f"{None if self_attention_cache is None else 'a tensor'}, "
                f"cross_attention_cache={None if cross_attention_cache is None else 'a tensor'}"
                f" in a layer built {'with' if has_encoder else 'without'} an encoder_sequence."
            )

    def compute_output_shape(self, decoder_sequence_shape, encoder_sequence_shape=None):
        return decoder_sequence_shape

    def compute_output_spec(self, decoder_sequence, encoder_sequence=None,
                            self_attention_cache=None, cross_attention_cache=None, **kwargs):
        outputs = keras.KerasTensor(decoder_sequence.shape, dtype=self.compute_dtype)
        caches = tuple(
            keras.KerasTensor(cache.shape, dtype=cache.dtype)
            for cache in (self_attention_cache, cross_attention_cache) if cache is not None
        )
        return (outputs, *caches) if caches else outputs

    def get_config(self):
        decoder_sequence_shape, encoder_sequence_shape = self._build_shapes
        return {
            **super().get_config(),
            "decoder_sequence_shape": decoder_sequence_shape,
            "encoder_sequence_shape": encoder_sequence_shape,
        }
