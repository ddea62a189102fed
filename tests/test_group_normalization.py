"""GroupNormalization, UnitNormalization, SpectralNormalization: contract, parity, errors."""

import keras
import numpy as np
import pytest

from keraslayers.layers import formulation
from keraslayers.layers.normalization import (
    GROUP_NORMALIZATION_FORMULATIONS,
    GroupNormalization,
    SpectralNormalization,
    UnitNormalization,
)
from tests.contract import (
    BACKEND,
    check_keras_parity,
    check_layer_contract,
    random_inputs,
    to_numpy,
)

GROUP_CASES = [
    ({"groups": 2}, (3, 4, 8)),
    ({"groups": 4, "axis": 1}, (2, 8, 3, 5)),
    ({"groups": -1}, (2, 5, 6)),
    ({"groups": 1, "center": False}, (2, 3, 4)),
    ({"groups": 3, "scale": False, "epsilon": 1e-5}, (2, 4, 3, 6)),
    ({"groups": 2, "axis": -2}, (2, 3, 4, 5)),
]


@pytest.mark.parametrize("kwargs, shape", GROUP_CASES)
def test_group_normalization_contract(kwargs, shape):
    weights = int(kwargs.get("center", True)) + int(kwargs.get("scale", True))
    check_layer_contract(lambda: GroupNormalization(**kwargs), shape, trainable_weights=weights)


@pytest.mark.grid("way")
@pytest.mark.parametrize("way", [formulation.KERAS, "per_channel_statistics"])
@pytest.mark.parametrize("kwargs, shape", [*GROUP_CASES, ({"groups": 2}, (3, 4))])
def test_group_normalization_matches_keras_in_each_formulation(kwargs, shape, way):
    x = random_inputs(shape) * 2 + 1
    with formulation.forcing("group_normalization", way):
        check_keras_parity(GroupNormalization(**kwargs), keras.layers.GroupNormalization(**kwargs),
                           x)


@pytest.mark.parametrize("way", [formulation.KERAS, "per_channel_statistics"])
def test_group_normalization_contract_in_each_formulation(way):
    with formulation.forcing("group_normalization", way):
        check_layer_contract(lambda: GroupNormalization(groups=4, axis=1), (2, 8, 3, 2),
                             trainable_weights=2)


def test_group_normalization_keeps_keras_formulation_where_nobody_measured():
    with formulation.forcing_device_kind("gpu"):
        assert formulation.choose("group_normalization", GROUP_NORMALIZATION_FORMULATIONS) == (
            formulation.KERAS)


def test_group_normalization_normalizes_each_group_of_each_sample():
    x = random_inputs((2, 3, 6)) * 3 - 4
    y = to_numpy(GroupNormalization(groups=3, epsilon=1e-6)(x))
    groups = x.reshape(2, 3, 3, 2)
    mean = groups.mean(axis=(1, 3), keepdims=True)
    std = np.sqrt(groups.var(axis=(1, 3), keepdims=True) + 1e-6)
    np.testing.assert_allclose(y, ((groups - mean) / std).reshape(x.shape), atol=1e-5)


def test_group_normalization_with_regularizers_and_unknown_sizes():
    kwargs = {"groups": 2, "gamma_regularizer": "l2", "beta_regularizer": "l2"}
    layer = GroupNormalization(**kwargs)
    inputs = keras.Input((None, 4))
    model = keras.Model(inputs, layer(inputs))
    x = random_inputs((3, 5, 4))
    np.testing.assert_allclose(to_numpy(model(x)), to_numpy(model.predict(x, verbose=0)),
                               atol=1e-5)
    assert len(layer.losses) == 2


def test_group_normalization_minus_one_groups_records_the_channels_as_keras_does():
    ours, theirs = GroupNormalization(groups=-1), keras.layers.GroupNormalization(groups=-1)
    ours.build((None, 3, 5))
    theirs.build((None, 3, 5))
    assert ours.get_config()["groups"] == theirs.get_config()["groups"] == 5


def test_group_normalization_loads_keras_config():
    theirs = keras.layers.GroupNormalization(groups=4, axis=1, epsilon=1e-4, center=False)
    ours = GroupNormalization.from_config(theirs.get_config())
    config = {k: v for k, v in ours.get_config().items() if k != "name"}
    assert config == {k: v for k, v in theirs.get_config().items() if k != "name"}


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_group_normalization_large_inputs_in_16_bits_stay_finite(policy):
    if policy == "mixed_float16" and BACKEND == "torch":
        pytest.skip("torch on CPU does not run float16 everywhere")
    x = (random_inputs((2, 4, 8)) * 1000).astype("float32")
    y = to_numpy(GroupNormalization(groups=2, dtype=policy)(x)).astype("float32")
    assert np.isfinite(y).all()
    expected = to_numpy(GroupNormalization(groups=2)(x))
    np.testing.assert_allclose(y, expected, atol=0.05)


@pytest.mark.parametrize("groups", [0, -2, 1.5, "4", True])
def test_group_normalization_rejects_bad_groups_at_construction(groups):
    with pytest.raises(ValueError, match=f"GroupNormalization.*`groups`.*groups={groups!r}"):
        GroupNormalization(groups=groups)


@pytest.mark.parametrize("groups", [3, 8])
def test_group_normalization_rejects_groups_that_do_not_divide_the_channels(groups):
    with pytest.raises(ValueError):
        keras.layers.GroupNormalization(groups=groups).build((None, 3, 6 if groups == 8 else 4))
    with pytest.raises(ValueError, match=f"'gn'.*divide.*channels.*groups={groups}"):
        GroupNormalization(groups=groups, name="gn").build((None, 3, 6 if groups == 8 else 4))


def test_group_normalization_rejects_unknown_channels():
    with pytest.raises(ValueError):
        keras.layers.GroupNormalization(groups=2).build((None, 3, None))
    with pytest.raises(ValueError, match=r"'gn'.*axis -1.*known size.*\(None, 3, None\)"):
        GroupNormalization(groups=2, name="gn").build((None, 3, None))


def test_group_normalization_rejects_a_changed_channel_count():
    layer = GroupNormalization(groups=2)
    layer(random_inputs((2, 4)))
    with pytest.raises(ValueError, match="incompatible"):
        layer(random_inputs((2, 6)))


def test_group_normalization_out_of_range_axis_is_keras_error_type():
    with pytest.raises(IndexError):
        keras.layers.GroupNormalization(groups=1, axis=3).build((None, 4))
    with pytest.raises(IndexError, match=r"'gn'.*axis 3 is out of bounds.*\(None, 4\)"):
        GroupNormalization(groups=1, axis=3, name="gn").build((None, 4))
    with pytest.raises(ValueError):
        GroupNormalization(groups=1, axis=3).compute_output_shape((None, 4))


@pytest.mark.parametrize("kwargs, shape", [({}, (2, 3)), ({"axis": (1, 2)}, (2, 3, 3)),
                                           ({"axis": [-2]}, (2, 4, 3))])
def test_unit_normalization_contract_and_parity(kwargs, shape):
    check_layer_contract(lambda: UnitNormalization(**kwargs), shape)
    x = random_inputs(shape) - 5
    check_keras_parity(UnitNormalization(**kwargs), keras.layers.UnitNormalization(**kwargs), x)


def test_unit_normalization_gives_unit_norms_and_keeps_zeros():
    x = np.array([[3.0, 4.0], [0.0, 0.0]], "float32")
    y = to_numpy(UnitNormalization()(x))
    np.testing.assert_allclose(y, [[0.6, 0.8], [0.0, 0.0]], atol=1e-6)
    assert UnitNormalization().built and keras.layers.UnitNormalization().built


def test_unit_normalization_large_inputs_in_bfloat16_stay_finite():
    x = np.full((2, 4), 300.0, "float32")
    y = to_numpy(UnitNormalization(dtype="mixed_bfloat16")(x)).astype("float32")
    np.testing.assert_allclose(y, np.full((2, 4), 0.5), atol=1e-2)


@pytest.mark.parametrize("axis", ["last", 1.0, None])
def test_unit_normalization_rejects_bad_axis_type_as_keras_does(axis):
    with pytest.raises(TypeError):
        keras.layers.UnitNormalization(axis=axis)
    with pytest.raises(TypeError, match=f"UnitNormalization.*`axis`.*axis={axis!r}"):
        UnitNormalization(axis=axis)


def test_unit_normalization_rejects_out_of_range_axis():
    with pytest.raises(ValueError):
        keras.layers.UnitNormalization(axis=2).compute_output_shape((None, 3))
    with pytest.raises(ValueError, match=r"'un'.*axis 2 is out of bounds.*\(None, 3\)"):
        UnitNormalization(axis=2, name="un").compute_output_shape((None, 3))
    with pytest.raises(ValueError, match=r"'un'.*axis 2 is out of bounds.*\(2, 3\)"):
        UnitNormalization(axis=2, name="un")(random_inputs((2, 3)))


SPECTRAL_CASES = [
    (lambda: keras.layers.Dense(3), (2, 4), 2),
    (lambda: keras.layers.Dense(3), (2, 5, 4), 2),
    (lambda: keras.layers.Conv2D(2, 2), (2, 5, 5, 3), 2),
    pytest.param(
        lambda: keras.layers.Embedding(10, 4), (2, 3), 1,
        marks=pytest.mark.xfail(
            raises=(RuntimeError, AssertionError, ValueError), strict=True,
            reason="Keras's SpectralNormalization(Embedding) cannot train either: the "
                   "assigned embeddings get no gradient (TensorFlow raises, torch loses the "
                   "grad_fn, JAX leaves them unchanged)"),
    ),
]


def test_spectral_normalization_of_an_embedding_trains_no_better_in_keras():
    x = np.array([[1, 5, 9], [0, 2, 3]], "int32")
    for wrapper in (keras.layers.SpectralNormalization, SpectralNormalization):
        inputs = keras.Input((3,), dtype="int32")
        model = keras.Model(inputs, wrapper(keras.layers.Embedding(10, 4))(inputs))
        model.compile(keras.optimizers.SGD(0.1), "mse")
        before = to_numpy(model.trainable_weights[0]).copy()
        target = random_inputs((2, 3, 4), seed=1)
        if BACKEND == "torch":
            with pytest.raises(RuntimeError, match="does not require grad"):
                model.train_on_batch(x, target)
        elif BACKEND == "tensorflow":
            with pytest.raises(ValueError, match="No gradients provided"):
                model.train_on_batch(x, target)
        else:
            model.train_on_batch(x, target)
            np.testing.assert_array_equal(to_numpy(model.trainable_weights[0]), before)


@pytest.mark.parametrize("make_inner, shape, weights", SPECTRAL_CASES)
def test_spectral_normalization_contract(make_inner, shape, weights):
    is_embedding = weights == 1
    x = np.array([[1, 5, 9], [0, 2, 3]], "int32") if is_embedding else None
    check_layer_contract(
        lambda: SpectralNormalization(make_inner()), shape,
        input_dtype="int32" if is_embedding else "float32", input_data=x,
        trainable_weights=weights, non_trainable_weights=1,
    )


@pytest.mark.parametrize("power_iterations", [1, 3])
@pytest.mark.parametrize("make_inner, shape, weights", SPECTRAL_CASES[:3])
def test_spectral_normalization_matches_keras(make_inner, shape, weights, power_iterations):
    x = random_inputs(shape) - 5
    ours = SpectralNormalization(make_inner(), power_iterations)
    theirs = keras.layers.SpectralNormalization(make_inner(), power_iterations)
    check_keras_parity(ours, theirs, x)
    # A training call runs the power iteration and rewrites the kernel and `u`, as Keras's.
    np.testing.assert_allclose(to_numpy(ours(x, training=True)),
                               to_numpy(theirs(x, training=True)), rtol=1e-5, atol=1e-5)
    for a, b in zip(ours.weights, theirs.weights, strict=True):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-5, atol=1e-6)


def test_spectral_normalization_brings_the_largest_singular_value_to_one():
    layer = SpectralNormalization(keras.layers.Dense(6), power_iterations=1)
    x = random_inputs((2, 8))
    layer(x)
    layer.layer.kernel.assign(random_inputs((8, 6), seed=3) * 4)
    for _ in range(20):
        layer(x, training=True)
    sigma = np.linalg.svd(to_numpy(layer.layer.kernel), compute_uv=False)[0]
    np.testing.assert_allclose(sigma, 1.0, rtol=1e-3)


def test_spectral_normalization_leaves_a_zero_kernel_and_trains_in_a_model():
    layer = SpectralNormalization(keras.layers.Dense(2, kernel_initializer="zeros"))
    x = random_inputs((4, 3))
    layer(x, training=True)
    np.testing.assert_array_equal(to_numpy(layer.layer.kernel), np.zeros((3, 2)))
    model = keras.Sequential([keras.Input((3,)), SpectralNormalization(keras.layers.Dense(2))])
    model.compile("sgd", "mse")
    history = model.fit(x, np.ones((4, 2), "float32"), epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def test_spectral_normalization_loads_keras_config():
    theirs = keras.layers.SpectralNormalization(keras.layers.Dense(3), power_iterations=2)
    ours = SpectralNormalization.from_config(theirs.get_config())
    assert ours.power_iterations == 2 and isinstance(ours.layer, keras.layers.Dense)
    assert ours.get_config()["layer"] == theirs.get_config()["layer"]


def test_spectral_normalization_wraps_a_keraslayers_dense():
    from keraslayers.layers.core import Dense

    layer = SpectralNormalization(Dense(3))
    x = random_inputs((2, 4))
    assert tuple(layer(x, training=True).shape) == (2, 3)
    theirs = keras.layers.SpectralNormalization(keras.layers.Dense(3))
    theirs(x)
    assert [w.name for w in layer.weights] == [w.name for w in theirs.weights] == [
        "kernel", "vector_u", "bias"]


@pytest.mark.parametrize("power_iterations", [0, -1])
def test_spectral_normalization_rejects_bad_power_iterations(power_iterations):
    with pytest.raises(ValueError):
        keras.layers.SpectralNormalization(keras.layers.Dense(2), power_iterations)
    with pytest.raises(ValueError, match=f"`power_iterations`.*={power_iterations}"):
        SpectralNormalization(keras.layers.Dense(2), power_iterations)


def test_spectral_normalization_rejects_a_layer_without_a_kernel_at_build():
    theirs = keras.layers.SpectralNormalization(keras.layers.ReLU())
    with pytest.raises(ValueError):
        theirs.build((None, 3))
    ours = SpectralNormalization(keras.layers.ReLU(name="relu"), name="sn")
    with pytest.raises(ValueError, match="'sn'.*ReLU layer 'relu'.*no attribute 'kernel' nor"):
        ours.build((None, 3))


def test_spectral_normalization_rejects_a_non_layer():
    with pytest.raises(ValueError):
        keras.layers.SpectralNormalization("dense")
    with pytest.raises(ValueError):
        SpectralNormalization("dense")
