"""Dense, Activation, ReLU: contract, parity with Keras, errors."""

import keras
import numpy as np
import pytest

import keraslayers as kl
from tests.contract import check_keras_parity, check_layer_contract, random_inputs


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
