"""Masking: contract, parity with keras.layers.Masking (outputs, gradients, the mask it emits,
masks reaching a following LSTM), configs Keras saves, errors."""

import json
import os
import tempfile

import keras
import numpy as np
import pytest

import keraslayers as kl
from tests.contract import (
    check_keras_parity,
    check_layer_contract,
    dtype_policy,
    outputs_and_gradients,
    random_inputs,
    to_numpy,
)


def padded_steps(shape=(3, 5, 4), value=0.0):
    """Normal floats with some steps set to `value` in every feature: leading, inner and
    trailing padding, and a step where only some features equal it (not masked)."""
    x = random_inputs(shape)
    x[0, 0] = value
    x[1, 2] = value
    x[2, -2:] = value
    x[0, 3, ..., :2] = value
    return x


def output_mask(y):
    return to_numpy(y._keras_mask)


@pytest.mark.parametrize(
    "mask_value, shape",
    [(0.0, (3, 5, 4)), (-1.0, (3, 5, 4)), (0.5, (3, 5, 2, 4))],
)
def test_contract_emits_the_mask_of_its_padded_steps(mask_value, shape):
    x = padded_steps(shape, mask_value)
    check_layer_contract(lambda: kl.Masking(mask_value), shape, input_data=x,
                         expected_mask=np.any(x != mask_value, axis=-1))


def test_contract_with_one_mask_value_per_feature():
    values = [0.0, -1.0, 2.0, 0.0]
    x = random_inputs((2, 4, 4))
    x[0, 1] = values
    x[1, 3] = values
    expected = np.ones((2, 4), bool)
    expected[0, 1] = expected[1, 3] = False
    check_layer_contract(lambda: kl.Masking(values), (2, 4, 4), input_data=x,
                         expected_mask=expected)


def test_contract_on_a_rank_2_input_masks_whole_samples():
    x = random_inputs((4, 3))
    x[2] = 0.0
    check_layer_contract(lambda: kl.Masking(), (4, 3), input_data=x,
                         expected_mask=[True, True, False, True])


def test_contract_on_integer_inputs_keeps_their_dtype():
    x = random_inputs((3, 5, 2), "int32", high=3)
    x[1, 1] = 0
    check_layer_contract(lambda: kl.Masking(0), (3, 5, 2), input_dtype="int32", input_data=x,
                         expected_mask=np.any(x != 0, axis=-1))
    y = kl.Masking(0)(x)
    assert keras.backend.standardize_dtype(y.dtype) == "int32"
    np.testing.assert_array_equal(to_numpy(y), to_numpy(keras.layers.Masking(0)(x)))
    # The symbolic output says so too (Keras's says float32, the compute dtype).
    symbolic = kl.Masking(0)(keras.Input((5, 2), dtype="int32"))
    assert keras.backend.standardize_dtype(symbolic.dtype) == "int32"


@pytest.mark.grid
@pytest.mark.parametrize(
    "mask_value",
    [0.0, -1.0, 3, np.float32(0.5), [0.0, -1.0, 2.0, 0.0], (0.5,),
     np.array([0.0, -1.0, 2.0, 0.0], "float32"), np.array(0.5)],
    ids=["zero", "minus_one", "int", "numpy_scalar", "list", "tuple", "array", "array0d"],
)
def test_outputs_gradients_and_mask_match_keras(mask_value):
    value = np.broadcast_to(np.asarray(mask_value, "float32"), (4,))
    x = padded_steps(value=0.0)
    x[0, 0] = x[1, 2] = x[2, 3:] = value
    ours, theirs = kl.Masking(mask_value), keras.layers.Masking(mask_value)
    check_keras_parity(ours, theirs, x)
    mask = output_mask(ours(x))
    np.testing.assert_array_equal(mask, output_mask(theirs(x)))
    assert not mask[0, 0] and not mask[1, 2] and not mask[2, 3:].any()
    np.testing.assert_array_equal(to_numpy(ours.compute_mask(x)), mask)


def test_masked_steps_are_zero_and_pass_no_gradient():
    x = padded_steps(value=2.0)
    y, gradient = outputs_and_gradients(kl.Masking(2.0), x)
    keep = np.any(x != 2.0, axis=-1, keepdims=True)
    np.testing.assert_array_equal(y, np.where(keep, x, 0.0))
    # The step where only some features equal mask_value is kept whole.
    np.testing.assert_array_equal(y[0, 3], x[0, 3])
    # d sum(y * c) / dx: c on kept steps, zero on masked ones.
    cotangent = random_inputs(x.shape, seed=7)
    np.testing.assert_array_equal(gradient, np.where(keep, cotangent, 0.0))


def test_a_mask_value_that_is_a_tensor_matches_keras_and_survives_saving():
    values = keras.ops.convert_to_tensor([0.0, -1.0, 2.0, 0.0])
    x = random_inputs((2, 4, 4))
    x[1, 1] = [0.0, -1.0, 2.0, 0.0]
    check_keras_parity(kl.Masking(values), keras.layers.Masking(values), x)
    _check_saved_model_agrees(kl.Masking(values), x)
    _check_saved_model_agrees(kl.Masking(np.array([0.0, -1.0, 2.0, 0.0], "float32")), x)


def _check_saved_model_agrees(layer, x):
    inputs = keras.Input(x.shape[1:])
    model = keras.Model(inputs, layer(inputs))
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "masking.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(to_numpy(loaded(x)), to_numpy(model(x)))
    np.testing.assert_array_equal(output_mask(loaded(x)), output_mask(model(x)))


def test_infinite_and_nan_mask_values_as_keras():
    x = random_inputs((2, 3, 2))
    x[0, 1] = np.inf
    # An infinite padding value gives zeros, not NaN (a select, not a product).
    for mask_value in (np.inf, float("nan")):
        ours, theirs = kl.Masking(mask_value)(x), keras.layers.Masking(mask_value)(x)
        np.testing.assert_array_equal(to_numpy(ours), to_numpy(theirs))
        np.testing.assert_array_equal(output_mask(ours), output_mask(theirs))
    assert not output_mask(kl.Masking(np.inf)(x))[0, 1]
    assert output_mask(kl.Masking(float("nan"))(x)).all()  # NaN equals nothing


def test_mixed_precision_compares_as_keras_does_on_each_backend():
    # 0.1 is not a bfloat16. keras.ops.not_equal(bfloat16 input, 0.1) compares in bfloat16 on
    # JAX and torch (the step is masked) but in float32 on TensorFlow (it is not): Keras's
    # Masking does the same, and ours matches it on each backend.
    x = random_inputs((2, 3, 4))
    x[1, 2] = 0.1
    with dtype_policy("mixed_bfloat16"):
        ours, theirs = kl.Masking(0.1), keras.layers.Masking(0.1)
    y = ours(x)
    assert keras.backend.standardize_dtype(y.dtype) == "bfloat16"
    np.testing.assert_array_equal(to_numpy(y).astype("float32"),
                                  to_numpy(theirs(x)).astype("float32"))
    np.testing.assert_array_equal(output_mask(y), output_mask(theirs(x)))
    assert output_mask(y)[1, 2] == (keras.backend.backend() == "tensorflow")


def test_an_incoming_mask_is_replaced_as_keras_replaces_it():
    x = padded_steps()
    everything_masked = np.zeros(x.shape[:-1], bool)
    np.testing.assert_array_equal(to_numpy(kl.Masking().compute_mask(x, everything_masked)),
                                  np.any(x != 0, axis=-1))
    embedded = keras.layers.Embedding(10, 4, mask_zero=True)
    tokens = np.array([[1, 0, 2], [3, 4, 0]])
    ours = kl.Masking(-5.0)(embedded(tokens))
    np.testing.assert_array_equal(output_mask(ours), np.ones((2, 3), bool))


def _lstm_model(masking, lstm):
    inputs = keras.Input((6, 4))
    return keras.Model(inputs, lstm(masking(inputs)))


def test_masks_reach_a_following_lstm_as_kerass_do():
    x = random_inputs((3, 6, 4))
    x[0, 0] = x[0, 3] = 0.0  # leading and inner padding
    x[1, 4:] = 0.0  # trailing padding
    reference = _lstm_model(keras.layers.Masking(), keras.layers.LSTM(3))
    expected = to_numpy(reference(x))
    weights = reference.get_weights()
    for lstm in (keras.layers.LSTM(3), kl.LSTM(3)):
        model = _lstm_model(kl.Masking(), lstm)
        model.set_weights(weights)
        np.testing.assert_allclose(to_numpy(model(x)), expected, rtol=1e-5, atol=1e-5)
    # The padding changes the answer: without the mask the LSTM reads the zeros.
    unmasked = _lstm_model(keras.layers.Identity(), keras.layers.LSTM(3))
    unmasked.set_weights(weights)
    assert not np.allclose(to_numpy(unmasked(x))[:2], expected[:2], atol=1e-4)


def test_masks_reach_a_following_lstm_in_sequences_and_in_training():
    x = random_inputs((2, 6, 4))
    x[1, 2] = x[1, 5] = 0.0
    reference = _lstm_model(keras.layers.Masking(), keras.layers.LSTM(3, return_sequences=True))
    model = _lstm_model(kl.Masking(), keras.layers.LSTM(3, return_sequences=True))
    model.set_weights(reference.get_weights())
    np.testing.assert_allclose(to_numpy(model(x)), to_numpy(reference(x)), rtol=1e-5, atol=1e-5)
    # Keras's compiled loss reads the output's mask: the padded steps add nothing to it.
    target = random_inputs((2, 6, 3), seed=3)
    for m in (model, reference):
        m.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    np.testing.assert_allclose(model.train_on_batch(x, target),
                               reference.train_on_batch(x, target), rtol=1e-5)
    np.testing.assert_allclose(to_numpy(model(x)), to_numpy(reference(x)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "mask_value", [0.0, -1.0, 2, [0.0, -1.0, 2.0, 0.0], np.array([0.0, -1.0, 2.0, 0.0], "float32")],
    ids=["zero", "float", "int", "list", "array"],
)
def test_loads_the_config_keras_saves(mask_value):
    theirs = keras.layers.Masking(mask_value, name="padding")
    # As a `.keras` file holds it: JSON, a NumPy mask_value serialised as a dict.
    saved = json.loads(json.dumps(keras.saving.serialize_keras_object(theirs)))
    ours = kl.Masking.from_config(saved["config"])
    assert ours.name == "padding"
    np.testing.assert_array_equal(np.asarray(ours.get_config()["mask_value"]),
                                  np.asarray(theirs.get_config()["mask_value"]))
    x = random_inputs((2, 4, 4))
    x[1, 1] = np.broadcast_to(np.asarray(mask_value, "float32"), (4,))
    check_keras_parity(ours, theirs, x)
    np.testing.assert_array_equal(output_mask(ours(x)), output_mask(theirs(x)))
    # And ours is what Keras would have saved.
    ours_saved = json.loads(json.dumps(keras.saving.serialize_keras_object(ours)))
    assert ours_saved["config"]["mask_value"] == saved["config"]["mask_value"]


def test_default_config_is_kerass():
    ours, theirs = kl.Masking(name="m"), keras.layers.Masking(name="m")
    assert ours.get_config() == theirs.get_config()


def test_is_built_at_construction_unless_build_is_overridden():
    layer = kl.Masking()
    assert layer.built and layer.supports_masking and not layer.weights

    class Recorded(kl.Masking):
        def build(self, input_shape):
            self.seen_shape = tuple(input_shape)

    recorded = Recorded()
    assert not recorded.built
    recorded(np.ones((2, 3, 4), "float32"))
    assert recorded.built and recorded.seen_shape == (2, 3, 4)


def test_compute_output_shape_keeps_unknown_sizes():
    assert kl.Masking().compute_output_shape((None, None, 4)) == (None, None, 4)
    assert kl.Masking([1.0, 2.0]).compute_output_shape((None, 7, 2)) == (None, 7, 2)
    symbolic = kl.Masking()(keras.Input((None, 3)))
    assert tuple(symbolic.shape) == (None, None, 3)
    assert tuple(symbolic._keras_mask.shape) == (None, None)


@pytest.mark.parametrize("mask_value", [None, "0", {"value": 1}, [[1.0, 2.0], [3.0]],
                                        object()])
def test_rejects_a_mask_value_that_is_not_numeric(mask_value):
    with pytest.raises(ValueError,
                       match=r"Masking layer '.*': `mask_value` must be a number .*mask_value="):
        kl.Masking(mask_value)


def test_rejects_a_mask_value_that_does_not_broadcast_against_the_input():
    layer = kl.Masking([0.0, 1.0, 2.0])
    message = r"Masking layer '.*': `mask_value` of shape \(3,\) does not broadcast .*\(2, 5, 4\)"
    with pytest.raises(ValueError, match=message):
        layer(random_inputs((2, 5, 4)))
    with pytest.raises(ValueError, match=r"`mask_value` of shape \(3,\)"):
        kl.Masking([0.0, 1.0, 2.0])(keras.Input((5, 4)))
    with pytest.raises(ValueError, match=r"`mask_value` of shape \(2, 1, 1, 1\)"):
        kl.Masking(np.zeros((2, 1, 1, 1))).compute_output_shape((2, 5, 4))


def test_rejects_a_scalar_input():
    with pytest.raises(ValueError, match=r"masking.*expected min_ndim=1, found ndim=0"):
        kl.Masking()(np.float32(1.0))
    with pytest.raises(ValueError, match=r"Masking layer '.*': input must have rank >= 1"):
        kl.Masking().compute_output_shape(())
