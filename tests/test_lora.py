"""LoRA (issue 16): the layers Keras gives `enable_lora` (Dense, Embedding and its reversible
subclass, Conv1D/2D/3D, the attention projections) compute, train, configure and save as
Keras's do; the attention layers and Transformer blocks adapt their sublayers as keras-hub's
`Backbone.enable_lora` does. Keras's dense_test, embedding_test, conv_test, einsum_dense_test
and multi_head_attention_test `test_lora` cases are the reference."""

import keras
import numpy as np
import pytest

import keraslayers as kl
from tests.call_parity import assert_same_outputs_and_gradients
from tests.contract import check_keras_parity, random_inputs, to_numpy

keras_hub = pytest.importorskip("keras_hub")


def _built(layer, shape):
    layer.build(shape)
    return layer


def _randomize_factors(layer, seed=3):
    """Non-zero `b` factors (and fresh `a`s), so that the update shows in the outputs."""
    rng = np.random.default_rng(seed)
    for weight in layer.weights:
        if "lora" in weight.name:
            weight.assign(rng.normal(size=weight.shape).astype("float32") * 0.3)


def _names_shapes_trainable(layer):
    return [(w.name, tuple(w.shape), w.trainable) for w in layer.weights]


# (ours, theirs, input shape, input dtype) for every layer Keras gives LoRA.
CASES = {
    "Dense": (lambda m: m.Dense(5), (2, 3, 4), "float32"),
    "Dense_no_bias": (lambda m: m.Dense(5, use_bias=False), (2, 4), "float32"),
    "Embedding": (lambda m: m.Embedding(11, 4), (2, 3), "int32"),
    "Conv1D": (lambda m: m.Conv1D(4, 3), (2, 7, 3), "float32"),
    "Conv2D": (lambda m: m.Conv2D(4, 3, groups=1), (2, 6, 6, 2), "float32"),
    "Conv3D": (lambda m: m.Conv3D(3, 2), (1, 4, 4, 4, 2), "float32"),
}


def _pair(case):
    make, shape, dtype = CASES[case]
    return make(kl), make(keras.layers), shape, dtype


def _inputs(shape, dtype):
    if dtype == "int32":
        return np.random.default_rng(0).integers(0, 11, size=shape).astype("int32")
    return random_inputs(shape)


@pytest.mark.parametrize("case", list(CASES))
def test_same_weights_outputs_and_gradients_as_keras_lora(case):
    ours, theirs, shape, dtype = _pair(case)
    for layer in (ours, theirs):
        _built(layer, shape)
        layer.enable_lora(2, lora_alpha=3)
    assert _names_shapes_trainable(ours) == _names_shapes_trainable(theirs)
    assert ours.lora_enabled and ours.lora_rank == 2 and ours.lora_alpha == 3
    _randomize_factors(theirs)
    check_keras_parity(ours, theirs, _inputs(shape, dtype))


def test_reversible_embedding_lora_matches_keras_both_ways():
    ours, theirs = kl.ReversibleEmbedding(11, 4), keras.layers.ReversibleEmbedding(11, 4)
    for layer in (ours, theirs):
        _built(layer, (2, 3))
        layer.enable_lora(2)
    assert _names_shapes_trainable(ours) == _names_shapes_trainable(theirs)
    _randomize_factors(theirs)
    ours.set_weights(theirs.get_weights())
    ids = _inputs((2, 3), "int32")
    np.testing.assert_allclose(to_numpy(ours(ids)), to_numpy(theirs(ids)), rtol=1e-5, atol=1e-5)
    hidden = random_inputs((2, 3, 4))
    assert_same_outputs_and_gradients(ours, theirs, hidden, reverse=True, output_shape=(2, 3, 11))


@pytest.mark.parametrize("case", ["Dense", "Embedding", "Conv2D"])
def test_lora_rank_argument_enables_lora_at_build_and_round_trips(case):
    make, shape, _ = CASES[case]
    layer = type(make(kl)).from_config({**make(kl).get_config(), "lora_rank": 3})
    assert not layer.lora_enabled and layer.lora_alpha == 3
    _built(layer, shape)
    assert layer.lora_enabled
    config = layer.get_config()
    assert (config["lora_rank"], config["lora_alpha"]) == (3, 3)
    assert "lora_rank" not in make(kl).get_config()  # absent unless set, as in Keras
    rebuilt = _built(type(layer).from_config(config), shape)
    assert _names_shapes_trainable(rebuilt) == _names_shapes_trainable(layer)


def test_keras_dense_config_with_lora_loads_into_ours():
    theirs = keras.layers.Dense(5, lora_rank=2)
    _built(theirs, (None, 4))
    ours = _built(kl.Dense.from_config(theirs.get_config()), (None, 4))
    assert _names_shapes_trainable(ours) == _names_shapes_trainable(theirs)
    # A lora_alpha set by `enable_lora` is kept (Keras's Dense re-enables with alpha = rank).
    custom = _built(kl.Dense(5), (None, 4))
    custom.enable_lora(2, lora_alpha=6)
    assert _built(kl.Dense.from_config(custom.get_config()), (None, 4)).lora_alpha == 6


def test_enable_lora_errors_name_the_layer_and_change_nothing():
    with pytest.raises(ValueError, match=r"Dense layer 'unbuilt'.*not built"):
        kl.Dense(3, name="unbuilt").enable_lora(2)
    layer = _built(kl.Dense(3, name="d"), (None, 4))
    for rank in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match=rf"Dense layer 'd'.*rank={rank!r}"):
            layer.enable_lora(rank)
    with pytest.raises(ValueError, match=r"lora_alpha=0"):
        layer.enable_lora(2, lora_alpha=0)
    with pytest.raises(ValueError, match=r"Unknown initializer|Could not interpret"):
        layer.enable_lora(2, a_initializer="no_such_initializer")
    assert not layer.lora_enabled and len(layer.weights) == 2 and layer.kernel.trainable
    layer.enable_lora(2)
    with pytest.raises(ValueError, match=r"Dense layer 'd'.*already enabled.*rank=4"):
        layer.enable_lora(4)
    assert layer.lora_rank == 2 and len(layer.weights) == 4
    constrained = _built(kl.Dense(3, kernel_constraint="non_neg", name="c"), (None, 4))
    with pytest.raises(ValueError, match=r"Dense layer 'c'.*kernel_constraint"):
        constrained.enable_lora(2)
    embedding = _built(kl.Embedding(5, 2, embeddings_constraint="non_neg", name="e"), None)
    with pytest.raises(ValueError, match=r"Embedding layer 'e'.*embeddings_constraint"):
        embedding.enable_lora(2)
    with pytest.raises(ValueError, match=r"lora_rank=0"):
        kl.Dense(3, lora_rank=0)


def test_keras_raises_value_errors_for_the_same_mistakes():
    theirs = keras.layers.Dense(3)
    with pytest.raises(ValueError):
        theirs.enable_lora(2)
    _built(theirs, (None, 4)).enable_lora(2)
    with pytest.raises(ValueError):
        theirs.enable_lora(2)


def test_without_lora_the_kernel_is_the_variable_itself():
    # The path without LoRA adds no op: `kernel` is the variable the call reads.
    for layer, shape in ((kl.Dense(3), (None, 4)), (kl.Conv1D(2, 3), (None, 5, 2))):
        _built(layer, shape)
        assert layer.kernel is layer._kernel
    embedding = _built(kl.Embedding(4, 2), None)
    assert embedding.embeddings is embedding._embeddings


def _fit_once(model, x, y):
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    before = [to_numpy(w) for w in model.weights]
    model.fit(x, y, epochs=1, batch_size=len(x), verbose=0)
    return [(w.path, not np.allclose(value, to_numpy(w)))
            for value, w in zip(before, model.weights, strict=True)]


def test_a_training_step_moves_the_factors_and_bias_only_as_keras():
    x, y = random_inputs((8, 4)), random_inputs((8, 3))
    moved = {}
    for module in (kl, keras.layers):
        dense = _built(module.Dense(3, name="d"), (None, 4))
        dense.enable_lora(2)
        # A non-zero b, so that the gradient of a reaches it too.
        dense.lora_kernel_b.assign(np.full((2, 3), 0.1, "float32"))
        model = keras.Sequential([keras.Input((4,)), dense])
        moved[module] = [changed for _, changed in sorted(_fit_once(model, x, y))]
    assert moved[kl] == moved[keras.layers]
    names = sorted(w.path for w in model.weights)
    assert dict(zip(names, moved[kl], strict=True)) == {
        "d/bias": True, "d/kernel": False, "d/lora_kernel_a": True, "d/lora_kernel_b": True,
    }


def _lora_model(module=kl):
    inputs = keras.Input((4,))
    dense = module.Dense(3, name="d")
    outputs = dense(inputs)
    model = keras.Model(inputs, outputs)
    dense.enable_lora(2, lora_alpha=4)
    _randomize_factors(dense)
    return model


def test_lora_model_file_round_trips_with_factors_kept_apart(tmp_path):
    model = _lora_model()
    x = random_inputs((2, 4))
    model.save(tmp_path / "lora.keras")
    loaded = keras.saving.load_model(tmp_path / "lora.keras")
    np.testing.assert_allclose(to_numpy(loaded(x)), to_numpy(model(x)), rtol=1e-6, atol=1e-6)
    dense = loaded.get_layer("d")
    assert dense.lora_enabled and dense.lora_alpha == 4 and not dense._kernel.trainable
    original = model.get_layer("d")
    for name in ("_kernel", "lora_kernel_a", "lora_kernel_b"):
        # Nothing merged: the frozen kernel and the factors are saved as they are.
        np.testing.assert_array_equal(to_numpy(getattr(dense, name)),
                                      to_numpy(getattr(original, name)))


def test_keras_lora_weights_load_into_ours(tmp_path):
    # Keras merges the update into the kernel when it saves; ours loads that file, lora or not.
    theirs = _lora_model(keras.layers)
    theirs.save_weights(tmp_path / "keras_lora.weights.h5")
    x = random_inputs((2, 4))
    for enable in (False, True):
        inputs = keras.Input((4,))
        ours = keras.Model(inputs, kl.Dense(3, name="d")(inputs))
        if enable:
            ours.get_layer("d").enable_lora(2)
        ours.load_weights(tmp_path / "keras_lora.weights.h5")
        np.testing.assert_allclose(to_numpy(ours(x)), to_numpy(theirs(x)), rtol=1e-5, atol=1e-5)
    # And our plain file loads into our LoRA layer (factors zeroed, as Keras does).
    plain = _built(kl.Dense(3), (None, 4))
    adapted = _built(kl.Dense(3), (None, 4))
    adapted.enable_lora(2)
    _randomize_factors(adapted)
    store = {}
    plain.save_own_variables(store)
    adapted.load_own_variables(store)
    np.testing.assert_allclose(to_numpy(adapted(x)), to_numpy(plain(x)), rtol=1e-6, atol=1e-6)


def test_mixed_precision_keeps_the_factors_in_float32():
    layer = _built(kl.Dense(3, dtype="mixed_bfloat16"), (None, 4))
    layer.enable_lora(2)
    _randomize_factors(layer)
    assert layer.lora_kernel_a.dtype == "float32" and layer.lora_kernel_b.dtype == "float32"
    assert keras.backend.standardize_dtype(layer(random_inputs((2, 4))).dtype) == "bfloat16"


def test_attention_projections_take_lora_as_keras_einsum_dense():
    shape = (2, 5, 8)
    ours = kl.MultiHeadAttention(num_heads=2, key_dim=3)
    theirs = keras.layers.MultiHeadAttention(num_heads=2, key_dim=3)
    for layer in (ours, theirs):
        layer.build(shape, shape)
    for name in ("query_dense", "key_dense", "value_dense", "output_dense"):
        getattr(theirs, name).enable_lora(2)
    ours.enable_lora(2, target_layer_names=["query", "key", "value", "attention_output"])
    assert [(w.name, tuple(w.shape)) for w in ours.weights] == [
        (w.name, tuple(w.shape)) for w in theirs.weights
    ]
    _randomize_factors(theirs)
    ours.set_weights(theirs.get_weights())
    query = random_inputs(shape)
    np.testing.assert_allclose(to_numpy(ours(query, query)), to_numpy(theirs(query, query)),
                               rtol=1e-5, atol=1e-5)


def test_group_query_attention_defaults_to_query_and_value():
    layer = kl.GroupQueryAttention(head_dim=2, num_query_heads=4, num_key_value_heads=2)
    layer.build((2, 5, 8), (2, 5, 8))
    layer.enable_lora(2)
    assert set(layer.lora_layers) == {"query", "value"}
    assert [w.name for w in layer.trainable_weights] == [
        "bias", "lora_kernel_a", "lora_kernel_b", "bias", "lora_kernel_a", "lora_kernel_b",
    ]
    assert layer.query_dense.lora_kernel_a.shape == (8, 4, 2)


def test_block_enable_lora_errors_change_nothing():
    block = kl.TransformerEncoder(8, 2, name="enc")
    with pytest.raises(ValueError, match=r"TransformerEncoder layer 'enc'.*not built"):
        block.enable_lora(2)
    block.build((2, 5, 8))
    with pytest.raises(ValueError, match=r"target_layer_names=\['nothing'\]"):
        block.enable_lora(2, target_layer_names=["nothing"])
    block.self_attention_layer.value_dense.enable_lora(1)
    weights = len(block.weights)
    with pytest.raises(ValueError, match=r"already enabled"):
        block.enable_lora(2)  # the value projection has LoRA already
    assert len(block.weights) == weights and not block.self_attention_layer.query_dense.lora_enabled
    assert all(layer.trainable for layer in block._flatten_layers())


def test_transformer_decoder_lora_trains_only_the_targets_and_round_trips(tmp_path):
    decoder = kl.TransformerDecoder(8, 2, name="dec")
    sequence = keras.Input((5, 8))
    model = keras.Model(sequence, decoder(sequence))
    decoder.enable_lora(2, target_layer_names=["query", "value", "feedforward_output_dense"])
    assert set(decoder.lora_layers) == {
        "self_attention/query", "self_attention/value", "feedforward_output_dense"
    }
    for layer in decoder._flatten_layers(include_self=False):
        if layer.lora_enabled if hasattr(layer, "lora_enabled") else False:
            _randomize_factors(layer)
    x, y = random_inputs((4, 5, 8)), random_inputs((4, 5, 8))
    moved = _fit_once(model, x, y)
    assert {path for path, changed in moved if changed} == {
        f"dec/{layer}/{weight}"
        for layer in ("self_attention/query", "self_attention/value", "feedforward_output_dense")
        for weight in ("bias", "lora_kernel_a", "lora_kernel_b")
    }
    model.save(tmp_path / "decoder.keras")
    loaded = keras.saving.load_model(tmp_path / "decoder.keras")
    np.testing.assert_allclose(to_numpy(loaded(x)), to_numpy(model(x)), rtol=1e-5, atol=1e-5)
    reloaded = loaded.get_layer("dec")
    assert reloaded.lora_layers == decoder.lora_layers
    # The factors and the frozen kernels come back; the freezing of the other sublayers is
    # a training choice, not saved (as in Keras and keras-hub).
    adapted = {f"dec/{path}/kernel" for path in decoder.lora_layers}
    assert {w.path for w in reloaded.weights if w.name == "kernel" and not w.trainable} == adapted
    for original, restored in zip(decoder.weights, reloaded.weights, strict=True):
        np.testing.assert_array_equal(to_numpy(restored), to_numpy(original))


def test_keras_style_lora_on_projections_trains_saves_and_loads(tmp_path):
    # Keras's multi_head_attention_test flow: LoRA on three projections, one by one.
    layer = kl.MultiHeadAttention(num_heads=3, key_dim=8, use_bias=False, use_gate=True)
    query, key, value = (random_inputs((1, 2, 2), seed=s) for s in (1, 2, 3))
    layer.build(query.shape, value.shape, key.shape)
    for projection in (layer.query_dense, layer.key_dense, layer.value_dense):
        projection.enable_lora(2)
    assert (len(layer.trainable_variables), len(layer.non_trainable_variables)) == (8, 3)
    inputs = [keras.Input((2, 2)) for _ in range(3)]
    model = keras.Model(inputs, layer(*inputs))
    model.compile(optimizer="sgd", loss="mse")
    model.fit([query, value, key], random_inputs((1, 2, 2), seed=4), verbose=0)
    model.save(tmp_path / "mha.keras")
    loaded = keras.saving.load_model(tmp_path / "mha.keras")
    np.testing.assert_allclose(to_numpy(loaded([query, value, key])),
                               to_numpy(model([query, value, key])), rtol=1e-5, atol=1e-5)
    # A plain model's weights load into the LoRA model (factors zeroed, as in Keras) ...
    plain_inputs = [keras.Input((2, 2)) for _ in range(3)]
    plain = keras.Model(plain_inputs, kl.MultiHeadAttention(
        num_heads=3, key_dim=8, use_bias=False, use_gate=True)(*plain_inputs))
    plain.save_weights(tmp_path / "plain.weights.h5")
    model.load_weights(tmp_path / "plain.weights.h5")
    np.testing.assert_allclose(to_numpy(model([query, value, key])),
                               to_numpy(plain([query, value, key])), rtol=1e-5, atol=1e-5)
    # ... but a LoRA file keeps its factors apart, so it needs a LoRA model (Keras merges).
    model.save_weights(tmp_path / "lora.weights.h5")
    with pytest.raises(ValueError, match="expected 1 variables, but received 3"):
        plain.load_weights(tmp_path / "lora.weights.h5")
