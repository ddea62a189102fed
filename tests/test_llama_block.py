"""The modern decoder block as options of the Transformer blocks (RMS norms, a gated
feedforward, grouped-query attention with rotary positions, a sliding window, no biases):
a NumPy reference, keras-hub's Llama and Mistral decoders, the decoding cache, masks, LoRA,
configs, saving, errors.

Tiny shapes, reused across tests, keep JAX's per-shape compilations few.
"""

import importlib
import os
import tempfile

import keras
import numpy as np
import pytest

import keraslayers as kl
from tests.call_parity import assert_same_outputs_and_gradients
from tests.contract import BACKEND, check_layer_contract, random_inputs, to_numpy

SEQUENCE = random_inputs((2, 6, 16), seed=1)
# No position is left without a key to see, even in a window of 2.
PADDING = np.array([[True, True, False, True, True, False], [True] * 6])
SEEDED = {"class_name": "GlorotUniform", "config": {"seed": 1}}
LLAMA = {"num_key_value_heads": 2, "normalization": "rms", "feedforward": "gated",
         "activation": "silu", "rope_max_wavelength": 10000, "use_bias": False,
         "normalize_first": True}


def llama(**overrides):
    """A Llama-style block: 4 query heads of size 4 sharing 2 key-value heads."""
    return kl.TransformerDecoder(32, num_heads=4, **{**LLAMA, **overrides})


def close(a, b, tolerance=1e-5):
    np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=tolerance, atol=tolerance)


def _hub(module, name):
    try:
        return getattr(importlib.import_module(f"keras_hub.src.models.{module}"), name)
    except ImportError:
        pytest.skip(f"keras_hub's {name} is not importable")


def numpy_block(block, x, padding=None, window=None, wavelength=10000):
    """What a Llama (Mistral, with `window`) block computes, in float64 NumPy, from the
    block's weights: pre-norm RMS, grouped-query causal attention on rotated query and key
    heads, SwiGLU."""
    w = {v.path.split("/", 1)[1]: to_numpy(v).astype("float64") for v in block.weights}
    x = x.astype("float64")
    epsilon, length = block.layer_norm_epsilon, x.shape[1]

    def rms(x, scale):
        return x / np.sqrt((x ** 2).mean(-1, keepdims=True) + epsilon) * scale

    def rotate(heads):  # (batch, time, heads, head_dim)
        d = heads.shape[-1]
        angles = np.arange(length)[:, None] / wavelength ** (np.arange(0, d, 2) / d)
        angles = np.concatenate([angles, angles], -1)[None, :, None, :]
        turned = np.concatenate([-heads[..., d // 2:], heads[..., : d // 2]], -1)
        return heads * np.cos(angles) + turned * np.sin(angles)

    h = rms(x, w["self_attention_layer_norm/scale"])
    q, k, v = (np.einsum("btm,mnh->btnh", h, w[f"self_attention/{name}/kernel"])
               for name in ("query", "key", "value"))
    q, k = rotate(q), rotate(k)
    groups = q.shape[2] // k.shape[2]
    k, v = np.repeat(k, groups, 2), np.repeat(v, groups, 2)
    scores = np.einsum("btnh,bsnh->bnts", q, k) / np.sqrt(q.shape[-1])
    target, source = np.arange(length)[:, None], np.arange(length)[None]
    allowed = np.broadcast_to(source <= target, scores.shape)
    if window is not None:
        allowed = allowed & (target - source < window)
    if padding is not None:
        allowed = allowed & padding[:, None, None, :]
    scores = np.where(allowed, scores, -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    heads = np.einsum("bnts,bsnh->btnh", weights, v)
    x = x + np.einsum("btnh,nhm->btm", heads, w["self_attention/attention_output/kernel"])
    h = rms(x, w["feedforward_layer_norm/scale"])
    gate = h @ w["feedforward_gate_dense/kernel"]
    hidden = gate / (1 + np.exp(-gate)) * (h @ w["feedforward_intermediate_dense/kernel"])
    return x + hidden @ w["feedforward_output_dense/kernel"]


def test_llama_block_contract():
    check_layer_contract(lambda: llama(dropout=0.1, sliding_window=3, kernel_initializer=SEEDED),
                         (2, 6, 16), input_data=SEQUENCE, trainable_weights=9,
                         seed_generators=3)


def test_llama_block_weights_and_the_numpy_reference():
    block = llama()
    y = block(SEQUENCE, decoder_padding_mask=PADDING)
    names = [w.path.split("/", 1)[1] for w in block.weights]
    assert names == ["self_attention/query/kernel", "self_attention/key/kernel",
                     "self_attention/value/kernel", "self_attention/attention_output/kernel",
                     "self_attention_layer_norm/scale", "feedforward_intermediate_dense/kernel",
                     "feedforward_gate_dense/kernel", "feedforward_output_dense/kernel",
                     "feedforward_layer_norm/scale"]
    assert tuple(block.self_attention.key_dense.kernel.shape) == (16, 2, 4)
    close(y, numpy_block(block, SEQUENCE, PADDING))
    # Mistral's sliding window: a position sees itself and the window - 1 before it.
    windowed = llama(sliding_window=2)
    windowed(SEQUENCE)
    windowed.set_weights(block.get_weights())
    close(windowed(SEQUENCE, decoder_padding_mask=PADDING),
          numpy_block(block, SEQUENCE, PADDING, window=2))


def _hub_llama():
    decoder = _hub("llama.llama_decoder", "LlamaTransformerDecoder")
    return decoder(32, num_query_heads=4, num_key_value_heads=2, rope_max_wavelength=10000,
                   layer_norm_epsilon=1e-5)


def _hub_mistral(window):
    decoder = _hub("mistral.mistral_transformer_decoder", "MistralTransformerDecoder")
    return decoder(32, num_query_heads=4, num_key_value_heads=2, rope_max_wavelength=10000,
                   sliding_window=window, layer_norm_epsilon=1e-5)


def _with_their_weights(ours, theirs):
    ours(SEQUENCE)
    theirs(SEQUENCE)
    assert [tuple(w.shape) for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]
    ours.set_weights(theirs.get_weights())
    return ours, theirs


@pytest.mark.parametrize("window", [None, 3])
def test_llama_and_mistral_parity_with_keras_hub(window):
    """Same weights (in keras-hub's order): same outputs and gradients, with a padding mask."""
    theirs = _hub_llama() if window is None else _hub_mistral(window)
    ours, theirs = _with_their_weights(llama(sliding_window=window), theirs)
    assert_same_outputs_and_gradients(ours, theirs, SEQUENCE, decoder_padding_mask=PADDING)


def _decode(block, sequence, cache, padding=None, compiled=False):
    """Token by token through the cache; the outputs concatenated, and the final cache."""
    def call(token, cache, index):
        kwargs = {} if padding is None else {"decoder_padding_mask": padding}
        return block(token, self_attention_cache=cache, self_attention_cache_update_index=index,
                     **kwargs)

    if compiled and BACKEND == "jax":
        import jax

        call = jax.jit(call)
    elif compiled and BACKEND == "tensorflow":
        import tensorflow as tf

        call = tf.function(call, jit_compile=True)
    outputs = []
    for t in range(sequence.shape[1]):
        index = keras.ops.convert_to_tensor(t, "int32") if compiled else t
        y, cache = call(keras.ops.convert_to_tensor(sequence[:, t:t + 1]),
                        keras.ops.convert_to_tensor(cache), index)
        outputs.append(to_numpy(y))
    return np.concatenate(outputs, axis=1), to_numpy(cache)


def test_llama_cache_decodes_as_the_full_pass_and_as_keras_hub():
    ours, theirs = _with_their_weights(llama(sliding_window=3), _hub_mistral(3))
    # (batch, 2, max_length, key-value heads, head_dim): the keys rotated.
    empty = np.zeros((2, 2, 6, 2, 4), "float32")
    decoded, cache = _decode(ours, SEQUENCE, empty, PADDING)
    close(decoded, ours(SEQUENCE, decoder_padding_mask=PADDING))
    their_decoded, their_cache = _decode(theirs, SEQUENCE, empty, PADDING)
    close(decoded, their_decoded)
    close(cache, their_cache)
    # Compiled (the update index a traced tensor; torch runs eagerly), without the window.
    block = llama()
    full = block(SEQUENCE)  # built outside the compiled step
    decoded, _ = _decode(block, SEQUENCE, empty, compiled=True)
    close(decoded, full)


def test_sliding_window_is_the_band_mask_and_reaches_the_encoder():
    block = llama(sliding_window=2)
    causal_only = llama()
    block(SEQUENCE)
    causal_only(SEQUENCE)
    causal_only.set_weights(block.get_weights())
    band = np.abs(np.arange(6)[:, None] - np.arange(6)[None]) < 2
    close(block(SEQUENCE), causal_only(SEQUENCE, decoder_attention_mask=np.stack([band] * 2)))
    # The encoder's window is the band around each position, both ways.
    encoder = kl.TransformerEncoder(32, num_heads=4, sliding_window=2, **{
        k: v for k, v in LLAMA.items() if k != "normalize_first"})
    y = encoder(SEQUENCE)
    scores = encoder(SEQUENCE, return_attention_scores=True)[1]
    assert tuple(scores.shape) == (2, 4, 6, 6)
    assert np.all(to_numpy(scores)[:, :, ~band] == 0)
    close(y, encoder(SEQUENCE, attention_mask=np.stack([band] * 2)))


def test_llama_block_lora_reaches_its_projections_and_saves():
    block = llama()
    inputs = keras.Input((6, 16))
    model = keras.Model(inputs, block(inputs))
    before = to_numpy(model(SEQUENCE))
    block.enable_lora(2, target_layer_names=["query", "value", "feedforward_gate_dense"])
    assert sorted(block.lora_layers) == ["feedforward_gate_dense", "self_attention/query",
                                         "self_attention/value"]
    assert len(block.trainable_weights) == 6  # the factors; the rest is frozen
    close(model(SEQUENCE), before)  # b starts at zero
    for weight in block.trainable_weights:
        weight.assign(random_inputs(tuple(weight.shape), seed=3) * 0.1)
    after = to_numpy(model(SEQUENCE))
    assert not np.allclose(after, before)
    assert block.get_config()["lora_layers"]["self_attention/query"] == {"rank": 2,
                                                                        "lora_alpha": 2}
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "llama.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
    close(loaded(SEQUENCE), after)


def test_configs_hold_the_options_only_when_set():
    """A classic block's config stays keras-hub's (keras-hub loads it); a Llama block's
    rebuilds it."""
    classic = kl.TransformerDecoder(8, num_heads=2).get_config()
    assert not set(classic) & {"normalization", "feedforward", "num_key_value_heads",
                               "rope_max_wavelength", "rope_scaling_factor", "sliding_window",
                               "use_bias"}
    block = llama(sliding_window=4, rope_scaling_factor=2)
    config = block.get_config()
    assert {k: config[k] for k in LLAMA} == LLAMA
    assert (config["sliding_window"], config["rope_scaling_factor"]) == (4, 2.0)
    clone = kl.TransformerDecoder.from_config(config)
    assert clone.get_config() == config
    block(SEQUENCE)
    clone(SEQUENCE)
    clone.set_weights(block.get_weights())
    close(clone(SEQUENCE), block(SEQUENCE))


def test_traffic_counts_the_llama_block_weights():
    from klayers.bench.traffic import step_counts

    for config in (llama().get_config(), llama(use_bias=True, num_key_value_heads=None,
                                               normalization="layer").get_config(),
                   kl.TransformerDecoder(32, num_heads=4).get_config()):
        block = kl.TransformerDecoder.from_config(config)
        block(SEQUENCE)
        assert step_counts("TransformerDecoder", config, (6, 16), 1).weights == (
            block.count_params()), config


def test_flops_of_the_llama_block_by_hand():
    from klayers.bench.flops import step_flops

    config = llama().get_config()
    # 6 positions of 16 features, 4 query heads of 4 sharing 2 key-value heads, 32 hidden.
    projections = 2 * 6 * 16 * 4 * (4 + 2 + 2 + 4)  # query, key, value, output
    scores_and_sum = 2 * 4 * 6 * 6 * (4 + 4)
    feedforward = 2 * 6 * 16 * 32 * 3 + 6 * 32  # up, gate, down; the gate's product
    norms_and_residuals = 2 * 6 * 16 * (4 + 1)
    forward = projections + scores_and_sum + feedforward + norms_and_residuals
    assert step_flops("TransformerDecoder", config, (6, 16), 1) == forward
    # Pre-norm, every product's input gradient reaches a weight (the norms' scales).
    assert step_flops("TransformerDecoder", config, (6, 16), 1, "train") == 3 * forward
    post_norm = {**config, "normalize_first": False}
    assert step_flops("TransformerDecoder", post_norm, (6, 16), 1, "train") == (
        3 * forward - 2 * 6 * 16 * 4 * (4 + 2 + 2))


def test_gated_feedforward_and_rotary_multi_head_attention():
    """feedforward="gated" alone is down(activation(gate(x)) * up(x)); rotary positions
    without num_key_value_heads are grouped-query attention with as many key-value heads."""
    block = kl.TransformerDecoder(32, num_heads=4, feedforward="gated", activation="gelu",
                                  rope_max_wavelength=100)
    block(SEQUENCE)
    assert block.self_attention.num_key_value_heads == 4
    x = keras.ops.convert_to_tensor(SEQUENCE)
    hidden = (keras.activations.gelu(block.feedforward_gate_dense(x))
              * block.feedforward_intermediate_dense(x))
    close(block._feedforward(x, training=False),
          block.feedforward_layer_norm(x + block.feedforward_output_dense(hidden)))


def test_modern_options_reject_bad_values():
    cases = [({"normalization": "batch"}, r"`normalization` must be one of.*'batch'"),
             ({"feedforward": "swiglu"}, r"`feedforward` must be one of.*'swiglu'"),
             ({"num_key_value_heads": 3}, r"must divide `num_heads`.*num_key_value_heads=3"),
             ({"num_key_value_heads": 0}, r"num_key_value_heads=0"),
             ({"rope_max_wavelength": -1}, r"rope_max_wavelength=-1"),
             ({"rope_scaling_factor": 0.5}, r"rope_scaling_factor=0.5"),
             ({"sliding_window": 0}, r"sliding_window=0")]
    for layer in (kl.TransformerEncoder, kl.TransformerDecoder):
        for kwargs, message in cases:
            with pytest.raises(ValueError, match=f"{layer.__name__} layer 'block'.*{message}"):
                layer(32, num_heads=4, name="block", **kwargs)
    # Rotary positions need an even head size: 16 features over 8 heads is 2, over 16 is 1.
    with pytest.raises(ValueError, match=r"'block'.*even head size.*\(2, 6, 16\), head size 1"):
        kl.TransformerDecoder(32, num_heads=16, rope_max_wavelength=10000, name="block")(SEQUENCE)
