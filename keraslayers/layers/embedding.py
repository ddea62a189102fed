"""Embedding layers: token embeddings and position embeddings and encodings."""

from __future__ import annotations

import math
import numbers
import warnings

import keras
from keras import constraints, initializers, ops, regularizers

from keraslayers.layers import formulation, quantization, validation
from keraslayers.layers.lora import LoRA, adapted_weight
from keraslayers.layers.quantization import Quantizable, QuantizableComposite


def _positive_number(layer, argument, value, allow_none=False):
    """A wavelength, a rotation count, a cap: any real number > 0 (keras-hub's configs hold
    ints or floats)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError(
            f"{validation.describe(layer)}: `{argument}` must be a positive number, received "
            f"{argument}={value!r}."
        )
    return value


@keras.saving.register_keras_serializable(package="keraslayers")
class Embedding(Quantizable, LoRA, keras.layers.Layer):
    """Looks up a learned vector per index: `outputs[..., :] = embeddings[inputs[...]]`.

    Drop-in for `keras.layers.Embedding`: one weight, `embeddings` `(input_dim, output_dim)`.
    With `mask_zero=True`, index 0 is padding: the layer emits the mask `inputs != 0`, which
    Keras hands to the mask-aware layers downstream.

    Args:
        input_dim: size of the vocabulary (largest index + 1).
        output_dim: size of each vector.
        embeddings_initializer, embeddings_regularizer, embeddings_constraint: for the table.
        mask_zero: whether index 0 means padding.
        weights: optional initial table, an array of shape `(input_dim, output_dim)`.
        lora_rank: positive integer: the layer enables LoRA of this rank when built (see
            `enable_lora`; factors `lora_embeddings_a`/`_b`); None for none.
        lora_alpha: positive number, the LoRA update's scale is `lora_alpha / lora_rank`;
            `lora_rank` when None.
        quantization_config: None, or the `keras.quantizers.QuantizationConfig` (or its
            serialized dict) the layer was quantized with (see `Dense`).

    Quantization (`layer.quantize(mode)` or `model.quantize(mode)`), as Keras's Embedding:
    "int8" (table int8, `embeddings_scale` `(input_dim,)`: one scale per row), "int4"
    (table packed `(input_dim, ceil(output_dim / 2))`, one scale per row or, by default, a
    scale and zero point per 128 columns: `embeddings_scale`, `embeddings_zero`
    `(input_dim, groups)`, `g_idx`). LoRA works on both.

    Input shape:
        Integer tensor `(batch, ...)` of indices in `[0, input_dim)`.

    Output shape:
        `(batch, ..., output_dim)`.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> tuple(kl.Embedding(10, 4)(np.array([[1, 2, 3]])).shape)
        (1, 3, 4)
    """

    def __init__(
        self,
        input_dim,
        output_dim,
        embeddings_initializer="uniform",
        embeddings_regularizer=None,
        embeddings_constraint=None,
        mask_zero=False,
        weights=None,
        lora_rank=None,
        lora_alpha=None,
        quantization_config=None,
        **kwargs,
    ):
        if kwargs.pop("input_length", None) is not None:
            warnings.warn("Argument `input_length` is deprecated. Just remove it.", stacklevel=2)
        super().__init__(**kwargs)
        self._init_quantization(quantization_config)
        self._init_lora(lora_rank, lora_alpha)
        self.input_dim = validation.positive_int(self, "input_dim", input_dim)
        self.output_dim = validation.positive_int(self, "output_dim", output_dim)
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self.embeddings_regularizer = regularizers.get(embeddings_regularizer)
        self.embeddings_constraint = constraints.get(embeddings_constraint)
        self.mask_zero = bool(mask_zero)
        self.supports_masking = self.mask_zero
        # The table stays float32 under mixed precision; the looked-up rows are cast.
        self.autocast = False
        if weights is not None:
            self.build()
            self.set_weights(weights if isinstance(weights, list) else [weights])

    def build(self, input_shape=None):
        if self.built:
            return
        mode = self.quantization_mode
        if mode:
            self.quantized_build(
                (self.input_dim, self.output_dim), mode, self.quantization_config
            )
        else:
            self._embeddings = self.add_weight(
                name="embeddings",
                shape=(self.input_dim, self.output_dim),
                initializer=self.embeddings_initializer,
                regularizer=self.embeddings_regularizer,
                constraint=self.embeddings_constraint,
            )
        self.built = True
        self._build_lora()

    _lora_weight = "embeddings"
    embeddings = adapted_weight(
        "embeddings", "The table `(input_dim, output_dim)`, with the LoRA update."
    )

    def call(self, inputs):
        if ops.dtype(inputs) not in ("int32", "int64"):
            inputs = ops.cast(inputs, "int32")
        # (batch, ...) -> (batch, ..., output_dim)
        outputs = ops.take(self.embeddings, inputs, axis=0)
        return ops.cast(outputs, self.compute_dtype)

    def compute_mask(self, inputs, mask=None):
        if not self.mask_zero:
            return None
        return ops.not_equal(inputs, 0)

    # Quantization: the weights (`Quantizable` drives them).

    def _float_weight_shape(self):
        return (self.input_dim, self.output_dim)

    def _replaced_weights(self, mode):
        return ("_embeddings",)

    def _quantized_weight_names(self, mode):
        return {
            "int8": ("_embeddings", "embeddings_scale"),
            "int4": ("_embeddings", "embeddings_scale", "embeddings_zero", "g_idx"),
        }[mode]

    def _quantize_int8(self, config):
        quantizer = keras.quantizers.QuantizationConfig.weight_quantizer_or_default(
            config, keras.quantizers.AbsMaxQuantizer(axis=-1)
        )
        # One scale per row: (input_dim, output_dim) -> int8, scale (input_dim, 1)
        table, scale = quantizer(self._embeddings, to_numpy=True)
        return {"_embeddings": table, "embeddings_scale": ops.squeeze(scale, axis=-1)}

    def _quantize_int4(self, config):
        block_size = quantization.int4_block_size(self, config)
        if block_size is None:
            quantizer = keras.quantizers.QuantizationConfig.weight_quantizer_or_default(
                config, keras.quantizers.AbsMaxQuantizer(
                    axis=-1, value_range=quantization.INT4_RANGE, output_dtype="int8"
                ),
            )
            table, scale = quantizer(self._embeddings, to_numpy=True)
            values = {"embeddings_scale": ops.squeeze(scale, axis=-1)}
        else:
            # Groups of `block_size` columns: quantized on the transposed table
            # (output_dim, input_dim), whose groups run along axis 0.
            table, scale, zero = quantization.quantize_grouped(
                ops.transpose(self._embeddings), block_size
            )
            # back to (input_dim, output_dim); scale and zero (input_dim, groups)
            table = ops.transpose(table)
            values = {"embeddings_scale": ops.transpose(scale),
                      "embeddings_zero": ops.transpose(zero)}
        packed, _, _ = keras.quantizers.pack_int4(table, axis=-1)
        return {"_embeddings": packed, **values}

    def _int8_build(self, shape, config=None):
        self._embeddings = self.add_weight(
            name="embeddings", shape=shape, initializer="zeros", dtype="int8", trainable=False
        )
        self.embeddings_scale = self.add_weight(
            name="embeddings_scale", shape=(self.input_dim,), initializer="ones",
            trainable=False,
        )

    def _int4_build(self, shape, config=None):
        input_dim, output_dim = shape
        # Two 4-bit values per byte along the vector: (input_dim, ceil(output_dim / 2))
        self._embeddings = self.add_weight(
            name="embeddings", shape=(input_dim, (output_dim + 1) // 2),
            initializer="zeros", dtype="int8", trainable=False,
        )
        block_size = quantization.int4_block_size(self, config)
        self._int4_block_size = block_size
        scale_shape = (input_dim,) if block_size is None else (
            input_dim, -(-output_dim // block_size)
        )
        self.embeddings_scale = self.add_weight(
            name="embeddings_scale", shape=scale_shape, initializer="ones", trainable=False
        )
        if block_size is not None:
            self.embeddings_zero = self.add_weight(
                name="embeddings_zero", shape=scale_shape, initializer="zeros",
                dtype="int8", trainable=False,
            )
            self.g_idx = self.add_weight(
                name="g_idx", shape=(output_dim,), dtype="float32", trainable=False,
                initializer=lambda shape, dtype: ops.floor_divide(
                    ops.arange(output_dim, dtype=dtype), block_size
                ),
            )

    def _dequantized_rows(self, table, scale, zero=None):
        """Float rows `(..., output_dim)` from quantized rows and their scales `(...)`
        (per row) or scales and zeros `(..., groups)`."""
        table = ops.cast(table, self.compute_dtype)
        if zero is None:
            return ops.divide(table, ops.expand_dims(scale, axis=-1))
        return quantization.dequantize_grouped(table, scale, zero, self.g_idx, group_axis=-1)

    def _quantized_table(self):
        """The stored table as integers `(input_dim, output_dim)` (int4 unpacked)."""
        if self.quantization_mode == "int4":
            return keras.quantizers.unpack_int4(self._embeddings, self.output_dim, axis=-1)
        return self._embeddings

    def _grouped(self) -> bool:
        return self.quantization_mode == "int4" and self._int4_block_size is not None

    def _dequantized_weight(self):
        """The float table `(input_dim, output_dim)` the quantized one stands for."""
        zero = self.embeddings_zero if self._grouped() else None
        return self._dequantized_rows(self._quantized_table(), self.embeddings_scale, zero)

    # Quantization: the forward passes (Keras's `quantized_call` picks one by mode).

    def _int8_call(self, inputs, training=None):
        return self._quantized_lookup(inputs)

    def _int4_call(self, inputs, training=None):
        return self._quantized_lookup(inputs)

    def _quantized_lookup(self, inputs):
        if ops.dtype(inputs) not in ("int32", "int64"):
            inputs = ops.cast(inputs, "int32")
        # (batch, ...) -> rows (batch, ..., output_dim), scales (batch, ...[, groups])
        rows = ops.take(self._quantized_table(), inputs, axis=0)
        scale = ops.take(self.embeddings_scale, inputs, axis=0)
        zero = ops.take(self.embeddings_zero, inputs, axis=0) if self._grouped() else None
        outputs = self._dequantized_rows(rows, scale, zero)
        if self.lora_enabled:
            a, b = self._lora_factors()
            update = ops.matmul(ops.take(a, inputs, axis=0), b)
            outputs = ops.cast(
                outputs + (self.lora_alpha / self.lora_rank) * update, self.compute_dtype
            )
        return outputs

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.output_dim)

    def compute_output_spec(self, inputs):
        # A ragged (TensorFlow) batch of indices gives a ragged batch of vectors.
        return keras.KerasTensor(
            self.compute_output_shape(inputs.shape), dtype=self.compute_dtype,
            ragged=getattr(inputs, "ragged", False),
        )

    def get_config(self):
        return {
            **super().get_config(),
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "embeddings_initializer": initializers.serialize(self.embeddings_initializer),
            "embeddings_regularizer": regularizers.serialize(self.embeddings_regularizer),
            "embeddings_constraint": constraints.serialize(self.embeddings_constraint),
            "mask_zero": self.mask_zero,
            **self._quantized_config(),
            **self._lora_config(),
        }


Embedding._quantizing_class = Embedding


@keras.saving.register_keras_serializable(package="keraslayers")
class ReversibleEmbedding(Embedding):
    """An `Embedding` that can also project vectors back to logits over the vocabulary.

    Drop-in for `keras.layers.ReversibleEmbedding` (and keras-hub's, which is the same
    class). `call(inputs)` looks up vectors as `Embedding` does; `call(hidden, reverse=True)`
    computes `logits = hidden @ embeddings.T` (tied weights) or `hidden @ reverse_embeddings`
    (untied), optionally soft-capped: `tanh(logits / logit_soft_cap) * logit_soft_cap`.
    Weights: `embeddings` `(input_dim, output_dim)`, then, untied, `reverse_embeddings`
    `(output_dim, input_dim)`.

    Args:
        input_dim, output_dim: as in `Embedding`.
        tie_weights: whether the reverse projection uses the transposed embeddings.
        embeddings_initializer, embeddings_regularizer, embeddings_constraint, mask_zero:
            as in `Embedding` (the initializer also initializes `reverse_embeddings`).
        reverse_dtype: dtype of the reverse projection; None means the compute dtype.
        logit_soft_cap: None, or the cap of the reverse logits.

    Call arguments:
        inputs: indices `(batch, ...)`, or with `reverse=True` vectors
            `(batch, ..., output_dim)`.
        reverse: whether to project vectors to logits.

    Input shape:
        `(batch, ...)`; with `reverse=True`, `(batch, ..., output_dim)`.

    Output shape:
        `(batch, ..., output_dim)`; with `reverse=True`, `(batch, ..., input_dim)`.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> embedding = kl.ReversibleEmbedding(10, 4)
        >>> vectors = embedding(np.array([[1, 2, 3]]))
        >>> tuple(embedding(vectors, reverse=True).shape)
        (1, 3, 10)
    """

    def __init__(
        self,
        input_dim,
        output_dim,
        tie_weights=True,
        embeddings_initializer="uniform",
        embeddings_regularizer=None,
        embeddings_constraint=None,
        mask_zero=False,
        reverse_dtype=None,
        logit_soft_cap=None,
        **kwargs,
    ):
        super().__init__(
            input_dim,
            output_dim,
            embeddings_initializer=embeddings_initializer,
            embeddings_regularizer=embeddings_regularizer,
            embeddings_constraint=embeddings_constraint,
            mask_zero=mask_zero,
            **kwargs,
        )
        self.tie_weights = bool(tie_weights)
        if reverse_dtype is not None:
            keras.backend.standardize_dtype(reverse_dtype)  # a ValueError if it is none
        self.reverse_dtype = reverse_dtype
        self.logit_soft_cap = _positive_number(
            self, "logit_soft_cap", logit_soft_cap, allow_none=True
        )
        # Whether the latest call projected back: its output then carries no mask.
        self._reversed = False

    def build(self, input_shape=None):
        if self.built:
            return
        super().build(input_shape)
        if not self.tie_weights and not self.quantization_mode:
            self.reverse_embeddings = self.add_weight(
                name="reverse_embeddings",
                shape=(self.output_dim, self.input_dim),
                initializer=self.embeddings_initializer,
            )

    def call(self, inputs, reverse=False):
        self._reversed = bool(reverse)
        if not reverse:
            return super().call(inputs)
        kernel = ops.transpose(self.embeddings) if self.tie_weights else self.reverse_embeddings
        if self.reverse_dtype is not None:
            inputs = ops.cast(inputs, self.reverse_dtype)
            kernel = ops.cast(kernel, self.reverse_dtype)
        # (batch, ..., output_dim) @ (output_dim, input_dim) -> (batch, ..., input_dim); as in
        # Keras, without reverse_dtype the float32 table meets the inputs as they come.
        logits = ops.matmul(inputs, kernel)
        if self.logit_soft_cap is not None:
            logits = ops.tanh(logits / self.logit_soft_cap) * self.logit_soft_cap
        return logits

    # Quantization: the untied reverse table too (`(output_dim, input_dim)`, one scale per
    # column, or for grouped int4 per group of `block_size` rows), as Keras's.

    def _replaced_weights(self, mode):
        return ("_embeddings",) if self.tie_weights else ("_embeddings", "reverse_embeddings")

    def _quantized_weight_names(self, mode):
        names = super()._quantized_weight_names(mode)
        if self.tie_weights:
            return names
        reverse = ("reverse_embeddings", "reverse_embeddings_scale")
        return (*names, *reverse, *(("reverse_embeddings_zero",) if mode == "int4" else ()))

    def _quantize_int8(self, config):
        values = super()._quantize_int8(config)
        if not self.tie_weights:
            quantizer = keras.quantizers.QuantizationConfig.weight_quantizer_or_default(
                config, keras.quantizers.AbsMaxQuantizer(axis=0)
            )
            table, scale = quantizer(self.reverse_embeddings, to_numpy=True)
            values.update(reverse_embeddings=table,
                          reverse_embeddings_scale=ops.squeeze(scale, axis=0))
        return values

    def _quantize_int4(self, config):
        values = super()._quantize_int4(config)
        if self.tie_weights:
            return values
        block_size = quantization.int4_block_size(self, config)
        if block_size is None:
            quantizer = keras.quantizers.QuantizationConfig.weight_quantizer_or_default(
                config, keras.quantizers.AbsMaxQuantizer(
                    axis=0, value_range=quantization.INT4_RANGE, output_dtype="int8"
                ),
            )
            table, scale = quantizer(self.reverse_embeddings, to_numpy=True)
            values["reverse_embeddings_scale"] = ops.squeeze(scale, axis=0)
        else:
            table, scale, zero = quantization.quantize_grouped(
                self.reverse_embeddings, block_size
            )
            values.update(reverse_embeddings_scale=scale, reverse_embeddings_zero=zero)
        # packed along the vector axis: (ceil(output_dim / 2), input_dim)
        values["reverse_embeddings"], _, _ = keras.quantizers.pack_int4(table, axis=0)
        return values

    def _reverse_inputs_quantizer(self, config):
        self.inputs_quantizer = keras.quantizers.QuantizationConfig.activation_quantizer_or_default(
            config, keras.quantizers.AbsMaxQuantizer(axis=-1)
        )

    def _int8_build(self, shape, config=None):
        super()._int8_build(shape, config)
        self._reverse_inputs_quantizer(config)
        if not self.tie_weights:
            self.reverse_embeddings = self.add_weight(
                name="reverse_embeddings", shape=(self.output_dim, self.input_dim),
                initializer="zeros", dtype="int8", trainable=False,
            )
            self.reverse_embeddings_scale = self.add_weight(
                name="reverse_embeddings_scale", shape=(self.input_dim,),
                initializer="ones", trainable=False,
            )

    def _int4_build(self, shape, config=None):
        super()._int4_build(shape, config)
        self._reverse_inputs_quantizer(config)
        if self.tie_weights:
            return
        self.reverse_embeddings = self.add_weight(
            name="reverse_embeddings", shape=((self.output_dim + 1) // 2, self.input_dim),
            initializer="zeros", dtype="int8", trainable=False,
        )
        block_size = self._int4_block_size
        scale_shape = (self.input_dim,) if block_size is None else (
            -(-self.output_dim // block_size), self.input_dim
        )
        self.reverse_embeddings_scale = self.add_weight(
            name="reverse_embeddings_scale", shape=scale_shape, initializer="ones",
            trainable=False,
        )
        if block_size is not None:
            # float32, not int8: Keras's dtype for this zero point.
            self.reverse_embeddings_zero = self.add_weight(
                name="reverse_embeddings_zero", shape=scale_shape, initializer="zeros",
                trainable=False,
            )

    def _int8_call(self, inputs, reverse=False):
        self._reversed = bool(reverse)
        return self._quantized_reverse(inputs) if reverse else super()._int8_call(inputs)

    def _int4_call(self, inputs, reverse=False):
        self._reversed = bool(reverse)
        return self._quantized_reverse(inputs) if reverse else super()._int4_call(inputs)

    def _reverse_kernel(self):
        """`(integer kernel, scale, zero)` of the reverse projection: the kernel
        `(output_dim, input_dim)`, per-column scales `(input_dim,)` or, grouped, scales and
        zeros `(groups, input_dim)` (zero None per column)."""
        grouped = self._grouped()
        if self.tie_weights:
            kernel = ops.transpose(self._quantized_table())
            scale, zero = self.embeddings_scale, None
            if grouped:  # (input_dim, groups) -> (groups, input_dim)
                scale, zero = ops.transpose(scale), ops.transpose(self.embeddings_zero)
            return kernel, scale, zero
        kernel = self.reverse_embeddings
        if self.quantization_mode == "int4":
            kernel = keras.quantizers.unpack_int4(kernel, self.output_dim, axis=0)
        zero = self.reverse_embeddings_zero if grouped else None
        return kernel, self.reverse_embeddings_scale, zero

    def _quantized_reverse(self, inputs):
        kernel, scale, zero = self._reverse_kernel()
        if self.inputs_quantizer:
            # (batch, ..., output_dim) -> int8 and a scale (batch, ..., 1)
            inputs, inputs_scale = self.inputs_quantizer(inputs)
        else:
            inputs_scale = ops.ones((1,), dtype=self.compute_dtype)
        if zero is None:
            logits = ops.cast(ops.matmul(inputs, kernel), self.compute_dtype)
            logits = ops.divide(logits, ops.multiply(inputs_scale, scale))
        else:
            float_kernel = quantization.dequantize_grouped(
                ops.cast(kernel, self.compute_dtype), scale, zero, self.g_idx, group_axis=0
            )
            logits = ops.divide(ops.matmul(inputs, float_kernel), inputs_scale)
        if self.logit_soft_cap is not None:
            logits = ops.tanh(logits / self.logit_soft_cap) * self.logit_soft_cap
        return logits

    def compute_mask(self, inputs, mask=None):
        # Keras asks for the mask right after `call` (or `compute_output_spec`), with the
        # inputs only: the flag they set says which way this call went.
        if self._reversed:
            return None
        return super().compute_mask(inputs, mask)

    def compute_output_shape(self, input_shape, reverse=False):
        if reverse:
            return (*input_shape[:-1], self.input_dim)
        return super().compute_output_shape(input_shape)

    def compute_output_spec(self, inputs, reverse=False):
        self._reversed = bool(reverse)
        if not reverse:
            return super().compute_output_spec(inputs)
        dtype = self.reverse_dtype or keras.backend.result_type(inputs.dtype, "float32")
        return keras.KerasTensor(self.compute_output_shape(inputs.shape, reverse=True), dtype=dtype)

    def get_config(self):
        return {
            **super().get_config(),
            "tie_weights": self.tie_weights,
            "reverse_dtype": self.reverse_dtype,
            "logit_soft_cap": self.logit_soft_cap,
        }


ReversibleEmbedding._quantizing_class = ReversibleEmbedding


@keras.saving.register_keras_serializable(package="keraslayers")
class PositionEmbedding(keras.layers.Layer):
    """A learned vector per position: `outputs[..., t, :] = embeddings[start_index + t]`.

    Returns the position embeddings broadcast to the input's shape (add them to the input
    yourself, or use `TokenAndPositionEmbedding`). As keras-hub's `PositionEmbedding`: one
    weight, `embeddings` `(sequence_length, features)`.

    Args:
        sequence_length: the longest sequence the layer embeds.
        initializer: initializer of the table.

    Call arguments:
        inputs: `(batch, ..., sequence, features)`.
        start_index: position of the first step (for decoding one step at a time).
        positions: explicit integer position of every step, `(sequence,)` or
            `(batch, sequence)` (packed or left-padded sequences); `start_index` is then
            ignored, as in keras-hub.

    Input shape:
        `(batch, ..., sequence, features)`, `sequence <= sequence_length`.

    Output shape:
        Same as the input.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> tuple(kl.PositionEmbedding(10)(np.zeros((2, 4, 3), "float32")).shape)
        (2, 4, 3)
    """

    def __init__(self, sequence_length, initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.sequence_length = validation.positive_int(self, "sequence_length", sequence_length)
        self.initializer = initializers.get(initializer)
        self.supports_masking = True

    def build(self, inputs_shape):
        validation.min_rank(self, inputs_shape, 2)
        self._check_length(inputs_shape[-2], inputs_shape)
        (features,) = validation.known_sizes(self, inputs_shape, [len(inputs_shape) - 1])
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.sequence_length, features),
            initializer=self.initializer,
        )

    def _check_length(self, length, inputs_shape, start_index=0):
        if isinstance(start_index, int) and length is not None and (
            start_index + length > self.sequence_length
        ):
            raise ValueError(
                f"{validation.describe(self)}: the sequence (length {length}, from position "
                f"{start_index}, input shape {tuple(inputs_shape)}) is longer than "
                f"sequence_length={self.sequence_length}."
            )

    def call(self, inputs, start_index=0, positions=None):
        shape = ops.shape(inputs)
        table = ops.cast(self.embeddings, self.compute_dtype)
        if positions is None:
            self._check_length(inputs.shape[-2], inputs.shape, start_index)
            # (sequence_length, features) -> (sequence, features), broadcast over the batch.
            embeddings = ops.slice(table, (start_index, 0), (shape[-2], shape[-1]))
        else:
            # (sequence,) or (batch, sequence) -> (1 or batch, sequence, features)
            embeddings = ops.take(table, _batched_positions(positions), axis=0)
        return ops.broadcast_to(embeddings, shape)

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        return {
            **super().get_config(),
            "sequence_length": self.sequence_length,
            "initializer": initializers.serialize(self.initializer),
        }


def _batched_positions(positions):
    """`(sequence,)` or `(batch, sequence)` positions as `(1 or batch, sequence)`."""
    positions = ops.convert_to_tensor(positions)
    return ops.expand_dims(positions, 0) if len(positions.shape) == 1 else positions


@keras.saving.register_keras_serializable(package="keraslayers")
class SinePositionEncoding(keras.layers.Layer):
    """Fixed sinusoidal position encodings (Vaswani et al., 2017), as keras-hub's.

    `PE[t, 2i] = sin(t / max_wavelength ** (2i / d))`,
    `PE[t, 2i + 1] = cos(t / max_wavelength ** (2i / d))`, computed in float32 and
    broadcast to the input's shape (add them to the input yourself). No weights.

    Args:
        max_wavelength: the longest wavelength of the sinusoids.

    Call arguments:
        inputs: `(batch, ..., sequence, features)`.
        start_index: position of the first step.
        positions: explicit position of every step, `(sequence,)` or `(batch, sequence)`;
            `start_index` is then ignored, as in keras-hub.

    Input shape:
        `(batch, ..., sequence, features)`.

    Output shape:
        Same as the input.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> y = kl.SinePositionEncoding()(np.zeros((1, 2, 2), "float32"))
        >>> np.round(np.asarray(y, "float64"), 3).tolist()
        [[[0.0, 1.0], [0.841, 0.54]]]
    """

    def __init__(self, max_wavelength=10000, **kwargs):
        super().__init__(**kwargs)
        self.max_wavelength = _positive_number(self, "max_wavelength", max_wavelength)
        self.supports_masking = True
        self.built = True

    def call(self, inputs, start_index=0, positions=None):
        shape = ops.shape(inputs)
        length, features = shape[-2], shape[-1]
        if positions is None:
            positions = ops.expand_dims(ops.arange(length) + start_index, 0)
        positions = ops.cast(_batched_positions(positions), "float32")  # (1 or batch, sequence)
        feature_index = ops.arange(features)
        # 2i / d for features 2i and 2i + 1.
        exponents = ops.cast(2 * (feature_index // 2), "float32") / ops.cast(features, "float32")
        inverse_wavelengths = ops.power(1.0 / self.max_wavelength, exponents)
        # (1 or batch, sequence, 1) * (features,) -> (1 or batch, sequence, features)
        angles = ops.expand_dims(positions, -1) * inverse_wavelengths
        odd = ops.cast(feature_index % 2, "float32")
        encodings = ops.sin(angles) * (1.0 - odd) + ops.cos(angles) * odd
        return ops.broadcast_to(ops.cast(encodings, self.compute_dtype), shape)

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        return {**super().get_config(), "max_wavelength": self.max_wavelength}


ROPE_TYPES = ("linear", "dynamic", "yarn")

# RotaryEmbedding's rotation, by (backend, device kind) (see `formulation.choose`): keras-hub's
# `x * cos + concatenate([-x2, x1]) * sin`, or "halves", `[x1 * cos - x2 * sin, x2 * cos + x1
# * sin]` on the half-width angles, the same numbers with two fewer full-size tensors written.
ROTARY_FORMULATIONS = {
    # Eager torch writes every intermediate: 512x512 (batch 32) predict / train 38.6 / 45.0 ms
    # -> 25.1 / 37.9 ms; 64x128 0.94 / 1.51 -> 0.84 / 1.44 ms (same run, interleaved). XLA fuses
    # keras-hub's form and lost with the halves (JAX 24.5 -> 40.7 ms in training); TensorFlow
    # unchanged (22.5 / 18.5 -> 21.9 / 18.0 ms): both keep keras-hub's.
    ("torch", "cpu"): "halves",
}


def rotary_formulation() -> str:
    """`ROTARY_FORMULATIONS`' choice: "halves" or keras-hub's form."""
    return formulation.choose("rotary", ROTARY_FORMULATIONS)



@keras.saving.register_keras_serializable(package="keraslayers")
class RotaryEmbedding(keras.layers.Layer):
    """Rotary position embedding (RoPE, Su et al., 2021), as keras-hub's.

    Rotates each pair of features `(x[i], x[i + d/2])` at position `t` by the angle
    `t * f[i]`: `outputs = x * cos(angle) + concat(-x[d/2:], x[:d/2]) * sin(angle)`, so dot
    products between rotated queries and keys depend on relative positions. No weights.
    The frequencies `f[i] = max_wavelength ** (-2i / d)` are scaled by `rope_type`:
    "linear" divides them by `scaling_factor` (position interpolation); "dynamic"
    (NTK-aware) by `scaling_factor ** (d / (d - 2))`; "yarn" (Peng et al., 2023) blends
    interpolated and original frequencies along a ramp between the correction dimensions
    of `beta_fast` and `beta_slow` rotations over `original_max_position_embeddings`
    positions, and scales cos and sin by `0.1 * ln(scaling_factor) + 1`.

    Args:
        max_wavelength: the longest wavelength of the rotations.
        scaling_factor: the context extension factor; >= 1.
        rope_type: "linear", "dynamic" or "yarn".
        beta_fast, beta_slow, original_max_position_embeddings: YaRN's ramp (yarn only).
        truncate: whether YaRN's correction range is rounded to whole dimensions (yarn only).
        sequence_axis: axis of the positions.
        feature_axis: axis of the features; its size must be even.
        denominator_dim: `d` in the frequencies' exponent, when it is not the feature size
            (models that rotate only part of each head); not used by yarn, as in keras-hub.

    Call arguments:
        inputs: e.g. `(batch, sequence, heads, head_dim)` or `(batch, sequence, features)`.
        start_index: position of the first step (an int or a scalar tensor, e.g. the cache
            index when decoding step by step); positions are then `start_index + t`.
        positions: explicit position of every step, `(sequence,)` or `(batch, sequence)`
            (e.g. packed or left-padded sequences); `start_index` is then ignored, as in
            keras-hub.

    Input shape:
        Any with a sequence and an even-sized feature axis.

    Output shape:
        Same as the input.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> tuple(kl.RotaryEmbedding()(np.ones((2, 5, 4, 8), "float32")).shape)
        (2, 5, 4, 8)
    """

    def __init__(
        self,
        max_wavelength=10000,
        scaling_factor=1.0,
        rope_type="linear",
        beta_fast=32.0,
        beta_slow=1.0,
        original_max_position_embeddings=4096,
        truncate=True,
        sequence_axis=1,
        feature_axis=-1,
        denominator_dim=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.max_wavelength = _positive_number(self, "max_wavelength", max_wavelength)
        self.scaling_factor = float(validation.non_negative(self, "scaling_factor", scaling_factor))
        if self.scaling_factor < 1.0:
            raise ValueError(
                f"{validation.describe(self)}: `scaling_factor` must be >= 1, received "
                f"scaling_factor={scaling_factor!r}."
            )
        if rope_type not in ROPE_TYPES:
            raise ValueError(
                f"{validation.describe(self)}: `rope_type` must be one of {ROPE_TYPES}, "
                f"received rope_type={rope_type!r}."
            )
        self.rope_type = rope_type
        self.beta_fast = float(_positive_number(self, "beta_fast", beta_fast))
        self.beta_slow = float(_positive_number(self, "beta_slow", beta_slow))
        self.original_max_position_embeddings = validation.positive_int(
            self, "original_max_position_embeddings", original_max_position_embeddings
        )
        self.truncate = bool(truncate)
        for argument, axis in (("sequence_axis", sequence_axis), ("feature_axis", feature_axis)):
            if isinstance(axis, bool) or not isinstance(axis, int):
                raise ValueError(
                    f"{validation.describe(self)}: `{argument}` must be an int, received "
                    f"{argument}={axis!r}."
                )
        self.sequence_axis = sequence_axis
        self.feature_axis = feature_axis
        self.denominator_dim = (
            None if denominator_dim is None
            else validation.positive_int(self, "denominator_dim", denominator_dim)
        )
        self.supports_masking = True

    def build(self, inputs_shape):
        sequence_axis, feature_axis = validation.axes(
            self, self.sequence_axis, inputs_shape
        ) + validation.axes(self, self.feature_axis, inputs_shape)
        features = inputs_shape[feature_axis]
        if sequence_axis == feature_axis or features is None or features % 2:
            raise ValueError(
                f"{validation.describe(self)}: needs distinct sequence and feature axes and a "
                f"known, even number of features; received sequence_axis={self.sequence_axis}, "
                f"feature_axis={self.feature_axis}, input shape {tuple(inputs_shape)}."
            )

    def call(self, inputs, start_index=0, positions=None):
        # (..., sequence, ..., features, ...) -> (batch, sequence, ..., features)
        x = ops.moveaxis(inputs, (self.sequence_axis, self.feature_axis), (1, -1))
        if positions is None:
            positions = ops.arange(ops.shape(x)[1], dtype="float32")
            positions = ops.expand_dims(positions + ops.cast(start_index, "float32"), 0)
        else:
            positions = self._checked_positions(positions, x)
        first, second = ops.split(x, 2, axis=-1)
        if rotary_formulation() == "halves":
            cos, sin = self._cos_sin(x, positions, halves=True)
            outputs = ops.concatenate([first * cos - second * sin, second * cos + first * sin],
                                      axis=-1)
        else:
            cos, sin = self._cos_sin(x, positions)
            rotated = ops.concatenate([-second, first], axis=-1)
            outputs = x * cos + rotated * sin
        return ops.moveaxis(outputs, (1, -1), (self.sequence_axis, self.feature_axis))

    def _checked_positions(self, positions, x):
        """`positions` as float32 `(batch or 1, sequence)`, after checking them against `x`
        `(batch, sequence, ..., features)`."""
        positions = ops.convert_to_tensor(positions)
        shape, expected = tuple(positions.shape), (x.shape[0], x.shape[1])
        fits = len(shape) in (1, 2) and shape[-1] in (None, expected[1]) and (
            len(shape) == 1 or shape[0] in (None, 1, expected[0]) or expected[0] is None
        )
        if not fits:
            raise ValueError(
                f"{validation.describe(self)}: `positions` must be (sequence,) or (batch, "
                f"sequence) = {expected} for inputs of shape {tuple(x.shape)} (sequence axis "
                f"moved to 1, features last); received positions of shape {shape}."
            )
        return ops.cast(_batched_positions(positions), "float32")

    def _cos_sin(self, x, positions, halves=False):
        """cos and sin of the angles at `positions` `(batch or 1, sequence)`, shaped
        `(batch or 1, sequence, 1, ..., features)`, in the compute dtype; with `halves`, of
        the `features / 2` feature pairs only."""
        features = x.shape[-1]
        # (batch, sequence, 1) * (features / 2,) -> (batch, sequence, features / 2), then the
        # same angle for x[i] and x[i + d/2]
        angles = ops.expand_dims(positions, -1) * self._inverse_frequencies(features)
        if not halves:
            angles = ops.concatenate([angles, angles], axis=-1)
        for _ in range(len(x.shape) - 3):
            angles = ops.expand_dims(angles, 2)  # (batch, sequence, 1, ..., features)
        cos = ops.cast(ops.cos(angles), self.compute_dtype)
        sin = ops.cast(ops.sin(angles), self.compute_dtype)
        if self.rope_type == "yarn":
            attention_scale = 0.1 * math.log(self.scaling_factor) + 1.0
            cos, sin = cos * attention_scale, sin * attention_scale
        return cos, sin

    def _inverse_frequencies(self, features):
        """The angular frequency of each feature pair, `(features / 2,)` float32."""
        if self.rope_type == "yarn":
            return self._yarn_inverse_frequencies(features)
        denominator = features if self.denominator_dim is None else self.denominator_dim
        exponents = ops.arange(0, features, 2, dtype="float32") / float(denominator)
        frequencies = ops.power(float(self.max_wavelength), -exponents)
        if self.rope_type == "linear":
            return frequencies / self.scaling_factor
        return frequencies / self.scaling_factor ** (features / max(1, features - 2))

    def _yarn_inverse_frequencies(self, features):
        base = float(self.max_wavelength)
        wavelengths = ops.power(base, ops.arange(0, features, 2, dtype="float32") / features)
        original, interpolated = 1.0 / wavelengths, 1.0 / (self.scaling_factor * wavelengths)

        def correction_dim(rotations):
            # The pair index whose frequency makes `rotations` turns over the original context.
            ratio = float(self.original_max_position_embeddings) / (rotations * 2 * math.pi)
            return features * ops.log(ratio) / (2 * ops.log(base))

        low = correction_dim(ops.convert_to_tensor(self.beta_fast, "float32"))
        high = correction_dim(ops.convert_to_tensor(self.beta_slow, "float32"))
        if self.truncate:
            low, high = ops.floor(low), ops.ceil(high)
        low, high = ops.maximum(low, 0.0), ops.minimum(high, float(features - 1))
        # 0 below `low` (keep the original frequency), 1 above `high` (interpolate fully).
        ramp = ops.clip(
            (ops.arange(features // 2, dtype="float32") - low) / ops.maximum(high - low, 0.001),
            0.0, 1.0,
        )
        return interpolated * ramp + original * (1.0 - ramp)

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        return {
            **super().get_config(),
            "max_wavelength": self.max_wavelength,
            "scaling_factor": self.scaling_factor,
            "rope_type": self.rope_type,
            "beta_fast": self.beta_fast,
            "beta_slow": self.beta_slow,
            "original_max_position_embeddings": self.original_max_position_embeddings,
            "truncate": self.truncate,
            "sequence_axis": self.sequence_axis,
            "feature_axis": self.feature_axis,
            "denominator_dim": self.denominator_dim,
        }


def alibi_slopes(num_heads, alibi_bias_max=8):
    """ALiBi's slope of each head (Press et al., 2021, and their code).

    For `n` heads, a power of two: the geometric sequence `r ** (h + 1)`, `h = 0 .. n - 1`,
    with `r = 2 ** (-alibi_bias_max / n)`. Otherwise the slopes of the largest power of two
    `m < n`, then every other slope of `2m` heads, the first `n - m` of them.
    """
    if math.log2(num_heads).is_integer():
        ratio = 2.0 ** (-alibi_bias_max / num_heads)
        return [ratio ** (head + 1) for head in range(num_heads)]
    closest = 2 ** math.floor(math.log2(num_heads))
    return (alibi_slopes(closest, alibi_bias_max)
            + alibi_slopes(2 * closest, alibi_bias_max)[0::2][: num_heads - closest])


@keras.saving.register_keras_serializable(package="keraslayers")
class AlibiBias(keras.layers.Layer):
    """Attention with linear biases (ALiBi, Press et al., 2021), as keras-hub's.

    Adds to attention scores a bias linear in the key position, with a slope per head:
    `outputs[b, h, q, k] = scores[b, h, q, k] + slope[h] * (k - (key_length - 1))`, so the
    last key gets 0 and each earlier key `slope[h]` less (see `alibi_slopes`). The bias is
    computed in float32, then cast to the scores' dtype. No weights.

    Args:
        alibi_bias_max: sets the slopes: with `n` heads they start at
            `2 ** (-alibi_bias_max / n)`, a geometric sequence with that ratio.

    Call arguments:
        attention_scores: `(batch, heads, query_length, key_length)`, the number of heads
            known.

    Input shape:
        `(batch, heads, query_length, key_length)`.

    Output shape:
        Same as the input.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> y = kl.AlibiBias()(np.zeros((1, 2, 1, 3), "float32"))
        >>> np.round(np.asarray(y, "float64"), 4).tolist()
        [[[[-0.125, -0.0625, 0.0]], [[-0.0078, -0.0039, 0.0]]]]
    """

    def __init__(self, alibi_bias_max=8, **kwargs):
        super().__init__(**kwargs)
        self.alibi_bias_max = _positive_number(self, "alibi_bias_max", alibi_bias_max)
        self.built = True

    def _heads(self, scores_shape):
        shape = tuple(scores_shape)
        if len(shape) != 4 or shape[1] is None:
            raise ValueError(
                f"{validation.describe(self)}: `attention_scores` must have shape (batch, "
                f"heads, query_length, key_length) with a known number of heads, received "
                f"shape {shape}."
            )
        return shape[1]

    def call(self, attention_scores):
        heads = self._heads(attention_scores.shape)
        key_length = ops.shape(attention_scores)[-1]
        slopes = ops.convert_to_tensor(alibi_slopes(heads, self.alibi_bias_max), "float32")
        # Key positions relative to the last one: 1 - key_length, ..., 0.
        distances = ops.cast(ops.arange(key_length) - (key_length - 1), "float32")
        # (heads, 1) * (key_length,) -> (1, heads, 1, key_length)
        bias = ops.reshape(ops.expand_dims(slopes, 1) * distances, (1, heads, 1, -1))
        return attention_scores + ops.cast(bias, attention_scores.dtype)

    def compute_output_shape(self, attention_scores_shape):
        self._heads(attention_scores_shape)
        return attention_scores_shape

    def get_config(self):
        return {**super().get_config(), "alibi_bias_max": self.alibi_bias_max}


@keras.saving.register_keras_serializable(package="keraslayers")
class TokenAndPositionEmbedding(QuantizableComposite, keras.layers.Layer):
    """Token embedding plus learned position embedding, as keras-hub's.

    `outputs[b, t] = token_embedding[tokens[b, t]] + position_embedding[t]`. The token
    embedding is a `ReversibleEmbedding`, so `layer.token_embedding(hidden, reverse=True)`
    gives logits against its (tied, by default) table. With `mask_zero=True`, token 0 is
    padding and the layer emits the mask `tokens != 0`. Weights:
    `token_embedding/embeddings` `(vocabulary_size, embedding_dim)`, with
    `tie_weights=False` then `token_embedding/reverse_embeddings`
    `(embedding_dim, vocabulary_size)`, then `position_embedding/embeddings`
    `(sequence_length, embedding_dim)`. `quantize("int8")` (or "int4") quantizes the token
    embedding, as `model.quantize` does; a quantized layer's config keeps its dtype policy
    (a DTypePolicyMap), so a quantized model saves and loads.

    Args:
        vocabulary_size: number of tokens.
        sequence_length: the longest sequence.
        embedding_dim: size of the vectors.
        tie_weights: whether the token embedding's reverse projection uses its table.
        embeddings_initializer: initializer of the tables.
        mask_zero: whether token 0 means padding.

    Call arguments:
        inputs: integer tokens `(batch, sequence)`.
        start_index: position of the first token.
        positions: explicit position of every token, `(sequence,)` or `(batch, sequence)`;
            `start_index` is then ignored, as in keras-hub.

    Input shape:
        `(batch, sequence)`, `sequence <= sequence_length`.

    Output shape:
        `(batch, sequence, embedding_dim)`.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> tuple(kl.TokenAndPositionEmbedding(20, 8, 4)(np.array([[1, 2, 3]])).shape)
        (1, 3, 4)
    """

    def __init__(self, vocabulary_size, sequence_length, embedding_dim, tie_weights=True,
                 embeddings_initializer="uniform", mask_zero=False, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size = validation.positive_int(self, "vocabulary_size", vocabulary_size)
        self.sequence_length = validation.positive_int(self, "sequence_length", sequence_length)
        self.embedding_dim = validation.positive_int(self, "embedding_dim", embedding_dim)
        self.tie_weights = bool(tie_weights)
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self.mask_zero = bool(mask_zero)
        self.supports_masking = self.mask_zero
        # Created here, as keras-hub does, so `token_embedding(..., reverse=True)` is there
        # from the start; built in `build`.
        self.token_embedding = ReversibleEmbedding(
            self.vocabulary_size,
            self.embedding_dim,
            tie_weights=self.tie_weights,
            embeddings_initializer=self._fresh_initializer(),
            mask_zero=self.mask_zero,
            dtype=self.dtype_policy,
            name="token_embedding",
        )
        self.position_embedding = PositionEmbedding(
            self.sequence_length,
            initializer=self._fresh_initializer(),
            dtype=self.dtype_policy,
            name="position_embedding",
        )

    def build(self, inputs_shape):
        self.token_embedding.build(inputs_shape)
        self.position_embedding.build((*inputs_shape, self.embedding_dim))

    def _fresh_initializer(self):
        return self.embeddings_initializer.__class__.from_config(
            self.embeddings_initializer.get_config()
        )

    def call(self, inputs, start_index=0, positions=None):
        tokens = self.token_embedding(inputs)
        return tokens + self.position_embedding(
            tokens, start_index=start_index, positions=positions
        )

    def compute_mask(self, inputs, mask=None):
        return ops.not_equal(inputs, 0) if self.mask_zero else None

    def compute_output_shape(self, inputs_shape):
        return (*inputs_shape, self.embedding_dim)

    def get_config(self):
        return {
            **super().get_config(),
            "vocabulary_size": self.vocabulary_size,
            "sequence_length": self.sequence_length,
            "embedding_dim": self.embedding_dim,
            "tie_weights": self.tie_weights,
            "embeddings_initializer": initializers.serialize(self.embeddings_initializer),
            "mask_zero": self.mask_zero,
        }
