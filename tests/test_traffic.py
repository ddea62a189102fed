"""klayers.bench.traffic: hand-computed byte counts of representative layers, and every layer
of the standard suite counted (or refused with a reason), its weights and output sizes checked
against the layer Keras builds (those checks run in the torch test process only: they are the
same on every backend, and torch's process is the shortest)."""

import math
import os

import pytest

from klayers.bench import suites
from klayers.bench.traffic import step_bytes, step_counts, unknown_reason

F32 = 4


def test_dense_predict_and_train_by_hand():
    # Dense(4) on 8 features, batch 2: x (2, 8), kernel (8, 4) and bias (4,), y (2, 4).
    x, w, y = 2 * 8 * F32, (8 * 4 + 4) * F32, 2 * 4 * F32
    assert step_bytes("Dense", {"units": 4}, (8,), 2) == x + w + y == 240
    loss = y + y + y  # read y and the target, write dy
    backward = y + x + w  # read dy and x, write dW (no input gradient: x is data)
    update = 3 * w
    assert step_bytes("Dense", {"units": 4}, (8,), 2, "train") == (
        x + w + y + loss + backward + update) == 1008


def test_a_quantized_dense_reads_its_measured_weight_bytes():
    # Dense(4) on 8 features, int8: kernel 8x4 int8 + bias and scale float32 = 64 bytes.
    x, y = 2 * 8 * F32, 2 * 4 * F32
    assert step_bytes("Dense", {"units": 4}, (8,), 2, weight_bytes=64) == x + 64 + y


def test_einsum_dense_by_hand():
    # "abc,cde->abde" on (2, 5, 8) -> (2, 5, 3, 4): kernel (8, 3, 4), bias (3, 4).
    config = {"equation": "abc,cde->abde", "output_shape": [None, 3, 4], "bias_axes": "de"}
    x, w, y = 2 * 5 * 8 * F32, (8 * 3 * 4 + 3 * 4) * F32, 2 * 5 * 3 * 4 * F32
    assert step_bytes("EinsumDense", config, (5, 8), 2) == x + w + y
    # Right ellipsis: "ab...,bc->ac..." on (2, 6, 7): kernel (6, 4), output (2, 4, 7).
    right = {"equation": "ab...,bc->ac...", "output_shape": [4]}
    assert step_counts("EinsumDense", right, (6, 7), 2).outputs == 2 * 4 * 7


def test_mixed_precision_counts_outputs_in_the_compute_dtype_and_weights_in_float32():
    x, w, y = 2 * 8 * F32, (8 * 4 + 4) * F32, 2 * 4 * 2
    assert step_bytes("Dense", {"units": 4}, (8,), 2, dtype="mixed_bfloat16") == x + w + y
    assert step_bytes("Dense", {"units": 4}, (8,), 2, dtype="bfloat16") == x + w // 2 + y


def test_conv2d_by_hand():
    config = {"filters": 8, "kernel_size": 3, "padding": "same"}
    x = 2 * 16 * 16 * 4 * F32
    w = (3 * 3 * 4 * 8 + 8) * F32
    y = 2 * 16 * 16 * 8 * F32
    assert step_bytes("Conv2D", config, (16, 16, 4), 2) == x + w + y == 25760
    valid = {**config, "padding": "valid", "strides": 2}
    assert step_bytes("Conv2D", valid, (16, 16, 4), 2) == x + w + 2 * 7 * 7 * 8 * F32


def test_pooling_by_hand_and_a_weightless_train_step_writes_the_input_gradient():
    x, y = 2 * 16 * 16 * 4 * F32, 2 * 8 * 8 * 4 * F32
    assert step_bytes("MaxPooling2D", {"pool_size": 2}, (16, 16, 4), 2) == x + y == 10240
    train = (x + y) + 3 * y + (y + x) + x  # forward, loss, backward, the input's gradient
    assert step_bytes("MaxPooling2D", {"pool_size": 2}, (16, 16, 4), 2, "train") == train
    assert step_bytes("GlobalAveragePooling2D", {}, (16, 16, 4), 2) == x + 2 * 4 * F32
    assert step_bytes("AdaptiveMaxPooling2D", {"output_size": 7}, (14, 14, 4), 2) == (
        2 * 14 * 14 * 4 * F32 + 2 * 7 * 7 * 4 * F32)


def test_layer_normalization_by_hand():
    x = 2 * 10 * 8 * F32
    assert step_bytes("LayerNormalization", {}, (10, 8), 2) == x + 2 * 8 * F32 + x == 1344
    assert step_bytes("LayerNormalization", {"center": False}, (10, 8), 2) == 2 * x + 8 * F32


def test_embedding_reads_only_the_rows_it_looks_up():
    indices, y = 2 * 5 * 4, 2 * 5 * 8 * F32
    config = {"input_dim": 100, "output_dim": 8}
    # 10 lookups in a table of 100 rows: 10 rows read at most.
    assert step_bytes("Embedding", config, (5,), 2, input_dtype="int32") == (
        indices + 10 * 8 * F32 + y) == 680
    # A table of 4 rows: each row once.
    small = {"input_dim": 4, "output_dim": 8}
    assert step_bytes("Embedding", small, (5,), 2, input_dtype="int32") == (
        indices + 4 * 8 * F32 + y)
    rows = 10 * 8 * F32
    train = (indices + rows + y) + 3 * y + (y + indices + rows) + 3 * rows
    assert step_bytes("Embedding", config, (5,), 2, "train", input_dtype="int32") == train


def test_dropout_by_hand():
    x = 2 * 100 * F32
    assert step_bytes("Dropout", {"rate": 0.5}, (100,), 2) == 2 * x
    assert step_bytes("Dropout", {"rate": 0.5}, (100,), 2, "train") == (
        2 * x + 3 * x + 2 * x + x)


def test_masking_by_hand():
    # Reads the input, writes the output (its one-bool-per-step mask is not counted); a
    # training step also writes the input's gradient (no weights).
    x = 2 * 6 * 8 * F32
    assert step_bytes("Masking", {"mask_value": 0.0}, (6, 8), 2) == 2 * x
    assert step_bytes("Masking", {}, (6, 8), 2, "train") == 2 * x + 3 * x + 2 * x + x


def test_activations_by_hand():
    x = 2 * 6 * 8 * F32
    for layer in ("LeakyReLU", "ELU", "Softmax"):
        assert step_bytes(layer, {}, (6, 8), 2) == 2 * x
        assert step_bytes(layer, {}, (6, 8), 2, "train") == 2 * x + 3 * x + 2 * x + x
    # PReLU's alpha (6, 8), or (1, 8) shared along axis 1; no input gradient (it has weights).
    alpha = 6 * 8 * F32
    assert step_bytes("PReLU", {}, (6, 8), 2) == x + alpha + x
    assert step_bytes("PReLU", {"shared_axes": [1]}, (6, 8), 2) == x + 8 * F32 + x
    assert step_bytes("PReLU", {"shared_axes": 2}, (6, 8), 2) == x + 6 * F32 + x
    assert step_bytes("PReLU", {}, (6, 8), 2, "train") == (
        (x + alpha + x) + 3 * x + (x + x + alpha) + 3 * alpha)


def test_upsampling_writes_size_times_the_input():
    x = 2 * 4 * 3 * F32
    assert step_bytes("UpSampling1D", {"size": 3}, (4, 3), 2) == x + 3 * x
    assert step_bytes("UpSampling2D", {"size": [2, 3]}, (4, 4, 3), 2) == 4 * x + 6 * 4 * x
    assert step_bytes("UpSampling3D", {}, (2, 4, 4, 3), 1) == 4 * x + 8 * 4 * x
    y = 3 * x
    assert step_bytes("UpSampling1D", {"size": 3}, (4, 3), 2, "train") == (
        (x + y) + 3 * y + (y + x) + x)


def test_lstm_by_hand():
    # LSTM(3) on 5 steps of 2 features: kernel (2, 12), recurrent (3, 12), bias (12,).
    x, w, y = 2 * 5 * 2 * F32, ((2 + 3) * 12 + 12) * F32, 2 * 3 * F32
    assert step_bytes("LSTM", {"units": 3}, (5, 2), 2) == x + w + y == 392
    # The backward pass through time reads the weights too.
    train = (x + w + y) + 3 * y + (y + x + w) + w + 3 * w
    assert step_bytes("LSTM", {"units": 3}, (5, 2), 2, "train") == train == 2008
    sequences = {"units": 3, "return_sequences": True}
    assert step_bytes("LSTM", sequences, (5, 2), 2) == x + w + 5 * y


def test_multi_head_attention_by_hand():
    config = {"num_heads": 2, "key_dim": 4}
    # Query, key, value kernels (8, 2, 4) with biases (2, 4); output kernel (2, 4, 8), bias 8.
    w = (3 * (8 * 2 * 4 + 2 * 4) + 2 * 4 * 8 + 8) * F32
    x = 2 * 6 * 8 * F32
    # Self-attention: the one input is read once.
    assert step_bytes("MultiHeadAttention", config, (6, 8), 2) == x + w + x == 1920
    value = 2 * 3 * 8 * F32
    assert step_bytes("MultiHeadAttention", config, [(6, 8), (3, 8)], 2) == x + value + w + x


def test_depthwise_and_separable_1d_by_hand():
    # 10 steps, 3 channels, kernel 3, multiplier 2, "same": kernel (3, 3, 2) and bias (6,).
    config = {"kernel_size": 3, "padding": "same", "depth_multiplier": 2}
    x, w, y = 2 * 10 * 3 * F32, (3 * 3 * 2 + 6) * F32, 2 * 10 * 6 * F32
    assert step_bytes("DepthwiseConv1D", config, (10, 3), 2) == x + w + y
    # Then pointwise (1, 6, 4) and bias (4,); its backward pass reads the weights too.
    separable = {**config, "filters": 4}
    w, y = (3 * 3 * 2 + 6 * 4 + 4) * F32, 2 * 10 * 4 * F32
    assert step_bytes("SeparableConv1D", separable, (10, 3), 2) == x + w + y
    assert step_bytes("SeparableConv1D", separable, (10, 3), 2, "train") == (
        (x + w + y) + 3 * y + (y + x + w) + w + 3 * w)


def test_additive_attention_reads_its_scale_vector():
    x, value = 2 * 6 * 8 * F32, 2 * 3 * 8 * F32
    assert step_bytes("AdditiveAttention", {}, [(6, 8), (3, 8)], 2) == x + value + 8 * F32 + x
    assert step_bytes("AdditiveAttention", {"use_scale": False}, (6, 8), 2) == x + x


def test_a_layer_whose_output_depends_on_the_input_shape_alone_does_not_read_it():
    # PositionEmbedding(4) on 4 positions of 3 features, batch 2: the table (4, 3) broadcast.
    w, y = 4 * 3 * F32, 2 * 4 * 3 * F32
    config = {"sequence_length": 4}
    assert step_bytes("PositionEmbedding", config, (4, 3), 2) == w + y == 144
    assert step_bytes("PositionEmbedding", config, (4, 3), 2, "train") == (
        (w + y) + 3 * y + (y + w) + 3 * w)
    assert step_bytes("SinePositionEncoding", {}, (4, 3), 2) == y


def test_unknown_layers_and_steps_get_none_with_a_reason():
    assert step_bytes("NoSuchLayer", {}, (4,), 2) is None
    assert "no traffic count" in unknown_reason("NoSuchLayer", {}, (4,))
    assert step_bytes("SinePositionEncoding", {}, (8, 4), 2, "train") is None
    assert "shape alone" in unknown_reason("SinePositionEncoding", {}, (8, 4), "train")
    assert step_bytes("Dense", {}, (4,), 2) is None
    assert "config not understood" in unknown_reason("Dense", {}, (4,))
    assert step_bytes("Dense", {"units": 2}, (None,), 2) is None
    assert step_bytes("Dense", {"units": 2}, (4,), 2, dtype="float8") is None
    assert "dtype policy" in unknown_reason("Dense", {"units": 2}, (4,), dtype="float8")


def _catalog_cases():
    return [case for case in suites.load_suite("standard").cases if case.kind == "catalog"]


def test_every_catalogue_layer_of_the_standard_suite_is_counted_or_refused_with_a_reason():
    cases = _catalog_cases()
    catalogue = {record.name for record in suites.catalog_records()}
    assert catalogue <= {case.layer for case in cases}
    refused = set()
    for case in cases:
        for mode in case.modes:
            for batch in case.batch_sizes:
                count = step_bytes(case.layer, case.config, case.input_shape, batch, mode,
                                   case.dtypes[0], case.input_dtype)
                reason = unknown_reason(case.layer, case.config, case.input_shape, mode,
                                        case.dtypes[0], case.input_dtype)
                if count is None:
                    assert reason and case.layer in reason
                    refused.add((case.layer, mode))
                else:
                    assert reason is None and count > 0
    # The bench runs no training step of a layer whose output depends on its input's shape.
    assert refused == {("SinePositionEncoding", "train")}


def _weight_size(variables):
    return sum(math.prod(variable.shape) for variable in variables
               if "seed_generator" not in variable.path)


# Layers that read fewer weights than they hold: the rows their lookups touch.
PARTIAL_READS = ("Embedding", "ReversibleEmbedding", "TokenAndPositionEmbedding")


@pytest.mark.skipif(os.environ.get("KERAS_BACKEND", "tensorflow") != "torch",
                    reason="backend-independent: run once, in the torch test process")
@pytest.mark.parametrize("case", _catalog_cases(), ids=lambda case: case.label[:60])
def test_weights_and_outputs_agree_with_the_built_layer(case):
    from klayers.bench.worker import measure

    job = suites.Measurement(case, "keraslayers", "cpu:0", "float32", "predict", 2).to_job()
    model, _, _ = measure._keras_model(job)
    counts = step_counts(case.layer, case.config, case.input_shape, 2)
    assert counts.outputs == 2 * math.prod(model.outputs[0].shape[1:])
    if case.layer not in PARTIAL_READS:
        assert counts.weights == _weight_size(model.trainable_weights)
    assert counts.state == _weight_size(model.non_trainable_weights)


def test_a_quantized_record_counts_the_bytes_its_weights_took():
    from klayers.bench.results import make_record

    case = suites.Case(layer="Dense", kind="catalog", keras_name="Dense", config={"units": 4},
                       input_shape=(8,), quantize="int8")
    measurement = suites.Measurement(case=case, implementation="keraslayers", device="cpu:0",
                                     dtype="float32", mode="predict", batch_size=2)
    measured = {"backend": "jax", "status": "ok", "weight_bytes": 64,
                "latency_ms": {"median": 1.0, "p25": 1.0, "p75": 1.0, "iqr": 0.0}}
    record = make_record(measurement, measured)
    assert record["bytes"] == 2 * 8 * F32 + 64 + 2 * 4 * F32
    unquantized = make_record(suites.Measurement(
        case=suites.Case(layer="Dense", kind="catalog", keras_name="Dense",
                         config={"units": 4}, input_shape=(8,)),
        implementation="keraslayers", device="cpu:0", dtype="float32", mode="predict",
        batch_size=2), measured)
    assert unquantized["bytes"] == step_bytes("Dense", {"units": 4}, (8,), 2)
