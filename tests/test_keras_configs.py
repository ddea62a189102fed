"""Every layer of issue 15 loads the config its Keras counterpart saves (`from_config`), and
saves it back with the same values, so `.keras` files written with Keras's layers can name
ours instead."""

import keras
import numpy as np
import pytest

import keraslayers as kl
from tests.contract import check_keras_parity, random_inputs

# (name, Keras constructor arguments away from the defaults, input shape)
CASES = [
    ("Dense", {"units": 3, "activation": "tanh", "use_bias": False}, (2, 4)),
    ("Activation", {"activation": "gelu"}, (2, 4)),
    ("ReLU", {"max_value": 2.0, "negative_slope": 0.1, "threshold": 0.5}, (2, 4)),
    ("Conv1D", {"filters": 2, "kernel_size": 3, "padding": "causal"}, (2, 6, 3)),
    ("Conv2D", {"filters": 2, "kernel_size": 3, "strides": 2}, (2, 7, 7, 3)),
    ("Conv3D", {"filters": 2, "kernel_size": 2, "dilation_rate": 2}, (1, 4, 4, 4, 2)),
    ("DepthwiseConv2D", {"kernel_size": 3, "depth_multiplier": 2}, (2, 5, 5, 3)),
    ("SeparableConv2D", {"filters": 2, "kernel_size": 3, "padding": "same"}, (2, 5, 5, 3)),
    ("Conv1DTranspose", {"filters": 2, "kernel_size": 3, "strides": 2}, (2, 4, 3)),
    ("Conv2DTranspose", {"filters": 2, "kernel_size": 3, "output_padding": None}, (2, 4, 4, 3)),
    ("Conv3DTranspose", {"filters": 2, "kernel_size": 2, "strides": 2}, (1, 2, 2, 2, 3)),
    ("MaxPooling1D", {"pool_size": 3, "strides": 1, "padding": "same"}, (2, 6, 3)),
    ("MaxPooling2D", {"pool_size": (2, 3)}, (2, 6, 6, 3)),
    ("MaxPooling3D", {"padding": "same"}, (1, 3, 4, 5, 2)),
    ("AveragePooling1D", {"pool_size": 2, "strides": 1}, (2, 6, 3)),
    ("AveragePooling2D", {"pool_size": 2, "padding": "valid"}, (2, 6, 6, 3)),
    ("AveragePooling3D", {"pool_size": (1, 2, 2)}, (1, 2, 4, 4, 2)),
    ("GlobalMaxPooling1D", {"keepdims": True}, (2, 6, 3)),
    ("GlobalMaxPooling2D", {}, (2, 6, 6, 3)),
    ("GlobalMaxPooling3D", {"keepdims": True}, (1, 2, 3, 4, 2)),
    ("GlobalAveragePooling1D", {}, (2, 6, 3)),
    ("GlobalAveragePooling2D", {"keepdims": True}, (2, 6, 6, 3)),
    ("GlobalAveragePooling3D", {}, (1, 2, 3, 4, 2)),
    ("LayerNormalization", {"axis": [-2, -1], "epsilon": 1e-5, "center": False}, (2, 3, 4)),
    ("BatchNormalization", {"momentum": 0.9, "scale": False, "renorm": True}, (4, 3)),
    ("RMSNormalization", {"epsilon": 1e-5}, (2, 4)),
    ("Dropout", {"rate": 0.3, "noise_shape": (None, 1), "seed": 3}, (4, 5)),
]


@pytest.mark.grid
@pytest.mark.parametrize("name, kwargs, input_shape", CASES, ids=[c[0] for c in CASES])
def test_loads_the_config_keras_saves(name, kwargs, input_shape):
    theirs = getattr(keras.layers, name)(**kwargs)
    config = theirs.get_config()
    ours = getattr(kl, name).from_config(config)
    ours_config = ours.get_config()
    for key, value in config.items():
        if key in ("axis",):  # Keras sorts `axis` into a list at build, ours keeps it as given
            continue
        assert _comparable(ours_config[key]) == _comparable(value), key
    x = random_inputs(input_shape)
    check_keras_parity(ours, theirs, x)


def _comparable(value):
    """Tuples and lists alike, as a `.keras` file's JSON makes them."""
    if isinstance(value, (list, tuple)):
        return [_comparable(v) for v in value]
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items()}
    if isinstance(value, (np.floating, float)):
        return float(value)
    return value
