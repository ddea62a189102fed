"""Adaptive pooling: contract, parity with Keras, a numpy reference, configs, errors."""

import inspect

import keras
import numpy as np
import pytest

from keraslayers.layers import pooling
from keraslayers.layers.pooling import adaptive_windows
from tests.contract import (
    BACKEND,
    check_keras_parity,
    check_layer_contract,
    random_inputs,
    to_numpy,
)

NAMES = [f"Adaptive{mode}Pooling{rank}D" for mode in ("Average", "Max") for rank in (1, 2, 3)]


def ours(name):
    return getattr(pooling, name)


def reference(x, output_size, reduction, data_format):
    """Adaptive pooling in numpy, one box at a time, on a channels-last copy."""
    if data_format == "channels_first":
        x = np.moveaxis(x, 1, -1)
    spatial = x.shape[1:-1]
    windows = [adaptive_windows(length, size)
               for length, size in zip(spatial, output_size, strict=True)]
    out = np.empty((x.shape[0], *output_size, x.shape[-1]), x.dtype)
    reduce = np.max if reduction == "max" else np.mean
    for index in np.ndindex(*output_size):
        box = tuple(slice(*windows[a][i]) for a, i in enumerate(index))
        out[(slice(None), *index)] = reduce(x[(slice(None), *box)],
                                            axis=tuple(range(1, len(spatial) + 1)))
    if data_format == "channels_first":
        out = np.moveaxis(out, -1, 1)
    return out


def test_windows_are_kerass():
    # 5 pooled to 3: [0, 2), [1, 4), [3, 5); 6 to 7 (more windows than positions) repeats.
    assert adaptive_windows(5, 3) == [(0, 2), (1, 4), (3, 5)]
    assert adaptive_windows(6, 7) == [(0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 6)]
    assert adaptive_windows(56, 7) == [(8 * i, 8 * i + 8) for i in range(7)]


@pytest.mark.parametrize("name, output_size, input_shape, output_shape", [
    ("AdaptiveAveragePooling1D", 3, (2, 7, 3), (2, 3, 3)),
    ("AdaptiveMaxPooling1D", (4,), (2, 8, 2), (2, 4, 2)),
    ("AdaptiveAveragePooling2D", (2, 3), (1, 4, 5, 2), (1, 2, 3, 2)),
    ("AdaptiveMaxPooling2D", 2, (2, 5, 4, 3), (2, 2, 2, 3)),
    ("AdaptiveAveragePooling3D", (2, 1, 3), (1, 4, 3, 5, 2), (1, 2, 1, 3, 2)),
    ("AdaptiveMaxPooling3D", 2, (1, 3, 4, 5, 1), (1, 2, 2, 2, 1)),
])
def test_adaptive_pooling_contract(name, output_size, input_shape, output_shape):
    check_layer_contract(lambda: ours(name)(output_size), input_shape,
                         expected_output_shape=output_shape)


# Per rank: even windows (a multiple), uneven ones, and more windows than positions on one axis
# next to even windows on another.
CASES = {
    1: [((2, 8, 3), 4), ((2, 7, 3), 3), ((1, 3, 2), 5)],
    2: [((2, 6, 8, 2), (3, 4)), ((2, 5, 8, 2), (3, 4)), ((1, 4, 6, 2), (7, 3))],
    3: [((1, 4, 6, 2, 2), (2, 3, 2)), ((1, 5, 4, 6, 2), (2, 4, 4)), ((1, 3, 4, 2, 1), (4, 2, 3))],
}
GRID = [
    pytest.param(f"Adaptive{mode}Pooling{rank}D", shape, size, data_format,
                 id=f"{mode}{rank}D-{i}-{data_format}")
    for mode in ("Average", "Max")
    for rank, cases in CASES.items()
    for i, (shape, size) in enumerate(cases)
    for data_format in ("channels_last", "channels_first")
]


def _more_windows_than_positions(shape, size, data_format):
    first = 1 if data_format == "channels_last" else 2
    sizes = (size,) * (len(shape) - 2) if isinstance(size, int) else size
    return any(n > length for n, length in zip(sizes, shape[first:first + len(sizes)],
                                               strict=True))


@pytest.mark.grid("name")
@pytest.mark.parametrize("name, shape, size, data_format", GRID)
def test_matches_reference_and_keras(name, shape, size, data_format):
    if data_format == "channels_first":
        shape = (shape[0], shape[-1], *shape[1:-1])
    x = random_inputs(shape, seed=len(shape))
    layer = ours(name)(size, data_format=data_format)
    sizes = layer.output_size
    reduction = "max" if "Max" in name else "average"
    np.testing.assert_allclose(to_numpy(layer(x)), reference(x, sizes, reduction, data_format),
                               rtol=1e-5, atol=1e-6)
    theirs = getattr(keras.layers, name)(size, data_format=data_format)
    if BACKEND == "jax" and _more_windows_than_positions(shape, size, data_format):
        # Keras's JAX ops can gather past the end of their pooled copies here and return NaN
        # (2D, 6 -> 7); the reference above is what TensorFlow's and torch's Keras return.
        if np.isnan(to_numpy(theirs(x))).any():
            return
    check_keras_parity(layer, theirs, x)


@pytest.mark.parametrize("name", NAMES)
def test_signature_and_config_are_kerass(name):
    def described(cls):
        return [(p.name, p.kind, p.default) for p in
                inspect.signature(cls.__init__).parameters.values()]

    theirs_cls = getattr(keras.layers, name)
    assert described(ours(name)) == described(theirs_cls)
    rank = int(name[-2])
    size = [3] * rank
    ours_layer = ours(name)(size, data_format="channels_first", name="pool")
    theirs_layer = theirs_cls(size, data_format="channels_first", name="pool")
    assert ours_layer.get_config() == theirs_layer.get_config()
    assert ours_layer.output_size == (3,) * rank
    rebuilt = ours(name).from_config(theirs_layer.get_config())
    assert rebuilt.get_config() == theirs_layer.get_config()
    assert not ours_layer.built and not theirs_layer.built  # as Keras's: built at first call
    assert keras.saving.get_registered_name(ours(name)) == f"keraslayers>{name}"


@pytest.mark.parametrize("name", NAMES)
def test_bad_arguments_raise_kerass_exceptions(name):
    rank = int(name[-2])
    theirs_cls = getattr(keras.layers, name)
    for bad in (2.0, "3", None, [2] * (rank + 1)):
        with pytest.raises(Exception) as expected:
            theirs_cls(bad)
        with pytest.raises(expected.type, match=name + ".*output_size.*" + "received"):
            ours(name)(bad)
    with pytest.raises(ValueError, match="data_format.*'channels_middle'"):
        ours(name)(2, data_format="channels_middle")
    with pytest.raises(ValueError):
        theirs_cls(2, data_format="channels_middle")
    with pytest.raises(ValueError, match="data_format.*'Channels_Last'"):
        ours(name)(2, data_format="Channels_Last")  # Keras's adaptive layers: no lower-casing
    layer = ours(name)(2)
    with pytest.raises(ValueError, match=f"rank {rank + 2}.*rank {rank + 3}"):
        layer(np.zeros((1,) * (rank + 2) + (2,), "float32"))


def test_unknown_spatial_sizes_in_a_model():
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, pooling.AdaptiveMaxPooling2D((2, 3))(inputs))
    assert model.output_shape == (None, 2, 3, 3)
    x = random_inputs((2, 5, 7, 3))
    np.testing.assert_allclose(to_numpy(model(x)), reference(x, (2, 3), "max", "channels_last"))


@pytest.mark.parametrize("chosen", ["keras", "torch_kernels", "pooling_ops"])
@pytest.mark.parametrize("name, shape, size, data_format", [
    ("AdaptiveMaxPooling1D", (2, 8, 3), 4, "channels_last"),
    ("AdaptiveAveragePooling2D", (2, 6, 8, 2), (3, 2), "channels_last"),
    ("AdaptiveMaxPooling3D", (1, 2, 4, 6, 4), (2, 2, 3), "channels_first"),
])
def test_every_formulation_matches_the_reference(chosen, name, shape, size, data_format):
    # Every formulation on every backend: the table picks one per backend and device.
    from keraslayers.layers import formulation

    x = random_inputs(shape)
    with formulation.forcing("adaptive_pooling", chosen):
        layer = ours(name)(size, data_format=data_format)
        y = to_numpy(layer(x))
    reduction = "max" if "Max" in name else "average"
    np.testing.assert_allclose(y, reference(x, layer.output_size, reduction, data_format),
                               rtol=1e-5, atol=1e-6)
