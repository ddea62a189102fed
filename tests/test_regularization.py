"""Dropout: contract, parity with Keras, noise_shape, errors."""

import keras
import numpy as np
import pytest

import keraslayers as kl
from tests.contract import check_keras_parity, check_layer_contract, random_inputs, to_numpy


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_dropout_contract(rate):
    check_layer_contract(
        lambda: kl.Dropout(rate, seed=3), (8, 16), seed_generators=1, random=True
    )


def test_dropout_with_rate_zero_is_identity_and_has_no_seed():
    x = random_inputs((4, 5))
    check_layer_contract(lambda: kl.Dropout(0.0), (4, 5), input_data=x)
    np.testing.assert_array_equal(to_numpy(kl.Dropout(0.0)(x, training=True)), x)


def test_dropout_matches_keras_with_the_same_seed():
    x = random_inputs((6, 10))
    check_keras_parity(kl.Dropout(0.4, seed=11), keras.layers.Dropout(0.4, seed=11), x,
                       training=True)


def test_dropout_scales_kept_units_and_is_identity_at_inference():
    x = np.ones((200, 50), "float32")
    layer = kl.Dropout(0.3, seed=5)
    y = to_numpy(layer(x, training=True))
    kept = y != 0
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
    assert 0.25 < 1 - kept.mean() < 0.35
    np.testing.assert_array_equal(to_numpy(layer(x)), x)


def test_dropout_noise_shape_drops_whole_features():
    x = np.ones((4, 30, 8), "float32")
    y = to_numpy(kl.Dropout(0.5, noise_shape=(None, 1, 8), seed=2)(x, training=True))
    # The same features are dropped at every time step.
    assert (y == y[:, :1, :]).all()
    assert (y == 0).any() and (y != 0).any()


def test_dropout_passes_mask_through():
    mask = np.array([[True, False, True]] * 2)
    check_layer_contract(
        lambda: kl.Dropout(0.2, seed=1), (2, 3, 4), input_mask=mask, expected_mask=mask,
        seed_generators=1, check_mixed_precision=False,
    )


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, "0.5", None])
def test_dropout_rejects_rates_outside_zero_one(rate):
    with pytest.raises(ValueError, match=r"Dropout layer .*`rate` must be a number in \[0, 1\)"):
        kl.Dropout(rate)


@pytest.mark.parametrize("noise_shape", ["abc", (2, 0), (2, -1), 3, (2, 1.5)])
def test_dropout_rejects_bad_noise_shape(noise_shape):
    with pytest.raises(ValueError, match="Dropout layer .*noise_shape"):
        kl.Dropout(0.5, noise_shape=noise_shape)
