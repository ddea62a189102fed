"""Embedding: contract, parity with Keras, masking, errors."""

import keras
import numpy as np
import pytest

import keraslayers as kl
from tests.call_parity import assert_same_outputs_and_gradients
from tests.contract import check_keras_parity, check_layer_contract, to_numpy

TOKENS = np.array([[3, 1, 0, 0], [7, 2, 9, 0]], "int32")


def test_embedding_contract():
    check_layer_contract(
        lambda: kl.Embedding(10, 6), (2, 4), input_dtype="int32", input_data=TOKENS,
        expected_output_shape=(2, 4, 6), trainable_weights=1, expected_mask=None,
    )


def test_embedding_mask_zero_emits_padding_mask():
    check_layer_contract(
        lambda: kl.Embedding(10, 6, mask_zero=True), (2, 4), input_dtype="int32",
        input_data=TOKENS, trainable_weights=1, expected_mask=TOKENS != 0,
    )


@pytest.mark.parametrize("dtype", ["int32", "int64", "float32"])
def test_embedding_matches_keras(dtype):
    check_keras_parity(
        kl.Embedding(10, 5), keras.layers.Embedding(10, 5), TOKENS.astype(dtype),
        input_gradient=False,
    )


def test_embedding_mask_reaches_downstream_layers():
    """Padded positions get zero weight in a mask-consuming pooling layer."""
    inputs = keras.Input((4,), dtype="int32")
    vectors = kl.Embedding(10, 3, mask_zero=True)(inputs)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling1D()(vectors))
    table = to_numpy(model.layers[1].embeddings)
    expected = np.stack([table[[3, 1]].mean(0), table[[7, 2, 9]].mean(0)])
    np.testing.assert_allclose(to_numpy(model(TOKENS)), expected, rtol=1e-5, atol=1e-6)


def test_embedding_takes_initial_weights():
    table = np.arange(12, dtype="float32").reshape(4, 3)
    layer = kl.Embedding(4, 3, weights=table)
    np.testing.assert_array_equal(to_numpy(layer(np.array([[2]]))), [[table[2]]])


def test_embedding_outputs_compute_dtype_and_keeps_float32_table():
    layer = kl.Embedding(10, 4, dtype="mixed_bfloat16")
    y = layer(TOKENS)
    assert keras.backend.standardize_dtype(y.dtype) == "bfloat16"
    assert keras.backend.standardize_dtype(layer.embeddings.dtype) == "float32"


def test_embedding_loads_a_keras_embedding_config():
    ours = kl.Embedding.from_config(keras.layers.Embedding(10, 4, mask_zero=True).get_config())
    assert (ours.input_dim, ours.output_dim, ours.mask_zero) == (10, 4, True)


@pytest.mark.parametrize("argument", ["input_dim", "output_dim"])
@pytest.mark.parametrize("value", [0, -1, 2.5])
def test_embedding_rejects_bad_sizes(argument, value):
    sizes = {"input_dim": 10, "output_dim": 4, argument: value}
    with pytest.raises(ValueError, match=f"Embedding layer .*{argument}={value}"):
        kl.Embedding(**sizes)


@pytest.mark.parametrize("value", [3.7, 4.0, "3", None, True, False])
def test_embedding_rejects_what_keras_rejects(value):
    with pytest.raises(ValueError, match="`input_dim` must be a positive integer"):
        kl.Embedding(value, 4)
    with pytest.raises(ValueError, match="`output_dim` must be a positive integer"):
        kl.Embedding(10, value)


def test_embedding_from_a_bad_config_raises_keras_type_error():
    """Keras's from_config wraps the constructor's ValueError in a TypeError."""
    with pytest.raises(TypeError, match="`input_dim` must be a positive integer"):
        kl.Embedding.from_config({"input_dim": 3.7, "output_dim": 8})


def test_embedding_takes_initial_weights_as_a_list_and_a_constraint():
    layer = kl.Embedding(3, 4, weights=[np.ones((3, 4))])
    np.testing.assert_array_equal(to_numpy(layer.embeddings), np.ones((3, 4)))
    layer = kl.Embedding(3, 2, embeddings_constraint="non_neg")
    layer.build((None, 2))
    assert isinstance(layer.embeddings.constraint, keras.constraints.NonNeg)


def test_embedding_looks_up_rows_and_masks_a_flat_batch():
    layer = kl.Embedding(3, 2, mask_zero=True)
    layer.build()
    layer.embeddings.assign(np.array([[0.0, 0.0], [2.0, 2.0], [3.0, 3.0]]))
    np.testing.assert_array_equal(to_numpy(layer(np.array([2, 1, 0]))), [[3, 3], [2, 2], [0, 0]])
    np.testing.assert_array_equal(to_numpy(layer.compute_mask(np.array([2, 1, 0]))),
                                  [True, True, False])
    assert kl.Embedding(3, 2).compute_mask(np.array([2, 1, 0])) is None


def test_embedding_warns_of_the_deprecated_input_length():
    with pytest.warns(UserWarning, match="input_length"):
        layer = kl.Embedding(10, 4, input_length=3)
    assert "input_length" not in layer.get_config()


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="ragged tensors: TF only")
def test_embedding_keeps_a_ragged_batch_ragged():
    import tensorflow as tf

    inputs = keras.Input((None,), dtype="int32", ragged=True)
    outputs = kl.Embedding(5, 4)(inputs)
    assert outputs.ragged and tuple(outputs.shape) == (None, None, 4)
    ragged = tf.ragged.constant([[1, 2], [3]])
    model = keras.Model(inputs, outputs)
    y = model(ragged)
    assert isinstance(y, tf.RaggedTensor)
    table = to_numpy(model.layers[1].embeddings)
    np.testing.assert_array_equal(y.flat_values.numpy(), table[[1, 2, 3]])
    theirs = keras.layers.Embedding(5, 4)
    theirs.build()
    theirs.set_weights([table])
    np.testing.assert_array_equal(theirs(ragged).flat_values.numpy(), y.flat_values.numpy())


@pytest.mark.skipif(keras.backend.backend() == "torch", reason="no sparse tensors on torch")
def test_embedding_looks_up_a_sparse_batch_as_dense():
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        sparse = tf.SparseTensor([[0, 0], [1, 2]], [2, 1], (2, 3))
    else:
        import jax.experimental.sparse as jax_sparse

        sparse = jax_sparse.BCOO((np.array([2, 1]), np.array([[0, 0], [1, 2]])), shape=(2, 3))
    layer = kl.Embedding(3, 2)
    layer.build()
    layer.embeddings.assign(np.array([[0.0, 0.0], [2.0, 2.0], [3.0, 3.0]]))
    expected = np.array([[[3, 3], [0, 0], [0, 0]], [[0, 0], [0, 0], [2, 2]]], "float32")
    np.testing.assert_array_equal(to_numpy(layer(sparse)), expected)


# --- ReversibleEmbedding -------------------------------------------------------------------


def test_reversible_embedding_contract():
    check_layer_contract(
        lambda: kl.ReversibleEmbedding(10, 6, mask_zero=True, embeddings_initializer="he_normal",
                                       logit_soft_cap=50),
        (2, 4), input_dtype="int32", input_data=TOKENS, expected_output_shape=(2, 4, 6),
        trainable_weights=1, expected_mask=TOKENS != 0,
    )
    # Untied, the reverse projection has its own (trainable) table, unused by the lookup.
    layer = kl.ReversibleEmbedding(10, 6, tie_weights=False)
    layer(TOKENS)
    assert [(w.path.split("/")[-1], tuple(w.shape), w.trainable) for w in layer.weights] == [
        ("embeddings", (10, 6), True), ("reverse_embeddings", (6, 10), True)]


def test_reversible_embedding_takes_keras_parameters_in_keras_order():
    """Not in `__all__` yet, so tests/test_signatures.py does not see it."""
    import inspect

    def parameters(cls):
        return [(p.name, p.kind, p.default)
                for p in inspect.signature(cls.__init__).parameters.values()]

    assert parameters(kl.ReversibleEmbedding) == parameters(keras.layers.ReversibleEmbedding)


@pytest.mark.parametrize("arguments", [{}, {"tie_weights": False}, {"logit_soft_cap": 2.0}])
def test_reversible_embedding_matches_keras_both_ways(arguments):
    ours = kl.ReversibleEmbedding(10, 5, **arguments)
    theirs = keras.layers.ReversibleEmbedding(10, 5, **arguments)
    ours(TOKENS)
    theirs(TOKENS)
    assert [(w.name, tuple(w.shape)) for w in ours.weights] == [
        (w.name, tuple(w.shape)) for w in theirs.weights]
    ours.set_weights(theirs.get_weights())
    assert_same_outputs_and_gradients(ours, theirs, TOKENS)
    hidden = np.random.default_rng(0).normal(size=(2, 4, 5)).astype("float32")
    assert_same_outputs_and_gradients(ours, theirs, hidden, reverse=True,
                                      output_shape=(2, 4, 10))


def test_reversible_embedding_reverse_values_and_soft_cap():
    table = np.array([[0.0, 0.0], [2.0, 2.0], [3.0, 3.0]])
    for cap, expected in ((None, [0.0, 4.0, 6.0]),
                          (5.0, [0.0, 5 * np.tanh(4 / 5), 5 * np.tanh(6 / 5)])):
        layer = kl.ReversibleEmbedding(3, 2, logit_soft_cap=cap)
        layer.build()
        layer.embeddings.assign(table)
        np.testing.assert_array_equal(to_numpy(layer(np.array([2, 1, 0]))), table[[2, 1, 0]])
        np.testing.assert_allclose(to_numpy(layer(np.ones((1, 2), "float32"), reverse=True)),
                                   [expected], rtol=1e-6)


def test_reversible_embedding_reverse_dtype_and_symbolic_shapes():
    layer = kl.ReversibleEmbedding(100, 16, reverse_dtype="float32", dtype="mixed_bfloat16")
    y = layer(np.ones((4, 10, 16), "float32"), reverse=True)
    assert tuple(y.shape) == (4, 10, 100) and keras.backend.standardize_dtype(y.dtype) == "float32"
    symbolic = layer(keras.Input((10, 16)), reverse=True)
    assert tuple(symbolic.shape) == (None, 10, 100) and symbolic.dtype == "float32"
    assert tuple(layer(keras.Input((10,), dtype="int32")).shape) == (None, 10, 16)
    with pytest.raises(ValueError):
        kl.ReversibleEmbedding(10, 4, reverse_dtype="no-such-dtype")
    with pytest.raises(ValueError, match=r"ReversibleEmbedding layer .*logit_soft_cap=0"):
        kl.ReversibleEmbedding(10, 4, logit_soft_cap=0)


def test_reversible_embedding_masks_the_lookup_only():
    layer = kl.ReversibleEmbedding(3, 2, mask_zero=True)
    tokens = keras.Input((3,), dtype="int32")
    vectors = layer(tokens)
    logits = layer(vectors, reverse=True)
    # The lookup's mask reaches the mean; the logits carry none.
    model = keras.Model(tokens, [keras.layers.GlobalAveragePooling1D()(vectors), logits])
    pooled, _ = model(np.array([[2, 1, 0]]))
    table = to_numpy(layer.embeddings)
    np.testing.assert_allclose(to_numpy(pooled), [table[[2, 1]].mean(0)], rtol=1e-6)
    assert layer.compute_mask(np.array([2, 1, 0])) is None  # after a reverse call
    layer(np.array([2, 1, 0]))
    np.testing.assert_array_equal(to_numpy(layer.compute_mask(np.array([2, 1, 0]))),
                                  [True, True, False])


def test_reversible_embedding_saves_and_loads(tmp_path):
    for tie_weights in (True, False):
        model = keras.Sequential([kl.ReversibleEmbedding(10, 4, tie_weights=tie_weights)])
        y = model(TOKENS)
        model.save(tmp_path / "model.keras")
        loaded = keras.saving.load_model(tmp_path / "model.keras")
        np.testing.assert_array_equal(to_numpy(loaded(TOKENS)), to_numpy(y))


def test_reversible_embedding_loads_a_keras_config():
    theirs = keras.layers.ReversibleEmbedding(10, 4, tie_weights=False, mask_zero=True,
                                              reverse_dtype="float32", logit_soft_cap=3.0)
    ours = kl.ReversibleEmbedding.from_config(theirs.get_config())
    assert (ours.input_dim, ours.output_dim, ours.tie_weights, ours.mask_zero,
            ours.reverse_dtype, ours.logit_soft_cap) == (10, 4, False, True, "float32", 3.0)
