"""Convolutional LSTMs (ConvLSTM1D/2D/3D, ConvLSTMCell): contract, parity with Keras (outputs,
states, gradients) over their options, masks, state, dropout, formulations, errors.

Small shapes (batch 2, 3 steps, 5x5 images of 2 channels, 3 filters): JAX compiles once per
shape and option.
"""

import keras
import numpy as np
import pytest
from keras import ops

import keraslayers as kl
from keraslayers.layers import formulation, recurrent
from tests.contract import check_keras_parity, check_layer_contract, random_inputs, to_numpy
from tests.test_recurrent import Probe

SHAPE = (2, 3, 5, 5, 2)  # (batch, time, rows, cols, channels)
MASK = np.array([[True, False, True], [False, True, True]])
LOOSE = {"rtol": 1e-4, "atol": 1e-4}


def parity(ours, theirs, x, mask=None, initial_state=None, tolerance=None, training=False):
    check_keras_parity(Probe(ours, mask, initial_state), Probe(theirs, mask, initial_state), x,
                       training=training, **({"tolerance": tolerance} if tolerance else {}))


def both(name, *args, **kwargs):
    return getattr(kl, name)(*args, **kwargs), getattr(keras.layers, name)(*args, **kwargs)


def both_for_a_mask(name, *args, **kwargs):
    """`both`, where Keras's layer takes a mask: on JAX its scan loop cannot (it broadcasts
    the `(batch, 1)` step mask against `(batch, *spatial, filters)` states and fails), its
    unrolled loop can and computes the same."""
    ours, theirs = both(name, *args, **kwargs)
    if keras.backend.backend() == "jax":
        theirs = getattr(keras.layers, name)(*args, **{**kwargs, "unroll": True})
    return ours, theirs


# -- contract -------------------------------------------------------------------------------


def test_contract_2d_with_mask():
    check_layer_contract(
        lambda: kl.ConvLSTM2D(3, 3, padding="same", return_sequences=True), SHAPE,
        expected_output_shape=(2, 3, 5, 5, 3), trainable_weights=3, seed_generators=1,
        input_mask=MASK, expected_mask=MASK,
    )


def test_contract_1d_and_3d():
    check_layer_contract(lambda: kl.ConvLSTM1D(4, 2, strides=2), (2, 3, 7, 2),
                         expected_output_shape=(2, 3, 4), trainable_weights=3,
                         seed_generators=1, check_mixed_precision=False)
    check_layer_contract(lambda: kl.ConvLSTM3D(2, 2, padding="same", go_backwards=True),
                         (1, 2, 3, 3, 3, 2), expected_output_shape=(1, 3, 3, 3, 2),
                         trainable_weights=3, seed_generators=1, check_mixed_precision=False)


def test_contract_with_dropout():
    check_layer_contract(
        lambda: kl.ConvLSTM2D(3, 3, dropout=0.3, recurrent_dropout=0.2, seed=4,
                              kernel_initializer=keras.initializers.GlorotUniform(seed=1),
                              recurrent_initializer=keras.initializers.Orthogonal(seed=2)),
        SHAPE, trainable_weights=3, seed_generators=1, random=True,
        check_mixed_precision=False,
    )


def test_weights_shapes_and_unit_forget_bias():
    layer = kl.ConvLSTM2D(3, (3, 2))
    layer(random_inputs(SHAPE))
    assert [(w.name, tuple(w.shape)) for w in layer.weights] == [
        ("kernel", (3, 2, 2, 12)), ("recurrent_kernel", (3, 2, 3, 12)), ("bias", (12,))]
    np.testing.assert_array_equal(to_numpy(layer.weights[2]), [0] * 3 + [1] * 3 + [0] * 6)
    no_forget = kl.ConvLSTM1D(2, 3, unit_forget_bias=False, bias_initializer="ones")
    no_forget(random_inputs((2, 3, 5, 2)))
    np.testing.assert_array_equal(to_numpy(no_forget.weights[2]), np.ones(8))


def test_config_is_flat_as_keras_writes_it():
    ours, theirs = both("ConvLSTM2D", 3, 3, strides=2, dropout=0.1, return_state=True)
    ours_config, their_config = ours.get_config(), theirs.get_config()
    assert set(ours_config) == set(their_config)
    for key in ("filters", "kernel_size", "strides", "padding", "dilation_rate", "dropout",
                "return_state", "unroll", "unit_forget_bias", "seed"):
        assert ours_config[key] == their_config[key], key
    # Keras's config loads into ours, and ours into Keras's.
    assert kl.ConvLSTM2D.from_config(their_config).get_config() == {
        **ours_config, "name": their_config["name"]}
    keras.layers.ConvLSTM2D.from_config(ours_config)
    assert ours.strides == (2, 2) and ours.filters == 3


# -- parity with Keras ----------------------------------------------------------------------

OPTIONS = {
    "same": {"padding": "same"},
    "valid_no_bias": {"use_bias": False},
    "strides": {"strides": 2, "padding": "same"},
    "dilation": {"dilation_rate": 2, "kernel_size": 2},
    "backwards_states": {"go_backwards": True, "return_state": True},
    "sequences_states": {"return_sequences": True, "return_state": True, "padding": "same"},
    "unrolled": {"unroll": True, "return_sequences": True},
    "activations": {"activation": "relu", "recurrent_activation": "hard_sigmoid"},
}


@pytest.mark.grid
@pytest.mark.parametrize("option", OPTIONS)
def test_2d_matches_keras(option):
    kwargs = {"kernel_size": 3, **OPTIONS[option]}
    parity(*both("ConvLSTM2D", 3, **kwargs), random_inputs(SHAPE), tolerance=LOOSE)


@pytest.mark.grid
@pytest.mark.parametrize("option", ["return_sequences", "go_backwards"])
def test_2d_with_mask_matches_keras(option):
    kwargs = {option: True, "padding": "same", "return_state": True}
    parity(*both_for_a_mask("ConvLSTM2D", 3, 3, **kwargs), random_inputs(SHAPE), mask=MASK,
           tolerance=LOOSE)


@pytest.mark.grid
@pytest.mark.parametrize("rank, shape, kwargs", [
    (1, (2, 3, 7, 2), {"kernel_size": 3, "return_sequences": True}),
    (1, (2, 4, 8, 3), {"kernel_size": 2, "strides": 2, "padding": "same"}),
    (3, (1, 2, 4, 4, 3, 2), {"kernel_size": (2, 3, 2), "return_state": True}),
], ids=["1d", "1d_strides", "3d"])
def test_1d_and_3d_match_keras(rank, shape, kwargs):
    parity(*both(f"ConvLSTM{rank}D", 2, **kwargs), random_inputs(shape), mask=None,
           tolerance=LOOSE)


@pytest.mark.skipif(keras.backend.backend() == "tensorflow",
                    reason="TensorFlow's CPU convolutions take no channels-first inputs")
def test_channels_first_matches_keras():
    x = random_inputs((2, 3, 2, 5, 6))  # (batch, time, channels, rows, cols)
    parity(*both_for_a_mask("ConvLSTM2D", 3, 3, data_format="channels_first",
                            return_sequences=True), x, mask=MASK, tolerance=LOOSE)


def test_initial_state_matches_keras():
    h, c = random_inputs((2, 5, 5, 3), seed=3), random_inputs((2, 5, 5, 3), seed=4)
    parity(*both("ConvLSTM2D", 3, 3, padding="same", return_state=True), random_inputs(SHAPE),
           initial_state=[h, c], tolerance=LOOSE)


def test_dropout_in_training_matches_keras_with_the_same_seed_state():
    """Keras draws four masks per gate shaped like the step's input, then four like the
    state; ours draws the same, in that order, so the same seed state gives the same step."""
    ours, theirs = both("ConvLSTM2D", 3, 3, padding="same", dropout=0.3,
                        recurrent_dropout=0.4, seed=7, return_sequences=True)
    x = random_inputs(SHAPE)
    theirs(x)
    ours(x)
    ours.set_weights(theirs.get_weights())
    ours.cell.seed_generator.state.assign(theirs.cell.seed_generator.state.value)
    np.testing.assert_allclose(to_numpy(ours(x, training=True)),
                               to_numpy(theirs(x, training=True)), **LOOSE)


@pytest.mark.grid("chosen")
@pytest.mark.parametrize("chosen", sorted(recurrent.CONV_RECURRENT_PLANS))
@pytest.mark.parametrize("case", ["mask", "plain"])
def test_forced_formulation_matches_keras(chosen, case):
    """Every plan computes Keras's layer: with a mask and the states; strided, backwards."""
    with formulation.forcing("conv_recurrent", chosen):
        if case == "mask":
            parity(*both_for_a_mask("ConvLSTM2D", 3, 3, padding="same",
                                    return_sequences=True, return_state=True),
                   random_inputs(SHAPE), mask=MASK, tolerance=LOOSE)
        else:
            parity(*both("ConvLSTM2D", 3, 3, strides=2, go_backwards=True),
                   random_inputs(SHAPE), tolerance=LOOSE)


@pytest.mark.grid("chosen")
@pytest.mark.parametrize("chosen", sorted(recurrent.CONV_RECURRENT_PLANS))
def test_forced_1d_formulation_matches_keras(chosen):
    """1D cells read their own table (family "conv_recurrent1d"): every plan there too."""
    with formulation.forcing("conv_recurrent1d", chosen):
        parity(*both_for_a_mask("ConvLSTM1D", 3, 3, padding="same", return_sequences=True,
                                return_state=True), random_inputs((2, 3, 6, 2)), mask=MASK,
               tolerance=LOOSE)


def test_cell_on_one_step_matches_keras():
    from keras.src.layers.rnn.conv_lstm import ConvLSTMCell

    x = random_inputs((2, 5, 5, 2))
    states = [random_inputs((2, 5, 5, 3), seed=1), random_inputs((2, 5, 5, 3), seed=2)]
    ours = kl.ConvLSTMCell(2, 3, 3, padding="same")
    theirs = ConvLSTMCell(2, 3, 3, padding="same")
    expected = theirs(x, states)
    ours.build(x.shape)
    ours.set_weights(theirs.get_weights())
    for chosen in recurrent.CONV_RECURRENT_PLANS:
        with formulation.forcing("conv_recurrent", chosen):
            for a, b in zip(keras.tree.flatten(ours(x, states)), keras.tree.flatten(expected),
                            strict=True):
                np.testing.assert_allclose(to_numpy(a), to_numpy(b), **LOOSE)
    clone = kl.ConvLSTMCell.from_config(ours.get_config())
    assert clone.get_config() == ours.get_config()


def test_conv_by_taps_is_ops_conv():
    x = ops.convert_to_tensor(random_inputs((2, 7, 6, 3)))
    kernel = ops.convert_to_tensor(random_inputs((3, 2, 3, 5), seed=1))
    for strides, padding, dilation in [((1, 1), "same", (1, 1)), ((2, 3), "valid", (1, 1)),
                                       ((2, 2), "same", (1, 1)), ((1, 1), "valid", (2, 2)),
                                       ((1, 1), "same", (2, 1))]:
        expected = ops.conv(x, kernel, strides=strides, padding=padding,
                            dilation_rate=dilation)
        ours = recurrent.conv_by_taps(x, ops.reshape(kernel, (-1, 5)), (3, 2), strides,
                                      padding, dilation)
        np.testing.assert_allclose(to_numpy(ours), to_numpy(expected), rtol=1e-5, atol=1e-5)


# -- masks and state ------------------------------------------------------------------------


def test_masked_steps_carry_the_previous_state():
    layer = kl.ConvLSTM1D(3, 3, padding="same", return_sequences=True, return_state=True)
    y, h, _ = layer(random_inputs((2, 3, 6, 2)), mask=MASK)
    y = to_numpy(y)
    np.testing.assert_array_equal(y[0, 1], y[0, 0])
    np.testing.assert_array_equal(y[1, 0], np.zeros((6, 3)))  # a masked first step: zeros
    np.testing.assert_array_equal(to_numpy(h), y[:, -1])
    x = ops.convert_to_tensor(random_inputs((2, 3, 6, 2)))
    assert layer.compute_mask(x, MASK)[1:] == [None, None]


def test_stateful_continues_where_the_last_batch_ended():
    x = random_inputs((2, 4, 5, 5, 2))
    whole = kl.ConvLSTM2D(3, 3, padding="same", return_sequences=True)
    stateful = kl.ConvLSTM2D(3, 3, padding="same", return_sequences=True, stateful=True)
    expected = to_numpy(whole(x))
    stateful(x[:, :2])
    stateful.set_weights(whole.get_weights())
    assert len(stateful.states) == 2 and tuple(stateful.states[0].shape) == (2, 5, 5, 3)
    stateful.reset_states()
    first = to_numpy(stateful(x[:, :2]))
    second = to_numpy(stateful(x[:, 2:]))
    np.testing.assert_allclose(np.concatenate([first, second], 1), expected, **LOOSE)
    stateful.reset_states()
    np.testing.assert_allclose(to_numpy(stateful(x[:, :2])), first, rtol=1e-6)


def test_symbolic_unknown_time_and_batch():
    inputs = keras.Input((None, 6, 6, 2))
    layer = kl.ConvLSTM2D(3, 3, strides=2, return_sequences=True, return_state=True)
    y, h, c = layer(inputs)
    assert tuple(y.shape) == (None, None, 2, 2, 3)
    assert tuple(h.shape) == tuple(c.shape) == (None, 2, 2, 3)
    model = keras.Model(inputs, y)
    x = random_inputs((2, 4, 6, 6, 2))
    np.testing.assert_allclose(model.predict(x, verbose=0), to_numpy(model(x)), **LOOSE)


# -- errors ---------------------------------------------------------------------------------


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"ConvLSTMCell layer .*strides > 1.*dilation_rate"):
        kl.ConvLSTM2D(1, 1, strides=2, dilation_rate=3)
    with pytest.raises(ValueError, match=r"ConvLSTMCell layer .*filters.*0"):
        kl.ConvLSTM2D(0, 3)
    with pytest.raises(ValueError, match=r"ConvLSTMCell layer .*kernel_size.*\(3, 3, 3\)"):
        kl.ConvLSTM2D(2, (3, 3, 3))
    with pytest.raises(ValueError, match=r"ConvLSTMCell layer .*padding.*'causal'"):
        kl.ConvLSTM1D(2, 3, padding="causal")
    with pytest.raises(ValueError, match=r"ConvLSTMCell layer .*recurrent_dropout.*1.0"):
        kl.ConvLSTM3D(2, 3, recurrent_dropout=1.0)
    with pytest.raises(ValueError, match=r"ConvLSTMCell layer .*rank.*4"):
        kl.ConvLSTMCell(4, 2, 3)
    with pytest.raises(ValueError, match=r"ConvLSTMCell layer .*data_format.*'nhwc'"):
        kl.ConvLSTM2D(2, 3, data_format="nhwc")


def test_rejects_bad_inputs():
    with pytest.raises(ValueError, match=r"ConvLSTM2D layer 'c'.*rank 5.*\(2, 3, 5, 2\)"):
        kl.ConvLSTM2D(3, 3, name="c")(random_inputs((2, 3, 5, 2)))
    with pytest.raises(ValueError, match=r"ConvLSTMCell layer .*spatial sizes must be known"):
        kl.ConvLSTM2D(3, 3)(keras.Input((3, None, 5, 2)))
    with pytest.raises(ValueError, match=r"ConvLSTMCell layer .*kernel spans 7.*valid"):
        kl.ConvLSTM2D(3, 7)(random_inputs(SHAPE))
    with pytest.raises(ValueError, match=r"ConvLSTM2D layer 's'.*stateful.*batch"):
        kl.ConvLSTM2D(3, 3, stateful=True, name="s")(keras.Input((3, 5, 5, 2)))
    layer = kl.ConvLSTM2D(3, 3, padding="same", name="i")
    with pytest.raises(ValueError, match=r"ConvLSTM2D layer 'i'.*initial_state.*\(2, 5, 5, 3\)"):
        layer(random_inputs(SHAPE), initial_state=[np.zeros((2, 5, 5, 3), "float32")] * 1)
    with pytest.raises(ValueError, match=r"ConvLSTM2D layer 'i'.*mask.*\(2, 3\).*\(2, 4\)"):
        layer(random_inputs(SHAPE), mask=np.ones((2, 4), bool))
