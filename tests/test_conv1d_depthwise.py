"""DepthwiseConv1D and SeparableConv1D: contract, parity with Keras (every formulation),
shapes, configs, the formulation table, errors."""

import itertools

import keras
import numpy as np
import pytest

import keraslayers as kl
from keraslayers.layers import convolution, formulation
from keraslayers.layers.formulation import KERAS
from tests.contract import BACKEND, check_keras_parity, check_layer_contract, random_inputs
from tests.test_convolution import WINDOW_ATTRIBUTES, _positional_arguments

CF = "channels_first"
NAMES = ("DepthwiseConv1D", "SeparableConv1D")
FORMULATIONS = ("taps", "sliced_taps", "unit_axis", KERAS)

# ---------------------------------------------------------------------------------------------
# Contract.


@pytest.mark.parametrize(
    "name, kwargs, input_shape, weights",
    [
        ("DepthwiseConv1D", {"kernel_size": 3, "depth_multiplier": 2, "padding": "same"},
         (2, 7, 3), 2),
        ("DepthwiseConv1D", {"kernel_size": 2, "strides": 2, "use_bias": False,
                             "data_format": CF}, (2, 3, 7), 1),
        ("SeparableConv1D", {"filters": 4, "kernel_size": 3, "strides": 2}, (2, 9, 3), 3),
        ("SeparableConv1D", {"filters": 3, "kernel_size": 3, "padding": "same",
                             "depth_multiplier": 2, "data_format": CF}, (2, 2, 6), 3),
    ],
)
def test_contract(name, kwargs, input_shape, weights):
    expected = getattr(keras.layers, name)(**kwargs).compute_output_shape(input_shape)
    check_layer_contract(
        lambda: getattr(kl, name)(**kwargs), input_shape,
        expected_output_shape=tuple(expected), trainable_weights=weights,
    )


# ---------------------------------------------------------------------------------------------
# Parity with Keras: outputs and gradients, same weights, through every formulation.

PARITY_CASES = [
    # Between them: each padding, kernel sizes 1 to 5, strides up to 3, dilation (with strides
    # too, which Keras allows here), multipliers 1 to 3, both data formats, odd lengths, a
    # batch of one, no bias, an activation.
    ("DepthwiseConv1D", {"kernel_size": 3, "padding": "same"}, (2, 9, 4)),
    ("DepthwiseConv1D", {"kernel_size": 3, "strides": 2, "depth_multiplier": 2}, (2, 10, 3)),
    ("DepthwiseConv1D", {"kernel_size": 2, "dilation_rate": 3, "padding": "same",
                         "data_format": CF}, (1, 3, 8)),
    ("DepthwiseConv1D", {"kernel_size": 4, "strides": 3, "padding": "same",
                         "depth_multiplier": 3, "activation": "tanh"}, (2, 11, 2)),
    ("DepthwiseConv1D", {"kernel_size": 3, "strides": 2, "dilation_rate": 2,
                         "padding": "same", "use_bias": False}, (1, 9, 2)),
    ("DepthwiseConv1D", {"kernel_size": 1, "depth_multiplier": 2, "data_format": CF},
     (2, 3, 5)),
    ("SeparableConv1D", {"filters": 4, "kernel_size": 3, "padding": "same"}, (2, 9, 4)),
    ("SeparableConv1D", {"filters": 3, "kernel_size": 5, "strides": 2, "depth_multiplier": 2,
                         "data_format": CF}, (1, 2, 12)),
    ("SeparableConv1D", {"filters": 2, "kernel_size": 2, "dilation_rate": 2,
                         "padding": "same", "activation": "relu"}, (2, 7, 3)),
    ("SeparableConv1D", {"filters": 5, "kernel_size": 3, "strides": 3, "use_bias": False,
                         "data_format": CF}, (2, 3, 10)),
]


def _case_id(case):
    name, kwargs, shape = case
    return f"{name}-" + "-".join(f"{k}={v}" for k, v in kwargs.items()) + f"-{shape}"


def _without_tensorflow_channels_first_bias(kwargs):
    """Keras's TensorFlow layers return a wrong bias gradient for some channels_first
    convolutions (see tests/test_convolution.py's `_check_parity_but_bias_gradient`)."""
    if BACKEND == "tensorflow" and kwargs.get("data_format") == CF:
        return {**kwargs, "use_bias": False}
    return kwargs


@pytest.mark.grid("chosen")
@pytest.mark.parametrize("chosen", FORMULATIONS)
@pytest.mark.parametrize("name, kwargs, input_shape", PARITY_CASES,
                         ids=map(_case_id, PARITY_CASES))
def test_matches_keras_with_every_formulation(chosen, name, kwargs, input_shape):
    kwargs = _without_tensorflow_channels_first_bias(kwargs)
    x = random_inputs(input_shape)
    ours, theirs = getattr(kl, name)(**kwargs), getattr(keras.layers, name)(**kwargs)
    with formulation.forcing("depthwise1d", chosen):
        check_keras_parity(ours, theirs, x)


@pytest.mark.parametrize("name", NAMES)
def test_matches_keras_with_this_machines_formulation(name):
    kwargs = {"kernel_size": 3, "padding": "same", "depth_multiplier": 2}
    if name == "SeparableConv1D":
        kwargs["filters"] = 3
    x = random_inputs((2, 8, 3))
    check_keras_parity(getattr(kl, name)(**kwargs), getattr(keras.layers, name)(**kwargs), x)


@pytest.mark.parametrize("name", NAMES)
def test_compiled_model_matches_keras(name):
    """Inside a compiled model (XLA on TensorFlow and JAX), where the formulation is traced."""
    kwargs = {"kernel_size": 3, "padding": "same", "strides": 2}
    if name == "SeparableConv1D":
        kwargs["filters"] = 4
    x = random_inputs((2, 9, 3))
    models = []
    for module in (kl, keras.layers):
        inputs = keras.Input((9, 3))
        models.append(keras.Model(inputs, getattr(module, name)(**kwargs)(inputs)))
    ours, theirs = models
    ours.set_weights(theirs.get_weights())
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# The formulation table: Keras's op where nobody measured, the measured formulations on CPU.


@pytest.mark.parametrize("kind", ["gpu", "tpu"])
def test_unmeasured_devices_get_keras_ops(kind):
    with formulation.forcing_device_kind(kind):
        assert convolution.depthwise_formulation(1) == KERAS


def test_cpu_gets_the_measured_formulations():
    expected = {"jax": "taps", "torch": KERAS, "tensorflow": KERAS}[BACKEND]
    with formulation.forcing_device_kind("cpu"):
        assert convolution.depthwise_formulation(1) == expected
        # The 1D table is its own: the 2D choice is unchanged.
        assert convolution.depthwise_formulation() == ("taps" if BACKEND == "jax" else KERAS)


@pytest.mark.parametrize("name", NAMES)
def test_unknown_lengths_run_keras_op(name):
    """The taps slice statically: an unknown length falls back to Keras's op."""
    layer = getattr(kl, name)(*([2] if name == "SeparableConv1D" else []), 3, padding="same")
    inputs = keras.Input((None, 3))
    outputs = layer(inputs)
    assert tuple(outputs.shape) == (None, None, 2 if name == "SeparableConv1D" else 3)
    assert layer._formulation((None, None, 3)) == KERAS
    x = random_inputs((1, 6, 3))
    with formulation.forcing("depthwise1d", "taps"):
        y = keras.Model(inputs, outputs)(x)
    assert tuple(y.shape) == tuple(layer.compute_output_shape(x.shape))


# ---------------------------------------------------------------------------------------------
# Shapes and configs: Keras's rule for every combination, Keras's arguments and configs.


@pytest.mark.parametrize("name", NAMES)
def test_output_lengths_follow_keras(name):
    grid = itertools.product([1, 2, 3, 4], [1, 2, 3], [1, 2], ["valid", "same"], [4, 5, 7])
    for kernel, stride, dilation, padding, length in grid:
        if padding == "valid" and (kernel - 1) * dilation + 1 > length:
            continue
        kwargs = {"kernel_size": kernel, "strides": stride, "padding": padding,
                  "dilation_rate": dilation, "depth_multiplier": 2}
        if name == "SeparableConv1D":
            kwargs["filters"] = 3
        shape = (2, length, 3)
        ours = getattr(kl, name)(**kwargs).compute_output_shape(shape)
        theirs = getattr(keras.layers, name)(**kwargs).compute_output_shape(shape)
        assert tuple(ours) == tuple(theirs), kwargs


@pytest.mark.parametrize("name", NAMES)
def test_takes_keras_arguments_positionally(name):
    args = _positional_arguments(name)
    ours, theirs = getattr(kl, name)(*args), getattr(keras.layers, name)(*args)
    for attribute in (*WINDOW_ATTRIBUTES, "filters", "depth_multiplier"):
        if hasattr(theirs, attribute):
            assert getattr(ours, attribute) == getattr(theirs, attribute), attribute
    assert ours.activation is theirs.activation


@pytest.mark.parametrize(
    "name, kwargs, input_shape",
    [
        ("DepthwiseConv1D", {"kernel_size": 3, "depth_multiplier": 2, "strides": 2,
                             "depthwise_initializer": "he_normal"}, (2, 7, 2)),
        ("SeparableConv1D", {"filters": 3, "kernel_size": 2, "dilation_rate": 2,
                             "padding": "same", "pointwise_regularizer": "l2"}, (2, 6, 2)),
    ],
)
def test_loads_keras_configs(name, kwargs, input_shape):
    theirs = getattr(keras.layers, name)(**kwargs)
    config = theirs.get_config()
    ours = getattr(kl, name).from_config(config)
    assert set(ours.get_config()) == set(config)
    for attribute in (*WINDOW_ATTRIBUTES, "depth_multiplier"):
        assert getattr(ours, attribute) == getattr(theirs, attribute), attribute
    check_keras_parity(ours, theirs, random_inputs(input_shape))


def test_regularizers_and_constraints_reach_the_weights():
    layer = kl.SeparableConv1D(2, 3, depthwise_regularizer=keras.regularizers.L2(0.5),
                               pointwise_constraint="non_neg", bias_constraint="non_neg")
    layer.build((None, 6, 3))
    kernel = keras.ops.convert_to_numpy(layer.depthwise_kernel)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.losses[0]),
                               0.5 * np.sum(np.square(kernel)), rtol=1e-5)
    assert isinstance(layer.pointwise_kernel.constraint, keras.constraints.NonNeg)
    assert isinstance(layer.bias.constraint, keras.constraints.NonNeg)
    depthwise = kl.DepthwiseConv1D(3, depthwise_constraint="non_neg")
    depthwise.build((None, 6, 3))
    assert isinstance(depthwise.kernel.constraint, keras.constraints.NonNeg)


# ---------------------------------------------------------------------------------------------
# Errors: a ValueError naming the layer, the argument and the value.


@pytest.mark.parametrize(
    "make, pattern",
    [
        (lambda: kl.DepthwiseConv1D(3, depth_multiplier=0),
         r"DepthwiseConv1D layer .*`depth_multiplier`.*depth_multiplier=0"),
        (lambda: kl.DepthwiseConv1D(0), r"DepthwiseConv1D layer .*`kernel_size`.*kernel_size=0"),
        (lambda: kl.DepthwiseConv1D((3, 3)),
         r"DepthwiseConv1D layer .*tuple of 1 .*kernel_size=\(3, 3\)"),
        (lambda: kl.DepthwiseConv1D(3, strides=0), r"DepthwiseConv1D layer .*strides=0"),
        (lambda: kl.DepthwiseConv1D(3, dilation_rate=-1),
         r"DepthwiseConv1D layer .*dilation_rate=-1"),
        (lambda: kl.DepthwiseConv1D(3, padding="causal"),
         r"DepthwiseConv1D layer .*'valid', 'same'.*padding='causal'"),
        (lambda: kl.DepthwiseConv1D(3, data_format="NWC"),
         r"DepthwiseConv1D layer .*data_format='NWC'"),
        (lambda: kl.DepthwiseConv1D(3, activation="relux"), r"DepthwiseConv1D layer .*'relux'"),
        (lambda: kl.SeparableConv1D(0, 3), r"SeparableConv1D layer .*`filters`.*filters=0"),
        (lambda: kl.SeparableConv1D(4, 3, depth_multiplier=-2),
         r"SeparableConv1D layer .*depth_multiplier=-2"),
        (lambda: kl.SeparableConv1D(4, 3, padding="full"),
         r"SeparableConv1D layer .*`padding`.*padding='full'"),
        (lambda: kl.SeparableConv1D(4, 3, padding="causal"),
         r"SeparableConv1D layer .*padding='causal'"),
    ],
)
def test_rejects_bad_arguments(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


def test_rejects_a_kernel_longer_than_a_valid_input():
    with pytest.raises(ValueError, match=r"DepthwiseConv1D layer 'dw'.*spans 5.*only 4"):
        kl.DepthwiseConv1D(3, dilation_rate=2, name="dw")(keras.Input((4, 2)))
    layer = kl.SeparableConv1D(2, 3, name="sep")
    layer.build((1, 6, 2))
    with pytest.raises(ValueError, match=r"SeparableConv1D layer 'sep'.*spans 3.*only 2"):
        layer(np.ones((1, 2, 2), "float32"))
    assert kl.DepthwiseConv1D(5, padding="same")(keras.Input((2, 1))).shape == (None, 2, 1)


@pytest.mark.parametrize("name", NAMES)
def test_rejects_wrong_input_rank_and_unknown_or_changed_channels(name):
    args = [2, 3] if name == "SeparableConv1D" else [3]
    with pytest.raises(ValueError, match=r"layer 'conv'.*expected ndim=3, found ndim=4"):
        getattr(kl, name)(*args, name="conv")(np.ones((2, 6, 6, 3), "float32"))
    with pytest.raises(ValueError, match=rf"{name} layer .*must be known.*\(None, 6, None\)"):
        getattr(kl, name)(*args).build((None, 6, None))
    layer = getattr(kl, name)(*args, name="conv")
    layer.build((1, 6, 3))
    with pytest.raises(ValueError, match=r"conv.*axis -1.*value 3.*\(1, 6, 4\)"):
        layer(np.ones((1, 6, 4), "float32"))
