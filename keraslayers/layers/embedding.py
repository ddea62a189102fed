"""Embedding: integer indices to dense vectors."""

from __future__ import annotations

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

    Input shape:
        Integer tensor `(batch, ...)` of indices in `[0, input_dim)`.

    Output shape:
        `(batch, ..., output_dim)`.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> kl.Embedding(10, 4)(np.array([[1, 2, 3]])).shape
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
        **kwargs,
    ):
        super().__init__(**kwargs)
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
