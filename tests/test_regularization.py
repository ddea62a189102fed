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


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_dropout_rejects_rates_outside_zero_one(rate):
    with pytest.raises(ValueError, match=r"Dropout layer .*`rate` must be a number in \[0, 1\]"):
        kl.Dropout(rate)
    with pytest.raises(ValueError):  # Keras's error type for the same mistake
        keras.layers.Dropout(rate)


@pytest.mark.parametrize("rate", ["0.5", None])
def test_dropout_rejects_a_rate_that_is_not_a_number_with_keras_error_type(rate):
    with pytest.raises(TypeError, match=r"Dropout layer .*`rate` must be a number.*rate="):
        kl.Dropout(rate)
    with pytest.raises(TypeError):
        keras.layers.Dropout(rate)


def test_dropout_with_rate_one_drops_everything_like_keras():
    x = random_inputs((4, 5))
    config = keras.layers.Dropout(1.0, seed=2).get_config()
    ours = kl.Dropout.from_config(config)
    np.testing.assert_array_equal(to_numpy(ours(x, training=True)), np.zeros_like(x))
    np.testing.assert_array_equal(to_numpy(ours(x)), x)


def test_dropout_noise_shape_is_stored_as_a_tuple():
    assert kl.Dropout(0.5, noise_shape=[20, 1, 10]).noise_shape == (20, 1, 10)
    assert kl.Dropout(0.5, noise_shape=(None, 1, None)).noise_shape == (None, 1, None)
    assert kl.Dropout(0.5).noise_shape is None


def test_dropout_static_noise_shape_repeats_the_mask():
    x = np.ones((20, 5, 10), "float32")
    y = to_numpy(kl.Dropout(0.5, noise_shape=(20, 1, 10), seed=4)(x, training=True))
    np.testing.assert_array_equal(y[:, 0, :], y[:, 1, :])


def test_dropout_keeps_the_mean_and_scales_by_the_keep_rate():
    y = to_numpy(kl.Dropout(0.5, seed=1337)(np.ones((20, 500), "float32"), training=True))
    np.testing.assert_allclose(y.mean(), 1.0, atol=0.02)
    np.testing.assert_allclose(y.max(), 2.0)


def test_dropout_is_built_at_construction_unless_build_is_overridden():
    assert kl.Dropout(0.5).built

    class Recorded(kl.Dropout):
        def build(self, input_shape):
            self.seen_shape = tuple(input_shape)

    layer = Recorded(0.5)
    assert not layer.built
    layer(np.ones((2, 3), "float32"))
    assert layer.built and layer.seen_shape == (2, 3)


@pytest.mark.parametrize("noise_shape", ["abc", (2, 0), (2, -1), 3, (2, 1.5)])
def test_dropout_rejects_bad_noise_shape(noise_shape):
    with pytest.raises(ValueError, match="Dropout layer .*noise_shape"):
        kl.Dropout(0.5, noise_shape=noise_shape)


# -- SpatialDropout1D/2D/3D, GaussianNoise, GaussianDropout, AlphaDropout ------------------

NOISE_LAYERS = [
    ("SpatialDropout1D", {"rate": 0.4}, (4, 6, 5)),
    ("SpatialDropout2D", {"rate": 0.4}, (4, 3, 3, 5)),
    ("SpatialDropout2D", {"rate": 0.4, "data_format": "channels_first"}, (4, 5, 3, 3)),
    ("SpatialDropout3D", {"rate": 0.4}, (2, 2, 3, 3, 5)),
    ("SpatialDropout3D", {"rate": 0.4, "data_format": "channels_first"}, (2, 5, 2, 3, 3)),
    ("GaussianNoise", {"stddev": 0.3}, (6, 10)),
    ("GaussianDropout", {"rate": 0.4}, (6, 10)),
    ("AlphaDropout", {"rate": 0.4}, (6, 10)),
    ("AlphaDropout", {"rate": 0.4, "noise_shape": (None, 1)}, (6, 10)),
]


def _noise_id(case):
    name, kwargs, _ = case
    return name + "".join(f"-{value}" for key, value in kwargs.items() if key != "rate")


@pytest.mark.parametrize("case", NOISE_LAYERS, ids=[_noise_id(c) for c in NOISE_LAYERS])
def test_noise_layers_match_keras_with_the_same_seed(case):
    # The same keras.random calls on the same seed: the very same noise, and gradients.
    name, kwargs, shape = case
    x = random_inputs(shape)
    check_keras_parity(getattr(kl, name)(**kwargs, seed=7),
                       getattr(keras.layers, name)(**kwargs, seed=7), x, training=True)


@pytest.mark.parametrize("case", NOISE_LAYERS, ids=[_noise_id(c) for c in NOISE_LAYERS])
def test_noise_layers_contract_and_identity_at_inference(case):
    name, kwargs, shape = case
    check_layer_contract(lambda: getattr(kl, name)(**kwargs, seed=3), shape, seed_generators=1,
                         random=True)
    x = random_inputs(shape)
    np.testing.assert_array_equal(to_numpy(getattr(kl, name)(**kwargs)(x)), x)


@pytest.mark.parametrize("name, shape, data_format, spatial_axes", [
    ("SpatialDropout1D", (8, 5, 6), None, (1,)),
    ("SpatialDropout2D", (8, 4, 4, 6), "channels_last", (1, 2)),
    ("SpatialDropout2D", (8, 6, 4, 4), "channels_first", (2, 3)),
    ("SpatialDropout3D", (8, 3, 3, 3, 6), "channels_last", (1, 2, 3)),
    ("SpatialDropout3D", (8, 6, 3, 3, 3), "channels_first", (2, 3, 4)),
])
def test_spatial_dropout_drops_whole_feature_maps(name, shape, data_format, spatial_axes):
    kwargs = {} if data_format is None else {"data_format": data_format}
    y = to_numpy(getattr(kl, name)(0.5, seed=2, **kwargs)(np.ones(shape, "float32"),
                                                            training=True))
    # Every value of a sample's channel is the same: all kept (2.0) or all dropped.
    spread = y.max(axis=spatial_axes) - y.min(axis=spatial_axes)
    assert (spread == 0).all()
    assert set(np.unique(y)) == {0.0, 2.0}


def test_gaussian_noise_and_dropout_have_the_variance_they_promise():
    x = np.ones((200_000,), "float32")
    noisy = to_numpy(kl.GaussianNoise(0.2, seed=1)(x, training=True))
    assert abs(noisy.mean() - 1) < 0.01 and abs(noisy.std() - 0.2) < 0.01
    dropped = to_numpy(kl.GaussianDropout(0.2, seed=1)(x, training=True))
    assert abs(dropped.mean() - 1) < 0.01 and abs(dropped.std() - 0.5) < 0.01  # sqrt(.2/.8)


def test_alpha_dropout_keeps_zero_mean_and_unit_variance():
    x = np.random.default_rng(0).standard_normal((200_000,)).astype("float32")
    y = to_numpy(kl.AlphaDropout(0.3, seed=1)(x, training=True))
    assert abs(y.mean()) < 0.02 and abs(y.std() - 1) < 0.02


@pytest.mark.parametrize("make, error, match", [
    (lambda: kl.SpatialDropout1D(1.5), ValueError, r"`rate` must be a number in \[0, 1\]"),
    (lambda: kl.SpatialDropout2D(0.5, data_format="nhwc"), ValueError, "data_format"),
    (lambda: kl.GaussianNoise(2.0), ValueError, r"`stddev` must be a number in \[0, 1\]"),
    (lambda: kl.GaussianNoise("0.1"), TypeError, "stddev"),
    (lambda: kl.GaussianDropout(-0.1), ValueError, "rate"),
    (lambda: kl.AlphaDropout(None), TypeError, "rate"),
])
def test_noise_layers_reject_bad_arguments_as_keras_does(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_spatial_dropout_refuses_an_input_of_the_wrong_rank_as_keras_does():
    with pytest.raises(ValueError, match="expected ndim=4"):
        kl.SpatialDropout2D(0.5)(np.ones((2, 3, 4), "float32"))


def test_noise_layers_load_keras_configs():
    for name, kwargs, _ in NOISE_LAYERS:
        config = getattr(keras.layers, name)(**kwargs, seed=5).get_config()
        layer = getattr(kl, name).from_config(config)
        ours = layer.get_config()
        # Keras's spatial dropouts write their dtype as a name, the others as a policy.
        assert layer.dtype_policy.name == "float32"
        assert {key: ours[key] for key in config if key != "dtype"} == {
            key: value for key, value in config.items() if key != "dtype"}
