"""Windowed and global pooling: contract, parity with Keras, masks, unknown sizes, errors."""

import itertools
import re

import keras
import numpy as np
import pytest

import keraslayers as kl
from keraslayers.layers.conv_arithmetic import same_padding
from tests.contract import (
    BACKEND,
    TOLERANCE,
    check_keras_parity,
    check_layer_contract,
    outputs_and_gradients,
    random_inputs,
    to_numpy,
)

FIRST = {"data_format": "channels_first"}


def to_channels_first(x):
    """`(batch, *spatial, channels)` -> `(batch, channels, *spatial)`."""
    return np.moveaxis(x, -1, 1)


def to_channels_last(x):
    return np.moveaxis(x, 1, -1)


# --- windowed pooling -------------------------------------------------------------------------


# tests/test_catalog.py runs the contract on every class's catalogue example (without mixed
# precision); these add mixed precision and the paths the examples leave out.
@pytest.mark.parametrize(
    "name, kwargs, input_shape, output_shape",
    [
        ("MaxPooling2D", {"pool_size": (2, 3), "strides": (2, 1), **FIRST}, (1, 2, 5, 4),
         (1, 2, 2, 2)),
        ("AveragePooling1D", {"pool_size": 3, "strides": 2, "padding": "same"}, (2, 6, 3),
         (2, 3, 3)),
        ("AveragePooling3D", {"pool_size": (2, 2, 3), "padding": "same", **FIRST},
         (1, 2, 3, 3, 4), (1, 2, 2, 2, 2)),
    ],
)
def test_pooling_contract(name, kwargs, input_shape, output_shape):
    check_layer_contract(
        lambda: getattr(kl, name)(**kwargs), input_shape, expected_output_shape=output_shape
    )


# Per rank, channels_last shapes: a batch of two with strides = pool_size (strides=None), and
# a batch of one with strides != pool_size. Sizes are odd or not multiples of the stride, so
# "same" padding splits several windows unevenly (the extra zero after). Each case runs with
# both paddings, one per data format, so that every padding meets both formats (pairwise
# rather than the full product: JAX compiles every new shape).
WINDOW_CASES = {
    1: [((2, 7, 3), {"pool_size": 3}), ((1, 7, 2), {"pool_size": 4, "strides": 1})],
    2: [((2, 5, 7, 2), {"pool_size": (2, 3)}),
        ((1, 5, 6, 2), {"pool_size": 3, "strides": (2, 1)})],
    3: [((2, 3, 5, 3, 1), {"pool_size": 2}),
        ((1, 3, 4, 5, 2), {"pool_size": (3, 2, 2), "strides": (1, 2, 3)})],
}
PAIRINGS = [[("valid", "channels_last"), ("same", "channels_first")],
            [("same", "channels_last"), ("valid", "channels_first")]]
WINDOW_GRID = [
    pytest.param(f"{mode}Pooling{rank}D", shape, kwargs, padding, data_format,
                 id=f"{mode}{rank}D-{i}-{padding}-{data_format}")
    for mode in ("Max", "Average")
    for rank, cases in WINDOW_CASES.items()
    for i, (shape, kwargs) in enumerate(cases)
    for padding, data_format in PAIRINGS[i]
]


def average_pool_reference(x, pool_size, strides, padding, cotangent):
    """NumPy average pooling over the real entries of each window (channels_last), and the
    gradient of `sum(outputs * cotangent)` with respect to `x`."""
    spatial = x.shape[1:-1]
    starts = []  # per axis: where each window starts, negative inside the "same" padding
    for n, k, s in zip(spatial, pool_size, strides, strict=True):
        before = 0 if padding == "valid" else same_padding(n, k, s)[0]
        count = (n - k) // s + 1 if padding == "valid" else -(-n // s)
        starts.append([i * s - before for i in range(count)])
    outputs = np.zeros((x.shape[0], *map(len, starts), x.shape[-1]))
    gradient = np.zeros(x.shape)
    for index in itertools.product(*(range(len(axis_starts)) for axis_starts in starts)):
        window = (slice(None),) + tuple(
            slice(max(axis_starts[i], 0), min(axis_starts[i] + k, n))
            for axis_starts, i, k, n in zip(starts, index, pool_size, spatial, strict=True)
        ) + (slice(None),)
        entries = x[window]
        count = np.prod(entries.shape[1:-1])
        outputs[(slice(None), *index)] = entries.sum(axis=tuple(range(1, x.ndim - 1))) / count
        c = cotangent[(slice(None), *index)]  # (batch, channels)
        gradient[window] += c.reshape(c.shape[0], *(1,) * len(spatial), c.shape[1]) / count
    return outputs, gradient


def has_uneven_same_padding(layer, spatial_shape) -> bool:
    if layer.padding != "same":
        return False
    splits = map(same_padding, spatial_shape, layer.pool_size, layer.strides)
    return any(before != after for before, after in splits)


@pytest.mark.parametrize("name, shape, kwargs, padding, data_format", WINDOW_GRID)
@pytest.mark.parametrize("training", [False, True])
def test_pooling_matches_keras(name, shape, kwargs, padding, data_format, training):
    """In training as at inference: on JAX, training pools over strided slices instead."""
    x = random_inputs(shape)
    config = {**kwargs, "padding": padding, "data_format": data_format}
    ours, theirs = getattr(kl, name)(**config), getattr(keras.layers, name)(**config)
    if data_format == "channels_first":
        x = to_channels_first(x)
    if (BACKEND == "torch" and name.startswith("Average")
            and has_uneven_same_padding(ours, shape[1:-1])):
        check_keras_torch_average_pooling_against_reference(ours, theirs, x)
    else:
        check_keras_parity(ours, theirs, x, training=training)


def check_keras_torch_average_pooling_against_reference(ours, theirs, x):
    """Keras's torch `average_pool` pads an uneven "same" split by repeating the edge entries
    (`_apply_same_padding(..., mode="replicate")` in keras/src/backend/torch/nn.py), so they
    count in the average and Keras's torch result differs from its TensorFlow and JAX ones.
    Ours must give the TensorFlow/JAX result: check it against NumPy, outputs and gradient."""
    channels_first = ours.data_format == "channels_first"
    y, dx = outputs_and_gradients(ours, x)
    cotangent = random_inputs(y.shape, seed=7)  # the one outputs_and_gradients uses
    if channels_first:
        x, cotangent = to_channels_last(x), to_channels_last(cotangent)
    expected_y, expected_dx = average_pool_reference(
        x, ours.pool_size, ours.strides, ours.padding, cotangent
    )
    if channels_first:
        expected_y, expected_dx = to_channels_first(expected_y), to_channels_first(expected_dx)
    np.testing.assert_allclose(y, expected_y, **TOLERANCE)
    np.testing.assert_allclose(dx, expected_dx, **TOLERANCE)


@pytest.mark.skipif(BACKEND != "torch", reason="the repeated edges are torch's only")
def test_keras_torch_average_pooling_still_counts_repeated_edges():
    """Why the torch cases above compare with NumPy: fails once Keras is fixed."""
    x = random_inputs((1, 7, 2))
    ours = kl.AveragePooling1D(4, strides=1, padding="same")  # pads 1 before, 2 after
    theirs = keras.layers.AveragePooling1D(4, strides=1, padding="same")
    expected, _ = average_pool_reference(x, (4,), (1,), "same", np.zeros((1, 7, 2)))
    np.testing.assert_allclose(to_numpy(ours(x)), expected, **TOLERANCE)
    assert not np.allclose(to_numpy(theirs(x)), expected, **TOLERANCE), (
        "Keras's torch average pooling now excludes the padding: compare with it again"
    )


@pytest.mark.parametrize(
    "kwargs", [{"pool_size": 2}, {"pool_size": 3, "strides": 2, "padding": "same", **FIRST}]
)
@pytest.mark.parametrize("training", [False, True])
def test_max_pooling_ties_and_nan_like_keras(kwargs, training):
    """Whatever the formulation (on JAX in training a maximum of strided slices): with ties the
    gradient goes to one entry per window, the one Keras's pooling picks; a NaN in a window
    wins."""
    x = np.round(random_inputs((2, 7, 6, 3)))  # integers in a few values: many ties
    if kwargs.get("data_format"):
        x = to_channels_first(x)
    ours, theirs = kl.MaxPooling2D(**kwargs), keras.layers.MaxPooling2D(**kwargs)
    check_keras_parity(ours, theirs, x, training=training)
    x[0, 1, 1, 1] = np.nan
    np.testing.assert_array_equal(np.isnan(to_numpy(ours(x, training=training))),
                                  np.isnan(to_numpy(theirs(x, training=training))))


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
@pytest.mark.parametrize("name", ["MaxPooling3D", "AveragePooling3D"])
def test_3d_pooling_runs_in_16_bit_policies(name, policy):
    """TensorFlow's CPU lacks float16 3D pooling kernels, torch's 16-bit avg_pool3d."""
    x = random_inputs((1, 3, 4, 3, 2))
    y = getattr(kl, name)(2, padding="same", dtype=policy)(x)
    assert keras.backend.standardize_dtype(y.dtype) == policy.removeprefix("mixed_")
    expected = to_numpy(getattr(kl, name)(2, padding="same")(x))
    np.testing.assert_allclose(to_numpy(keras.ops.cast(y, "float32")), expected, rtol=1e-2,
                               atol=1e-2)


@pytest.mark.parametrize("name", ["MaxPooling2D", "AveragePooling2D"])
def test_pooling_takes_unknown_sizes(name):
    layer = getattr(kl, name)(3, strides=2, padding="same")
    inputs = keras.Input((None, None, 3))
    assert tuple(layer(inputs).shape) == (None, None, None, 3)
    assert layer.compute_output_shape((None, 7, None, 3)) == (None, 4, None, 3)
    model = keras.Model(inputs, layer(inputs))
    x = random_inputs((1, 5, 6, 3))
    np.testing.assert_allclose(to_numpy(model(x)), to_numpy(layer(x)), **TOLERANCE)
    assert model(x).shape == (1, 3, 3, 3)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="only TensorFlow traces unknown sizes")
def test_average_pooling_in_a_graph_with_unknown_sizes():
    import tensorflow as tf

    layer = kl.AveragePooling2D(3, strides=2, padding="same")
    graph = tf.function(layer, input_signature=[tf.TensorSpec((None, None, None, 2))])
    x = random_inputs((1, 6, 5, 2))
    np.testing.assert_allclose(to_numpy(graph(x)), to_numpy(layer(x)), **TOLERANCE)


def test_pooling_config_matches_keras():
    ours = kl.MaxPooling2D((2, 3), padding="SAME")
    theirs = keras.layers.MaxPooling2D((2, 3), padding="same")
    for key in ("pool_size", "strides", "padding", "data_format"):
        assert ours.get_config()[key] == theirs.get_config()[key], key
    clone = kl.AveragePooling1D.from_config(keras.layers.AveragePooling1D(3, 2).get_config())
    assert (clone.pool_size, clone.strides, clone.padding) == ((3,), (2,), "valid")


def test_pooling_drops_a_mask_like_keras():
    x = random_inputs((2, 5, 3))
    x[0, 3:] = 0
    inputs = keras.Input((5, 3))
    masked = keras.layers.Masking()(inputs)
    for layer in (kl.MaxPooling1D(2), kl.AveragePooling1D(2), kl.GlobalMaxPooling1D()):
        with pytest.warns(UserWarning, match="does not support masking"):
            outputs = layer(masked)
        assert getattr(outputs, "_keras_mask", None) is None


# --- global pooling ---------------------------------------------------------------------------


# Each class once; across the six, both data formats meet both keepdims values.
GLOBAL_GRID = [
    ("GlobalMaxPooling1D", (2, 5, 3), "channels_last", False),
    ("GlobalMaxPooling2D", (2, 3, 5, 2), "channels_first", True),
    ("GlobalMaxPooling3D", (1, 3, 2, 3, 2), "channels_last", True),
    ("GlobalAveragePooling1D", (1, 5, 3), "channels_first", False),
    ("GlobalAveragePooling2D", (2, 3, 5, 2), "channels_last", True),
    ("GlobalAveragePooling3D", (2, 3, 2, 3, 2), "channels_first", False),
]


def test_global_pooling_contract():
    check_layer_contract(
        lambda: kl.GlobalMaxPooling3D(keepdims=True, **FIRST), (1, 2, 3, 2, 3),
        expected_output_shape=(1, 2, 1, 1, 1),
    )


@pytest.mark.parametrize("name, shape, data_format, keepdims", GLOBAL_GRID)
def test_global_pooling_matches_keras(name, shape, data_format, keepdims):
    x = random_inputs(shape)
    if data_format == "channels_first":
        x = to_channels_first(x)
    config = {"data_format": data_format, "keepdims": keepdims}
    check_keras_parity(getattr(kl, name)(**config), getattr(keras.layers, name)(**config), x)


def masked_average(layer_class):
    """`Masking` then global average pooling: zero steps are left out of the mean."""
    return keras.Sequential(
        [keras.Input((5, 3)), keras.layers.Masking(), layer_class(keepdims=True)]
    )


def test_global_average_pooling_1d_leaves_out_masked_steps_like_keras():
    x = random_inputs((3, 5, 3))
    x[0, 2:] = 0
    x[1, :1] = 0
    check_keras_parity(
        masked_average(kl.GlobalAveragePooling1D),
        masked_average(keras.layers.GlobalAveragePooling1D), x,
    )
    mask = np.array([[True, True, False, False, False], [False, True, True, True, True]])
    expected = np.stack([x[0, :2].mean(axis=0), x[1, 1:].mean(axis=0)])
    y = kl.GlobalAveragePooling1D()(x[:2], mask=mask)
    np.testing.assert_allclose(to_numpy(y), expected, **TOLERANCE)
    first = kl.GlobalAveragePooling1D(**FIRST)(to_channels_first(x[:2]), mask=mask)
    np.testing.assert_allclose(to_numpy(first), expected, **TOLERANCE)


def test_global_average_pooling_1d_of_a_fully_masked_sample_is_nan_like_keras():
    x = random_inputs((2, 4, 3))
    mask = np.array([[False] * 4, [True] * 4])
    ours = to_numpy(kl.GlobalAveragePooling1D()(x, mask=mask))
    theirs = to_numpy(keras.layers.GlobalAveragePooling1D()(x, mask=mask))
    np.testing.assert_allclose(ours, theirs, **TOLERANCE)  # NaNs compare equal
    assert np.isnan(ours[0]).all() and not np.isnan(ours[1]).any()


def test_global_average_pooling_1d_consumes_the_mask():
    embedded = keras.layers.Embedding(4, 2, mask_zero=True)(keras.Input((3,), dtype="int32"))
    assert getattr(kl.GlobalAveragePooling1D()(embedded), "_keras_mask", None) is None
    mask = np.array([[True, True, False], [True, False, False]])
    check_layer_contract(
        kl.GlobalAveragePooling1D, (2, 3, 4), input_data=random_inputs((2, 3, 4)),
        input_mask=mask, expected_mask=None,
    )


# --- errors -----------------------------------------------------------------------------------


WINDOWED = [f"{mode}Pooling{rank}D" for mode in ("Max", "Average") for rank in (1, 2, 3)]
GLOBAL = [f"Global{mode}Pooling{rank}D" for mode in ("Max", "Average") for rank in (1, 2, 3)]


@pytest.mark.parametrize("name", ["MaxPooling2D", "AveragePooling2D"])
def test_pooling_rejects_a_window_larger_than_a_valid_input(name):
    layer = getattr(kl, name)((3, 2), name="pool")
    message = rf"{name} layer 'pool'.*spans 3 along spatial axis 0.*only 2.*\(2, 5\)"
    with pytest.raises(ValueError, match=message):
        layer(np.ones((1, 2, 5, 1), "float32"))
    with pytest.raises(ValueError, match=message):
        layer(keras.Input((2, 5, 1)))
    first = getattr(kl, name)(3, **FIRST, name="pool")
    with pytest.raises(ValueError, match=r"spans 3 along spatial axis 1.*only 2.*\(4, 2\)"):
        first(np.ones((1, 1, 4, 2), "float32"))
    assert getattr(kl, name)((3, 2), padding="same")(np.ones((1, 2, 5, 1), "float32")).shape == (
        1, 1, 3, 1)


@pytest.mark.parametrize("name", WINDOWED)
@pytest.mark.parametrize("argument", ["pool_size", "strides"])
def test_pooling_rejects_non_positive_windows(name, argument):
    rank = int(name[-2])
    for value in (0, -1, 2.5, (2,) * (rank + 1), (2,) * (rank - 1) + (0,), "2"):
        with pytest.raises(ValueError, match=rf"{name} layer .*`{argument}`.*{argument}="):
            getattr(kl, name)(**{"pool_size": 2, argument: value})


@pytest.mark.parametrize("name", ["MaxPooling1D", "AveragePooling3D"])
def test_pooling_rejects_unknown_padding(name):
    with pytest.raises(ValueError, match=rf"{name} layer .*padding='full'"):
        getattr(kl, name)(2, padding="full")


@pytest.mark.parametrize("name", ["MaxPooling2D", "GlobalAveragePooling1D"])
def test_pooling_rejects_unknown_data_format(name):
    with pytest.raises(ValueError, match=rf"{name} layer .*data_format='NHWC'"):
        getattr(kl, name)(data_format="NHWC")


@pytest.mark.parametrize("name", WINDOWED + GLOBAL)
def test_pooling_rejects_the_wrong_rank(name):
    rank = int(name[-2])
    kwargs = {} if name.startswith("Global") else {"pool_size": 1}
    layer = getattr(kl, name)(**kwargs, name="pool")
    shape = (2,) * (rank + 1)
    message = rf"{name} layer 'pool'.*rank {rank + 2}.*\(batch, .*channels\).*" + re.escape(
        f"{shape} (rank {rank + 1})")
    with pytest.raises(ValueError, match=message):
        layer(np.ones(shape, "float32"))
    with pytest.raises(ValueError, match=rf"{name} layer 'pool'.*rank {rank + 2}"):
        layer(keras.Input((2,) * (rank + 2)))


# --- construction -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", WINDOWED)
def test_pooling_takes_keras_arguments_positionally(name):
    rank = int(name[-2])
    args = ((3,) * rank, (1,) * rank, "same", "channels_first", "pool")
    ours, theirs = getattr(kl, name)(*args), getattr(keras.layers, name)(*args)
    assert ours.name == theirs.name == "pool"
    for key in ("pool_size", "strides", "padding", "data_format"):
        assert getattr(ours, key) == getattr(theirs, key), key


@pytest.mark.parametrize("name", WINDOWED)
def test_pooling_window_defaults_follow_keras(name):
    rank = int(name[-2])
    if name.startswith("Average"):
        with pytest.raises(TypeError):  # Keras's average pooling has no default window
            getattr(kl, name)()
        with pytest.raises(TypeError):
            getattr(keras.layers, name)()
        return
    ours, theirs = getattr(kl, name)(), getattr(keras.layers, name)()
    assert ours.pool_size == theirs.pool_size == (2,) * rank
    assert ours.strides == theirs.strides == (2,) * rank


@pytest.mark.parametrize(
    "name, kwargs",
    [(name, {"pool_size": 2}) for name in WINDOWED] + [(name, {}) for name in GLOBAL],
)
def test_pooling_is_built_at_construction_unless_a_subclass_overrides_build(name, kwargs):
    assert getattr(kl, name)(**kwargs).built

    class Recorded(getattr(kl, name)):
        def build(self, input_shape):
            self.seen_shape = tuple(input_shape)

    layer = Recorded(**kwargs)
    assert not layer.built
    shape = (1,) + (4,) * (int(name[-2]) + 1)
    layer(np.ones(shape, "float32"))
    assert layer.built and layer.seen_shape == shape


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_global_average_pooling_1d_takes_an_integer_mask_positionally_like_keras(data_format):
    x = np.arange(24, dtype="float32").reshape((2, 3, 4))
    steps = 3 if data_format == "channels_last" else 4
    mask = (np.arange(2 * steps).reshape(2, steps) % 3 != 2).astype("int32")
    config = {"data_format": data_format, "keepdims": True}
    ours = kl.GlobalAveragePooling1D(**config)(x, mask)
    theirs = keras.layers.GlobalAveragePooling1D(**config)(x, mask)
    np.testing.assert_allclose(to_numpy(ours), to_numpy(theirs), **TOLERANCE)
