"""Residual: contract, the skip connection, projection, masks and training, errors."""

import keras
import numpy as np
import pytest

import keraslayers as kl
from tests.contract import check_layer_contract, random_inputs, to_numpy


def test_residual_identity_shortcut_contract():
    check_layer_contract(lambda: kl.Residual(kl.Dense(8, activation="relu")), (3, 8),
                         trainable_weights=2)


def test_residual_projection_contract():
    check_layer_contract(
        lambda: kl.Residual(kl.Dense(5)), (2, 3, 8),
        expected_output_shape=(2, 3, 5), trainable_weights=3,
    )


def test_residual_around_a_sequential_block():
    def block():
        return keras.Sequential([kl.LayerNormalization(), kl.Dense(6, activation="gelu"),
                                 kl.Dense(4)])
    check_layer_contract(lambda: kl.Residual(block()), (2, 5, 4), trainable_weights=6)


def test_residual_adds_its_input():
    x = random_inputs((3, 4))
    inner = kl.Dense(4)
    y = kl.Residual(inner)(x)
    np.testing.assert_allclose(to_numpy(y), x + to_numpy(inner(x)), rtol=1e-6, atol=1e-6)


def test_residual_projects_with_a_learned_kernel():
    x = random_inputs((3, 4))
    block = kl.Residual(kl.Dense(6))
    y = to_numpy(block(x))
    expected = x @ to_numpy(block.projection.kernel) + to_numpy(block.layer(x))
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    assert [w.path for w in block.weights][-1].endswith("shortcut_projection/kernel")


def test_residual_always_projects_when_asked():
    block = kl.Residual(kl.Dense(4), use_projection=True)
    block(random_inputs((2, 4)))
    assert block.projection is not None and len(block.trainable_weights) == 3


def test_residual_propagates_training_and_mask():
    x = np.ones((2, 3, 4), "float32")
    mask = np.array([[True, True, False], [True, False, False]])
    block = kl.Residual(kl.Dropout(0.5, seed=1))
    np.testing.assert_array_equal(to_numpy(block(x)), 2 * x)
    assert np.any(to_numpy(block(x, training=True)) != 2 * x)
    np.testing.assert_array_equal(to_numpy(block.compute_mask(x, mask)), mask)


def test_residual_reloads_with_its_wrapped_layer():
    config = kl.Residual(kl.Dense(3, activation="tanh"), use_projection=True).get_config()
    clone = kl.Residual.from_config(config)
    assert isinstance(clone.layer, kl.Dense) and clone.layer.units == 3
    assert clone.use_projection is True


def test_residual_rejects_a_shape_change_without_projection():
    block = kl.Residual(kl.Dense(5), use_projection=False, name="skip")
    with pytest.raises(ValueError, match=r"Residual layer 'skip'.*from 4 to 5.*projection"):
        block(random_inputs((2, 4)))


def test_residual_rejects_a_layer_that_changes_other_axes():
    block = kl.Residual(keras.layers.Flatten(), name="skip")
    with pytest.raises(ValueError, match=r"skip.*only the last dimension.*\(2, 3, 4\)"):
        block(random_inputs((2, 3, 4)))


@pytest.mark.parametrize("bad", [{"layer": "dense"}, {"layer": None}])
def test_residual_rejects_a_non_layer(bad):
    with pytest.raises(ValueError, match="Residual layer .*keras.layers.Layer"):
        kl.Residual(**bad)


def test_residual_rejects_bad_use_projection():
    with pytest.raises(ValueError, match="use_projection='auto'"):
        kl.Residual(kl.Dense(2), use_projection="auto")
