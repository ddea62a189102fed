"""Upsampling layers: UpSampling1D, UpSampling2D, UpSampling3D.

Drop-ins for Keras 3.15.1's: each spatial axis grows by an integer factor. Nearest-neighbour
upsampling repeats every position `size` times along its axis (`ops.repeat`, which XLA
compiles); UpSampling2D's other interpolations resize with `keras.ops.image.resize`, as
Keras's layer does, so the outputs agree with Keras's on each backend (the backends' bicubic
kernels differ from one another, and torch's has no Lanczos).
"""

from __future__ import annotations

import keras
from keras import ops

from keraslayers.layers import formulation
from keraslayers.layers.conv_arithmetic import (
    normalize_data_format,
    normalize_tuple,
    to_channels_first_axes,
    to_channels_last_axes,
)
from keraslayers.layers.validation import describe

# UpSampling2D's interpolations: the ones Keras's UpSampling2D documents.
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos3", "lanczos5")
# Kernels a backend's `ops.image.resize` lacks (Keras's torch backend refuses Lanczos).
_UNSUPPORTED = {"torch": ("lanczos3", "lanczos5")}


# Backends whose bilinear upsampling by an odd factor is ours (`bilinear_upsample`), not
# `ops.image.resize`: TensorFlow's resize compiled by XLA (`jit_compile=True`) is wrong for odd
# factors above 1 (Keras's UpSampling2D((2, 3), interpolation="bilinear") on 4x4 images: 48
# of 576 values off by up to 2.6 from eager; factors 3 and 5 wrong, 1, 2, 4, 6, 8 and 16
# right, on 4 image shapes). Ours gives eager TensorFlow's values, compiled or not, but ran
# 0.50x (predict) and 0.34x (train) of the resize at size 2 on 16x56x56x64 (TensorFlow CPU),
# so even factors keep the resize.
_OWN_BILINEAR = ("tensorflow",)

# Bilinear upsampling by (backend, device kind), through `formulation.choose`, for the speed
# alone: "own_bilinear" is `bilinear_upsample` at every factor. JAX's CPU resize ran 0.44x
# (predict) and 0.55x (train) of it, UpSampling2D(2, "bilinear") on 16x56x56x64 (114 against
# 51 ms, 99 against 54 ms, interleaved); on torch ours ran 20x and 6x slower than torch's
# interpolate (its gathers), so torch keeps the resize.
UPSAMPLING_FORMULATIONS = {("jax", "cpu"): "own_bilinear"}


def _upsampled(size: int, factor: int):
    return None if size is None else size * factor


def bilinear_upsample(x, factor: int, axis: int):
    """Linear interpolation of `x` to `factor` times its size along `axis`, half-pixel
    centres (as `ops.image.resize`'s "bilinear", edges repeated).

    Output position `factor * i + r` samples the input at `i + d_r`, with
    `d_r = (r + 0.5) / factor - 0.5` in (-0.5, 0.5): it mixes `x[i]` with its next (d_r > 0)
    or previous (d_r < 0) neighbour by `|d_r|`.
    """
    if factor == 1:
        return x
    x = ops.convert_to_tensor(x)
    length = ops.shape(x)[axis]  # a tensor where the size is unknown until run time
    positions = ops.arange(length)
    previous = ops.take(x, ops.maximum(positions - 1, 0), axis=axis)
    following = ops.take(x, ops.minimum(positions + 1, length - 1), axis=axis)
    phases = []
    for r in range(factor):
        d = (r + 0.5) / factor - 0.5
        neighbour = following if d > 0 else previous
        phases.append(x + abs(d) * (neighbour - x) if d else x)
    # (..., length, factor, ...) -> (..., length * factor, ...)
    stacked = ops.stack(phases, axis=axis + 1)
    shape = list(ops.shape(x))
    shape[axis] = length * factor
    return ops.reshape(stacked, shape)


class _UpSampling(keras.layers.Layer):
    """Repeats each position of the spatial axes `size` times, per axis.

    Subclasses set `spatial_rank`; the input is `(batch, *spatial, channels)` or
    `(batch, channels, *spatial)` by `data_format`.
    """

    spatial_rank: int

    def __init__(self, size, data_format=None, **kwargs):
        super().__init__(**kwargs)
        # One factor per spatial axis; `size` is the argument as Keras stores it.
        self.factors = normalize_tuple(self, size, self.spatial_rank, "size")
        self.size = self.factors
        self.data_format = normalize_data_format(self, data_format)
        self.input_spec = keras.layers.InputSpec(ndim=self.spatial_rank + 2)
        self._build_at_init()

    def _first_spatial_axis(self) -> int:
        return 1 if self.data_format == "channels_last" else 2

    def call(self, inputs):
        # (batch, *spatial, channels) -> (batch, *(spatial * size), channels), or channels first
        outputs = inputs
        for offset, factor in enumerate(self.factors):
            outputs = ops.repeat(outputs, factor, axis=self._first_spatial_axis() + offset)
        return outputs

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        first = self._first_spatial_axis()
        for offset, factor in enumerate(self.factors):
            shape[first + offset] = _upsampled(shape[first + offset], factor)
        return tuple(shape)

    def get_config(self):
        return {**super().get_config(), "size": self.size, "data_format": self.data_format}


@keras.saving.register_keras_serializable(package="keraslayers")
class UpSampling1D(_UpSampling):
    """Upsampling of sequences: repeats each step `size` times along the steps axis.

    Args:
        size: positive integer, the upsampling factor (a tuple of one also works).
            Defaults to 2.

    Input shape:
        `(batch, steps, features)`.

    Output shape:
        `(batch, steps * size, features)`.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> x = np.array([[[1.0], [2.0]]], "float32")
        >>> np.asarray(kl.UpSampling1D(size=3)(x))[0, :, 0].tolist()
        [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]
    """

    spatial_rank = 1

    def __init__(self, size=2, **kwargs):
        super().__init__(size, data_format="channels_last", **kwargs)
        self.size = self.factors[0]  # an integer, as Keras's

    def get_config(self):
        # Keras's UpSampling1D has no data format.
        config = super().get_config()
        del config["data_format"]
        return config


@keras.saving.register_keras_serializable(package="keraslayers")
class UpSampling2D(_UpSampling):
    """Upsampling of images by `size` factors on rows and columns.

    `interpolation="nearest"` repeats each row and column; the others resize the image
    to `(rows * size[0], cols * size[1])` with that kernel (half-pixel centres, as
    `keras.ops.image.resize`).

    Args:
        size: an integer or a tuple of 2 positive integers, the factors for rows and
            columns. Defaults to (2, 2).
        data_format: "channels_last" `(batch, rows, cols, channels)` or "channels_first"
            `(batch, channels, rows, cols)`; None for Keras's `image_data_format()`.
        interpolation: "nearest" (default), "bilinear", "bicubic", "lanczos3" or
            "lanczos5" (any case). The torch backend has no Lanczos kernels.

    Input shape:
        `(batch, rows, cols, channels)`, or `(batch, channels, rows, cols)`.

    Output shape:
        `(batch, rows * size[0], cols * size[1], channels)`, or channels first.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> x = np.array([[[[0.0], [1.0]]]], "float32")  # (1, 1, 2, 1)
        >>> y = kl.UpSampling2D(size=(1, 2), interpolation="bilinear")(x)
        >>> np.asarray(y)[0, 0, :, 0].tolist()
        [0.0, 0.25, 0.75, 1.0]
    """

    spatial_rank = 2

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(size, data_format=data_format, **kwargs)
        name = interpolation.lower() if isinstance(interpolation, str) else interpolation
        if name not in INTERPOLATIONS:
            raise ValueError(
                f"{describe(self)}: `interpolation` must be one of {', '.join(INTERPOLATIONS)}, "
                f"received interpolation={interpolation!r}."
            )
        self.interpolation = name

    def call(self, inputs):
        if self.interpolation == "nearest":
            return super().call(inputs)
        backend = keras.backend.backend()
        if self.interpolation in _UNSUPPORTED.get(backend, ()):
            raise ValueError(
                f"{describe(self)}: interpolation={self.interpolation!r} is not available on "
                f"the {backend} backend (its image resize has no such kernel)."
            )
        odd_factor = any(factor % 2 for factor in self.factors if factor > 1)
        own = (backend in _OWN_BILINEAR and odd_factor) or (
            formulation.choose("upsampling", UPSAMPLING_FORMULATIONS) == "own_bilinear")
        if self.interpolation == "bilinear" and own:
            outputs = inputs
            for offset, factor in enumerate(self.factors):
                outputs = bilinear_upsample(outputs, factor, self._first_spatial_axis() + offset)
            return outputs
        # The resize works on (batch, rows, cols, channels).
        images = inputs
        if self.data_format == "channels_first":
            images = ops.transpose(inputs, to_channels_last_axes(2))
        shape = ops.shape(images)
        target = (shape[1] * self.factors[0], shape[2] * self.factors[1])
        images = ops.image.resize(images, target, interpolation=self.interpolation,
                                  data_format="channels_last")
        if self.data_format == "channels_first":
            images = ops.transpose(images, to_channels_first_axes(2))
        return images

    def get_config(self):
        return {**super().get_config(), "interpolation": self.interpolation}


@keras.saving.register_keras_serializable(package="keraslayers")
class UpSampling3D(_UpSampling):
    """Upsampling of volumes: repeats each position `size` times along each spatial axis.

    Args:
        size: an integer or a tuple of 3 positive integers, the factors for the three
            spatial axes. Defaults to (2, 2, 2).
        data_format: "channels_last" `(batch, dim1, dim2, dim3, channels)` or
            "channels_first" `(batch, channels, dim1, dim2, dim3)`; None for Keras's
            `image_data_format()`.

    Input shape:
        `(batch, dim1, dim2, dim3, channels)`, or `(batch, channels, dim1, dim2, dim3)`.

    Output shape:
        `(batch, dim1 * size[0], dim2 * size[1], dim3 * size[2], channels)`, or channels
        first.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> tuple(kl.UpSampling3D(size=(1, 2, 3))(np.ones((2, 1, 2, 1, 4), "float32")).shape)
        (2, 1, 4, 3, 4)
    """

    spatial_rank = 3

    def __init__(self, size=(2, 2, 2), data_format=None, **kwargs):
        super().__init__(size, data_format=data_format, **kwargs)
