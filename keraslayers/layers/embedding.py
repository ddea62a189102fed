"""Embedding layers: token embeddings and position embeddings and encodings."""

from __future__ import annotations

import numbers

import keras
from keras import constraints, initializers, ops, regularizers

from keraslayers.layers import validation


@keras.saving.register_keras_serializable(package="keraslayers")
class Embedding(keras.layers.Layer):
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
        quantization_config: accepted so that Keras's Embedding configs load; must be None.

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
        quantization_config=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        validation.no_quantization(self, quantization_config)
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
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.input_dim, self.output_dim),
            initializer=self.embeddings_initializer,
            regularizer=self.embeddings_regularizer,
            constraint=self.embeddings_constraint,
        )
        self.built = True

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

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.output_dim)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(
            self.compute_output_shape(inputs.shape), dtype=self.compute_dtype
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
        }


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

    def call(self, inputs, start_index=0):
        self._check_length(inputs.shape[-2], inputs.shape, start_index)
        shape = ops.shape(inputs)
        # (sequence_length, features) -> (sequence, features), broadcast over the batch.
        table = ops.cast(self.embeddings, self.compute_dtype)
        positions = ops.slice(table, (start_index, 0), (shape[-2], shape[-1]))
        return ops.broadcast_to(positions, shape)

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        return {
            **super().get_config(),
            "sequence_length": self.sequence_length,
            "initializer": initializers.serialize(self.initializer),
        }


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
        self.max_wavelength = validation.positive_int(self, "max_wavelength", max_wavelength)
        self.supports_masking = True
        self.built = True

    def call(self, inputs, start_index=0):
        shape = ops.shape(inputs)
        length, features = shape[-2], shape[-1]
        positions = ops.cast(ops.arange(length) + start_index, "float32")
        feature_index = ops.arange(features)
        # 2i / d for features 2i and 2i + 1.
        exponents = ops.cast(2 * (feature_index // 2), "float32") / ops.cast(features, "float32")
        inverse_wavelengths = ops.power(1.0 / self.max_wavelength, exponents)
        # (sequence, 1) * (1, features) -> (sequence, features)
        angles = ops.expand_dims(positions, 1) * ops.expand_dims(inverse_wavelengths, 0)
        odd = ops.cast(feature_index % 2, "float32")
        encodings = ops.sin(angles) * (1.0 - odd) + ops.cos(angles) * odd
        return ops.broadcast_to(ops.cast(encodings, self.compute_dtype), shape)

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        return {**super().get_config(), "max_wavelength": self.max_wavelength}


@keras.saving.register_keras_serializable(package="keraslayers")
class RotaryEmbedding(keras.layers.Layer):
    """Rotary position embedding (RoPE, Su et al., 2021), as keras-hub's.

    Rotates each pair of features `(x[i], x[i + d/2])` at position `t` by the angle
    `t / scaling_factor / max_wavelength ** (2i / d)`:
    `outputs = x * cos(angle) + concat(-x[d/2:], x[:d/2]) * sin(angle)`, so dot products
    between rotated queries and keys depend on relative positions. No weights.

    Args:
        max_wavelength: the longest wavelength of the rotations.
        scaling_factor: positions are divided by it (position interpolation); >= 1.
        sequence_axis: axis of the positions.
        feature_axis: axis of the features; its size must be even.

    Call arguments:
        inputs: e.g. `(batch, sequence, heads, head_dim)` or `(batch, sequence, features)`.
        start_index: position of the first step (an int or a scalar tensor, e.g. the cache
            index when decoding step by step); positions are then `start_index + t`.
        positions: explicit position of every step, `(sequence,)` or `(batch, sequence)`
            (e.g. packed or left-padded sequences), as keras-hub's; replaces `start_index`,
            which must then be left at 0.

    Input shape:
        Any with a sequence and an even-sized feature axis.

    Output shape:
        Same as the input.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> tuple(kl.RotaryEmbedding()(np.ones((2, 5, 4, 8), "float32")).shape)
        (2, 5, 4, 8)
    """

    def __init__(self, max_wavelength=10000, scaling_factor=1.0, sequence_axis=1,
                 feature_axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.max_wavelength = validation.positive_int(self, "max_wavelength", max_wavelength)
        self.scaling_factor = float(validation.non_negative(self, "scaling_factor", scaling_factor))
        if self.scaling_factor < 1.0:
            raise ValueError(
                f"{validation.describe(self)}: `scaling_factor` must be >= 1, received "
                f"scaling_factor={scaling_factor!r}."
            )
        for argument, axis in (("sequence_axis", sequence_axis), ("feature_axis", feature_axis)):
            if isinstance(axis, bool) or not isinstance(axis, int):
                raise ValueError(
                    f"{validation.describe(self)}: `{argument}` must be an int, received "
                    f"{argument}={axis!r}."
                )
        self.sequence_axis = sequence_axis
        self.feature_axis = feature_axis
        self.supports_masking = True

    def build(self, inputs_shape):
        sequence_axis, feature_axis = validation.axes(
            self, self.sequence_axis, inputs_shape
        ) + validation.axes(self, self.feature_axis, inputs_shape)
        features = inputs_shape[feature_axis]
        if sequence_axis == feature_axis or (features is not None and features % 2):
            raise ValueError(
                f"{validation.describe(self)}: needs distinct sequence and feature axes and an "
                f"even number of features; received sequence_axis={self.sequence_axis}, "
                f"feature_axis={self.feature_axis}, input shape {tuple(inputs_shape)}."
            )

    def call(self, inputs, start_index=0, positions=None):
        # (..., sequence, ..., features, ...) -> (batch, sequence, ..., features)
        x = ops.moveaxis(inputs, (self.sequence_axis, self.feature_axis), (1, -1))
        if positions is None:
            positions = ops.expand_dims(ops.arange(ops.shape(x)[1]) + start_index, 0)
        else:
            positions = self._checked_positions(positions, start_index, x)
        cos, sin = self._cos_sin(x, positions)
        first, second = ops.split(x, 2, axis=-1)
        rotated = ops.concatenate([-second, first], axis=-1)
        outputs = x * cos + rotated * sin
        return ops.moveaxis(outputs, (1, -1), (self.sequence_axis, self.feature_axis))

    def _checked_positions(self, positions, start_index, x):
        """`positions` as `(batch or 1, sequence)`, after checking them against `x`
        `(batch, sequence, ..., features)`."""
        shape, expected = tuple(positions.shape), (x.shape[0], x.shape[1])
        fits = len(shape) in (1, 2) and shape[-1] in (None, expected[1]) and (
            len(shape) == 1 or shape[0] in (None, 1, expected[0]) or expected[0] is None
        )
        if not fits or not (isinstance(start_index, numbers.Integral) and start_index == 0):
            raise ValueError(
                f"{validation.describe(self)}: `positions` must be (sequence,) or (batch, "
                f"sequence) = {expected} for inputs of shape {tuple(x.shape)} (sequence axis "
                f"moved to 1, features last), and replace `start_index`, which must stay 0; "
                f"received positions of shape {shape} and start_index={start_index!r}."
            )
        return positions if len(shape) == 2 else ops.expand_dims(positions, 0)

    def _cos_sin(self, x, positions):
        """cos and sin of the angles at `positions` `(batch or 1, sequence)`, shaped
        `(batch or 1, sequence, 1, ..., features)`, in the compute dtype."""
        features = ops.shape(x)[-1]
        exponents = ops.arange(0, features, 2, dtype="float32") / ops.cast(features, "float32")
        inverse_wavelengths = 1.0 / ops.power(float(self.max_wavelength), exponents)
        positions = ops.cast(positions, "float32") / self.scaling_factor
        # (batch, sequence, features / 2) -> (batch, sequence, features): the same angle for
        # x[i] and x[i + d/2]
        angles = ops.expand_dims(positions, -1) * inverse_wavelengths
        angles = ops.concatenate([angles, angles], axis=-1)
        for _ in range(len(x.shape) - 3):
            angles = ops.expand_dims(angles, 2)  # (batch, sequence, 1, ..., features)
        return ops.cast(ops.cos(angles), x.dtype), ops.cast(ops.sin(angles), x.dtype)

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        return {
            **super().get_config(),
            "max_wavelength": self.max_wavelength,
            "scaling_factor": self.scaling_factor,
            "sequence_axis": self.sequence_axis,
            "feature_axis": self.feature_axis,
        }


@keras.saving.register_keras_serializable(package="keraslayers")
class TokenAndPositionEmbedding(keras.layers.Layer):
    """Token embedding plus learned position embedding, as keras-hub's.

    `outputs[b, t] = token_embedding[tokens[b, t]] + position_embedding[t]`. With
    `mask_zero=True`, token 0 is padding and the layer emits the mask `tokens != 0`.
    Weights: `token_embedding/embeddings` `(vocabulary_size, embedding_dim)`, then
    `position_embedding/embeddings` `(sequence_length, embedding_dim)`.

    Args:
        vocabulary_size: number of tokens.
        sequence_length: the longest sequence.
        embedding_dim: size of the vectors.
        embeddings_initializer: initializer of both tables.
        mask_zero: whether token 0 means padding.

    Call arguments:
        inputs: integer tokens `(batch, sequence)`.
        start_index: position of the first token.

    Input shape:
        `(batch, sequence)`, `sequence <= sequence_length`.

    Output shape:
        `(batch, sequence, embedding_dim)`.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> tuple(kl.TokenAndPositionEmbedding(20, 8, 4)(np.array([[1, 2, 3]])).shape)
        (1, 3, 4)
    """

    def __init__(self, vocabulary_size, sequence_length, embedding_dim,
                 embeddings_initializer="uniform", mask_zero=False, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size = validation.positive_int(self, "vocabulary_size", vocabulary_size)
        self.sequence_length = validation.positive_int(self, "sequence_length", sequence_length)
        self.embedding_dim = validation.positive_int(self, "embedding_dim", embedding_dim)
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self.mask_zero = bool(mask_zero)
        self.supports_masking = self.mask_zero

    def build(self, inputs_shape):
        self.token_embedding = Embedding(
            self.vocabulary_size,
            self.embedding_dim,
            embeddings_initializer=self._fresh_initializer(),
            mask_zero=self.mask_zero,
            dtype=self.dtype_policy,
            name="token_embedding",
        )
        self.token_embedding.build(inputs_shape)
        self.position_embedding = PositionEmbedding(
            self.sequence_length,
            initializer=self._fresh_initializer(),
            dtype=self.dtype_policy,
            name="position_embedding",
        )
        self.position_embedding.build((*inputs_shape, self.embedding_dim))

    def _fresh_initializer(self):
        return self.embeddings_initializer.__class__.from_config(
            self.embeddings_initializer.get_config()
        )

    def call(self, inputs, start_index=0):
        tokens = self.token_embedding(inputs)
        return tokens + self.position_embedding(tokens, start_index=start_index)

    def compute_mask(self, inputs, mask=None):
        return self.token_embedding.compute_mask(inputs, mask)

    def compute_output_shape(self, inputs_shape):
        return (*inputs_shape, self.embedding_dim)

    def get_config(self):
        return {
            **super().get_config(),
            "vocabulary_size": self.vocabulary_size,
            "sequence_length": self.sequence_length,
            "embedding_dim": self.embedding_dim,
            "embeddings_initializer": initializers.serialize(self.embeddings_initializer),
            "mask_zero": self.mask_zero,
        }
