"""Recurrent layers against the behaviours Keras 3.15.1's own tests check
(keras/src/layers/rnn/{rnn,lstm,gru,simple_rnn,bidirectional,stacked_rnn_cells,
dropout_rnn_cell}_test.py), each compared with the Keras layer itself rather than with
written-down numbers: constructor parameters taken positionally, `implementation` and
`use_cudnn`, stateful layers (states that are no weights, reset, the batch-size check),
custom cells with one or two states, Keras's state structures for stacks, Keras-style dropout
cells, configs saved by Keras, Bidirectional's extras.
"""

import json

import keras
import numpy as np
import pytest
from keras import ops

import keraslayers as kl
from tests.contract import check_layer_contract, random_inputs, to_numpy

SHAPE = (2, 5, 4)
MASK = np.array([[True, True, True, False, False], [True, True, True, True, True]])
CLOSE = {"rtol": 1e-5, "atol": 1e-5}


def assert_all_close(ours, theirs, tolerance=CLOSE):
    ours, theirs = keras.tree.flatten(ours), keras.tree.flatten(theirs)
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), **tolerance)


def shapes(structure):
    """A structure of tensors or shapes, its tensors replaced by their shapes (lists and
    tuples kept apart)."""
    if isinstance(structure, (list, tuple)) and not all(
            isinstance(d, (int, type(None))) for d in structure):
        return type(structure)(shapes(s) for s in structure)
    return tuple(structure.shape) if hasattr(structure, "shape") else tuple(structure)


def same_weights(ours, theirs, x, **call_kwargs):
    theirs(x, **call_kwargs)
    ours(x, **call_kwargs)
    ours.set_weights(theirs.get_weights())


# -- constructor parameters ---------------------------------------------------------------


def test_parameters_taken_positionally_land_where_keras_puts_them():
    assert kl.LSTM(4, "relu").activation is keras.activations.relu
    assert not kl.LSTM(4, "relu").return_sequences
    cell = kl.LSTMCell(4, "tanh", "sigmoid", True, "he_normal")
    assert isinstance(cell.kernel_initializer, keras.initializers.HeNormal)
    assert isinstance(kl.GRUCell(4, "tanh", "sigmoid", True, "zeros").kernel_initializer,
                      keras.initializers.Zeros)
    assert kl.SimpleRNN(4, "relu", False).use_bias is False
    assert kl.Bidirectional(kl.GRU(4), "sum", None).merge_mode == "sum"
    # The cell's arguments read through from the layer, as on Keras's layers.
    layer = kl.GRU(4, dropout=0.25, reset_after=False)
    assert (layer.units, layer.dropout, layer.reset_after) == (4, 0.25, False)


@pytest.mark.parametrize("implementation", [0, 1, 2])
def test_legacy_implementation_argument_is_accepted_and_changes_no_output(implementation):
    x = random_inputs(SHAPE)
    for name in ("LSTM", "GRU"):
        config = getattr(keras.layers, name)(3).get_config()
        config["implementation"] = implementation  # as in configs of older Keras versions
        ours, theirs = getattr(kl, name).from_config(config), getattr(keras.layers, name)(3)
        same_weights(ours, theirs, x)
        assert_all_close(ours(x), theirs(x))
        assert "implementation" not in ours.get_config()


def test_implementation_one_gives_each_gate_its_input_dropout_mask_as_keras():
    # Keras's cells draw one input mask per gate with implementation 1 (or recurrent
    # dropout), one for all gates otherwise.
    for cell, gates in ((kl.LSTMCell, 4), (kl.GRUCell, 3)):
        for kwargs, count in (({}, 1), ({"implementation": 1}, gates),
                              ({"recurrent_dropout": 0.1}, gates)):
            layer = cell(3, dropout=0.5, **kwargs)
            layer.build((2, 4))
            masks, _ = layer.dropout_masks(2, training=True)
            assert len(masks) == count, (cell, kwargs)


def _keras_raises(make, x, **call_kwargs):
    try:
        make()(x, **call_kwargs)
    except ValueError:
        return True
    return False


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("LSTM", {}),
        ("LSTM", {"go_backwards": True, "return_sequences": True}),
        ("LSTM", {"unroll": True}),
        ("LSTM", {"recurrent_dropout": 0.2}),
        ("LSTM", {"activation": "relu"}),
        ("GRU", {}),
        ("GRU", {"reset_after": False}),
        ("GRU", {"unroll": True}),
        ("GRU", {"use_bias": False}),
        ("GRU", {"recurrent_dropout": 0.2}),
    ],
)
@pytest.mark.parametrize("masked", [False, True], ids=["no_mask", "mask"])
def test_use_cudnn_true_raises_exactly_where_keras_raises(name, kwargs, masked):
    """klayers never calls cuDNN; Keras with use_cudnn=True raises a ValueError at call
    where its backend has no fused implementation (on this device): ours raises there
    too, and runs (Keras's numbers) where Keras runs."""
    x = random_inputs(SHAPE)
    call_kwargs = {"mask": MASK} if masked else {}
    keras_raises = _keras_raises(
        lambda: getattr(keras.layers, name)(3, use_cudnn=True, **kwargs), x, **call_kwargs)
    ours = getattr(kl, name)(3, use_cudnn=True, name="fast", **kwargs)
    if keras_raises:
        with pytest.raises(ValueError, match=rf"{name} layer 'fast'.*use_cudnn=True"):
            ours(x, **call_kwargs)
    else:
        theirs = getattr(keras.layers, name)(3, use_cudnn=True, **kwargs)
        same_weights(ours, theirs, x, **call_kwargs)
        assert_all_close(ours(x, **call_kwargs), theirs(x, **call_kwargs))


# -- stateful layers ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["SimpleRNN", "LSTM", "GRU"])
def test_stateful_states_are_no_weights_and_continue_as_keras(name):
    x = random_inputs((4, 3, 4))
    ours = getattr(kl, name)(3, stateful=True, return_state=True)
    theirs = getattr(keras.layers, name)(3, stateful=True, return_state=True)
    same_weights(ours, theirs, x)
    assert [w.path.split("/", 1)[1] for w in ours.weights] == [
        w.path.split("/", 1)[1] for w in theirs.weights]
    theirs.set_weights(ours.get_weights())  # both ways
    assert len(ours.non_trainable_weights) == 0
    assert [v.name for v in ours.states] == [v.name for v in theirs.states]
    assert len(ours.non_trainable_variables) == len(theirs.non_trainable_variables)
    ours.reset_state()
    theirs.reset_state()
    for _ in range(2):  # the second batch starts where the first ended
        assert_all_close(ours(x), theirs(x))
    ours.reset_states()
    theirs.reset_states()
    for state in ours.states:
        np.testing.assert_array_equal(to_numpy(state), 0)
    assert_all_close(ours(x), theirs(x))


def test_stateful_layer_refuses_another_batch_size():
    inputs = keras.Input((5, 3), batch_size=4)
    model = keras.Model(inputs, kl.LSTM(2, stateful=True, name="s")(inputs))
    model(random_inputs((4, 5, 3)))
    with pytest.raises(ValueError, match=r"LSTM layer 's'.*batch size 4.*batch size 1"):
        model(random_inputs((1, 5, 3)))


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tf.function only")
def test_stateful_layer_runs_in_a_tf_function_of_unknown_batch_size():
    import tensorflow as tf

    layer = kl.GRU(5, stateful=True)
    x = np.ones((2, 6, 4), "float32")
    layer(x, training=True)
    run = tf.function(lambda s: layer(s, training=True),
                      input_signature=[tf.TensorSpec((None, 6, 4), tf.float32)])
    assert tuple(run(x).shape) == (2, 5)


def test_stateful_layer_trains():
    inputs = keras.Input((5, 4), batch_size=2)
    model = keras.Model(inputs, kl.LSTM(3, stateful=True)(inputs))
    model.compile("sgd", "mse")
    x, y = random_inputs(SHAPE), random_inputs((2, 3), seed=1)
    losses = [model.train_on_batch(x, y) for _ in range(3)]
    assert all(np.isfinite(losses))


def test_stateful_bidirectional_continues_and_resets_as_keras():
    x = random_inputs((2, 3, 4))
    ours = kl.Bidirectional(kl.LSTM(3, stateful=True))
    theirs = keras.layers.Bidirectional(keras.layers.LSTM(3, stateful=True))
    same_weights(ours, theirs, x)
    ours.reset_state()
    theirs.reset_state()
    for _ in range(2):
        assert_all_close(ours(x), theirs(x))
    with pytest.raises(AttributeError, match="Bidirectional layer .*stateful"):
        kl.Bidirectional(kl.LSTM(3)).reset_state()


# -- custom cells -------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="test_recurrent_conformance")
class OneState(keras.layers.Layer):
    """`h_t = x_t @ W + h_{t-1} @ U`, its state size given as an int, [n] or (n,)."""

    def __init__(self, units, state_size=None, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units if state_size is None else state_size

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units), initializer="ones")
        self.u = self.add_weight(shape=(self.units, self.units), initializer="ones")

    def call(self, inputs, states):
        h = ops.matmul(inputs, self.w) + ops.matmul(states[0], self.u)
        return h, [h]

    def get_config(self):
        return {**super().get_config(), "units": self.units, "state_size": self.state_size}


@keras.saving.register_keras_serializable(package="test_recurrent_conformance")
class TwoStates(keras.layers.Layer):
    """Two states, each its own recurrent kernel; the output is their sum."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = [units, units]
        self.output_size = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units), initializer="ones")
        self.u = self.add_weight(shape=(self.units, self.units), initializer="ones")
        self.v = self.add_weight(shape=(self.units, self.units), initializer="ones")

    def call(self, inputs, states):
        x = ops.matmul(inputs, self.w)
        first, second = x + ops.matmul(states[0], self.u), x + ops.matmul(states[1], self.v)
        return first + second, [first, second]

    def get_config(self):
        return {**super().get_config(), "units": self.units}


CUSTOM_CELLS = {
    "int": lambda: OneState(3),
    "list": lambda: OneState(3, state_size=[3]),
    "tuple": lambda: OneState(3, state_size=(3,)),
    "two_states": lambda: TwoStates(3),
}
LOOP_OPTIONS = {
    "plain": {},
    "sequences": {"return_sequences": True, "return_state": True},
    "backwards_unrolled": {"go_backwards": True, "unroll": True, "return_state": True},
    "unrolled_sequences": {"unroll": True, "return_sequences": True},
}


@pytest.mark.parametrize("options", LOOP_OPTIONS)
@pytest.mark.parametrize("cell", CUSTOM_CELLS)
def test_custom_cells_run_as_in_keras(cell, options):
    x = np.arange(np.prod(SHAPE), dtype="float32").reshape(SHAPE) / 40
    kwargs = LOOP_OPTIONS[options]
    ours, theirs = kl.RNN(CUSTOM_CELLS[cell](), **kwargs), keras.layers.RNN(
        CUSTOM_CELLS[cell](), **kwargs)
    # Keras's own unrolled loop fails on torch going backwards with a mask; its JAX scan
    # gives a masked step the previous first state, not the previous output (as its other
    # backends and ours do), which differ for a cell whose output is not its first state.
    backend = keras.backend.backend()
    keras_differs = (backend == "torch" and options == "backwards_unrolled") or (
        backend == "jax" and cell == "two_states" and "unroll" not in kwargs)
    for mask in (None,) if keras_differs else (None, MASK):
        assert_all_close(ours(x, mask=mask), theirs(x, mask=mask), {"rtol": 1e-5})
    assert shapes(ours.compute_output_shape(SHAPE)) == shapes(
        theirs.compute_output_shape(SHAPE))
    assert len(ours.trainable_weights) == len(theirs.trainable_weights)
    rebuilt = kl.RNN.from_config(ours.get_config())
    assert rebuilt.get_config() == ours.get_config()


@pytest.mark.parametrize("cell", ["int", "two_states"])
def test_stateful_custom_cells_continue_as_keras(cell):
    x = np.ones((1, 2, 3), "float32")
    ours = kl.RNN(CUSTOM_CELLS[cell](), stateful=True, return_state=True)
    theirs = keras.layers.RNN(CUSTOM_CELLS[cell](), stateful=True, return_state=True)
    for _ in range(2):
        assert_all_close(ours(x), theirs(x))


class StartsFromOnes(OneState):
    def get_initial_state(self, batch_size=None):
        return [ops.ones((batch_size, self.units))]


def test_custom_cells_start_from_their_own_initial_state_as_keras():
    x = random_inputs(SHAPE)
    for options in ({}, {"stateful": True}):
        ours = kl.RNN(StartsFromOnes(3), return_sequences=True, **options)
        theirs = keras.layers.RNN(StartsFromOnes(3), return_sequences=True, **options)
        assert_all_close(ours(x), theirs(x), {"rtol": 1e-5})
        assert_all_close(ours.get_initial_state(2), theirs.get_initial_state(2))


def test_initial_state_of_custom_cells_as_keras():
    x = random_inputs(SHAPE)
    for cell, count in (("int", 1), ("two_states", 2)):
        states = [random_inputs((2, 3), seed=i + 1) for i in range(count)]
        ours = kl.RNN(CUSTOM_CELLS[cell](), return_sequences=True)
        theirs = keras.layers.RNN(CUSTOM_CELLS[cell](), return_sequences=True)
        assert_all_close(ours(x, initial_state=states), theirs(x, initial_state=states),
                         {"rtol": 1e-5})


def test_masked_steps_carry_the_previous_output_not_the_first_state():
    # Keras's TensorFlow and torch loops, and its unrolled JAX loop, do this too.
    x = np.ones((1, 3, 2), "float32")
    y = to_numpy(kl.RNN(TwoStates(3), return_sequences=True)(x, mask=np.array(
        [[True, True, False]])))
    np.testing.assert_array_equal(y[0, 2], y[0, 1])


def test_output_shapes_with_unknown_batch_and_time_as_keras():
    for cell in CUSTOM_CELLS:
        for options in ({}, {"return_sequences": True}, {"return_state": True},
                        {"return_sequences": True, "return_state": True}):
            ours = kl.RNN(CUSTOM_CELLS[cell](), **options)
            theirs = keras.layers.RNN(CUSTOM_CELLS[cell](), **options)
            assert shapes(ours.compute_output_shape((None, None, 3))) == shapes(
                theirs.compute_output_shape((None, None, 3))), (cell, options)


@pytest.mark.parametrize(
    "cells, weights",
    [(lambda: [OneState(3), OneState(4), OneState(2)], 6),
     (lambda: [TwoStates(3), TwoStates(4), TwoStates(2)], 9)],
    ids=["one_state", "two_states"],
)
def test_stacks_of_custom_cells_keep_the_contract(cells, weights):
    check_layer_contract(lambda: kl.RNN(cells(), return_sequences=True), (2, 3, 4),
                         expected_output_shape=(2, 3, 2), trainable_weights=weights)


@pytest.mark.parametrize("cells", [lambda: [OneState(3), OneState(2)],
                                   lambda: [TwoStates(3), TwoStates(2)]],
                         ids=["one_state", "two_states"])
def test_stateful_stacks_of_custom_cells_continue_as_keras(cells):
    x = np.arange(24, dtype="float32").reshape((2, 3, 4)) / 100
    ours, theirs = kl.RNN(cells(), stateful=True), keras.layers.RNN(cells(), stateful=True)
    for _ in range(2):
        assert_all_close(ours(x), theirs(x))
    assert len(ours.weights) == len(theirs.weights)


# -- stacks: Keras's state structure ------------------------------------------------------


@pytest.mark.parametrize(
    "cells",
    [
        lambda m: [m.LSTMCell(5), m.LSTMCell(4)],
        lambda m: [m.LSTMCell(5), m.GRUCell(4)],
        lambda m: [m.GRUCell(5), m.LSTMCell(4)],
        lambda m: [m.GRUCell(5), m.SimpleRNNCell(4)],
    ],
    ids=["lstm_lstm", "lstm_gru", "gru_lstm", "gru_simple"],
)
def test_stacked_return_state_has_keras_structure(cells):
    """Keras's structure as its `compute_output_shape` and functional models give it: a
    list per cell of several states, a tensor for a cell whose `state_size` is an int
    (Keras's eager call gives a list of one there, from the cell's initial state)."""
    x = random_inputs(SHAPE)
    ours = kl.RNN(cells(kl), return_state=True)
    theirs = keras.layers.RNN(cells(keras.layers), return_state=True)
    expected = shapes(theirs.compute_output_shape(SHAPE))
    assert shapes(ours.compute_output_shape(SHAPE)) == expected
    same_weights(ours, theirs, x)
    assert shapes(ours(x)) == expected
    inputs = keras.Input(SHAPE[1:])
    assert shapes(ours(inputs)) == shapes(keras.layers.RNN(cells(keras.layers),
                                                           return_state=True)(inputs))
    # The same numbers as Keras's, structure aside.
    assert_all_close(ours(x), theirs(x))


@pytest.mark.parametrize("kind", ["SimpleRNNCell", "GRUCell", "LSTMCell"])
def test_cells_return_their_states_in_the_structure_given_as_keras(kind):
    x, h = random_inputs((2, 4)), random_inputs((2, 3), seed=1)
    ours, theirs = getattr(kl, kind)(3), getattr(keras.layers, kind)(3)
    state_forms = ([h, h],) if kind == "LSTMCell" else (h, [h])
    theirs(x, state_forms[0])
    ours.build(x.shape)
    ours.set_weights(theirs.get_weights())
    for states in state_forms:
        result, expected = ours(x, states), theirs(x, states)
        assert shapes(result) == shapes(expected)
        assert_all_close(result, expected)


def test_stacked_cells_one_step_takes_and_returns_keras_structures():
    x = random_inputs((2, 4))
    ours = kl.StackedRNNCells([kl.LSTMCell(3), kl.GRUCell(2)])
    theirs = keras.layers.StackedRNNCells([keras.layers.LSTMCell(3), keras.layers.GRUCell(2)])
    states = [[random_inputs((2, 3), seed=1), random_inputs((2, 3), seed=2)],
              random_inputs((2, 2), seed=3)]
    expected = theirs(x, states)
    ours.build(x.shape)
    ours.set_weights(theirs.get_weights())
    result = ours(x, states)
    assert shapes(result) == shapes(expected)
    assert_all_close(result, expected)


def test_stacked_lstm_cells_with_a_mask_as_keras():
    x = np.ones((2, 3, 4), "float32")
    mask = np.array([[True, True, True], [True, True, False]])

    def make(module):
        return module.RNN([module.LSTMCell(1, kernel_initializer="ones",
                                           recurrent_initializer="ones") for _ in range(2)])

    assert_all_close(make(kl)(x, mask=mask), make(keras.layers)(x, mask=mask))


def test_keras_saved_stack_config_loads_and_runs_as_keras():
    x = random_inputs(SHAPE)
    theirs = keras.layers.RNN([keras.layers.GRUCell(6), keras.layers.LSTMCell(5)],
                              return_sequences=True, return_state=True)
    expected = theirs(x)
    saved = json.loads(json.dumps(keras.saving.serialize_keras_object(theirs)))
    assert saved["module"] == "keras.layers"
    ours = kl.RNN.from_config(saved["config"])
    ours(x)
    ours.set_weights(theirs.get_weights())
    assert_all_close(ours(x), expected)
    jitted = keras.Model(inputs := keras.Input(SHAPE[1:]), ours(inputs)[0])
    jitted.compile(jit_compile=keras.backend.backend() != "torch")
    np.testing.assert_allclose(jitted.predict(x, verbose=0), to_numpy(expected[0]),
                               rtol=1e-4, atol=1e-4)


# -- Keras-style dropout cells ------------------------------------------------------------


def _dropout_cell_class():
    from keras.src.layers.rnn.dropout_rnn_cell import DropoutRNNCell

    class MaskedStep(keras.layers.Layer, DropoutRNNCell):
        """A linear cell that drops inputs and states through Keras's mixin."""

        def __init__(self, units, dropout=0.5, recurrent_dropout=0.5, seed=None, **kwargs):
            super().__init__(**kwargs)
            self.units, self.state_size = units, units
            self.dropout, self.recurrent_dropout, self.seed = dropout, recurrent_dropout, seed
            self.seed_generator = keras.random.SeedGenerator(seed)

        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], self.units), initializer="ones")
            self.u = self.add_weight(shape=(self.units, self.units),
                                     initializer=keras.initializers.Constant(0.1))

        def call(self, inputs, states, training=False):
            h = states[0]
            if training:
                inputs = inputs * self.get_dropout_mask(inputs)
                h = h * self.get_recurrent_dropout_mask(h)
            h = ops.matmul(inputs, self.w) + ops.matmul(h, self.u)
            return h, [h]

    return MaskedStep


def test_keras_dropout_cell_runs_in_training_and_keeps_its_masks_for_one_sequence():
    cell_class = _dropout_cell_class()
    layer = kl.RNN(cell_class(4, seed=3), return_sequences=True)
    assert len(layer.non_trainable_variables) == 1  # the cell's seed generator
    x = np.ones((3, 6, 2), "float32")
    first = to_numpy(layer(x, training=True))
    second = to_numpy(layer(x, training=True))  # a leaked mask (or tracer) fails here
    assert np.any(first != second)
    plain = to_numpy(layer(x))
    np.testing.assert_array_equal(plain, to_numpy(layer(x)))
    # One input mask per sequence: with no recurrence the output would repeat; here the
    # first step (zero state) shows it is a mask of 0 and 2.
    assert set(np.unique(first[:, 0])) <= {0.0, 2.0, 4.0}
    for cell in (layer.cell,):
        assert cell._dropout_mask is None and cell._recurrent_dropout_mask is None


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_keras_dropout_cell_in_mixed_precision(policy):
    if policy == "mixed_float16" and keras.backend.backend() == "torch":
        pytest.skip("float16 matrix products on torch need a GPU, as in Keras's own test")
    cell = _dropout_cell_class()(3, seed=2, dtype=policy)
    y = kl.RNN(cell, dtype=policy)(np.ones((2, 4, 2), "float32"), training=True)
    assert keras.backend.standardize_dtype(y.dtype) == policy.split("_")[1]


def test_keras_dropout_cells_train_in_a_compiled_model():
    cell_class = _dropout_cell_class()
    for cell in (cell_class(4, seed=1), [cell_class(4, seed=1), keras.layers.GRUCell(
            3, dropout=0.3, recurrent_dropout=0.3, seed=2)],
            keras.layers.LSTMCell(3, dropout=0.3, recurrent_dropout=0.3, seed=2)):
        inputs = keras.Input((5, 2))
        model = keras.Model(inputs, kl.RNN(cell)(inputs))
        model.compile("sgd", "mse", jit_compile=keras.backend.backend() != "torch")
        y = np.zeros((4, model.output_shape[-1]), "float32")
        history = model.fit(np.ones((4, 5, 2), "float32"), y, epochs=2, verbose=0)
        assert all(np.isfinite(history.history["loss"]))


# -- Bidirectional ------------------------------------------------------------------------


def test_bidirectional_takes_keras_weights_argument_as_keras():
    x = random_inputs(SHAPE)
    weights = keras.layers.Bidirectional(keras.layers.GRU(3))
    weights(x)
    ours = kl.Bidirectional(kl.GRU(3), weights=weights.get_weights())
    theirs = keras.layers.Bidirectional(keras.layers.GRU(3), weights=weights.get_weights())
    # Keras 3.15.1 keeps them as each direction's `initial_weights` and applies them nowhere.
    for a, b in ((ours.forward_layer, theirs.forward_layer),
                 (ours.backward_layer, theirs.backward_layer)):
        assert len(a.initial_weights) == len(b.initial_weights) == 3


def test_bidirectional_keeps_use_cudnn_for_both_directions_as_keras():
    for use_cudnn in ("auto", False):
        layer = kl.Bidirectional(kl.LSTM(3, use_cudnn=use_cudnn),
                                 backward_layer=kl.LSTM(3, go_backwards=True))
        assert layer.forward_layer.use_cudnn == layer.backward_layer.use_cudnn == use_cudnn


def test_bidirectional_training_defaults_to_the_context():
    import inspect

    assert inspect.signature(kl.Bidirectional.call).parameters["training"].default is None
    x = np.ones((2, 4, 3), "float32")
    layer = kl.Bidirectional(kl.SimpleRNN(3, dropout=0.5, seed=1, return_sequences=True))
    layer(x)
    inputs = keras.Input((4, 3))
    model = keras.Model(inputs, layer(inputs))
    # fit's training=True reaches the directions through the call context.
    model.compile("sgd", "mse")
    model.fit(x, np.zeros((2, 4, 6), "float32"), verbose=0)
    np.testing.assert_array_equal(to_numpy(layer(x)), to_numpy(layer(x)))
    assert np.any(to_numpy(layer(x, training=True)) != to_numpy(layer(x)))


def test_bidirectional_initial_state_and_return_state_as_keras():
    x = random_inputs(SHAPE)
    states = [random_inputs((2, 3), seed=i + 1) for i in range(4)]

    def make(module):
        return module.Bidirectional(module.LSTM(3, return_state=True, return_sequences=True))

    ours, theirs = make(kl), make(keras.layers)
    same_weights(ours, theirs, x)
    result, expected = ours(x, initial_state=states), theirs(x, initial_state=states)
    assert shapes(result) == shapes(expected)
    assert_all_close(result, expected)
    assert shapes(ours.compute_output_shape(SHAPE)) == shapes(
        theirs.compute_output_shape(SHAPE))
