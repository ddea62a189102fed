"""Transformer blocks: TransformerEncoder and TransformerDecoder.

Built as keras-hub builds them: klayers' own MultiHeadAttention, Dense, Dropout and
LayerNormalization as sublayers created in `build`, residual connections around each
sublayer, and one `normalize_first` flag for pre-norm (True) or post-norm (False).

The modern decoder block (Llama, Mistral) is a set of options of the same blocks: RMS
normalization, a gated (SwiGLU) feedforward, grouped-query attention with rotary positions,
sliding-window attention, no biases. keras-hub builds these only inside model-specific code.
"""

from __future__ import annotations

import numbers

import keras
from keras import initializers, ops

from keraslayers.layers import validation
from keraslayers.layers.attention import GroupQueryAttention, MultiHeadAttention
from keraslayers.layers.core import Dense
from keraslayers.layers.embedding import RotaryEmbedding, _positive_number
from keraslayers.layers.lora import LoRAComposite
from keraslayers.layers.normalization import LayerNormalization, RMSNormalization
from keraslayers.layers.quantization import QuantizableComposite
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


def sliding_window_mask(target_length, source_length, window, start=0):
    """`(1, target, source)`: True where a source position is less than `window` positions
    from the target position; the target positions are `start, start + 1, ...` (the queries
    sit after the `start` positions of a decoding cache)."""
    rows = ops.expand_dims(ops.arange(target_length) + start, 1)
    columns = ops.expand_dims(ops.arange(source_length), 0)
    return ops.expand_dims(ops.less(ops.abs(rows - columns), window), 0)


class _RotaryGroupQueryAttention(GroupQueryAttention):
    """GroupQueryAttention whose query and key heads are rotated (RoPE) after projection, at
    the positions of the call (from `cache_update_index` when decoding, so a cache holds
    rotated keys), as keras-hub's LlamaAttention.

    The rotation is the query and key projections' activation, the last step of a
    projection; the call records the position of its first query for it. (A hook for it in
    GroupQueryAttention would make this subclass a constructor argument.)
    """

    def __init__(self, rope_max_wavelength=10000, rope_scaling_factor=1.0, **kwargs):
        super().__init__(**kwargs)
        self.rope_max_wavelength = rope_max_wavelength
        self.rope_scaling_factor = rope_scaling_factor
        self.rotary_embedding = RotaryEmbedding(
            max_wavelength=rope_max_wavelength, scaling_factor=rope_scaling_factor,
            dtype=self.dtype_policy, name="rotary_embedding",
        )
        self._start_index = 0

    def _projection(self, name, input_rank, bound_dims, output_shape, activation=None):
        if name in ("query", "key"):
            activation = self._rotate
        return super()._projection(name, input_rank, bound_dims, output_shape, activation)

    def _rotate(self, heads):
        # (batch, sequence, heads, head_dim), positions start_index + t
        return self.rotary_embedding(heads, start_index=self._start_index)

    def build(self, query_shape, value_shape=None, key_shape=None):
        super().build(query_shape, value_shape, key_shape)
        self.rotary_embedding.build((*query_shape[:-1], self.num_query_heads, self.head_dim))

    def call(self, query, value=None, key=None, query_mask=None, value_mask=None,
             key_mask=None, attention_mask=None, return_attention_scores=False, training=None,
             use_causal_mask=False, cache=None, cache_update_index=None, mask=None):
        self._start_index = 0 if cache_update_index is None else cache_update_index
        try:
            return super().call(
                query, value, key, query_mask=query_mask, value_mask=value_mask,
                key_mask=key_mask, attention_mask=attention_mask,
                return_attention_scores=return_attention_scores, training=training,
                use_causal_mask=use_causal_mask, cache=cache,
                cache_update_index=cache_update_index, mask=mask,
            )
        finally:
            self._start_index = 0

    def get_config(self):
        return {
            **super().get_config(),
            "rope_max_wavelength": self.rope_max_wavelength,
            "rope_scaling_factor": self.rope_scaling_factor,
        }


NORMALIZATIONS = ("layer", "rms")
FEEDFORWARDS = ("dense", "gated")

# The modern block's options and their defaults. `get_config` writes an option only when it
# differs from its default, so a block without them keeps keras-hub's config (which
# keras-hub's blocks load).
MODERN_DEFAULTS = {
    "normalization": "layer",
    "feedforward": "dense",
    "num_key_value_heads": None,
    "rope_max_wavelength": None,
    "rope_scaling_factor": 1.0,
    "sliding_window": None,
    "use_bias": True,
}


class _TransformerBlock(LoRAComposite, QuantizableComposite, keras.layers.Layer):
    """Arguments, sublayer factories and the feedforward half shared by both blocks, and
    `enable_lora`: the attention projections ("query", "key", "value", "attention_output")
    and the feedforward layers ("feedforward_intermediate_dense", "feedforward_gate_dense",
    "feedforward_output_dense") can be adapted; by default the query and value projections
    of every attention layer, as keras-hub's `Backbone.enable_lora`. Subclasses call
    `_build_lora_layers()` at the end of `build`. `quantize(mode)` quantizes the attention
    projections and the feedforward Dense layers (what `model.quantize` quantizes in
    keras-hub's blocks); a quantized block's config keeps their dtype policies.
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
        normalization="layer",
        feedforward="dense",
        num_key_value_heads=None,
        rope_max_wavelength=None,
        rope_scaling_factor=1.0,
        sliding_window=None,
        use_bias=True,
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
        self._init_modern(normalization, feedforward, num_key_value_heads, rope_max_wavelength,
                          rope_scaling_factor, sliding_window, use_bias)
        self.supports_masking = True
        if build_shapes and build_shapes[0] is not None:
            self.build(*build_shapes)

    # Names of the `build` arguments that `get_config` records (none by default).
    _config_build_shapes = ()

    def _init_modern(self, normalization, feedforward, num_key_value_heads,
                     rope_max_wavelength, rope_scaling_factor, sliding_window, use_bias):
        for argument, value, allowed in (("normalization", normalization, NORMALIZATIONS),
                                         ("feedforward", feedforward, FEEDFORWARDS)):
            if value not in allowed:
                raise ValueError(
                    f"{validation.describe(self)}: `{argument}` must be one of {allowed}, "
                    f"received {argument}={value!r}."
                )
        self.normalization = normalization
        self.feedforward = feedforward
        self.num_key_value_heads = None
        if num_key_value_heads is not None:
            self.num_key_value_heads = validation.positive_int(
                self, "num_key_value_heads", num_key_value_heads
            )
            if self.num_heads % self.num_key_value_heads:
                raise ValueError(
                    f"{validation.describe(self)}: `num_key_value_heads` must divide "
                    f"`num_heads`, received num_heads={self.num_heads} and "
                    f"num_key_value_heads={num_key_value_heads}."
                )
        self.rope_max_wavelength = _positive_number(
            self, "rope_max_wavelength", rope_max_wavelength, allow_none=True
        )
        if (isinstance(rope_scaling_factor, bool)
                or not isinstance(rope_scaling_factor, numbers.Real)
                or not rope_scaling_factor >= 1):
            raise ValueError(
                f"{validation.describe(self)}: `rope_scaling_factor` must be a number >= 1, "
                f"received rope_scaling_factor={rope_scaling_factor!r}."
            )
        self.rope_scaling_factor = float(rope_scaling_factor)
        self.sliding_window = None
        if sliding_window is not None:
            self.sliding_window = validation.positive_int(self, "sliding_window", sliding_window)
        self.use_bias = bool(use_bias)

    @property
    def _grouped(self):
        """Whether self-attention is grouped-query (with rotary positions or not)."""
        return self.num_key_value_heads is not None or self.rope_max_wavelength is not None

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
        if self.rope_max_wavelength is not None and (hidden_dim // self.num_heads) % 2:
            raise ValueError(
                f"{validation.describe(self)}: rotary positions (rope_max_wavelength="
                f"{self.rope_max_wavelength!r}) need an even head size, the feature size of the "
                f"{what} over num_heads={self.num_heads}; received shape "
                f"{tuple(sequence_shape)}, head size {hidden_dim // self.num_heads}."
            )
        return hidden_dim

    def _attention(self, name, hidden_dim, query_shape, value_shape, self_attention=True):
        """Self-attention is grouped-query (rotary too) when the options ask for it;
        cross-attention stays multi-head."""
        common = {"dropout": self.dropout, "use_bias": self.use_bias, **self._initializers(),
                  "dtype": self.dtype_policy, "name": name}
        head_dim = hidden_dim // self.num_heads
        if not (self_attention and self._grouped):
            layer = MultiHeadAttention(num_heads=self.num_heads, key_dim=head_dim, **common)
        else:
            grouped = {"head_dim": head_dim, "num_query_heads": self.num_heads,
                       "num_key_value_heads": self.num_key_value_heads or self.num_heads}
            if self.rope_max_wavelength is None:
                layer = GroupQueryAttention(**grouped, **common)
            else:
                layer = _RotaryGroupQueryAttention(
                    self.rope_max_wavelength, self.rope_scaling_factor, **grouped, **common
                )
        layer.build(query_shape, value_shape)
        return layer

    def _norm(self, name, shape):
        normalization = RMSNormalization if self.normalization == "rms" else LayerNormalization
        layer = normalization(epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name=name)
        layer.build(shape)
        return layer

    def _with_sliding_window(self, mask, target_length, source_length, start=0):
        """`mask` (None, or `(batch or 1, target, source)`) AND the sliding window's band."""
        if self.sliding_window is None:
            return mask
        band = sliding_window_mask(target_length, source_length, self.sliding_window, start)
        return band if mask is None else ops.logical_and(mask, band)

    def _dropout(self, name):
        return Dropout(self.dropout, dtype=self.dtype_policy, name=name)

    def _dense(self, name, units, input_shape, activation=None):
        layer = Dense(units, activation=activation, use_bias=self.use_bias,
                      **self._initializers(), dtype=self.dtype_policy, name=name)
        layer.build(input_shape)
        return layer

    def _build_feedforward_dense(self, sequence_shape, hidden_dim):
        gated = self.feedforward == "gated"
        # Gated: the activation goes on the gate, in `_feedforward`. keras-hub's Llama order:
        # intermediate ("up"), gate, output ("down").
        self.feedforward_intermediate_dense = self._dense(
            "feedforward_intermediate_dense", self.intermediate_dim, sequence_shape,
            None if gated else self.activation,
        )
        if gated:
            self.feedforward_gate_dense = self._dense(
                "feedforward_gate_dense", self.intermediate_dim, sequence_shape
            )
        self.feedforward_output_dense = self._dense(
            "feedforward_output_dense", hidden_dim, (*sequence_shape[:-1], self.intermediate_dim)
        )

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
            hidden = self.feedforward_intermediate_dense(x)
            if self.feedforward == "gated":
                # activation(gate(x)) * up(x); the activation in float32, as keras-hub's Llama
                # (and torch's silu) compute it.
                gate = ops.cast(self.feedforward_gate_dense(x), "float32")
                hidden = hidden * ops.cast(self.activation(gate), hidden.dtype)
            return self.feedforward_output_dense(hidden)

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
            **{name: getattr(self, name) for name, default in MODERN_DEFAULTS.items()
               if getattr(self, name) != default},
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

    The modern block (Llama, Mistral) is a set of options: `normalization="rms"`
    (`RMSNormalization` in place of `LayerNormalization`), `feedforward="gated"` with
    `activation="silu"` (SwiGLU: `ffn(x) = down(silu(gate(x)) * up(x))`, the activation in
    float32), `num_key_value_heads` (grouped-query self-attention, `GroupQueryAttention`),
    `rope_max_wavelength` (query and key heads rotated by `RotaryEmbedding` after their
    projections), `sliding_window` and `use_bias=False`; with `normalize_first=True` that is
    keras-hub's `LlamaTransformerDecoder`. The defaults are the classic block.

    Args:
        intermediate_dim: size of the feedforward's hidden layer.
        num_heads: number of attention heads (query heads); at most the input's feature size.
        dropout: rate of dropout on attention weights and after each sublayer.
        activation: activation of the feedforward's hidden layer (of its gate, gated).
        layer_norm_epsilon: epsilon of the normalizations.
        kernel_initializer, bias_initializer: for the attention and dense sublayers.
        normalize_first: pre-norm (True) or post-norm (False).
        normalization: "layer" (LayerNormalization) or "rms" (RMSNormalization).
        feedforward: "dense" (`down(activation(up(x)))`) or "gated"
            (`down(activation(gate(x)) * up(x))`: SwiGLU with "silu", GeGLU with "gelu"),
            whose gate is the sublayer `feedforward_gate_dense`.
        num_key_value_heads: number of key and value heads of the self-attention, dividing
            `num_heads` (grouped-query attention); None for multi-head attention.
        rope_max_wavelength: rotary positions (RoPE) on the self-attention's query and key
            heads, with this longest wavelength; None for none. The head size must be even.
        rope_scaling_factor: RoPE's position interpolation factor (>= 1).
        sliding_window: a position attends only to positions less than `sliding_window`
            away (with the causal mask: itself and the `sliding_window - 1` before it,
            Mistral's window); None for no window.
        use_bias: whether the attention projections and the feedforward have biases.

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
        length = ops.shape(inputs)[1]
        self_attention_mask = self._with_sliding_window(self_attention_mask, length, length)
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

    A Llama-style block is `TransformerDecoder(intermediate_dim, num_heads,
    num_key_value_heads=..., normalization="rms", feedforward="gated", activation="silu",
    rope_max_wavelength=10000, use_bias=False, normalize_first=True)` (with `sliding_window`,
    Mistral's); the options shape the self-attention, the cross-attention stays multi-head.

    Args:
        intermediate_dim, num_heads, dropout, activation, layer_norm_epsilon,
        kernel_initializer, bias_initializer, normalize_first, normalization, feedforward,
        num_key_value_heads, rope_max_wavelength, rope_scaling_factor, sliding_window,
        use_bias: as in `TransformerEncoder`.

    Decoding cache (as keras-hub's): with `self_attention_cache`
    `(batch, 2, max_length, num_key_value_heads or num_heads, head_dim)`, the projected (and
    with RoPE, rotated) keys and values of the decoder positions seen so far, a call on the
    next position(s) writes theirs into the cache at `self_attention_cache_update_index`,
    attends to the cache (causally, from that position on) and returns `(outputs,
    self_attention_cache)`. With cross-attention a `cross_attention_cache` `(batch, 2,
    source, num_heads, head_dim)` is required too: filled from `encoder_sequence` with
    `cross_attention_cache_update_index=0`, then read with None; the call returns `(outputs,
    self_attention_cache, cross_attention_cache)`. Decoding token by token this way gives
    the outputs of the full causal pass.

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
                "cross_attention", hidden_dim, decoder_sequence_shape, encoder_sequence_shape,
                self_attention=False,
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
        self_attention_mask = merge_padding_and_attention_mask(
            self, decoder_padding_mask, decoder_attention_mask,
            "decoder_padding_mask", "decoder_attention_mask",
        )
        if self.sliding_window is not None:
            target_length = source_length = ops.shape(decoder_sequence)[1]
            start = self_attention_cache_update_index
            start = 0 if start is None else start
            if self_attention_cache is not None:
                source_length = ops.shape(self_attention_cache)[2]
            self_attention_mask = self._with_sliding_window(
                self_attention_mask, target_length, source_length, start
            )
        x, self_attention_cache = self._attention_residual(
            decoder_sequence, self.self_attention_layer_norm, self.self_attention_dropout,
            self.self_attention, None, training, self_attention_cache,
            cache_update_index=self_attention_cache_update_index,
            attention_mask=self_attention_mask,
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
