"""Regularization layers: Dropout."""

from __future__ import annotations

import numbers

import keras

from keraslayers.layers import validation


@keras.saving.register_keras_serializable(package="keraslayers")
class Dropout(keras.layers.Layer):
    """Randomly zeroes inputs during training and rescales the rest by `1 / (1 - rate)`.

    At inference (`training=False`, the default) it is the identity. The random mask comes
    from a `keras.random.SeedGenerator`, so two layers built with the same `seed` drop the
    same units, and each training call draws a new mask.

    Args:
        rate: fraction of the inputs to drop, in [0, 1] (1 drops everything, as in Keras).
        noise_shape: shape of the binary mask, broadcast against the input; a `None` entry
            takes the input's size. `(batch, 1, features)` drops whole features for every
            time step.
        seed: integer seed of the mask; None for a random one.

    Input shape:
        Any.

    Output shape:
        Same as the input.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> x = np.ones((2, 4), "float32")
        >>> bool((np.asarray(kl.Dropout(0.5)(x, training=False)) == x).all())
        True
    """

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = self._checked_rate(rate)
        self.noise_shape = self._checked_noise_shape(noise_shape)
        self.seed = seed
        if self.rate > 0:
            self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True
        # Built now only if `build` is not overridden, as Keras's Dropout: a subclass's own
        # `build` still runs at the first call.
        self._build_at_init()

    def _checked_rate(self, rate) -> float:
        """A number in [0, 1], as Keras's; a TypeError for a non-number (Keras's comparison
        raises one), a ValueError outside the range."""
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real):
            raise TypeError(
                f"{validation.describe(self)}: `rate` must be a number in [0, 1], received "
                f"rate={rate!r}."
            )
        if not 0 <= rate <= 1:
            raise ValueError(
                f"{validation.describe(self)}: `rate` must be a number in [0, 1], received "
                f"rate={rate!r}."
            )
        return float(rate)

    def _checked_noise_shape(self, noise_shape):
        if noise_shape is None:
            return None
        try:
            dims = tuple(noise_shape)
        except TypeError:
            dims = None
        if isinstance(noise_shape, str) or dims is None or not all(
            d is None or (isinstance(d, int) and not isinstance(d, bool) and d > 0) for d in dims
        ):
            raise ValueError(
                f"{validation.describe(self)}: `noise_shape` must be a sequence of positive "
                f"integers or None, received noise_shape={noise_shape!r}."
            )
        return dims

    def call(self, inputs, training=False):
        if training and self.rate > 0:
            return keras.random.dropout(
                inputs, self.rate, noise_shape=self.noise_shape, seed=self.seed_generator
            )
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "rate": self.rate,
            "noise_shape": self.noise_shape,
            "seed": self.seed,
        }
