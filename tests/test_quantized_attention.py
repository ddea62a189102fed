"""Quantized attention (issue 16): MultiHeadAttention's and GroupQueryAttention's projections
quantize as Keras 3.15.1's EinsumDense projections do (int8, int4, float8: the same weights,
names, dtypes, shapes and order, the same outputs; a quantized Keras layer's weights load into
ours); `model.quantize` on Transformer blocks quantizes what it quantizes in keras-hub's;
quantized models of our composite layers save and load; QLoRA trains the factors only; every
refusal names the layer and changes nothing."""

import warnings

import keras
import numpy as np
import pytest

import keraslayers as kl
from keraslayers.layers.attention import _Projection
from keraslayers.layers.quantization import QuantizationModeError, layer_policy
from tests.contract import random_inputs, to_numpy

Int4 = keras.quantizers.Int4QuantizationConfig

# (mode, config): int4 by default groups 128 rows (one group here), then groups of 4 rows,
# then one scale per column.
MODES = {
    "int8": ("int8", None),
    "int4": ("int4", None),
    "int4_block4": ("int4", lambda: Int4(block_size=4)),
    "int4_per_channel": ("int4", lambda: Int4(block_size=-1)),
    "float8": ("float8", None),
}

QUERY = random_inputs((2, 3, 8), seed=1)
VALUE = random_inputs((2, 5, 6), seed=2)


def _config(key):
    maker = MODES[key][1]
    return maker() if maker else None


def _described(layer):
    """(path inside the layer, dtype, shape, trainable) of every weight, in order."""
    return [(w.path.split("/", 1)[1], str(w.dtype), tuple(w.shape), w.trainable)
            for w in layer.weights]


def _model_weights(model):
    """(name, dtype, shape) of every weight: a loaded Sequential model's paths differ."""
    return [(w.name, str(w.dtype), tuple(w.shape)) for w in model.weights]


def _policy(layer):
    """The layer's own policy (a loaded block's sublayers share a DTypePolicyMap)."""
    return layer_policy(layer).name


def _assert_close(a, b, tolerance=1e-5):
    np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=tolerance, atol=tolerance)


def _quietly(function, *args, **kwargs):
    # Model.quantize warns for the layers that have no `quantize` (InputLayer, norms).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args, **kwargs)


def _attention_model(layer, query_shape=(3, 8), value_shape=(5, 6)):
    query, value = keras.Input(query_shape), keras.Input(value_shape)
    return keras.Model([query, value], layer(query, value))


def _attention_pair(name, **kwargs):
    arguments = ({"num_heads": 2, "key_dim": 4} if name == "MultiHeadAttention"
                 else {"head_dim": 4, "num_query_heads": 4, "num_key_value_heads": 2})
    theirs = getattr(keras.layers, name)(**arguments, **kwargs)
    ours = getattr(kl, name)(**arguments, **kwargs)
    value_shape = (5, 8) if name == "GroupQueryAttention" else (5, 6)
    return ours, theirs, value_shape


def _quantized_projections(layer):
    return [(sublayer.name, _policy(sublayer))
            for sublayer in layer._flatten_layers(include_self=False)
            if sublayer.quantization_mode]


@pytest.mark.grid("name")
@pytest.mark.parametrize("key", list(MODES))
@pytest.mark.parametrize("name", ["MultiHeadAttention", "GroupQueryAttention"])
def test_quantized_attention_is_keras(name, key):
    mode = MODES[key][0]
    ours, theirs, value_shape = _attention_pair(name, use_gate=name == "MultiHeadAttention")
    models = [_attention_model(layer, value_shape=value_shape) for layer in (ours, theirs)]
    ours.set_weights(theirs.get_weights())
    for model in models:
        _quietly(model.quantize, mode, config=_config(key))
    # The same quantized weights (names, dtypes, shapes, order and values) and policies.
    assert _described(ours) == _described(theirs)
    for mine, keras_weight in zip(ours.get_weights(), theirs.get_weights(), strict=True):
        assert mine.dtype == keras_weight.dtype
        np.testing.assert_array_equal(mine, keras_weight)
    assert _quantized_projections(ours) == _quantized_projections(theirs)
    assert len(_quantized_projections(ours)) == (5 if name == "MultiHeadAttention" else 4)
    value = random_inputs((2, *value_shape), seed=2)
    _assert_close(ours(QUERY, value), theirs(QUERY, value))


@pytest.mark.grid
@pytest.mark.parametrize("key", ["int8", "int4", "float8"])
def test_a_quantized_keras_attention_loads_into_ours(key):
    # Different float weights: only Keras's quantized weights, set into ours, are shared.
    mode = MODES[key][0]
    ours, theirs, _ = _attention_pair("MultiHeadAttention")
    model = _attention_model(theirs)
    _attention_model(ours)
    ours.quantize(mode)  # the block-level quantize: every projection
    _quietly(model.quantize, mode)
    ours.set_weights(theirs.get_weights())
    _assert_close(ours(QUERY, VALUE), theirs(QUERY, VALUE))


def test_quantized_multi_head_attention_over_two_axes_is_keras():
    ours, theirs, _ = _attention_pair("MultiHeadAttention", attention_axes=(1, 2))
    query, value = random_inputs((2, 3, 2, 8), seed=3), random_inputs((2, 3, 2, 6), seed=4)
    for layer in (ours, theirs):
        layer.build(query.shape, value.shape)
    ours.set_weights(theirs.get_weights())
    ours.quantize("int8")
    for projection in (theirs.query_dense, theirs.key_dense, theirs.value_dense,
                       theirs.output_dense):
        projection.quantize("int8")
    assert _described(ours) == _described(theirs)
    _assert_close(ours(query, value), theirs(query, value))


def _encoder_decoder_model(hidden=8):
    tokens = keras.Input((5,), dtype="int32")
    x = kl.TokenAndPositionEmbedding(20, 5, hidden, tie_weights=False)(tokens)
    encoded = kl.TransformerEncoder(16, num_heads=2)(x)
    x = kl.TransformerDecoder(16, num_heads=2, normalize_first=True)(x, encoded)
    return keras.Model(tokens, kl.Dense(3)(x))


TOKENS = np.array([[3, 1, 4, 0, 0], [7, 2, 9, 4, 11]], "int32")


@pytest.mark.grid
@pytest.mark.parametrize("key", ["int8", "int4_block4", "float8"])
def test_quantized_transformer_model_saves_and_loads(key, tmp_path):
    mode = MODES[key][0]
    model = _encoder_decoder_model()
    _quietly(model.quantize, mode, config=_config(key))
    encoder, decoder = model.layers[2], model.layers[3]
    # Every projection and feedforward Dense of both blocks; the token embedding too but
    # for float8 (Keras's Embedding does not take it).
    expected = 4 + 2 + 4 + 4 + 2 + 1 + (mode != "float8")
    quantized = [layer for layer in model._flatten_layers() if layer.quantization_mode]
    assert len(quantized) == expected
    assert encoder.self_attention_layer.query_dense.quantization_mode == mode
    assert decoder.cross_attention.output_dense.quantization_mode == mode
    expected_outputs = to_numpy(model(TOKENS))
    path = tmp_path / "quantized.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    # (float8 builds its scales before the kernel, as Keras's does: compare sorted.)
    assert sorted(_model_weights(loaded)) == sorted(_model_weights(model))
    assert ([_policy(layer) for layer in loaded._flatten_layers() if layer.quantization_mode]
            == [_policy(layer) for layer in quantized])
    _assert_close(loaded(TOKENS), expected_outputs, 1e-6)


def test_quantized_sequential_model_of_composites_saves_and_loads(tmp_path):
    # A Sequential model builds its layers under its own name, and loads them outside it:
    # the sublayers' paths differ, their policies must still be found.
    model = keras.Sequential([
        keras.Input((5,), dtype="int32"),
        kl.TokenAndPositionEmbedding(20, 5, 8),
        kl.TransformerEncoder(16, num_heads=2),
        kl.Residual(kl.Dense(6)),
    ])
    _quietly(model.quantize, "int8")
    assert model.layers[2].projection.quantization_mode == "int8"
    expected = to_numpy(model(TOKENS))
    model.save(tmp_path / "sequential.keras")
    loaded = keras.saving.load_model(tmp_path / "sequential.keras")
    # (A quantized layer built from its config creates the quantized kernel before the bias,
    # as Keras's does, and one quantized after its build after it: compare sorted.)
    assert sorted(_model_weights(loaded)) == sorted(_model_weights(model))
    _assert_close(loaded(TOKENS), expected, 1e-6)


def test_quantized_llama_style_block_saves_and_loads(tmp_path):
    # Grouped-query attention with rotary query and key heads (the rotation follows the
    # quantized product), RMS norms, a gated feedforward, no biases.
    inputs = keras.Input((5, 8))
    block = kl.TransformerDecoder(16, num_heads=4, num_key_value_heads=2,
                                  rope_max_wavelength=100, normalization="rms",
                                  feedforward="gated", use_bias=False, normalize_first=True)
    model = keras.Model(inputs, block(inputs))
    _quietly(model.quantize, "int4", config=Int4(block_size=4))
    assert len(_quantized_projections(block)) == 4 + 3
    sequence = random_inputs((2, 5, 8), seed=8)
    expected = to_numpy(model(sequence))
    model.save(tmp_path / "llama.keras")
    loaded = keras.saving.load_model(tmp_path / "llama.keras")
    assert sorted(_model_weights(loaded)) == sorted(_model_weights(model))
    _assert_close(loaded(sequence), expected, 1e-6)


def test_quantized_block_config_round_trip():
    block = kl.MultiHeadAttention(num_heads=2, key_dim=4, name="mha")
    block.build(QUERY.shape, VALUE.shape)
    # A float block's config is unchanged.
    assert block.get_config()["dtype"] == keras.dtype_policies.serialize(block.dtype_policy)
    block.quantize("int4", config=Int4(block_size=4))
    config = block.get_config()
    policies = keras.dtype_policies.deserialize(config["dtype"])
    assert isinstance(policies, keras.dtype_policies.DTypePolicyMap)
    assert len(policies) == 4
    rebuilt = kl.MultiHeadAttention.from_config(config)
    rebuilt.build(QUERY.shape, VALUE.shape)
    # (Built from its config, a projection creates its quantized kernel before its bias.)
    assert sorted(_described(rebuilt)) == sorted(_described(block))
    values = {w.path: w for w in block.weights}
    for weight in rebuilt.weights:
        weight.assign(to_numpy(values[weight.path]))
    _assert_close(rebuilt(QUERY, VALUE), block(QUERY, VALUE), 1e-6)
    assert rebuilt.compute_dtype == "float32" and rebuilt.quantization_mode is None
    assert _policy(rebuilt.query_dense) == "int4/4_from_float32"


@pytest.mark.grid
@pytest.mark.parametrize("block", ["TransformerEncoder", "TransformerDecoder"])
def test_model_quantize_on_blocks_is_keras_hub(block):
    keras_hub = pytest.importorskip("keras_hub")
    theirs = getattr(keras_hub.layers, block)(16, num_heads=2)
    sequence = random_inputs((2, 5, 8), seed=5)
    theirs(sequence)
    ours = getattr(kl, block).from_config(theirs.get_config())
    ours(sequence)
    ours.set_weights(theirs.get_weights())
    inputs = keras.Input((5, 8))
    model = keras.Model(inputs, theirs(inputs))
    _quietly(model.quantize, "int8")
    ours.quantize("int8")  # the block-level quantize picks the same sublayers
    assert _described(ours) == _described(theirs)
    for mine, hub_weight in zip(ours.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, hub_weight)
    _assert_close(ours(sequence), theirs(sequence))


@pytest.mark.grid
@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_qlora_on_quantized_attention_trains_only_the_factors_as_keras(mode):
    ours, theirs, _ = _attention_pair("MultiHeadAttention", use_bias=False)
    models = [_attention_model(layer) for layer in (ours, theirs)]
    ours.set_weights(theirs.get_weights())
    ours.quantize(mode)
    _quietly(models[1].quantize, mode)
    ours.enable_lora(2)  # query and value, the rest frozen (keras-hub's default)
    for projection in (theirs.query_dense, theirs.value_dense):
        projection.enable_lora(2)
    rng = np.random.default_rng(6)
    for projection in ("query_dense", "value_dense"):
        a = rng.normal(size=(8 if projection == "query_dense" else 6, 2, 2))
        for layer in (ours, theirs):
            getattr(layer, projection).lora_kernel_a.assign(a.astype("float32"))
            getattr(layer, projection).lora_kernel_b.assign(np.full((2, 4), 0.1, "float32"))
    assert [w.path.split("/", 1)[1] for w in ours.trainable_weights] == [
        "query/lora_kernel_a", "query/lora_kernel_b", "value/lora_kernel_a",
        "value/lora_kernel_b"]
    assert _described(ours) == _described(theirs)
    _assert_close(ours(QUERY, VALUE), theirs(QUERY, VALUE))
    frozen = [to_numpy(w) for w in ours.non_trainable_weights]
    factors = [to_numpy(w) for w in ours.trainable_weights]
    target = random_inputs((2, 3, 8), seed=7)
    for model in models:
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        model.fit([QUERY, VALUE], target, epochs=1, batch_size=2, verbose=0)
    for weight, value in zip(ours.non_trainable_weights, frozen, strict=True):
        np.testing.assert_array_equal(to_numpy(weight), value)
    assert all(not np.allclose(to_numpy(w), v)
               for w, v in zip(ours.trainable_weights, factors, strict=True))
    for mine, keras_weight in zip(ours.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_allclose(mine, keras_weight, rtol=1e-5, atol=1e-5)


def _snapshot(layer):
    return (_described(layer), [w.copy() for w in layer.get_weights()],
            [_policy(sublayer) for sublayer in layer._flatten_layers()])


def _assert_unchanged(layer, before):
    after = _snapshot(layer)
    assert after[0] == before[0] and after[2] == before[2]
    for a, b in zip(after[1], before[1], strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("request_, error, expected", [
    (dict(mode="int3"), ValueError, r"MultiHeadAttention layer 'mha'.*unknown.*'int3'"),
    (dict(mode="gptq", config=keras.quantizers.GPTQConfig(dataset=None, tokenizer=None)),
     QuantizationModeError, r"MultiHeadAttention layer 'mha'.*mode='gptq'.*uncalibrated"),
    (dict(mode="awq", config=keras.quantizers.AWQConfig(dataset=None, tokenizer=None)),
     QuantizationModeError, r"MultiHeadAttention layer 'mha'.*mode='awq'.*uncalibrated"),
    (dict(mode="int8", config=Int4()), ValueError, r"'mha'.*disagree.*'int8'"),
])
def test_attention_quantize_refusals_name_the_layer_and_change_nothing(request_, error,
                                                                       expected):
    layer = kl.MultiHeadAttention(num_heads=2, key_dim=4, name="mha")
    layer.build(QUERY.shape, VALUE.shape)
    before = _snapshot(layer)
    with pytest.raises(error, match=expected):
        layer.quantize(**request_)
    _assert_unchanged(layer, before)
    if request_["mode"] in ("gptq", "awq"):
        return  # a projection takes them, as Dense does (test_calibration.py)
    # The projections refuse as Dense does, naming themselves.
    with pytest.raises(error, match=expected.replace("MultiHeadAttention layer 'mha'",
                                                     "_Projection layer 'query'")
                       .replace("'mha'", "'query'")):
        layer.query_dense.quantize(**request_)
    _assert_unchanged(layer, before)
    layer.quantize("int8")  # the refusals left it quantizable
    assert {p.quantization_mode for p in layer._flatten_layers(include_self=False)} == {"int8"}


def test_unbuilt_and_second_quantize_are_refused():
    block = kl.TransformerEncoder(16, num_heads=2, name="encoder")
    with pytest.raises(ValueError, match=r"TransformerEncoder layer 'encoder'.*not built.*'int8'"):
        block.quantize("int8")
    projection = _Projection("abc,cde->abde", (None, 2, 4), bias_axes="de", name="proj")
    with pytest.raises(ValueError, match=r"_Projection layer 'proj'.*not built.*'int4'"):
        projection.quantize("int4")
    block.build((None, 5, 8))
    block.self_attention_layer.quantize("int8")
    before = _snapshot(block)
    with pytest.raises(ValueError, match=r"'encoder'.*already quantized.*query.*'int4'"):
        block.quantize("int4")
    with pytest.raises(ValueError, match=r"_Projection layer 'query'.*already quantized"):
        block.self_attention_layer.query_dense.quantize("int4")
    _assert_unchanged(block, before)


def test_sublayer_refusals_and_modes_no_sublayer_takes():
    layer = kl.MultiHeadAttention(num_heads=2, key_dim=4, dtype="float16", name="half")
    layer.build(QUERY.shape, VALUE.shape)
    with pytest.raises(ValueError, match=r"'half'.*sublayer.*query.*int8.*float16"):
        layer.quantize("int8")
    embedding = kl.TokenAndPositionEmbedding(20, 5, 8, name="tokens")
    embedding.build((None, 5))
    before = _snapshot(embedding)
    # A ValueError for users, and the NotImplementedError `Model.quantize` skips.
    with pytest.raises(QuantizationModeError, match=r"'tokens'.*mode='float8'"):
        embedding.quantize("float8")
    _assert_unchanged(embedding, before)
    lora = kl.MultiHeadAttention(num_heads=2, key_dim=4, name="adapted")
    lora.build(QUERY.shape, VALUE.shape)
    lora.enable_lora(2)
    with pytest.raises(ValueError, match=r"'adapted'.*sublayer.*LoRA.*'float8'"):
        lora.quantize("float8")
