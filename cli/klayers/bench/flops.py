"""Analytic floating-point operation counts of one step of a layer, from its config and shape.

Keras-free, so the parent process computes GFLOP/s from a worker's latencies. Conventions, as
performance engineers count them: a multiply-add is 2 FLOPs; matrix products and bias adds
are counted, cheap elementwise work (activations, softmax) is not; a training step (forward,
backward for inputs and weights, update) is 3 times the forward pass, less the input gradient
of the products that read the step's input: it is data, not a weight, so no backend computes
its gradient (a Dense train step is 2 forward passes, not 3). A layer whose work is
not arithmetic (Embedding's lookup, Dropout, reshaping) or that this module does not know
gets None, and its GFLOP/s column stays empty rather than showing a made-up figure.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

Shape = Sequence[int]

TRAIN_TO_FORWARD = 3

# Per-element costs of the normalizations (forward): LayerNormalization sums for the mean (1),
# subtracts, squares and sums for the variance (3), normalises (2), scales and offsets (2);
# RMSNormalization squares and sums (2), rescales (1), scales (1); BatchNormalization at
# inference applies its folded statistics: subtract, multiply, scale, offset.
# LeakyReLU scales the negative inputs (1); PReLU scales them by its slopes and adds the two
# parts, as Keras computes it: relu(x) - alpha * relu(-x) (2). ELU and Softmax are left out
# (None), as Activation is: their work is exponentials, which this module does not count.
# AlibiBias adds its bias to each score (1; the bias itself is heads x key_length products).
# Masking compares each element with mask_value (1) and selects it or zero (1, as ReLU's max);
# the `any` over the features is logical, not floating-point work.
_PER_ELEMENT = {"LayerNormalization": 8, "RMSNormalization": 4, "BatchNormalization": 4,
                "ReLU": 1, "LeakyReLU": 1, "PReLU": 2, "AlibiBias": 1, "Masking": 2}


def step_flops(
    layer: str, config: dict[str, Any], input_shape: Shape | Sequence[Shape], batch_size: int,
    mode: str = "predict",
) -> int | None:
    """FLOPs of one predict or train step of `layer` on a batch; None where not meaningful.

    `input_shape` excludes the batch axis; a layer with several inputs takes a list of shapes.
    """
    forward = forward_flops(layer, config, input_shape, batch_size)
    if forward is None or mode != "train":
        return forward
    reading_input = _INPUT_PRODUCTS.get(layer)
    skipped = reading_input(config, _as_shapes(input_shape), batch_size) if reading_input else 0
    return forward * TRAIN_TO_FORWARD - skipped


def forward_flops(
    layer: str, config: dict[str, Any], input_shape: Shape | Sequence[Shape], batch_size: int
) -> int | None:
    """FLOPs of one forward pass of `layer` on `batch_size` samples of `input_shape`."""
    shapes = _as_shapes(input_shape)
    if any(size is None for shape in shapes for size in shape):
        return None
    if layer in _PER_ELEMENT:
        return _PER_ELEMENT[layer] * batch_size * math.prod(shapes[0])
    counter = _COUNTERS.get(layer)
    return None if counter is None else counter(config, shapes, batch_size)


def _as_shapes(input_shape: Shape | Sequence[Shape]) -> list[tuple[int, ...]]:
    if input_shape and isinstance(input_shape[0], (list, tuple)):
        return [tuple(shape) for shape in input_shape]
    return [tuple(input_shape)]


def _dense(config: dict, shapes: list[tuple[int, ...]], batch: int) -> int:
    rows = batch * math.prod(shapes[0][:-1])
    inputs, units = shapes[0][-1], config["units"]
    bias = rows * units if config.get("use_bias", True) else 0
    return 2 * rows * inputs * units + bias


def einsum_dense_sizes(config: dict, shape: tuple[int, ...], batch: int
                       ) -> tuple[dict[str, int], str, str, str, tuple[int, ...] | None]:
    """EinsumDense's axes for an input of `shape` (batch excluded): (label sizes; the input,
    kernel and output labels, ellipsis axes named by digits; the bias shape or None), as
    keraslayers' einsum_arithmetic resolves them (Keras's three equation forms)."""
    equation = config["equation"].replace("...", "0")
    inputs, kernel, outputs = re.fullmatch(r"(0?[a-zA-Z]+0?),([a-zA-Z]+)->(0?[a-zA-Z]+0?)",
                                           equation).groups()
    full = (batch, *shape)
    left = inputs.startswith("0")
    inputs, outputs = inputs.strip("0"), outputs.strip("0")
    partial = config["output_shape"]
    partial = [partial] if isinstance(partial, int) else list(partial)
    given = outputs if left else outputs[1:]
    # The ellipsis axes, named "0", "1", ... (no equation letter is a digit).
    names = [str(i) for i in range(len(full) - len(inputs))]
    input_labels = (names + list(inputs)) if left else (list(inputs) + names)
    output_labels = (names + list(outputs)) if left else (list(outputs) + names)
    sizes = dict(zip(input_labels, full, strict=True))
    for label, size in zip(given, partial, strict=True):
        if size is not None:
            sizes[label] = size
    bias_axes = config.get("bias_axes")
    bias = None
    if bias_axes:
        first = min(outputs.index(c) for c in bias_axes)
        bias = tuple(sizes[c] if c in bias_axes else 1 for c in outputs[first:])
    return sizes, "".join(input_labels), kernel, "".join(output_labels), bias


def _einsum_product(config: dict, shapes: list[tuple[int, ...]], batch: int) -> int:
    sizes, inputs, kernel, _, _ = einsum_dense_sizes(config, shapes[0], batch)
    labels = [c for c in sizes if c in inputs or c in kernel]
    return 2 * math.prod(sizes[c] for c in labels)


def _einsum_dense(config: dict, shapes: list[tuple[int, ...]], batch: int) -> int:
    sizes, _, _, outputs, bias = einsum_dense_sizes(config, shapes[0], batch)
    bias_adds = math.prod(sizes[c] for c in outputs) if bias is not None else 0
    return _einsum_product(config, shapes, batch) + bias_adds


def _tuple(value: int | Sequence[int], rank: int) -> tuple[int, ...]:
    return (value,) * rank if isinstance(value, int) else tuple(value)


def _spatial_and_channels(config: dict, shape: tuple[int, ...]) -> tuple[tuple[int, ...], int]:
    if config.get("data_format") == "channels_first":
        return shape[1:], shape[0]
    return shape[:-1], shape[-1]


def _conv_output(length: int, window: int, padding: str, stride: int, dilation: int) -> int:
    # Keras's rule, as keraslayers.layers.conv_arithmetic.conv_output_length computes it
    # (tests/test_flops.py checks the two agree).
    if padding == "valid":
        return (length - ((window - 1) * dilation + 1)) // stride + 1
    return (length + stride - 1) // stride


def _window_outputs(config: dict, spatial: tuple[int, ...], window_key: str) -> tuple[int, ...]:
    rank = len(spatial)
    window = _tuple(config[window_key], rank)
    # Convolutions step by 1 unless told; pooling, by its window.
    default_strides = window if window_key == "pool_size" else 1
    strides = _tuple(config.get("strides") or default_strides, rank)
    dilation = _tuple(config.get("dilation_rate", 1), rank)
    padding = config.get("padding", "valid").lower()
    return tuple(
        _conv_output(n, k, padding, s, d)
        for n, k, s, d in zip(spatial, window, strides, dilation, strict=True)
    )


def _conv(config: dict, shapes: list[tuple[int, ...]], batch: int) -> int:
    spatial, channels = _spatial_and_channels(config, shapes[0])
    outputs = batch * math.prod(_window_outputs(config, spatial, "kernel_size"))
    kernel = math.prod(_tuple(config["kernel_size"], len(spatial)))
    filters, groups = config["filters"], config.get("groups", 1)
    bias = outputs * filters if config.get("use_bias", True) else 0
    return 2 * outputs * filters * (channels // groups) * kernel + bias


def _depthwise_conv(config: dict, shapes: list[tuple[int, ...]], batch: int) -> int:
    spatial, channels = _spatial_and_channels(config, shapes[0])
    outputs = batch * math.prod(_window_outputs(config, spatial, "kernel_size"))
    kernel = math.prod(_tuple(config["kernel_size"], len(spatial)))
    depth = channels * config.get("depth_multiplier", 1)
    bias = outputs * depth if config.get("use_bias", True) else 0
    return 2 * outputs * depth * kernel + bias


def _separable_conv(config: dict, shapes: list[tuple[int, ...]], batch: int) -> int:
    spatial, channels = _spatial_and_channels(config, shapes[0])
    outputs = batch * math.prod(_window_outputs(config, spatial, "kernel_size"))
    kernel = math.prod(_tuple(config["kernel_size"], len(spatial)))
    depth, filters = channels * config.get("depth_multiplier", 1), config["filters"]
    bias = outputs * filters if config.get("use_bias", True) else 0
    return 2 * outputs * depth * kernel + 2 * outputs * depth * filters + bias


def _conv_transpose(config: dict, shapes: list[tuple[int, ...]], batch: int) -> int:
    # Every input position scatters a full kernel into the output. The bias add is left out:
    # it is one addition per output element, negligible beside the kernel's work.
    spatial, channels = _spatial_and_channels(config, shapes[0])
    kernel = math.prod(_tuple(config["kernel_size"], len(spatial)))
    filters, groups = config["filters"], config.get("groups", 1)
    return 2 * batch * math.prod(spatial) * (channels // groups) * filters * kernel


def _pooling(config: dict, shapes: list[tuple[int, ...]], batch: int) -> int:
    # One comparison or addition per element of every window.
    spatial, channels = _spatial_and_channels(config, shapes[0])
    outputs = math.prod(_window_outputs(config, spatial, "pool_size"))
    window = math.prod(_tuple(config["pool_size"], len(spatial)))
    return batch * outputs * channels * window


def _global_pooling(config: dict, shapes: list[tuple[int, ...]], batch: int) -> int:
    return batch * math.prod(shapes[0])


# Taps per axis of UpSampling2D's interpolation kernels; "nearest" only copies (None).
_INTERPOLATION_TAPS = {"bilinear": 2, "bicubic": 4, "lanczos3": 6, "lanczos5": 10}


def _upsampling_2d(config: dict, shapes: list[tuple[int, ...]], batch: int) -> int | None:
    # A separable resize: the rows first (each new row mixes `taps` input rows, a multiply-add
    # per tap and element), then the columns of the taller image.
    taps = _INTERPOLATION_TAPS.get(config.get("interpolation", "nearest").lower())
    if taps is None:
        return None
    (rows, cols), channels = _spatial_and_channels(config, shapes[0])
    row_factor, col_factor = _tuple(config.get("size", 2), 2)
    taller = batch * rows * row_factor * cols * channels
    return 2 * taps * (taller + taller * col_factor)


def _without_bias(counter: Callable[[dict, list[tuple[int, ...]], int], int]):
    """`counter` with use_bias=False: the product alone."""
    return lambda config, shapes, batch: counter({**config, "use_bias": False}, shapes, batch)


def _depthwise_product(config: dict, shapes: list[tuple[int, ...]], batch: int) -> int:
    return _depthwise_conv({**config, "use_bias": False}, shapes, batch)


def _recurrent_input_product(gates: int) -> Callable[[dict, list[tuple[int, ...]], int], int]:
    # The input's projection onto every gate, at every step (not the recurrent product).
    def count(config: dict, shapes: list[tuple[int, ...]], batch: int) -> int:
        steps, features = shapes[0][-2], shapes[0][-1]
        return steps * 2 * batch * features * gates * config["units"]

    return count


def _bidirectional_input_product(config: dict, shapes: list[tuple[int, ...]], batch: int) -> int:
    inner = config.get("layer") or {}
    counter = _INPUT_PRODUCTS.get(inner.get("class_name"))
    return 2 * counter(inner["config"], shapes, batch) if counter else 0


def _attention_input_products(config: dict, shapes: list[tuple[int, ...]], batch: int) -> int:
    # The query, key and value projections read the inputs: all of the projection work but
    # the output projection's.
    query, value = shapes[0], shapes[1] if len(shapes) > 1 else shapes[0]
    key = shapes[2] if len(shapes) > 2 else value
    targets, sources = batch * math.prod(query[:-1]), batch * math.prod(value[:-1])
    if "head_dim" in config:  # GroupQueryAttention
        head = config["head_dim"]
        return 2 * head * (targets * query[-1] * config["num_query_heads"]
                           + sources * (key[-1] + value[-1]) * config["num_key_value_heads"])
    heads, key_dim = config["num_heads"], config["key_dim"]
    value_dim = config.get("value_dim") or key_dim
    return 2 * heads * (targets * query[-1] * key_dim
                        + sources * (key[-1] * key_dim + value[-1] * value_dim))


def _residual_input_products(config: dict, shapes: list[tuple[int, ...]], batch: int) -> int:
    inner = config.get("layer") or {}
    if inner.get("class_name") != "Dense":
        return 0
    units = inner["config"]["units"]
    products = 2 if units != shapes[0][-1] else 1  # the layer, and the projection if any
    return products * _dense({"units": units, "use_bias": False}, shapes, batch)


def _recurrent(gates: int) -> Callable[[dict, list[tuple[int, ...]], int], int]:
    def count(config: dict, shapes: list[tuple[int, ...]], batch: int) -> int:
        steps, features = shapes[0][-2], shapes[0][-1]
        units = config["units"]
        per_step = 2 * batch * (features + units) * gates * units
        bias = batch * gates * units if config.get("use_bias", True) else 0
        return steps * (per_step + bias)

    return count


_CELL_GATES = {"SimpleRNNCell": 1, "GRUCell": 3, "LSTMCell": 4}


def _cell_stack(config: dict) -> list[tuple[int, dict]] | None:
    """An RNN layer's cells as (gates, cell config), bottom first; None for a cell we do not
    count (a cell from elsewhere, a convolutional one)."""
    cells = config.get("cell")
    cells = cells if isinstance(cells, list) else [cells]
    stack = []
    for cell in cells:
        gates = _CELL_GATES.get((cell or {}).get("class_name"))
        if gates is None:
            return None
        stack.append((gates, cell["config"]))
    return stack


def _rnn(config: dict, shapes: list[tuple[int, ...]], batch: int) -> int | None:
    # Each cell of the stack as its recurrent layer would count it, on the width of the
    # outputs of the cell below (the first reads the input's features).
    stack = _cell_stack(config)
    if stack is None:
        return None
    steps, features, total = shapes[0][-2], shapes[0][-1], 0
    for gates, cell in stack:
        total += _recurrent(gates)(cell, [(steps, features)], batch)
        features = cell["units"]
    return total


def _rnn_input_product(config: dict, shapes: list[tuple[int, ...]], batch: int) -> int:
    # Only the first cell reads the step's input.
    stack = _cell_stack(config)
    if stack is None:
        return 0
    gates, cell = stack[0]
    return _recurrent_input_product(gates)(cell, shapes, batch)


def _conv_lstm_products(config: dict, shapes: list[tuple[int, ...]], batch: int,
                        recurrent: bool = True) -> int:
    # Per step: the input convolution onto the four gates (strides, padding, dilation) and,
    # with `recurrent`, the recurrent one ("same", stride 1) of the state, at every output
    # position; input shape (time, *spatial, channels), channels first (time, channels, ...).
    steps, (spatial, channels) = shapes[0][0], _spatial_and_channels(config, shapes[0][1:])
    outputs = batch * math.prod(_window_outputs(config, spatial, "kernel_size"))
    kernel = math.prod(_tuple(config["kernel_size"], len(spatial)))
    filters = config["filters"]
    reads = channels + (filters if recurrent else 0)
    return steps * 2 * outputs * kernel * reads * 4 * filters


def _conv_lstm(config: dict, shapes: list[tuple[int, ...]], batch: int) -> int:
    steps, (spatial, _) = shapes[0][0], _spatial_and_channels(config, shapes[0][1:])
    outputs = batch * math.prod(_window_outputs(config, spatial, "kernel_size"))
    bias = steps * outputs * 4 * config["filters"] if config.get("use_bias", True) else 0
    return _conv_lstm_products(config, shapes, batch) + bias


def _conv_lstm_input_product(config: dict, shapes: list[tuple[int, ...]], batch: int) -> int:
    return _conv_lstm_products(config, shapes, batch, recurrent=False)


def _time_distributed(input_products: bool) -> Callable[[dict, list[tuple[int, ...]], int],
                                                         int | None]:
    # The wrapped layer on every time slice (input shape (time, ...)): time folded into the
    # batch. Its forward count, or with `input_products` the products that read its input.
    def count(config: dict, shapes: list[tuple[int, ...]], batch: int) -> int | None:
        inner = config.get("layer") or {}
        table = _INPUT_PRODUCTS if input_products else _COUNTERS
        counter = table.get(inner.get("class_name"))
        if counter is None:
            return 0 if input_products else None
        return counter(inner["config"], [shapes[0][1:]], batch * shapes[0][0])

    return count


def _attention(config: dict, shapes: list[tuple[int, ...]], batch: int) -> int:
    # Keras's Attention: scores q k^T and the weighted sum of the values, no projections.
    query, value = shapes[0], shapes[1] if len(shapes) > 1 else shapes[0]
    return 2 * 2 * batch * query[-2] * value[-2] * query[-1]


def _additive_attention(config: dict, shapes: list[tuple[int, ...]], batch: int) -> int:
    # Keras's AdditiveAttention: for every (target, source) pair, query + key (1 per feature)
    # and the scale-weighted sum of their tanh (a multiply-add per feature, a plain sum without
    # use_scale), then the weighted sum of the values; the tanh itself is not counted.
    query, value = shapes[0], shapes[1] if len(shapes) > 1 else shapes[0]
    pairs = batch * query[-2] * value[-2]
    per_feature = 3 if config.get("use_scale", True) else 2
    return pairs * (per_feature * query[-1] + 2 * value[-1])


def _multi_head_attention(config: dict, shapes: list[tuple[int, ...]], batch: int) -> int:
    query, value = shapes[0], shapes[1] if len(shapes) > 1 else shapes[0]
    key = shapes[2] if len(shapes) > 2 else value
    heads, key_dim = config["num_heads"], config["key_dim"]
    value_dim = config.get("value_dim") or key_dim
    output = config.get("output_shape") or query[-1]
    output = output if isinstance(output, int) else math.prod(output)
    targets, sources = batch * math.prod(query[:-1]), batch * math.prod(value[:-1])
    projections = 2 * heads * (
        targets * query[-1] * key_dim
        + sources * key[-1] * key_dim
        + sources * value[-1] * value_dim
        + targets * value_dim * output
    )
    # Scores (q k^T) and the weighted sum of the values, for every source of every target.
    attention = 2 * heads * targets * value[-2] * (key_dim + value_dim)
    return projections + attention


def _group_query_attention(config: dict, shapes: list[tuple[int, ...]], batch: int) -> int:
    # Queries have num_query_heads heads; keys and values, num_key_value_heads shared ones.
    query, value = shapes[0], shapes[1] if len(shapes) > 1 else shapes[0]
    key = shapes[2] if len(shapes) > 2 else value
    head, query_heads = config["head_dim"], config["num_query_heads"]
    shared_heads = config["num_key_value_heads"]
    targets, sources = batch * math.prod(query[:-1]), batch * math.prod(value[:-1])
    projections = 2 * head * (
        targets * query[-1] * query_heads
        + sources * (key[-1] + value[-1]) * shared_heads
        + targets * query_heads * query[-1]
    )
    attention = 2 * query_heads * targets * value[-2] * 2 * head
    return projections + attention


def _bidirectional(config: dict, shapes: list[tuple[int, ...]], batch: int) -> int | None:
    # The wrapped recurrent layer runs twice, forwards and backwards.
    inner = config.get("layer") or {}
    counter = _COUNTERS.get(inner.get("class_name"))
    if counter is None or inner["class_name"] not in ("SimpleRNN", "GRU", "LSTM"):
        return None
    return 2 * counter(inner["config"], shapes, batch)


def _residual(config: dict, shapes: list[tuple[int, ...]], batch: int) -> int | None:
    # Counted when the wrapped layer is a Dense (the common case): its work, the projection
    # of the input when the widths differ, and the addition.
    inner = config.get("layer") or {}
    if inner.get("class_name") != "Dense":
        return None
    inner_config = inner["config"]
    work = _dense(inner_config, shapes, batch)
    units, inputs = inner_config["units"], shapes[0][-1]
    rows = batch * math.prod(shapes[0][:-1])
    projection = _dense({"units": units}, shapes, batch) if units != inputs else 0
    return work + projection + rows * units


def _block_attention(config: dict, width: int) -> tuple[Callable, dict]:
    """The counter and config of a Transformer block's self-attention: grouped-query with
    num_key_value_heads or rotary positions (whose rotation is elementwise, not counted)."""
    heads = config["num_heads"]
    if config.get("num_key_value_heads") or config.get("rope_max_wavelength"):
        return _group_query_attention, {
            "head_dim": width // heads, "num_query_heads": heads,
            "num_key_value_heads": config.get("num_key_value_heads") or heads}
    return _multi_head_attention, {"num_heads": heads, "key_dim": width // heads}


def _transformer(config: dict, shapes: list[tuple[int, ...]], batch: int) -> int:
    # Self-attention, cross-attention when a decoder is given an encoder sequence (a second
    # input), the feedforward's products (a third, the gate, with feedforward="gated") and
    # bias adds, the gate's product, the normalizations (per element, as _PER_ELEMENT) and
    # the residual additions.
    width, intermediate = shapes[0][-1], config["intermediate_dim"]
    rows = batch * math.prod(shapes[0][:-1])
    counter, attention = _block_attention(config, width)
    work = counter(attention, [shapes[0]], batch)
    if len(shapes) > 1:
        cross = {"num_heads": config["num_heads"], "key_dim": width // config["num_heads"]}
        work += _multi_head_attention(cross, shapes[:2], batch)
    gated = config.get("feedforward") == "gated"
    into = 2 if gated else 1  # the products from the block's width (up, and the gate)
    work += 2 * rows * width * intermediate * (into + 1)
    if config.get("use_bias", True):
        work += rows * (into * intermediate + width)
    if gated:
        work += rows * intermediate
    norm = "RMSNormalization" if config.get("normalization") == "rms" else "LayerNormalization"
    sublayers = min(len(shapes), 2) + 1  # each with a normalization and a residual addition
    return work + sublayers * rows * width * (_PER_ELEMENT[norm] + 1)


def _transformer_input_products(config: dict, shapes: list[tuple[int, ...]],
                                batch: int) -> int:
    # Post-norm, the self-attention's projections read the step's input; pre-norm they read
    # its normalization, whose scale needs their input gradient. A cross-attention's key and
    # value projections read the encoder sequence, an input too.
    width = shapes[0][-1]
    skipped = 0
    if not config.get("normalize_first", False):
        _, attention = _block_attention(config, width)
        skipped += _attention_input_products(attention, [shapes[0]], batch)
    if len(shapes) > 1:
        heads, head = config["num_heads"], width // config["num_heads"]
        skipped += 2 * 2 * heads * head * batch * math.prod(shapes[1][:-1]) * shapes[1][-1]
    return skipped


_COUNTERS: dict[str, Callable[[dict, list[tuple[int, ...]], int], int | None]] = {
    "Dense": _dense,
    "EinsumDense": _einsum_dense,
    "Conv1D": _conv,
    "Conv2D": _conv,
    "Conv3D": _conv,
    "DepthwiseConv1D": _depthwise_conv,
    "DepthwiseConv2D": _depthwise_conv,
    "SeparableConv1D": _separable_conv,
    "SeparableConv2D": _separable_conv,
    "Conv1DTranspose": _conv_transpose,
    "Conv2DTranspose": _conv_transpose,
    "Conv3DTranspose": _conv_transpose,
    **{f"{kind}Pooling{rank}D": _pooling
       for kind in ("Max", "Average") for rank in (1, 2, 3)},
    **{f"Global{kind}Pooling{rank}D": _global_pooling
       for kind in ("Max", "Average") for rank in (1, 2, 3)},
    "SimpleRNN": _recurrent(1),
    "GRU": _recurrent(3),
    "LSTM": _recurrent(4),
    "RNN": _rnn,
    "Bidirectional": _bidirectional,
    **{f"ConvLSTM{rank}D": _conv_lstm for rank in (1, 2, 3)},
    "TimeDistributed": _time_distributed(input_products=False),
    "Attention": _attention,
    "AdditiveAttention": _additive_attention,
    "MultiHeadAttention": _multi_head_attention,
    "GroupQueryAttention": _group_query_attention,
    "Residual": _residual,
    "UpSampling2D": _upsampling_2d,
    "TransformerEncoder": _transformer,
    "TransformerDecoder": _transformer,
}

# For a training step: the products that read the step's input, whose input gradient no
# backend computes (see the module's docstring). Weightless layers are left out: the bench
# scales their input by a learned scalar, so the gradient flows back to it.
_INPUT_PRODUCTS: dict[str, Callable[[dict, list[tuple[int, ...]], int], int]] = {
    "Dense": _without_bias(_dense),
    "EinsumDense": _einsum_product,
    **{name: _without_bias(_conv) for name in ("Conv1D", "Conv2D", "Conv3D")},
    **{f"Conv{rank}DTranspose": _conv_transpose for rank in (1, 2, 3)},
    "DepthwiseConv1D": _depthwise_product,
    "DepthwiseConv2D": _depthwise_product,
    "SeparableConv1D": _depthwise_product,
    "SeparableConv2D": _depthwise_product,
    "SimpleRNN": _recurrent_input_product(1),
    "GRU": _recurrent_input_product(3),
    "LSTM": _recurrent_input_product(4),
    "RNN": _rnn_input_product,
    "Bidirectional": _bidirectional_input_product,
    **{f"ConvLSTM{rank}D": _conv_lstm_input_product for rank in (1, 2, 3)},
    "TimeDistributed": _time_distributed(input_products=True),
    "MultiHeadAttention": _attention_input_products,
    "GroupQueryAttention": _attention_input_products,
    "Residual": _residual_input_products,
    "TransformerEncoder": _transformer_input_products,
    "TransformerDecoder": _transformer_input_products,
}
