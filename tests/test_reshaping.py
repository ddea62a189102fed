"""UpSampling1D/2D/3D: contract, parity with Keras (every interpolation, both data formats),
None sizes, Keras configs, errors."""

import keras
import numpy as np
import pytest

import keraslayers as kl
from keraslayers.layers import formulation
from keraslayers.layers.reshaping import UPSAMPLING_FORMULATIONS, bilinear_upsample
from tests.contract import (
    BACKEND,
    check_keras_parity,
    check_layer_contract,
    random_inputs,
    to_numpy,
)


@pytest.mark.parametrize(
    "make, input_shape, expected",
    [
        (lambda: kl.UpSampling1D(3), (2, 4, 3), (2, 12, 3)),
        (lambda: kl.UpSampling2D((2, 3)), (2, 3, 4, 2), (2, 6, 12, 2)),
        (lambda: kl.UpSampling2D(2, data_format="channels_first", interpolation="bilinear"),
         (2, 2, 3, 4), (2, 2, 6, 8)),
        (lambda: kl.UpSampling3D((1, 2, 3), data_format="channels_first"), (2, 2, 2, 3, 2),
         (2, 2, 2, 6, 6)),
    ],
)
def test_contract(make, input_shape, expected):
    check_layer_contract(make, input_shape, expected_output_shape=expected)


@pytest.mark.grid
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("size", [(2, 3), (1, 2), (3, 1), (4, 4)])
@pytest.mark.parametrize("interpolation", ["nearest", "bilinear", "bicubic", "lanczos3",
                                           "lanczos5"])
def test_upsampling2d_matches_keras(interpolation, size, data_format):
    if BACKEND == "torch" and interpolation.startswith("lanczos"):
        pytest.skip("Keras's torch backend has no Lanczos resize (tested below)")
    x = random_inputs((2, 3, 4, 2))
    kwargs = {"size": size, "data_format": data_format, "interpolation": interpolation}
    check_keras_parity(kl.UpSampling2D(**kwargs), keras.layers.UpSampling2D(**kwargs), x)


@pytest.mark.grid
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("size", [2, (1, 2, 3)])
def test_upsampling1d_and_3d_match_keras(size, data_format):
    x = random_inputs((2, 2, 3, 2, 3))
    kwargs = {"size": size, "data_format": data_format}
    check_keras_parity(kl.UpSampling3D(**kwargs), keras.layers.UpSampling3D(**kwargs), x)
    x = random_inputs((2, 4, 3))
    factor = size if isinstance(size, int) else size[2]
    check_keras_parity(kl.UpSampling1D(factor), keras.layers.UpSampling1D(factor), x)


def test_nearest_repeats_positions():
    x = np.arange(6, dtype="float32").reshape(1, 2, 3, 1)
    y = to_numpy(kl.UpSampling2D((2, 1))(x))[0, :, :, 0]
    np.testing.assert_array_equal(y, [[0, 1, 2], [0, 1, 2], [3, 4, 5], [3, 4, 5]])


@pytest.mark.parametrize("factor", [1, 2, 3, 5])
def test_bilinear_upsample_is_half_pixel_linear_interpolation(factor):
    # Output position o samples the input at (o + 0.5) / factor - 0.5, clamped to the ends.
    x = np.array([[0.0, 1.0, 4.0, 2.0]], "float32")
    positions = np.clip((np.arange(4 * factor) + 0.5) / factor - 0.5, 0, 3)
    expected = np.interp(positions, np.arange(4), x[0])
    np.testing.assert_allclose(to_numpy(bilinear_upsample(x, factor, axis=1))[0], expected,
                               rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("size", [(2, 3), (5, 1), (2, 4)])
def test_bilinear_compiled_model_agrees_with_keras_eager(size):
    # TensorFlow's resize compiled by XLA is wrong for odd factors above 1; ours is not.
    x = random_inputs((2, 4, 4, 3))  # (XLA's error depends on the shape: not on 4x3 images)
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, kl.UpSampling2D(size, interpolation="bilinear")(inputs))
    assert tuple(model.outputs[0].shape) == (None, None, None, 3)
    if BACKEND != "torch":
        model.compile(jit_compile=True)
    expected = to_numpy(keras.layers.UpSampling2D(size, interpolation="bilinear")(x))
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "layer, input_shape, expected",
    [
        (kl.UpSampling1D(2), (None, None, 3), (None, None, 3)),
        (kl.UpSampling2D((2, 3)), (None, 4, None, 2), (None, 8, None, 2)),
        (kl.UpSampling2D(2, data_format="channels_first"), (None, 2, None, 5),
         (None, 2, None, 10)),
        (kl.UpSampling3D((2, 1, 3)), (4, None, 2, 2, 1), (4, None, 2, 6, 1)),
    ],
)
def test_output_shapes_with_unknown_sizes(layer, input_shape, expected):
    assert tuple(layer.compute_output_shape(input_shape)) == expected
    keras_layer = getattr(keras.layers, type(layer).__name__).from_config(layer.get_config())
    assert tuple(keras_layer.compute_output_shape(input_shape)) == expected


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("UpSampling1D", {"size": 4}),
        ("UpSampling2D", {"size": (1, 3), "data_format": "channels_first",
                          "interpolation": "Bicubic"}),
        ("UpSampling3D", {"size": 2, "data_format": "channels_first"}),
    ],
)
def test_layers_load_keras_configs(name, kwargs):
    config = getattr(keras.layers, name)(**kwargs).get_config()
    ours = getattr(kl, name).from_config(config)
    assert ours.get_config() == config


def test_default_data_format_is_keras_image_data_format():
    previous = keras.config.image_data_format()
    keras.config.set_image_data_format("channels_first")
    try:
        assert kl.UpSampling2D().data_format == "channels_first"
        assert kl.UpSampling3D().data_format == "channels_first"
    finally:
        keras.config.set_image_data_format(previous)
    assert kl.UpSampling2D().size == (2, 2) and kl.UpSampling3D().size == (2, 2, 2)
    assert kl.UpSampling1D(3).size == 3 == keras.layers.UpSampling1D(3).size


@pytest.mark.skipif(BACKEND != "torch", reason="the torch backend's resize has no Lanczos")
def test_lanczos_on_torch_raises_a_value_error_naming_the_layer():
    with pytest.raises(ValueError, match=r"UpSampling2D layer .*lanczos3.*torch"):
        kl.UpSampling2D(interpolation="lanczos3")(random_inputs((1, 2, 2, 1)))


@pytest.mark.parametrize(
    "make, pattern",
    [
        (lambda: kl.UpSampling1D(0), r"UpSampling1D layer .*size=0"),
        (lambda: kl.UpSampling1D(2.0), r"UpSampling1D layer .*size=2.0"),
        (lambda: kl.UpSampling1D(True), r"UpSampling1D layer .*size=True"),
        (lambda: kl.UpSampling2D((2, 0)), r"UpSampling2D layer .*size=\(2, 0\)"),
        (lambda: kl.UpSampling2D((2, 2, 2)), r"UpSampling2D layer .*size=\(2, 2, 2\)"),
        (lambda: kl.UpSampling2D(interpolation="area"), r"UpSampling2D layer .*'area'"),
        (lambda: kl.UpSampling2D(data_format="nhwc"), r"UpSampling2D layer .*'nhwc'"),
        (lambda: kl.UpSampling3D(-1), r"UpSampling3D layer .*size=-1"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_the_layer(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


@pytest.mark.parametrize(
    "layer, shape",
    [(kl.UpSampling1D(name="up1"), (2, 3)), (kl.UpSampling2D(name="up2"), (2, 3, 3)),
     (kl.UpSampling3D(name="up3"), (2, 3, 3, 3))],
)
def test_a_wrong_rank_input_raises_a_value_error_naming_the_layer(layer, shape):
    with pytest.raises(ValueError, match=r"up\d.*ndim"):
        layer(random_inputs(shape))


@pytest.mark.parametrize("chosen", ["keras", "own_bilinear"])
@pytest.mark.parametrize("size, data_format", [((2, 2), "channels_last"),
                                               ((2, 3), "channels_first")])
def test_every_bilinear_formulation_matches_keras(chosen, size, data_format):
    """UPSAMPLING_FORMULATIONS' choices give Keras's outputs and gradients on every backend."""
    x = random_inputs((2, 3, 4, 2))
    kwargs = {"size": size, "data_format": data_format, "interpolation": "bilinear"}
    with formulation.forcing("upsampling", chosen):
        check_keras_parity(kl.UpSampling2D(**kwargs), keras.layers.UpSampling2D(**kwargs), x)


def test_bilinear_formulation_table():
    with formulation.forcing_device_kind("cpu"):
        expected = "own_bilinear" if BACKEND == "jax" else formulation.KERAS
        assert formulation.choose("upsampling", UPSAMPLING_FORMULATIONS) == expected
    for kind in ("gpu", "tpu"):
        with formulation.forcing_device_kind(kind):
            assert formulation.choose("upsampling", UPSAMPLING_FORMULATIONS) == formulation.KERAS
