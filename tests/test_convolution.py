"""Convolutions and transposed convolutions: contract, parity with Keras, shapes, errors."""

import inspect
import itertools
import re

import keras
import numpy as np
import pytest

import keraslayers as kl
from tests.contract import (
    BACKEND,
    check_keras_parity,
    check_layer_contract,
    outputs_and_gradients,
    random_inputs,
    to_numpy,
)

CF = "channels_first"

# ---------------------------------------------------------------------------------------------
# Contract: representative configurations beyond the catalogue's examples (which
# tests/test_catalog.py checks for every class, Conv3D and Conv3DTranspose included).


@pytest.mark.parametrize(
    "name, kwargs, input_shape, weights",
    [
        ("Conv1D", {"filters": 4, "kernel_size": 3, "padding": "causal"}, (2, 7, 3), 2),
        ("Conv2D", {"filters": 3, "kernel_size": 2, "padding": "same", "use_bias": False,
                    "data_format": "channels_first"}, (2, 2, 5, 5), 1),
        ("DepthwiseConv2D", {"kernel_size": 3, "depth_multiplier": 2, "padding": "same"},
         (2, 5, 6, 3), 2),
        ("SeparableConv2D", {"filters": 4, "kernel_size": 3, "strides": 2}, (2, 7, 7, 3), 3),
        ("Conv1DTranspose", {"filters": 3, "kernel_size": 4, "strides": 2, "padding": "same",
                             "output_padding": 0}, (2, 5, 3), 2),
        ("Conv2DTranspose", {"filters": 3, "kernel_size": 3, "strides": 2, "output_padding": 1,
                             "data_format": "channels_first"}, (2, 2, 4, 3), 2),
    ],
)
def test_contract(name, kwargs, input_shape, weights):
    layer_class = getattr(kl, name)
    expected = getattr(keras.layers, name)(**kwargs).compute_output_shape(input_shape)
    # TensorFlow has no float16 channels_first convolution on CPU ("The Conv2D op currently
    # only supports the NHWC tensor format on the CPU"): Keras's own layers fail there too.
    tf_channels_first = BACKEND == "tensorflow" and kwargs.get("data_format") == CF
    check_layer_contract(
        lambda: layer_class(**kwargs), input_shape,
        expected_output_shape=tuple(expected), trainable_weights=weights,
        check_mixed_precision=not tf_channels_first,
    )


# ---------------------------------------------------------------------------------------------
# Parity with Keras: outputs and gradients, same weights.

PARITY_CASES = [
    # Between them: each padding, strides > 1, dilation > 1, groups > 1, both data formats,
    # odd sizes and a batch of one; most cases for the transposes, whose cropping is ours.
    ("Conv1D", {"filters": 4, "kernel_size": 3, "padding": "causal", "strides": 2}, (2, 9, 4)),
    ("Conv1D", {"filters": 4, "kernel_size": 2, "padding": "causal", "dilation_rate": 2,
                "groups": 2, "data_format": CF}, (1, 4, 7)),
    ("Conv2D", {"filters": 6, "kernel_size": 3, "groups": 3, "activation": "tanh"},
     (2, 7, 6, 6)),
    ("Conv2D", {"filters": 4, "kernel_size": (3, 2), "strides": (2, 1), "padding": "same",
                "data_format": CF}, (1, 3, 7, 5)),
    ("Conv3D", {"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same", "groups": 2,
                "data_format": CF}, (2, 2, 5, 4, 3)),
    # Keras (and we) allow strides with dilation in depthwise convolutions.
    ("DepthwiseConv2D", {"kernel_size": 3, "strides": 2, "dilation_rate": 2, "padding": "same",
                         "depth_multiplier": 2}, (1, 9, 8, 2)),
    ("DepthwiseConv2D", {"kernel_size": 2, "dilation_rate": 2, "data_format": CF},
     (2, 3, 5, 6)),
    ("SeparableConv2D", {"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same",
                         "depth_multiplier": 2, "data_format": CF}, (1, 2, 7, 7)),
    # On JAX, Conv3D (channels_last, one group) runs as a 2D convolution over depth taps
    # stacked as channels, and depthwise convolutions as a sum over kernel taps: each padding,
    # strides, dilation, uneven kernels, multipliers and both formats reach those paths.
    ("Conv3D", {"filters": 3, "kernel_size": 3, "padding": "same"}, (2, 4, 5, 6, 2)),
    ("Conv3D", {"filters": 3, "kernel_size": (2, 3, 1), "strides": (2, 1, 2),
                "activation": "relu"}, (1, 5, 4, 5, 3)),
    ("Conv3D", {"filters": 2, "kernel_size": 2, "strides": 2, "padding": "same"},
     (2, 5, 4, 3, 2)),
    ("Conv3D", {"filters": 2, "kernel_size": (3, 2, 2), "dilation_rate": (2, 1, 2),
                "padding": "same", "use_bias": False}, (1, 6, 4, 5, 2)),
    ("DepthwiseConv2D", {"kernel_size": (3, 2), "strides": (2, 3), "depth_multiplier": 3},
     (2, 7, 8, 2)),
    ("DepthwiseConv2D", {"kernel_size": 3, "strides": 2, "padding": "same",
                         "depth_multiplier": 2, "data_format": CF}, (1, 3, 6, 5)),
    ("SeparableConv2D", {"filters": 3, "kernel_size": (2, 3), "dilation_rate": (2, 1),
                         "padding": "same", "activation": "relu"}, (2, 6, 7, 3)),
    ("Conv1DTranspose", {"filters": 3, "kernel_size": 2, "strides": 3}, (2, 5, 4)),
    ("Conv1DTranspose", {"filters": 3, "kernel_size": 4, "strides": 3, "padding": "same",
                         "output_padding": 2}, (2, 5, 4)),
    ("Conv1DTranspose", {"filters": 3, "kernel_size": 3, "strides": 2, "output_padding": 1,
                         "data_format": CF}, (2, 4, 5)),
    ("Conv1DTranspose", {"filters": 3, "kernel_size": 3, "dilation_rate": 2, "padding": "same"},
     (1, 5, 4)),
    ("Conv2DTranspose", {"filters": 3, "kernel_size": 3, "strides": 2, "padding": "same",
                         "output_padding": 1, "data_format": CF}, (2, 2, 5, 4)),
    ("Conv2DTranspose", {"filters": 3, "kernel_size": (3, 2), "strides": (2, 3),
                         "output_padding": (1, 2)}, (1, 3, 5, 2)),
    ("Conv3DTranspose", {"filters": 2, "kernel_size": 3, "strides": (2, 1, 2),
                         "output_padding": (1, 0, 0), "data_format": CF}, (2, 2, 3, 2, 3)),
]


def _case_id(case):
    name, kwargs, shape = case
    return f"{name}-" + "-".join(f"{k}={v}" for k, v in kwargs.items()) + f"-{shape}"


@pytest.mark.parametrize("name, kwargs, input_shape", PARITY_CASES, ids=map(_case_id, PARITY_CASES))
def test_matches_keras(name, kwargs, input_shape):
    x = random_inputs(input_shape)
    ours, theirs = getattr(kl, name)(**kwargs), getattr(keras.layers, name)(**kwargs)
    if BACKEND == "tensorflow" and kwargs.get("data_format") == CF and ours.use_bias:
        _check_parity_but_bias_gradient(ours, theirs, x)
    else:
        check_keras_parity(ours, theirs, x)


TRANSPOSED_CASES = [case for case in PARITY_CASES if case[0].endswith("Transpose")]


@pytest.mark.skipif(BACKEND != "jax", reason="only JAX picks a transposed convolution's "
                    "formulation by `training` (output phases in training, XLA's op at inference)")
@pytest.mark.parametrize("name, kwargs, input_shape", TRANSPOSED_CASES,
                         ids=map(_case_id, TRANSPOSED_CASES))
def test_transposed_matches_keras_in_training(name, kwargs, input_shape):
    x = random_inputs(input_shape)
    ours, theirs = getattr(kl, name)(**kwargs), getattr(keras.layers, name)(**kwargs)
    check_keras_parity(ours, theirs, x, training=True)


def _check_parity_but_bias_gradient(ours, theirs, x):
    """Keras's own TensorFlow layers return a wrong bias gradient for some channels_first
    convolutions (Conv2D with stride and dilation 1, Conv3D; Keras 3.15, TensorFlow 2.21, CPU),
    so ours is checked against its exact value, the cotangent summed over all but the channel
    axis, and everything else against Keras."""
    theirs(x)
    ours(x)
    ours.set_weights(theirs.get_weights())
    *our_results, our_bias_gradient = outputs_and_gradients(ours, x)
    *their_results, _ = outputs_and_gradients(theirs, x)
    for a, b in zip(our_results, their_results, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    cotangent = random_inputs(our_results[0].shape, "float32", seed=7)  # as contract.py draws it
    axes = tuple(a for a in range(cotangent.ndim) if a != 1)
    np.testing.assert_allclose(our_bias_gradient, cotangent.sum(axis=axes), rtol=1e-5, atol=1e-5)


def _reference_conv1d_transpose(x, kernel, strides, padding, output_padding, dilation):
    """NumPy: each input step scatters `x[t] @ kernel[k].T` to `t * stride + k * dilation`,
    then the window Keras keeps of that full result (JAX's and PyTorch's Keras backends)."""
    batch, length, _ = x.shape
    taps, filters, _ = kernel.shape
    span = (taps - 1) * dilation + 1
    full = np.zeros((batch, (length - 1) * strides + span, filters))
    for t, k in itertools.product(range(length), range(taps)):
        full[:, t * strides + k * dilation] += x[:, t] @ kernel[k].T
    if padding == "valid":
        extra = max(strides - span, 0) if output_padding is None else output_padding
        return np.pad(full, ((0, 0), (0, extra), (0, 0)))
    size = length * strides if output_padding is None else (
        (length - 1) * strides + span % 2 + output_padding)
    before = max(full.shape[1] - size, 0) // 2
    full = np.pad(full, ((0, 0), (0, max(size - full.shape[1], 0)), (0, 0)))
    return full[:, before:before + size]


@pytest.mark.parametrize(
    "kernel_size, strides, padding, output_padding, dilation",
    [
        # "same" with an even span and output_padding=0: Keras's TensorFlow backend aborts
        # (tf.nn.conv_transpose rejects the output size), so Keras cannot be the reference.
        (2, 1, "same", 0, 1),
        (4, 2, "same", 0, 1),
        (2, 2, "same", None, 1),
        (3, 2, "same", 1, 1),
        (2, 3, "valid", 2, 1),
        (3, 1, "same", None, 3),
    ],
)
def test_conv1d_transpose_matches_numpy(kernel_size, strides, padding, output_padding, dilation):
    x = random_inputs((2, 5, 3))
    layer = kl.Conv1DTranspose(
        4, kernel_size, strides=strides, padding=padding, output_padding=output_padding,
        dilation_rate=dilation, use_bias=False,
    )
    y = to_numpy(layer(x))
    expected = _reference_conv1d_transpose(
        x.astype("float64"), to_numpy(layer.kernel).astype("float64"), strides, padding,
        output_padding, dilation,
    )
    assert y.shape == tuple(layer.compute_output_shape(x.shape)) == expected.shape
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Output shapes: the same rule as Keras for every combination, without computing anything.

SHAPE_GRID = list(itertools.product([1, 2, 3, 4], [1, 2, 3], [1, 2], ["valid", "same"]))


@pytest.mark.parametrize("name", ["Conv1D", "Conv1DTranspose"])
def test_output_lengths_follow_keras(name):
    for (kernel, stride, dilation, padding), length in itertools.product(SHAPE_GRID, [4, 5, 7]):
        if stride > 1 and dilation > 1:
            continue
        paddings = [None] if name == "Conv1D" else [None, *range(stride)]
        for output_padding in paddings:
            kwargs = {"filters": 2, "kernel_size": kernel, "strides": stride,
                      "padding": padding, "dilation_rate": dilation}
            if output_padding is not None:
                kwargs["output_padding"] = output_padding
            if name == "Conv1D" and (kernel - 1) * dilation + 1 > length and padding == "valid":
                continue
            shape = (2, length, 3)
            ours = getattr(kl, name)(**kwargs).compute_output_shape(shape)
            theirs = getattr(keras.layers, name)(**kwargs).compute_output_shape(shape)
            assert tuple(ours) == tuple(theirs), kwargs


def test_causal_output_length_and_causality():
    layer = kl.Conv1D(1, 3, padding="causal", dilation_rate=2, use_bias=False)
    x = random_inputs((1, 9, 1))
    y = to_numpy(layer(x))
    assert y.shape == (1, 9, 1)
    changed = x.copy()
    changed[0, 6:] += 1.0
    # Outputs before step 6 see only inputs before step 6.
    np.testing.assert_array_equal(to_numpy(layer(changed))[0, :6], y[0, :6])


@pytest.mark.parametrize(
    "layer, channels, expected",
    [
        (lambda: kl.Conv2D(4, 3, strides=2, padding="same"), 3, (None, None, None, 4)),
        (lambda: kl.Conv2DTranspose(4, 3, strides=2), 3, (None, None, None, 4)),
        (lambda: kl.Conv1D(4, 3, padding="causal"), None, (None, None, 4)),
        (lambda: kl.DepthwiseConv2D(3, padding="same"), 3, (None, None, None, 3)),
        (lambda: kl.SeparableConv2D(4, 3, strides=2), 3, (None, None, None, 4)),
    ],
)
def test_unknown_spatial_sizes(layer, channels, expected):
    spatial = (None,) if channels is None else (None, None)
    inputs = keras.Input((*spatial, channels or 3))
    model_layer = layer()
    outputs = model_layer(inputs)
    assert tuple(outputs.shape) == expected
    x = random_inputs((1, *range(5, 5 + len(spatial)), channels or 3))
    y = keras.Model(inputs, outputs)(x)
    assert tuple(y.shape) == tuple(model_layer.compute_output_shape(x.shape))


def test_kernel_regularizer_adds_loss():
    layer = kl.Conv2D(2, 3, kernel_regularizer=keras.regularizers.L2(0.5))
    layer.build((1, 5, 5, 2))
    expected = 0.5 * np.sum(np.square(to_numpy(layer.kernel)))
    np.testing.assert_allclose(to_numpy(layer.losses[0]), expected, rtol=1e-5)


def test_conv3d_transpose_takes_data_format_before_output_padding():
    layer = kl.Conv3DTranspose(2, 3, 2, "valid", "channels_last", 1)
    assert layer.data_format == "channels_last" and layer.output_padding == (1, 1, 1)


# ---------------------------------------------------------------------------------------------
# Errors: a ValueError naming the layer and the values involved.


@pytest.mark.parametrize(
    "make, pattern",
    [
        (lambda: kl.Conv2D(0, 3), r"Conv2D layer .*`filters`.*filters=0"),
        (lambda: kl.Conv2D(4, 0), r"Conv2D layer .*`kernel_size`.*kernel_size=0"),
        (lambda: kl.Conv2D(4, (3, -1)), r"Conv2D layer .*`kernel_size`.*\(3, -1\)"),
        (lambda: kl.Conv2D(4, (3, 3, 3)), r"Conv2D layer .*tuple of 2.*\(3, 3, 3\)"),
        (lambda: kl.Conv1D(4, 3, strides=0), r"Conv1D layer .*`strides`.*strides=0"),
        (lambda: kl.Conv3D(4, 3, dilation_rate=-2), r"Conv3D layer .*dilation_rate=-2"),
        (lambda: kl.Conv2D(4, 3, padding="full"), r"Conv2D layer .*`padding`.*'full'"),
        (lambda: kl.Conv2D(4, 3, padding="causal"), r"Conv2D layer .*'valid', 'same'.*causal"),
        (lambda: kl.Conv3D(4, 3, padding="causal"), r"Conv3D layer .*padding='causal'"),
        (lambda: kl.Conv2D(4, 3, data_format="NHWC"), r"Conv2D layer .*data_format='NHWC'"),
        (lambda: kl.Conv2D(4, 3, groups=3), r"Conv2D layer .*filters=4 and groups=3"),
        (lambda: kl.Conv2D(4, 3, groups=0), r"Conv2D layer .*`groups`.*groups=0"),
        (lambda: kl.Conv2D(4, 3, strides=2, dilation_rate=2),
         r"Conv2D layer .*strides=\(2, 2\) and dilation_rate=\(2, 2\)"),
        (lambda: kl.Conv2D(4, 3, activation="relux"), r"Conv2D layer .*'relux'"),
        (lambda: kl.DepthwiseConv2D(3, depth_multiplier=0),
         r"DepthwiseConv2D layer .*depth_multiplier=0"),
        (lambda: kl.SeparableConv2D(-1, 3), r"SeparableConv2D layer .*filters=-1"),
        (lambda: kl.SeparableConv2D(4, 3, padding="causal"), r"SeparableConv2D layer .*causal"),
        (lambda: kl.Conv2DTranspose(4, 3, strides=2, output_padding=2),
         r"Conv2DTranspose layer .*output_padding=2 and strides=\(2, 2\)"),
        (lambda: kl.Conv1DTranspose(4, 3, output_padding=1),
         r"Conv1DTranspose layer .*output_padding=1 and strides=\(1,\)"),
        (lambda: kl.Conv2DTranspose(4, 3, output_padding=-1),
         r"Conv2DTranspose layer .*non-negative.*output_padding=-1"),
        (lambda: kl.Conv3DTranspose(4, 3, strides=2, dilation_rate=2),
         r"Conv3DTranspose layer .*strides=\(2, 2, 2\) and dilation_rate"),
        (lambda: kl.Conv1DTranspose(4, 3, padding="causal"), r"Conv1DTranspose layer .*causal"),
    ],
)
def test_rejects_bad_arguments(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


def test_rejects_a_kernel_larger_than_a_valid_input():
    with pytest.raises(ValueError, match=r"Conv2D layer 'small'.*spans 5.*only 4.*\(6, 4\)"):
        kl.Conv2D(2, (3, 5), name="small")(keras.Input((6, 4, 1)))
    # A dilated kernel spans (kernel - 1) * dilation + 1.
    with pytest.raises(ValueError, match=r"Conv1D layer .*spans 7.*only 6"):
        kl.Conv1D(2, 3, dilation_rate=3)(keras.Input((6, 2)))
    with pytest.raises(ValueError, match=r"DepthwiseConv2D layer .*spans 3.*only 2"):
        kl.DepthwiseConv2D(3)(keras.Input((2, 5, 1)))
    # After build, on a smaller input too, before any computation.
    layer = kl.SeparableConv2D(2, 3, name="sep", depthwise_initializer="ones",
                               pointwise_initializer="ones")
    layer.build((1, 5, 5, 1))
    with pytest.raises(ValueError, match=r"SeparableConv2D layer 'sep'.*spans 3.*only 2"):
        layer(np.ones((1, 2, 5, 1), "float32"))
    # "same" pads, so any size fits.
    assert kl.Conv2D(2, 5, padding="same")(keras.Input((2, 2, 1))).shape == (None, 2, 2, 2)


def test_rejects_input_channels_not_divisible_by_groups():
    with pytest.raises(ValueError, match=r"Conv1D layer 'grouped'.*5 channels.*groups=2"):
        kl.Conv1D(4, 3, groups=2, name="grouped")(keras.Input((6, 5)))


@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda: kl.Conv2D(2, 3, name="conv"), (2, 8, 3)),
        (lambda: kl.Conv1D(2, 3, name="conv"), (2, 8, 8, 3)),
        (lambda: kl.Conv2DTranspose(2, 3, name="conv"), (2, 5, 5, 5, 3)),
        (lambda: kl.DepthwiseConv2D(3, name="conv"), (8, 3)),
    ],
)
def test_rejects_wrong_input_rank(make, shape):
    layer = make()
    expected = layer.rank + 2
    with pytest.raises(ValueError, match=rf"layer 'conv'.*expected ndim={expected}, found "
                                         rf"ndim={len(shape)}. Full shape received: "
                                         rf"{re.escape(str(shape))}"):
        layer(np.ones(shape, "float32"))


def test_rejects_unknown_channels_and_changed_channels():
    with pytest.raises(ValueError, match=r"Conv2D layer .*must be known.*\(None, 5, 5, None\)"):
        kl.Conv2D(2, 3).build((None, 5, 5, None))
    layer = kl.Conv2D(2, 3, name="conv")
    layer.build((1, 5, 5, 3))
    with pytest.raises(ValueError, match=r"conv.*axis -1.*value 3.*\(1, 5, 5, 4\)"):
        layer(np.ones((1, 5, 5, 4), "float32"))


# ---------------------------------------------------------------------------------------------
# Construction: Keras's arguments, in Keras's order, and Keras's configs.

CONV_NAMES = ["Conv1D", "Conv2D", "Conv3D", "DepthwiseConv2D", "SeparableConv2D",
              "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"]
WINDOW_ATTRIBUTES = ("kernel_size", "strides", "padding", "data_format", "dilation_rate",
                     "use_bias")


def _positional_arguments(name):
    """Every constructor argument of Keras's layer, positionally, each away from its default."""
    rank = int(name[-2]) if name[-2].isdigit() else int(name[-11])
    ones, twos = (1,) * rank, (2,) * rank
    common = {"kernel_size": twos, "strides": ones, "padding": "same",
              "data_format": "channels_first", "dilation_rate": twos, "groups": 1,
              "output_padding": None, "depth_multiplier": 2, "filters": 2, "activation": "relu",
              "use_bias": False}
    signature = inspect.signature(getattr(keras.layers, name).__init__)
    return [common.get(p.name, p.default) for p in list(signature.parameters.values())[1:]
            if p.kind is p.POSITIONAL_OR_KEYWORD]


@pytest.mark.parametrize("name", CONV_NAMES)
def test_takes_keras_arguments_positionally(name):
    args = _positional_arguments(name)
    ours, theirs = getattr(kl, name)(*args), getattr(keras.layers, name)(*args)
    for attribute in (*WINDOW_ATTRIBUTES, "filters", "depth_multiplier", "output_padding"):
        if hasattr(theirs, attribute):
            assert getattr(ours, attribute) == getattr(theirs, attribute), attribute
    assert ours.activation is theirs.activation


@pytest.mark.parametrize("name", ["Conv2D", "Conv3D", "Conv2DTranspose", "Conv3DTranspose"])
def test_window_defaults_are_keras_tuples(name):
    rank = int(name[4])
    parameters = inspect.signature(getattr(kl, name).__init__).parameters
    assert parameters["strides"].default == parameters["dilation_rate"].default == (1,) * rank


@pytest.mark.parametrize(
    "name, kwargs, input_shape",
    [
        ("Conv1D", {"filters": 4, "kernel_size": 2, "padding": "causal", "dilation_rate": 2,
                    "groups": 2}, (2, 7, 4)),
        ("Conv2D", {"filters": 3, "kernel_size": (2, 3), "strides": (2, 1),
                    "activation": "tanh"}, (2, 6, 5, 2)),
        ("Conv3D", {"filters": 2, "kernel_size": 2, "padding": "same"}, (1, 3, 4, 3, 2)),
        ("DepthwiseConv2D", {"kernel_size": 3, "depth_multiplier": 2}, (2, 5, 5, 2)),
        ("SeparableConv2D", {"filters": 3, "kernel_size": 2, "dilation_rate": 2},
         (2, 6, 6, 2)),
        ("Conv1DTranspose", {"filters": 2, "kernel_size": 3, "strides": 2, "output_padding": 1},
         (2, 4, 3)),
        ("Conv2DTranspose", {"filters": 2, "kernel_size": 3, "strides": 2, "padding": "same"},
         (1, 3, 4, 2)),
        ("Conv3DTranspose", {"filters": 2, "kernel_size": 2, "strides": 2, "output_padding": 1},
         (1, 2, 3, 2, 2)),
    ],
)
def test_loads_keras_configs(name, kwargs, input_shape):
    theirs = getattr(keras.layers, name)(**kwargs)
    ours = getattr(kl, name).from_config(theirs.get_config())
    for attribute in WINDOW_ATTRIBUTES:
        assert getattr(ours, attribute) == getattr(theirs, attribute), attribute
    check_keras_parity(ours, theirs, random_inputs(input_shape))


@pytest.mark.parametrize(
    "name, input_shape",
    [("Conv1DTranspose", (1, 8, 3)), ("Conv2DTranspose", (1, 5, 5, 3)),
     ("Conv3DTranspose", (1, 5, 5, 5, 3))],
)
def test_output_padding_survives_the_config(name, input_shape):
    layer = getattr(kl, name)(2, 3, strides=2, output_padding=1)
    revived = getattr(kl, name).from_config(layer.get_config())
    assert revived.output_padding == layer.output_padding == (1,) * (len(input_shape) - 2)
    assert revived.compute_output_shape(input_shape) == layer.compute_output_shape(input_shape)


def test_convolution_weights_take_their_constraints():
    layer = kl.Conv2D(4, 3, kernel_constraint="non_neg", bias_constraint="non_neg")
    layer.build((None, 5, 5, 3))
    assert isinstance(layer.kernel.constraint, keras.constraints.NonNeg)
    assert isinstance(layer.bias.constraint, keras.constraints.NonNeg)


@pytest.mark.parametrize("kernel_size, strides, output_padding",
                         [(1, 1, None), (3, 2, None), (4, 3, 2), (2, 4, 1)])
@pytest.mark.parametrize("padding", ["same", "valid"])
def test_transposed_unknown_sizes_give_unknown_outputs_like_keras(kernel_size, strides,
                                                                  output_padding, padding):
    kwargs = {"filters": 2, "kernel_size": kernel_size, "strides": strides, "padding": padding,
              "output_padding": output_padding}
    ours = kl.Conv2DTranspose(**kwargs)(keras.Input((None, None, 3)))
    theirs = keras.layers.Conv2DTranspose(**kwargs)(keras.Input((None, None, 3)))
    assert tuple(ours.shape) == tuple(theirs.shape) == (None, None, None, 2)
