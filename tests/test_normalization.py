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


@pytest.mark.filterwarnings("ignore:.*rms_scaling=True is deprecated")
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
def test_layer_normalization_rms_scaling_matches_keras_and_warns_as_keras_does():
    x = random_inputs((3, 6)) + 2
    with pytest.warns(UserWarning):
        theirs = keras.layers.LayerNormalization(rms_scaling=True)
    with pytest.warns(UserWarning, match="LayerNormalization layer .*rms_scaling=True is "
                                         "deprecated.*RMSNormalization"):
        ours = kl.LayerNormalization(rms_scaling=True)
    check_keras_parity(ours, theirs, x)


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
    with pytest.raises(TypeError, match=r"`axis` must be an int or a list of ints.*'last'"):
        make(axis="last")


def test_layer_normalization_rejects_a_dict_axis_with_keras_error_type():
    with pytest.raises(TypeError, match=r"LayerNormalization layer .*axis=\{'axis': -1\}"):
        kl.LayerNormalization(axis={"axis": -1})
    with pytest.raises(TypeError):
        keras.layers.LayerNormalization(axis={"axis": -1})


def test_batch_normalization_rejects_a_list_axis_with_keras_error_type():
    with pytest.raises(TypeError, match=r"BatchNormalization layer .*axis=\[1\]"):
        kl.BatchNormalization(axis=[1])
    with pytest.raises(TypeError):
        keras.layers.BatchNormalization(axis=[1])


@pytest.mark.parametrize("name", ["LayerNormalization", "BatchNormalization", "RMSNormalization"])
def test_out_of_range_axis_is_the_index_error_keras_raises(name):
    """Keras's layers index the shape with the axis at build: an IndexError. Ours is both a
    ValueError (with a message) and an IndexError."""
    x = random_inputs((2, 4))
    with pytest.raises(IndexError):
        getattr(keras.layers, name)(axis=3)(x)
    with pytest.raises(IndexError, match="axis 3 is out of bounds"):
        getattr(kl, name)(axis=3)(x)


def test_layer_normalization_takes_keras_arguments_positionally():
    layer = kl.LayerNormalization(-1, 1e-3, True, True, "ones")
    assert isinstance(layer.beta_initializer, keras.initializers.Ones)
    assert not layer.rms_scaling
    layer(random_inputs((2, 3)))
    np.testing.assert_array_equal(to_numpy(layer.beta), np.ones(3))


@pytest.mark.filterwarnings("ignore:You passed `rms_scaling=True`")
@pytest.mark.filterwarnings("ignore:.*rms_scaling=True is deprecated")
@pytest.mark.parametrize("rms_scaling", [False, True])
def test_layer_normalization_loads_keras_configs(rms_scaling):
    theirs = keras.layers.LayerNormalization(axis=(2, 3), epsilon=1e-5, rms_scaling=rms_scaling,
                                             gamma_initializer="random_normal")
    ours = kl.LayerNormalization.from_config(theirs.get_config())
    assert (ours.axis, ours.epsilon, ours.rms_scaling) == ([2, 3], 1e-5, rms_scaling)
    check_keras_parity(ours, theirs, random_inputs((2, 3, 4, 5)) + 1)


@pytest.mark.parametrize(
    "make, kwargs",
    [("LayerNormalization", {}), ("LayerNormalization", {"axis": [-2, -1]}),
     ("LayerNormalization", {"axis": 2}), ("RMSNormalization", {}),
     ("RMSNormalization", {"axis": [-2, -1]})],
)
def test_normalization_built_for_rank_3_takes_rank_4_like_keras(make, kwargs):
    """Keras fixes the normalized axes' sizes, not the rank: a layer built on
    `(batch, steps, features)` normalizes a `(batch, a, b, features)` input too."""
    ours, theirs = getattr(kl, make)(**kwargs), getattr(keras.layers, make)(**kwargs)
    ours.build((None, 4, 5))
    theirs.build((None, 4, 5))
    ours.set_weights([random_inputs(tuple(w.shape), seed=2) for w in ours.weights])
    theirs.set_weights(ours.get_weights())
    x = random_inputs((2, 3, 4, 5)) * 2 + 1
    wrong = random_inputs((2, 3, 4, 7))
    if kwargs.get("axis") == 2:  # axis 2 (not the last) of a rank-4 input: 5, as built.
        x, wrong = random_inputs((2, 3, 5, 6)), random_inputs((2, 3, 4, 5))
        theirs = None if BACKEND == "torch" else theirs  # Keras's fused torch path fails here
    expected = to_numpy(theirs(x)) if theirs is not None else None
    if expected is not None:
        np.testing.assert_allclose(to_numpy(ours(x)), expected, rtol=1e-5, atol=1e-5)
    else:
        gamma, beta = (to_numpy(w)[:, None] for w in ours.weights)
        normalized = (x - x.mean(2, keepdims=True)) / np.sqrt(x.var(2, keepdims=True) + 1e-3)
        np.testing.assert_allclose(to_numpy(ours(x)), normalized * gamma + beta, rtol=1e-4,
                                   atol=1e-4)
    with pytest.raises(ValueError, match="incompatible"):
        ours(wrong)


@pytest.mark.parametrize("make", [kl.LayerNormalization, kl.RMSNormalization])
def test_unsorted_axes_normalize_as_sorted(make):
    x = random_inputs((2, 3, 4))
    np.testing.assert_allclose(to_numpy(make(axis=[-1, -2])(x)), to_numpy(make(axis=[-2, -1])(x)))


@pytest.mark.filterwarnings("ignore:.*rms_scaling=True is deprecated")
def test_layer_normalization_outputs_known_values():
    x = np.arange(5, dtype="float32")[None]
    layer = kl.LayerNormalization(beta_initializer="ones", gamma_initializer="ones")
    np.testing.assert_allclose(to_numpy(layer(x)), [[-0.41386, 0.29307, 1.0, 1.70693, 2.41386]],
                               rtol=1e-4, atol=1e-5)
    rms = kl.LayerNormalization(rms_scaling=True)
    np.testing.assert_allclose(to_numpy(rms(x)), [[0.0, 0.70693, 1.41386, 2.12079, 2.82772]],
                               rtol=1e-4, atol=1e-5)


def test_layer_normalization_takes_an_input_with_no_steps():
    layer = kl.LayerNormalization()
    assert tuple(layer(np.zeros((1, 0, 10), "float32")).shape) == (1, 0, 10)
    assert tuple(layer(keras.Input((0, 10))).shape) == (None, 0, 10)


def test_normalization_rejects_negative_epsilon():
    with pytest.raises(ValueError, match="LayerNormalization layer .*epsilon=-1"):
        kl.LayerNormalization(epsilon=-1)


def test_batch_normalization_takes_keras_arguments_positionally():
    args = (-1, 0.9, 1e-3, True, True, "zeros", "ones", "zeros", "ones", None, None, None, None,
            True, {"rmax": 2.0}, 0.5, False)
    ours, theirs = kl.BatchNormalization(*args), keras.layers.BatchNormalization(*args)
    for name in ("renorm", "renorm_clipping", "renorm_momentum", "synchronized"):
        assert getattr(ours, name) == getattr(theirs, name), name


def test_batch_normalization_loads_a_config_keras_does_not_check():
    """Keras checks `renorm_clipping` only when `renorm` is on: such configs load."""
    clipping = {"rmin": 2.0, "rmax": 1.0}
    config = keras.layers.BatchNormalization(renorm_clipping=clipping).get_config()
    assert kl.BatchNormalization.from_config(config).renorm_clipping == clipping


def test_batch_normalization_checks_the_mask_rank_at_inference_too():
    layer = kl.BatchNormalization(name="bn")
    with pytest.raises(ValueError, match=r"BatchNormalization layer 'bn'.*mask.*\(2, 5, 3\)"):
        layer(random_inputs((2, 5, 3)), mask=np.ones((2, 5, 3), bool))
    with pytest.raises(ValueError):
        keras.layers.BatchNormalization()(random_inputs((2, 5, 3)), mask=np.ones((2, 5, 3), bool))


def test_batch_normalization_of_a_fully_masked_batch_is_zero():
    layer = kl.BatchNormalization(scale=False, center=False)
    y = layer(np.zeros((4, 5), "float32"), mask=np.zeros((4,), "float32"), training=True)
    np.testing.assert_array_equal(to_numpy(y), np.zeros((4, 5)))


def test_batch_normalization_mask_broadcasts_over_middle_axes_like_keras():
    x, mask = np.ones((1, 2, 3, 4), "float32"), np.ones((1, 2, 1), "float32")
    ours = kl.BatchNormalization(momentum=0.0)
    theirs = keras.layers.BatchNormalization(momentum=0.0)
    y = to_numpy(ours(x, training=True, mask=mask))
    np.testing.assert_allclose(y, to_numpy(theirs(x, training=True, mask=mask)), atol=1e-6)
    np.testing.assert_allclose(y, 0, atol=1e-6)
    np.testing.assert_allclose(to_numpy(ours.moving_mean), 1, atol=1e-6)
    np.testing.assert_allclose(to_numpy(ours.moving_variance), 0, atol=1e-6)


def test_batch_normalization_ignores_non_finite_masked_values_like_keras():
    x = random_inputs((3, 4, 2))
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [1, 0, 0, 0]], bool)
    x[~mask] = np.nan
    ours, theirs = kl.BatchNormalization(momentum=0.0), keras.layers.BatchNormalization(
        momentum=0.0)
    ours(x, training=True, mask=mask)
    theirs(x, training=True, mask=mask)
    for name in ("moving_mean", "moving_variance"):
        ours_value, theirs_value = to_numpy(getattr(ours, name)), to_numpy(getattr(theirs, name))
        assert np.isfinite(ours_value).all(), name
        np.testing.assert_allclose(ours_value, theirs_value, rtol=1e-5, atol=1e-6)


def test_batch_normalization_ignores_masked_steps_when_fitting():
    data = np.array([[[1, 5], [2, 5], [0, 0], [0, 0]]] * 10, "float32")
    inputs = keras.Input((None, 2))
    normalized = kl.BatchNormalization(momentum=0.0)(keras.layers.Masking(0.0)(inputs))
    model = keras.Model(inputs, normalized)
    model.compile("rmsprop", loss="mean_squared_error")
    model.fit(data, data, batch_size=10, epochs=2, verbose=0)
    layer = model.layers[-1]
    np.testing.assert_allclose(to_numpy(layer.moving_mean), [1.5, 5.0], rtol=1e-5)
    np.testing.assert_allclose(to_numpy(layer.moving_variance), [0.25, 0.0], atol=1e-5)


def test_batch_normalization_frozen_has_no_trainable_weights_and_is_the_identity():
    layer = kl.BatchNormalization(momentum=0.8, epsilon=1e-7)
    layer.build((1, 4, 4, 3))
    layer.trainable = False
    assert (len(layer.weights), len(layer.trainable_weights)) == (4, 0)
    x = random_inputs((8, 4, 4, 3)) * 10 + 5
    np.testing.assert_allclose(to_numpy(layer(x, training=True)), x, rtol=1e-5, atol=1e-4)
    layer.trainable = True
    assert (len(layer.trainable_weights), len(layer.non_trainable_weights)) == (2, 2)


def test_batch_renormalization_stddev_starts_at_the_root_of_the_variance():
    layer = kl.BatchNormalization(renorm=True,
                                  moving_variance_initializer=keras.initializers.Constant(4.0))
    layer.build((None, 5))
    np.testing.assert_allclose(to_numpy(layer.moving_stddev), 2.0)
    np.testing.assert_allclose(to_numpy(layer.renorm_stddev), 2.0)


def test_batch_renormalization_at_inference_is_plain_batch_normalization():
    plain, renorm = kl.BatchNormalization(), kl.BatchNormalization(renorm=True)
    plain.build((None, 10))
    renorm.build((None, 10))
    for i, name in enumerate(["gamma", "beta", "moving_mean", "moving_variance"]):
        value = np.abs(random_inputs((10,), seed=i)) + 0.5
        getattr(plain, name).assign(value)
        getattr(renorm, name).assign(value)
    x = random_inputs((4, 10))
    np.testing.assert_allclose(to_numpy(renorm(x)), to_numpy(plain(x)), rtol=1e-5, atol=1e-5)
