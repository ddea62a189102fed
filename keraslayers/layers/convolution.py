"""Convolutions: Conv1D/2D/3D, DepthwiseConv1D/2D, SeparableConv1D/2D, Conv1D/2D/3DTranspose.

Every layer here slides a window over the spatial axes of a `(batch, *spatial, channels)` input
(`(batch, channels, *spatial)` with `data_format="channels_first"`). What they share (the window
arguments, the channel axis, output sizes, bias and activation) lives in `_Convolution`; sizes
come from `conv_arithmetic`, so pooling and convolution agree on them.
"""

from __future__ import annotations

import itertools
import math
import numbers

import keras
from keras import activations, constraints, initializers, ops, regularizers

from keraslayers.layers import formulation, validation
from keraslayers.layers.conv_arithmetic import (
    check_window_fits,
    conv_output_length,
    deconv_crop,
    deconv_output_length,
    effective_window,
    first_spatial_axis,
    normalize_data_format,
    normalize_padding,
    normalize_tuple,
    padded_for_taps,
    phase_decomposition,
    spatial_sizes,
    tap_slices,
    to_channels_first_axes,
    to_channels_last_axes,
)
from keraslayers.layers.lora import LoRA, adapted_weight

# Formulations by (backend, device kind), read through `formulation.choose`; a pair not listed
# (a GPU or TPU: nobody measured there) runs Keras's own op, `formulation.KERAS`. The figures are
# from the commits named and benchmarks/README.md (`make bench-standard`, that is `klayers bench
# --suite standard --baseline keras,native`, on this project's CPU machine).
DEPTHWISE_FORMULATIONS = {
    # "taps", `_depthwise_by_taps`: XLA's CPU grouped convolution, and its gradients above all,
    # ran 10 to 50 times slower (3x3 "same" on 32x32x32x32 and 16x56x56x128; commit 3ab17e5).
    # Standard run: DepthwiseConv2D 21-38x predict, 6-10x train; SeparableConv2D 6-9x, 2x.
    ("jax", "cpu"): "taps",
}
DEPTHWISE1D_FORMULATIONS = {
    # "taps", `_depthwise_by_taps` over the one time axis: XLA's CPU grouped 1D convolution
    # (Keras's op) and the same as a 2D one over a unit axis ("unit_axis") ran 15-50x and 8-9x
    # slower (benchmarks/probes/depthwise_conv1d.py, batch 32 on 256x64, 3 "same": Keras 23 ms
    # predict / 30 ms train; unit_axis 12.9 / 16.3 ms; taps 0.70 / 2.07 ms; "sliced_taps"
    # 0.45 / 2.84 ms, slower in training). SeparableConv1D: taps 16x / 5.8x; its pointwise
    # half as a matmul instead of a 1x1 convolution lost in training (7.5 against 5.2 ms).
    ("jax", "cpu"): "taps",
    # torch: none, Keras's op. Keras's torch layers ran 28k/7.7k samples/s (DepthwiseConv1D,
    # 256x64) in one run and 667/203 in another on the busy 2-core machine; against them in
    # the same run "sliced_taps" ran 1.13x/1.15x there but 0.51x/0.92x on 1024x128, and
    # 0.74-0.86x for SeparableConv1D: no formulation won everywhere. TensorFlow: none, its
    # 1D op is already the fast 2D depthwise kernel over a unit axis.
}
CONV3D_FORMULATIONS = {
    # "depth_folded", `_Conv._depth_folded_convolution`: XLA's CPU 3D convolution, and its
    # gradients above all, ran 2 to 9 times slower for every "same" kernel measured and for
    # "valid" ones up to 3 wide (commit 3ab17e5; standard run: Conv3D 2.3-3.6x). It lost for a
    # "valid" 5x5x5 kernel on 16 channels (0.7x) and a 1x1x1 one at inference (0.7x):
    # `conv3d_formulation` keeps Keras's op there.
    ("jax", "cpu"): "depth_folded",
}
CONV_TRANSPOSE_FORMULATIONS = {
    # "phases", `_ConvTranspose._phase_convolution`: XLA's CPU transposed convolution, and
    # its gradients above all, ran 4 to 13 times slower than one stride-1 convolution of the
    # output phases (3x3, stride 2 on 16x28x28x64; commit 0a56f81). Standard run, training:
    # Conv1DTranspose 4.6-10x, Conv2DTranspose 3.7x and 5.8x, Conv3DTranspose 13-20x. At
    # inference in 2D, XLA's own op was faster (the phases at 0.74x and 0.69x on 32x16x16x32
    # and 16x28x28x64; commit 3c016de): `conv_transpose_formulation` keeps Keras's op there.
    ("jax", "cpu"): "phases",
    # "full_then_window", `_ConvTranspose._full_then_window`, channels-last inputs through a
    # channels-first view: Keras's torch backend copies them into contiguous channels-first
    # tensors, where torch's CPU kernels are slow (3x3, stride 2 on 16x28x28x64: 55 ms with
    # the view, against 134 ms; commit 0a56f81).
    ("torch", "cpu"): "full_then_window",
}


def depthwise_formulation(rank: int = 2) -> str:
    """The depthwise convolutions' choice: `DEPTHWISE_FORMULATIONS`' ("taps" or Keras's op)
    in 2D, `DEPTHWISE1D_FORMULATIONS`' in 1D (family "depthwise1d")."""
    if rank == 1:
        return formulation.choose("depthwise1d", DEPTHWISE1D_FORMULATIONS)
    return formulation.choose("depthwise", DEPTHWISE_FORMULATIONS)


def conv3d_formulation(kernel_size, padding) -> str:
    """`CONV3D_FORMULATIONS`' choice, Keras's op for the kernels where folding lost."""
    chosen = formulation.choose("conv3d", CONV3D_FORMULATIONS)
    if chosen == "depth_folded" and (
        math.prod(kernel_size) == 1 or (padding != "same" and max(kernel_size) > 3)
    ):
        return formulation.KERAS
    return chosen


def conv_transpose_formulation(rank, training) -> str:
    """`CONV_TRANSPOSE_FORMULATIONS`' choice, Keras's op for a 2D "phases" inference."""
    chosen = formulation.choose("conv_transpose", CONV_TRANSPOSE_FORMULATIONS)
    if chosen == "phases" and rank == 2 and not training:
        return formulation.KERAS
    return chosen


def _depthwise_by_taps(inputs, kernel, strides, padding, dilation_rate, data_format,
                       scale_first=True):
    """A depthwise convolution as a sum over the kernel's taps: the padded input scaled by the
    tap's per-channel weights, then the entries that tap meets (`conv_arithmetic.tap_slices`).

    Any rank: `kernel` is `(*kernel_size, channels, multiplier)`. Elementwise work only:
    XLA's CPU grouped convolution, and its gradients above all, ran 10 to 50 times slower than
    this (3x3 "same" on 32x32x32x32 and 16x56x56x128). `scale_first=False` slices first and
    scales the output-sized slices: less work where nothing fuses the two (torch's eager ops).
    """
    rank = len(kernel.shape) - 2
    first = first_spatial_axis(data_format)
    inputs, axis_slices = padded_for_taps(inputs, kernel.shape[:rank], padding, strides,
                                          dilation_rate, data_format)
    multiplier = kernel.shape[-1]
    if multiplier > 1:
        # Output channel `c * multiplier + m` reads input channel c: repeat each channel, in
        # place of a trailing (channels, multiplier) pair of axes, which made XLA's kernel
        # gradient 15 times slower even with one multiplier.
        inputs = ops.repeat(inputs, multiplier, axis=-1 if data_format == "channels_last" else 1)
    # (channels * multiplier,), or (channels * multiplier, 1, ..) against channels-first inputs.
    tap_shape = (-1,) if data_format == "channels_last" else (-1,) + (1,) * rank
    outputs = 0
    for taps in itertools.product(*(enumerate(slices) for slices in axis_slices)):
        index = [slice(None)] * (rank + 2)
        for axis, (_, entries) in enumerate(taps, start=first):
            index[axis] = entries
        weights = ops.reshape(kernel[tuple(t for t, _ in taps)], tap_shape)
        if scale_first:
            # Scaling before slicing (XLA fuses the two) makes each tap's kernel gradient a
            # reduction over the whole padded input, not over a strided slice of it: 3 to 20
            # times faster on XLA's CPU.
            outputs = outputs + (inputs * weights)[tuple(index)]
        else:
            outputs = outputs + inputs[tuple(index)] * weights
    return outputs


def _depthwise_with_unit_axis(inputs, kernel, strides, padding, dilation_rate, data_format):
    """A 1D depthwise convolution as a 2D one over `(1, steps)`: Keras's 2D op, whose backends
    have faster kernels for it than for the 1D case (TensorFlow's own 1D op does this)."""
    axis = first_spatial_axis(data_format)
    outputs = ops.depthwise_conv(
        ops.expand_dims(inputs, axis),  # (batch, 1, steps, channels), or channels first
        ops.expand_dims(kernel, 0),  # (1, kernel_size, channels, multiplier)
        strides=(1, *strides),
        padding=padding,
        data_format=data_format,
        dilation_rate=(1, *dilation_rate),
    )
    return ops.squeeze(outputs, axis)


class _Convolution(keras.layers.Layer):
    """The window arguments, channel axis, bias and activation every convolution shares.

    Subclasses set `rank` (the number of spatial axes), create their weights in
    `_create_weights(channels)`, and say how many channels they output and how long each
    spatial axis becomes.
    """

    rank = 2
    paddings = ("valid", "same")

    def __init__(
        self,
        kernel_size,
        strides,
        padding,
        data_format,
        dilation_rate,
        activation,
        use_bias,
        bias_initializer,
        bias_regularizer,
        activity_regularizer,
        bias_constraint,
        **kwargs,
    ):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.kernel_size = normalize_tuple(self, kernel_size, self.rank, "kernel_size")
        self.strides = normalize_tuple(self, strides, self.rank, "strides")
        self.padding = normalize_padding(self, padding, self.paddings)
        self.data_format = normalize_data_format(self, data_format)
        self.dilation_rate = normalize_tuple(self, dilation_rate, self.rank, "dilation_rate")
        self.activation = validation.activation(self, activation)
        self.use_bias = bool(use_bias)
        self.bias_initializer = initializers.get(bias_initializer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.bias_constraint = constraints.get(bias_constraint)
        self._channel_axis = -1 if self.data_format == "channels_last" else 1
        validation.expect_input_spec(self, rank=self.rank + 2)

    def _forbid_strides_with_dilation(self):
        """TensorFlow's convolutions, and so Keras's layers, cannot stride a dilated kernel."""
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(
                f"{validation.describe(self)}: `strides` > 1 cannot be combined with "
                f"`dilation_rate` > 1, received strides={self.strides} and "
                f"dilation_rate={self.dilation_rate}."
            )

    def build(self, input_shape):
        if len(input_shape) != self.rank + 2:
            raise ValueError(
                f"{validation.describe(self)}: expected an input of rank {self.rank + 2}, "
                f"received shape {tuple(input_shape)} (rank {len(input_shape)})."
            )
        (channels,) = validation.known_sizes(
            self, input_shape, [self._channel_axis % len(input_shape)]
        )
        self._output_spatial_shape(spatial_sizes(input_shape, self.data_format))
        self._create_weights(channels)
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(self._output_channels(channels),),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        validation.expect_input_spec(
            self, rank=self.rank + 2, axes_sizes={self._channel_axis: channels}
        )

    def _create_weights(self, channels: int) -> None:
        raise NotImplementedError

    def _output_channels(self, channels):
        return self.filters

    def _knows_output_sizes(self, input_shape) -> bool:
        """Whether every output size is known (and the input fits the window): formulations
        that slice taps or phases statically need them."""
        return None not in self._output_spatial_shape(spatial_sizes(input_shape, self.data_format))

    def _output_spatial_shape(self, spatial_shape) -> tuple:
        """Forward convolutions; a "valid" kernel must fit in the input."""
        windows = [
            effective_window(k, d)
            for k, d in zip(self.kernel_size, self.dilation_rate, strict=True)
        ]
        check_window_fits(self, spatial_shape, windows, self.padding)
        return tuple(
            conv_output_length(n, k, self.padding, s, d)
            for n, k, s, d in zip(
                spatial_shape, self.kernel_size, self.strides, self.dilation_rate, strict=True
            )
        )

    def compute_output_shape(self, input_shape):
        channels = input_shape[self._channel_axis]
        output_channels = None if channels is None else self._output_channels(channels)
        spatial = self._output_spatial_shape(spatial_sizes(input_shape, self.data_format))
        if self.data_format == "channels_last":
            return (input_shape[0], *spatial, output_channels)
        return (input_shape[0], output_channels, *spatial)

    def _bias_and_activation(self, outputs):
        if self.bias is not None:
            if self.data_format == "channels_first":
                # (channels,) -> (channels, 1, ..., 1), added as a plain broadcast: Keras's
                # `ops.add` would make it TensorFlow's BiasAdd, which reads the channels off
                # the last axis when that axis has the channels' size, and gives Keras's own
                # layers a wrong bias gradient there (tests/test_convolution.py,
                # `_check_parity_but_bias_gradient`).
                outputs = outputs + ops.reshape(self.bias, (-1,) + (1,) * self.rank)
            else:
                # `ops.add`, as Keras's layers: on TensorFlow a BiasAdd, whose gradient ran
                # 5-12% faster than a broadcast add's in training (DepthwiseConv2D 3x3 on
                # 16x56x56x128: 60-63 ms against 69 ms; the 1D depthwise, separable and
                # transposed convolutions read 0.80x-0.93x of Keras's layer without it).
                outputs = ops.add(outputs, self.bias)
        # `layer.activation = None` after construction means linear, as in Keras.
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def get_config(self):
        return {
            **super().get_config(),
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "activity_regularizer": regularizers.serialize(self.activity_regularizer),
            "bias_constraint": constraints.serialize(self.bias_constraint),
        }


class _Conv(LoRA, _Convolution):
    """N-D convolution (a cross-correlation) with `filters` kernels, optionally in groups.

    LoRA as Keras's convolutions have it: `lora_rank` and `lora_alpha` are keyword arguments
    (Keras takes them through `**kwargs` too), and `enable_lora(rank)` adapts the kernel with
    factors `lora_kernel_a` `(*kernel_size, channels // groups, rank)` and `lora_kernel_b`
    `(rank, filters)`.
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        data_format=None,
        dilation_rate=1,
        groups=1,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        lora_rank = kwargs.pop("lora_rank", None)
        lora_alpha = kwargs.pop("lora_alpha", None)
        super().__init__(
            kernel_size, strides, padding, data_format, dilation_rate, activation, use_bias,
            bias_initializer, bias_regularizer, activity_regularizer, bias_constraint, **kwargs,
        )
        self._init_lora(lora_rank, lora_alpha)
        self.filters = validation.positive_int(self, "filters", filters)
        self.groups = validation.positive_int(self, "groups", groups)
        if self.filters % self.groups:
            raise ValueError(
                f"{validation.describe(self)}: `filters` must be divisible by `groups`, "
                f"received filters={self.filters} and groups={self.groups}."
            )
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self._forbid_strides_with_dilation()

    def _create_weights(self, channels):
        if channels % self.groups:
            raise ValueError(
                f"{validation.describe(self)}: the input's {channels} channels must be "
                f"divisible by groups={self.groups}."
            )
        # Each group of `channels // groups` inputs feeds `filters // groups` outputs; the
        # convolution reads the group count off the kernel's input axis.
        self._kernel = self.add_weight(
            name="kernel",
            shape=(*self.kernel_size, channels // self.groups, self.filters),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )

    def build(self, input_shape):
        super().build(input_shape)
        self.built = True
        self._build_lora()

    kernel = adapted_weight(
        "kernel", "The kernel `(*kernel_size, channels // groups, filters)`, with LoRA's update."
    )

    def call(self, inputs):
        if self._can_fold_depth(inputs.shape) and (
            conv3d_formulation(self.kernel_size, self.padding) == "depth_folded"
        ):
            return self._bias_and_activation(self._depth_folded_convolution(inputs))
        return self._bias_and_activation(self._keras_convolution(inputs))

    def _keras_convolution(self, inputs):
        """`ops.conv`, a "causal" padding as zeros before the start of the time axis."""
        padding = self.padding
        if padding == "causal":
            # Pad the start of the time axis only, so output t sees inputs <= t.
            time_axis = first_spatial_axis(self.data_format)
            widths = [(0, 0)] * 3
            widths[time_axis] = ((self.kernel_size[0] - 1) * self.dilation_rate[0], 0)
            inputs = ops.pad(inputs, widths)
            padding = "valid"
        outputs = ops.conv(
            inputs,
            self.kernel,
            strides=self.strides,
            padding=padding,
            data_format=self.data_format,
            dilation_rate=self.dilation_rate,
        )
        return outputs

    def _can_fold_depth(self, input_shape) -> bool:
        """Whether `_depth_folded_convolution` computes this layer on inputs of this shape:
        channels-last 3D, one group, the sizes known (the taps are sliced statically)."""
        spatial = self._output_spatial_shape(spatial_sizes(input_shape, self.data_format))
        return (
            self.rank == 3 and self.groups == 1 and self.data_format == "channels_last"
            and None not in spatial
        )

    def _depth_folded_convolution(self, inputs):
        """A channels-last 3D convolution as one 2D convolution: the depth taps each output
        depth meets become channels, and the output depths join the batch."""
        (before, after), slices = tap_slices(
            inputs.shape[1], self.kernel_size[0], self.padding, self.strides[0],
            self.dilation_rate[0],
        )
        if before or after:
            inputs = ops.pad(inputs, [(0, 0), (before, after), (0, 0), (0, 0), (0, 0)])
        # (batch, out_depth, height, width, depth_taps * channels), tap-major.
        stacked = ops.concatenate([inputs[:, rows] for rows in slices], axis=-1)
        _, out_depth, height, width, tap_channels = stacked.shape
        # (kd, kh, kw, channels, filters) -> (kh, kw, kd * channels, filters), tap-major too.
        kernel = ops.reshape(
            ops.transpose(self.kernel, (1, 2, 0, 3, 4)), (*self.kernel_size[1:], -1, self.filters)
        )
        outputs = ops.conv(
            ops.reshape(stacked, (-1, height, width, tap_channels)),  # (batch * out_depth, ..)
            kernel,
            strides=self.strides[1:],
            padding=self.padding,
            dilation_rate=self.dilation_rate[1:],
        )
        # (batch * out_depth, out_height, out_width, filters) -> (batch, out_depth, ..)
        return ops.reshape(outputs, (-1, out_depth, *outputs.shape[1:]))

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "groups": self.groups,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            **self._lora_config(),
        }


@keras.saving.register_keras_serializable(package="keraslayers")
class Conv1D(_Conv):
    """1D convolution over time: `outputs[t] = activation(sum_k inputs[t*s + k*d] @ kernel[k] + b)`.

    `s` is the stride, `d` the dilation and `b` the bias. Drop-in for `keras.layers.Conv1D`:
    weights `kernel` `(kernel_size, channels // groups, filters)` and `bias` `(filters,)`.

    Args:
        filters: positive integer, the number of output channels.
        kernel_size: int or tuple of 1 int, the window's length.
        strides: int or tuple of 1 int, the step between windows.
        padding: "valid" (only windows that fit), "same" (zeros around the input) or
            "causal" (zeros before the start only, so output t depends on inputs <= t).
        data_format: "channels_last" (`(batch, steps, channels)`), "channels_first"
            (`(batch, channels, steps)`) or None for Keras's `image_data_format`.
        dilation_rate: int or tuple of 1 int, the spacing between kernel taps; cannot be
            combined with strides > 1.
        groups: positive integer dividing both `filters` and the input channels: each group of
            `channels // groups` inputs has its own `filters // groups` kernels.
        activation: activation name or callable; None for linear.
        use_bias: whether to add a learned bias.
        kernel_initializer, bias_initializer: initializers of the weights.
        kernel_regularizer, bias_regularizer, activity_regularizer: optional regularizers.
        kernel_constraint, bias_constraint: optional constraints.

    Input shape:
        `(batch, steps, channels)`, or `(batch, channels, steps)` with channels_first.

    Output shape:
        `(batch, new_steps, filters)`, or `(batch, filters, new_steps)`: `ceil(steps / stride)`
        for "same" and "causal", `(steps - span) // stride + 1` for "valid", where
        `span = (kernel_size - 1) * dilation_rate + 1`.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> tuple(kl.Conv1D(4, 3, padding="causal")(np.ones((2, 10, 3), "float32")).shape)
        (2, 10, 4)
    """

    rank = 1
    paddings = ("valid", "same", "causal")


@keras.saving.register_keras_serializable(package="keraslayers")
class Conv2D(_Conv):
    """2D convolution over images: each output pixel is `activation(window . kernel + bias)`.

    The window spans `kernel_size` pixels (spaced by `dilation_rate`) and all input channels of
    its group. Drop-in for `keras.layers.Conv2D`: weights `kernel` `(kh, kw, channels // groups,
    filters)` and `bias` `(filters,)`.

    Args:
        filters: positive integer, the number of output channels.
        kernel_size: int or tuple of 2 ints, the window's height and width.
        strides: int or tuple of 2 ints, the step between windows.
        padding: "valid" (only windows that fit) or "same" (zeros around the input, the extra
            one after).
        data_format: "channels_last" (`(batch, height, width, channels)`), "channels_first"
            (`(batch, channels, height, width)`) or None for Keras's `image_data_format`.
        dilation_rate: int or tuple of 2 ints, the spacing between kernel taps; cannot be
            combined with strides > 1.
        groups: positive integer dividing both `filters` and the input channels: each group of
            `channels // groups` inputs has its own `filters // groups` kernels.
        activation: activation name or callable; None for linear.
        use_bias: whether to add a learned bias.
        kernel_initializer, bias_initializer: initializers of the weights.
        kernel_regularizer, bias_regularizer, activity_regularizer: optional regularizers.
        kernel_constraint, bias_constraint: optional constraints.

    Input shape:
        `(batch, height, width, channels)`, or `(batch, channels, height, width)`.

    Output shape:
        `(batch, new_height, new_width, filters)` (or channels first); along each axis
        `ceil(n / stride)` for "same", `(n - span) // stride + 1` for "valid", where
        `span = (kernel - 1) * dilation + 1`.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> layer = kl.Conv2D(4, 3, strides=2, padding="same")
        >>> tuple(layer(np.ones((2, 9, 9, 3), "float32")).shape)
        (2, 5, 5, 4)
    """

    rank = 2

    def __init__(
        self,
        filters,
        kernel_size,
        strides=(1, 1),
        padding="valid",
        data_format=None,
        dilation_rate=(1, 1),
        groups=1,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(
            filters, kernel_size, strides, padding, data_format, dilation_rate, groups,
            activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
            bias_regularizer, activity_regularizer, kernel_constraint, bias_constraint,
            **kwargs,
        )


@keras.saving.register_keras_serializable(package="keraslayers")
class Conv3D(_Conv):
    """3D convolution over volumes: each output voxel is `activation(window . kernel + bias)`.

    Drop-in for `keras.layers.Conv3D`: weights `kernel` `(kd, kh, kw, channels // groups,
    filters)` and `bias` `(filters,)`.

    Args:
        filters: positive integer, the number of output channels.
        kernel_size: int or tuple of 3 ints, the window's depth, height and width.
        strides: int or tuple of 3 ints, the step between windows.
        padding: "valid" (only windows that fit) or "same" (zeros around the input).
        data_format: "channels_last" (`(batch, d1, d2, d3, channels)`), "channels_first"
            (`(batch, channels, d1, d2, d3)`) or None for Keras's `image_data_format`.
        dilation_rate: int or tuple of 3 ints, the spacing between kernel taps; cannot be
            combined with strides > 1.
        groups: positive integer dividing both `filters` and the input channels.
        activation: activation name or callable; None for linear.
        use_bias: whether to add a learned bias.
        kernel_initializer, bias_initializer: initializers of the weights.
        kernel_regularizer, bias_regularizer, activity_regularizer: optional regularizers.
        kernel_constraint, bias_constraint: optional constraints.

    Input shape:
        `(batch, d1, d2, d3, channels)`, or `(batch, channels, d1, d2, d3)`.

    Output shape:
        `(batch, new_d1, new_d2, new_d3, filters)` (or channels first), each size as for
        `Conv2D`.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> tuple(kl.Conv3D(4, 2)(np.ones((2, 4, 5, 6, 3), "float32")).shape)
        (2, 3, 4, 5, 4)
    """

    rank = 3

    def __init__(
        self,
        filters,
        kernel_size,
        strides=(1, 1, 1),
        padding="valid",
        data_format=None,
        dilation_rate=(1, 1, 1),
        groups=1,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(
            filters, kernel_size, strides, padding, data_format, dilation_rate, groups,
            activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
            bias_regularizer, activity_regularizer, kernel_constraint, bias_constraint,
            **kwargs,
        )


class _DepthwiseConvolution(_Convolution):
    """What depthwise and separable convolutions share: `depth_multiplier` kernels per input
    channel, their initializer, regularizer and constraint, and the depthwise computation by
    the formulation `depthwise_formulation(rank)` chooses."""

    def __init__(
        self,
        kernel_size,
        strides,
        padding,
        data_format,
        dilation_rate,
        depth_multiplier,
        activation,
        use_bias,
        depthwise_initializer,
        bias_initializer,
        depthwise_regularizer,
        bias_regularizer,
        activity_regularizer,
        depthwise_constraint,
        bias_constraint,
        **kwargs,
    ):
        super().__init__(
            kernel_size, strides, padding, data_format, dilation_rate, activation, use_bias,
            bias_initializer, bias_regularizer, activity_regularizer, bias_constraint, **kwargs,
        )
        self.depth_multiplier = validation.positive_int(self, "depth_multiplier", depth_multiplier)
        self.depthwise_initializer = initializers.get(depthwise_initializer)
        self.depthwise_regularizer = regularizers.get(depthwise_regularizer)
        self.depthwise_constraint = constraints.get(depthwise_constraint)

    def _add_depthwise_kernel(self, name, channels):
        """`(*kernel_size, channels, depth_multiplier)`."""
        return self.add_weight(
            name=name,
            shape=(*self.kernel_size, channels, self.depth_multiplier),
            initializer=self.depthwise_initializer,
            regularizer=self.depthwise_regularizer,
            constraint=self.depthwise_constraint,
        )

    def _formulation(self, input_shape) -> str:
        """The table's choice; Keras's op where a size is unknown (taps slice statically)."""
        if not self._knows_output_sizes(input_shape):
            return formulation.KERAS
        return depthwise_formulation(self.rank)

    def _depthwise(self, inputs, kernel, chosen):
        """`(batch, *spatial, channels)` -> `(batch, *new_spatial, channels * multiplier)`
        (or channels first), by the formulation `chosen`."""
        arguments = (inputs, kernel, self.strides, self.padding, self.dilation_rate,
                     self.data_format)
        if chosen in ("taps", "sliced_taps"):
            return _depthwise_by_taps(*arguments, scale_first=chosen == "taps")
        if chosen == "unit_axis":
            return _depthwise_with_unit_axis(*arguments)
        return ops.depthwise_conv(
            inputs,
            kernel,
            strides=self.strides,
            padding=self.padding,
            data_format=self.data_format,
            dilation_rate=self.dilation_rate,
        )

    def get_config(self):
        return {
            **super().get_config(),
            "depth_multiplier": self.depth_multiplier,
            "depthwise_initializer": initializers.serialize(self.depthwise_initializer),
            "depthwise_regularizer": regularizers.serialize(self.depthwise_regularizer),
            "depthwise_constraint": constraints.serialize(self.depthwise_constraint),
        }


class _DepthwiseConv(_DepthwiseConvolution):
    """N-D depthwise convolution: weights `kernel` `(*kernel_size, channels,
    depth_multiplier)` and `bias` `(channels * depth_multiplier,)`."""

    def __init__(
        self,
        kernel_size,
        strides=1,
        padding="valid",
        depth_multiplier=1,
        data_format=None,
        dilation_rate=1,
        activation=None,
        use_bias=True,
        depthwise_initializer="glorot_uniform",
        bias_initializer="zeros",
        depthwise_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        depthwise_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(
            kernel_size, strides, padding, data_format, dilation_rate, depth_multiplier,
            activation, use_bias, depthwise_initializer, bias_initializer,
            depthwise_regularizer, bias_regularizer, activity_regularizer, depthwise_constraint,
            bias_constraint, **kwargs,
        )

    def _create_weights(self, channels):
        self.kernel = self._add_depthwise_kernel("kernel", channels)

    def _output_channels(self, channels):
        return channels * self.depth_multiplier

    def call(self, inputs):
        chosen = self._formulation(inputs.shape)
        return self._bias_and_activation(self._depthwise(inputs, self.kernel, chosen))


@keras.saving.register_keras_serializable(package="keraslayers")
class DepthwiseConv1D(_DepthwiseConv):
    """1D depthwise convolution: each input channel convolved over time with its own kernels.

    `outputs[t, c * depth_multiplier + m] = activation(sum_k inputs[t*s + k*d, c] *
    kernel[k, c, m] + bias)`, `s` the stride and `d` the dilation; channels never mix.
    Drop-in for `keras.layers.DepthwiseConv1D`: weights `kernel` `(kernel_size, channels,
    depth_multiplier)` and `bias` `(channels * depth_multiplier,)`.

    Args:
        kernel_size: int or tuple of 1 int, the window's length.
        strides: int or tuple of 1 int, the step between windows.
        padding: "valid" (only windows that fit) or "same" (zeros around the input, the extra
            one after).
        depth_multiplier: positive integer, output channels per input channel.
        data_format: "channels_last" (`(batch, steps, channels)`), "channels_first"
            (`(batch, channels, steps)`) or None for Keras's `image_data_format`.
        dilation_rate: int or tuple of 1 int, the spacing between kernel taps.
        activation: activation name or callable; None for linear.
        use_bias: whether to add a learned bias.
        depthwise_initializer, bias_initializer: initializers of the weights.
        depthwise_regularizer, bias_regularizer, activity_regularizer: optional regularizers.
        depthwise_constraint, bias_constraint: optional constraints.

    Input shape:
        `(batch, steps, channels)`, or `(batch, channels, steps)` with channels_first.

    Output shape:
        `(batch, new_steps, channels * depth_multiplier)` (or channels first), `new_steps` as
        for `Conv1D`.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> layer = kl.DepthwiseConv1D(3, depth_multiplier=2, padding="same")
        >>> tuple(layer(np.ones((2, 10, 3), "float32")).shape)
        (2, 10, 6)
    """

    rank = 1


@keras.saving.register_keras_serializable(package="keraslayers")
class DepthwiseConv2D(_DepthwiseConv):
    """2D depthwise convolution: each input channel convolved with its own kernels, no mixing.

    `outputs[..., c * depth_multiplier + m] = activation(window_c . kernel[:, :, c, m] + bias)`,
    where `window_c` is the window over input channel c alone. Drop-in for
    `keras.layers.DepthwiseConv2D`: weights `kernel` `(kh, kw, channels, depth_multiplier)` and
    `bias` `(channels * depth_multiplier,)`.

    Args:
        kernel_size: int or tuple of 2 ints, the window's size.
        strides: int or tuple of 2 ints, the step between windows.
        padding: "valid" (only windows that fit) or "same" (zeros around the input).
        depth_multiplier: positive integer, output channels per input channel.
        data_format: "channels_last", "channels_first" or None for Keras's default.
        dilation_rate: int or tuple of 2 ints, the spacing between kernel taps.
        activation: activation name or callable; None for linear.
        use_bias: whether to add a learned bias.
        depthwise_initializer, bias_initializer: initializers of the weights.
        depthwise_regularizer, bias_regularizer, activity_regularizer: optional regularizers.
        depthwise_constraint, bias_constraint: optional constraints.

    Input shape:
        `(batch, height, width, channels)`, or `(batch, channels, height, width)`.

    Output shape:
        `(batch, new_height, new_width, channels * depth_multiplier)` (or channels first),
        the spatial sizes as for `Conv2D`.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> layer = kl.DepthwiseConv2D(3, depth_multiplier=2)
        >>> tuple(layer(np.ones((2, 8, 8, 3), "float32")).shape)
        (2, 6, 6, 6)
    """

    rank = 2

    def __init__(
        self,
        kernel_size,
        strides=(1, 1),
        padding="valid",
        depth_multiplier=1,
        data_format=None,
        dilation_rate=(1, 1),
        activation=None,
        use_bias=True,
        depthwise_initializer="glorot_uniform",
        bias_initializer="zeros",
        depthwise_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        depthwise_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(
            kernel_size, strides, padding, depth_multiplier, data_format, dilation_rate,
            activation, use_bias, depthwise_initializer, bias_initializer,
            depthwise_regularizer, bias_regularizer, activity_regularizer, depthwise_constraint,
            bias_constraint, **kwargs,
        )


class _SeparableConv(_DepthwiseConvolution):
    """N-D separable convolution: a depthwise convolution, then a pointwise one mixing the
    channels. Weights `depthwise_kernel` `(*kernel_size, channels, depth_multiplier)`,
    `pointwise_kernel` `(1, .., 1, channels * depth_multiplier, filters)`, `bias`
    `(filters,)`."""

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        data_format=None,
        dilation_rate=1,
        depth_multiplier=1,
        activation=None,
        use_bias=True,
        depthwise_initializer="glorot_uniform",
        pointwise_initializer="glorot_uniform",
        bias_initializer="zeros",
        depthwise_regularizer=None,
        pointwise_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        depthwise_constraint=None,
        pointwise_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(
            kernel_size, strides, padding, data_format, dilation_rate, depth_multiplier,
            activation, use_bias, depthwise_initializer, bias_initializer,
            depthwise_regularizer, bias_regularizer, activity_regularizer, depthwise_constraint,
            bias_constraint, **kwargs,
        )
        self.filters = validation.positive_int(self, "filters", filters)
        self.pointwise_initializer = initializers.get(pointwise_initializer)
        self.pointwise_regularizer = regularizers.get(pointwise_regularizer)
        self.pointwise_constraint = constraints.get(pointwise_constraint)

    def _create_weights(self, channels):
        self.depthwise_kernel = self._add_depthwise_kernel("depthwise_kernel", channels)
        self.pointwise_kernel = self.add_weight(
            name="pointwise_kernel",
            shape=(*(1,) * self.rank, channels * self.depth_multiplier, self.filters),
            initializer=self.pointwise_initializer,
            regularizer=self.pointwise_regularizer,
            constraint=self.pointwise_constraint,
        )

    def call(self, inputs):
        chosen = self._formulation(inputs.shape)
        if chosen == formulation.KERAS:
            outputs = ops.separable_conv(
                inputs,
                self.depthwise_kernel,
                self.pointwise_kernel,
                strides=self.strides,
                padding=self.padding,
                data_format=self.data_format,
                dilation_rate=self.dilation_rate,
            )
            return self._bias_and_activation(outputs)
        depthwise = self._depthwise(inputs, self.depthwise_kernel, chosen)
        return self._bias_and_activation(self._pointwise(depthwise))

    def _pointwise(self, depthwise):
        """The 1x1 convolution mixing `channels * multiplier` depthwise outputs to `filters`."""
        return ops.conv(depthwise, self.pointwise_kernel, data_format=self.data_format)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "pointwise_initializer": initializers.serialize(self.pointwise_initializer),
            "pointwise_regularizer": regularizers.serialize(self.pointwise_regularizer),
            "pointwise_constraint": constraints.serialize(self.pointwise_constraint),
        }


@keras.saving.register_keras_serializable(package="keraslayers")
class SeparableConv1D(_SeparableConv):
    """1D separable convolution: a depthwise convolution over time, then a pointwise one.

    `outputs = activation(pointwise(depthwise(inputs)) + bias)`, where `depthwise` convolves
    each input channel with its own `depth_multiplier` kernels (as `DepthwiseConv1D`) and
    `pointwise` maps the `channels * depth_multiplier` results to `filters` at every step.
    Drop-in for `keras.layers.SeparableConv1D`: weights `depthwise_kernel` `(kernel_size,
    channels, depth_multiplier)`, `pointwise_kernel` `(1, channels * depth_multiplier,
    filters)`, `bias` `(filters,)`.

    Args:
        filters: positive integer, the number of output channels.
        kernel_size: int or tuple of 1 int, the depthwise window's length.
        strides: int or tuple of 1 int, the step between windows.
        padding: "valid" (only windows that fit) or "same" (zeros around the input).
        data_format: "channels_last" (`(batch, steps, channels)`), "channels_first"
            (`(batch, channels, steps)`) or None for Keras's `image_data_format`.
        dilation_rate: int or tuple of 1 int, the spacing between kernel taps.
        depth_multiplier: positive integer, depthwise outputs per input channel.
        activation: activation name or callable; None for linear.
        use_bias: whether to add a learned bias.
        depthwise_initializer, pointwise_initializer, bias_initializer: initializers.
        depthwise_regularizer, pointwise_regularizer, bias_regularizer, activity_regularizer:
            optional regularizers.
        depthwise_constraint, pointwise_constraint, bias_constraint: optional constraints.

    Input shape:
        `(batch, steps, channels)`, or `(batch, channels, steps)` with channels_first.

    Output shape:
        `(batch, new_steps, filters)` (or channels first), `new_steps` as for `Conv1D`.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> tuple(kl.SeparableConv1D(5, 3, strides=2)(np.ones((2, 9, 3), "float32")).shape)
        (2, 4, 5)
    """

    rank = 1


@keras.saving.register_keras_serializable(package="keraslayers")
class SeparableConv2D(_SeparableConv):
    """2D separable convolution: a depthwise convolution, then a 1x1 convolution mixing channels.

    `outputs = activation(pointwise(depthwise(inputs)) + bias)`, where `depthwise` convolves
    each input channel with its own `depth_multiplier` kernels and `pointwise` maps the
    `channels * depth_multiplier` results to `filters`. Drop-in for
    `keras.layers.SeparableConv2D`: weights `depthwise_kernel` `(kh, kw, channels,
    depth_multiplier)`, `pointwise_kernel` `(1, 1, channels * depth_multiplier, filters)`,
    `bias` `(filters,)`.

    Args:
        filters: positive integer, the number of output channels.
        kernel_size: int or tuple of 2 ints, the depthwise window's size.
        strides: int or tuple of 2 ints, the step between windows.
        padding: "valid" (only windows that fit) or "same" (zeros around the input).
        data_format: "channels_last", "channels_first" or None for Keras's default.
        dilation_rate: int or tuple of 2 ints, the spacing between kernel taps.
        depth_multiplier: positive integer, depthwise outputs per input channel.
        activation: activation name or callable; None for linear.
        use_bias: whether to add a learned bias.
        depthwise_initializer, pointwise_initializer, bias_initializer: initializers.
        depthwise_regularizer, pointwise_regularizer, bias_regularizer, activity_regularizer:
            optional regularizers.
        depthwise_constraint, pointwise_constraint, bias_constraint: optional constraints.

    Input shape:
        `(batch, height, width, channels)`, or `(batch, channels, height, width)`.

    Output shape:
        `(batch, new_height, new_width, filters)` (or channels first), the spatial sizes as
        for `Conv2D`.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> tuple(kl.SeparableConv2D(5, 3)(np.ones((2, 8, 8, 3), "float32")).shape)
        (2, 6, 6, 5)
    """

    rank = 2

    def __init__(
        self,
        filters,
        kernel_size,
        strides=(1, 1),
        padding="valid",
        data_format=None,
        dilation_rate=(1, 1),
        depth_multiplier=1,
        activation=None,
        use_bias=True,
        depthwise_initializer="glorot_uniform",
        pointwise_initializer="glorot_uniform",
        bias_initializer="zeros",
        depthwise_regularizer=None,
        pointwise_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        depthwise_constraint=None,
        pointwise_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(
            filters, kernel_size, strides, padding, data_format, dilation_rate,
            depth_multiplier, activation, use_bias, depthwise_initializer,
            pointwise_initializer, bias_initializer, depthwise_regularizer,
            pointwise_regularizer, bias_regularizer, activity_regularizer, depthwise_constraint,
            pointwise_constraint, bias_constraint, **kwargs,
        )


class _ConvTranspose(_Convolution):
    """N-D transposed convolution: the gradient of a convolution with respect to its input.

    Each input position scatters `inputs[i] @ kernel[k].T` to output `i * stride + k * dilation`
    of the full result, `(n - 1) * stride + span` long; Keras's output is a window of it
    (`conv_arithmetic.deconv_crop`), `deconv_output_length` long.
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        output_padding=None,
        data_format=None,
        dilation_rate=1,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(
            kernel_size, strides, padding, data_format, dilation_rate, activation, use_bias,
            bias_initializer, bias_regularizer, activity_regularizer, bias_constraint, **kwargs,
        )
        self.filters = validation.positive_int(self, "filters", filters)
        self.output_padding = self._normalize_output_padding(output_padding)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self._forbid_strides_with_dilation()
        output_padding = self.output_padding or (None,) * self.rank
        self._crops = tuple(
            deconv_crop(k, self.padding, s, p, d)
            for k, s, p, d in zip(
                self.kernel_size, self.strides, output_padding, self.dilation_rate, strict=True
            )
        )

    def _normalize_output_padding(self, value):
        """None, or a tuple of `rank` ints in [0, stride): the extra outputs at each axis's end."""
        if value is None:
            return None
        items = (value,) * self.rank if isinstance(value, numbers.Integral) else value
        try:
            items = tuple(items)
        except TypeError:
            items = ()
        if len(items) != self.rank or not all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 0 for v in items
        ):
            raise ValueError(
                f"{validation.describe(self)}: `output_padding` must be None, a non-negative "
                f"integer or a tuple of {self.rank} non-negative integers, received "
                f"output_padding={value!r}."
            )
        if any(p >= s for p, s in zip(items, self.strides, strict=True)):
            raise ValueError(
                f"{validation.describe(self)}: `output_padding` must be smaller than `strides` "
                f"along every axis, received output_padding={value!r} and "
                f"strides={self.strides}."
            )
        return tuple(int(v) for v in items)

    def _create_weights(self, channels):
        self.kernel = self.add_weight(
            name="kernel",
            shape=(*self.kernel_size, self.filters, channels),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )

    def _output_spatial_shape(self, spatial_shape):
        output_padding = self.output_padding or (None,) * self.rank
        return tuple(
            deconv_output_length(n, k, self.padding, s, p, d)
            for n, k, s, p, d in zip(
                spatial_shape, self.kernel_size, self.strides, output_padding,
                self.dilation_rate, strict=True,
            )
        )

    def call(self, inputs, training=None):
        spatial = spatial_sizes(inputs.shape, self.data_format)
        chosen = conv_transpose_formulation(self.rank, training)
        if chosen == "phases" and None not in spatial:
            return self._bias_and_activation(self._phase_convolution(inputs, spatial))
        if chosen == "full_then_window":
            return self._bias_and_activation(self._full_then_window_in_place(inputs))
        return self._bias_and_activation(self._keras_window(inputs))

    def _keras_window(self, inputs):
        """`ops.conv_transpose`, which computes Keras's window directly, without the full
        result's extra rows and the copy that cropping it costs; `_full_then_window` where
        Keras's TensorFlow backend would abort (`_tensorflow_rejects_window`): a matter of
        what the backend accepts, not of speed."""
        if keras.backend.backend() == "tensorflow" and self._tensorflow_rejects_window():
            return self._full_then_window(inputs, self.data_format)
        return ops.conv_transpose(
            inputs,
            self.kernel,
            strides=self.strides,
            padding=self.padding,
            output_padding=self.output_padding,
            data_format=self.data_format,
            dilation_rate=self.dilation_rate,
        )

    def _full_then_window_in_place(self, inputs):
        """`_full_then_window`, a channels-last input through a channels-first view of its
        memory, which torch's channels-last kernels take as is (Keras's torch backend would
        copy it into a contiguous channels-first tensor)."""
        if self.data_format == "channels_first":
            return self._full_then_window(inputs, "channels_first")
        first = ops.transpose(inputs, to_channels_first_axes(self.rank))
        outputs = self._full_then_window(first, "channels_first")
        return ops.transpose(outputs, to_channels_last_axes(self.rank))

    def _full_then_window(self, inputs, data_format):
        """The full ("valid", no output padding) transposed convolution, then Keras's window of
        it: the same numbers on every backend, where Keras's own TensorFlow backend aborts for
        "same" with an even kernel span and output_padding=0."""
        full = ops.conv_transpose(
            inputs,
            self.kernel,
            strides=self.strides,
            padding="valid",
            output_padding=0,
            data_format=data_format,
            dilation_rate=self.dilation_rate,
        )
        first = first_spatial_axis(data_format)
        index = [slice(None)] * (self.rank + 2)
        widths = [(0, 0)] * (self.rank + 2)
        for axis, (before, after) in enumerate(self._crops, start=first):
            index[axis] = slice(before, -after if after > 0 else None)
            widths[axis] = (0, max(-after, 0))
        if any(crop != slice(None) for crop in index):
            full = full[tuple(index)]
        if any(width != (0, 0) for width in widths):
            # Outputs past the last window's reach: only the bias lands there.
            full = ops.pad(full, widths)
        return full

    def _tensorflow_rejects_window(self) -> bool:
        """Whether `tf.nn.conv_transpose` refuses Keras's output size: "same" padding with an
        even kernel span and `output_padding=0` asks for `(n - 1) * stride` outputs, which a
        "same" convolution maps back to `n - 1` inputs, not `n`."""
        if self.padding != "same" or self.output_padding is None:
            return False
        spans = map(effective_window, self.kernel_size, self.dilation_rate)
        return any(span % 2 == 0 and extra == 0
                   for span, extra in zip(spans, self.output_padding, strict=True))

    def _phase_convolution(self, inputs, spatial):
        """The transposed convolution as one stride-1 convolution whose output channels are
        the `prod(strides)` phases of each output position, interleaved by a reshape
        (`conv_arithmetic.phase_decomposition`)."""
        rank = self.rank
        output_padding = self.output_padding or (None,) * rank
        plans = [
            phase_decomposition(n, k, self.padding, s, p, d)
            for n, k, s, p, d in zip(
                spatial, self.kernel_size, self.strides, output_padding, self.dilation_rate,
                strict=True,
            )
        ]
        taps = [plan[0] for plan in plans]
        kernel = self._phase_kernel(taps)
        first = first_spatial_axis(self.data_format)
        index = [slice(None)] * (rank + 2)
        widths = [(0, 0)] * (rank + 2)
        for axis, (_, before, after, _) in enumerate(plans, start=first):
            index[axis] = slice(max(-before, 0), after if after < 0 else None)
            widths[axis] = (max(before, 0), max(after, 0))
        if any(crop != slice(None) for crop in index):
            inputs = inputs[tuple(index)]
        if any(width != (0, 0) for width in widths):
            inputs = ops.pad(inputs, widths)
        # Dilation comes only with stride 1 (`_forbid_strides_with_dilation`), where the
        # taps are the kernel's own.
        phases = ops.conv(
            inputs, kernel, strides=1, padding="valid", data_format=self.data_format,
            dilation_rate=self.dilation_rate,
        )
        outputs = self._interleave_phases(phases)
        lengths = self._output_spatial_shape(spatial)
        for axis, ((*_, offset), length) in enumerate(zip(plans, lengths, strict=True), first):
            index[axis] = slice(offset, offset + length)
        return outputs[tuple(index)]

    def _phase_kernel(self, taps):
        """`(k1.., filters, channels)` -> `(taps1.., channels, s1.. * filters)`: tap
        `m * stride + p` of each axis goes to phase `p`, position `taps - 1 - m`."""
        rank, kernel = self.rank, self.kernel
        sizes = zip(taps, self.strides, self.kernel_size, strict=True)
        padded = [(0, t * s - k) for t, s, k in sizes]
        if any(after for _, after in padded):
            kernel = ops.pad(kernel, padded + [(0, 0), (0, 0)])
        channels = kernel.shape[-1]
        split = [size for t, s in zip(taps, self.strides, strict=True) for size in (t, s)]
        # (t1, s1, t2, s2, .., filters, channels), the taps reversed.
        kernel = ops.flip(ops.reshape(kernel, (*split, self.filters, channels)),
                          axis=tuple(range(0, 2 * rank, 2)))
        order = [*range(0, 2 * rank, 2), 2 * rank + 1, *range(1, 2 * rank, 2), 2 * rank]
        # (t1, t2, .., channels, s1, s2, .., filters) -> (t1, t2, .., channels, phases).
        kernel = ops.transpose(kernel, order)
        return ops.reshape(kernel, (*taps, channels, math.prod(self.strides) * self.filters))

    def _interleave_phases(self, phases):
        """(batch, q1.., s1.. * filters) -> (batch, q1 * s1.., filters), or channels first."""
        rank, strides, filters = self.rank, self.strides, self.filters
        if math.prod(strides) == 1:
            return phases
        if self.data_format == "channels_last":
            sizes = phases.shape[1:-1]
            split = ops.reshape(phases, (-1, *sizes, *strides, filters))
            # (batch, q1, s1, q2, s2, .., filters)
            order = [0, *(a for i in range(rank) for a in (1 + i, 1 + rank + i)), 1 + 2 * rank]
            merged = (-1, *(q * s for q, s in zip(sizes, strides, strict=True)), filters)
        else:
            sizes = phases.shape[2:]
            split = ops.reshape(phases, (-1, *strides, filters, *sizes))
            # (batch, filters, q1, s1, q2, s2, ..)
            order = [0, 1 + rank, *(a for i in range(rank) for a in (2 + rank + i, 1 + i))]
            merged = (-1, filters, *(q * s for q, s in zip(sizes, strides, strict=True)))
        return ops.reshape(ops.transpose(split, order), merged)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "output_padding": self.output_padding,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
        }


@keras.saving.register_keras_serializable(package="keraslayers")
class Conv1DTranspose(_ConvTranspose):
    """1D transposed convolution: upsamples a sequence by `strides` with a learned kernel.

    Input step t adds `inputs[t] @ kernel[k].T` to step `t * s + k * d` of the full result,
    of which Keras keeps a window (see Output shape). The gradient of `Conv1D` with respect
    to its input. Drop-in for `keras.layers.Conv1DTranspose`: weights `kernel`
    `(kernel_size, filters, channels)` and `bias` `(filters,)`.

    Args:
        filters: positive integer, the number of output channels.
        kernel_size: int or tuple of 1 int, the window's length.
        strides: int or tuple of 1 int, the upsampling factor.
        padding: "valid" or "same", as in the convolution this is the transpose of.
        output_padding: None, or an int or tuple of 1 int smaller than the stride: extra
            steps at the end, to pick among the lengths a strided convolution maps alike.
        data_format: "channels_last" (`(batch, steps, channels)`), "channels_first"
            (`(batch, channels, steps)`) or None for Keras's `image_data_format`.
        dilation_rate: int or tuple of 1 int, the spacing between kernel taps; cannot be
            combined with strides > 1.
        activation: activation name or callable; None for linear.
        use_bias: whether to add a learned bias.
        kernel_initializer, bias_initializer: initializers of the weights.
        kernel_regularizer, bias_regularizer, activity_regularizer: optional regularizers.
        kernel_constraint, bias_constraint: optional constraints.

    Input shape:
        `(batch, steps, channels)`, or `(batch, channels, steps)` with channels_first.

    Output shape:
        `(batch, new_steps, filters)` (or channels first). With `span = (kernel_size - 1) *
        dilation_rate + 1`: without output_padding, `steps * stride` ("same") or
        `(steps - 1) * stride + max(span, stride)` ("valid"); with it,
        `(steps - 1) * stride + span % 2 + output_padding` ("same") or
        `(steps - 1) * stride + span + output_padding` ("valid").

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> layer = kl.Conv1DTranspose(4, 3, strides=2, padding="same")
        >>> tuple(layer(np.ones((2, 5, 3), "float32")).shape)
        (2, 10, 4)
    """

    rank = 1


@keras.saving.register_keras_serializable(package="keraslayers")
class Conv2DTranspose(_ConvTranspose):
    """2D transposed convolution: upsamples images by `strides` with a learned kernel.

    Input pixel (i, j) adds `inputs[i, j] @ kernel[a, b].T` to pixel `(i * sh + a * dh,
    j * sw + b * dw)` of the full result, of which Keras keeps a window. Drop-in for
    `keras.layers.Conv2DTranspose`: weights `kernel` `(kh, kw, filters, channels)` and `bias`
    `(filters,)`.

    Args:
        filters: positive integer, the number of output channels.
        kernel_size: int or tuple of 2 ints, the window's height and width.
        strides: int or tuple of 2 ints, the upsampling factors.
        padding: "valid" or "same", as in the convolution this is the transpose of.
        output_padding: None, or an int or tuple of 2 ints, each smaller than its stride: extra
            rows/columns at the end.
        data_format: "channels_last" (`(batch, height, width, channels)`), "channels_first"
            (`(batch, channels, height, width)`) or None for Keras's `image_data_format`.
        dilation_rate: int or tuple of 2 ints, the spacing between kernel taps; cannot be
            combined with strides > 1.
        activation: activation name or callable; None for linear.
        use_bias: whether to add a learned bias.
        kernel_initializer, bias_initializer: initializers of the weights.
        kernel_regularizer, bias_regularizer, activity_regularizer: optional regularizers.
        kernel_constraint, bias_constraint: optional constraints.

    Input shape:
        `(batch, height, width, channels)`, or `(batch, channels, height, width)`.

    Output shape:
        `(batch, new_height, new_width, filters)` (or channels first), each size as for
        `Conv1DTranspose`.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> layer = kl.Conv2DTranspose(4, 3, strides=2)
        >>> tuple(layer(np.ones((2, 5, 5, 3), "float32")).shape)
        (2, 11, 11, 4)
    """

    rank = 2

    def __init__(
        self,
        filters,
        kernel_size,
        strides=(1, 1),
        padding="valid",
        output_padding=None,
        data_format=None,
        dilation_rate=(1, 1),
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(
            filters, kernel_size, strides, padding, output_padding, data_format, dilation_rate,
            activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
            bias_regularizer, activity_regularizer, kernel_constraint, bias_constraint,
            **kwargs,
        )


@keras.saving.register_keras_serializable(package="keraslayers")
class Conv3DTranspose(_ConvTranspose):
    """3D transposed convolution: upsamples volumes by `strides` with a learned kernel.

    The 3D case of `Conv2DTranspose`. Drop-in for `keras.layers.Conv3DTranspose`: weights
    `kernel` `(kd, kh, kw, filters, channels)` and `bias` `(filters,)`.

    Args:
        filters: positive integer, the number of output channels.
        kernel_size: int or tuple of 3 ints, the window's depth, height and width.
        strides: int or tuple of 3 ints, the upsampling factors.
        padding: "valid" or "same", as in the convolution this is the transpose of.
        data_format: "channels_last" (`(batch, d1, d2, d3, channels)`), "channels_first"
            (`(batch, channels, d1, d2, d3)`) or None for Keras's `image_data_format`.
        output_padding: None, or an int or tuple of 3 ints, each smaller than its stride.
        dilation_rate: int or tuple of 3 ints, the spacing between kernel taps; cannot be
            combined with strides > 1.
        activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
        bias_regularizer, activity_regularizer, kernel_constraint, bias_constraint:
            as for `Conv2DTranspose`.

    Input shape:
        `(batch, d1, d2, d3, channels)`, or `(batch, channels, d1, d2, d3)`.

    Output shape:
        `(batch, new_d1, new_d2, new_d3, filters)` (or channels first), each size as for
        `Conv1DTranspose`.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> layer = kl.Conv3DTranspose(2, 2, strides=2)
        >>> tuple(layer(np.ones((1, 2, 3, 4, 3), "float32")).shape)
        (1, 4, 6, 8, 2)
    """

    rank = 3

    # Keras puts data_format before output_padding here (only here): so do we, so that
    # positional calls mean the same.
    def __init__(
        self,
        filters,
        kernel_size,
        strides=(1, 1, 1),
        padding="valid",
        data_format=None,
        output_padding=None,
        dilation_rate=(1, 1, 1),
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(
            filters, kernel_size, strides, padding, output_padding, data_format, dilation_rate,
            activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
            bias_regularizer, activity_regularizer, kernel_constraint, bias_constraint,
            **kwargs,
        )
