"""Regularization layers: Dropout, SpatialDropout1D/2D/3D, GaussianNoise, GaussianDropout,
AlphaDropout.

Each is the identity at inference (`training=False`, the default) and draws its noise in
training from a `keras.random.SeedGenerator`, with the same `keras.random` calls as Keras's
layer: with the same `seed`, ours and Keras's draw the same noise.
"""

from __future__ import annotations

import math
import numbers

import keras
from keras import ops

from keraslayers.layers import validation
from keraslayers.layers.conv_arithmetic import normalize_data_format


def _checked_fraction(layer, value, argument: str) -> float:
    """A number in [0, 1], as Keras's; a TypeError for a non-number (Keras's comparison
    raises one), a ValueError outside the range."""
    message = (f"{validation.describe(layer)}: `{argument}` must be a number in [0, 1], "
               f"received {argument}={value!r}.")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(message)
    if not 0 <= value <= 1:
        raise ValueError(message)
    return float(value)


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
        self.rate = _checked_fraction(self, rate, "rate")
        self.noise_shape = self._checked_noise_shape(noise_shape)
        self.seed = seed
        if self.rate > 0:
            self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True
        # Built now only if `build` is not overridden, as Keras's Dropout: a subclass's own
        # `build` still runs at the first call.
        self._build_at_init()

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


class _SpatialDropout(Dropout):
    """Dropout of whole feature maps: one draw per sample and channel, shared by every
    position (`noise_shape` (batch, 1, ..., channels), or (batch, channels, 1, ...))."""

    rank = 1

    def __init__(self, rate, data_format=None, seed=None, name=None, dtype=None, **kwargs):
        super().__init__(rate, seed=seed, name=name, dtype=dtype, **kwargs)
        self.data_format = normalize_data_format(self, data_format)
        self.input_spec = keras.layers.InputSpec(ndim=self.rank + 2)

    def call(self, inputs, training=False):
        if training and self.rate > 0:
            return keras.random.dropout(inputs, self.rate, noise_shape=self._noise_shape(inputs),
                                        seed=self.seed_generator)
        return inputs

    def _noise_shape(self, inputs):
        shape = ops.shape(inputs)
        ones = (1,) * self.rank
        if self.data_format == "channels_first":
            return (shape[0], shape[1], *ones)
        return (shape[0], *ones, shape[-1])

    def get_config(self):
        config = super().get_config()
        del config["noise_shape"]
        return {**config, "data_format": self.data_format}


@keras.saving.register_keras_serializable(package="keraslayers")
class SpatialDropout1D(_SpatialDropout):
    """Dropout of whole 1D feature maps: in training, each sample's channel is zeroed for
    every time step at once, with probability `rate`, and the rest are scaled by
    `1 / (1 - rate)`. Adjacent steps of a feature map are strongly correlated after a
    convolution, where element-wise dropout barely regularizes.

    Drop-in for `keras.layers.SpatialDropout1D` (Tompson et al., 2014).

    Args:
        rate: fraction of the channels to drop, in [0, 1].
        seed: integer seed of the mask; None for a random one.

    Input shape:
        `(batch, steps, channels)`.

    Output shape:
        Same as the input.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> y = np.asarray(kl.SpatialDropout1D(0.5, seed=1)(np.ones((2, 3, 4), "float32"),
        ...                                                  training=True))
        >>> bool((y == y[:, :1, :]).all())  # each channel kept or dropped for every step
        True
    """

    def __init__(self, rate, seed=None, name=None, dtype=None, **kwargs):
        super().__init__(rate, "channels_last", seed=seed, name=name, dtype=dtype, **kwargs)

    def get_config(self):
        config = super().get_config()
        del config["data_format"]
        return config


@keras.saving.register_keras_serializable(package="keraslayers")
class SpatialDropout2D(_SpatialDropout):
    """Dropout of whole 2D feature maps: in training, each sample's channel is zeroed at
    every position at once, with probability `rate`, and the rest are scaled by
    `1 / (1 - rate)`.

    Drop-in for `keras.layers.SpatialDropout2D`.

    Args:
        rate: fraction of the channels to drop, in [0, 1].
        data_format: "channels_last" (default: Keras's image_data_format) or
            "channels_first".
        seed: integer seed of the mask; None for a random one.

    Input shape:
        `(batch, rows, cols, channels)`, or `(batch, channels, rows, cols)`.

    Output shape:
        Same as the input.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> x = np.ones((2, 3, 3, 4), "float32")
        >>> tuple(kl.SpatialDropout2D(0.5)(x, training=True).shape)
        (2, 3, 3, 4)
    """

    rank = 2

    def __init__(self, rate, data_format=None, seed=None, name=None, dtype=None, **kwargs):
        super().__init__(rate, data_format, seed=seed, name=name, dtype=dtype, **kwargs)


@keras.saving.register_keras_serializable(package="keraslayers")
class SpatialDropout3D(_SpatialDropout):
    """Dropout of whole 3D feature maps: in training, each sample's channel is zeroed at
    every position at once, with probability `rate`, and the rest are scaled by
    `1 / (1 - rate)`.

    Drop-in for `keras.layers.SpatialDropout3D`.

    Args:
        rate: fraction of the channels to drop, in [0, 1].
        data_format: "channels_last" (default: Keras's image_data_format) or
            "channels_first".
        seed: integer seed of the mask; None for a random one.

    Input shape:
        `(batch, depth, rows, cols, channels)`, or `(batch, channels, depth, rows, cols)`.

    Output shape:
        Same as the input.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> x = np.ones((2, 2, 3, 3, 4), "float32")
        >>> tuple(kl.SpatialDropout3D(0.5)(x, training=True).shape)
        (2, 2, 3, 3, 4)
    """

    rank = 3

    def __init__(self, rate, data_format=None, seed=None, name=None, dtype=None, **kwargs):
        super().__init__(rate, data_format, seed=seed, name=name, dtype=dtype, **kwargs)


class _Noise(keras.layers.Layer):
    """A layer that adds or multiplies noise in training and is the identity otherwise."""

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.supports_masking = True

    def _ready(self, amount: float) -> None:
        """The end of `__init__`, once `amount` (a rate or a standard deviation) is checked:
        a seed generator where there is noise to draw, and built now unless a subclass
        overrides `build` (as Keras's layers)."""
        if amount > 0:
            self.seed_generator = keras.random.SeedGenerator(self.seed)
        self._build_at_init()

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="keraslayers")
class GaussianNoise(_Noise):
    """Adds zero-centred Gaussian noise in training: `x + N(0, stddev^2)`; the identity at
    inference. A regularizer, and a way to augment real-valued inputs.

    Drop-in for `keras.layers.GaussianNoise`.

    Args:
        stddev: standard deviation of the noise, in [0, 1] (as Keras requires).
        seed: integer seed of the noise; None for a random one.

    Input shape:
        Any.

    Output shape:
        Same as the input.

    Example:
        >>> import keras, numpy as np, keraslayers as kl
        >>> y = kl.GaussianNoise(0.1, seed=0)(np.zeros((1000,), "float32"), training=True)
        >>> round(float(np.std(keras.ops.convert_to_numpy(y))), 1)
        0.1
    """

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.stddev = _checked_fraction(self, stddev, "stddev")
        self._ready(self.stddev)

    def call(self, inputs, training=False):
        if training and self.stddev > 0:
            return inputs + keras.random.normal(ops.shape(inputs), mean=0.0, stddev=self.stddev,
                                                dtype=self.compute_dtype,
                                                seed=self.seed_generator)
        return inputs

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev, "seed": self.seed}


@keras.saving.register_keras_serializable(package="keraslayers")
class GaussianDropout(_Noise):
    """Multiplies by Gaussian noise of mean 1 in training: `x * N(1, rate / (1 - rate))`,
    the variance of dropout at `rate` without zeroing anything; the identity at inference.

    Drop-in for `keras.layers.GaussianDropout` (Srivastava et al., 2014).

    Args:
        rate: the dropout rate whose variance the noise has, in [0, 1].
        seed: integer seed of the noise; None for a random one.

    Input shape:
        Any.

    Output shape:
        Same as the input.

    Example:
        >>> import keras, numpy as np, keraslayers as kl
        >>> y = kl.GaussianDropout(0.5, seed=0)(np.ones((1000,), "float32"), training=True)
        >>> round(float(np.mean(keras.ops.convert_to_numpy(y))), 1)
        1.0
    """

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.rate = _checked_fraction(self, rate, "rate")
        self._ready(self.rate)

    def call(self, inputs, training=False):
        if training and self.rate > 0:
            stddev = math.sqrt(self.rate / (1.0 - self.rate))
            return inputs * keras.random.normal(ops.shape(inputs), mean=1.0, stddev=stddev,
                                                dtype=self.compute_dtype,
                                                seed=self.seed_generator)
        return inputs

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


# The SELU constants (Klambauer et al., 2017): AlphaDropout sets dropped units to SELU's
# negative saturation value, then rescales so that the mean and variance are kept.
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


@keras.saving.register_keras_serializable(package="keraslayers")
class AlphaDropout(_Noise):
    """Dropout that keeps the mean and variance of its inputs, for self-normalizing networks
    (SELU activations): in training, dropped units are set to `-alpha * scale` (SELU's
    saturation value), then every unit is mapped by `a * x + b`, with `a` and `b` chosen so
    that zero-mean, unit-variance inputs stay so; the identity at inference.

    Drop-in for `keras.layers.AlphaDropout`.

    Args:
        rate: fraction of the inputs to drop, in [0, 1].
        noise_shape: shape of the binary mask, broadcast against the input; a `None` entry
            takes the input's size.
        seed: integer seed of the mask; None for a random one.

    Input shape:
        Any.

    Output shape:
        Same as the input.

    Example:
        >>> import keras, numpy as np, keraslayers as kl
        >>> x = np.random.default_rng(0).standard_normal((20000,)).astype("float32")
        >>> y = keras.ops.convert_to_numpy(kl.AlphaDropout(0.2, seed=0)(x, training=True))
        >>> bool(abs(np.mean(y)) < 0.05), round(float(np.std(y)), 1)
        (True, 1.0)
    """

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.rate = _checked_fraction(self, rate, "rate")
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)
        self._ready(self.rate)

    def call(self, inputs, training=False):
        if not (training and self.rate > 0):
            return inputs
        saturation = -_SELU_ALPHA * _SELU_SCALE
        kept = ops.cast(keras.random.uniform(self._concrete_noise_shape(inputs),
                                             seed=self.seed_generator) >= self.rate,
                        inputs.dtype)
        a = ((1 - self.rate) * (1 + self.rate * saturation**2)) ** -0.5
        b = -a * saturation * self.rate
        return a * (inputs * kept + saturation * (1 - kept)) + b

    def _concrete_noise_shape(self, inputs):
        shape = ops.shape(inputs)
        if self.noise_shape is None:
            return shape
        return [shape[i] if size is None else size for i, size in enumerate(self.noise_shape)]

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed,
                "noise_shape": self.noise_shape}
