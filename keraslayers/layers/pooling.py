"""Pooling layers: windowed and global max and average pooling over 1, 2 or 3 spatial axes.

Windowed pooling shares `_Pooling` (the six layers only name their rank and reduction);
global pooling shares `_GlobalPooling`. Output sizes come from `conv_arithmetic`, so pooling
and convolution agree on "valid" and "same".

Performance: `POOLING_FORMULATIONS` picks, by backend and device kind, how windowed pooling
runs: on torch's CPU through torch's fast channels-last 2D kernels
(`_Pooling._pool_with_torch_kernels`), on JAX's CPU in training as strided slices
(`_Pooling._pool_by_window_slices`); elsewhere, Keras's own pooling ops.
"""

from __future__ import annotations

import itertools
import math

import keras
from keras import ops

from keraslayers.layers import formulation
from keraslayers.layers.conv_arithmetic import (
    check_window_fits,
    conv_output_length,
    first_spatial_axis,
    normalize_data_format,
    normalize_padding,
    normalize_tuple,
    same_padding,
    same_window_counts,
    spatial_sizes,
    to_channels_first_axes,
    to_channels_last_axes,
)
from keraslayers.layers.validation import describe

_SPATIAL_AXES_NAMES = {1: ("steps",), 2: ("height", "width"), 3: ("depth", "height", "width")}
_REDUCTIONS = {"max": ops.max, "average": ops.mean}
# Pooling on JAX in training takes one strided slice per window offset (`_window_slices`):
# past this many offsets, XLA's own `reduce_window` is left to it, to keep the graph small.
_MAX_WINDOW_SLICES = 27

# Formulations by (backend, device kind), read through `formulation.choose`; a pair not listed
# (a GPU or TPU: nobody measured there) runs Keras's own ops, `formulation.KERAS`. Figures from
# the commits named and benchmarks/README.md (`make bench-standard`, on this project's CPU).
POOLING_FORMULATIONS = {
    # "window_slices", in training only: the gradient of strided slices was 1.6x (average)
    # to 7-18x (max) faster than XLA's CPU reduce_window's, but their forward pass up to 2x
    # slower on large maps (commits 7b4586f, 025ef17, bd4479b). Average pooling only where
    # windows overlap: otherwise reduce_window's gradient is a broadcast, 2.7x faster than
    # the slices' on 8x16x32x32x32 with 2x2x2 windows. Standard run: max pooling 1.3-7.4x in
    # training, AveragePooling2D 3/2 "same" 1.5x.
    ("jax", "cpu"): "window_slices",
    # "torch_kernels": Keras's torch backend copies channels-last inputs into contiguous
    # channels-first tensors, where torch's CPU kernels are slow (2D max pooling of
    # 16x56x56x64: 60 ms, against 1.6 ms on the data left in place; commit 0a56f81); 1D
    # pooling as 2D over a unit width axis (8x faster on 32x1024x128, windows of 3, stride 2),
    # 3D average pooling as two 2D ones (3-5x on 8x16x32x32x32, 2x2x2 windows), and "same"
    # max pooling padded with -inf in place of Keras's edge copies (4x; commit a09cb13).
    # Standard run: MaxPooling2D 4.0-7.2x predict, 2.7-2.8x train; AveragePooling 1.6-4.1x.
    ("torch", "cpu"): "torch_kernels",
}


def pooling_formulation(reduction: str, pool_size, strides, training) -> str:
    """`POOLING_FORMULATIONS`' choice, narrowed to where it was measured faster: window
    slices in training only, up to `_MAX_WINDOW_SLICES` offsets, for average pooling only
    where windows overlap."""
    chosen = formulation.choose("pooling", POOLING_FORMULATIONS)
    if chosen == "window_slices":
        overlapping = any(s < w for s, w in zip(strides, pool_size, strict=True))
        if (not training or math.prod(pool_size) > _MAX_WINDOW_SLICES
                or (reduction == "average" and not overlapping)):
            return formulation.KERAS
    return chosen


def _layout(spatial_rank: int, data_format: str) -> str:
    """`(batch, height, width, channels)`: the axes an input must have, for error messages."""
    spatial = _SPATIAL_AXES_NAMES[spatial_rank]
    axes = ("channels", *spatial) if data_format == "channels_first" else (*spatial, "channels")
    return f"({', '.join(('batch', *axes))})"


def _rank_checked_spatial_sizes(layer, input_shape, spatial_rank: int, data_format: str) -> tuple:
    """The spatial sizes of `input_shape` (None where unknown), after checking its rank."""
    if len(input_shape) != spatial_rank + 2:
        raise ValueError(
            f"{describe(layer)}: expected an input of rank {spatial_rank + 2}, "
            f"{_layout(spatial_rank, data_format)} with data_format={data_format!r}, "
            f"received an input of shape {tuple(input_shape)} (rank {len(input_shape)})."
        )
    return spatial_sizes(input_shape, data_format)


class _Pooling(keras.layers.Layer):
    """Max or average over windows sliding along the spatial axes (the six pooling layers).

    Subclasses set `spatial_rank` (1, 2 or 3) and `reduction` ("max" or "average").
    """

    spatial_rank: int
    reduction: str

    def __init__(self, pool_size, strides, padding, data_format, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        rank = self.spatial_rank
        self.pool_size = normalize_tuple(self, pool_size, rank, "pool_size")
        self.strides = (
            self.pool_size if strides is None else normalize_tuple(self, strides, rank, "strides")
        )
        self.padding = normalize_padding(self, padding)
        self.data_format = normalize_data_format(self, data_format)
        # Built now only if `build` is not overridden, as Keras's pooling layers: a
        # subclass's own `build` still runs at the first call.
        self._build_at_init()

    def _checked_spatial_sizes(self, input_shape) -> tuple:
        spatial = _rank_checked_spatial_sizes(
            self, input_shape, self.spatial_rank, self.data_format
        )
        check_window_fits(self, spatial, self.pool_size, self.padding, what="pool window")
        return spatial

    def call(self, inputs, training=None):
        spatial = self._checked_spatial_sizes(inputs.shape)
        if self.spatial_rank == 3 and ops.dtype(inputs) in ("float16", "bfloat16"):
            # TensorFlow's CPU kernels lack float16 MaxPool3D and AvgPool3D, torch's CPU
            # lacks 16-bit avg_pool3d: pool in float32 (exact for the max, no worse for the
            # mean) and cast back.
            pooled = self._pool(ops.cast(inputs, "float32"), spatial, training)
            return ops.cast(pooled, inputs.dtype)
        return self._pool(inputs, spatial, training)

    def _pool(self, inputs, spatial, training=None):
        pooling = {"pool_size": self.pool_size, "strides": self.strides,
                   "data_format": self.data_format}
        chosen = pooling_formulation(self.reduction, self.pool_size, self.strides, training)
        if chosen == "window_slices" and None not in spatial:
            return self._pool_by_window_slices(inputs, spatial, pooling)
        if chosen == "torch_kernels":
            return self._pool_with_torch_kernels(inputs, spatial, pooling)
        return self._keras_pool(inputs, spatial, pooling)

    def _pool_with_torch_kernels(self, inputs, spatial, pooling):
        """Pooling in the layouts and shapes torch's CPU kernels are fast for."""
        if self.data_format == "channels_last":
            return self._pool_channels_last_on_torch(inputs, spatial)
        return self._pool_padded_in_place(inputs, spatial, pooling)

    def _pool_channels_last_on_torch(self, inputs, spatial):
        """Pooling of a channels-last input on torch, through torch's fast 2D kernels.

        torch's CPU kernels are fast only for 2D channels-last pooling: 1D pooling (which
        has no channels-last kernel) runs as a 2D pooling over a unit width axis, and 3D
        average pooling as a 2D pooling over height and width then one over depth.
        """
        if self.spatial_rank == 1:
            # (batch, steps, 1, channels): 8x faster than max_pool1d and avg_pool1d, forward
            # and backward, on 32x1024x128 with windows of 3, stride 2.
            pooled = self._pool_in_channels_first_view(
                ops.expand_dims(inputs, 2), (*spatial, 1), (*self.pool_size, 1),
                (*self.strides, 1),
            )
            return ops.squeeze(pooled, 2)
        if self.spatial_rank == 3 and self.reduction == "average":
            return self._average_3d_as_2d_on_torch(inputs, spatial)
        return self._pool_in_channels_first_view(inputs, spatial, self.pool_size, self.strides)

    def _average_3d_as_2d_on_torch(self, inputs, spatial):
        """3D average pooling as two 2D ones: over height and width, then over depth.

        A box's mean is the mean over depth of means over height and width (with "same"
        padding too: each axis rescales its own count); torch's 2D channels-last kernels
        ran this 3-5x faster than its avg_pool3d, forward and backward, on 8x16x32x32x32
        with 2x2x2 windows.
        """
        depth, height, width = spatial
        channels = inputs.shape[-1]
        # (batch * depth, height, width, channels)
        planes = ops.reshape(inputs, (-1, height, width, channels))
        planes = self._pool_in_channels_first_view(
            planes, (height, width), self.pool_size[1:], self.strides[1:]
        )
        pooled_height, pooled_width = planes.shape[1:3]
        # (batch, depth, pooled_height * pooled_width, channels), pooled over depth alone.
        columns = ops.reshape(planes, (-1, depth, pooled_height * pooled_width, channels))
        columns = self._pool_in_channels_first_view(
            columns, (depth, pooled_height * pooled_width), (self.pool_size[0], 1),
            (self.strides[0], 1),
        )
        # (batch, pooled_depth, pooled_height, pooled_width, channels)
        return ops.reshape(columns, (-1, columns.shape[1], pooled_height, pooled_width,
                                     channels))

    def _pool_in_channels_first_view(self, inputs, spatial, pool_size, strides):
        """Pools channels-last `inputs` on torch through a channels-first view of them.

        Keras's torch pooling copies a channels-last input into a contiguous channels-first
        tensor, where torch's CPU kernels are slow (2D max pooling of 16x56x56x64: 60 ms,
        against 1.6 ms on the same data left in place). Transposing gives torch a
        channels-first view of the channels-last memory, which its channels-last kernels
        take as is; transposing back is a view again.
        """
        rank = len(pool_size)
        pooling = {"pool_size": pool_size, "strides": strides, "data_format": "channels_first"}
        first = ops.transpose(inputs, to_channels_first_axes(rank))
        pooled = self._pool_padded_in_place(first, spatial, pooling)
        return ops.transpose(pooled, to_channels_last_axes(rank))

    def _pool_padded_in_place(self, inputs, spatial, pooling):
        """`_keras_pool`, but "same" max pooling pads with -inf itself: Keras's torch backend
        pads an uneven "same" split by repeating the edge entries, into a contiguous
        channels-first copy, where torch's max pooling is 4x slower (32x1024x128, windows of
        3, stride 2, through a unit width axis). -inf padding keeps the layout, and gives the
        same maximum and gradient."""
        if self.reduction == "max" and self.padding == "same" and None not in spatial:
            padded = ops.pad(inputs, self._same_pad_width(spatial, pooling),
                             constant_values=float("-inf"))
            return ops.max_pool(padded, padding="valid", **pooling)
        return self._keras_pool(inputs, spatial, pooling)

    def _pool_by_window_slices(self, inputs, spatial, pooling):
        if self.reduction == "max":
            return self._max_over_window_slices(inputs, spatial, pooling)
        return self._average_over_window_slices(inputs, spatial, pooling)

    def _keras_pool(self, inputs, spatial, pooling):
        """Keras's pooling ops, in `pooling["data_format"]` with its window and strides."""
        if self.reduction == "max":
            return ops.max_pool(inputs, padding=self.padding, **pooling)
        # Keras's torch backend counts repeated edge entries in an uneven "same" window (see
        # `_average_excluding_padding`); TensorFlow's and JAX's own ops exclude the padding.
        # A matter of the numbers, not of speed: on every torch device.
        if (self.padding == "same" and None not in spatial
                and keras.backend.backend() == "torch"):
            return self._average_excluding_padding(inputs, spatial, pooling)
        return ops.average_pool(inputs, padding=self.padding, **pooling)

    def _same_pad_width(self, spatial, pooling) -> list[tuple[int, int]]:
        """`ops.pad`'s widths for "same" padding of an input in `pooling["data_format"]`."""
        pool_size, strides = pooling["pool_size"], pooling["strides"]
        first = first_spatial_axis(pooling["data_format"])
        widths = [(0, 0)] * (len(pool_size) + 2)
        for axis, (length, window, stride) in enumerate(
            zip(spatial, pool_size, strides, strict=True), start=first
        ):
            widths[axis] = same_padding(length, window, stride)
        return widths

    def _window_slices(self, inputs, spatial, pooling, pad_value):
        """Every window offset's strided slice of `inputs`, each of the output's shape.

        Slice `j` holds entry `j` of every window: `x[b, i * stride + j, c]` along each
        spatial axis. "same" padding pads with `pad_value` first.
        """
        pool_size, strides = pooling["pool_size"], pooling["strides"]
        rank = len(pool_size)
        first = first_spatial_axis(pooling["data_format"])
        if self.padding == "same":
            inputs = ops.pad(inputs, self._same_pad_width(spatial, pooling),
                             constant_values=pad_value)
            spatial = inputs.shape[first:first + rank]
        counts = [
            conv_output_length(length, window, "valid", stride)
            for length, window, stride in zip(spatial, pool_size, strides, strict=True)
        ]
        for offset in itertools.product(*map(range, pool_size)):
            index = [slice(None)] * (rank + 2)
            for axis, (start, count, stride) in enumerate(
                zip(offset, counts, strides, strict=True), start=first
            ):
                index[axis] = slice(start, start + (count - 1) * stride + 1, stride)
            yield inputs[tuple(index)]

    def _max_over_window_slices(self, inputs, spatial, pooling):
        """Max pooling as an elementwise maximum of strided slices, one per window offset.

        XLA's CPU max pooling (`reduce_window`) and above all its gradient
        (`select_and_scatter_add`) ran 4 and 7-18 times slower than this on 16x56x56x64 with
        2x2 and 3x3 windows. The earlier offset wins ties and a NaN wins over a number, so the
        outputs, and the gradient (to the first maximum of each window), are
        `reduce_window`'s.
        """
        maximum = None
        for entries in self._window_slices(inputs, spatial, pooling, float("-inf")):
            if maximum is None:
                maximum = entries
            else:
                keep = ops.logical_or(maximum >= entries, ops.isnan(maximum))
                maximum = ops.where(keep, maximum, entries)
        return maximum

    def _average_over_window_slices(self, inputs, spatial, pooling):
        """Average pooling as a sum of strided slices, one per window offset, over the count.

        The gradient of XLA's CPU `reduce_window` sum took 1.6x (Keras's "same") to 2.8x (a
        padded "valid" window) as long as this on 32x1024x128 with windows of 3, stride 2.
        """
        total = None
        for entries in self._window_slices(inputs, spatial, pooling, 0.0):
            total = entries if total is None else total + entries
        outputs = total / math.prod(pooling["pool_size"])
        if self.padding == "same":
            outputs = self._exclude_padding(outputs, spatial, pooling)
        return outputs

    def _average_excluding_padding(self, inputs, spatial, pooling):
        """Average pooling with "same" padding: each window's sum over its real entries, over
        their count.

        Keras's torch backend pads an uneven "same" split by repeating the edge entries,
        which then count in the average; padding with zeros here and rescaling each window
        by `pool / count` gives TensorFlow's and JAX's result on every backend.
        """
        padded = ops.pad(inputs, self._same_pad_width(spatial, pooling))
        # Mean over whole windows, zeros included: the output layout, pooled spatial sizes.
        outputs = ops.average_pool(padded, padding="valid", **pooling)
        return self._exclude_padding(outputs, spatial, pooling)

    def _exclude_padding(self, outputs, spatial, pooling):
        """Means over whole zero-padded "same" windows, rescaled to means over real entries.

        A window is a box, so its count of real entries is a product of one count per axis:
        each axis rescales by `pool / count` on its own.
        """
        pool_size, strides = pooling["pool_size"], pooling["strides"]
        first = first_spatial_axis(pooling["data_format"])
        for axis, (length, window, stride) in enumerate(zip(spatial, pool_size, strides,
                                                            strict=True)):
            counts = same_window_counts(length, window, stride)
            if min(counts) == window:
                continue
            # (pooled,) reshaped to broadcast along this spatial axis only.
            shape = [1] * (len(pool_size) + 2)
            shape[first + axis] = len(counts)
            scale = ops.convert_to_tensor([window / count for count in counts], outputs.dtype)
            outputs = outputs * ops.reshape(scale, shape)
        return outputs

    def compute_output_shape(self, input_shape):
        spatial = self._checked_spatial_sizes(input_shape)
        pooled = tuple(
            conv_output_length(length, window, self.padding, stride)
            for length, window, stride in zip(spatial, self.pool_size, self.strides, strict=True)
        )
        if self.data_format == "channels_last":
            return (input_shape[0], *pooled, input_shape[-1])
        return (input_shape[0], input_shape[1], *pooled)

    def get_config(self):
        return {
            **super().get_config(),
            "pool_size": self.pool_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
        }


@keras.saving.register_keras_serializable(package="keraslayers")
class MaxPooling1D(_Pooling):
    """Max pooling over windows sliding along the steps axis.

    `y[b, i, c] = max(x[b, i * stride + j, c] for j in range(pool_size))` over the real
    entries of each window. "valid" keeps windows that fit: `(steps - pool_size) // stride
    + 1` outputs; "same" pads evenly (the extra step after) to `ceil(steps / stride)` outputs.
    Drop-in for `keras.layers.MaxPooling1D`.

    Args:
        pool_size: positive integer (or a tuple of one), the window length.
        strides: positive integer (or a tuple of one), the step between windows; None
            means `pool_size`.
        padding: "valid" or "same" (case-insensitive).
        data_format: "channels_last" (`(batch, steps, channels)`) or "channels_first"
            (`(batch, channels, steps)`); None means Keras's `image_data_format`.
        name: the layer's name (Keras takes it as a named argument here too).

    Input shape:
        `(batch, steps, channels)`, or `(batch, channels, steps)` for channels_first.

    Output shape:
        `(batch, pooled_steps, channels)`, or `(batch, channels, pooled_steps)`.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> x = np.array([[[1.0], [3.0], [2.0], [5.0], [4.0]]], "float32")
        >>> np.asarray(kl.MaxPooling1D(2)(x)[0, :, 0]).tolist()
        [3.0, 5.0]
    """

    spatial_rank = 1
    reduction = "max"

    def __init__(
        self, pool_size=2, strides=None, padding="valid", data_format=None, name=None,
        **kwargs,
    ):
        super().__init__(pool_size, strides, padding, data_format, name=name, **kwargs)


@keras.saving.register_keras_serializable(package="keraslayers")
class MaxPooling2D(_Pooling):
    """Max pooling over windows sliding along height and width.

    `y[b, i, j, c] = max(x[b, i * sh + p, j * sw + q, c] for p < ph, q < pw)` over the real
    entries of each window. Along each axis "valid" keeps windows that fit,
    `(size - pool) // stride + 1`; "same" pads evenly (the extra row or column after) to
    `ceil(size / stride)`. Drop-in for `keras.layers.MaxPooling2D`.

    Args:
        pool_size: positive integer or tuple of 2, the window `(ph, pw)`.
        strides: positive integer or tuple of 2, the steps `(sh, sw)`; None means `pool_size`.
        padding: "valid" or "same" (case-insensitive).
        data_format: "channels_last" or "channels_first"; None means Keras's
            `image_data_format`.
        name: the layer's name (Keras takes it as a named argument here too).

    Input shape:
        `(batch, height, width, channels)`, or `(batch, channels, height, width)`.

    Output shape:
        `(batch, pooled_height, pooled_width, channels)`, or channels first.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> x = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
        >>> np.asarray(kl.MaxPooling2D(2)(x)[0, :, :, 0]).tolist()
        [[5.0, 7.0], [13.0, 15.0]]
    """

    spatial_rank = 2
    reduction = "max"

    def __init__(
        self, pool_size=(2, 2), strides=None, padding="valid", data_format=None, name=None,
        **kwargs,
    ):
        super().__init__(pool_size, strides, padding, data_format, name=name, **kwargs)


@keras.saving.register_keras_serializable(package="keraslayers")
class MaxPooling3D(_Pooling):
    """Max pooling over windows sliding along depth, height and width.

    The maximum over each `pool_size` window of the real entries; along each axis "valid"
    keeps windows that fit, `(size - pool) // stride + 1`, and "same" pads evenly (the extra
    one after) to `ceil(size / stride)`. Drop-in for `keras.layers.MaxPooling3D`.

    Args:
        pool_size: positive integer or tuple of 3, the window.
        strides: positive integer or tuple of 3, the steps; None means `pool_size`.
        padding: "valid" or "same" (case-insensitive).
        data_format: "channels_last" or "channels_first"; None means Keras's
            `image_data_format`.
        name: the layer's name (Keras takes it as a named argument here too).

    Input shape:
        `(batch, depth, height, width, channels)`, or `(batch, channels, depth, height, width)`.

    Output shape:
        `(batch, pooled_depth, pooled_height, pooled_width, channels)`, or channels first.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> tuple(kl.MaxPooling3D(2)(np.ones((1, 4, 4, 4, 3), "float32")).shape)
        (1, 2, 2, 2, 3)
    """

    spatial_rank = 3
    reduction = "max"

    def __init__(
        self, pool_size=(2, 2, 2), strides=None, padding="valid", data_format=None, name=None,
        **kwargs,
    ):
        super().__init__(pool_size, strides, padding, data_format, name=name, **kwargs)


@keras.saving.register_keras_serializable(package="keraslayers")
class AveragePooling1D(_Pooling):
    """Average pooling over windows sliding along the steps axis.

    `y[b, i, c] = mean(x[b, i * stride + j, c] for j in range(pool_size))`, where with
    "same" padding the mean is over the real (unpadded) entries only, as in Keras.
    "valid" gives `(steps - pool_size) // stride + 1` outputs, "same" `ceil(steps / stride)`.
    Drop-in for `keras.layers.AveragePooling1D` (whose `pool_size` has no default).

    Args:
        pool_size: positive integer (or a tuple of one), the window length.
        strides: positive integer (or a tuple of one), the step between windows; None
            means `pool_size`.
        padding: "valid" or "same" (case-insensitive).
        data_format: "channels_last" (`(batch, steps, channels)`) or "channels_first"
            (`(batch, channels, steps)`); None means Keras's `image_data_format`.
        name: the layer's name (Keras takes it as a named argument here too).

    Input shape:
        `(batch, steps, channels)`, or `(batch, channels, steps)` for channels_first.

    Output shape:
        `(batch, pooled_steps, channels)`, or `(batch, channels, pooled_steps)`.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> x = np.array([[[1.0], [3.0], [2.0]]], "float32")
        >>> np.asarray(kl.AveragePooling1D(2, padding="same")(x)[0, :, 0]).tolist()
        [2.0, 2.0]
    """

    spatial_rank = 1
    reduction = "average"

    def __init__(
        self, pool_size, strides=None, padding="valid", data_format=None, name=None,
        **kwargs,
    ):
        super().__init__(pool_size, strides, padding, data_format, name=name, **kwargs)


@keras.saving.register_keras_serializable(package="keraslayers")
class AveragePooling2D(_Pooling):
    """Average pooling over windows sliding along height and width.

    `y[b, i, j, c] = mean(x[b, i * sh + p, j * sw + q, c] for p < ph, q < pw)`, where with
    "same" padding the mean is over the real (unpadded) entries only, as in Keras. Along
    each axis "valid" gives `(size - pool) // stride + 1`, "same" `ceil(size / stride)`.
    Drop-in for `keras.layers.AveragePooling2D` (whose `pool_size` has no default).

    Args:
        pool_size: positive integer or tuple of 2, the window `(ph, pw)`.
        strides: positive integer or tuple of 2, the steps `(sh, sw)`; None means `pool_size`.
        padding: "valid" or "same" (case-insensitive).
        data_format: "channels_last" or "channels_first"; None means Keras's
            `image_data_format`.
        name: the layer's name (Keras takes it as a named argument here too).

    Input shape:
        `(batch, height, width, channels)`, or `(batch, channels, height, width)`.

    Output shape:
        `(batch, pooled_height, pooled_width, channels)`, or channels first.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> x = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
        >>> np.asarray(kl.AveragePooling2D(2)(x)[0, :, :, 0]).tolist()
        [[2.5, 4.5], [10.5, 12.5]]
    """

    spatial_rank = 2
    reduction = "average"

    def __init__(
        self, pool_size, strides=None, padding="valid", data_format=None, name=None,
        **kwargs,
    ):
        super().__init__(pool_size, strides, padding, data_format, name=name, **kwargs)


@keras.saving.register_keras_serializable(package="keraslayers")
class AveragePooling3D(_Pooling):
    """Average pooling over windows sliding along depth, height and width.

    The mean over each `pool_size` window, over the real (unpadded) entries only with "same"
    padding, as in Keras. Along each axis "valid" gives `(size - pool) // stride + 1`
    outputs, "same" `ceil(size / stride)`. Drop-in for `keras.layers.AveragePooling3D`
    (whose `pool_size` has no default).

    Args:
        pool_size: positive integer or tuple of 3, the window.
        strides: positive integer or tuple of 3, the steps; None means `pool_size`.
        padding: "valid" or "same" (case-insensitive).
        data_format: "channels_last" or "channels_first"; None means Keras's
            `image_data_format`.
        name: the layer's name (Keras takes it as a named argument here too).

    Input shape:
        `(batch, depth, height, width, channels)`, or `(batch, channels, depth, height, width)`.

    Output shape:
        `(batch, pooled_depth, pooled_height, pooled_width, channels)`, or channels first.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> tuple(kl.AveragePooling3D(2, padding="same")(np.ones((1, 3, 3, 3, 2), "float32")).shape)
        (1, 2, 2, 2, 2)
    """

    spatial_rank = 3
    reduction = "average"

    def __init__(
        self, pool_size, strides=None, padding="valid", data_format=None, name=None,
        **kwargs,
    ):
        super().__init__(pool_size, strides, padding, data_format, name=name, **kwargs)


class _GlobalPooling(keras.layers.Layer):
    """Max or average over all spatial axes at once (the six global pooling layers).

    Subclasses set `spatial_rank` (1, 2 or 3) and `reduction` ("max" or "average").
    """

    spatial_rank: int
    reduction: str

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.data_format = normalize_data_format(self, data_format)
        self.keepdims = bool(keepdims)
        # As for `_Pooling`: built now unless a subclass overrides `build`.
        self._build_at_init()

    def _spatial_axes(self) -> tuple[int, ...]:
        first = first_spatial_axis(self.data_format)
        return tuple(range(first, first + self.spatial_rank))

    def call(self, inputs):
        _rank_checked_spatial_sizes(self, inputs.shape, self.spatial_rank, self.data_format)
        reduce = _REDUCTIONS[self.reduction]
        return reduce(inputs, axis=self._spatial_axes(), keepdims=self.keepdims)

    def compute_output_shape(self, input_shape):
        _rank_checked_spatial_sizes(self, input_shape, self.spatial_rank, self.data_format)
        kept = (1,) * self.spatial_rank if self.keepdims else ()
        if self.data_format == "channels_last":
            return (input_shape[0], *kept, input_shape[-1])
        return (input_shape[0], input_shape[1], *kept)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format,
                "keepdims": self.keepdims}


@keras.saving.register_keras_serializable(package="keraslayers")
class GlobalMaxPooling1D(_GlobalPooling):
    """Maximum over the steps axis: `y[b, c] = max_t x[b, t, c]`.

    Drop-in for `keras.layers.GlobalMaxPooling1D`. An incoming mask is dropped, as in Keras.

    Args:
        data_format: "channels_last" (`(batch, steps, channels)`) or "channels_first"
            (`(batch, channels, steps)`); None means Keras's `image_data_format`.
        keepdims: keep the steps axis with size 1.

    Input shape:
        `(batch, steps, channels)`, or `(batch, channels, steps)` for channels_first.

    Output shape:
        `(batch, channels)`; with keepdims `(batch, 1, channels)` or `(batch, channels, 1)`.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> y = kl.GlobalMaxPooling1D()(np.array([[[1.0, 4.0], [3.0, 2.0]]], "float32"))
        >>> np.asarray(y).tolist()
        [[3.0, 4.0]]
    """

    spatial_rank = 1
    reduction = "max"


@keras.saving.register_keras_serializable(package="keraslayers")
class GlobalMaxPooling2D(_GlobalPooling):
    """Maximum over height and width: `y[b, c] = max_{h, w} x[b, h, w, c]`.

    Drop-in for `keras.layers.GlobalMaxPooling2D`.

    Args:
        data_format: "channels_last" or "channels_first"; None means Keras's
            `image_data_format`.
        keepdims: keep the spatial axes with size 1.

    Input shape:
        `(batch, height, width, channels)`, or `(batch, channels, height, width)`.

    Output shape:
        `(batch, channels)`; with keepdims `(batch, 1, 1, channels)` or `(batch, channels, 1, 1)`.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> tuple(kl.GlobalMaxPooling2D(keepdims=True)(np.ones((2, 5, 4, 3), "float32")).shape)
        (2, 1, 1, 3)
    """

    spatial_rank = 2
    reduction = "max"


@keras.saving.register_keras_serializable(package="keraslayers")
class GlobalMaxPooling3D(_GlobalPooling):
    """Maximum over depth, height and width: `y[b, c] = max_{d, h, w} x[b, d, h, w, c]`.

    Drop-in for `keras.layers.GlobalMaxPooling3D`.

    Args:
        data_format: "channels_last" or "channels_first"; None means Keras's
            `image_data_format`.
        keepdims: keep the spatial axes with size 1.

    Input shape:
        `(batch, depth, height, width, channels)`, or `(batch, channels, depth, height, width)`.

    Output shape:
        `(batch, channels)`; with keepdims `(batch, 1, 1, 1, channels)` or channels first.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> tuple(kl.GlobalMaxPooling3D()(np.ones((2, 3, 4, 5, 6), "float32")).shape)
        (2, 6)
    """

    spatial_rank = 3
    reduction = "max"


@keras.saving.register_keras_serializable(package="keraslayers")
class GlobalAveragePooling1D(_GlobalPooling):
    """Mean over the steps axis, skipping masked steps.

    `y[b, c] = sum_t m[b, t] x[b, t, c] / sum_t m[b, t]`; without a mask, `m` is all ones.
    A sample whose steps are all masked gives 0 / 0 = NaN, as in Keras. The output carries no
    mask. Drop-in for `keras.layers.GlobalAveragePooling1D`.

    Args:
        data_format: "channels_last" (`(batch, steps, channels)`) or "channels_first"
            (`(batch, channels, steps)`); None means Keras's `image_data_format`.
        keepdims: keep the steps axis with size 1.

    Call arguments:
        inputs: the sequence.
        mask: optional boolean `(batch, steps)`, True for the steps to average (filled in
            by Keras from an upstream layer such as `Embedding(mask_zero=True)`).

    Input shape:
        `(batch, steps, channels)`, or `(batch, channels, steps)` for channels_first.

    Output shape:
        `(batch, channels)`; with keepdims `(batch, 1, channels)` or `(batch, channels, 1)`.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> x = np.array([[[1.0], [3.0], [8.0]]], "float32")
        >>> y = kl.GlobalAveragePooling1D()(x, mask=np.array([[True, True, False]]))
        >>> np.asarray(y).tolist()
        [[2.0]]
    """

    spatial_rank = 1
    reduction = "average"

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(data_format=data_format, keepdims=keepdims, **kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is None:
            return super().call(inputs)
        _rank_checked_spatial_sizes(self, inputs.shape, self.spatial_rank, self.data_format)
        (steps_axis,) = self._spatial_axes()
        # (batch, steps) -> (batch, steps, 1) or (batch, 1, steps): broadcast over channels.
        keep = ops.expand_dims(ops.cast(mask, "bool"), -1 if steps_axis == 1 else 1)
        total = ops.sum(ops.where(keep, inputs, 0), axis=steps_axis, keepdims=self.keepdims)
        count = ops.sum(ops.cast(keep, inputs.dtype), axis=steps_axis, keepdims=self.keepdims)
        return total / count

    def compute_mask(self, inputs, mask=None):
        return None


@keras.saving.register_keras_serializable(package="keraslayers")
class GlobalAveragePooling2D(_GlobalPooling):
    """Mean over height and width: `y[b, c] = mean_{h, w} x[b, h, w, c]`.

    Drop-in for `keras.layers.GlobalAveragePooling2D`.

    Args:
        data_format: "channels_last" or "channels_first"; None means Keras's
            `image_data_format`.
        keepdims: keep the spatial axes with size 1.

    Input shape:
        `(batch, height, width, channels)`, or `(batch, channels, height, width)`.

    Output shape:
        `(batch, channels)`; with keepdims `(batch, 1, 1, channels)` or `(batch, channels, 1, 1)`.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> tuple(kl.GlobalAveragePooling2D()(np.ones((2, 5, 4, 3), "float32")).shape)
        (2, 3)
    """

    spatial_rank = 2
    reduction = "average"


@keras.saving.register_keras_serializable(package="keraslayers")
class GlobalAveragePooling3D(_GlobalPooling):
    """Mean over depth, height and width: `y[b, c] = mean_{d, h, w} x[b, d, h, w, c]`.

    Drop-in for `keras.layers.GlobalAveragePooling3D`.

    Args:
        data_format: "channels_last" or "channels_first"; None means Keras's
            `image_data_format`.
        keepdims: keep the spatial axes with size 1.

    Input shape:
        `(batch, depth, height, width, channels)`, or `(batch, channels, depth, height, width)`.

    Output shape:
        `(batch, channels)`; with keepdims `(batch, 1, 1, 1, channels)` or channels first.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> y = kl.GlobalAveragePooling3D(data_format="channels_first")(
        ...     np.ones((2, 6, 3, 4, 5), "float32"))
        >>> tuple(y.shape)
        (2, 6)
    """

    spatial_rank = 3
    reduction = "average"


# --- adaptive pooling -------------------------------------------------------------------------


def adaptive_windows(length: int, size: int) -> list[tuple[int, int]]:
    """`(start, end)` of each of `size` windows over `length` positions, as Keras and torch
    take them: `start = floor(i * length / size)`, `end = ceil((i + 1) * length / size)`."""
    return [((i * length) // size, -(-(i + 1) * length // size)) for i in range(size)]


def _adaptive_output_size(cls_name: str, output_size, rank: int) -> tuple:
    """`output_size` as a tuple of `rank` sizes, refused as Keras refuses it: TypeError for
    anything but an int or a tuple or list of `rank` (ValueError for a 1D tuple or list of
    another length, as Keras's 1D layers)."""
    if isinstance(output_size, int):
        return (output_size,) * rank
    if isinstance(output_size, (tuple, list)):
        if len(output_size) == rank:
            return tuple(output_size)
        if rank == 1:
            raise ValueError(
                f"{cls_name}: `output_size` must be an integer or a tuple of 1 integer, "
                f"received output_size={output_size!r} (length {len(output_size)})."
            )
    names = ", ".join(_SPATIAL_AXES_NAMES[rank])
    raise TypeError(
        f"{cls_name}: `output_size` must be an integer or a ({names}) tuple of {rank} "
        f"integer(s), received output_size={output_size!r} of type {type(output_size).__name__}."
    )


# Adaptive pooling by (backend, device kind), through `formulation.choose`; elsewhere the
# reshape-and-reduce and gather formulation of `_AdaptivePooling.call`, which ran faster than
# Keras's ops on this project's CPU (see the class). "torch_kernels": on torch's CPU, when
# every window has the same size (a multiple) and the input is channels-last 1D or 2D,
# torch's channels-last pooling kernels on a channels-first view, where the reshape's
# amax/mean backward was slower than Keras's adaptive_max_pool2d (0.6x in training):
# AdaptiveMax/AveragePooling2D(7) on 16x56x56x64, ours/Keras's, predict/train: 2.3x/1.2x and
# 2.1x/2.3x (the reshape: 0.83x/0.56x and 1.25x/1.18x). "pooling_ops": on TensorFlow's CPU,
# windows of one size as Keras's max_pool/average_pool with strides = pool_size, in the
# input's layout: 6.6x/4.7x and 6.2x/4.2x Keras's (the reshape: 0.90x/1.02x, 0.93x/2.15x).
# JAX keeps the reshape: 6.1x/10.5x and 2.7x/4.3x. (`klayers bench --custom`, busy machine.)
ADAPTIVE_POOLING_FORMULATIONS = {("torch", "cpu"): "torch_kernels",
                                 ("tensorflow", "cpu"): "pooling_ops"}


class _AdaptivePooling(keras.layers.Layer):
    """Max or average over `output_size` windows per spatial axis, whatever the input's size.

    Subclasses set `spatial_rank` and `reduction`. Window `i` of an axis of length `L` pooled
    to `n` covers `[floor(i L / n), ceil((i + 1) L / n))`, as Keras's and torch's. Max and mean
    over a box are separable by axis, so each axis is pooled on its own: the axes whose length
    is a multiple of their output size all in one reshape and reduction (windows of equal
    size, side by side), the others by gathering each window's positions (padded to the
    largest window by repeating its last position, weighted zero in the mean) and reducing.
    On this project's CPU that ran 1.6-21x faster than Keras's ops on JAX and TensorFlow
    (Keras's two pooled copies and gather do more work); `ADAPTIVE_POOLING_FORMULATIONS`
    names where another formulation ran faster, with the measurements.
    """

    spatial_rank: int
    reduction: str

    def __init__(self, output_size, data_format=None, **kwargs):
        # Checked before Layer.__init__, in Keras's order: output_size, then data_format.
        output_size = _adaptive_output_size(type(self).__name__, output_size, self.spatial_rank)
        super().__init__(**kwargs)
        self.output_size = output_size
        # As Keras's adaptive layers: no lower-casing here, unlike the windowed ones.
        self.data_format = data_format or keras.config.image_data_format()
        if self.data_format not in ("channels_first", "channels_last"):
            raise ValueError(
                f"{describe(self)}: `data_format` must be 'channels_last' or "
                f"'channels_first', received data_format={self.data_format!r}."
            )
        # Not built here: Keras's adaptive layers are built at their first call.

    def compute_output_shape(self, input_shape):
        if self.data_format == "channels_last":
            return (input_shape[0], *self.output_size, input_shape[-1])
        return (input_shape[0], input_shape[1], *self.output_size)

    def call(self, inputs):
        rank = self.spatial_rank
        spatial = _rank_checked_spatial_sizes(self, inputs.shape, rank, self.data_format)
        if None in spatial:
            raise ValueError(
                f"{describe(self)}: adaptive pooling needs known spatial sizes, received an "
                f"input of shape {tuple(inputs.shape)}."
            )
        first = first_spatial_axis(self.data_format)
        shape = list(inputs.shape)
        shape[0] = -1
        x = inputs
        even = [length % size == 0 for length, size in zip(spatial, self.output_size,
                                                           strict=True)]
        chosen = formulation.choose("adaptive_pooling", ADAPTIVE_POOLING_FORMULATIONS)
        if chosen == "torch_kernels" and rank == 3:
            # Keras's own ops (torch's adaptive_max_pool3d / adaptive_avg_pool3d): the
            # reshape's amax ran 0.75x/0.59x of it, predict/train, AdaptiveMaxPooling3D(4) on
            # 16x16x16x16x32; its mean 0.63x/0.92x and 0.81x/1.03x, AdaptiveAveragePooling3D(4)
            # on 8x8x8x16 and 16x16x16x32 (run of record 2026-12-07).
            if self.reduction == "max":
                return ops.adaptive_max_pool(inputs, self.output_size, self.data_format)
            return ops.adaptive_average_pool(inputs, self.output_size, self.data_format)
        if (all(even) and chosen == "torch_kernels" and rank < 3
                and self.data_format == "channels_last"):
            return self._pool_evenly_with_torch_kernels(inputs, spatial)
        if all(even) and chosen == "pooling_ops":
            windows = tuple(length // size for length, size in
                            zip(spatial, self.output_size, strict=True))
            pool = ops.max_pool if self.reduction == "max" else ops.average_pool
            return pool(inputs, pool_size=windows, strides=windows, padding="valid",
                        data_format=self.data_format)
        if any(even):
            # (batch, [channels,] n0, L0 / n0, L1, n2, L2 / n2, ...): reduce the window axes.
            split, window_axes = shape[:first], []
            for length, size, is_even in zip(spatial, self.output_size, even, strict=True):
                if is_even:
                    split += [size, length // size]
                    window_axes.append(len(split) - 1)
                else:
                    split.append(length)
            split += shape[first + rank:]
            x = _REDUCTIONS[self.reduction](ops.reshape(x, split), axis=window_axes)
        for j, (length, size, is_even) in enumerate(
                zip(spatial, self.output_size, even, strict=True)):
            if not is_even:
                x = self._pool_axis_by_gather(x, first + j, length, size)
        return x

    def _pool_evenly_with_torch_kernels(self, inputs, spatial):
        """Windows of `L / n` side by side are windowed pooling with strides = pool_size: run
        as torch's channels-last 2D kernels on a channels-first view (1D over a unit width
        axis), as `_Pooling._pool_in_channels_first_view`."""
        x = inputs if self.spatial_rank == 2 else ops.expand_dims(inputs, 2)
        windows = tuple(length // size for length, size in
                        zip(spatial, self.output_size, strict=True))
        windows = windows if self.spatial_rank == 2 else (*windows, 1)
        pool = ops.max_pool if self.reduction == "max" else ops.average_pool
        pooled = ops.transpose(
            pool(ops.transpose(x, (0, 3, 1, 2)), pool_size=windows, strides=windows,
                 padding="valid", data_format="channels_first"), (0, 2, 3, 1))
        return pooled if self.spatial_rank == 2 else ops.squeeze(pooled, 2)

    def _pool_axis_by_gather(self, x, axis, length, size):
        """Pools `axis` of `x` (length `length`) to `size` windows of unequal sizes."""
        windows = adaptive_windows(length, size)
        widest = max(end - start for start, end in windows)
        indices = [min(start + k, end - 1) for start, end in windows for k in range(widest)]
        gathered = ops.take(x, ops.convert_to_tensor(indices, "int32"), axis=axis)
        shape = list(x.shape)
        shape[0] = -1
        gathered = ops.reshape(gathered, (*shape[:axis], size, widest, *shape[axis + 1:]))
        if self.reduction == "max":
            return ops.max(gathered, axis=axis + 1)
        weights = [[1.0 / (end - start) if start + k < end else 0.0 for k in range(widest)]
                   for start, end in windows]
        weights = ops.reshape(ops.convert_to_tensor(weights, x.dtype),
                              (size, widest) + (1,) * (len(shape) - axis - 1))
        return ops.sum(gathered * weights, axis=axis + 1)

    def get_config(self):
        return {**super().get_config(), "output_size": self.output_size,
                "data_format": self.data_format}


@keras.saving.register_keras_serializable(package="keraslayers")
class AdaptiveAveragePooling1D(_AdaptivePooling):
    """Mean over `output_size` windows along steps, whatever the input's size.

    Drop-in for `keras.layers.AdaptiveAveragePooling1D`: window `i` of an axis of length `L`
    pooled to `n` covers positions `floor(i L / n)` to `ceil((i + 1) L / n) - 1`, as
    Keras's (and torch's).

    Args:
        output_size: an integer, or a
            tuple or list of 1 integer: the output's spatial sizes.
        data_format: "channels_last" (`(batch, steps, channels)`) or "channels_first"
            (`(batch, channels, steps)`); None means Keras's `image_data_format`.

    Input shape:
        `(batch, steps, channels)`, or `(batch, channels, steps)`
        for channels_first; the spatial sizes must be known.

    Output shape:
        `(batch, output_steps, channels)`,
        or `(batch, channels, output_steps)`.

    Example:
        >>> import numpy as np
        >>> from keraslayers.layers.pooling import AdaptiveAveragePooling1D
        >>> x = np.arange(5, dtype="float32").reshape(1, 5, 1)
        >>> y = AdaptiveAveragePooling1D(output_size=3)(x)  # windows [0, 2), [1, 4), [3, 5)
        >>> np.asarray(y)[0, :, 0].tolist()
        [0.5, 2.0, 3.5]
    """

    spatial_rank = 1
    reduction = "average"


@keras.saving.register_keras_serializable(package="keraslayers")
class AdaptiveAveragePooling2D(_AdaptivePooling):
    """Mean over `output_size` windows along height and width, whatever the input's size.

    Drop-in for `keras.layers.AdaptiveAveragePooling2D`: window `i` of an axis of length `L`
    pooled to `n` covers positions `floor(i L / n)` to `ceil((i + 1) L / n) - 1`, as
    Keras's (and torch's).

    Args:
        output_size: an integer (both axes), or a (height, width)
            tuple or list: the output's spatial sizes.
        data_format: "channels_last" (`(batch, height, width, channels)`) or "channels_first"
            (`(batch, channels, height, width)`); None means Keras's `image_data_format`.

    Input shape:
        `(batch, height, width, channels)`, or `(batch, channels, height, width)`
        for channels_first; the spatial sizes must be known.

    Output shape:
        `(batch, output_height, output_width, channels)`,
        or `(batch, channels, output_height, output_width)`.

    Example:
        >>> import numpy as np
        >>> from keraslayers.layers.pooling import AdaptiveAveragePooling2D
        >>> x = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
        >>> y = AdaptiveAveragePooling2D(output_size=2)(x)
        >>> np.asarray(y)[0, :, :, 0].tolist()
        [[2.5, 4.5], [10.5, 12.5]]
    """

    spatial_rank = 2
    reduction = "average"


@keras.saving.register_keras_serializable(package="keraslayers")
class AdaptiveAveragePooling3D(_AdaptivePooling):
    """Mean over `output_size` windows along depth, height and width, whatever the input's size.

    Drop-in for `keras.layers.AdaptiveAveragePooling3D`: window `i` of an axis of length `L`
    pooled to `n` covers positions `floor(i L / n)` to `ceil((i + 1) L / n) - 1`, as
    Keras's (and torch's).

    Args:
        output_size: an integer (all three axes), or a (depth, height, width)
            tuple or list: the output's spatial sizes.
        data_format: "channels_last" (`(batch, depth, height, width, channels)`) or "channels_first"
            (`(batch, channels, depth, height, width)`); None means Keras's `image_data_format`.

    Input shape:
        `(batch, depth, height, width, channels)`, or `(batch, channels, depth, height, width)`
        for channels_first; the spatial sizes must be known.

    Output shape:
        `(batch, output_depth, output_height, output_width, channels)`,
        or `(batch, channels, output_depth, output_height, output_width)`.

    Example:
        >>> import numpy as np
        >>> from keraslayers.layers.pooling import AdaptiveAveragePooling3D
        >>> x = np.random.rand(1, 6, 7, 8, 3).astype("float32")
        >>> tuple(AdaptiveAveragePooling3D(output_size=(3, 2, 4))(x).shape)
        (1, 3, 2, 4, 3)
    """

    spatial_rank = 3
    reduction = "average"


@keras.saving.register_keras_serializable(package="keraslayers")
class AdaptiveMaxPooling1D(_AdaptivePooling):
    """Maximum over `output_size` windows along steps, whatever the input's size.

    Drop-in for `keras.layers.AdaptiveMaxPooling1D`: window `i` of an axis of length `L`
    pooled to `n` covers positions `floor(i L / n)` to `ceil((i + 1) L / n) - 1`, as
    Keras's (and torch's).

    Args:
        output_size: an integer, or a
            tuple or list of 1 integer: the output's spatial sizes.
        data_format: "channels_last" (`(batch, steps, channels)`) or "channels_first"
            (`(batch, channels, steps)`); None means Keras's `image_data_format`.

    Input shape:
        `(batch, steps, channels)`, or `(batch, channels, steps)`
        for channels_first; the spatial sizes must be known.

    Output shape:
        `(batch, output_steps, channels)`,
        or `(batch, channels, output_steps)`.

    Example:
        >>> import numpy as np
        >>> from keraslayers.layers.pooling import AdaptiveMaxPooling1D
        >>> x = np.arange(5, dtype="float32").reshape(1, 5, 1)
        >>> y = AdaptiveMaxPooling1D(output_size=3)(x)  # windows [0, 2), [1, 4), [3, 5)
        >>> np.asarray(y)[0, :, 0].tolist()
        [1.0, 3.0, 4.0]
    """

    spatial_rank = 1
    reduction = "max"


@keras.saving.register_keras_serializable(package="keraslayers")
class AdaptiveMaxPooling2D(_AdaptivePooling):
    """Maximum over `output_size` windows along height and width, whatever the input's size.

    Drop-in for `keras.layers.AdaptiveMaxPooling2D`: window `i` of an axis of length `L`
    pooled to `n` covers positions `floor(i L / n)` to `ceil((i + 1) L / n) - 1`, as
    Keras's (and torch's).

    Args:
        output_size: an integer (both axes), or a (height, width)
            tuple or list: the output's spatial sizes.
        data_format: "channels_last" (`(batch, height, width, channels)`) or "channels_first"
            (`(batch, channels, height, width)`); None means Keras's `image_data_format`.

    Input shape:
        `(batch, height, width, channels)`, or `(batch, channels, height, width)`
        for channels_first; the spatial sizes must be known.

    Output shape:
        `(batch, output_height, output_width, channels)`,
        or `(batch, channels, output_height, output_width)`.

    Example:
        >>> import numpy as np
        >>> from keraslayers.layers.pooling import AdaptiveMaxPooling2D
        >>> x = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
        >>> y = AdaptiveMaxPooling2D(output_size=2)(x)
        >>> np.asarray(y)[0, :, :, 0].tolist()
        [[5.0, 7.0], [13.0, 15.0]]
    """

    spatial_rank = 2
    reduction = "max"


@keras.saving.register_keras_serializable(package="keraslayers")
class AdaptiveMaxPooling3D(_AdaptivePooling):
    """Maximum over `output_size` windows along depth, height and width, whatever the input's size.

    Drop-in for `keras.layers.AdaptiveMaxPooling3D`: window `i` of an axis of length `L`
    pooled to `n` covers positions `floor(i L / n)` to `ceil((i + 1) L / n) - 1`, as
    Keras's (and torch's).

    Args:
        output_size: an integer (all three axes), or a (depth, height, width)
            tuple or list: the output's spatial sizes.
        data_format: "channels_last" (`(batch, depth, height, width, channels)`) or "channels_first"
            (`(batch, channels, depth, height, width)`); None means Keras's `image_data_format`.

    Input shape:
        `(batch, depth, height, width, channels)`, or `(batch, channels, depth, height, width)`
        for channels_first; the spatial sizes must be known.

    Output shape:
        `(batch, output_depth, output_height, output_width, channels)`,
        or `(batch, channels, output_depth, output_height, output_width)`.

    Example:
        >>> import numpy as np
        >>> from keraslayers.layers.pooling import AdaptiveMaxPooling3D
        >>> x = np.random.rand(1, 6, 7, 8, 3).astype("float32")
        >>> tuple(AdaptiveMaxPooling3D(output_size=(3, 2, 4))(x).shape)
        (1, 3, 2, 4, 3)
    """

    spatial_rank = 3
    reduction = "max"
