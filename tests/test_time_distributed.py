"""TimeDistributed: contract, parity with Keras (outputs, gradients) around several layers,
masks, batch statistics, config, errors."""

import keras
import numpy as np
import pytest
from keras import ops

import keraslayers as kl
from tests.call_parity import assert_same_outputs_and_gradients
from tests.contract import check_keras_parity, check_layer_contract, random_inputs, to_numpy

SHAPE = (2, 3, 5)
MASK = np.array([[True, False, True], [False, True, True]])


def test_contract_around_dense_with_a_mask():
    check_layer_contract(lambda: kl.TimeDistributed(kl.Dense(4)), SHAPE,
                         expected_output_shape=(2, 3, 4), trainable_weights=2,
                         input_mask=MASK, expected_mask=MASK)


def test_contract_around_a_convolution():
    check_layer_contract(lambda: kl.TimeDistributed(kl.Conv2D(3, 3)), (2, 3, 6, 6, 2),
                         expected_output_shape=(2, 3, 4, 4, 3), trainable_weights=2,
                         check_mixed_precision=False)


INNER = {
    "dense": (lambda m: m.Dense(4, activation="relu"), SHAPE),
    "conv2d": (lambda m: m.Conv2D(3, 3, padding="same"), (2, 3, 5, 5, 2)),
    "lstm": (lambda m: m.LSTM(4, return_sequences=True), (2, 3, 4, 2)),
    "layer_norm": (lambda m: m.LayerNormalization(), SHAPE),
}


@pytest.mark.grid
@pytest.mark.parametrize("inner", INNER)
def test_matches_keras(inner):
    make, shape = INNER[inner]
    check_keras_parity(kl.TimeDistributed(make(kl)),
                       keras.layers.TimeDistributed(make(keras.layers)), random_inputs(shape))


def test_wraps_keras_layers_too():
    check_keras_parity(kl.TimeDistributed(keras.layers.Dense(3)),
                       keras.layers.TimeDistributed(keras.layers.Dense(3)),
                       random_inputs(SHAPE))


def test_a_mask_reaches_a_layer_that_takes_one():
    """A (batch, time, steps) mask reaches an inner LSTM as (batch * time, steps) slices,
    as Keras hands each time slice its own mask."""
    x = random_inputs((2, 3, 4, 2))
    mask = np.ones((2, 3, 4), bool)
    mask[0, 1, 2:] = False
    mask[1, 2, :1] = False
    ours = kl.TimeDistributed(kl.LSTM(4, return_sequences=True))
    theirs = keras.layers.TimeDistributed(keras.layers.LSTM(4, return_sequences=True))
    theirs(x)
    ours(x)
    ours.set_weights(theirs.get_weights())
    assert_same_outputs_and_gradients(ours, theirs, x, mask=ops.convert_to_tensor(mask))
    y = ours(x)
    assert ours.compute_mask(y, ops.convert_to_tensor(MASK)) is not None


def test_batch_normalization_in_training_keeps_per_step_statistics():
    """Keras normalises each time slice with its own batch statistics: so does ours, slice by
    slice (folded, the statistics would span every step)."""
    x = random_inputs(SHAPE) * 3 + np.arange(3)[None, :, None]
    ours = kl.TimeDistributed(kl.BatchNormalization())
    theirs = keras.layers.TimeDistributed(keras.layers.BatchNormalization())
    check_keras_parity(ours, theirs, x, training=True)
    ours, theirs = (kl.TimeDistributed(module.BatchNormalization())
                    for module in (kl, keras.layers))
    ours(x)
    theirs(x)
    ours(x, training=True)
    theirs(x, training=True)
    for a, b in zip(ours.weights, theirs.weights, strict=True):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-5, atol=1e-6)


def test_embedding_mask_flows_through_in_a_trained_model():
    def model(module):
        return keras.Sequential([
            keras.Input((6,)),
            module.Embedding(10, 4, mask_zero=True),
            module.TimeDistributed(module.Dense(3)),
            module.LSTM(2),
        ])

    ours, theirs = model(kl), model(keras.layers)
    ours.set_weights(theirs.get_weights())
    tokens = random_inputs((2, 6), "int32", high=10)
    tokens[0, 3:] = 0
    np.testing.assert_allclose(to_numpy(ours(tokens)), to_numpy(theirs(tokens)),
                               rtol=1e-5, atol=1e-5)
    ours.compile(optimizer="sgd", loss="mse")
    ours.fit(tokens, np.zeros((2, 2), "float32"), epochs=1, verbose=0)


def test_config_holds_the_nested_layer():
    layer = kl.TimeDistributed(kl.Dense(4, use_bias=False), name="td")
    config = layer.get_config()
    assert config["layer"]["class_name"] == "Dense"
    clone = kl.TimeDistributed.from_config(config)
    assert clone.get_config() == config and clone.layer.use_bias is False
    # Keras's config (around Keras's Dense) loads into ours.
    theirs = keras.layers.TimeDistributed(keras.layers.Dense(4))
    assert isinstance(kl.TimeDistributed.from_config(theirs.get_config()).layer,
                      keras.layers.Dense)


def test_unknown_time_and_batch():
    inputs = keras.Input((None, 5))
    outputs = kl.TimeDistributed(kl.Dense(4))(inputs)
    assert tuple(outputs.shape) == (None, None, 4)
    model = keras.Model(inputs, outputs)
    x = random_inputs((3, 7, 5))
    np.testing.assert_allclose(model.predict(x, verbose=0), to_numpy(model(x)),
                               rtol=1e-5, atol=1e-5)


def test_rejects_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match=r"TimeDistributed layer .*layer.*'dense'"):
        kl.TimeDistributed("dense")
    with pytest.raises(ValueError, match=r"TimeDistributed layer 't'.*rank >= 3.*\(2, 5\)"):
        kl.TimeDistributed(kl.Dense(2), name="t")(random_inputs((2, 5)))
    layer = kl.TimeDistributed(kl.Dense(2), name="m")
    with pytest.raises(ValueError, match=r"TimeDistributed layer 'm'.*mask.*\(2, 3\).*\(2, 4\)"):
        layer(random_inputs(SHAPE), mask=np.ones((2, 4), bool))
