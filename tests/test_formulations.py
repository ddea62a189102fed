"""The formulation tables: Keras's op where nobody measured, the measured formulations on CPU,
and every formulation, forced, equal to Keras's layer (outputs and gradients) on every backend."""

import keras
import numpy as np
import pytest

import keraslayers as kl
from keraslayers.layers import convolution, formulation, pooling, recurrent
from keraslayers.layers.formulation import KERAS
from tests.contract import BACKEND, check_keras_parity, random_inputs, to_numpy
from tests.test_convolution import PARITY_CASES, _case_id
from tests.test_pooling import (
    WINDOW_GRID,
    check_keras_torch_average_pooling_against_reference,
    has_uneven_same_padding,
    to_channels_first,
)
from tests.test_recurrent import MASK, SHAPE, parity

UNMEASURED = ("gpu", "tpu")


def test_device_kind_on_this_machine():
    assert formulation.device_kind() in formulation.DEVICE_KINDS
    with formulation.forcing_device_kind("tpu"):
        assert formulation.device_kind() == "tpu"
    with pytest.raises(ValueError, match="device kind"):
        with formulation.forcing_device_kind("npu"):
            pass


def test_forcing_restores_the_table():
    with formulation.forcing("depthwise", "taps"):
        with formulation.forcing("depthwise", KERAS):
            assert convolution.depthwise_formulation() == KERAS
        assert convolution.depthwise_formulation() == "taps"
    with formulation.forcing_device_kind("gpu"):
        assert convolution.depthwise_formulation() == KERAS


# ---------------------------------------------------------------------------------------------
# Convolutions.


def _convolution_choices():
    return (
        convolution.depthwise_formulation(),
        convolution.conv3d_formulation((3, 3, 3), "same"),
        convolution.conv_transpose_formulation(2, True),
        convolution.conv_transpose_formulation(2, False),
        convolution.conv_transpose_formulation(3, False),
    )


@pytest.mark.parametrize("kind", UNMEASURED)
def test_convolutions_unmeasured_devices_get_keras_ops(kind):
    with formulation.forcing_device_kind(kind):
        assert _convolution_choices() == (KERAS,) * 5


def test_convolutions_cpu_gets_the_measured_formulations():
    expected = {
        "jax": ("taps", "depth_folded", "phases", KERAS, "phases"),
        "torch": (KERAS, KERAS, "full_then_window", "full_then_window", "full_then_window"),
        "tensorflow": (KERAS,) * 5,
    }[BACKEND]
    with formulation.forcing_device_kind("cpu"):
        assert _convolution_choices() == expected
        if BACKEND == "jax":
            # Where folding lost to XLA's own 3D convolution.
            assert convolution.conv3d_formulation((1, 1, 1), "same") == KERAS
            assert convolution.conv3d_formulation((5, 5, 5), "valid") == KERAS
            assert convolution.conv3d_formulation((3, 3, 3), "valid") == "depth_folded"


CONVOLUTION_FORMULATIONS = [
    ("depthwise", ("DepthwiseConv2D", "SeparableConv2D"), ("taps", KERAS)),
    ("conv3d", ("Conv3D",), ("depth_folded", KERAS)),
    ("conv_transpose", ("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"),
     ("phases", "full_then_window", KERAS)),
]
FORCED_CONVOLUTION_CASES = [
    pytest.param(family, chosen, case, id=f"{family}-{chosen}-{_case_id(case)}")
    for family, names, formulations in CONVOLUTION_FORMULATIONS
    for chosen in formulations
    for case in PARITY_CASES
    if case[0] in names
]


@pytest.mark.grid("family", "chosen")
@pytest.mark.parametrize("family, chosen, case", FORCED_CONVOLUTION_CASES)
def test_forced_convolution_formulation_matches_keras(family, chosen, case):
    name, kwargs, input_shape = case
    if BACKEND == "tensorflow" and kwargs.get("data_format") == "channels_first":
        # Keras's TensorFlow layers get some channels_first bias gradients wrong (see
        # tests/test_convolution.py's `_check_parity_but_bias_gradient`): no bias here.
        kwargs = {**kwargs, "use_bias": False}
    x = random_inputs(input_shape)
    ours, theirs = getattr(kl, name)(**kwargs), getattr(keras.layers, name)(**kwargs)
    with formulation.forcing(family, chosen):
        # Training: the phases run at inference only outside 2D.
        check_keras_parity(ours, theirs, x, training=True)


# ---------------------------------------------------------------------------------------------
# Windowed pooling.


def _pooling_choices():
    return (
        pooling.pooling_formulation("max", (3, 3), (2, 2), True),
        pooling.pooling_formulation("max", (3, 3), (2, 2), False),
        pooling.pooling_formulation("average", (3, 3), (2, 2), True),
        pooling.pooling_formulation("average", (2, 2), (2, 2), True),
        pooling.pooling_formulation("max", (3, 3, 4), (1, 1, 1), True),
    )


@pytest.mark.parametrize("kind", UNMEASURED)
def test_pooling_unmeasured_devices_get_keras_ops(kind):
    with formulation.forcing_device_kind(kind):
        assert _pooling_choices() == (KERAS,) * 5


def test_pooling_cpu_gets_the_measured_formulations():
    expected = {
        # Slices in training, for average pooling only where windows overlap, and up to
        # 27 window offsets.
        "jax": ("window_slices", KERAS, "window_slices", KERAS, KERAS),
        "torch": ("torch_kernels",) * 5,
        "tensorflow": (KERAS,) * 5,
    }[BACKEND]
    with formulation.forcing_device_kind("cpu"):
        assert _pooling_choices() == expected


@pytest.mark.grid("chosen")
@pytest.mark.parametrize("chosen", ["window_slices", "torch_kernels", KERAS])
@pytest.mark.parametrize("name, shape, kwargs, padding, data_format", WINDOW_GRID)
def test_forced_pooling_formulation_matches_keras(chosen, name, shape, kwargs, padding,
                                                  data_format):
    x = random_inputs(shape)
    config = {**kwargs, "padding": padding, "data_format": data_format}
    ours, theirs = getattr(kl, name)(**config), getattr(keras.layers, name)(**config)
    if data_format == "channels_first":
        x = to_channels_first(x)
    with formulation.forcing("pooling", chosen):
        if (BACKEND == "torch" and name.startswith("Average")
                and has_uneven_same_padding(ours, shape[1:-1])):
            check_keras_torch_average_pooling_against_reference(ours, theirs, x)
        else:
            check_keras_parity(ours, theirs, x, training=True)


# ---------------------------------------------------------------------------------------------
# Recurrent loops.


@pytest.mark.parametrize("kind", UNMEASURED)
def test_recurrent_unmeasured_devices_run_keras_way(kind):
    with formulation.forcing_device_kind(kind):
        assert recurrent.recurrent_formulation() == recurrent.RECURRENT_PLANS[KERAS]
        together = kl.Bidirectional(kl.LSTM(8))
        together(random_inputs(SHAPE))
        assert not together._runs_together(None, None, training=False)


def test_recurrent_cpu_gets_the_measured_formulation():
    expected = {"jax": KERAS, "torch": "ahead_eager", "tensorflow": "ahead_unrolled"}[BACKEND]
    with formulation.forcing_device_kind("cpu"):
        assert recurrent.recurrent_formulation() == recurrent.RECURRENT_PLANS[expected]


@pytest.mark.parametrize("kind", UNMEASURED)
def test_conv_recurrent_unmeasured_devices_run_keras_way(kind):
    with formulation.forcing_device_kind(kind):
        for rank in (1, 2, 3):
            cell = kl.ConvLSTMCell(rank, 2, 3)
            assert recurrent.recurrent_formulation(cell) == recurrent.RECURRENT_PLANS[KERAS]


def test_conv_recurrent_cpu_gets_the_measured_formulation():
    expected = {"jax": ("ahead_unrolled", "ahead_unrolled_taps"),
                "torch": ("ahead_unrolled", "ahead_unrolled"),
                "tensorflow": ("ahead_unrolled", "ahead_unrolled")}[BACKEND]
    with formulation.forcing_device_kind("cpu"):
        for rank in (1, 2, 3):
            chosen = recurrent.recurrent_formulation(kl.ConvLSTMCell(rank, 2, 3))
            assert chosen == recurrent.CONV_RECURRENT_PLANS[expected[rank > 1]], rank


RECURRENT_CASES = {
    "lstm_mask": (lambda layers: layers.LSTM(8, return_sequences=True), MASK),
    "gru_v1_backwards": (lambda layers: layers.GRU(8, reset_after=False, go_backwards=True,
                                                   return_state=True), None),
    "gru_mask": (lambda layers: layers.GRU(8, return_sequences=True), MASK),
    "simple_rnn": (lambda layers: layers.SimpleRNN(8, return_sequences=True), None),
    "stacked": (lambda layers: layers.RNN([layers.GRUCell(8), layers.LSTMCell(8)],
                                          return_state=True), None),
    "bidirectional": (lambda layers: layers.Bidirectional(
        layers.LSTM(8, return_sequences=True)), None),
}


@pytest.mark.grid("chosen")
@pytest.mark.parametrize("chosen", sorted(recurrent.RECURRENT_PLANS))
@pytest.mark.parametrize("case", sorted(RECURRENT_CASES))
def test_forced_recurrent_formulation_matches_keras(chosen, case):
    make, mask = RECURRENT_CASES[case]
    with formulation.forcing("recurrent", chosen):
        parity(make(kl), make(keras.layers), mask=mask, tolerance={"rtol": 1e-4, "atol": 1e-4})


@pytest.mark.parametrize("chosen", sorted(recurrent.RECURRENT_PLANS))
def test_forced_recurrent_formulation_cell_on_one_step_matches_keras(chosen):
    x, h, c = (random_inputs(shape, seed=seed) for shape, seed in
               (((2, 4), 1), ((2, 8), 2), ((2, 8), 3)))
    ours, theirs = kl.LSTMCell(8), keras.layers.LSTMCell(8)
    theirs(x, [h, c])
    ours(x, [h, c])
    ours.set_weights(theirs.get_weights())
    with formulation.forcing("recurrent", chosen):
        for a, b in zip(keras.tree.flatten(ours(x, [h, c])),
                        keras.tree.flatten(theirs(x, [h, c])), strict=True):
            np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-5, atol=1e-5)
