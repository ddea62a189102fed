"""Convolution arithmetic shared by convolution, transposed convolution and pooling.

Output sizes follow Keras's rules exactly (which are TensorFlow's): "valid" keeps only
windows that fit, "same" (and "causal", which pads on the left only) gives `ceil(n / stride)`.
Every function takes `None` for an unknown size and answers `None`.
"""

from __future__ import annotations

import numbers

import keras

from keraslayers.layers.validation import describe


def normalize_tuple(layer: keras.layers.Layer, value, rank: int, argument: str) -> tuple:
    """An int or a sequence of `rank` positive ints, as a tuple of `rank` ints."""
    items = (value,) * rank if isinstance(value, numbers.Integral) else value
    try:
        items = tuple(items)
    except TypeError:
        items = ()
    if len(items) != rank or not all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0 for v in items
    ):
        raise ValueError(
            f"{describe(layer)}: `{argument}` must be a positive integer or a tuple of "
            f"{rank} positive integers, received {argument}={value!r}."
        )
    return tuple(int(v) for v in items)


def normalize_padding(layer: keras.layers.Layer, padding, allowed=("valid", "same")) -> str:
    name = padding.lower() if isinstance(padding, str) else padding
    if name not in allowed:
        raise ValueError(
            f"{describe(layer)}: `padding` must be one of {', '.join(map(repr, allowed))}, "
            f"received padding={padding!r}."
        )
    return name


def normalize_data_format(layer: keras.layers.Layer, data_format) -> str:
    """None means Keras's configured `image_data_format` (channels_last by default)."""
    if data_format is None:
        return keras.config.image_data_format()
    name = data_format.lower() if isinstance(data_format, str) else data_format
    if name not in ("channels_last", "channels_first"):
        raise ValueError(
            f"{describe(layer)}: `data_format` must be 'channels_last' or 'channels_first', "
            f"received data_format={data_format!r}."
        )
    return name


def effective_window(window: int, dilation: int = 1) -> int:
    """The span of a dilated window: `(window - 1) * dilation + 1`."""
    return (window - 1) * dilation + 1


def conv_output_length(length, window, padding, stride, dilation=1):
    """Output size of a convolution or pooling along one axis."""
    if length is None:
        return None
    if padding == "valid":
        return (length - effective_window(window, dilation)) // stride + 1
    return (length + stride - 1) // stride


def deconv_output_length(length, window, padding, stride, output_padding=None, dilation=1):
    """Output size of a transposed convolution along one axis (Keras's rule)."""
    if length is None:
        return None
    span = effective_window(window, dilation)
    if padding == "valid":
        # Without output_padding, a stride longer than the window leaves its gap at the end.
        extra = max(stride - span, 0) if output_padding is None else output_padding
        return (length - 1) * stride + span + extra
    if output_padding is None:
        return length * stride
    return (length - 1) * stride + span % 2 + output_padding


def deconv_crop(window, padding, stride, output_padding=None, dilation=1) -> tuple[int, int]:
    """(before, after): how much of the full transposed convolution Keras's output drops.

    The full transposed convolution of `length` inputs spans `(length - 1) * stride + span`
    outputs; `deconv_output_length` keeps all but `before` at the start and `after` at the end
    (a negative `after` appends that many zeros). "same" crops as the forward convolution it
    is the transpose of pads: the smaller half before. Neither depends on `length`.
    """
    span = effective_window(window, dilation)
    dropped = span - deconv_output_length(1, window, padding, stride, output_padding, dilation)
    before = max(dropped, 0) // 2 if padding == "same" else 0
    return before, dropped - before


def same_padding(length: int, window: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """(before, after) zero padding that "same" adds along one axis; the extra one goes after."""
    output = (length + stride - 1) // stride
    total = max((output - 1) * stride + effective_window(window, dilation) - length, 0)
    return total // 2, total - total // 2


def tap_slices(length, window, padding, stride, dilation=1) -> tuple[tuple[int, int], list]:
    """How a convolution along one axis reads its input, kernel tap by kernel tap.

    Returns `((before, after), slices)`: once the input is padded with `before` and `after`
    zeros, kernel tap `t` meets the entries `padded[slices[t]]`, one per output in order.
    """
    before, after = same_padding(length, window, stride, dilation) if padding == "same" else (0, 0)
    outputs = conv_output_length(length, window, padding, stride, dilation)
    starts = (t * dilation for t in range(window))
    return (before, after), [slice(s, s + (outputs - 1) * stride + 1, stride) for s in starts]


def padded_for_taps(inputs, kernel_size, padding, strides, dilation_rate, data_format):
    """A convolution by kernel taps' first step: `(padded inputs, slices)`, the input padded
    on its spatial axes as `tap_slices` says, and per spatial axis the entries of the padded
    input that each kernel tap meets."""
    rank = len(kernel_size)
    first = first_spatial_axis(data_format)
    widths, axis_slices = [(0, 0)] * (rank + 2), []
    for axis, window, stride, dilation in zip(range(first, first + rank), kernel_size, strides,
                                              dilation_rate, strict=True):
        widths[axis], slices = tap_slices(inputs.shape[axis], window, padding, stride, dilation)
        axis_slices.append(slices)
    if any(width != (0, 0) for width in widths):
        inputs = keras.ops.pad(inputs, widths)
    return inputs, axis_slices


def check_window_fits(layer, spatial_shape, windows, padding, what="kernel") -> None:
    """A "valid" window must fit in the input: otherwise there is no output at all."""
    if padding != "valid":
        return
    for axis, (length, window) in enumerate(zip(spatial_shape, windows, strict=True)):
        if length is not None and window > length:
            raise ValueError(
                f"{describe(layer)}: the {what} spans {window} along spatial axis {axis} but "
                f"the input has only {length} there (spatial shape {tuple(spatial_shape)}) "
                'with padding="valid"; use a smaller window or padding="same".'
            )


def same_window_counts(length: int, window: int, stride: int) -> list[int]:
    """How many real (unpadded) entries each "same"-padded window covers along one axis.

    The divisor of average pooling, which excludes the padding: with `same_padding`'s split,
    windows at the edges overlap the zeros and count fewer than `window` entries.
    """
    before, _ = same_padding(length, window, stride)
    outputs = conv_output_length(length, window, "same", stride)
    starts = [i * stride - before for i in range(outputs)]
    return [min(start + window, length) - max(start, 0) for start in starts]


def phase_decomposition(length, window, padding, stride, output_padding=None, dilation=1):
    """How a transposed convolution along one axis becomes a stride-1 convolution.

    Output `o = q * stride + p` of the full transposed convolution receives input `q - m`
    through kernel tap `m * stride + p` only: for each phase `p` it is a stride-1 convolution
    of the input with taps `p, p + stride, ...` (reversed), `taps = ceil(window / stride)` of
    them (the kernel zero-padded to `taps * stride`). With the phases as output channels, one
    convolution computes them all and a reshape interleaves them; no zeros are inserted
    between input entries. With stride 1 it is the convolution with the reversed kernel,
    dilated like the transposed one.

    Returns `(taps, pad_before, pad_after, offset)`: the input is padded by `pad_before` and
    `pad_after` entries (a negative count drops that many), the stride-1 "valid" convolution
    with `taps` taps gives `q` from `ceil`-rounded bounds of Keras's output window, and that
    window starts `offset` entries into the interleaved result. Keras's output length is
    `length * stride + c` for a constant `c`, so the padding does not depend on `length`
    (`None` for an unknown size is fine).
    """
    taps = -(-window // stride)
    span = effective_window(taps, dilation if stride == 1 else 1)
    before, _ = deconv_crop(window, padding, stride, output_padding, dilation)
    # Keras's length for one input, less one stride: its length for n inputs is n * stride
    # plus this, whatever n is.
    extra = deconv_output_length(1, window, padding, stride, output_padding, dilation) - stride
    first_q = before // stride
    end_q_past_length = -(-(before + extra) // stride)  # ceil((before + L) / s) - n
    return taps, span - 1 - first_q, end_q_past_length, before - first_q * stride


def to_channels_first_axes(rank: int) -> tuple[int, ...]:
    """The transpose of `(batch, *spatial, channels)` to `(batch, channels, *spatial)`."""
    return (0, rank + 1, *range(1, rank + 1))


def to_channels_last_axes(rank: int) -> tuple[int, ...]:
    """The transpose of `(batch, channels, *spatial)` to `(batch, *spatial, channels)`."""
    return (0, *range(2, rank + 2), 1)


def first_spatial_axis(data_format: str) -> int:
    """The axis of the first spatial size: 1 in `(batch, *spatial, channels)`, 2 in
    `(batch, channels, *spatial)`."""
    return 1 if data_format == "channels_last" else 2


def spatial_sizes(shape, data_format: str) -> tuple:
    """The spatial sizes of a `(batch, *spatial, channels)` shape, or channels first."""
    return tuple(shape[1:-1]) if data_format == "channels_last" else tuple(shape[2:])
