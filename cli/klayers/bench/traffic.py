"""Analytic bytes moved by one step of a layer, from its config and shape: the memory side of
the roofline, as bench.flops is its arithmetic side.

Keras-free, so the parent process computes GB/s and the roofline bound from a worker's
latencies. The count is the minimum traffic: every tensor that crosses an op boundary of the
step is read or written once, in its dtype, and nothing inside a layer is (attention scores,
recurrent gates, a dropout mask drawn from its seed: a fused kernel keeps them on chip).

- Predict: read the inputs and the weights once, write the output once. An Embedding reads
  only the rows its indices touch (at most input_dim of them); a layer whose output depends on
  its input's shape alone (PositionEmbedding, SinePositionEncoding) does not read the input.
- Train (the bench's step: the layer, an mse loss against a float32 target, plain SGD):
  the forward pass as above; the loss reads the output and the target and writes the output's
  gradient; the backward pass reads that gradient and the inputs, writes the weights'
  gradients, and also reads the weights where a gradient passes through one weight to reach
  another (recurrences, attention, blocks: `_CHAINED`); the input's gradient is written only
  for layers without weights (the bench scales their input by a learned scalar so that they
  have a backward pass; the scalar itself is not counted), as bench.flops counts it; the update
  reads each weight and its gradient and writes the weight (touched rows only for an
  Embedding). Non-trainable state (moving statistics) is read, and written back in training.

Inputs are counted in the input dtype (int32 indices, float32 arrays), outputs and activation
gradients in the compute dtype, weights in the variable dtype (float32 under a mixed policy),
or, for a quantized model, as the bytes its weights were measured to take (int8/int4 values
and their scales: `weight_bytes`).
A layer this module does not know, or a step the bench does not run, gets None, and
`unknown_reason` says why.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from klayers.bench.flops import (
    _as_shapes,
    _spatial_and_channels,
    _tuple,
    _window_outputs,
    einsum_dense_sizes,
)

Shape = Sequence[int]

ITEM_BYTES = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "int64": 8, "int32": 4,
              "int16": 2, "int8": 1, "uint8": 1, "bool": 1}
TARGET_BYTES = 4  # the bench's training target is float32 whatever the policy
SHAPE_ONLY = {"SinePositionEncoding": "its output depends on the input's shape alone, so the "
                                      "bench runs no training step of it"}


@dataclass(frozen=True)
class Counts:
    """Element counts of one step's tensors (batch included), before dtypes are applied."""

    weights: int  # trainable weight elements the step reads (and, training, updates)
    outputs: int
    state: int = 0  # non-trainable elements read (and written back in training)
    reads_input: bool = True
    train_extra: int = 0  # weight elements a training step reads or writes beyond the rest


def step_bytes(
    layer: str, config: dict[str, Any], input_shape: Shape | Sequence[Shape], batch_size: int,
    mode: str = "predict", dtype: str = "float32", input_dtype: str = "float32",
    weight_bytes: int | None = None,
) -> int | None:
    """Bytes moved by one predict or train step of `layer` on a batch; None where unknown.

    `input_shape` excludes the batch axis (a list of shapes for several inputs); `dtype` is the
    layer's dtype policy ("float32", "mixed_bfloat16", ...), `input_dtype` the inputs'.
    `weight_bytes` (a quantized model's, as measured) replaces the weights' float count.
    """
    if unknown_reason(layer, config, input_shape, mode, dtype, input_dtype) is not None:
        return None
    # One shape given to a layer of several inputs is one tensor passed as each of them
    # (the bench's self-attention): it is read once.
    shapes = _as_shapes(input_shape)
    counts = _COUNTERS[layer](config, shapes, batch_size)
    compute, variable = _policy_bytes(dtype)
    item = ITEM_BYTES[input_dtype]
    inputs = item * batch_size * sum(math.prod(shape) for shape in shapes)
    weights, state = variable * counts.weights, variable * counts.state
    if weight_bytes is not None:
        weights = weight_bytes
    outputs = compute * counts.outputs
    forward = (inputs if counts.reads_input else 0) + weights + state + outputs
    if mode != "train":
        return forward
    loss = outputs + TARGET_BYTES * counts.outputs + outputs
    # Read the output's gradient and the inputs (where the forward pass read them), write dW.
    backward = outputs + (inputs if counts.reads_input else 0) + weights
    if layer in _CHAINED:
        backward += weights
    if not counts.weights and input_dtype.startswith("float"):
        backward += inputs  # the input's gradient
    update = 3 * weights
    return (forward + loss + backward + update + state
            + variable * counts.train_extra)


def step_counts(
    layer: str, config: dict[str, Any], input_shape: Shape | Sequence[Shape], batch_size: int
) -> Counts | None:
    """The element counts `step_bytes` works from; None for a layer it does not know."""
    counter = _COUNTERS.get(layer)
    return None if counter is None else counter(config, _as_shapes(input_shape), batch_size)


def unknown_reason(
    layer: str, config: dict[str, Any], input_shape: Shape | Sequence[Shape], mode: str = "predict",
    dtype: str = "float32", input_dtype: str = "float32",
) -> str | None:
    """Why `step_bytes` has no count for this step, or None when it has one."""
    if layer not in _COUNTERS:
        return f"{layer}: no traffic count for this layer"
    if mode == "train" and layer in SHAPE_ONLY:
        return f"{layer}: {SHAPE_ONLY[layer]}"
    if any(size is None for shape in _as_shapes(input_shape) for size in shape):
        return f"{layer}: input shape {input_shape} has unknown sizes"
    if input_dtype not in ITEM_BYTES:
        return f"{layer}: unknown input dtype {input_dtype!r}"
    if _policy_bytes(dtype) is None:
        return f"{layer}: unknown dtype policy {dtype!r}"
    try:
        _COUNTERS[layer](config, _as_shapes(input_shape), 1)
    except (KeyError, TypeError, ValueError) as error:
        return f"{layer}: config not understood ({type(error).__name__}: {error})"
    return None


def _policy_bytes(dtype: str) -> tuple[int, int] | None:
    """(compute, variable) bytes per element of a dtype policy's name."""
    if dtype.startswith("mixed_"):
        compute = ITEM_BYTES.get(dtype.removeprefix("mixed_"))
        return None if compute is None else (compute, ITEM_BYTES["float32"])
    size = ITEM_BYTES.get(dtype)
    return None if size is None else (size, size)


def _elements(shapes: list[tuple[int, ...]], batch: int) -> int:
    return batch * math.prod(shapes[0])


def _same_shape(config: dict, shapes: list[tuple[int, ...]], batch: int) -> Counts:
    return Counts(0, _elements(shapes, batch))


def _prelu(config: dict, shapes: list[tuple[int, ...]], batch: int) -> Counts:
    # One slope per element of a sample, 1 along the shared axes (counted from 1).
    shared = config.get("shared_axes") or []
    shared = [shared] if isinstance(shared, int) else shared
    slopes = math.prod(1 if axis + 1 in shared else size for axis, size in enumerate(shapes[0]))
    return Counts(slopes, _elements(shapes, batch))


def _upsampling(rank: int) -> Callable[[dict, list[tuple[int, ...]], int], Counts]:
    def count(config: dict, shapes: list[tuple[int, ...]], batch: int) -> Counts:
        return Counts(0, _elements(shapes, batch) * math.prod(_tuple(config.get("size", 2), rank)))

    return count


def _dense_weights(config: dict, inputs: int) -> int:
    units = config["units"]
    return inputs * units + (units if config.get("use_bias", True) else 0)


def _dense(config: dict, shapes: list[tuple[int, ...]], batch: int) -> Counts:
    rows = batch * math.prod(shapes[0][:-1])
    return Counts(_dense_weights(config, shapes[0][-1]), rows * config["units"])


def _einsum_dense(config: dict, shapes: list[tuple[int, ...]], batch: int) -> Counts:
    sizes, _, kernel, outputs, bias = einsum_dense_sizes(config, shapes[0], batch)
    weights = math.prod(sizes[c] for c in kernel) + (math.prod(bias) if bias else 0)
    return Counts(weights, math.prod(sizes[c] for c in outputs))


def _bias(config: dict, size: int) -> int:
    return size if config.get("use_bias", True) else 0


def _conv(config: dict, shapes: list[tuple[int, ...]], batch: int) -> Counts:
    spatial, channels = _spatial_and_channels(config, shapes[0])
    outputs = math.prod(_window_outputs(config, spatial, "kernel_size"))
    kernel = math.prod(_tuple(config["kernel_size"], len(spatial)))
    filters = config["filters"]
    weights = kernel * (channels // config.get("groups", 1)) * filters + _bias(config, filters)
    return Counts(weights, batch * outputs * filters)


def _depthwise_conv(config: dict, shapes: list[tuple[int, ...]], batch: int) -> Counts:
    spatial, channels = _spatial_and_channels(config, shapes[0])
    outputs = math.prod(_window_outputs(config, spatial, "kernel_size"))
    kernel = math.prod(_tuple(config["kernel_size"], len(spatial)))
    depth = channels * config.get("depth_multiplier", 1)
    return Counts(kernel * depth + _bias(config, depth), batch * outputs * depth)


def _separable_conv(config: dict, shapes: list[tuple[int, ...]], batch: int) -> Counts:
    spatial, channels = _spatial_and_channels(config, shapes[0])
    outputs = math.prod(_window_outputs(config, spatial, "kernel_size"))
    kernel = math.prod(_tuple(config["kernel_size"], len(spatial)))
    depth, filters = channels * config.get("depth_multiplier", 1), config["filters"]
    weights = kernel * depth + depth * filters + _bias(config, filters)
    return Counts(weights, batch * outputs * filters)


def _deconv_length(length: int, window: int, padding: str, stride: int,
                   output_padding: int | None, dilation: int) -> int:
    # Keras's rule, as keraslayers.layers.conv_arithmetic.deconv_output_length computes it.
    span = (window - 1) * dilation + 1
    if padding == "valid":
        extra = max(stride - span, 0) if output_padding is None else output_padding
        return (length - 1) * stride + span + extra
    if output_padding is None:
        return length * stride
    return (length - 1) * stride + span % 2 + output_padding


def _conv_transpose(config: dict, shapes: list[tuple[int, ...]], batch: int) -> Counts:
    spatial, channels = _spatial_and_channels(config, shapes[0])
    rank = len(spatial)
    window = _tuple(config["kernel_size"], rank)
    strides = _tuple(config.get("strides", 1), rank)
    dilation = _tuple(config.get("dilation_rate", 1), rank)
    padding = config.get("padding", "valid").lower()
    output_padding = config.get("output_padding")
    output_padding = (None,) * rank if output_padding is None else _tuple(output_padding, rank)
    outputs = math.prod(
        _deconv_length(n, k, padding, s, p, d)
        for n, k, s, p, d in zip(spatial, window, strides, output_padding, dilation, strict=True))
    filters = config["filters"]
    weights = math.prod(window) * channels * filters + _bias(config, filters)
    return Counts(weights, batch * outputs * filters)


def _pooling(config: dict, shapes: list[tuple[int, ...]], batch: int) -> Counts:
    spatial, channels = _spatial_and_channels(config, shapes[0])
    return Counts(0, batch * math.prod(_window_outputs(config, spatial, "pool_size")) * channels)


def _global_pooling(config: dict, shapes: list[tuple[int, ...]], batch: int) -> Counts:
    _, channels = _spatial_and_channels(config, shapes[0])
    return Counts(0, batch * channels)


def _adaptive_pooling(config: dict, shapes: list[tuple[int, ...]], batch: int) -> Counts:
    spatial, channels = _spatial_and_channels(config, shapes[0])
    return Counts(0, batch * math.prod(_tuple(config["output_size"], len(spatial))) * channels)


_GATES = {"SimpleRNN": 1, "GRU": 3, "LSTM": 4}


def _cell_weights(kind: str, config: dict, features: int) -> int:
    """Weights of a SimpleRNN/GRU/LSTM cell (or layer) on `features` inputs."""
    gates, units = _GATES[kind], config["units"]
    # A GRU with reset_after (the default) has separate input and recurrent biases.
    biases = 2 if kind == "GRU" and config.get("reset_after", True) else 1
    bias = biases * gates * units if config.get("use_bias", True) else 0
    return (features + units) * gates * units + bias


def _recurrent_outputs(config: dict, steps: int, batch: int, features: int) -> int:
    return batch * (steps if config.get("return_sequences", False) else 1) * features


def _recurrent(kind: str) -> Callable[[dict, list[tuple[int, ...]], int], Counts]:
    def count(config: dict, shapes: list[tuple[int, ...]], batch: int) -> Counts:
        steps, features = shapes[0][-2], shapes[0][-1]
        return Counts(_cell_weights(kind, config, features),
                      _recurrent_outputs(config, steps, batch, config["units"]))

    return count


def _rnn(config: dict, shapes: list[tuple[int, ...]], batch: int) -> Counts:
    # A cell or a list of cells, stacked: each one's units are the next one's features.
    cells = config["cell"]
    cells = cells if isinstance(cells, list) else [cells]
    steps, features = shapes[0][-2], shapes[0][-1]
    weights = 0
    for cell in cells:
        kind = cell["class_name"].removesuffix("Cell")
        weights += _cell_weights(kind, cell["config"], features)
        features = cell["config"]["units"]
    return Counts(weights, _recurrent_outputs(config, steps, batch, features))


def _bidirectional(config: dict, shapes: list[tuple[int, ...]], batch: int) -> Counts:
    inner = config["layer"]
    counts = _COUNTERS[inner["class_name"]](inner["config"], shapes, batch)
    # "concat" (the default) stacks both directions' features; sum, mul and ave merge them;
    # with None the bench times the forward direction's output.
    merged = 2 if config.get("merge_mode", "concat") == "concat" else 1
    return Counts(2 * counts.weights, merged * counts.outputs)


def _conv_lstm(config: dict, shapes: list[tuple[int, ...]], batch: int) -> Counts:
    # Input shape (time, *spatial, channels) (channels first: (time, channels, ...)); kernel
    # (*k, channels, 4 * filters), recurrent kernel (*k, filters, 4 * filters), bias.
    steps, (spatial, channels) = shapes[0][0], _spatial_and_channels(config, shapes[0][1:])
    kernel = math.prod(_tuple(config["kernel_size"], len(spatial)))
    filters = config["filters"]
    weights = kernel * (channels + filters) * 4 * filters + _bias(config, 4 * filters)
    positions = math.prod(_window_outputs(config, spatial, "kernel_size"))
    return Counts(weights, _recurrent_outputs(config, steps, batch, positions * filters))


def _time_distributed(config: dict, shapes: list[tuple[int, ...]], batch: int) -> Counts:
    # The wrapped layer on every time slice: time folded into the batch.
    inner = config["layer"]
    return _COUNTERS[inner["class_name"]](inner["config"], [shapes[0][1:]], batch * shapes[0][0])


def _embedding(config: dict, shapes: list[tuple[int, ...]], batch: int) -> Counts:
    lookups = _elements(shapes, batch)
    rows = min(lookups, config["input_dim"])
    return Counts(rows * config["output_dim"], lookups * config["output_dim"])


def _position_embedding(config: dict, shapes: list[tuple[int, ...]], batch: int) -> Counts:
    # The first `sequence` rows of the table, broadcast over the batch.
    sequence, features = shapes[0][-2], shapes[0][-1]
    return Counts(sequence * features, _elements(shapes, batch), reads_input=False)


def _sine_position_encoding(config: dict, shapes: list[tuple[int, ...]], batch: int) -> Counts:
    return Counts(0, _elements(shapes, batch), reads_input=False)


def _token_and_position_embedding(config: dict, shapes: list[tuple[int, ...]],
                                  batch: int) -> Counts:
    lookups, sequence = _elements(shapes, batch), shapes[0][-1]
    features = config["embedding_dim"]
    rows = min(lookups, config["vocabulary_size"]) + sequence
    return Counts(rows * features, lookups * features)


def _normalized_size(config: dict, shape: tuple[int, ...]) -> int:
    axes = config.get("axis", -1)
    axes = [axes] if isinstance(axes, int) else list(axes)
    return math.prod(shape[axis - 1 if axis > 0 else axis] for axis in axes)


def _layer_normalization(config: dict, shapes: list[tuple[int, ...]], batch: int) -> Counts:
    size = _normalized_size(config, shapes[0])
    parameters = config.get("center", True) + config.get("scale", True)
    return Counts(parameters * size, _elements(shapes, batch))


def _rms_normalization(config: dict, shapes: list[tuple[int, ...]], batch: int) -> Counts:
    return Counts(_normalized_size(config, shapes[0]), _elements(shapes, batch))


def _batch_normalization(config: dict, shapes: list[tuple[int, ...]], batch: int) -> Counts:
    # The moving mean and variance: read at inference, updated by a training step.
    size = _normalized_size(config, shapes[0])
    parameters = config.get("center", True) + config.get("scale", True)
    return Counts(parameters * size, _elements(shapes, batch), state=2 * size)


def _group_normalization(config: dict, shapes: list[tuple[int, ...]], batch: int) -> Counts:
    channels = shapes[0][config.get("axis", -1)]
    parameters = config.get("center", True) + config.get("scale", True)
    return Counts(parameters * channels, _elements(shapes, batch))


def _spectral_normalization(config: dict, shapes: list[tuple[int, ...]], batch: int) -> Counts:
    # The wrapped layer's traffic and its power-iteration vector u; a training step also
    # reads the kernel for the iteration and writes the normalised kernel back.
    inner = config["layer"]
    counts = _COUNTERS[inner["class_name"]](inner["config"], shapes, batch)
    units = inner["config"].get("units") or inner["config"].get("filters")
    kernel = counts.weights - _bias(inner["config"], units)
    return Counts(counts.weights, counts.outputs, state=units, train_extra=2 * kernel)


def _residual(config: dict, shapes: list[tuple[int, ...]], batch: int) -> Counts:
    # The wrapped layer, and a bias-free projection of the input when the widths differ (or
    # when asked for).
    inner = config["layer"]
    counts = _COUNTERS[inner["class_name"]](inner["config"], shapes, batch)
    inputs, units = shapes[0][-1], counts.outputs // (batch * math.prod(shapes[0][:-1]))
    projection = inputs * units if config.get("use_projection") or units != inputs else 0
    return Counts(counts.weights + projection, counts.outputs)


def _query_value_key(shapes: list[tuple[int, ...]]):
    query, value = shapes[0], shapes[1] if len(shapes) > 1 else shapes[0]
    return query, value, shapes[2] if len(shapes) > 2 else value


def _attention(config: dict, shapes: list[tuple[int, ...]], batch: int) -> Counts:
    query, value, _ = _query_value_key(shapes)
    scalars = bool(config.get("use_scale", False)) + (config.get("score_mode") == "concat")
    return Counts(scalars, batch * math.prod(query[:-1]) * value[-1])


def _additive_attention(config: dict, shapes: list[tuple[int, ...]], batch: int) -> Counts:
    # The scale is a vector of the query's feature size (Keras's default use_scale=True).
    query, value, _ = _query_value_key(shapes)
    weights = query[-1] if config.get("use_scale", True) else 0
    return Counts(weights, batch * math.prod(query[:-1]) * value[-1])


def _multi_head_attention(config: dict, shapes: list[tuple[int, ...]], batch: int) -> Counts:
    query, value, key = _query_value_key(shapes)
    heads, key_dim = config["num_heads"], config["key_dim"]
    value_dim = config.get("value_dim") or key_dim
    output = config.get("output_shape") or query[-1]
    output = output if isinstance(output, int) else math.prod(output)
    kernels = heads * (query[-1] * key_dim + key[-1] * key_dim + value[-1] * value_dim
                       + value_dim * output)
    biases = heads * (2 * key_dim + value_dim) + output
    return Counts(kernels + _bias(config, biases), batch * math.prod(query[:-1]) * output)


def _group_query_attention(config: dict, shapes: list[tuple[int, ...]], batch: int) -> Counts:
    query, value, key = _query_value_key(shapes)
    head, query_heads = config["head_dim"], config["num_query_heads"]
    shared = config["num_key_value_heads"]
    kernels = head * (query[-1] * query_heads + (key[-1] + value[-1]) * shared
                      + query_heads * query[-1])
    biases = head * (query_heads + 2 * shared) + query[-1]
    return Counts(kernels + _bias(config, biases), batch * math.prod(query[:-1]) * query[-1])


def _transformer(cross_attention: bool) -> Callable[[dict, list[tuple[int, ...]], int], Counts]:
    # keras-hub's blocks: self-attention (key_dim = width / heads), a feed-forward Dense pair
    # and a LayerNormalization after each; the decoder adds cross-attention and its
    # normalization when it is given an encoder sequence (a second input). The modern options:
    # grouped-query self-attention (num_key_value_heads, or rotary positions), RMS norms (a
    # scale only), a gated feedforward (a third Dense), use_bias=False.
    def count(config: dict, shapes: list[tuple[int, ...]], batch: int) -> Counts:
        width, intermediate, heads = shapes[0][-1], config["intermediate_dim"], config["num_heads"]
        use_bias = {"use_bias": config.get("use_bias", True)}
        attention = {"num_heads": heads, "key_dim": width // heads, **use_bias}
        blocks = 2 if cross_attention and len(shapes) > 1 else 1
        if config.get("num_key_value_heads") or config.get("rope_max_wavelength"):
            grouped = {"head_dim": width // heads, "num_query_heads": heads,
                       "num_key_value_heads": config.get("num_key_value_heads") or heads}
            weights = _group_query_attention({**grouped, **use_bias}, [shapes[0]], 1).weights
        else:
            weights = _multi_head_attention(attention, [shapes[0]], 1).weights
        if blocks == 2:
            weights += _multi_head_attention(attention, [shapes[0], shapes[1]], 1).weights
        per_norm = width if config.get("normalization") == "rms" else 2 * width
        weights += (blocks + 1) * per_norm  # the normalizations' scales (and offsets)
        inputs = 2 if config.get("feedforward") == "gated" else 1  # up (and gate) projections
        weights += inputs * width * intermediate + intermediate * width
        weights += _bias(config, inputs * intermediate + width)
        return Counts(weights, _elements(shapes, batch))

    return count


_COUNTERS: dict[str, Callable[[dict, list[tuple[int, ...]], int], Counts]] = {
    "Dense": _dense,
    "EinsumDense": _einsum_dense,
    "Activation": _same_shape,
    "ReLU": _same_shape,
    **{name: _same_shape for name in ("LeakyReLU", "ELU", "Softmax")},
    "PReLU": _prelu,
    **{f"UpSampling{rank}D": _upsampling(rank) for rank in (1, 2, 3)},
    "Conv1D": _conv,
    "Conv2D": _conv,
    "Conv3D": _conv,
    "DepthwiseConv1D": _depthwise_conv,
    "DepthwiseConv2D": _depthwise_conv,
    "SeparableConv1D": _separable_conv,
    "SeparableConv2D": _separable_conv,
    **{f"Conv{rank}DTranspose": _conv_transpose for rank in (1, 2, 3)},
    **{f"{kind}Pooling{rank}D": _pooling for kind in ("Max", "Average") for rank in (1, 2, 3)},
    **{f"Global{kind}Pooling{rank}D": _global_pooling
       for kind in ("Max", "Average") for rank in (1, 2, 3)},
    **{f"Adaptive{kind}Pooling{rank}D": _adaptive_pooling
       for kind in ("Max", "Average") for rank in (1, 2, 3)},
    **{name: _recurrent(name) for name in _GATES},
    "RNN": _rnn,
    "Bidirectional": _bidirectional,
    **{f"ConvLSTM{rank}D": _conv_lstm for rank in (1, 2, 3)},
    "TimeDistributed": _time_distributed,
    **{name: _same_shape for name in (
        "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
        "GaussianDropout", "AlphaDropout", "UnitNormalization", "RotaryEmbedding",
        "AlibiBias")},
    # Its Keras mask is left out: one bool per step, 1 / (4 * features) of a float32 output.
    "Masking": _same_shape,
    "Embedding": _embedding,
    "ReversibleEmbedding": _embedding,
    "PositionEmbedding": _position_embedding,
    "SinePositionEncoding": _sine_position_encoding,
    "TokenAndPositionEmbedding": _token_and_position_embedding,
    "LayerNormalization": _layer_normalization,
    "RMSNormalization": _rms_normalization,
    "BatchNormalization": _batch_normalization,
    "GroupNormalization": _group_normalization,
    "SpectralNormalization": _spectral_normalization,
    "Residual": _residual,
    "Attention": _attention,
    "AdditiveAttention": _additive_attention,
    "MultiHeadAttention": _multi_head_attention,
    "GroupQueryAttention": _group_query_attention,
    "TransformerEncoder": _transformer(cross_attention=False),
    "TransformerDecoder": _transformer(cross_attention=True),
}

# Layers whose backward pass reads their weights: a gradient reaches one weight through a
# product with another (a recurrence, attention's projections, a block's sublayers).
_CHAINED = frozenset({"SimpleRNN", "GRU", "LSTM", "RNN", "Bidirectional", "SeparableConv2D",
                      "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D",
                      "SeparableConv1D",
                      "MultiHeadAttention", "GroupQueryAttention", "TransformerEncoder",
                      "TransformerDecoder"})
