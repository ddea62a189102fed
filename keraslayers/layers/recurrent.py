"""Recurrent layers: SimpleRNN, LSTM and GRU cells, the RNN layer that runs them, Bidirectional.

Every cell splits its step in two, so the RNN layer can hoist the work that does not depend on
the state out of the time loop:

- `project_inputs(inputs, masks)`: dropout on the inputs, `inputs @ kernel + input_bias`. It
  contracts the last axis, so the RNN layer calls it once on the whole time-major
  `(time, batch, features)` sequence: one matrix product for all time steps.
- `step(projected, states, weights, masks)`: the recurrent part, one time step. `weights`
  comes from `step_weights()`: the recurrent kernel (and bias) as tensors, read from the
  variables once per sequence rather than at every step.

`dropout_masks(batch_size, training)` draws the dropout masks once per sequence, before the
loop, and the same masks serve every step (variational dropout, as Keras does). Cells from
elsewhere (any layer with `call(inputs, states)` and `state_size`) run step by step.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math

import keras
from keras import activations, constraints, initializers, ops, regularizers

from keraslayers.layers import validation
from keraslayers.layers.conv_arithmetic import (
    check_window_fits,
    conv_output_length,
    effective_window,
    normalize_data_format,
    normalize_padding,
    normalize_tuple,
    padded_for_taps,
    spatial_sizes,
)
from keraslayers.layers.formulation import KERAS, choose, device_kind

MERGE_MODES = ("concat", "sum", "mul", "ave", None)


@dataclasses.dataclass(frozen=True)
class RecurrentFormulation:
    """How the RNN layer runs a cell over time; `RECURRENT_FORMULATIONS` picks one.

    project_ahead: the input projection as one matrix product for all steps before the loop,
        rather than each step projecting its own inputs.
    python_loop_steps: a known number of steps up to which a Python loop runs them (each step
        a copy of the cell's ops in a traced graph); beyond it, or with an unknown number,
        `ops.scan`. `unroll=True` always asks for the Python loop.
    gate_slices: the gates cut out of the fused product by slicing, not `ops.split`.
    directions_together: Bidirectional runs like directions in one loop (`_run_directions`).
    conv_taps: a convolutional cell (`ConvLSTMCell`, channels last) computes its convolutions
        as one matrix product of the kernel taps (`conv_by_taps`), not `ops.conv`.
    """

    project_ahead: bool
    python_loop_steps: float
    gate_slices: bool
    directions_together: bool
    conv_taps: bool = False


RECURRENT_PLANS = {
    # Keras's own way: each step projects its inputs, `ops.scan` (a while loop on TensorFlow,
    # lax.scan on JAX, a Python loop on torch), `ops.split` for the gates.
    KERAS: RecurrentFormulation(project_ahead=False, python_loop_steps=0, gate_slices=False,
                                directions_together=False),
    "ahead_unrolled": RecurrentFormulation(project_ahead=True, python_loop_steps=128,
                                           gate_slices=False, directions_together=False),
    "ahead_eager": RecurrentFormulation(project_ahead=True, python_loop_steps=math.inf,
                                        gate_slices=True, directions_together=True),
}

# By (backend, device kind), read through `formulation.choose`; a pair not listed (a GPU or
# TPU: nobody measured there) runs Keras's way. Figures from benchmarks/README.md (`make
# bench-standard`) and the commits' own runs, on this project's CPU machine.
RECURRENT_FORMULATIONS = {
    # "ahead_unrolled": TensorFlow runs each op of a step on its own, so one product for all
    # steps pays; its ops.scan passes every carried tensor through arrays at every step, and
    # an unrolled graph (up to 128 steps: tracing time and graph size grow with each) was
    # about 1.3x faster, forward and backward, for LSTM(128) on 32 steps. Gates by ops.split:
    # the gradient of each slice fills a tensor as wide as all gates (StridedSliceGrad), and
    # LSTM(128) training fell from 0.97x to 0.83x of Keras's layer with slices.
    ("tensorflow", "cpu"): "ahead_unrolled",
    # Keras's way on JAX: XLA on CPU took about twice as long for the product ahead of the
    # loop plus the loop as for each step projecting its own inputs (LSTM(256) on 128 steps
    # of 128 features, batch 32).
    ("jax", "cpu"): KERAS,
    # "ahead_eager": torch runs eagerly; its ops.scan is itself a Python loop that stacks every
    # carried tensor at every step, where a plain loop keeps only what the layer returns.
    # Slices cost less than ops.split's checks, once per step; both directions of a
    # Bidirectional in one loop dispatch half as many ops (Bidirectional(LSTM 64) 1.1x
    # predict, 1.5x train; SimpleRNN 2.1-7.4x, GRU 1.05-2.0x in the standard run).
    ("torch", "cpu"): "ahead_eager",
}


# The convolutional cells' own plans and table (family "conv_recurrent"): their steps are
# convolutions, whose costs differ from a matrix product's on every backend.
CONV_RECURRENT_PLANS = {
    # Keras's own way: each step convolves its inputs, `ops.scan`, `ops.conv`.
    KERAS: RECURRENT_PLANS[KERAS],
    "ahead_scan": RecurrentFormulation(project_ahead=True, python_loop_steps=0,
                                       gate_slices=False, directions_together=False),
    "ahead_unrolled": RecurrentFormulation(project_ahead=True, python_loop_steps=128,
                                           gate_slices=False, directions_together=False),
    "ahead_scan_taps": RecurrentFormulation(project_ahead=True, python_loop_steps=0,
                                            gate_slices=False, directions_together=False,
                                            conv_taps=True),
    "ahead_unrolled_taps": RecurrentFormulation(project_ahead=True, python_loop_steps=128,
                                                gate_slices=False, directions_together=False,
                                                conv_taps=True),
    "ahead_eager": RecurrentFormulation(project_ahead=True, python_loop_steps=math.inf,
                                        gate_slices=True, directions_together=False),
    "ahead_eager_taps": RecurrentFormulation(project_ahead=True, python_loop_steps=math.inf,
                                             gate_slices=True, directions_together=False,
                                             conv_taps=True),
}

# benchmarks/probes/conv_lstm.py, 2-core CPU, every plan against Keras's layer in the same
# run, predict / train: ConvLSTM2D(32, 3, same) on 8x16x16x16 (batch 8), ConvLSTM2D(8) on
# 4x8x8x4, ConvLSTM1D(16, return_sequences) on 16x32x8 (batch 32), ConvLSTM3D(4) on
# 4x6x6x6x2 (batch 8). Keras's own way ("keras") in our loop ran 0.84x-4.9x of Keras's layer.
CONV_RECURRENT_FORMULATIONS = {
    # XLA's CPU convolutions, 3D and their gradients above all, lose to the taps' matrix
    # product; Keras's scan loop trains at 10 samples/s on the 2D case: 1.18x / 16.8x, 1.59x /
    # 4.85x, 3D 24.4x / 7.2x ("ahead_unrolled": 0.96x / 15.8x, 1.96x / 5.94x, 4.7x / 3.0x).
    ("jax", "cpu"): "ahead_unrolled_taps",
    # Convolutions from oneDNN beat the taps (0.51x-0.9x in training); the input convolution
    # ahead and a Python loop: 1.16x / 1.24x, 1.61x / 1.82x, 1D 1.25x / 1.84x, 3D 2.15x / 2.21x.
    ("tensorflow", "cpu"): "ahead_unrolled",
    # The same: 2.27x / 1.77x, 3.27x / 2.61x, 1D 4.05x / 2.67x, 3D 4.01x / 2.97x (taps 1.3x-2x).
    ("torch", "cpu"): "ahead_unrolled",
}
# 1D cells (family "conv_recurrent1d"): on JAX the taps lost to XLA's 1D convolution (2.24x
# against 4.76x in training, 1.43x against 1.97x at inference), so 1D takes "ahead_unrolled".
CONV1D_RECURRENT_FORMULATIONS = {
    **CONV_RECURRENT_FORMULATIONS,
    ("jax", "cpu"): "ahead_unrolled",
}


def recurrent_formulation(cell=None) -> RecurrentFormulation:
    """The formulation for this backend and device kind: `CONV1D_RECURRENT_FORMULATIONS`' or
    `CONV_RECURRENT_FORMULATIONS`' choice for a convolutional cell, `RECURRENT_FORMULATIONS`'
    for any other."""
    if isinstance(cell, ConvLSTMCell):
        if cell.rank == 1:
            return CONV_RECURRENT_PLANS[choose("conv_recurrent1d", CONV1D_RECURRENT_FORMULATIONS)]
        return CONV_RECURRENT_PLANS[choose("conv_recurrent", CONV_RECURRENT_FORMULATIONS)]
    return RECURRENT_PLANS[choose("recurrent", RECURRENT_FORMULATIONS)]


def matmul(a, b):
    """`a @ b`: the operator where both are tensors of one dtype, else `ops.matmul`.

    The operator is the backend's own matrix product. `ops.matmul` converts and checks both
    operands and works out the result dtype on every call, which on torch costs as much as
    the product of a `(32, 128)` state with its kernel; a time loop pays it at every step.
    A variable (whose dtype is a string) or mixed dtypes go through `ops.matmul`, which
    converts and promotes.
    """
    if a.dtype == b.dtype:
        return a @ b
    return ops.matmul(a, b)


def gate_blocks(z, count, slices=False):
    """`ops.split(z, count, axis=-1)`, or the same blocks as slices (see
    `RecurrentFormulation.gate_slices`)."""
    if not slices:
        return ops.split(z, count, axis=-1)
    width = z.shape[-1] // count
    return [z[..., i * width:(i + 1) * width] for i in range(count)]


def gates_and_candidate(z, units, slices=False):
    """`(z[..., :2 * units], z[..., 2 * units:])`, split as `gate_blocks` splits."""
    if not slices:
        return ops.split(z, [2 * units], axis=-1)
    return z[..., :2 * units], z[..., 2 * units:]


def gate_projection(inputs, kernel, masks):
    """`inputs @ kernel`, where each gate's column block sees its own dropped-out inputs.

    `masks` is None (no dropout), one mask `(batch, features)` shared by every gate, or one
    per gate; `inputs` is `(batch, features)` or time-major `(time, batch, features)`, which
    the masks broadcast against as they are.
    """
    if masks is None:
        return matmul(inputs, kernel)
    if len(masks) == 1:
        return matmul(inputs * masks[0], kernel)
    blocks = ops.split(kernel, len(masks), axis=-1)
    return ops.concatenate(
        [matmul(inputs * mask, block) for mask, block in zip(masks, blocks, strict=True)],
        axis=-1,
    )


def forget_gate_at_one(units, rest):
    """An LSTM's bias initializer with `unit_forget_bias`: ones for the forget gate, `rest`
    for the others (gate order i, f, g, o)."""

    def initialize(shape, dtype=None):
        return ops.concatenate([
            rest((units,), dtype=dtype),
            ops.ones((units,), dtype=dtype),
            rest((2 * units,), dtype=dtype),
        ])

    return initialize


class _GatedCell(keras.layers.Layer):
    """What the three cells share: arguments, the weights `kernel`, `recurrent_kernel`,
    `bias`, dropout masks, the config and the standalone `call(inputs, states)`.

    Subclasses set `gates` (column blocks of the kernels) and define `step`.
    """

    gates = 1

    def __init__(
        self,
        units,
        activation="tanh",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        implementation=2,
        **kwargs,
    ):
        # `implementation`: Keras's LSTMCell and GRUCell take it through **kwargs (legacy).
        super().__init__(**kwargs)
        self.units = validation.positive_int(self, "units", units)
        self.activation = validation.activation(self, activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.recurrent_constraint = constraints.get(recurrent_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.dropout = validation.rate(self, "dropout", dropout)
        self.recurrent_dropout = validation.rate(self, "recurrent_dropout", recurrent_dropout)
        # Keras's legacy `implementation` (1: a product per gate, 2: one fused product) only
        # decides, here as there, how many input dropout masks are drawn; recurrent dropout
        # forces 1.
        self.implementation = 1 if self.recurrent_dropout > 0 else implementation
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.state_size = self.units
        self.output_size = self.units

    def build(self, input_shape):
        validation.min_rank(self, input_shape, 2)
        (input_dim,) = validation.known_sizes(self, input_shape, [len(input_shape) - 1])
        width = self.gates * self.units
        self.kernel = self.add_weight(
            name="kernel",
            shape=(input_dim, width),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.recurrent_kernel = self.add_weight(
            name="recurrent_kernel",
            shape=(self.units, width),
            initializer=self.recurrent_initializer,
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=self._bias_shape(),
                initializer=self._full_bias_initializer(),
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )

    def _bias_shape(self):
        return (self.gates * self.units,)

    def _full_bias_initializer(self):
        return self.bias_initializer

    def _input_bias(self):
        return self.bias

    def _mask_count(self):
        """How many independent masks: as Keras, each gate its own with implementation 1
        (always so with recurrent dropout); otherwise one input mask serves every gate."""
        return self.gates if self.implementation == 1 else 1

    def dropout_masks(self, batch_size, training=False):
        """`(input_masks, recurrent_masks)`, each None or a list of `(batch, size)` masks of
        0 and `1 / (1 - rate)`, drawn once per sequence."""
        if not training:
            return None, None

        def draw(rate, size):
            if rate == 0:
                return None
            ones = ops.ones((batch_size, size), dtype=self.compute_dtype)
            return [
                keras.random.dropout(ones, rate, seed=self.seed_generator)
                for _ in range(self._mask_count())
            ]

        input_dim = self.kernel.shape[0]
        return draw(self.dropout, input_dim), draw(self.recurrent_dropout, self.units)

    def project_inputs(self, inputs, masks=(None, None)):
        """`([time,] batch, features)` -> `([time,] batch, gates * units)`."""
        projected = gate_projection(inputs, self.kernel, masks[0])
        bias = self._input_bias()
        return projected if bias is None else projected + bias

    def step_weights(self):
        """The tensors `step` reads: here `(recurrent_kernel,)`."""
        return (ops.convert_to_tensor(self.recurrent_kernel),)

    def get_initial_state(self, batch_size=None):
        sizes = self.state_size if isinstance(self.state_size, list) else [self.state_size]
        return [ops.zeros((batch_size, size), dtype=self.compute_dtype) for size in sizes]

    def call(self, inputs, states, training=False):
        """One step on its own: `(batch, features)` and the states -> `(output, new_states)`.

        Dropout masks are drawn anew on each call; inside an RNN they are drawn once per
        sequence. As Keras's cells, a cell of one state given it as a tensor, not a list,
        returns it so.
        """
        given_a_list = isinstance(states, (list, tuple))
        states = list(states) if given_a_list else [states]
        masks = self.dropout_masks(ops.shape(inputs)[0], training)
        output, new_states = self.step(self.project_inputs(inputs, masks), states,
                                       self.step_weights(), masks,
                                       gate_slices=recurrent_formulation().gate_slices)
        if not given_a_list and len(new_states) == 1:
            return output, new_states[0]
        return output, new_states

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "recurrent_regularizer": regularizers.serialize(self.recurrent_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "recurrent_constraint": constraints.serialize(self.recurrent_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="keraslayers")
class SimpleRNNCell(_GatedCell):
    """One step of a fully connected RNN: `h_t = activation(x_t @ kernel + bias + h_{t-1} @
    recurrent_kernel)`.

    Drop-in for `keras.layers.SimpleRNNCell`: weights `kernel` `(features, units)`,
    `recurrent_kernel` `(units, units)`, `bias` `(units,)`.

    Args:
        units: positive integer, the size of the state and output.
        activation: activation name or callable (default tanh); None for linear.
        use_bias: whether to add a learned bias.
        kernel_initializer, recurrent_initializer, bias_initializer: initializers.
        kernel_regularizer, recurrent_regularizer, bias_regularizer: optional regularizers.
        kernel_constraint, recurrent_constraint, bias_constraint: optional constraints.
        dropout: fraction of the inputs to drop in training, in [0, 1).
        recurrent_dropout: fraction of the previous state to drop in training, in [0, 1).
        seed: integer seed of the dropout masks.

    Input shape:
        `inputs` `(batch, features)`, `states` a list of one `(batch, units)` tensor.

    Output shape:
        `(output, [new_state])`, both `(batch, units)`.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> tuple(kl.RNN(kl.SimpleRNNCell(4))(np.ones((2, 3, 5), "float32")).shape)
        (2, 4)
    """

    def step(self, projected, states, weights, masks=(None, None), training=False,
             gate_slices=False):
        (recurrent_kernel,) = weights
        recurrent = gate_projection(states[0], recurrent_kernel, masks[1])
        output = self.activation(projected + recurrent)
        return output, [output]


@keras.saving.register_keras_serializable(package="keraslayers")
class LSTMCell(_GatedCell):
    """One step of a long short-term memory:

    `[i, f, g, o] = x_t @ kernel + bias + h_{t-1} @ recurrent_kernel` (gates in this order),
    `c_t = σ(f) * c_{t-1} + σ(i) * activation(g)`, `h_t = σ(o) * activation(c_t)`, with
    σ the `recurrent_activation`.

    Drop-in for `keras.layers.LSTMCell`: weights `kernel` `(features, 4 * units)`,
    `recurrent_kernel` `(units, 4 * units)`, `bias` `(4 * units,)`; states `[h, c]`.

    Args:
        units: positive integer, the size of the state and output.
        activation: activation of the candidate and the cell state (default tanh).
        recurrent_activation: activation of the gates (default sigmoid).
        use_bias: whether to add a learned bias.
        unit_forget_bias: start the forget gate's bias at 1 (the rest from
            `bias_initializer`).
        kernel_initializer, recurrent_initializer, bias_initializer: initializers.
        kernel_regularizer, recurrent_regularizer, bias_regularizer: optional regularizers.
        kernel_constraint, recurrent_constraint, bias_constraint: optional constraints.
        dropout: fraction of the inputs to drop in training, in [0, 1).
        recurrent_dropout: fraction of the previous state to drop in training, in [0, 1);
            when on, each gate draws its own masks, as in Keras.
        seed: integer seed of the dropout masks.

    Input shape:
        `inputs` `(batch, features)`, `states` `[h, c]`, each `(batch, units)`.

    Output shape:
        `(h_t, [h_t, c_t])`, each `(batch, units)`.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> tuple(kl.RNN(kl.LSTMCell(4))(np.ones((2, 3, 5), "float32")).shape)
        (2, 4)
    """

    gates = 4

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        unit_forget_bias=True,
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        **kwargs,
    ):
        super().__init__(
            units, activation=activation, use_bias=use_bias,
            kernel_initializer=kernel_initializer, recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer, bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint, recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint, dropout=dropout,
            recurrent_dropout=recurrent_dropout, seed=seed, **kwargs,
        )
        self.recurrent_activation = validation.activation(
            self, recurrent_activation, "recurrent_activation"
        )
        self.unit_forget_bias = bool(unit_forget_bias)
        self.state_size = [self.units, self.units]

    def _full_bias_initializer(self):
        if not self.unit_forget_bias:
            return self.bias_initializer
        return forget_gate_at_one(self.units, self.bias_initializer)

    def step(self, projected, states, weights, masks=(None, None), training=False,
             gate_slices=False):
        h, c = states
        (recurrent_kernel,) = weights
        z = projected + gate_projection(h, recurrent_kernel, masks[1])
        i, f, g, o = gate_blocks(z, 4, gate_slices)
        sigma = self.recurrent_activation
        c = sigma(f) * c + sigma(i) * self.activation(g)
        h = sigma(o) * self.activation(c)
        return h, [h, c]

    def get_config(self):
        return {
            **super().get_config(),
            "recurrent_activation": activations.serialize(self.recurrent_activation),
            "unit_forget_bias": self.unit_forget_bias,
        }


@keras.saving.register_keras_serializable(package="keraslayers")
class GRUCell(_GatedCell):
    """One step of a gated recurrent unit, gates in Keras's order `[z, r, h]`:

    `z = σ(x_z + h_{t-1} @ R_z)`, `r = σ(x_r + h_{t-1} @ R_r)`, candidate
    `ĥ = activation(x_h + r * (h_{t-1} @ R_h + b_rh))` with `reset_after=True` (default,
    cuDNN-compatible) or `activation(x_h + (r * h_{t-1}) @ R_h)` with `reset_after=False`;
    `h_t = z * h_{t-1} + (1 - z) * ĥ`. `x_* = x_t @ kernel_* + b_*`.

    Drop-in for `keras.layers.GRUCell`: weights `kernel` `(features, 3 * units)`,
    `recurrent_kernel` `(units, 3 * units)`, `bias` `(2, 3 * units)` (input and recurrent
    biases) with `reset_after=True`, `(3 * units,)` otherwise.

    Args:
        units: positive integer, the size of the state and output.
        activation: activation of the candidate (default tanh).
        recurrent_activation: activation of the gates (default sigmoid).
        use_bias: whether to add learned biases.
        reset_after: apply the reset gate after the recurrent matrix product.
        kernel_initializer, recurrent_initializer, bias_initializer: initializers.
        kernel_regularizer, recurrent_regularizer, bias_regularizer: optional regularizers.
        kernel_constraint, recurrent_constraint, bias_constraint: optional constraints.
        dropout, recurrent_dropout, seed: as for `LSTMCell`.

    Input shape:
        `inputs` `(batch, features)`, `states` a list of one `(batch, units)` tensor.

    Output shape:
        `(h_t, [h_t])`, each `(batch, units)`.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> tuple(kl.RNN(kl.GRUCell(4))(np.ones((2, 3, 5), "float32")).shape)
        (2, 4)
    """

    gates = 3

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        reset_after=True,
        seed=None,
        **kwargs,
    ):
        super().__init__(
            units, activation=activation, use_bias=use_bias,
            kernel_initializer=kernel_initializer, recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer, bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint, recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint, dropout=dropout,
            recurrent_dropout=recurrent_dropout, seed=seed, **kwargs,
        )
        self.recurrent_activation = validation.activation(
            self, recurrent_activation, "recurrent_activation"
        )
        self.reset_after = bool(reset_after)

    def _bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def _input_bias(self):
        if self.bias is None or not self.reset_after:
            return self.bias
        return self.bias[0]

    def step_weights(self):
        """`(recurrent_kernel, recurrent_bias or None)` with `reset_after`, else
        `(gate_kernel, candidate_kernel)`: the z and r columns of the recurrent kernel, and
        the h columns."""
        recurrent_kernel = ops.convert_to_tensor(self.recurrent_kernel)
        if self.reset_after:
            bias = None if self.bias is None else ops.convert_to_tensor(self.bias)[1]
            return recurrent_kernel, bias
        split = 2 * self.units
        return recurrent_kernel[:, :split], recurrent_kernel[:, split:]

    def step(self, projected, states, weights, masks=(None, None), training=False,
             gate_slices=False):
        (h,) = states
        sigma = self.recurrent_activation
        recurrent_masks = masks[1]
        # The z and r gates as one block `(batch, 2 * units)`: one add and one activation.
        x_zr, x_h = gates_and_candidate(projected, self.units, gate_slices)
        if self.reset_after:
            recurrent_kernel, recurrent_bias = weights
            inner = gate_projection(h, recurrent_kernel, recurrent_masks)
            if recurrent_bias is not None:
                inner = inner + recurrent_bias
            r_zr, r_h = gates_and_candidate(inner, self.units, gate_slices)
            z, r = gate_blocks(sigma(x_zr + r_zr), 2, gate_slices)
            candidate = self.activation(x_h + r * r_h)
        else:
            gate_kernel, candidate_kernel = weights
            zr_masks = None if recurrent_masks is None else recurrent_masks[:2]
            z, r = gate_blocks(sigma(x_zr + gate_projection(h, gate_kernel, zr_masks)), 2,
                              gate_slices)
            h_for_candidate = h if recurrent_masks is None else h * recurrent_masks[-1]
            candidate = self.activation(x_h + matmul(r * h_for_candidate, candidate_kernel))
        # z * h + (1 - z) * candidate, in three ops rather than four.
        h = candidate + z * (h - candidate)
        return h, [h]

    def get_config(self):
        return {
            **super().get_config(),
            "recurrent_activation": activations.serialize(self.recurrent_activation),
            "reset_after": self.reset_after,
        }


def _is_stack(cell):
    return isinstance(cell, (StackedRNNCells, keras.layers.StackedRNNCells))


def _cell_state_sizes(cell):
    """The cell's state sizes as a plain list (nested per cell for a stack): Keras's tracked
    lists are no pytree to JAX."""
    if _is_stack(cell):
        return [_cell_state_sizes(c) for c in cell.cells]
    size = cell.state_size
    return list(size) if isinstance(size, (list, tuple)) else [size]


def _keras_state_structure(cell, states):
    """A stack's states `[[h, c], [s], ...]` as Keras gives them: a cell whose `state_size`
    is an integer has a tensor, not a list of one."""
    return [
        cell_states[0] if isinstance(c.state_size, int) else cell_states
        for c, cell_states in zip(cell.cells, states, strict=True)
    ]


def _output_size(cell):
    size = getattr(cell, "output_size", None)
    if size is not None:
        return size
    return keras.tree.flatten(_cell_state_sizes(cell))[0]


def _splits_its_step(cell):
    """Whether the cell follows this module's project_inputs / step protocol."""
    return isinstance(cell, (_GatedCell, ConvLSTMCell, StackedRNNCells))


def _draw_masks(cell, batch_size, training):
    if _splits_its_step(cell):
        return cell.dropout_masks(batch_size, training)
    return None, None


def _project(cell, inputs, masks):
    return cell.project_inputs(inputs, masks) if _splits_its_step(cell) else inputs


def _step_weights(cell):
    return cell.step_weights() if _splits_its_step(cell) else None


def _step(cell, projected, states, weights, masks, training, gate_slices=False):
    if _splits_its_step(cell):
        return cell.step(projected, states, weights, masks, training, gate_slices)
    # A cell from elsewhere: call it whole, as Keras's RNN does.
    kwargs = {"training": training} if getattr(cell, "_call_has_training_arg", False) else {}
    output, new_states = cell(projected, states, **kwargs)
    return output, list(new_states) if keras.tree.is_nested(new_states) else [new_states]


@keras.saving.register_keras_serializable(package="keraslayers")
class StackedRNNCells(keras.layers.Layer):
    """Several cells as one: each cell's output is the next one's input, at every step.

    `RNN([cell_1, cell_2])` builds one. The first cell's input projection still runs once
    for the whole sequence; the others project their input step by step.

    Args:
        cells: a list of cells.

    Input shape:
        `inputs` `(batch, features)`, `states` one list of states per cell.

    Output shape:
        `(last cell's output, [each cell's new states])`.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> tuple(kl.RNN([kl.GRUCell(4), kl.GRUCell(3)])(np.ones((2, 5, 6), "float32")).shape)
        (2, 3)
    """

    def __init__(self, cells, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(cells, (list, tuple)) or not cells:
            raise ValueError(
                f"{validation.describe(self)}: `cells` must be a non-empty list of cells, "
                f"received cells={cells!r}."
            )
        for cell in cells:
            _check_cell(self, cell)
        self.cells = list(cells)

    @property
    def state_size(self):
        return [c.state_size for c in self.cells]

    @property
    def output_size(self):
        return _output_size(self.cells[-1])

    def build(self, input_shape):
        for cell in self.cells:
            if not cell.built:
                cell.build(input_shape)
            input_shape = (input_shape[0], _output_size(cell))

    def get_initial_state(self, batch_size=None):
        return [
            [ops.zeros((batch_size, size), dtype=self.compute_dtype) for size in sizes]
            for sizes in _cell_state_sizes(self)
        ]

    def dropout_masks(self, batch_size, training=False):
        return [_draw_masks(cell, batch_size, training) for cell in self.cells], None

    def project_inputs(self, inputs, masks=(None, None)):
        cell_masks = masks[0] or [(None, None)] * len(self.cells)
        return _project(self.cells[0], inputs, cell_masks[0])

    def step_weights(self):
        return [_step_weights(cell) for cell in self.cells]

    def step(self, projected, states, weights, masks=(None, None), training=False,
             gate_slices=False):
        cell_masks = masks[0] or [(None, None)] * len(self.cells)
        output, new_states = projected, []
        for index, (cell, cell_states, cell_weights) in enumerate(
            zip(self.cells, states, weights, strict=True)
        ):
            # the first cell's inputs were projected for all steps before the loop
            inputs = output if index == 0 else _project(cell, output, cell_masks[index])
            output, cell_states = _step(cell, inputs, cell_states, cell_weights,
                                        cell_masks[index], training, gate_slices)
            new_states.append(cell_states)
        return output, new_states

    def call(self, inputs, states, training=False):
        """One step of every cell; each cell's states as a list, or as a tensor where it was
        given one (a cell with one state), as Keras's StackedRNNCells takes and returns them."""
        if len(self.cells) == 1 and not isinstance(states, (list, tuple)):
            states = [states]
        given_as_lists = [isinstance(s, (list, tuple)) for s in states]
        states = [list(s) if is_list else [s] for s, is_list in zip(states, given_as_lists,
                                                                     strict=True)]
        masks = self.dropout_masks(ops.shape(inputs)[0], training)
        output, new_states = self.step(self.project_inputs(inputs, masks), states,
                                       self.step_weights(), masks, training,
                                       recurrent_formulation().gate_slices)
        new_states = [s if is_list or len(s) != 1 else s[0]
                      for s, is_list in zip(new_states, given_as_lists, strict=True)]
        return output, new_states[0] if len(new_states) == 1 else new_states

    def get_config(self):
        return {
            **super().get_config(),
            "cells": [keras.saving.serialize_keras_object(cell) for cell in self.cells],
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["cells"] = [keras.saving.deserialize_keras_object(c) for c in config["cells"]]
        return cls(**config)


def _uses_dropout_rnn_cell(cell):
    """Whether the cell follows Keras's `DropoutRNNCell` protocol: it draws its masks on
    first use and keeps them until reset."""
    return all(callable(getattr(cell, name, None)) for name in (
        "get_dropout_mask", "get_recurrent_dropout_mask", "reset_dropout_mask",
        "reset_recurrent_dropout_mask"))


def _dropout_rnn_cells(cell):
    """The cell, or the cells of a stack, that follow the `DropoutRNNCell` protocol."""
    if _is_stack(cell):
        return [found for inner in cell.cells for found in _dropout_rnn_cells(inner)]
    return [cell] if _uses_dropout_rnn_cell(cell) else []


def _configure_dropout_masks(cell, step_input, states):
    """Draws the masks of Keras-style dropout cells (`DropoutRNNCell`) before the loop, as
    Keras's RNN does: drawn inside it, they would be the loop's own tensors, kept past it
    (on JAX, a leaked tracer). `step_input` is the cell's input at one step."""
    if _is_stack(cell):
        for inner, inner_states in zip(cell.cells, states, strict=True):
            _configure_dropout_masks(inner, step_input, inner_states)
            # The next cell's input: what matters to a mask is its shape and dtype.
            step_input = ops.zeros((ops.shape(step_input)[0], _output_size(inner)),
                                   dtype=getattr(inner, "compute_dtype", step_input.dtype))
    elif _uses_dropout_rnn_cell(cell):
        cell.get_dropout_mask(step_input)
        cell.get_recurrent_dropout_mask(
            states[0] if isinstance(states, (list, tuple)) else states)


def _check_cell(layer, cell):
    if not callable(getattr(cell, "call", None)) or getattr(cell, "state_size", None) is None:
        raise ValueError(
            f"{validation.describe(layer)}: a cell must be a layer with a `call(inputs, "
            f"states)` method and a `state_size` attribute, received {cell!r}."
        )


# The time loops. Each runs `step(x_t, keep_t, states, output) -> (output, states)` over
# time-major `xs` (time, batch, width: projected inputs, or raw ones where each step projects
# its own, see `RecurrentFormulation.project_ahead`) and the optional `steps_mask` (time,
# batch), and returns `(last_output, outputs (time, batch, size) or None, states)`, with
# outputs only when `keep_all`.


def _python_loop(step, xs, steps_mask, states, output, keep_all):
    """A Python loop over a known number of steps (`unroll=True`, or as
    `RecurrentFormulation.python_loop_steps` says)."""
    # Unstacked, not indexed step by step: the gradient of `xs[t]` is a zero tensor the size
    # of all of `xs` (on torch and TensorFlow alike), one per step; that of unstack is one
    # stack.
    keeps = [None] * xs.shape[0]
    if steps_mask is not None:
        keeps = ops.unstack(ops.expand_dims(steps_mask, -1))  # each (batch, 1)
    outputs = []
    for x_t, keep in zip(ops.unstack(xs), keeps, strict=True):
        output, states = step(x_t, keep, states, output)
        if keep_all:
            outputs.append(output)
    return output, ops.stack(outputs) if keep_all else None, states


def _scan_loop(step, xs, steps_mask, states, output, keep_all):
    """`ops.scan`: runs with an unknown time length, under XLA, and differentiates on JAX."""
    # Not a choice of speed: the backends' ops.scan differ in what a step must return.
    tensorflow = keras.backend.backend() == "tensorflow"
    if steps_mask is not None:
        # The mask rides along as a last column: TensorFlow's ops.scan cannot take a tuple
        # of sequences whose length is unknown.
        mask_column = ops.cast(steps_mask, xs.dtype)
        for _ in range(len(xs.shape) - 2):  # (time, batch) -> (time, batch, 1, ..., 1)
            mask_column = ops.expand_dims(mask_column, -1)
        if len(xs.shape) > 3:  # spatial steps: the column spans every position
            mask_column = ops.zeros_like(xs[..., :1]) + mask_column
        xs = ops.concatenate([xs, mask_column], axis=-1)
    # Where a step's keep flag sits in its `(batch, ..., width + 1)` slice: (batch, 1).
    keep_index = (slice(None), *(0,) * (len(xs.shape) - 3), slice(-1, None))

    def scan_step(carry, inputs):
        previous_states, previous_output = carry
        x_t, keep = inputs, None
        if steps_mask is not None:
            x_t, keep = inputs[..., :-1], inputs[keep_index] > 0.5
        output, new_states = step(x_t, keep, previous_states, previous_output)
        carry = (new_states, output)
        # TensorFlow's ops.scan needs the per-step results shaped like the carry; JAX's
        # stacks only what is returned, so it returns nothing unless the outputs are kept.
        if tensorflow:
            return carry, carry
        return carry, output if keep_all else None

    (states, last_output), ys = ops.scan(scan_step, (states, output), xs)
    outputs = None
    if keep_all:
        outputs = ys[1] if tensorflow else ys
    return last_output, outputs, states


def _map_states(function, states, *others):
    """`function` on each state tensor of a (possibly nested, for stacks) list of states.

    A plain recursion: keras.tree would cost more than the step itself on torch.
    """
    if isinstance(states, (list, tuple)):
        return [_map_states(function, *items) for items in zip(states, *others, strict=True)]
    return function(states, *others)


@keras.saving.register_keras_serializable(package="keraslayers")
class RNN(keras.layers.Layer):
    """Runs a cell over the time axis of a sequence.

    For each step `t`: `output_t, states_t = cell(x_t, states_{t-1})`. Where the mask is False
    the step is skipped: the states and the output carry over from the previous step (the
    output of a skipped first step is zeros; with `zero_output_for_mask`, every skipped
    output is zeros). The loop is `keras.ops.scan`, so it runs with an unknown time length
    and under XLA; before it, the cell projects the inputs of all steps with one matrix
    product. Drop-in for `keras.layers.RNN`.

    Args:
        cell: a cell (this module's, Keras's, or any layer with `call(inputs, states)` and
            `state_size`), or a list of cells to stack.
        return_sequences: return every step's output, not only the last.
        return_state: also return the final states, after the output.
        go_backwards: run from the last step to the first; sequences come out reversed.
        stateful: each batch starts from the states the previous batch ended with (a fixed
            batch size is needed, and a batch of another size is refused). As in Keras, the
            states are variables `layer.states` outside the weights; `reset_state()` zeroes
            them.
        unroll: a Python loop over a known time length instead of `ops.scan`.
        zero_output_for_mask: zeros for the outputs of masked steps.

    Call arguments:
        sequences: `(batch, time, features)`.
        initial_state: list of `(batch, state_size)` tensors, one per state.
        mask: boolean `(batch, time)`, False for steps to skip.
        training: whether dropout is on.

    Input shape:
        `(batch, time, features)`.

    Output shape:
        `(batch, time, output_size)` with `return_sequences`, else `(batch, output_size)`;
        with `return_state`, followed by the final states `(batch, state_size)`: for a stack
        of cells, one entry per cell, a list of its states or, where its `state_size` is an
        integer, its state.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> y = kl.RNN(kl.LSTMCell(4), return_sequences=True)(np.ones((2, 3, 5), "float32"))
        >>> tuple(y.shape)
        (2, 3, 4)
    """

    def __init__(self, cell, return_sequences=False, return_state=False, go_backwards=False,
                 stateful=False, unroll=False, zero_output_for_mask=False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(cell, (list, tuple)):
            cell = StackedRNNCells(cell, dtype=self.dtype_policy)
        _check_cell(self, cell)
        self.cell = cell
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        self.unroll = bool(unroll)
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.supports_masking = True
        self.states = None
        self._expected_batch_size = None

    # -- shapes ------------------------------------------------------------------------

    def _check_sequences(self, shape):
        if len(shape) != 3:
            raise ValueError(
                f"{validation.describe(self)}: expected sequences of rank 3 (batch, time, "
                f"features), received an input of shape {tuple(shape)}."
            )
        if self.unroll and shape[1] is None:
            raise ValueError(
                f"{validation.describe(self)}: unroll=True needs a known number of time "
                f"steps, received sequences of shape {tuple(shape)}."
            )

    def build(self, sequences_shape, initial_state_shape=None):
        self._check_sequences(sequences_shape)
        self._build_cell(sequences_shape)
        if self.stateful:
            if sequences_shape[0] is None:
                raise ValueError(
                    f"{validation.describe(self)}: stateful=True needs a fixed batch size "
                    f"(keras.Input(batch_shape=...)), received sequences of shape "
                    f"{tuple(sequences_shape)}."
                )
            if self.states is not None:
                self.reset_state()
                return
            self._create_state_variables(sequences_shape[0])

    def _build_cell(self, sequences_shape):
        validation.known_sizes(self, sequences_shape, [2])
        if not self.cell.built:
            self.cell.build((sequences_shape[0], sequences_shape[2]))

    def _create_state_variables(self, batch_size):
        """The states of a stateful layer, as Keras keeps them: variables named `rnn_state`
        in the layer's name scope that are none of its weights (`get_weights` and
        `set_weights` see the cell's only), shaped like the cell's states."""
        with keras.name_scope(self.name, caller=self):
            states = [
                keras.Variable(state, trainable=False, dtype=self.variable_dtype,
                               name="rnn_state")
                for state in keras.tree.flatten(self.get_initial_state(batch_size))
            ]
        # Set past the layer's attribute tracking, which would count them as weights.
        object.__setattr__(self, "states", states)
        self._expected_batch_size = batch_size

    def _state_shapes(self, batch_size):
        return [(batch_size, size) for size in keras.tree.flatten(_cell_state_sizes(self.cell))]

    def _step_output_shape(self, batch_size):
        """The shape of one step's output."""
        return (batch_size, _output_size(self.cell))

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        batch, time = sequences_shape[0], sequences_shape[1]
        size = _output_size(self.cell)
        output_shape = (batch, time, size) if self.return_sequences else (batch, size)
        if not self.return_state:
            return output_shape
        return (output_shape, *self._keras_states(keras.tree.pack_sequence_as(
            _cell_state_sizes(self.cell), self._state_shapes(batch))))

    def _keras_states(self, states):
        """The loop's states (a list per cell for a stack) in the structure Keras's RNN
        returns them: one entry per state, or per cell of a stack, a cell with an integer
        `state_size` giving its state itself."""
        return _keras_state_structure(self.cell, states) if _is_stack(self.cell) else states

    def compute_mask(self, sequences, mask=None):
        mask = keras.tree.flatten(mask)[0] if mask is not None else None
        output_mask = mask if self.return_sequences else None
        if self.return_state:
            return [output_mask] + [None] * len(_cell_state_sizes(self.cell))
        return output_mask

    def get_initial_state(self, batch_size):
        """The states a sequence starts from, as Keras's RNN makes them: the cell's
        `get_initial_state(batch_size=...)` as a list, else zeros."""
        make = getattr(self.cell, "get_initial_state", None)
        if make is None:
            return [ops.zeros((batch_size, size), dtype=self.cell.compute_dtype)
                    for size in keras.tree.flatten(_cell_state_sizes(self.cell))]
        states = make(batch_size=batch_size)
        return list(states) if keras.tree.is_nested(states) else [states]

    def reset_state(self):
        """Zeroes the states of a stateful layer."""
        for state in self.states or []:
            state.assign(ops.zeros(state.shape, dtype=state.dtype))

    def reset_states(self):
        """Keras's other name of `reset_state`."""
        self.reset_state()

    # -- the time loop -----------------------------------------------------------------

    def _initial_states(self, sequences, initial_state):
        sizes = _cell_state_sizes(self.cell)
        if initial_state is None:
            if self.stateful:
                # Copies: the loop's results are assigned to the variables, which on torch
                # would change in place what the gradient still needs.
                flat = [ops.copy(state) for state in self.states]
            elif _splits_its_step(self.cell):
                flat = [ops.zeros(shape) for shape in self._state_shapes(ops.shape(sequences)[0])]
            else:  # a cell from elsewhere may start from other states than zeros
                flat = keras.tree.flatten(self.get_initial_state(ops.shape(sequences)[0]))
        else:
            flat = keras.tree.flatten(initial_state)
            self._check_initial_state(sequences.shape, flat)
        flat = [ops.cast(state, self.compute_dtype) for state in flat]
        return keras.tree.pack_sequence_as(sizes, flat)

    def _check_initial_state(self, sequences_shape, flat):
        expected = self._state_shapes(sequences_shape[0])
        received = [tuple(state.shape) for state in flat]
        fits = len(received) == len(expected) and all(
            validation.shapes_agree(r, e) for r, e in zip(received, expected, strict=True)
        )
        if not fits:
            raise ValueError(
                f"{validation.describe(self)}: `initial_state` must be {len(expected)} "
                f"tensor(s) of shapes {expected}, received {len(received)} of shapes "
                f"{received}."
            )

    def _check_mask(self, sequences_shape, mask):
        shape = tuple(mask.shape)
        if not validation.shapes_agree(shape, tuple(sequences_shape[:2])):
            raise ValueError(
                f"{validation.describe(self)}: the mask must have shape (batch, time) = "
                f"{tuple(sequences_shape[:2])} to match the sequences of shape "
                f"{tuple(sequences_shape)}, received a mask of shape {shape}."
            )

    def _check_stateful_batch(self, sequences_shape):
        batch = sequences_shape[0]
        if self._expected_batch_size is not None and batch is not None and (
                batch != self._expected_batch_size):
            raise ValueError(
                f"{validation.describe(self)}: a stateful layer keeps states for batch size "
                f"{self._expected_batch_size}, received sequences of batch size {batch} "
                f"(shape {tuple(sequences_shape)}); feed batches of "
                f"{self._expected_batch_size}."
            )

    def call(self, sequences, initial_state=None, mask=None, training=False):
        self._check_sequences(sequences.shape)
        if self.stateful:
            self._check_stateful_batch(sequences.shape)
        mask = keras.tree.flatten(mask)[0] if mask is not None else None
        if mask is not None:
            self._check_mask(sequences.shape, mask)
        states = self._initial_states(sequences, initial_state)
        dropout_cells = _dropout_rnn_cells(self.cell)
        if dropout_cells:
            _configure_dropout_masks(self.cell, sequences[:, 0], states)
        last_output, outputs, states = self._run(sequences, states, mask, training)
        for cell in dropout_cells:
            cell.reset_dropout_mask()
            cell.reset_recurrent_dropout_mask()
        if self.stateful:
            for variable, state in zip(self.states, keras.tree.flatten(states), strict=True):
                variable.assign(ops.stop_gradient(state))
        return self._results(last_output, outputs, states)

    def _results(self, last_output, outputs, states):
        """What `call` returns, from the loop's `(last_output, outputs, states)`."""
        output = outputs if self.return_sequences else last_output
        if self.return_state:
            return (output, *self._keras_states(states))
        return output

    def _time_major(self, sequences, mask=None):
        """`(batch, time, features)` -> `(time, batch, features)` and the mask `(batch, time)`
        -> `(time, batch)` (or None), in the order the loop runs: reversed with
        `go_backwards`."""
        sequences = ops.transpose(sequences, _swap_batch_and_time(len(sequences.shape)))
        steps_mask = None if mask is None else ops.transpose(ops.cast(mask, "bool"), (1, 0))
        if self.go_backwards:
            sequences = ops.flip(sequences, axis=0)
            steps_mask = None if steps_mask is None else ops.flip(steps_mask, axis=0)
        return sequences, steps_mask

    def _run(self, sequences, states, mask, training):
        """The one time loop over time-major steps.

        Returns `(last_output, outputs (batch, time, output_size) or None, final_states)`;
        outputs only with `return_sequences`.
        """
        cell = self.cell
        masks = _draw_masks(cell, ops.shape(sequences)[0], training)
        # Time-major and reversed before the projection, not after: the inputs are narrower
        # than the projected gates (4 * units wide for an LSTM), so less memory moves.
        sequences, steps_mask = self._time_major(sequences, mask)  # (time, batch, features)
        how = recurrent_formulation(cell)
        xs = _project(cell, sequences, masks) if how.project_ahead else sequences  # (t, b, w)
        batch = ops.shape(sequences)[1]
        zero_output = ops.zeros(self._step_output_shape(batch), dtype=self.compute_dtype)
        step = self._step_function(_step_weights(cell), masks, training, zero_output,
                                   project=not how.project_ahead, gate_slices=how.gate_slices)
        steps = sequences.shape[0]
        python_loop = self.unroll or (steps is not None and steps <= how.python_loop_steps)
        loop = _python_loop if python_loop else _scan_loop
        last_output, outputs, states = loop(
            step, xs, steps_mask, states, zero_output, self.return_sequences
        )
        if outputs is not None:  # (batch, time, *output_shape)
            outputs = ops.transpose(outputs, _swap_batch_and_time(len(outputs.shape)))
        return last_output, outputs, states

    def _step_function(self, weights, masks, training, zero_output, project, gate_slices):
        """`step(x_t, keep, states, output) -> (output, states)` for the loops: the cell's
        step, its results in the compute dtype, and masked steps skipped."""
        cell = self.cell
        compute_dtype = zero_output.dtype  # the backend's dtype object
        # This module's cells compute in the dtype of their inputs, states and weights: the
        # compute dtype, when the cell shares the layer's dtype policy. Other cells' results
        # are cast (the check alone costs a sizeable part of a small step on torch).
        keeps_dtype = (isinstance(cell, (_GatedCell, ConvLSTMCell))
                       and cell.dtype_policy.name == self.dtype_policy.name)

        def cast(x):
            return x if x.dtype == compute_dtype else ops.cast(x, self.compute_dtype)

        def step(x_t, keep, previous_states, previous_output):
            projected_t = _project(cell, x_t, masks) if project else x_t
            output, new_states = _step(cell, projected_t, previous_states, weights, masks,
                                       training, gate_slices)
            if not keeps_dtype:
                output = cast(output)
                new_states = _map_states(cast, new_states)
            if keep is not None:  # keep: (batch, 1), False where the step is skipped
                skipped = zero_output if self.zero_output_for_mask else previous_output
                output = ops.where(_broadcast_mask(keep, output), output, skipped)
                new_states = _map_states(
                    lambda new, old: ops.where(_broadcast_mask(keep, new), new, old),
                    new_states, previous_states,
                )
            return output, new_states

        return step

    def get_config(self):
        return {
            **super().get_config(),
            "cell": keras.saving.serialize_keras_object(self.cell),
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "stateful": self.stateful,
            "unroll": self.unroll,
            "zero_output_for_mask": self.zero_output_for_mask,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["cell"] = keras.saving.deserialize_keras_object(config["cell"])
        return cls(**config)


# What may differ between two cells that run in one loop: the names, and what only drawn
# dropout masks use (none are drawn there).
_CELL_ARGUMENTS_OUTSIDE_THE_LOOP = ("name", "seed", "dropout", "recurrent_dropout")


def _like_directions(forward, backward):
    """Whether `_run_directions` can run the two layers (Bidirectional's): this module's RNN
    layers of one type over this module's cells of one type and configuration, with one
    dtype policy, no state kept between batches and no activity regularizer."""
    layers = (forward, backward)
    if not all(isinstance(layer, RNN) and isinstance(layer.cell, _GatedCell)
               for layer in layers):
        return False
    if type(forward) is not type(backward) or type(forward.cell) is not type(backward.cell):
        return False
    configs = [
        {k: v for k, v in layer.cell.get_config().items()
         if k not in _CELL_ARGUMENTS_OUTSIDE_THE_LOOP}
        for layer in layers
    ]
    return (
        configs[0] == configs[1]
        and forward.dtype_policy.name == backward.dtype_policy.name
        and not forward.stateful
        and forward.activity_regularizer is None
        and backward.activity_regularizer is None
    )


def _stack_directions(weights, dtype):
    """One weight of each direction -> `(2, ...)` in `dtype`; a bias `(n,)` -> `(2, 1, n)`,
    to broadcast against `(2, batch, n)`."""
    if weights[0] is None:
        return None
    stacked = ops.stack([ops.cast(weight, dtype) for weight in weights])
    return ops.expand_dims(stacked, 1) if len(stacked.shape) == 2 else stacked


def _run_directions(layers, sequences, training):
    """Runs two like RNN layers (see `_like_directions`) over `sequences` (batch, time,
    features) in one time loop, without masks, initial states or dropout, and returns what
    each layer's `call` would.

    The directions are stacked on a leading axis: the steps compute on `(2, batch, ...)`
    tensors and the products are batched, `(2, batch, units) @ (2, units, width)`. On torch,
    where each op runs on its own, a step of a small layer costs about as much to dispatch
    as to compute, and one loop dispatches half as many ops as two.
    """
    first, cell, dtype = layers[0], layers[0].cell, layers[0].compute_dtype
    cells = [layer.cell for layer in layers]
    inputs = ops.stack([layer._time_major(sequences)[0] for layer in layers])
    _, steps, batch, features = inputs.shape  # (2, time, batch, features)
    kernel = _stack_directions([c.kernel for c in cells], dtype)  # (2, features, width)
    xs = matmul(ops.reshape(inputs, (2, steps * batch, features)), kernel)
    if cell.use_bias:
        xs = xs + _stack_directions([c._input_bias() for c in cells], dtype)
    xs = ops.transpose(ops.reshape(xs, (2, steps, batch, -1)), (1, 0, 2, 3))
    # (time, 2, batch, width)
    weights = [_stack_directions(pair, dtype)
               for pair in zip(*(c.step_weights() for c in cells), strict=True)]
    states = [ops.zeros((2, batch, size), dtype=dtype) for size in _cell_state_sizes(cell)]
    zero_output = ops.zeros((2, batch, _output_size(cell)), dtype=dtype)
    step = first._step_function(weights, (None, None), training, zero_output, project=False,
                                gate_slices=recurrent_formulation().gate_slices)
    last_output, outputs, states = _python_loop(step, xs, None, states, zero_output,
                                                first.return_sequences)
    return [
        layer._results(
            last_output[index],
            None if outputs is None else ops.transpose(outputs[:, index], (1, 0, 2)),
            [state[index] for state in states],
        )
        for index, layer in enumerate(layers)
    ]


def _swap_batch_and_time(rank):
    """The transpose of `(batch, time, ...)` to `(time, batch, ...)`, and back."""
    return (1, 0, *range(2, rank))


def _broadcast_mask(keep, state):
    """`(batch, 1)` -> `(batch, 1, ...)` with the state's rank."""
    for _ in range(len(state.shape) - 2):
        keep = ops.expand_dims(keep, -1)
    return keep


_COMMON_CELL_ARGUMENTS = (
    "activation", "use_bias", "kernel_initializer", "recurrent_initializer",
    "bias_initializer", "kernel_regularizer", "recurrent_regularizer", "bias_regularizer",
    "kernel_constraint", "recurrent_constraint", "bias_constraint", "dropout",
    "recurrent_dropout", "seed",
)
USE_CUDNN_VALUES = ("auto", True, False)


def _keras_fused_path_refuses(layer, mask):
    """Whether Keras's LSTM or GRU, asked for `use_cudnn=True`, would find no fused
    (`keras.src.backend.<backend>.lstm` / `.gru`) implementation for this call and so raise:
    its rules in Keras 3.15.1, by backend. klayers always runs its own loop; it refuses where
    Keras refuses, so the same code fails (or runs) under both."""
    cell, backend = layer.cell, keras.backend.backend()
    if cell.recurrent_dropout:
        return True  # Keras tries no fused path with recurrent dropout
    is_gru = isinstance(cell, GRUCell)
    if is_gru and not cell.reset_after:
        return True
    cudnn_arguments = (
        cell.activation in (activations.tanh, ops.tanh)
        and cell.recurrent_activation in (activations.sigmoid, ops.sigmoid)
        and not layer.unroll and cell.use_bias
    )
    on_gpu = device_kind() == "gpu"
    if backend == "tensorflow":
        return not (cudnn_arguments and on_gpu)
    if mask is not None:
        return True
    if backend == "jax":
        # JAX's GRU has a lax.scan fallback on any device; its LSTM needs cuDNN.
        return layer.unroll if is_gru else not (cudnn_arguments and on_gpu)
    return backend != "torch"  # torch: a fallback for both on any device


class _CellRNN(RNN):
    """An RNN layer that makes its own cell from the cell's arguments (SimpleRNN, LSTM, GRU).

    Its config is the cell's arguments plus the RNN's, flat, as Keras writes it; the cell's
    arguments read through from the cell (`layer.units`, `layer.dropout`, ...), as Keras's.
    """

    cell_arguments: tuple = _COMMON_CELL_ARGUMENTS

    def __init__(self, cell, *, return_sequences, return_state, go_backwards, stateful,
                 unroll, zero_output_for_mask, activity_regularizer, use_cudnn=None, **kwargs):
        super().__init__(cell, return_sequences=return_sequences, return_state=return_state,
                         go_backwards=go_backwards, stateful=stateful, unroll=unroll,
                         zero_output_for_mask=zero_output_for_mask,
                         activity_regularizer=activity_regularizer, **kwargs)
        if use_cudnn is not None:
            if use_cudnn not in USE_CUDNN_VALUES:
                raise ValueError(
                    f"{validation.describe(self)}: `use_cudnn` must be one of "
                    f"{USE_CUDNN_VALUES}, received use_cudnn={use_cudnn!r}."
                )
            self.use_cudnn = use_cudnn

    @staticmethod
    def _cell_layer_arguments(kwargs):
        """What the cell takes from the layer's keyword arguments, as Keras's layers pass
        them: the dtype policy and trainability."""
        return {"dtype": kwargs.get("dtype"), "trainable": kwargs.get("trainable", True)}

    def call(self, sequences, initial_state=None, mask=None, training=False):
        if getattr(self, "use_cudnn", None) is True and _keras_fused_path_refuses(self, mask):
            raise ValueError(
                f"{validation.describe(self)}: use_cudnn=True was given, but Keras has no "
                f"cuDNN implementation for this configuration on the "
                f"{keras.backend.backend()} backend and this device (as Keras, klayers "
                f"refuses it here); pass use_cudnn='auto' to run the keras.ops loop."
            )
        return super().call(sequences, initial_state=initial_state, mask=mask,
                            training=training)

    def get_config(self):
        config = super().get_config()
        del config["cell"]
        cell_config = self.cell.get_config()
        if hasattr(self, "use_cudnn"):
            config["use_cudnn"] = self.use_cudnn
        return {
            **config,
            "units": self.units,
            **{k: cell_config[k] for k in self.cell_arguments},
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _reads_from_cell(name):
    return property(lambda self: getattr(self.cell, name),
                    doc=f"The cell's `{name}`.")


for _name in ("units", *_COMMON_CELL_ARGUMENTS, "recurrent_activation", "unit_forget_bias",
              "reset_after"):
    setattr(_CellRNN, _name, _reads_from_cell(_name))


@keras.saving.register_keras_serializable(package="keraslayers")
class SimpleRNN(_CellRNN):
    """Fully connected RNN: `h_t = activation(x_t @ kernel + bias + h_{t-1} @
    recurrent_kernel)`, the output fed back as the next state.

    `RNN(SimpleRNNCell(...))` in one layer; drop-in for `keras.layers.SimpleRNN` (same
    arguments in the same order, weights `kernel`, `recurrent_kernel`, `bias`).

    Args:
        units: positive integer, the size of the state and output.
        activation, use_bias, kernel_initializer, recurrent_initializer, bias_initializer,
            kernel_regularizer, recurrent_regularizer, bias_regularizer: the cell's, see
            `SimpleRNNCell`.
        activity_regularizer: optional regularizer of the output.
        kernel_constraint, recurrent_constraint, bias_constraint, dropout,
            recurrent_dropout: the cell's.
        return_sequences, return_state, go_backwards, stateful, unroll: the loop's, see
            `RNN`.
        seed: integer seed of the dropout masks.
        zero_output_for_mask: the loop's, see `RNN`.

    Input shape:
        `(batch, time, features)`; a mask `(batch, time)` skips steps.

    Output shape:
        `(batch, time, units)` with `return_sequences`, else `(batch, units)`; with
        `return_state`, followed by the final state `(batch, units)`.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> tuple(kl.SimpleRNN(4)(np.ones((2, 3, 5), "float32")).shape)
        (2, 4)
    """

    def __init__(
        self,
        units,
        activation="tanh",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        seed=None,
        zero_output_for_mask=False,
        **kwargs,
    ):
        cell = SimpleRNNCell(
            units, activation=activation, use_bias=use_bias,
            kernel_initializer=kernel_initializer, recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer, bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint, recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint, dropout=dropout,
            recurrent_dropout=recurrent_dropout, seed=seed, name="simple_rnn_cell",
            **self._cell_layer_arguments(kwargs),
        )
        super().__init__(
            cell, return_sequences=return_sequences, return_state=return_state,
            go_backwards=go_backwards, stateful=stateful, unroll=unroll,
            zero_output_for_mask=zero_output_for_mask,
            activity_regularizer=activity_regularizer, **kwargs,
        )


@keras.saving.register_keras_serializable(package="keraslayers")
class LSTM(_CellRNN):
    """Long short-term memory (Hochreiter and Schmidhuber, 1997) over a sequence.

    `RNN(LSTMCell(...))` in one layer; drop-in for `keras.layers.LSTM` (same arguments in
    the same order; weights `kernel` `(features, 4 * units)`, `recurrent_kernel`, `bias`;
    gates i, f, g, o). See `LSTMCell` for the step. klayers never calls cuDNN: `use_cudnn`
    "auto" and False run the keras.ops loop, and True raises where Keras's would (on CPU:
    always on TensorFlow and JAX; on torch with a mask or recurrent dropout).

    Args:
        units: positive integer, the size of the state and output.
        activation, recurrent_activation, use_bias, kernel_initializer,
            recurrent_initializer, bias_initializer, unit_forget_bias, kernel_regularizer,
            recurrent_regularizer, bias_regularizer: the cell's, see `LSTMCell`.
        activity_regularizer: optional regularizer of the output.
        kernel_constraint, recurrent_constraint, bias_constraint, dropout,
            recurrent_dropout, seed: the cell's.
        return_sequences, return_state, go_backwards, stateful, unroll: the loop's, see
            `RNN`.
        use_cudnn: "auto" (default), True or False, as above.
        zero_output_for_mask: the loop's, see `RNN`.

    Input shape:
        `(batch, time, features)`; a mask `(batch, time)` skips steps.

    Output shape:
        `(batch, time, units)` with `return_sequences`, else `(batch, units)`; with
        `return_state`, followed by the final `h` and `c`, each `(batch, units)`.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> tuple(kl.LSTM(4, return_sequences=True)(np.ones((2, 3, 5), "float32")).shape)
        (2, 3, 4)
    """

    cell_arguments = (*_COMMON_CELL_ARGUMENTS, "recurrent_activation", "unit_forget_bias")

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        unit_forget_bias=True,
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        use_cudnn="auto",
        zero_output_for_mask=False,
        **kwargs,
    ):
        cell = LSTMCell(
            units, activation=activation, recurrent_activation=recurrent_activation,
            use_bias=use_bias, kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer,
            unit_forget_bias=unit_forget_bias, kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer, bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint, recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint, dropout=dropout,
            recurrent_dropout=recurrent_dropout, seed=seed, name="lstm_cell",
            implementation=kwargs.pop("implementation", 2),
            **self._cell_layer_arguments(kwargs),
        )
        super().__init__(
            cell, return_sequences=return_sequences, return_state=return_state,
            go_backwards=go_backwards, stateful=stateful, unroll=unroll,
            zero_output_for_mask=zero_output_for_mask,
            activity_regularizer=activity_regularizer, use_cudnn=use_cudnn, **kwargs,
        )


@keras.saving.register_keras_serializable(package="keraslayers")
class GRU(_CellRNN):
    """Gated recurrent unit (Cho et al., 2014) over a sequence.

    `RNN(GRUCell(...))` in one layer; drop-in for `keras.layers.GRU` (same arguments in the
    same order; weights `kernel` `(features, 3 * units)`, `recurrent_kernel`, `bias`
    `(2, 3 * units)` with `reset_after=True`; gates z, r, h). See `GRUCell` for the step.
    `use_cudnn` as for `LSTM` (True raises where Keras's GRU would: on CPU, always on
    TensorFlow; elsewhere with a mask, recurrent dropout or `reset_after=False`, and on JAX
    with `unroll`).

    Args:
        units: positive integer, the size of the state and output.
        activation, recurrent_activation, use_bias, kernel_initializer,
            recurrent_initializer, bias_initializer, kernel_regularizer,
            recurrent_regularizer, bias_regularizer: the cell's, see `GRUCell`.
        activity_regularizer: optional regularizer of the output.
        kernel_constraint, recurrent_constraint, bias_constraint, dropout,
            recurrent_dropout, seed: the cell's.
        return_sequences, return_state, go_backwards, stateful, unroll: the loop's, see
            `RNN`.
        reset_after: the cell's.
        use_cudnn: "auto" (default), True or False, as above.
        zero_output_for_mask: the loop's, see `RNN`.

    Input shape:
        `(batch, time, features)`; a mask `(batch, time)` skips steps.

    Output shape:
        `(batch, time, units)` with `return_sequences`, else `(batch, units)`; with
        `return_state`, followed by the final state `(batch, units)`.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> tuple(kl.GRU(4, reset_after=False)(np.ones((2, 3, 5), "float32")).shape)
        (2, 4)
    """

    cell_arguments = (*_COMMON_CELL_ARGUMENTS, "recurrent_activation", "reset_after")

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        reset_after=True,
        use_cudnn="auto",
        zero_output_for_mask=False,
        **kwargs,
    ):
        cell = GRUCell(
            units, activation=activation, recurrent_activation=recurrent_activation,
            use_bias=use_bias, kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer, bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint, recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint, dropout=dropout,
            recurrent_dropout=recurrent_dropout, reset_after=reset_after, seed=seed,
            name="gru_cell", implementation=kwargs.pop("implementation", 2),
            **self._cell_layer_arguments(kwargs),
        )
        super().__init__(
            cell, return_sequences=return_sequences, return_state=return_state,
            go_backwards=go_backwards, stateful=stateful, unroll=unroll,
            zero_output_for_mask=zero_output_for_mask,
            activity_regularizer=activity_regularizer, use_cudnn=use_cudnn, **kwargs,
        )


@keras.saving.register_keras_serializable(package="keraslayers")
class Bidirectional(keras.layers.Layer):
    """Runs a recurrent layer forwards and a copy of it backwards, and merges the two.

    `y = merge(forward(x), reverse(backward(x)))`, the backward sequence flipped back so that
    step `t` of both lines up. Drop-in for `keras.layers.Bidirectional` (weights: the forward
    layer's, then the backward layer's). With a mask and `return_sequences`, both directions
    output zeros at masked steps, as Keras does. On torch, two like directions of this
    module's layers run in one time loop when there is no mask, initial state or dropout
    mask to draw (see `_run_directions`).

    Args:
        layer: a recurrent layer (`RNN`, `SimpleRNN`, `LSTM`, `GRU`, or Keras's).
        merge_mode: "concat" (default), "sum", "mul", "ave", or None for the list
            `[forward, backward]`.
        weights: Keras's argument, kept as Keras 3.15.1 keeps it (each direction's
            `initial_weights`, half each) and, as there, applied nowhere: use `set_weights`
            on the built layer.
        backward_layer: optional layer for the backward direction; by default a copy of
            `layer` with `go_backwards` flipped.

    Input shape:
        `(batch, time, features)`.

    Output shape:
        The wrapped layer's, with the last axis doubled for "concat"; with `return_state`,
        followed by the forward states, then the backward states.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> tuple(kl.Bidirectional(kl.GRU(4))(np.ones((2, 3, 5), "float32")).shape)
        (2, 8)
    """

    def __init__(self, layer, merge_mode="concat", weights=None, backward_layer=None,
                 **kwargs):
        super().__init__(**kwargs)
        for argument, value in (("layer", layer), ("backward_layer", backward_layer)):
            if value is not None and not isinstance(value, keras.layers.Layer):
                raise ValueError(
                    f"{validation.describe(self)}: `{argument}` must be a recurrent "
                    f"keras.layers.Layer, received {argument}={value!r}."
                )
        if merge_mode not in MERGE_MODES:
            raise ValueError(
                f"{validation.describe(self)}: `merge_mode` must be one of {MERGE_MODES}, "
                f"received merge_mode={merge_mode!r}."
            )
        self.forward_layer = self._copy(layer, "forward", layer.go_backwards)
        if backward_layer is None:
            backward_layer = self._copy(layer, "backward", not layer.go_backwards)
        self.backward_layer = backward_layer
        if hasattr(layer, "use_cudnn"):  # as Keras: the layer's choice holds for both
            self.forward_layer.use_cudnn = layer.use_cudnn
            backward_layer.use_cudnn = layer.use_cudnn
        for attribute in ("stateful", "return_sequences", "return_state"):
            if getattr(self.forward_layer, attribute) != getattr(backward_layer, attribute):
                raise ValueError(
                    f"{validation.describe(self)}: the forward and backward layers must "
                    f"agree on `{attribute}`, received "
                    f"{getattr(self.forward_layer, attribute)} and "
                    f"{getattr(backward_layer, attribute)}."
                )
        if self.forward_layer.go_backwards == backward_layer.go_backwards:
            raise ValueError(
                f"{validation.describe(self)}: the backward layer must run the other way: "
                f"both have go_backwards={backward_layer.go_backwards}."
            )
        # Masked steps output zeros in both directions, so merged steps line up.
        for direction in (self.forward_layer, self.backward_layer):
            if hasattr(direction, "zero_output_for_mask"):
                direction.zero_output_for_mask = direction.return_sequences
        self.merge_mode = merge_mode
        if weights:
            # As Keras 3.15.1 does, which reads them nowhere after: set them with
            # `set_weights` once the layer is built.
            half = len(weights) // 2
            self.forward_layer.initial_weights = weights[:half]
            self.backward_layer.initial_weights = weights[half:]
        self._like_directions = (
            _like_directions(self.forward_layer, self.backward_layer)
            and self.dtype_policy.name == self.forward_layer.dtype_policy.name
        )
        self.stateful = self.forward_layer.stateful
        self.return_sequences = self.forward_layer.return_sequences
        self.return_state = self.forward_layer.return_state
        self.supports_masking = True

    @staticmethod
    def _copy(layer, direction, go_backwards):
        config = copy.deepcopy(keras.saving.serialize_keras_object(layer))
        name = config["config"]["name"]
        prefix = f"{direction}_"
        config["config"]["name"] = name if name.startswith(prefix) else prefix + name
        config["config"]["go_backwards"] = go_backwards
        return keras.saving.deserialize_keras_object(config)

    def build(self, sequences_shape, initial_state_shape=None):
        for direction in (self.forward_layer, self.backward_layer):
            if not direction.built:
                direction.build(sequences_shape)

    def call(self, sequences, initial_state=None, mask=None, training=None):
        if self._runs_together(initial_state, mask, training):
            y, y_reversed = _run_directions(
                (self.forward_layer, self.backward_layer), sequences, training
            )
        else:
            y, y_reversed = self._run_apart(sequences, initial_state, mask, training)
        states = ()
        if self.return_state:
            states = (*y[1:], *y_reversed[1:])
            y, y_reversed = y[0], y_reversed[0]
        y = ops.cast(y, self.compute_dtype)
        y_reversed = ops.cast(y_reversed, self.compute_dtype)
        if self.return_sequences:
            y_reversed = ops.flip(y_reversed, axis=1)  # back to forward time order
        output = self._merge(y, y_reversed)
        if self.merge_mode is None:
            return [*output, *states] if states else output
        return (output, *states) if states else output

    def _runs_together(self, initial_state, mask, training):
        """Whether both directions run in one loop (`_run_directions`): on torch, for like
        layers, without an initial state or mask, and without dropout masks to draw."""
        if not self._like_directions or not recurrent_formulation().directions_together:
            return False
        if initial_state is not None or mask is not None:
            return False
        if getattr(self.forward_layer, "use_cudnn", None) is True:
            return False  # each direction decides whether to refuse it, as in Keras
        cell = self.forward_layer.cell
        return not training or (cell.dropout == 0 and cell.recurrent_dropout == 0)

    def _run_apart(self, sequences, initial_state, mask, training):
        forward_state = backward_state = None
        if initial_state is not None:
            initial_state = list(initial_state)
            half = len(initial_state) // 2
            forward_state, backward_state = initial_state[:half], initial_state[half:]
        y = self.forward_layer(sequences, initial_state=forward_state, mask=mask,
                               training=training)
        y_reversed = self.backward_layer(sequences, initial_state=backward_state, mask=mask,
                                         training=training)
        return y, y_reversed

    def _merge(self, y, y_reversed):
        if self.merge_mode == "concat":
            return ops.concatenate([y, y_reversed], axis=-1)
        if self.merge_mode == "sum":
            return y + y_reversed
        if self.merge_mode == "mul":
            return y * y_reversed
        if self.merge_mode == "ave":
            return (y + y_reversed) / 2
        return [y, y_reversed]

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        output_shape = self.forward_layer.compute_output_shape(sequences_shape)
        state_shapes = ()
        if self.return_state:
            output_shape, state_shapes = output_shape[0], tuple(output_shape[1:])
        output_shape = tuple(output_shape)
        if self.merge_mode == "concat":
            output_shape = (*output_shape[:-1], output_shape[-1] * 2)
        outputs = [output_shape, output_shape] if self.merge_mode is None else [output_shape]
        if not self.return_state:
            return outputs if self.merge_mode is None else output_shape
        return (*outputs, *state_shapes, *state_shapes)

    def compute_mask(self, sequences, mask=None):
        mask = keras.tree.flatten(mask)[0] if mask is not None else None
        output_mask = mask if self.return_sequences else None
        masks = [output_mask, output_mask] if self.merge_mode is None else [output_mask]
        if self.return_state:
            states = len(self.forward_layer.compute_output_shape((None, None, 1))) - 1
            return masks + [None] * (2 * states)
        return masks if self.merge_mode is None else output_mask

    def reset_state(self):
        """Zeroes the states of both directions; an AttributeError unless stateful, as in
        Keras."""
        if not self.stateful:
            raise AttributeError(
                f"{validation.describe(self)}: only a stateful layer has states to reset; "
                f"this one wraps {self.forward_layer.name!r} with stateful=False."
            )
        self.forward_layer.reset_state()
        self.backward_layer.reset_state()

    def reset_states(self):
        """Keras's other name of `reset_state`."""
        self.reset_state()

    def get_config(self):
        return {
            **super().get_config(),
            "layer": keras.saving.serialize_keras_object(self.forward_layer),
            "merge_mode": self.merge_mode,
            "backward_layer": keras.saving.serialize_keras_object(self.backward_layer),
        }

    @classmethod
    def from_config(cls, config):
        config = copy.deepcopy(config)
        config["layer"] = keras.saving.deserialize_keras_object(config["layer"])
        if config.get("backward_layer") is not None:
            config["backward_layer"] = keras.saving.deserialize_keras_object(
                config["backward_layer"]
            )
        return cls(**config)


# -- convolutional LSTM ------------------------------------------------------------------------


def conv_by_taps(inputs, matrix, kernel_size, strides=None, padding="same", dilation_rate=None):
    """A channels-last convolution as one matrix product over the kernel's taps.

    `inputs` `(batch, *spatial, channels)`; `matrix` the kernel `(*kernel_size, channels,
    filters)` reshaped to `(taps * channels, filters)`. Each tap meets a strided slice of the
    padded input (`conv_arithmetic.tap_slices`); the slices side by side on the channel axis,
    `(batch, *output_spatial, taps * channels)` in the kernel's tap order, times `matrix` are
    the convolution. The gradients are slices, pads and one matrix product: no convolution
    op, forwards or backwards (see `CONV_RECURRENT_FORMULATIONS` for where that pays).
    """
    rank = len(kernel_size)
    strides = strides or (1,) * rank
    dilation_rate = dilation_rate or (1,) * rank
    inputs, axis_slices = padded_for_taps(inputs, kernel_size, padding, strides, dilation_rate,
                                          "channels_last")
    taps = [inputs[(slice(None), *window)] for window in itertools.product(*axis_slices)]
    columns = taps[0] if len(taps) == 1 else ops.concatenate(taps, axis=-1)
    output_spatial = tuple(columns.shape[1:-1])
    product = matmul(ops.reshape(columns, (-1, columns.shape[-1])), matrix)
    return ops.reshape(product, (-1, *output_spatial, matrix.shape[-1]))


@keras.saving.register_keras_serializable(package="keraslayers")
class ConvLSTMCell(keras.layers.Layer):
    """One step of a convolutional LSTM (Shi et al., 2015): an LSTM whose products are
    convolutions,

    `[i, f, g, o] = conv(x_t, kernel) + bias + conv_same(h_{t-1}, recurrent_kernel)`,
    `c_t = σ(f) * c_{t-1} + σ(i) * activation(g)`, `h_t = σ(o) * activation(c_t)`,

    with σ the `recurrent_activation`; the input convolution takes the cell's `strides`,
    `padding` and `dilation_rate`, the recurrent one is stride 1, "same". Keras's
    `ConvLSTMCell` (keras.src.layers.rnn.conv_lstm): weights `kernel` `(*kernel_size,
    channels, 4 * filters)`, `recurrent_kernel` `(*kernel_size, filters, 4 * filters)`,
    `bias` `(4 * filters,)`, gates i, f, c, o in column blocks; states `[h, c]`, each
    `(batch, *output_spatial, filters)` (channels first: `(batch, filters,
    *output_spatial)`). Dropout masks are drawn per gate and per entry of the step's input
    (and state), as Keras draws them.

    Args:
        rank: 1, 2 or 3, the number of spatial axes.
        filters: positive integer, the channels of the state and output.
        kernel_size, strides, dilation_rate: an integer or `rank` integers; strides above 1
            cannot be combined with dilation above 1.
        padding: "valid" or "same", of the input convolution.
        data_format: "channels_last" or "channels_first"; None for Keras's
            `image_data_format`.
        activation: of the candidate and the cell state (default tanh).
        recurrent_activation: of the gates (default sigmoid).
        use_bias: whether to add a learned bias.
        kernel_initializer, recurrent_initializer, bias_initializer: initializers.
        unit_forget_bias: start the forget gate's bias at 1 (the rest from
            `bias_initializer`).
        kernel_regularizer, recurrent_regularizer, bias_regularizer: optional regularizers.
        kernel_constraint, recurrent_constraint, bias_constraint: optional constraints.
        dropout: fraction of the inputs to drop in training, in [0, 1).
        recurrent_dropout: fraction of the previous state to drop in training, in [0, 1).
        seed: integer seed of the dropout masks.

    Input shape:
        `inputs` `(batch, *spatial, channels)` (or channels first), `states` `[h, c]`.

    Output shape:
        `(h_t, [h_t, c_t])`, each `(batch, *output_spatial, filters)` (or channels first).

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> cell = kl.ConvLSTMCell(2, 4, 3, padding="same")
        >>> h = np.zeros((1, 5, 5, 4), "float32")
        >>> tuple(cell(np.ones((1, 5, 5, 3), "float32"), [h, h])[0].shape)
        (1, 5, 5, 4)
    """

    def __init__(
        self,
        rank,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        data_format=None,
        dilation_rate=1,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        unit_forget_bias=True,
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(rank, bool) or rank not in (1, 2, 3):
            raise ValueError(
                f"{validation.describe(self)}: `rank` must be 1, 2 or 3 (spatial axes), "
                f"received rank={rank!r}."
            )
        self.rank = int(rank)
        self.filters = validation.positive_int(self, "filters", filters)
        self.kernel_size = normalize_tuple(self, kernel_size, self.rank, "kernel_size")
        self.strides = normalize_tuple(self, strides, self.rank, "strides")
        self.padding = normalize_padding(self, padding)
        self.data_format = normalize_data_format(self, data_format)
        self.dilation_rate = normalize_tuple(self, dilation_rate, self.rank, "dilation_rate")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(
                f"{validation.describe(self)}: specifying `strides > 1` is not compatible "
                f"with `dilation_rate > 1`, received strides={self.strides} and "
                f"dilation_rate={self.dilation_rate}."
            )
        self.activation = validation.activation(self, activation)
        self.recurrent_activation = validation.activation(
            self, recurrent_activation, "recurrent_activation"
        )
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.unit_forget_bias = bool(unit_forget_bias)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.recurrent_constraint = constraints.get(recurrent_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.dropout = validation.rate(self, "dropout", dropout)
        self.recurrent_dropout = validation.rate(self, "recurrent_dropout", recurrent_dropout)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.state_size = [self.filters, self.filters]
        self.state_shape = None  # per sample, once built: `_state_shape`
        self._channel_axis = -1 if self.data_format == "channels_last" else 1

    def _state_shape(self, step_input_shape):
        """A state's shape per sample for a step's input of `step_input_shape` (batch
        included): `(*output_spatial, filters)`, channels first `(filters,
        *output_spatial)`; None for an unknown size."""
        spatial = spatial_sizes(step_input_shape, self.data_format)
        windows = [effective_window(k, d)
                   for k, d in zip(self.kernel_size, self.dilation_rate, strict=True)]
        check_window_fits(self, spatial, windows, self.padding)
        output = tuple(
            conv_output_length(n, k, self.padding, s, d)
            for n, k, s, d in zip(spatial, self.kernel_size, self.strides, self.dilation_rate,
                                  strict=True)
        )
        if self.data_format == "channels_last":
            return (*output, self.filters)
        return (self.filters, *output)

    def build(self, input_shape):
        if len(input_shape) != self.rank + 2:
            raise ValueError(
                f"{validation.describe(self)}: expected a step input of rank "
                f"{self.rank + 2} (batch, {self.rank} spatial axes, channels), received "
                f"shape {tuple(input_shape)}."
            )
        spatial = spatial_sizes(input_shape, self.data_format)
        if None in spatial:
            raise ValueError(
                f"{validation.describe(self)}: the spatial sizes must be known (as in "
                f"Keras's ConvLSTM), received an input of shape {tuple(input_shape)}."
            )
        (channels,) = validation.known_sizes(
            self, input_shape, [self._channel_axis % len(input_shape)]
        )
        self.spatial_dims = tuple(spatial)
        self.input_dim = channels
        self.state_shape = self._state_shape(input_shape)
        width = 4 * self.filters
        self.kernel = self.add_weight(
            name="kernel",
            shape=(*self.kernel_size, channels, width),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.recurrent_kernel = self.add_weight(
            name="recurrent_kernel",
            shape=(*self.kernel_size, self.filters, width),
            initializer=self.recurrent_initializer,
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )
        self.bias = None
        if self.use_bias:
            initializer = self.bias_initializer
            if self.unit_forget_bias:
                initializer = forget_gate_at_one(self.filters, self.bias_initializer)
            self.bias = self.add_weight(
                name="bias",
                shape=(width,),
                initializer=initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )

    def _input_sample_shape(self):
        if self.data_format == "channels_last":
            return (*self.spatial_dims, self.input_dim)
        return (self.input_dim, *self.spatial_dims)

    def get_initial_state(self, batch_size=None):
        return [ops.zeros((batch_size, *self.state_shape), dtype=self.compute_dtype)
                for _ in range(2)]

    def dropout_masks(self, batch_size, training=False):
        """`(input_masks, recurrent_masks)`, each None or four masks (one per gate) of 0 and
        `1 / (1 - rate)` shaped like a step's input (or state), drawn once per sequence, in
        Keras's order."""
        if not training:
            return None, None

        def draw(rate, sample_shape):
            if rate == 0:
                return None
            ones = ops.ones((batch_size, *sample_shape), dtype=self.compute_dtype)
            return [keras.random.dropout(ones, rate, seed=self.seed_generator)
                    for _ in range(4)]

        return (draw(self.dropout, self._input_sample_shape()),
                draw(self.recurrent_dropout, self.state_shape))

    def _conv_taps(self):
        return (recurrent_formulation(self).conv_taps
                and self.data_format == "channels_last")

    def _convolve(self, x, kernel, strides, padding, dilation_rate):
        """`ops.conv` (None for strides or dilation: 1), or `conv_by_taps` where the kernel
        is its taps matrix (`_as_used`)."""
        if len(kernel.shape) == 2:
            return conv_by_taps(x, kernel, self.kernel_size, strides, padding, dilation_rate)
        return ops.conv(x, kernel, strides=strides or 1, padding=padding,
                        data_format=self.data_format, dilation_rate=dilation_rate or 1)

    def _per_gate(self, convolve, x, kernel, masks):
        """`convolve(x, kernel)`; with `masks` (one per gate), each gate's column block of
        the kernel sees its own dropped-out `x`."""
        if masks is None:
            return convolve(x, kernel)
        blocks = ops.split(kernel, 4, axis=-1)
        return ops.concatenate(
            [convolve(x * mask, block) for mask, block in zip(masks, blocks, strict=True)],
            axis=self._channel_axis,
        )

    def _as_used(self, kernel):
        """A kernel as the convolutions take it: its taps matrix `(taps * channels, width)`
        where the formulation convolves by taps (`conv_by_taps`)."""
        kernel = ops.convert_to_tensor(kernel)
        if self._conv_taps():
            return ops.reshape(kernel, (-1, kernel.shape[-1]))
        return kernel

    def project_inputs(self, inputs, masks=(None, None)):
        """The input convolution of every gate, plus the bias: `([time,] batch, *spatial,
        channels)` -> `([time,] batch, *output_spatial, 4 * filters)` (or channels first).
        Time-major sequences are convolved as one batch of `time * batch` inputs; dropout
        masks `(batch, ...)` hold for every step."""
        time_major = len(inputs.shape) == self.rank + 3
        batch = ops.shape(inputs)[1] if time_major else None

        def convolve(x, kernel):
            if time_major:  # (time, batch, ...) -> (time * batch, ...)
                x = ops.reshape(x, (-1, *x.shape[2:]))
            return self._convolve(x, kernel, self.strides, self.padding, self.dilation_rate)

        z = self._per_gate(convolve, inputs, self._as_used(self.kernel), masks[0])
        if self.bias is not None:
            bias = self.bias
            if self.data_format == "channels_first":
                bias = ops.reshape(bias, (-1,) + (1,) * self.rank)
            z = z + bias
        if time_major:
            z = ops.reshape(z, (-1, batch, *z.shape[1:]))  # (time, batch, ...)
        return z

    def step_weights(self):
        """`(recurrent_kernel,)` as the convolutions take it (see `_as_used`)."""
        return (self._as_used(self.recurrent_kernel),)

    def step(self, projected, states, weights, masks=(None, None), training=False,
             gate_slices=False):
        h, c = states
        (recurrent_kernel,) = weights

        def convolve(x, kernel):  # the recurrent convolution: stride 1, "same"
            return self._convolve(x, kernel, None, "same", None)

        z = projected + self._per_gate(convolve, h, recurrent_kernel, masks[1])
        if self.data_format == "channels_last":
            i, f, g, o = gate_blocks(z, 4, gate_slices)
        else:
            i, f, g, o = ops.split(z, 4, axis=1)
        sigma = self.recurrent_activation
        c = sigma(f) * c + sigma(i) * self.activation(g)
        h = sigma(o) * self.activation(c)
        return h, [h, c]

    def call(self, inputs, states, training=False):
        """One step on its own: `(output, [h, c])`; dropout masks are drawn anew on each
        call (inside an RNN, once per sequence)."""
        masks = self.dropout_masks(ops.shape(inputs)[0], training)
        output, new_states = self.step(self.project_inputs(inputs, masks), list(states),
                                       self.step_weights(), masks,
                                       gate_slices=recurrent_formulation(self).gate_slices)
        return output, new_states

    def compute_output_shape(self, inputs_shape, states_shape=None):
        shape = (inputs_shape[0], *self._state_shape(inputs_shape))
        return shape, [shape, shape]

    def get_config(self):
        return {
            **super().get_config(),
            "rank": self.rank,
            **{name: getattr(self, name) for name in (
                "filters", "kernel_size", "strides", "padding", "data_format",
                "dilation_rate")},
            "activation": activations.serialize(self.activation),
            "recurrent_activation": activations.serialize(self.recurrent_activation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "unit_forget_bias": self.unit_forget_bias,
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "recurrent_regularizer": regularizers.serialize(self.recurrent_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "recurrent_constraint": constraints.serialize(self.recurrent_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
        }


_CONV_LSTM_CELL_ARGUMENTS = (
    "filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate",
    "activation", "recurrent_activation", "use_bias", "kernel_initializer",
    "recurrent_initializer", "bias_initializer", "unit_forget_bias", "kernel_regularizer",
    "recurrent_regularizer", "bias_regularizer", "kernel_constraint", "recurrent_constraint",
    "bias_constraint", "dropout", "recurrent_dropout", "seed",
)


class _ConvLSTM(RNN):
    """`RNN(ConvLSTMCell(rank, ...))` in one layer (Keras's `ConvLSTM` base): the cell's
    arguments and the loop's, the config flat, the cell's arguments read through from it.
    Subclasses set `rank`."""

    rank = 2

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        data_format=None,
        dilation_rate=1,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        unit_forget_bias=True,
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        **kwargs,
    ):
        cell = ConvLSTMCell(
            self.rank, filters, kernel_size, strides=strides, padding=padding,
            data_format=data_format, dilation_rate=dilation_rate, activation=activation,
            recurrent_activation=recurrent_activation, use_bias=use_bias,
            kernel_initializer=kernel_initializer, recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer, unit_forget_bias=unit_forget_bias,
            kernel_regularizer=kernel_regularizer, recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint, bias_constraint=bias_constraint,
            dropout=dropout, recurrent_dropout=recurrent_dropout, seed=seed,
            name="conv_lstm_cell", dtype=kwargs.get("dtype"),
        )
        super().__init__(
            cell, return_sequences=return_sequences, return_state=return_state,
            go_backwards=go_backwards, stateful=stateful,
            activity_regularizer=activity_regularizer, **kwargs,
        )

    def _check_sequences(self, shape):
        if len(shape) != self.rank + 3:
            axes = "channels, *spatial" if self.cell.data_format == "channels_first" else (
                "*spatial, channels")
            raise ValueError(
                f"{validation.describe(self)}: expected sequences of rank {self.rank + 3} "
                f"(batch, time, {axes}; {self.rank} spatial axes), received an input of "
                f"shape {tuple(shape)}."
            )
        if self.unroll and shape[1] is None:
            raise ValueError(
                f"{validation.describe(self)}: unroll=True needs a known number of time "
                f"steps, received sequences of shape {tuple(shape)}."
            )

    def _build_cell(self, sequences_shape):
        if not self.cell.built:
            self.cell.build((sequences_shape[0], *sequences_shape[2:]))

    def _state_shapes(self, batch_size):
        return [(batch_size, *self.cell.state_shape)] * 2

    def _step_output_shape(self, batch_size):
        return (batch_size, *self.cell.state_shape)

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        self._check_sequences(sequences_shape)
        batch, steps = sequences_shape[0], sequences_shape[1]
        state = (batch, *self.cell._state_shape((batch, *sequences_shape[2:])))
        output = (batch, steps, *state[1:]) if self.return_sequences else state
        return (output, state, state) if self.return_state else output

    def get_config(self):
        config = super().get_config()
        del config["cell"]
        cell_config = self.cell.get_config()
        return {
            **config,
            **{name: cell_config[name] for name in _CONV_LSTM_CELL_ARGUMENTS},
            "activity_regularizer": regularizers.serialize(self.activity_regularizer),
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


for _name in _CONV_LSTM_CELL_ARGUMENTS:
    setattr(_ConvLSTM, _name, _reads_from_cell(_name))

_CONV_LSTM_DOC = """{rank}D convolutional LSTM over a sequence of {what}.

    `RNN(ConvLSTMCell({rank}, ...))` in one layer; drop-in for `keras.layers.ConvLSTM{rank}D`
    (same arguments in the same order; weights `kernel` `({kernel}, channels, 4 * filters)`,
    `recurrent_kernel` `({kernel}, filters, 4 * filters)`, `bias` `(4 * filters,)`; gates
    i, f, c, o). See `ConvLSTMCell` for the step. The loop is the `RNN` layer's, with masks,
    `initial_state`, `stateful`, `go_backwards` and `unroll` (through `**kwargs`, as in
    Keras); the input convolution of all steps runs before it, as one convolution of
    `time * batch` inputs.

    Args:
        filters: positive integer, the channels of the state and output.
        kernel_size, strides, padding, data_format, dilation_rate: the input convolution's
            (the recurrent one is stride 1, "same"); see `ConvLSTMCell`.
        activation, recurrent_activation, use_bias, kernel_initializer,
            recurrent_initializer, bias_initializer, unit_forget_bias, kernel_regularizer,
            recurrent_regularizer, bias_regularizer: the cell's.
        activity_regularizer: optional regularizer of the output.
        kernel_constraint, recurrent_constraint, bias_constraint, dropout,
            recurrent_dropout, seed: the cell's.
        return_sequences, return_state, go_backwards, stateful: the loop's, see `RNN`.

    Input shape:
        `(batch, time, {spatial}, channels)`, or `(batch, time, channels, {spatial})` with
        channels first; a mask `(batch, time)` skips steps.

    Output shape:
        `(batch, time, {output}, filters)` with `return_sequences`, else `(batch, {output},
        filters)` (channels first: filters before the spatial axes); with `return_state`,
        followed by the final `h` and `c`, each shaped like one step's output.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> layer = kl.ConvLSTM{rank}D(4, 3, padding="same", return_sequences=True)
        >>> tuple(layer(np.ones({example_input}, "float32")).shape)
        {example_output}
    """


@keras.saving.register_keras_serializable(package="keraslayers")
class ConvLSTM1D(_ConvLSTM):
    __doc__ = _CONV_LSTM_DOC.format(
        rank=1, what="1D feature maps", kernel="kernel_size", spatial="steps",
        output="new_steps", example_input=(2, 3, 8, 2), example_output=(2, 3, 8, 4))
    rank = 1


@keras.saving.register_keras_serializable(package="keraslayers")
class ConvLSTM2D(_ConvLSTM):
    __doc__ = _CONV_LSTM_DOC.format(
        rank=2, what="images", kernel="rows, cols", spatial="rows, cols",
        output="new_rows, new_cols", example_input=(2, 3, 6, 6, 2),
        example_output=(2, 3, 6, 6, 4))
    rank = 2


@keras.saving.register_keras_serializable(package="keraslayers")
class ConvLSTM3D(_ConvLSTM):
    __doc__ = _CONV_LSTM_DOC.format(
        rank=3, what="volumes", kernel="depth, rows, cols", spatial="depth, rows, cols",
        output="new_depth, new_rows, new_cols", example_input=(1, 2, 4, 4, 4, 2),
        example_output=(1, 2, 4, 4, 4, 4))
    rank = 3


# -- TimeDistributed ---------------------------------------------------------------------------


def _couples_the_batch(layer):
    """Whether a sample's output depends on the other samples of its batch in training
    (batch statistics): folding time into the batch would then change it."""
    return any(cls.__name__ == "BatchNormalization" for cls in type(layer).__mro__)


@keras.saving.register_keras_serializable(package="keraslayers")
class TimeDistributed(keras.layers.Layer):
    """Applies a layer to every time slice of a sequence: `y[:, t] = layer(x[:, t])`.

    The time axis is folded into the batch, `(batch, time, ...)` -> `(batch * time, ...)`,
    so the wrapped layer runs once on all slices rather than once per step; its result is
    unfolded back to `(batch, time, ...)`. A BatchNormalization (whose batch statistics
    would then span all steps) runs slice by slice, as in Keras. Drop-in for
    `keras.layers.TimeDistributed`: the weights are the wrapped layer's (one set for every
    step); a mask `(batch, time, ...)` is folded likewise and given to a layer whose `call`
    takes one, and passes through to the output.

    Args:
        layer: a `keras.layers.Layer`, built here on `(batch, ...)` slices.

    Input shape:
        `(batch, time, ...)`, at least rank 3.

    Output shape:
        `(batch, time, ...)` with the wrapped layer's output shape after the time axis.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> tuple(kl.TimeDistributed(kl.Dense(4))(np.ones((2, 3, 5), "float32")).shape)
        (2, 3, 4)
    """

    def __init__(self, layer, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(layer, keras.layers.Layer):
            raise ValueError(
                f"{validation.describe(self)}: `layer` must be a keras.layers.Layer "
                f"instance, received layer={layer!r}."
            )
        self.layer = layer
        self.supports_masking = True

    def _slice_shape(self, input_shape):
        if not isinstance(input_shape, (tuple, list)) or len(input_shape) < 3:
            raise ValueError(
                f"{validation.describe(self)}: expected an input of rank >= 3 (batch, time, "
                f"...), received an input of shape {input_shape}."
            )
        return (input_shape[0], *input_shape[2:])

    def build(self, input_shape):
        slice_shape = self._slice_shape(input_shape)
        if not self.layer.built:
            self.layer.build(slice_shape)

    def compute_output_shape(self, input_shape):
        output_shape = self.layer.compute_output_shape(self._slice_shape(input_shape))
        return (output_shape[0], input_shape[1], *output_shape[1:])

    def _check_mask(self, inputs, mask):
        shape = tuple(mask.shape)
        if len(shape) < 2 or not validation.shapes_agree(shape[:2], tuple(inputs.shape[:2])):
            raise ValueError(
                f"{validation.describe(self)}: the mask must start with the input's (batch, "
                f"time) = {tuple(inputs.shape[:2])}, received a mask of shape {shape} for "
                f"an input of shape {tuple(inputs.shape)}."
            )

    def call(self, inputs, training=None, mask=None):
        if mask is not None:
            self._check_mask(inputs, mask)
        kwargs = {}
        if self.layer._call_has_training_arg:
            kwargs["training"] = training
        takes_mask = self.layer._call_has_mask_arg and mask is not None
        if _couples_the_batch(self.layer) and inputs.shape[1] is not None:
            return self._slice_by_slice(inputs, mask if takes_mask else None, kwargs)
        batch, steps = ops.shape(inputs)[0], ops.shape(inputs)[1]
        # (batch, time, ...) -> (batch * time, ...)
        if takes_mask:
            kwargs["mask"] = ops.reshape(mask, (-1, *ops.shape(mask)[2:]))
        outputs = self.layer(ops.reshape(inputs, (-1, *ops.shape(inputs)[2:])), **kwargs)
        return ops.reshape(outputs, (batch, steps, *ops.shape(outputs)[1:]))

    def _slice_by_slice(self, inputs, mask, kwargs):
        outputs = []
        for step in range(inputs.shape[1]):
            if mask is not None:
                kwargs["mask"] = mask[:, step]
            outputs.append(self.layer(inputs[:, step], **kwargs))
        return ops.stack(outputs, axis=1)

    def get_config(self):
        return {**super().get_config(), "layer": keras.saving.serialize_keras_object(self.layer)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        layer = keras.saving.deserialize_keras_object(config.pop("layer"))
        return cls(layer, **config)
