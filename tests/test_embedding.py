"""Embedding: contract, parity with Keras, masking, errors."""

import keras
import numpy as np
import pytest

import keraslayers as kl
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
