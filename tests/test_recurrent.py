"""Recurrent layers: contract, parity with Keras (outputs, states, gradients), masks, state,
dropout, errors.

Shapes are shared across tests (batch 2, time 5, features 4, units 8) because JAX compiles
once per shape.
"""

import keras
import numpy as np
import pytest
from keras import ops

import keraslayers as kl
from tests.contract import (
    check_keras_parity,
    check_layer_contract,
    random_inputs,
    to_numpy,
)

SHAPE = (2, 5, 4)
MASK = np.array([[True, True, False, True, False], [False, True, True, True, True]])
LOOSE = {"rtol": 1e-4, "atol": 1e-4}


class Probe(keras.layers.Layer):
    """Runs a recurrent layer with a fixed mask / initial state and returns every output
    (sequence, states; both directions) flattened and joined, so the shared gradient helper
    can compare them in one go."""

    def __init__(self, layer, mask=None, initial_state=None, **kwargs):
        super().__init__(**kwargs)
        self.layer = layer
        self.mask = mask
        self.initial_state = initial_state

    def call(self, x, training=False):
        kwargs = {"training": training}
        if self.mask is not None:
            kwargs["mask"] = ops.convert_to_tensor(self.mask)
        if self.initial_state is not None:
            kwargs["initial_state"] = [ops.convert_to_tensor(s) for s in self.initial_state]
        outputs = keras.tree.flatten(self.layer(x, **kwargs))
        return ops.concatenate([ops.reshape(y, (ops.shape(y)[0], -1)) for y in outputs], -1)

    def compute_output_shape(self, input_shape):
        shapes = _shape_list(self.layer.compute_output_shape(input_shape))
        return (input_shape[0], sum(int(np.prod(s[1:])) for s in shapes))


def _shape_list(shapes):
    """A tuple of shapes, possibly nested, as a flat list of shape tuples."""
    if all(isinstance(d, (int, type(None))) for d in shapes):
        return [tuple(shapes)]
    return [s for part in shapes for s in _shape_list(part)]


def parity(ours, theirs, x=None, mask=None, initial_state=None, tolerance=None):
    x = random_inputs(SHAPE) if x is None else x
    check_keras_parity(
        Probe(ours, mask, initial_state), Probe(theirs, mask, initial_state), x,
        **({"tolerance": tolerance} if tolerance else {}),
    )


# -- contract -----------------------------------------------------------------------------


# tests/test_catalog.py runs the contract on every catalogued example (SimpleRNN, LSTM, GRU,
# a stacked RNN, Bidirectional) without mixed precision; these add mixed precision, unroll,
# no bias, dropout and masks. Each cell makes one seed generator, as Keras's cells do.


@pytest.mark.parametrize(
    "make, output_shape, weights",
    [
        (lambda: kl.LSTM(8, go_backwards=True, unroll=True), (2, 8), 3),
        (lambda: kl.GRU(8, reset_after=False, use_bias=False, return_sequences=True),
         (2, 5, 8), 2),
    ],
    ids=["lstm_backwards_unrolled", "gru_v1_no_bias"],
)
def test_contract(make, output_shape, weights):
    check_layer_contract(
        make, SHAPE, expected_output_shape=output_shape, trainable_weights=weights,
        seed_generators=1,
    )


def test_contract_with_dropout_and_mask():
    check_layer_contract(
        lambda: kl.LSTM(8, dropout=0.3, recurrent_dropout=0.2, seed=5, return_sequences=True,
                        kernel_initializer=keras.initializers.GlorotUniform(seed=1),
                        recurrent_initializer=keras.initializers.Orthogonal(seed=2)),
        SHAPE, trainable_weights=3, seed_generators=1, random=True,
        input_mask=MASK, expected_mask=MASK, check_mixed_precision=False,
    )
    x = ops.convert_to_tensor(random_inputs(SHAPE))
    assert kl.GRU(8).compute_mask(x, MASK) is None
    assert kl.GRU(8, return_state=True).compute_mask(x, MASK) == [None, None]


# -- parity with Keras --------------------------------------------------------------------

KINDS = {
    "simple_rnn": (kl.SimpleRNN, keras.layers.SimpleRNN, {}),
    "lstm": (kl.LSTM, keras.layers.LSTM, {}),
    "gru": (kl.GRU, keras.layers.GRU, {}),
    "gru_v1": (kl.GRU, keras.layers.GRU, {"reset_after": False}),
}
# Keras's own unrolled loop fails on torch with go_backwards and a mask, so unroll is
# compared going forwards.
OPTIONS = {
    "forwards_unrolled": {"unroll": True},
    "backwards": {"go_backwards": True},
}


@pytest.mark.grid("kind")
@pytest.mark.parametrize("option", OPTIONS)
@pytest.mark.parametrize("kind", KINDS)
def test_matches_keras_with_mask(kind, option):
    """Sequence, final states and gradients; masked steps in the middle, first and last."""
    ours, theirs, kwargs = KINDS[kind]
    kwargs = {**kwargs, **OPTIONS[option], "return_sequences": True, "return_state": True}
    parity(ours(8, **kwargs), theirs(8, **kwargs), mask=MASK)


def test_matches_keras_with_initial_state():
    h, c = random_inputs((2, 8), seed=3), random_inputs((2, 8), seed=4)
    parity(kl.LSTM(8, return_state=True), keras.layers.LSTM(8, return_state=True),
           initial_state=[h, c])
    parity(kl.GRU(8, return_sequences=True), keras.layers.GRU(8, return_sequences=True),
           initial_state=[h], mask=np.array([[True] * 5, [True, True, False, True, False]]))


def test_matches_keras_on_one_step():
    parity(kl.GRU(8, return_sequences=True), keras.layers.GRU(8, return_sequences=True),
           x=random_inputs((2, 1, 4)), mask=np.array([[True], [False]]))


def test_matches_keras_on_200_steps():
    x = random_inputs((2, 200, 3))
    mask = np.ones((2, 200), bool)
    mask[1, 150:] = False
    parity(kl.GRU(4, return_sequences=True), keras.layers.GRU(4, return_sequences=True), x=x,
           mask=mask, tolerance=LOOSE)
    ours, theirs = kl.LSTM(4, go_backwards=True), keras.layers.LSTM(4, go_backwards=True)
    theirs(x)
    ours(x)
    ours.set_weights(theirs.get_weights())
    np.testing.assert_allclose(to_numpy(ours(x)), to_numpy(theirs(x)), **LOOSE)


def test_bidirectional_matches_keras():
    def make(module, merge_mode):
        return module.Bidirectional(module.LSTM(8, return_sequences=True), merge_mode=merge_mode)

    parity(make(kl, "concat"), make(keras.layers, "concat"), mask=MASK)
    x = random_inputs(SHAPE)
    for merge_mode in ["sum", "mul", "ave", None]:  # outputs only: the gradients are alike
        ours, theirs = make(kl, merge_mode), make(keras.layers, merge_mode)
        theirs(x)
        ours(x)
        ours.set_weights(theirs.get_weights())
        for a, b in zip(keras.tree.flatten(ours(x, mask=MASK)),
                        keras.tree.flatten(theirs(x, mask=MASK)), strict=True):
            np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-5, atol=1e-5)


def test_bidirectional_with_states_and_backward_layer_matches_keras():
    def make(module):
        return module.Bidirectional(
            module.GRU(8, return_state=True),
            backward_layer=module.GRU(8, return_state=True, go_backwards=True,
                                      activation="relu"),
        )

    parity(make(kl), make(keras.layers), mask=MASK)


@pytest.mark.parametrize(
    "make, merge_mode",
    [
        (lambda m: m.LSTM(8, return_sequences=True, return_state=True), "concat"),
        (lambda m: m.GRU(8, return_state=True), None),
        (lambda m: m.GRU(8, reset_after=False, use_bias=False, return_sequences=True), "ave"),
        (lambda m: m.SimpleRNN(8, dropout=0.3, seed=2), "sum"),
    ],
    ids=["lstm", "gru_states", "gru_v1_no_bias", "simple_rnn_dropout"],
)
def test_bidirectional_without_mask_matches_keras(make, merge_mode):
    """Like directions without a mask or initial state run in one loop on torch; outputs,
    states and gradients are Keras's (with dropout, in inference)."""
    parity(kl.Bidirectional(make(kl), merge_mode=merge_mode),
           keras.layers.Bidirectional(make(keras.layers), merge_mode=merge_mode))


def test_bidirectional_runs_like_directions_together_only_where_it_can():
    from keraslayers.layers import recurrent

    x = ops.convert_to_tensor(random_inputs(SHAPE))
    together = kl.Bidirectional(kl.LSTM(8, return_sequences=True, dropout=0.5, seed=1))
    together(x)
    on_torch = keras.backend.backend() == "torch"
    assert together._runs_together(None, None, training=False) == on_torch
    # Dropout masks in training, a mask or an initial state: each direction on its own.
    assert not together._runs_together(None, None, training=True)
    assert not together._runs_together(None, MASK, training=False)
    assert not together._runs_together([x[:, 0]] * 4, None, training=False)
    unlike = kl.Bidirectional(kl.GRU(8), backward_layer=kl.GRU(8, go_backwards=True,
                                                               activation="relu"))
    assert not unlike._like_directions
    assert not kl.Bidirectional(keras.layers.LSTM(8))._like_directions
    assert not kl.Bidirectional(kl.LSTM(8, activity_regularizer="l2"))._like_directions
    # The two ways agree, also with a first layer that runs backwards (which Keras's
    # Bidirectional refuses).
    backwards_first = kl.Bidirectional(kl.GRU(8, return_state=True, go_backwards=True))
    for layer in (together, backwards_first):
        layer(x)
        apart = layer._run_apart(x, None, None, training=False)
        joint = recurrent._run_directions((layer.forward_layer, layer.backward_layer), x,
                                          False)
        for a, b in zip(keras.tree.flatten(apart), keras.tree.flatten(joint), strict=True):
            np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-5, atol=1e-5)


def test_stacked_cells_and_keras_cells_match_keras():
    parity(kl.RNN([kl.LSTMCell(8), kl.GRUCell(6)], return_sequences=True, return_state=True),
           keras.layers.RNN([keras.layers.LSTMCell(8), keras.layers.GRUCell(6)],
                            return_sequences=True, return_state=True), mask=MASK)
    # A cell from elsewhere runs step by step in our loop.
    parity(kl.RNN(keras.layers.LSTMCell(8), return_sequences=True),
           keras.layers.LSTM(8, return_sequences=True), mask=MASK)


@pytest.mark.parametrize("kind", ["SimpleRNNCell", "LSTMCell", "GRUCell"])
def test_cells_match_keras_on_one_step(kind):
    x = random_inputs((2, 4))
    ours, theirs = getattr(kl, kind)(8), getattr(keras.layers, kind)(8)
    states = [random_inputs((2, 8), seed=i + 1) for i in range(len(keras.tree.flatten(
        theirs.state_size)))]
    y, their_states = theirs(x, states)
    ours.build(x.shape)
    ours.set_weights(theirs.get_weights())
    ours_y, our_states = ours(x, states)
    for a, b in zip(keras.tree.flatten((ours_y, our_states)),
                    keras.tree.flatten((y, their_states)), strict=True):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-5, atol=1e-5)
    assert keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(ours)).get_config() == ours.get_config()


# -- masks, unknown length, jit -----------------------------------------------------------


def test_embedding_mask_in_a_jit_compiled_model_with_unknown_length():
    def model(module):
        tokens = keras.Input((None,), dtype="int32")
        x = module.Embedding(20, 4, mask_zero=True)(tokens)
        x = module.LSTM(8, return_sequences=True)(x)
        return keras.Model(tokens, module.GRU(8)(x))

    ours, theirs = model(kl), model(keras.layers)
    ours.set_weights(theirs.get_weights())
    ours.compile(jit_compile=keras.backend.backend() != "torch")
    for length in (5, 7):
        tokens = random_inputs((2, length), "int32", seed=length, high=20)
        tokens[0, -2:] = 0
        tokens[1, 1] = 0
        expected = to_numpy(theirs(tokens))
        np.testing.assert_allclose(ours.predict(tokens, verbose=0), expected, **LOOSE)
        np.testing.assert_allclose(to_numpy(ours(tokens)), expected, rtol=1e-5, atol=1e-5)


def test_masked_steps_carry_the_previous_state():
    layer = kl.SimpleRNN(8, return_sequences=True, return_state=True)
    y, state = layer(random_inputs(SHAPE), mask=MASK)
    y = to_numpy(y)
    np.testing.assert_array_equal(y[0, 2], y[0, 1])
    np.testing.assert_array_equal(y[1, 0], np.zeros(8))  # a masked first step outputs zeros
    np.testing.assert_array_equal(to_numpy(state)[0], y[0, 3])


# -- state --------------------------------------------------------------------------------


def test_stateful_continues_where_the_last_batch_ended():
    x = random_inputs((2, 6, 4))
    whole = kl.GRU(8, return_sequences=True)
    stateful = kl.GRU(8, return_sequences=True, stateful=True)
    expected = to_numpy(whole(x))
    stateful(x[:, :3])
    # The states are no weights: the layer's weights are the cell's, as in Keras.
    stateful.set_weights(whole.get_weights())
    stateful.reset_states()
    first = to_numpy(stateful(x[:, :3]))
    second = to_numpy(stateful(x[:, 3:]))
    np.testing.assert_allclose(np.concatenate([first, second], 1), expected,
                               rtol=1e-5, atol=1e-5)
    stateful.reset_states()
    np.testing.assert_allclose(to_numpy(stateful(x[:, :3])), first, rtol=1e-6)


# -- dropout ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["SimpleRNN", "LSTM", "GRU"])
def test_dropout_is_seeded_and_off_at_inference(kind):
    def make(seed):
        return getattr(kl, kind)(8, dropout=0.4, recurrent_dropout=0.3, seed=seed,
                                 return_sequences=True)

    x = random_inputs(SHAPE)
    a, b, plain = make(3), make(3), make(3)
    a(x)
    b(x)
    plain(x)
    b.set_weights(a.get_weights())
    plain.set_weights(a.get_weights())
    first = to_numpy(a(x, training=True))
    np.testing.assert_array_equal(first, to_numpy(b(x, training=True)))
    assert np.any(first != to_numpy(a(x, training=True)))
    np.testing.assert_array_equal(to_numpy(a(x)), to_numpy(plain(x)))
    assert np.any(first != to_numpy(a(x)))


def test_dropout_mask_is_fixed_across_time_steps():
    # Linear cell with identity kernel and no recurrence: the output is the input mask.
    layer = kl.SimpleRNN(4, activation=None, use_bias=False, dropout=0.5, seed=1,
                         kernel_initializer="identity", recurrent_initializer="zeros",
                         return_sequences=True)
    y = to_numpy(layer(np.ones((3, 6, 4), "float32"), training=True))
    assert set(np.unique(y)) <= {0.0, 2.0}
    np.testing.assert_array_equal(y, np.repeat(y[:, :1], 6, axis=1))


# -- errors -------------------------------------------------------------------------------


def test_rejects_input_of_rank_other_than_three():
    with pytest.raises(ValueError, match=r"LSTM layer 'seq'.*rank 3.*\(2, 4\)"):
        kl.LSTM(8, name="seq")(np.ones((2, 4), "float32"))


def test_rejects_initial_state_of_wrong_count_or_shape():
    layer = kl.LSTM(8, name="enc")
    x = random_inputs(SHAPE)
    with pytest.raises(ValueError, match=r"LSTM layer 'enc'.*2 tensor.*\(2, 8\).*received 1"):
        layer(x, initial_state=[np.zeros((2, 8), "float32")])
    with pytest.raises(ValueError, match=r"LSTM layer 'enc'.*received 2 of shapes.*\(2, 7\)"):
        layer(x, initial_state=[np.zeros((2, 8), "float32"), np.zeros((2, 7), "float32")])


def test_rejects_a_mask_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"GRU layer 'g'.*\(2, 5\).*mask of shape \(2, 4\)"):
        kl.GRU(8, name="g")(random_inputs(SHAPE), mask=np.ones((2, 4), bool))


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"GRUCell layer .*units.*0"):
        kl.GRU(0)
    with pytest.raises(ValueError, match=r"LSTMCell layer .*dropout.*1.5"):
        kl.LSTM(4, dropout=1.5)
    with pytest.raises(ValueError, match=r"Bidirectional layer .*merge_mode.*'max'"):
        kl.Bidirectional(kl.GRU(4), merge_mode="max")
    with pytest.raises(ValueError, match=r"RNN layer .*cell.*state_size"):
        kl.RNN(kl.Dense(3))
    with pytest.raises(ValueError, match=r"SimpleRNN layer 's'.*stateful.*batch"):
        kl.SimpleRNN(4, stateful=True, name="s")(keras.Input((5, 4)))
    with pytest.raises(ValueError, match=r"SimpleRNN layer 'u'.*unroll.*\(None, None, 4\)"):
        kl.SimpleRNN(4, unroll=True, name="u")(keras.Input((None, 4)))


@pytest.mark.parametrize("layer", [kl.LSTM, kl.GRU])
def test_use_cudnn_takes_keras_values_and_refuses_bad_ones(layer):
    assert layer(4, use_cudnn=False).get_config()["use_cudnn"] is False
    assert layer.from_config(layer(4).get_config()).use_cudnn == "auto"
    assert layer.from_config(layer(4, use_cudnn=True).get_config()).use_cudnn is True
    with pytest.raises(ValueError, match=f"{layer.__name__} layer .*use_cudnn='yes'"):
        layer(4, use_cudnn="yes")
