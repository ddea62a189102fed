"""Calibrated quantization (issue 16): `model.quantize("gptq" | "awq", config=...)` on a model
of klayers layers calibrates our Dense and EinsumDense (the attention projections) as Keras
3.15.1 calibrates its own: the same quantized weights (names, dtypes, shapes, values), dtype
policies and outputs; GPTQ does what it is for (less output error than rounding each weight to
its grid); calibrated models save and load; a layer quantized but not yet calibrated computes
as before; refusals name the layer."""

import keras
import numpy as np
import pytest

import keraslayers as kl
from keraslayers.layers import calibration
from keraslayers.layers.quantization import QuantizationModeError, layer_policy
from tests.contract import random_inputs, to_numpy

VOCABULARY, WIDTH, LENGTH = 40, 16, 12

SETTINGS = {
    "gptq_4bit_groups_act_order": ("gptq", dict(weight_bits=4, group_size=8,
                                                activation_order=True)),
    "gptq_8bit_per_channel": ("gptq", dict(weight_bits=8, group_size=-1)),
    "awq_groups": ("awq", dict(group_size=8)),
}


class SelfAttentionBlock(keras.layers.Layer):
    """A block around an attention layer (`attention(x, x)`), as a Transformer's."""

    def __init__(self, attention, **kwargs):
        super().__init__(**kwargs)
        self.attention = attention

    def call(self, inputs):
        return inputs + self.attention(inputs, inputs)

    def get_config(self):
        return {**super().get_config(),
                "attention": keras.saving.serialize_keras_object(self.attention)}

    @classmethod
    def from_config(cls, config):
        return cls(**{**config,
                      "attention": keras.saving.deserialize_keras_object(config["attention"])})


def _model(layers):
    """Embedding, then a feed-forward block and an attention block of `layers`' classes;
    returns the model and its calibration structure."""
    embedding = layers.Embedding(VOCABULARY, WIDTH)
    feed_forward = keras.Sequential([layers.Dense(24, activation="relu"), layers.Dense(WIDTH)])
    attention = SelfAttentionBlock(layers.MultiHeadAttention(num_heads=2, key_dim=6))
    tokens = keras.Input((LENGTH,), dtype="int32")
    model = keras.Model(tokens, attention(feed_forward(embedding(tokens))))
    return model, {"pre_block_layers": [embedding],
                   "sequential_blocks": [feed_forward, attention]}


def _config(mode, settings, structure, seed=0):
    config_class = calibration.CONFIG_CLASSES[mode]
    tokens = np.random.default_rng(seed).integers(0, VOCABULARY, size=400)
    # The dataset is token ids already: Keras's pass never calls the tokenizer then.
    return config_class(dataset=[tokens], tokenizer=object(), sequence_length=LENGTH,
                        num_samples=6, quantization_layer_structure=structure, **settings)


def _tokens(seed):
    return np.random.default_rng(seed).integers(0, VOCABULARY, size=(3, LENGTH))


@pytest.mark.grid
@pytest.mark.parametrize("key", list(SETTINGS))
def test_model_quantize_calibrates_our_layers_into_keras_variables(key):
    mode, settings = SETTINGS[key]
    theirs, their_structure = _model(keras.layers)
    ours, our_structure = _model(kl)
    ours.set_weights(theirs.get_weights())
    x = _tokens(1)
    float_outputs = to_numpy(ours(x))
    ours.quantize(mode, config=_config(mode, settings, our_structure))
    if keras.backend.backend() != "jax":  # (JAX compiles each column of Keras's pass: 20 s)
        theirs.quantize(mode, config=_config(mode, settings, their_structure))

        def described(model):
            return [(w.name, str(w.dtype), tuple(w.shape)) for w in model.weights]

        # Keras's variables, block by block: a file of either model loads into the other.
        assert described(ours) == described(theirs)
    calibrated = [layer for layer in ours._flatten_layers()
                  if isinstance(layer, calibration.CalibratedQuantization)]
    assert len(calibrated) == 6  # two Dense, four attention projections
    policy = f"{mode}/{settings.get('weight_bits', 4)}/{settings['group_size']}_from_float32"
    for layer in calibrated:
        assert layer.dtype_policy.name == policy
        assert layer._calibrated and layer._kernel is None
    error = np.abs(to_numpy(ours(x)) - float_outputs).max() / np.abs(float_outputs).max()
    assert 0 < error < (0.02 if settings.get("weight_bits") == 8 else 0.25)


def test_our_gptq_column_loop_is_keras_given_the_cholesky_factor():
    from keras.src.quantizers.gptq import gptq_quantize_matrix
    from keras.src.quantizers.quantizers import GPTQQuantizer

    rng = np.random.default_rng(5)
    weights = rng.normal(size=(12, 40)).astype("float32")
    inputs = rng.normal(size=(200, 40)).astype("float32") @ rng.normal(size=(40, 40))
    hessian = (2 * inputs.T @ inputs / 200).astype("float32") + np.eye(40, dtype="float32")
    factor = np.linalg.cholesky(np.linalg.inv(hessian)).T.astype("float32")
    # Blocks of 16 columns with groups; one block without (Keras's grid then changes from
    # block to block: see calibration's docstring).
    for group_size, block in ((16, 16), (-1, 128)):
        config = keras.quantizers.GPTQConfig(dataset=None, tokenizer=None, weight_bits=4,
                                             group_size=group_size)
        keras_result = gptq_quantize_matrix(
            weights, factor, blocksize=block, group_size=group_size,
            compute_scale_zero=GPTQQuantizer(config).find_params)
        our_result = calibration.gptq_quantize(weights, hessian, bits=4, group_size=group_size,
                                               block=block)
        levels, keras_levels = to_numpy(our_result[0]), to_numpy(keras_result[0])
        assert np.mean(levels != keras_levels) <= 0.01
        for mine, theirs in zip(our_result[1:], keras_result[1:], strict=True):
            np.testing.assert_allclose(to_numpy(mine).astype("float32"),
                                       to_numpy(theirs).astype("float32"), rtol=1e-4, atol=1e-6)


def test_our_awq_is_keras_given_the_same_magnitudes():
    from keras.src.quantizers.awq import awq_quantize_matrix

    rng = np.random.default_rng(6)
    weights = rng.normal(size=(10, 24)).astype("float32")
    # Every group of 8 of every row holds both signs (Keras's grid is ours there).
    weights[:, ::8], weights[:, 1::8] = -np.abs(weights[:, ::8]), np.abs(weights[:, 1::8])
    magnitudes = np.abs(rng.normal(size=24)).astype("float32") * np.where(
        np.arange(24) % 7 == 0, 20.0, 1.0).astype("float32")
    for group_size in (-1, 8):
        keras_result = awq_quantize_matrix(weights, magnitudes, group_size=group_size)
        our_result = calibration.awq_quantize(weights, magnitudes, group_size=group_size)
        for mine, theirs in zip(our_result, keras_result, strict=True):
            np.testing.assert_allclose(to_numpy(mine).astype("float32"),
                                       to_numpy(theirs).astype("float32"), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bits", [3, 4])
def test_gptq_leaves_less_output_error_than_rounding_each_weight(bits):
    # Correlated inputs (what GPTQ's error correction exploits) through one Dense.
    rng = np.random.default_rng(2)
    mixing = rng.normal(size=(WIDTH, WIDTH)).astype("float32")
    inputs = rng.normal(size=(256, WIDTH)).astype("float32") @ mixing
    layer = kl.Dense(20, use_bias=False)
    layer.build((None, WIDTH))
    kernel = to_numpy(layer.kernel)

    class Features(keras.layers.Layer):  # the calibration data as the pre-block output
        def call(self, ids):
            return keras.ops.take(inputs, ids[0], axis=0)

    block = keras.Sequential([layer])
    config = keras.quantizers.GPTQConfig(
        dataset=[np.arange(256)], tokenizer=object(), sequence_length=64, num_samples=4,
        weight_bits=bits, group_size=-1, quantization_layer_structure={
            "pre_block_layers": [Features()], "sequential_blocks": [block]},
    )
    model = keras.Sequential([keras.Input((None, WIDTH)), block])
    model.quantize("gptq", config=config)
    gptq_kernel = to_numpy(layer.kernel)
    # Rounding to nearest on the same grid (per unit, from the float kernel's range).
    scale, zero, top = calibration.grid_parameters(kernel.T, bits=bits)
    rounded = to_numpy(calibration.from_grid(
        calibration.to_grid(kernel.T, scale, zero, top), scale, zero)).T

    def error(quantized):
        return np.linalg.norm(inputs @ quantized - inputs @ kernel)

    assert error(gptq_kernel) < 0.9 * error(rounded)
    assert error(gptq_kernel) > 0  # it did quantize


@pytest.mark.grid
@pytest.mark.parametrize("key", ["gptq_4bit_groups_act_order", "awq_groups"])
def test_a_calibrated_model_saves_and_loads(key, tmp_path):
    mode, settings = SETTINGS[key]
    model, structure = _model(kl)
    model.quantize(mode, config=_config(mode, settings, structure))
    x = _tokens(3)
    path = tmp_path / "calibrated.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, custom_objects={
        "SelfAttentionBlock": SelfAttentionBlock})
    np.testing.assert_allclose(to_numpy(loaded(x)), to_numpy(model(x)), rtol=1e-5, atol=1e-6)
    calibrated = [layer for layer in loaded._flatten_layers()
                  if isinstance(layer, calibration.CalibratedQuantization)]
    assert len(calibrated) == 6 and all(layer._calibrated for layer in calibrated)
    policy = f"{mode}/4/{settings['group_size']}_from_float32"
    assert {layer_policy(layer).name for layer in calibrated} == {policy}


@pytest.mark.parametrize("mode", ["gptq", "awq"])
def test_a_layer_quantized_before_calibration_computes_as_before(mode):
    layer = kl.EinsumDense("abc,cd->abd", output_shape=(None, 6), bias_axes="d")
    x = random_inputs((2, 3, 5))
    before = to_numpy(layer(x))
    config = calibration.CONFIG_CLASSES[mode](dataset=None, tokenizer=None, group_size=4)
    layer.quantize(mode, config=config)
    assert layer.dtype_policy.name == f"{mode}/4/4_from_float32"
    assert not layer._calibrated
    names = [w.name for w in layer.weights]
    assert "kernel" in names and "zero_point" in names and "g_idx" in names
    np.testing.assert_array_equal(to_numpy(layer(x)), before)


def test_modes_a_layer_does_not_calibrate_are_skipped_or_refused_by_name():
    table = kl.Embedding(10, 4, name="table")
    table.build((None, 3))
    config = keras.quantizers.GPTQConfig(dataset=None, tokenizer=None)
    with pytest.raises(QuantizationModeError, match=r"Embedding layer 'table'.*'gptq'"):
        table.quantize("gptq", config=config)
    lora = kl.Dense(4, name="adapted")
    lora.build((None, 3))
    lora.enable_lora(2)
    with pytest.raises(ValueError, match=r"Dense layer 'adapted'.*LoRA.*'gptq'"):
        lora.quantize("gptq", config=config)
    assert lora.quantization_mode is None


def test_keras_calibration_pass_reaches_klayers_layers():
    assert calibration.registered()
    assert calibration.register_with_keras()  # idempotent
    block = keras.Sequential([keras.layers.Dense(3), kl.Dense(3), kl.EinsumDense(
        "ab,bc->ac", output_shape=3)])
    block.build((None, 3))
    found = calibration.find_layers_in_block(block)
    assert [type(layer).__name__ for layer in found.values()] == [
        "Dense", "Dense", "EinsumDense"]


def test_keras_own_layers_are_found_and_calibrated_as_keras_would():
    from keras.src.quantizers import gptq, gptq_core

    # A block of Keras's layers only: the widened search finds what Keras's own finds, in order,
    # and Keras's statistic still handles them.
    block = keras.Sequential([keras.layers.Dense(4), keras.layers.Dropout(0.1),
                              keras.layers.EinsumDense("ab,bc->ac", output_shape=3)])
    block.build((None, 5))
    for name in ("GPTQ", "AWQ"):
        assert list(calibration.find_layers_in_block(block).items()) == list(
            calibration.KERAS_FINDERS[name](block).items())
    config = keras.quantizers.GPTQConfig(dataset=None, tokenizer=None)
    assert isinstance(gptq_core.GPTQ(block.layers[0], config), gptq.GPTQ)
