"""Quantization (issue 16): Dense (int8, int4, float8), Embedding and ReversibleEmbedding
(int8, int4) quantize as Keras 3.15.1's do: the same quantized weights (names, dtypes, shapes,
order, values), outputs, dtype policies and configs; `model.quantize` picks the same layers;
quantized models save and load; LoRA trains on int8/int4 layers; float8 training updates
its scales as Keras's; every refusal names the layer and changes nothing."""

import warnings

import keras
import numpy as np
import pytest

import keraslayers as kl
from keraslayers.layers.quantization import QuantizationModeError
from tests.contract import outputs_and_gradients, random_inputs, to_numpy

Int4 = keras.quantizers.Int4QuantizationConfig

# (mode, config) for Dense: int4 by default groups 128 input rows (one group here), then
# groups of 4 rows, then one scale per unit.
DENSE_MODES = {
    "int8": ("int8", None),
    "int4": ("int4", None),
    "int4_block4": ("int4", lambda: Int4(block_size=4)),
    "int4_per_channel": ("int4", lambda: Int4(block_size=-1)),
    "float8": ("float8", None),
}
TABLE_MODES = {key: DENSE_MODES[key] for key in ("int8", "int4", "int4_block4",
                                                  "int4_per_channel")}


def _config(maker):
    return maker() if maker else None


def _described(layer):
    return [(w.name, str(w.dtype), tuple(w.shape), w.trainable) for w in layer.weights]


def _assert_same_weights(ours, theirs):
    assert _described(ours) == _described(theirs)
    for mine, keras_weight in zip(ours.get_weights(), theirs.get_weights(), strict=True):
        assert mine.dtype == keras_weight.dtype
        np.testing.assert_array_equal(mine, keras_weight)


def _assert_close(a, b):
    np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-6, atol=1e-6)


def _pair(make, build_shape):
    """(ours, Keras's) built with the same float weights."""
    theirs = make(keras.layers)
    theirs.build(build_shape)
    ours = make(kl)
    ours.build(build_shape)
    ours.set_weights(theirs.get_weights())
    return ours, theirs


@pytest.mark.parametrize("key", list(DENSE_MODES))
def test_dense_quantizes_as_keras(key):
    mode, config = DENSE_MODES[key]
    ours, theirs = _pair(lambda m: m.Dense(5, activation="relu"), (None, 7))
    ours.quantize(mode, config=_config(config))
    theirs.quantize(mode, config=_config(config))
    _assert_same_weights(ours, theirs)
    assert ours.dtype_policy.name == theirs.dtype_policy.name
    assert ours.quantization_mode == mode
    x = random_inputs((2, 3, 7))
    _assert_close(ours(x), theirs(x))
    # Keras's quantized weights, into a klayers layer quantized from other float weights.
    other = kl.Dense(5, activation="relu", kernel_initializer="ones")
    other.build((None, 7))
    other.quantize(mode, config=_config(config))
    other.set_weights(theirs.get_weights())
    _assert_close(other(x), theirs(x))


@pytest.mark.grid("lora")
@pytest.mark.parametrize("key", ["int8", "int4", "int4_per_channel"])
@pytest.mark.parametrize("lora", [False, True])
def test_quantized_dense_gradients_are_keras(key, lora):
    mode, config = DENSE_MODES[key]
    layers = _pair(lambda m: m.Dense(5, activation="tanh"), (None, 7))
    for layer in layers:
        layer.quantize(mode, config=_config(config))
        if lora:
            layer.enable_lora(2)
            layer.lora_kernel_b.assign(np.full((2, 5), 0.3, "float32"))
    layers[0].set_weights(layers[1].get_weights())
    x = random_inputs((3, 7))
    # [outputs, d/d inputs (through the dequantized kernel), d/d bias (and the factors)]
    results = [outputs_and_gradients(layer, x, input_gradient=True) for layer in layers]
    assert len(results[0]) == len(results[1]) == 3 + 2 * lora
    for mine, keras_result in zip(*results, strict=True):
        np.testing.assert_allclose(mine, keras_result, rtol=1e-5, atol=1e-5)


def test_dense_quantizes_under_mixed_bfloat16_as_keras():
    ours, theirs = _pair(lambda m: m.Dense(4, dtype="mixed_bfloat16"), (None, 6))
    for layer in (ours, theirs):
        layer.quantize("int8")
    assert ours.dtype_policy.name == theirs.dtype_policy.name == "int8_from_mixed_bfloat16"
    x = random_inputs((3, 6))
    outputs = [to_numpy(keras.ops.cast(layer(x), "float32")) for layer in (ours, theirs)]
    assert keras.backend.standardize_dtype(ours(x).dtype) == "bfloat16"
    np.testing.assert_allclose(*outputs, rtol=1e-6, atol=1e-6)


# The untied ReversibleEmbedding first: JAX runs a grid's first case per mode only.
TABLE_CASES = {
    "ReversibleEmbedding_untied": lambda m: m.ReversibleEmbedding(
        12, 6, tie_weights=False, logit_soft_cap=3.0),
    "ReversibleEmbedding": lambda m: m.ReversibleEmbedding(12, 6),
    "Embedding": lambda m: m.Embedding(12, 6),
}


@pytest.mark.grid("key")
@pytest.mark.parametrize("case", list(TABLE_CASES))
@pytest.mark.parametrize("key", list(TABLE_MODES))
def test_embeddings_quantize_as_keras(case, key):
    mode, config = TABLE_MODES[key]
    ours, theirs = _pair(TABLE_CASES[case], None)
    ours.quantize(mode, config=_config(config))
    theirs.quantize(mode, config=_config(config))
    _assert_same_weights(ours, theirs)
    assert ours.dtype_policy.name == theirs.dtype_policy.name
    ids = np.random.default_rng(0).integers(0, 12, size=(2, 5)).astype("int32")
    _assert_close(ours(ids), theirs(ids))
    if case != "Embedding":
        hidden = random_inputs((2, 5, 6))
        _assert_close(ours(hidden, reverse=True), theirs(hidden, reverse=True))


def test_quantized_embedding_keeps_its_mask():
    layer = kl.ReversibleEmbedding(10, 4, mask_zero=True)
    layer.build()
    layer.quantize("int8")
    ids = np.array([[1, 2, 0]], "int32")
    outputs = layer(ids)
    np.testing.assert_array_equal(to_numpy(outputs._keras_mask), [[True, True, False]])
    assert layer.compute_mask(ids) is not None
    layer(random_inputs((1, 3, 4)), reverse=True)
    assert layer.compute_mask(ids) is None


def test_quantized_kernel_property_is_the_dequantized_kernel():
    layer = kl.Dense(6)
    layer.build((None, 8))
    float_kernel = to_numpy(layer.kernel)
    layer.quantize("int8")
    # int8 per unit: within half a quantization step of the float kernel.
    step = np.max(np.abs(float_kernel), axis=0) / 127
    assert np.all(np.abs(to_numpy(layer.kernel) - float_kernel) <= step / 2 + 1e-6)


def _model(layers_module, dense_units=(6, 3)):
    inputs = keras.Input((5,), dtype="int32")
    x = layers_module.Embedding(20, 8)(inputs)
    x = layers_module.Dense(dense_units[0], activation="relu")(x)
    x = layers_module.Dense(dense_units[1])(x)
    return keras.Model(inputs, x)


def _quantized_layers(model):
    return sorted((type(layer).__name__, layer.dtype_policy.name)
                  for layer in model._flatten_layers() if layer.quantization_mode)


@pytest.mark.grid
@pytest.mark.parametrize("mode", ["int8", "int4", "float8"])
def test_model_quantize_picks_the_layers_keras_picks(mode):
    ours, theirs = _model(kl), _model(keras.layers)
    ours.set_weights(theirs.get_weights())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # float8: Embedding and InputLayer are skipped
        ours.quantize(mode)
        theirs.quantize(mode)
    assert _quantized_layers(ours) == _quantized_layers(theirs)
    assert _quantized_layers(ours)
    ids = np.random.default_rng(1).integers(0, 20, size=(3, 5)).astype("int32")
    _assert_close(ours(ids), theirs(ids))


def test_model_quantize_sequential_and_transformer_blocks():
    ours = keras.Sequential([keras.Input((3, 4)), kl.Dense(4), kl.TransformerEncoder(8, 2)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours.quantize("int8")
    quantized = {layer.name for layer in ours._flatten_layers() if layer.quantization_mode}
    # The block's feed-forward Dense layers are leaves of the model, so they quantize too.
    assert {"feedforward_intermediate_dense", "feedforward_output_dense"} <= quantized
    assert tuple(ours(random_inputs((2, 3, 4))).shape) == (2, 3, 4)


@pytest.mark.grid
@pytest.mark.parametrize("key", ["int4", "float8", "int8", "int4_block4", "int4_per_channel"])
def test_quantized_model_saves_and_loads(key, tmp_path):
    mode, config = DENSE_MODES[key]
    inputs = keras.Input((5,), dtype="int32")
    x = kl.ReversibleEmbedding(20, 8, tie_weights=False)(inputs)
    outputs = kl.Dense(4, activation="tanh")(x)
    model = keras.Model(inputs, outputs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.quantize(mode, config=_config(config))
    ids = np.random.default_rng(2).integers(0, 20, size=(3, 5)).astype("int32")
    expected = to_numpy(model(ids))
    path = tmp_path / "quantized.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    # (float8 builds its scales before the kernel, so its order differs after loading, as
    # Keras's does; the file holds Keras's order.)
    assert sorted(_described(loaded)) == sorted(_described(model))
    assert _quantized_layers(loaded) == _quantized_layers(model)
    np.testing.assert_allclose(to_numpy(loaded(ids)), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.grid
@pytest.mark.parametrize("key", ["float8", *(key for key in DENSE_MODES if key != "float8")])
def test_quantized_config_builds_quantized_weights(key):
    mode, config = DENSE_MODES[key]
    ours, theirs = _pair(lambda m: m.Dense(5), (None, 7))
    ours.quantize(mode, config=_config(config))
    theirs.quantize(mode, config=_config(config))
    config_dict = ours.get_config()
    assert config_dict["dtype"] == theirs.get_config()["dtype"]
    assert config_dict["quantization_config"] == theirs.get_config()["quantization_config"]
    rebuilt, keras_rebuilt = kl.Dense.from_config(config_dict), keras.layers.Dense.from_config(
        theirs.get_config())
    rebuilt.build((None, 7))
    keras_rebuilt.build((None, 7))
    assert _described(rebuilt) == _described(keras_rebuilt)
    assert rebuilt.quantization_mode == mode and getattr(rebuilt, "_is_quantized", False)
    values = {w.name: v for w, v in zip(ours.weights, ours.get_weights(), strict=True)}
    rebuilt.set_weights([values[w.name] for w in rebuilt.weights])
    x = random_inputs((2, 7))
    _assert_close(rebuilt(x), ours(x))


@pytest.mark.grid
@pytest.mark.parametrize("case", list(TABLE_CASES))
def test_quantized_embedding_config_round_trip(case):
    ours = TABLE_CASES[case](kl)
    ours.build()
    ours.quantize("int4", config=Int4(block_size=4))
    rebuilt = type(ours).from_config(ours.get_config())
    rebuilt.build()
    assert _described(rebuilt) == _described(ours)
    rebuilt.set_weights(ours.get_weights())
    ids = np.array([[3, 1, 7]], "int32")
    _assert_close(rebuilt(ids), ours(ids))


def test_quantization_config_argument_takes_a_config_or_its_dict():
    config = keras.quantizers.Int8QuantizationConfig()
    assert kl.Dense(3, quantization_config=config).quantization_config is config
    serialized = keras.saving.serialize_keras_object(config)
    restored = kl.Embedding(4, 2, quantization_config=serialized).quantization_config
    assert isinstance(restored, keras.quantizers.Int8QuantizationConfig)
    with pytest.raises(ValueError, match=r"Dense layer .*quantization_config.*'int9'"):
        kl.Dense(3, quantization_config="int9")


def _train_one_step(model, x, y):
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    model.fit(x, y, epochs=1, batch_size=len(x), verbose=0)


@pytest.mark.grid("mode")
@pytest.mark.parametrize("mode", ["int8", "int4"])
@pytest.mark.parametrize("order", ["quantize_then_lora", "lora_then_quantize"])
def test_qlora_trains_only_the_factors_as_keras(mode, order):
    pairs = _pair(lambda m: m.Dense(4, activation="tanh"), (None, 6))
    rng = np.random.default_rng(5)
    factors = [rng.normal(size=(6, 2)).astype("float32"), rng.normal(size=(2, 4)).astype(
        "float32")]
    models = []
    for layer in pairs:
        if order == "quantize_then_lora":
            layer.quantize(mode)
            layer.enable_lora(2)
        else:
            layer.enable_lora(2)
            layer.quantize(mode)
        layer.lora_kernel_a.assign(factors[0])
        layer.lora_kernel_b.assign(factors[1] * 0.1)
        models.append(keras.Sequential([keras.Input((6,)), layer]))
    ours, theirs = pairs
    _assert_same_weights(ours, theirs)
    assert {w.name for w in ours.trainable_weights} == {"bias", "lora_kernel_a",
                                                          "lora_kernel_b"}
    x, y = random_inputs((8, 6)), random_inputs((8, 4), seed=1)
    _assert_close(ours(x), theirs(x))
    frozen = [to_numpy(w) for w in ours.non_trainable_weights]
    before = to_numpy(ours.lora_kernel_b)
    for model in models:
        _train_one_step(model, x, y)
    for weight, value in zip(ours.non_trainable_weights, frozen, strict=True):
        np.testing.assert_array_equal(to_numpy(weight), value)
    assert not np.allclose(to_numpy(ours.lora_kernel_b), before)
    for mine, keras_weight in zip(ours.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_allclose(mine, keras_weight, rtol=1e-5, atol=1e-5)


@pytest.mark.grid
@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_qlora_embedding_and_saving(mode, tmp_path):
    layer = kl.Embedding(10, 4)
    layer.build()
    layer.quantize(mode, config=Int4(block_size=2) if mode == "int4" else None)
    layer.enable_lora(2)
    layer.lora_embeddings_b.assign(np.full((2, 4), 0.5, "float32"))
    ids = np.array([[1, 4, 9]], "int32")
    # The table property is where the dequantized table meets the update.
    expected = np.take(to_numpy(layer.embeddings), to_numpy(ids), axis=0)
    _assert_close(layer(ids), expected)
    model = keras.Sequential([keras.Input((3,), dtype="int32"), layer])
    path = tmp_path / "qlora.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.layers[-1].lora_enabled and loaded.layers[-1].quantization_mode == mode
    _assert_close(loaded(ids), model(ids))


def test_float8_training_updates_the_scales_as_keras():
    pairs = _pair(lambda m: m.Dense(4, dtype=keras.dtype_policies.DTypePolicy("float32")),
                  (None, 6))
    models = []
    for layer in pairs:
        layer.quantize("float8")
        models.append(keras.Sequential([keras.Input((6,)), layer]))
    ours, theirs = pairs
    x, y = random_inputs((8, 6)), random_inputs((8, 4), seed=1)
    scales = {w.name: to_numpy(w) for w in ours.weights if "scale" in w.name or "amax" in w.name}
    models[0].predict(x, verbose=0)  # inference leaves the scales alone
    for weight in ours.weights:
        if weight.name in scales:
            np.testing.assert_array_equal(to_numpy(weight), scales[weight.name])
    for model in models:
        for _ in range(2):
            _train_one_step(model, x, y)
    changed = [w.name for w in ours.weights
               if w.name in scales and not np.array_equal(to_numpy(w), scales[w.name])]
    assert {"inputs_amax_history", "kernel_amax_history", "outputs_grad_amax_history",
            "inputs_scale", "kernel_scale", "outputs_grad_scale"} <= set(changed)
    for mine, keras_weight in zip(ours.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_allclose(mine, keras_weight, rtol=1e-5, atol=1e-6)
    _assert_close(ours(x), theirs(x))


def _snapshot(layer):
    return _described(layer), [w.copy() for w in layer.get_weights()], layer.dtype_policy.name


@pytest.mark.parametrize("request_, expected", [
    (dict(mode="int3"), r"Dense layer 'dense_q'.*unknown quantization mode.*'int3'"),
    (dict(mode="int8", config=Int4()), r"Dense layer 'dense_q'.*disagree.*'int8'"),
    (dict(mode="int8", config={"mode": "int8"}), r"Dense layer 'dense_q'.*`config`"),
    (dict(mode=None), r"Dense layer 'dense_q'.*`mode` or a `config`"),
    (dict(mode="gptq"), r"Dense layer 'dense_q'.*mode='gptq' needs config=.*GPTQConfig"),
    (dict(mode="awq", config=keras.quantizers.GPTQConfig(dataset=None, tokenizer=None)),
     r"Dense layer 'dense_q'.*disagree.*'awq'"),
])
def test_quantize_refusals_name_the_layer_and_change_nothing(request_, expected):
    layer = kl.Dense(3, name="dense_q")
    layer.build((None, 4))
    before = _snapshot(layer)
    with pytest.raises(ValueError, match=expected):
        layer.quantize(**request_)
    after = _snapshot(layer)
    assert after[0] == before[0] and after[2] == before[2]
    for a, b in zip(after[1], before[1], strict=True):
        np.testing.assert_array_equal(a, b)
    layer.quantize("int8")  # the refusal left it quantizable
    assert layer.quantization_mode == "int8"


def test_quantize_refuses_an_unbuilt_layer_and_a_second_quantize():
    layer = kl.Embedding(5, 2, name="table")
    with pytest.raises(ValueError, match=r"Embedding layer 'table'.*not built.*'int8'"):
        layer.quantize("int8")
    layer.build()
    layer.quantize("int8")
    before = _snapshot(layer)
    with pytest.raises(ValueError, match=r"Embedding layer 'table'.*already quantized.*'int4'"):
        layer.quantize("int4")
    assert _snapshot(layer)[0] == before[0] and _snapshot(layer)[2] == before[2]


def test_a_mode_the_layer_does_not_take_is_both_errors_keras_raises():
    layer = kl.Embedding(5, 2, name="table")
    layer.build()
    # A ValueError for users; the NotImplementedError `Model.quantize` skips with a warning.
    with pytest.raises(QuantizationModeError, match=r"Embedding layer 'table'.*'float8'"):
        layer.quantize("float8")
    with pytest.raises(NotImplementedError):
        layer.quantize("float8")
    assert layer.quantization_mode is None and str(layer._embeddings.dtype) == "float32"


def test_float16_int8_subclass_and_lora_float8_refusals():
    layer = kl.Dense(3, dtype="float16", name="half")
    layer.build((None, 4))
    with pytest.raises(ValueError, match=r"Dense layer 'half'.*int8.*float16"):
        layer.quantize("int8")

    class Scaled(kl.Dense):
        pass

    sub = Scaled(3)
    sub.build((None, 4))
    with pytest.raises(NotImplementedError):
        sub.quantize("int8")
    sub.quantize("int8", type_check=False)
    assert sub.quantization_mode == "int8"

    lora = kl.Dense(3, name="adapted")
    lora.build((None, 4))
    lora.quantize("float8")
    with pytest.raises(ValueError, match=r"Dense layer 'adapted'.*LoRA.*'float8'"):
        lora.enable_lora(2)
    assert not lora.lora_enabled


def _weight_bytes(layer, names):
    return sum(int(np.prod(w.shape)) * np.dtype(str(w.dtype)).itemsize
               for w in layer.weights if w.name in names)


@pytest.mark.parametrize("mode, ratio", [("int8", 4), ("int4", 8)])
def test_quantized_weights_are_4x_and_8x_smaller(mode, ratio):
    dense = kl.Dense(64, use_bias=False)
    dense.build((None, 256))
    table = kl.Embedding(256, 64)
    table.build()
    for layer, weight, scales in ((dense, "kernel", 64), (table, "embeddings", 256)):
        before = _weight_bytes(layer, {weight})
        layer.quantize(mode, config=Int4(block_size=-1) if mode == "int4" else None)
        assert all(str(w.dtype) == "int8" for w in layer.weights if w.name == weight)
        assert _weight_bytes(layer, {weight}) * ratio == before
        # Plus one float32 scale per unit (Dense) or row (Embedding), and nothing else.
        total = _weight_bytes(layer, {w.name for w in layer.weights})
        assert total == _weight_bytes(layer, {weight}) + 4 * scales


def test_setting_a_quantized_policy_quantizes_the_built_layer():
    dense = kl.Dense(3)
    dense.build((None, 4))
    dense.dtype_policy = "int8_from_float32"
    assert [w.name for w in dense.weights] == ["bias", "kernel", "kernel_scale"]
    table = kl.Embedding(3, 4)
    table.build()
    table.dtype_policy = "int4/2_from_float32"
    # The policy's block size (Keras's default config would group 128 columns instead).
    assert tuple(table.embeddings_scale.shape) == (3, 2)
    assert table.quantization_config.block_size == 2


@pytest.mark.filterwarnings("ignore:Layer InputLayer does not have")
@pytest.mark.grid
@pytest.mark.parametrize("key", ["float8", "int8", "int4_block4", "qlora_int8"])
def test_keras_quantized_weight_files_load(key, tmp_path):
    mode, config = DENSE_MODES[key.replace("qlora_", "")]
    models = []
    for module in (keras.layers, kl):
        model = keras.Sequential([keras.Input((6,)), module.Dense(4)])
        if key.startswith("qlora"):
            model.layers[0].enable_lora(2)
        model.quantize(mode, config=_config(config))
        models.append(model)
    theirs, ours = models
    # Ours rebuilt from its config (quantized weights built directly; float8's scales come
    # first then), so the file's order, not the creation order, has to hold.
    ours = keras.Sequential.from_config(ours.get_config())
    if key.startswith("qlora"):
        theirs.layers[0].lora_kernel_b.assign(np.full((2, 4), 0.2, "float32"))
    path = tmp_path / "keras.weights.h5"
    theirs.save_weights(path)
    ours.load_weights(path)
    # Keras's file holds its order (float8: kernel, bias, then the scales; QLoRA: the update
    # merged into the int8 kernel): loaded, ours computes what Keras's own load computes.
    reloaded = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4)])
    if key.startswith("qlora"):
        reloaded.layers[0].enable_lora(2)
    reloaded.quantize(mode, config=_config(config))
    reloaded.load_weights(path)
    x = random_inputs((3, 6))
    _assert_close(ours(x), reloaded(x))


@pytest.mark.grid
@pytest.mark.parametrize("policy", ["gptq/4/8_from_float32", "gptq/8/-1_from_float32"])
def test_gptq_calibrated_keras_weights_compute_as_keras(policy, tmp_path):
    theirs = keras.Sequential([keras.Input((16,)), keras.layers.Dense(5, dtype=policy)])
    rng = np.random.default_rng(4)
    # Calibrated-looking weights: codes, scales, zero points, each input row's group.
    values = {
        "kernel": lambda shape: rng.integers(0, 256, shape),
        "kernel_scale": lambda shape: rng.uniform(0.01, 0.1, shape),
        "kernel_zero": lambda shape: rng.integers(0, 16, shape),
        "g_idx": lambda shape: np.arange(16) // 8 if "/8_" in policy else np.zeros(16),
        "bias": lambda shape: rng.normal(size=shape),
    }
    layer = theirs.layers[0]
    for weight in layer.weights:
        weight.assign(np.asarray(values[weight.name](tuple(weight.shape))).astype(
            str(weight.dtype)))
    layer.is_gptq_calibrated = True  # as Keras's loading sets it
    ours = keras.Sequential([keras.Input((16,)), kl.Dense(5, dtype=policy)])
    assert _described(ours) == _described(theirs)
    # Through set_weights: Keras 3.15.1's own GPTQ Dense files leave out `kernel_zero`
    # (its save skips it, and its load then refuses the file).
    ours.set_weights(theirs.get_weights())
    x = random_inputs((3, 16))
    _assert_close(ours(x), theirs(x))
    # Its own .keras file round-trips.
    ours.save(tmp_path / "gptq.keras")
    _assert_close(keras.saving.load_model(tmp_path / "gptq.keras")(x), ours(x))
