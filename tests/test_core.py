"""Dense, Activation, ReLU: contract, parity with Keras, errors."""

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
    "kwargs, input_shape, weights",
    [
        ({"units": 5}, (3, 4), 2),
        ({"units": 5, "activation": "gelu", "use_bias": False}, (3, 4), 1),
        ({"units": 2, "activation": "softmax"}, (2, 3, 5, 4), 2),  # rank-4 input
    ],
)
def test_dense_contract(kwargs, input_shape, weights):
    check_layer_contract(
        lambda: kl.Dense(**kwargs),
        input_shape,
        expected_output_shape=(*input_shape[:-1], kwargs["units"]),
        trainable_weights=weights,
    )


@pytest.mark.parametrize("activation", [None, "relu", "tanh", "softmax"])
@pytest.mark.parametrize("input_shape", [(4, 6), (2, 3, 6)])
def test_dense_matches_keras(activation, input_shape):
    x = random_inputs(input_shape)
    check_keras_parity(
        kl.Dense(3, activation=activation), keras.layers.Dense(3, activation=activation), x
    )


def test_dense_passes_mask_through():
    x = random_inputs((2, 3, 4))
    mask = np.array([[True, True, False], [True, False, False]])
    check_layer_contract(
        lambda: kl.Dense(2), (2, 3, 4), input_data=x, trainable_weights=2,
        input_mask=mask, expected_mask=mask,
    )


def test_dense_regularizer_adds_loss():
    layer = kl.Dense(3, kernel_regularizer=keras.regularizers.L2(0.5))
    layer(random_inputs((2, 4)))
    expected = 0.5 * np.sum(np.square(keras.ops.convert_to_numpy(layer.kernel)))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.losses[0]), expected, rtol=1e-5)


def test_dense_loads_a_keras_dense_config():
    keras_layer = keras.layers.Dense(3, activation="tanh", kernel_regularizer="l2")
    ours = kl.Dense.from_config(keras_layer.get_config())
    assert ours.units == 3 and ours.activation is keras.activations.tanh
    with pytest.raises(ValueError, match="Dense layer .*quantization is not supported"):
        kl.Dense(3, quantization_config={"mode": "int8"})


def test_dense_rejects_bad_units():
    for units in (0, -3, 2.5, "8"):
        with pytest.raises(ValueError, match=r"Dense layer .*units.*" + repr(units)[:2]):
            kl.Dense(units)


def test_dense_rejects_unknown_activation():
    with pytest.raises(ValueError, match="Dense layer .*unknown `activation` 'relux'"):
        kl.Dense(3, activation="relux")


def test_dense_rejects_rank_one_input():
    with pytest.raises(ValueError, match=r"dense.*min_ndim=2.*\(4,\)"):
        kl.Dense(3, name="dense")(np.ones((4,), "float32"))


def test_dense_rejects_a_changed_last_dimension():
    layer = kl.Dense(3, name="proj")
    layer(np.ones((2, 4), "float32"))
    with pytest.raises(ValueError, match=r"proj.*axis -1.*value 4.*\(2, 5\)"):
        layer(np.ones((2, 5), "float32"))
    with pytest.raises(ValueError, match=r"proj.*axis -1.*value 4"):
        layer(keras.Input((5,)))


ALL_ACTIVATIONS = ["relu", "sigmoid", "tanh", "gelu", "silu", "softmax", "elu", "selu",
                   "softplus", "softsign", "swish", "leaky_relu", "relu6", "hard_sigmoid",
                   "mish", "log_softmax", "linear", "exponential"]


@pytest.mark.parametrize("activation", ALL_ACTIVATIONS)
def test_activation_matches_keras(activation):
    x = random_inputs((3, 5))
    check_keras_parity(kl.Activation(activation), keras.layers.Activation(activation), x)


def test_activation_contract():
    check_layer_contract(lambda: kl.Activation("softmax"), (2, 3, 4))
    mask = np.array([[True, False, True], [False, True, True]])
    check_layer_contract(
        lambda: kl.Activation("gelu"), (2, 3, 4), input_mask=mask, expected_mask=mask,
        check_mixed_precision=False,
    )


def test_activation_softmax_in_float32_under_mixed_precision():
    """A bfloat16 softmax over a long row is off by up to 7% on JAX; ours rounds only once.

    (TensorFlow's and torch's kernels compute a bfloat16 softmax in float32 themselves, so
    there the check holds with or without our upcast.)

    The expected values are the float32 softmax of the bfloat16-rounded inputs, rounded to
    bfloat16: a computation in float32 followed by one rounding gives exactly these.
    """
    x = random_inputs((4, 2048), seed=3) * 3
    y = kl.Activation("softmax", dtype="mixed_bfloat16")(x)
    assert keras.backend.standardize_dtype(y.dtype) == "bfloat16"
    rounded = keras.ops.cast(keras.ops.cast(x, "bfloat16"), "float32")
    expected = keras.ops.cast(keras.activations.softmax(rounded), "bfloat16")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(keras.ops.cast(y, "float32")),
        keras.ops.convert_to_numpy(keras.ops.cast(expected, "float32")),
        rtol=2**-8,
    )


def test_activation_rejects_unknown_name():
    with pytest.raises(ValueError, match="Activation layer .*unknown `activation` 'gelux'"):
        kl.Activation("gelux")


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"max_value": 6.0}, {"negative_slope": 0.2}, {"threshold": 0.5, "max_value": 1.0}],
)
def test_relu_contract_and_parity(kwargs):
    check_layer_contract(lambda: kl.ReLU(**kwargs), (4, 7))
    check_keras_parity(kl.ReLU(**kwargs), keras.layers.ReLU(**kwargs), random_inputs((4, 7)))


@pytest.mark.parametrize("argument", ["max_value", "negative_slope", "threshold"])
def test_relu_rejects_negative_arguments(argument):
    with pytest.raises(ValueError, match=f"ReLU layer .*{argument}=-1"):
        kl.ReLU(**{argument: -1})


def test_dense_computes_known_values_with_and_without_bias():
    layer = kl.Dense(2, activation="relu")
    layer.build((1, 2))
    layer.set_weights([np.array([[1.0, -2.0], [3.0, -4.0]]), np.array([5.0, -6.0])])
    np.testing.assert_allclose(to_numpy(layer(np.array([[-1.0, 2.0]], "float32"))), [[10.0, 0.0]])
    layer = kl.Dense(2, use_bias=False)
    layer.build((1, 2))
    assert layer.bias is None
    layer.set_weights([np.array([[1.0, -2.0], [3.0, -4.0]])])
    np.testing.assert_allclose(to_numpy(layer(np.array([[-1.0, 2.0]], "float32"))), [[5.0, -6.0]])


@pytest.mark.parametrize(
    "make, input_shape",
    [(lambda: kl.Dense(2, activation="relu"), (3, 4)),
     (lambda: kl.Conv1D(2, 3, activation="relu"), (2, 6, 3)),
     (lambda: kl.Conv2D(2, 3, activation="relu"), (2, 5, 5, 3)),
     (lambda: kl.DepthwiseConv2D(3, activation="relu"), (2, 5, 5, 3)),
     (lambda: kl.SeparableConv2D(2, 3, activation="relu"), (2, 5, 5, 3)),
     (lambda: kl.Conv2DTranspose(2, 3, activation="relu"), (2, 4, 4, 3))],
)
def test_activation_set_to_none_after_construction_is_linear_like_keras(make, input_shape):
    x = random_inputs(input_shape)
    layer = make()
    layer.build(input_shape)
    linear = type(layer).from_config({**layer.get_config(), "activation": None})
    linear.build(input_shape)
    linear.set_weights(layer.get_weights())
    layer.activation = None
    y = to_numpy(layer(x))
    assert (y < 0).any()
    np.testing.assert_allclose(y, to_numpy(linear(x)), rtol=1e-6, atol=1e-6)


def test_dense_weights_take_their_constraints():
    layer = kl.Dense(2, kernel_constraint="non_neg", bias_constraint="non_neg")
    layer.build((None, 2))
    assert isinstance(layer.kernel.constraint, keras.constraints.NonNeg)
    assert isinstance(layer.bias.constraint, keras.constraints.NonNeg)


def test_dense_regularizers_add_one_loss_each():
    layer = kl.Dense(5, activation="sigmoid", kernel_regularizer="l2", bias_regularizer="l2")
    layer(random_inputs((2, 3, 4)))
    assert len(layer.losses) == 2


def test_dense_rejects_none_units():
    with pytest.raises(ValueError, match="Dense layer .*positive integer"):
        kl.Dense(None)


@pytest.mark.skipif(BACKEND == "torch", reason="Keras has no sparse tensors on torch")
def test_dense_takes_a_sparse_input_like_keras():
    x = random_inputs((10, 10))
    x = np.where(x > 0.8, x, 0).astype("float32")
    if BACKEND == "tensorflow":
        import tensorflow as tf

        sparse = tf.sparse.from_dense(x)
    else:
        import jax.experimental.sparse as jax_sparse

        sparse = jax_sparse.BCOO.fromdense(x)
    layer = kl.Dense(4)
    np.testing.assert_allclose(to_numpy(layer(sparse)), to_numpy(layer(x)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "make",
    [lambda: kl.Activation("relu"), lambda: kl.ReLU(), lambda: kl.ReLU(max_value=1.0)],
    ids=["Activation", "ReLU", "ReLU-capped"],
)
def test_stateless_core_layers_are_built_unless_a_subclass_overrides_build(make):
    layer = make()
    assert layer.built

    class Recorded(type(layer)):
        def build(self, input_shape):
            self.seen_shape = tuple(input_shape)

    subclass = Recorded.from_config(layer.get_config())
    assert not subclass.built
    subclass(random_inputs((2, 3)))
    assert subclass.built and subclass.seen_shape == (2, 3)


def test_relu_known_values():
    x = np.array([-3.0, -1.0, 0.0, 1.0, 3.0], "float32")  # rank 1 works too
    np.testing.assert_allclose(to_numpy(kl.ReLU()(x)), [0, 0, 0, 1, 3])
    np.testing.assert_allclose(to_numpy(kl.ReLU(negative_slope=0.5)(x)), [-1.5, -0.5, 0, 1, 3])
    np.testing.assert_allclose(to_numpy(kl.ReLU(threshold=1.5)(x)), [0, 0, 0, 0, 3])
    np.testing.assert_allclose(to_numpy(kl.ReLU()(np.array([0.0, 99999.0], "float32"))),
                               [0, 99999])
    assert kl.ReLU().compute_output_shape((1,)) == (1,)


@pytest.mark.parametrize("argument", ["negative_slope", "threshold"])
def test_relu_rejects_none_where_keras_does(argument):
    with pytest.raises(ValueError, match=f"ReLU layer .*{argument}=None"):
        kl.ReLU(**{argument: None})
    with pytest.raises(ValueError):
        keras.layers.ReLU(**{argument: None})


def test_relu_config_defaults_match_keras():
    assert {k: v for k, v in kl.ReLU().get_config().items()
            if k in ("max_value", "negative_slope", "threshold")} == {
        "max_value": None, "negative_slope": 0.0, "threshold": 0.0}


def test_activation_takes_a_callable():
    layer = kl.Activation(keras.activations.gelu)
    check_keras_parity(layer, keras.layers.Activation(keras.activations.gelu),
                       random_inputs((2, 2)))
    assert kl.Activation.from_config(layer.get_config()).activation is keras.activations.gelu


@pytest.mark.parametrize(
    "make, input_shape",
    [(lambda: kl.Dense(2, activity_regularizer="l2"), (3, 4)),
     (lambda: kl.Conv1D(2, 3, activity_regularizer="l2"), (2, 6, 3)),
     (lambda: kl.Conv2DTranspose(2, 3, activity_regularizer="l2"), (2, 4, 4, 3))],
)
def test_activity_regularizer_survives_the_config(make, input_shape):
    layer = type(make()).from_config(make().get_config())
    assert isinstance(layer.activity_regularizer, keras.regularizers.L2)
    layer(random_inputs(input_shape))
    assert len(layer.losses) == 1


@pytest.mark.parametrize("argument", ["max_value", "negative_slope", "threshold"])
def test_relu_rejects_a_non_number_with_keras_error_type(argument):
    with pytest.raises(TypeError, match=f"ReLU layer .*{argument}='1'"):
        kl.ReLU(**{argument: "1"})
    with pytest.raises(TypeError):
        keras.layers.ReLU(**{argument: "1"})
