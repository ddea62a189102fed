"""LayerNormalization, BatchNormalization, RMSNormalization: contract, parity, errors."""

import keras
import numpy as np
import pytest

import keraslayers as kl
from tests.contract import (
    BACKEND,
    check_keras_parity,
    check_layer_contract,
    random_inputs,
    to_numpy,
)


@pytest.mark.parametrize(
    "kwargs, weights",
    [({}, 2), ({"axis": [1, 2]}, 2), ({"center": False}, 1), ({"scale": False}, 1),
     ({"rms_scaling": True}, 1)],
)
def test_layer_normalization_contract(kwargs, weights):
    check_layer_contract(
        lambda: kl.LayerNormalization(**kwargs), (3, 4, 5), trainable_weights=weights
    )


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"axis": [1, 2]}, {"axis": [-2, -1], "epsilon": 1e-6}, {"center": False, "scale": False}],
)
def test_layer_normalization_matches_keras(kwargs):
    x = random_inputs((3, 4, 5)) * 3 + 1
    ours, theirs = kl.LayerNormalization(**kwargs), keras.layers.LayerNormalization(**kwargs)
    check_keras_parity(ours, theirs, x)


@pytest.mark.filterwarnings("ignore:You passed `rms_scaling=True`")
def test_layer_normalization_rms_scaling_matches_keras():
    x = random_inputs((3, 6)) + 2
    with pytest.warns(UserWarning):
        theirs = keras.layers.LayerNormalization(rms_scaling=True)
    check_keras_parity(kl.LayerNormalization(rms_scaling=True), theirs, x)


def test_layer_normalization_on_a_middle_axis():
    # Keras 3.15's own layer fails here on torch (its fused path assumes trailing axes).
    x = random_inputs((3, 4, 5)) * 2 + 1
    layer = kl.LayerNormalization(axis=1, epsilon=1e-6, gamma_initializer="random_normal",
                                  beta_initializer="random_normal")
    y = to_numpy(layer(x))
    gamma, beta = (to_numpy(w)[None, :, None] for w in (layer.gamma, layer.beta))
    normalized = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(y, normalized * gamma + beta, rtol=1e-5, atol=1e-5)


def test_layer_normalization_normalizes_each_sample():
    x = random_inputs((4, 16)) * 5 + 3
    y = to_numpy(kl.LayerNormalization(epsilon=1e-6)(x))
    np.testing.assert_allclose(y.mean(-1), 0, atol=1e-5)
    np.testing.assert_allclose(y.std(-1), 1, atol=1e-4)


@pytest.mark.parametrize("kwargs, weights", [({}, 2), ({"axis": 1}, 2), ({"center": False}, 1)])
def test_batch_normalization_contract(kwargs, weights):
    check_layer_contract(
        lambda: kl.BatchNormalization(**kwargs), (3, 4, 5),
        trainable_weights=weights, non_trainable_weights=2,
    )


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("kwargs", [{}, {"axis": 1}, {"momentum": 0.5, "epsilon": 1e-5}])
def test_batch_normalization_matches_keras(kwargs, training):
    x = random_inputs((6, 4, 5)) * 2 + 1
    ours, theirs = kl.BatchNormalization(**kwargs), keras.layers.BatchNormalization(**kwargs)
    check_keras_parity(ours, theirs, x, training=training)


@pytest.mark.parametrize(
    "clipping", [None, {"rmin": 0.9, "rmax": 1.1, "dmax": 0.05}]
)
def test_batch_renormalization_matches_keras(clipping):
    x = random_inputs((8, 5)) * 3 + 2
    kwargs = {"renorm": True, "renorm_clipping": clipping, "renorm_momentum": 0.5}
    check_layer_contract(lambda: kl.BatchNormalization(**kwargs), (8, 5), input_data=x,
                         trainable_weights=2, non_trainable_weights=5)
    ours, theirs = kl.BatchNormalization(**kwargs), keras.layers.BatchNormalization(**kwargs)
    check_keras_parity(ours, theirs, x, training=True)
    for _ in range(2):  # the renorm statistics move the same way too
        ours(x, training=True)
        theirs(x, training=True)
    for a, b in zip(ours.weights, theirs.weights, strict=True):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("clipping", [{"rmin": 2.0, "rmax": 1.0}, {"dmax": -1}, {"rmean": 1}])
def test_batch_renormalization_rejects_bad_clipping(clipping):
    with pytest.raises(ValueError, match="BatchNormalization layer .*renorm_clipping"):
        kl.BatchNormalization(renorm=True, renorm_clipping=clipping)


def test_batch_normalization_updates_moving_statistics_in_training_only():
    x = random_inputs((64, 3)) * 2 + 5
    layer = kl.BatchNormalization(momentum=0.5)
    layer(x)
    np.testing.assert_array_equal(to_numpy(layer.moving_mean), 0)
    y = to_numpy(layer(x, training=True))
    np.testing.assert_allclose(to_numpy(layer.moving_mean), 0.5 * x.mean(0), rtol=1e-5)
    np.testing.assert_allclose(to_numpy(layer.moving_variance), 0.5 + 0.5 * x.var(0), rtol=1e-5)
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-5)
    inference = to_numpy(layer(x))
    expected = (x - 0.5 * x.mean(0)) / np.sqrt(0.5 + 0.5 * x.var(0) + 1e-3)
    np.testing.assert_allclose(inference, expected, rtol=1e-5, atol=1e-5)


def test_batch_normalization_frozen_layer_runs_in_inference_mode():
    x = random_inputs((16, 3)) + 4
    layer = kl.BatchNormalization()
    layer(x)
    layer.trainable = False
    layer(x, training=True)
    np.testing.assert_array_equal(to_numpy(layer.moving_mean), 0)


def test_batch_normalization_mask_excludes_padding_from_statistics():
    x = random_inputs((2, 5, 3))
    mask = np.array([[True, True, True, False, False], [True, True, False, False, False]])
    x_padded = np.where(mask[..., None], x, 1000.0).astype("float32")
    ours = kl.BatchNormalization(momentum=0.0)
    ours(x_padded, training=True, mask=mask)
    np.testing.assert_allclose(to_numpy(ours.moving_mean), x[mask].mean(0), rtol=1e-5)
    np.testing.assert_allclose(to_numpy(ours.moving_variance), x[mask].var(0), rtol=1e-4)
    theirs = keras.layers.BatchNormalization(momentum=0.0)
    theirs(x_padded, training=True, mask=mask)
    np.testing.assert_allclose(to_numpy(ours.moving_variance), to_numpy(theirs.moving_variance),
                               rtol=1e-5)


def test_batch_normalization_rejects_a_mask_of_the_wrong_rank():
    layer = kl.BatchNormalization(name="bn")
    with pytest.raises(ValueError, match=r"BatchNormalization layer 'bn'.*mask.*\(2, 5, 3\)"):
        layer(random_inputs((2, 5, 3)), training=True, mask=np.ones((2, 5, 3), bool))


@pytest.mark.skipif(BACKEND == "tensorflow", reason="synchronized=True is valid on TensorFlow")
def test_batch_normalization_synchronized_needs_tensorflow():
    with pytest.raises(ValueError, match=f"synchronized=True.*TensorFlow.*{BACKEND}"):
        kl.BatchNormalization(synchronized=True)


@pytest.mark.parametrize("kwargs", [{}, {"axis": [1, 2]}, {"axis": 1, "epsilon": 1e-3}])
def test_rms_normalization_contract_and_parity(kwargs):
    check_layer_contract(lambda: kl.RMSNormalization(**kwargs), (3, 4, 5), trainable_weights=1)
    if kwargs.get("axis", -1) in (-1, 1, [1, 2]) and kwargs.get("axis") != 1:
        x = random_inputs((3, 4, 5)) + 1
        check_keras_parity(
            kl.RMSNormalization(**kwargs), keras.layers.RMSNormalization(**kwargs), x
        )


def test_rms_normalization_on_a_middle_axis():
    x = random_inputs((3, 4, 5)) + 1
    layer = kl.RMSNormalization(axis=1, epsilon=1e-6)
    expected = x / np.sqrt(np.mean(x**2, axis=1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(to_numpy(layer(x)), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "make", [kl.LayerNormalization, kl.BatchNormalization, kl.RMSNormalization]
)
def test_normalization_rejects_out_of_range_axis(make):
    layer = make(axis=3, name="norm")
    with pytest.raises(ValueError, match=r"norm.*axis 3 is out of bounds.*\(2, 4\)"):
        layer(random_inputs((2, 4)))


@pytest.mark.parametrize(
    "make", [kl.LayerNormalization, kl.BatchNormalization, kl.RMSNormalization]
)
def test_normalization_rejects_a_changed_feature_size(make):
    layer = make(name="norm")
    layer(random_inputs((2, 4)))
    with pytest.raises(ValueError, match=r"norm.*value 4.*\(2, 6\)"):
        layer(random_inputs((2, 6)))


@pytest.mark.parametrize("make", [kl.LayerNormalization, kl.RMSNormalization])
def test_normalization_rejects_bad_axis_type(make):
    with pytest.raises(ValueError, match=r"`axis` must be an int or a list of ints.*'last'"):
        make(axis="last")


def test_normalization_rejects_negative_epsilon():
    with pytest.raises(ValueError, match="LayerNormalization layer .*epsilon=-1"):
        kl.LayerNormalization(epsilon=-1)
