"""LeakyReLU, PReLU, ELU, Softmax: contract, parity with Keras (outputs and gradients), masks,
mixed precision, Keras configs, errors."""

import warnings

import keras
import numpy as np
import pytest

import keraslayers as kl
from tests.contract import (
    check_keras_parity,
    check_layer_contract,
    dtype_policy,
    random_inputs,
    to_numpy,
)


@pytest.mark.parametrize(
    "make, input_shape, weights",
    [
        (lambda: kl.LeakyReLU(negative_slope=0.1), (3, 5), 0),
        (lambda: kl.PReLU(), (3, 5), 1),
        (lambda: kl.PReLU(shared_axes=[1, 2], alpha_initializer="ones"), (2, 3, 4, 2), 1),
        (lambda: kl.ELU(alpha=0.7), (3, 5), 0),
        (lambda: kl.Softmax(axis=1), (2, 3, 4), 0),
    ],
)
def test_contract_passes_masks_through(make, input_shape, weights):
    mask = np.ones(input_shape[:2], bool)
    mask[0, -1] = False
    check_layer_contract(make, input_shape, trainable_weights=weights, input_mask=mask,
                         expected_mask=mask)


@pytest.mark.grid
@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("LeakyReLU", {}),
        ("LeakyReLU", {"negative_slope": 0.0}),
        ("LeakyReLU", {"negative_slope": 2.5}),
        ("PReLU", {"alpha_initializer": "random_normal"}),
        ("PReLU", {"alpha_initializer": "random_normal", "shared_axes": 1}),
        ("PReLU", {"alpha_initializer": "random_normal", "shared_axes": [1, 2]}),
        ("ELU", {}),
        ("ELU", {"alpha": 0.3}),
        ("ELU", {"alpha": -1.5}),
        ("Softmax", {}),
        ("Softmax", {"axis": 1}),
        ("Softmax", {"axis": [1]}),
        ("Softmax", {"axis": [1, 2]}),
        ("Softmax", {"axis": (-1, 0)}),
    ],
)
def test_outputs_and_gradients_match_keras(name, kwargs):
    x = random_inputs((2, 3, 4)) * 3
    check_keras_parity(getattr(kl, name)(**kwargs), getattr(keras.layers, name)(**kwargs), x)


def test_prelu_weight_is_keras_alpha_and_learns():
    layer = kl.PReLU(shared_axes=[2])
    layer.build((None, 3, 4, 5))
    assert [(w.name, tuple(w.shape)) for w in layer.weights] == [("alpha", (3, 1, 5))]
    np.testing.assert_array_equal(to_numpy(layer.alpha), 0.0)
    # The slope below zero is alpha's, broadcast along the shared axis.
    layer.alpha.assign(np.full((3, 1, 5), 0.5, "float32"))
    y = to_numpy(layer(-np.ones((2, 3, 4, 5), "float32")))
    np.testing.assert_allclose(y, -0.5)


def test_prelu_regularizer_and_constraint():
    layer = kl.PReLU(alpha_initializer="ones", alpha_regularizer=keras.regularizers.L2(0.5),
                     alpha_constraint=keras.constraints.NonNeg())
    layer(random_inputs((2, 4)))
    np.testing.assert_allclose(to_numpy(layer.losses[0]), 0.5 * 4, rtol=1e-6)
    assert isinstance(layer.alpha.constraint, keras.constraints.NonNeg)


def test_prelu_rejects_an_input_whose_unshared_sizes_differ_from_the_build():
    layer = kl.PReLU(shared_axes=[1], name="prelu")
    layer(random_inputs((2, 3, 4)))
    layer(random_inputs((2, 7, 4)))  # a shared axis may change size
    with pytest.raises(ValueError, match="prelu"):
        layer(random_inputs((2, 3, 5)))


@pytest.mark.grid
@pytest.mark.parametrize(
    "mask_shape, axis",
    [((2, 3, 4), -1), ((2, 1, 4), -1), ((4,), -1), ((2, 3, 1), 1), ((3, 4), [1, 2])],
)
def test_softmax_mask_matches_keras(mask_shape, axis):
    x = random_inputs((2, 3, 4)) * 3
    mask = np.random.default_rng(3).random(mask_shape) > 0.4
    ours, theirs = kl.Softmax(axis=axis), keras.layers.Softmax(axis=axis)
    y = to_numpy(ours(x, mask=mask))
    np.testing.assert_allclose(y, to_numpy(theirs(x, mask=mask)), rtol=1e-6, atol=1e-7)
    assert np.all(y[np.broadcast_to(~mask, x.shape)] == 0)


def test_softmax_masked_positions_get_no_probability():
    x = np.array([[2.0, 1.0, 7.0, 0.5], [1.0, 2.0, 3.0, 4.0]], "float32")
    mask = np.array([[True, True, False, True], [False, False, False, False]])
    y = to_numpy(kl.Softmax()(x, mask=mask))
    assert y[0, 2] == 0 and np.isclose(y[0].sum(), 1.0)
    np.testing.assert_allclose(y[0, [0, 1, 3]], np.exp([2, 1, 0.5]) / np.exp([2, 1, 0.5]).sum(),
                               rtol=1e-6)
    np.testing.assert_array_equal(y[1], 0.0)  # a fully masked row: zeros, as Keras gives
    # A float mask keeps the values above 0.5, as Keras's.
    np.testing.assert_array_equal(to_numpy(kl.Softmax()(x, mask=mask.astype("float32"))), y)


def test_softmax_reads_the_previous_layers_mask_as_keras_does():
    # Keras aligns an implicit (batch, steps) mask with the last axes of the logits: for one
    # sample of 4 steps of 4 scores it masks scores 2 and 3 of every step; with a batch of 2
    # the shapes do not broadcast, and both layers refuse them.
    embedding = kl.Embedding(5, 4, mask_zero=True)
    inputs = keras.Input((4,), dtype="int32")
    ours = keras.Model(inputs, kl.Softmax()(embedding(inputs)))
    theirs = keras.Model(inputs, keras.layers.Softmax()(embedding(inputs)))
    tokens = np.array([[3, 1, 0, 0]], "int32")
    y = to_numpy(ours(tokens))
    np.testing.assert_allclose(y, to_numpy(theirs(tokens)), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(y[0, :, 2:], 0.0)
    np.testing.assert_allclose(y[0].sum(-1), 1.0, rtol=1e-6)
    for model in (ours, theirs):
        with pytest.raises(ValueError, match="mask"):
            model(np.array([[3, 1, 0, 0], [2, 2, 2, 0]], "int32"))


def test_softmax_gradients_with_a_mask_match_keras():
    x = random_inputs((2, 5)) * 2
    mask = np.array([[True, False, True, True, False], [True, True, True, True, True]])
    ours, theirs = kl.Softmax(), keras.layers.Softmax()
    check_keras_parity(_Masked(ours, mask), _Masked(theirs, mask), x)


class _Masked(keras.layers.Layer):
    """Calls a softmax layer with a fixed mask, so the parity helper's gradients see it."""

    def __init__(self, layer, mask, **kwargs):
        super().__init__(**kwargs)
        self.layer, self.mask = layer, mask

    def call(self, inputs):
        return self.layer(inputs, mask=self.mask)

    def compute_output_shape(self, input_shape):
        return input_shape


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_softmax_is_computed_in_float32_under_mixed_precision(policy):
    # Logits 0.01 apart over 512 positions: in 16-bit floats their differences round away.
    x = np.linspace(0.0, 5.11, 512, dtype="float32")[None]
    mask = np.arange(512)[None] % 7 != 0
    # The layer's inputs are cast to the compute dtype first: the float32 softmax of those.
    rounded = keras.ops.cast(keras.ops.cast(x, policy.removeprefix("mixed_")), "float32")
    expected = to_numpy(kl.Softmax()(rounded, mask=mask))
    with dtype_policy(policy):
        layer = kl.Softmax()
    y = layer(x, mask=mask)
    assert keras.backend.standardize_dtype(y.dtype) == policy.removeprefix("mixed_")
    y = to_numpy(y).astype("float32")
    # Only the output's rounding to the 16-bit type is left (half a unit in the last place);
    # a softmax computed in that type (Keras's) is off by several units here.
    np.testing.assert_allclose(y, expected, rtol=ROUNDING[policy], atol=0)
    assert np.all(y[~mask] == 0)


ROUNDING = {"mixed_bfloat16": 2.0**-8, "mixed_float16": 2.0**-11}


def test_mixed_precision_keeps_prelu_alpha_in_float32():
    with dtype_policy("mixed_bfloat16"):
        layer = kl.PReLU(alpha_initializer="ones")
    y = layer(random_inputs((2, 3)))
    assert keras.backend.standardize_dtype(y.dtype) == "bfloat16"
    assert keras.backend.standardize_dtype(layer.alpha.dtype) == "float32"


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("LeakyReLU", {"negative_slope": 0.15}),
        ("PReLU", {"alpha_initializer": "ones", "alpha_regularizer": "l2",
                   "alpha_constraint": "non_neg", "shared_axes": [1]}),
        ("ELU", {}),
        ("Softmax", {"axis": [1, 2]}),
    ],
)
def test_layers_load_keras_configs(name, kwargs):
    theirs = getattr(keras.layers, name)(**kwargs)
    ours = getattr(kl, name).from_config(theirs.get_config())
    x = random_inputs((2, 3, 4))
    theirs(x)
    ours(x)
    ours.set_weights(theirs.get_weights())
    np.testing.assert_allclose(to_numpy(ours(x)), to_numpy(theirs(x)), rtol=1e-6)
    assert {k: v for k, v in ours.get_config().items() if k in kwargs} == {
        k: v for k, v in theirs.get_config().items() if k in kwargs}


def test_leaky_relu_takes_the_legacy_alpha_keyword():
    with pytest.warns(UserWarning, match="alpha"):
        layer = kl.LeakyReLU(alpha=0.2)
    assert layer.negative_slope == 0.2
    with pytest.warns(UserWarning):
        assert kl.LeakyReLU(negative_slope=0.5, alpha=0.1).negative_slope == 0.1  # as Keras
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        legacy = kl.LeakyReLU.from_config({"name": "old", "alpha": 0.25, "trainable": True})
    assert legacy.get_config()["negative_slope"] == 0.25 and "alpha" not in legacy.get_config()
    assert kl.LeakyReLU().negative_slope == 0.3


def test_elu_config_keeps_alpha():
    # Keras's ELU leaves alpha out of its config (a reloaded Keras ELU has alpha 1.0).
    clone = kl.ELU.from_config(kl.ELU(alpha=0.4).get_config())
    assert clone.alpha == 0.4


@pytest.mark.parametrize(
    "make, pattern, error",
    [
        (lambda: kl.LeakyReLU(negative_slope=-0.1), r"LeakyReLU layer .*negative_slope=-0.1",
         ValueError),
        (lambda: kl.LeakyReLU(negative_slope=None), r"LeakyReLU layer .*negative_slope=None",
         TypeError),
        (lambda: kl.LeakyReLU(negative_slope="0.2"), r"LeakyReLU layer .*negative_slope='0.2'",
         TypeError),
        (lambda: kl.ELU(alpha="big"), r"ELU layer .*alpha='big'", ValueError),
        (lambda: kl.ELU(alpha=float("nan")), r"ELU layer .*alpha=nan", ValueError),
        (lambda: kl.PReLU(shared_axes=0), r"PReLU layer .*shared_axes=0", ValueError),
        (lambda: kl.PReLU(shared_axes=[1, -1]), r"PReLU layer .*shared_axes=\[1, -1\]",
         ValueError),
        (lambda: kl.PReLU(shared_axes="1"), r"PReLU layer .*shared_axes='1'", ValueError),
        (lambda: kl.Softmax(axis=1.5), r"Softmax layer .*axis=1.5", ValueError),
        (lambda: kl.Softmax(axis=[]), r"Softmax layer .*axis=\[\]", ValueError),
    ],
)
def test_bad_arguments_raise_value_errors_naming_the_layer(make, pattern, error):
    with pytest.raises(error, match=pattern) as raised:
        make()
    assert isinstance(raised.value, ValueError)


def test_bad_inputs_raise_value_errors_naming_the_layer():
    with pytest.raises(ValueError, match=r"PReLU layer .*shared_axes.*\(2, 3\)"):
        kl.PReLU(shared_axes=[2]).build((2, 3))
    with pytest.raises(ValueError, match=r"PReLU layer .*must be known.*None"):
        kl.PReLU().build((None, None, 4))
    kl.PReLU(shared_axes=[1]).build((None, None, 4))  # unknown but shared: fine
    with pytest.raises(ValueError, match=r"Softmax layer .*axis.* 3 .*rank 2"):
        kl.Softmax(axis=3)(random_inputs((2, 3)))
    with pytest.raises(ValueError, match=r"Softmax layer .*mask.*\(2, 4\).*\(2, 3\)"):
        kl.Softmax()(random_inputs((2, 3)), mask=np.ones((2, 4), bool))
    with pytest.raises(ValueError, match=r"Softmax layer .*mask.*\(1, 2, 3\)"):
        kl.Softmax()(random_inputs((2, 3)), mask=np.ones((1, 2, 3), bool))
