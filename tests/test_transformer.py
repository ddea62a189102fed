"""TransformerEncoder, TransformerDecoder and the position layers: contract, the block
structure, masks, causality, errors.

Tiny shapes, reused across tests, keep JAX's per-shape compilations few.
"""

import os
import tempfile

import keras
import numpy as np
import pytest

import keraslayers as kl
from tests.contract import BACKEND, check_layer_contract, random_inputs, to_numpy

SEQUENCE = random_inputs((2, 5, 4), seed=1)
ENCODED = random_inputs((2, 3, 6), seed=2)
PADDING = np.array([[True, True, True, False, False], [True, True, True, True, True]])
ENCODER_PADDING = np.array([[True, False, False], [True, True, False]])
SEEDED = {"class_name": "GlorotUniform", "config": {"seed": 1}}


def close(a, b, tolerance=1e-5):
    np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=tolerance, atol=tolerance)


# --- TransformerEncoder --------------------------------------------------------------------


def test_encoder_contract():
    check_layer_contract(
        lambda: kl.TransformerEncoder(8, num_heads=2, dropout=0.5, normalize_first=True,
                                      kernel_initializer=SEEDED),
        (2, 5, 4), input_data=SEQUENCE, trainable_weights=16, seed_generators=3,
    )


@pytest.mark.parametrize("normalize_first", [False, True])
def test_encoder_is_the_residual_composition_of_its_sublayers(normalize_first):
    block = kl.TransformerEncoder(8, num_heads=2, activation="gelu",
                                  normalize_first=normalize_first)
    y = block(SEQUENCE, padding_mask=PADDING)
    attention_mask = np.broadcast_to(PADDING[:, None, :], (2, 5, 5))

    def attend(x):
        return block.self_attention_layer(x, x, attention_mask=attention_mask)

    def feedforward(x):
        return block.feedforward_output_dense(block.feedforward_intermediate_dense(x))

    x = keras.ops.convert_to_tensor(SEQUENCE)
    for sublayer, norm in ((attend, block.self_attention_layer_norm),
                           (feedforward, block.feedforward_layer_norm)):
        x = x + sublayer(norm(x)) if normalize_first else norm(x + sublayer(x))
    close(y, x)
    assert block.self_attention_layer.key_dim == 2
    names = [w.path.split("/", 1)[1] for w in block.weights]
    assert names[:2] == ["self_attention_layer/query/kernel", "self_attention_layer/query/bias"]
    assert "feedforward_intermediate_dense/kernel" in names


def test_encoder_takes_the_keras_mask_and_padded_keys_change_nothing():
    block = kl.TransformerEncoder(8, num_heads=2)
    changed = SEQUENCE.copy()
    changed[~PADDING] = 50.0
    first, second = block(SEQUENCE, padding_mask=PADDING), block(changed, padding_mask=PADDING)
    close(to_numpy(first)[PADDING], to_numpy(second)[PADDING])
    # The same mask from an embedding with mask_zero, through a model.
    tokens = keras.Input((5,), dtype="int32")
    outputs = kl.TransformerEncoder(8, num_heads=2)(kl.Embedding(10, 4, mask_zero=True)(tokens))
    model = keras.Model(tokens, outputs)
    data = np.array([[1, 2, 3, 0, 0], [4, 5, 6, 7, 8]], "int32")
    embedding = model.layers[1]
    first = to_numpy(model(data))
    table = to_numpy(embedding.embeddings).copy()
    table[0] += 5.0
    embedding.embeddings.assign(table)
    close(first[data != 0], to_numpy(model(data))[data != 0])


def test_encoder_fully_padded_sequence_is_finite():
    block = kl.TransformerEncoder(8, num_heads=2)
    mask = np.array([[False] * 5, [True] * 5])
    assert np.all(np.isfinite(to_numpy(block(SEQUENCE, padding_mask=mask))))
    attention_mask = np.zeros((2, 5, 5), bool)
    assert np.all(np.isfinite(to_numpy(block(SEQUENCE, attention_mask=attention_mask))))


def test_encoder_returns_attention_scores():
    block = kl.TransformerEncoder(8, num_heads=2)
    y, scores = block(SEQUENCE, padding_mask=PADDING, return_attention_scores=True)
    close(y, block(SEQUENCE, padding_mask=PADDING))
    assert tuple(scores.shape) == (2, 2, 5, 5)
    # (batch, heads, target, source): rows sum to 1, padded keys get no weight.
    close(to_numpy(scores).sum(-1), np.ones((2, 2, 5)))
    assert np.all(to_numpy(scores)[0, :, :, 3:] == 0)
    symbolic = block(keras.Input((5, 4)), return_attention_scores=True)
    assert [tuple(t.shape) for t in symbolic] == [(None, 5, 4), (None, 2, 5, 5)]


def test_blocks_reject_masks_of_the_wrong_rank():
    block = kl.TransformerEncoder(8, num_heads=2, name="enc")
    with pytest.raises(ValueError, match=r"'enc'.*`padding_mask`.*\(batch, source\).*\(2, 1, 5\)"):
        block(SEQUENCE, padding_mask=PADDING[:, None])
    with pytest.raises(ValueError, match=r"'enc'.*`attention_mask`.*\(2, 5\)"):
        block(SEQUENCE, attention_mask=PADDING)
    decoder = kl.TransformerDecoder(8, num_heads=2, name="dec")
    with pytest.raises(ValueError, match=r"'dec'.*`encoder_padding_mask`.*\(2, 1, 3\)"):
        decoder(SEQUENCE, ENCODED, encoder_padding_mask=ENCODER_PADDING[:, None])


def test_blocks_reject_an_unknown_initializer():
    for layer in (kl.TransformerEncoder, kl.TransformerDecoder):
        with pytest.raises(ValueError):
            layer(4, num_heads=2, dropout=0.5, kernel_initializer="Invalid")


def test_encoder_propagates_training_and_mask():
    block = kl.TransformerEncoder(8, num_heads=2, dropout=0.5)
    close(block(SEQUENCE), block(SEQUENCE))
    assert not np.allclose(to_numpy(block(SEQUENCE, training=True)), to_numpy(block(SEQUENCE)))
    np.testing.assert_array_equal(to_numpy(block.compute_mask(SEQUENCE, PADDING)), PADDING)


# --- TransformerDecoder --------------------------------------------------------------------


def test_decoder_contract():
    check_layer_contract(lambda: kl.TransformerDecoder(8, num_heads=2, dropout=0.1,
                                                       kernel_initializer=SEEDED),
                         (2, 5, 4), input_data=SEQUENCE, trainable_weights=16,
                         seed_generators=3)


def test_decoder_weights_in_keras_hub_order_and_build_shapes_in_its_config():
    block = kl.TransformerDecoder(8, num_heads=2, dropout=0.1)
    block(SEQUENCE, ENCODED)
    names = [w.path.split("/", 1)[1] for w in block.weights]
    sublayers = list(dict.fromkeys(name.split("/")[0] for name in names))
    assert sublayers == ["self_attention", "self_attention_layer_norm", "cross_attention",
                         "cross_attention_layer_norm", "feedforward_intermediate_dense",
                         "feedforward_output_dense", "feedforward_layer_norm"]
    assert len(block.non_trainable_variables) == 5  # the dropouts' seed generators
    config = block.get_config()
    assert (config["decoder_sequence_shape"], config["encoder_sequence_shape"]) == (
        (2, 5, 4), (2, 3, 6))
    clone = kl.TransformerDecoder.from_config(config)
    assert clone.built and len(clone.weights) == 26
    clone.set_weights(block.get_weights())
    close(clone(SEQUENCE, ENCODED), block(SEQUENCE, ENCODED))
    assert kl.TransformerDecoder(8, num_heads=2).get_config()["decoder_sequence_shape"] is None


def test_decoder_with_cross_attention_weights_and_save_load():
    decoder_input, encoder_input = keras.Input((5, 4)), keras.Input((3, 6))
    block = kl.TransformerDecoder(8, num_heads=2, normalize_first=True)
    model = keras.Model([decoder_input, encoder_input], block(decoder_input, encoder_input))
    names = [w.path.split("/", 1)[1] for w in block.weights]
    assert len(names) == 26 and "cross_attention/key/kernel" in names
    assert tuple(block.cross_attention.key_dense.kernel.shape) == (6, 2, 2)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    before = [to_numpy(w).copy() for w in model.trainable_weights]
    model.train_on_batch([SEQUENCE, ENCODED], np.ones((2, 5, 4), "float32"))
    for weight, old in zip(model.trainable_weights, before, strict=True):
        assert np.any(to_numpy(weight) != old), weight.path
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "decoder.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
    close(loaded([SEQUENCE, ENCODED]), model([SEQUENCE, ENCODED]))


@pytest.mark.parametrize("with_encoder", [False, True])
def test_decoder_output_at_t_ignores_later_tokens(with_encoder):
    block = kl.TransformerDecoder(8, num_heads=2)
    args = (ENCODED,) if with_encoder else ()
    changed = SEQUENCE.copy()
    changed[:, 3:] = 7.0
    first, second = to_numpy(block(SEQUENCE, *args)), to_numpy(block(changed, *args))
    close(first[:, :3], second[:, :3])
    assert not np.allclose(first[:, 3:], second[:, 3:])
    # Without the causal mask the future does leak.
    leaky = to_numpy(block(changed, *args, use_causal_mask=False))
    assert not np.allclose(to_numpy(block(SEQUENCE, *args, use_causal_mask=False))[:, :3],
                           leaky[:, :3])


def test_decoder_padded_keys_change_nothing_and_padded_rows_are_finite():
    block = kl.TransformerDecoder(8, num_heads=2)
    changed_encoder = ENCODED.copy()
    changed_encoder[~ENCODER_PADDING] = 50.0
    changed = SEQUENCE.copy()
    changed[~PADDING] = 50.0
    first = to_numpy(block(SEQUENCE, ENCODED, decoder_padding_mask=PADDING,
                           encoder_padding_mask=ENCODER_PADDING))
    second = to_numpy(block(changed, changed_encoder, decoder_padding_mask=PADDING,
                            encoder_padding_mask=ENCODER_PADDING))
    close(first[PADDING], second[PADDING])
    nothing = block(SEQUENCE, ENCODED, decoder_padding_mask=np.zeros((2, 5), bool),
                    encoder_attention_mask=np.zeros((2, 5, 3), bool))
    assert np.all(np.isfinite(to_numpy(nothing)))


def _decode_token_by_token(block, step, with_encoder):
    """The outputs of `step(block, token, caches, t)` for t = 0, 1, ..., concatenated."""
    caches = [np.zeros((2, 2, 5, 2, 2), "float32")]
    if with_encoder:
        caches.append(np.zeros((2, 2, 3, 2, 2), "float32"))
    outputs = []
    for t in range(SEQUENCE.shape[1]):
        y, *caches = step(block, SEQUENCE[:, t:t + 1], caches, t)
        outputs.append(to_numpy(y))
    return np.concatenate(outputs, axis=1), caches


@pytest.mark.parametrize("with_encoder", [False, True])
def test_decoder_with_a_cache_decodes_as_the_full_causal_pass(with_encoder):
    block = kl.TransformerDecoder(8, num_heads=2, normalize_first=with_encoder)
    args = (ENCODED,) if with_encoder else ()
    # With a cache, the padding mask covers the cached positions: the whole sequence.
    full = to_numpy(block(SEQUENCE, *args, decoder_padding_mask=PADDING))

    def step(block, token, caches, t):
        kwargs = {"self_attention_cache": caches[0], "self_attention_cache_update_index": t,
                  "decoder_padding_mask": PADDING}
        if with_encoder:
            # The encoder's keys and values are projected once, at the first step.
            kwargs.update(cross_attention_cache=caches[1],
                          cross_attention_cache_update_index=0 if t == 0 else None)
        return block(token, *args, **kwargs)

    decoded, caches = _decode_token_by_token(block, step, with_encoder)
    close(decoded, full)
    # The cache holds the projected keys and values of every position.
    keys = block.self_attention.key_dense(block.self_attention_layer_norm(SEQUENCE)
                                          if with_encoder else SEQUENCE)
    close(to_numpy(caches[0])[:, 0], keys)


def test_decoder_cache_in_a_compiled_step():
    """XLA on JAX and TensorFlow (the update index a traced tensor); torch runs eagerly."""
    block = kl.TransformerDecoder(8, num_heads=2)
    full = to_numpy(block(SEQUENCE))

    def call(token, cache, index):
        return block(token, self_attention_cache=cache, self_attention_cache_update_index=index)

    if BACKEND == "jax":
        import jax

        call = jax.jit(call)
    elif BACKEND == "tensorflow":
        import tensorflow as tf

        call = tf.function(call, jit_compile=True)

    def step(block, token, caches, t):
        return call(keras.ops.convert_to_tensor(token), keras.ops.convert_to_tensor(caches[0]),
                    keras.ops.convert_to_tensor(t, "int32"))

    decoded, _ = _decode_token_by_token(block, step, with_encoder=False)
    close(decoded, full)
    # Symbolically, the caches come back with the outputs.
    token, cache = keras.Input((1, 4)), keras.Input((2, 5, 2, 2))
    outputs = block(token, self_attention_cache=cache, self_attention_cache_update_index=0)
    assert [tuple(y.shape) for y in outputs] == [(None, 1, 4), (None, 2, 5, 2, 2)]


def test_decoder_cache_errors():
    block = kl.TransformerDecoder(8, num_heads=2, name="dec")
    block(SEQUENCE, ENCODED)
    cache = np.zeros((2, 2, 5, 2, 2), "float32")
    with pytest.raises(ValueError, match=r"TransformerDecoder layer 'dec'.*cross_attention_cache"
                                         r".*self_attention_cache=a tensor, "
                                         r"cross_attention_cache=None"):
        block(SEQUENCE[:, :1], ENCODED, self_attention_cache=cache,
              self_attention_cache_update_index=0)


def test_decoder_must_be_called_as_built():
    block = kl.TransformerDecoder(8, num_heads=2, name="dec")
    block(SEQUENCE)
    with pytest.raises(ValueError, match="TransformerDecoder layer 'dec'.*built without"):
        block(SEQUENCE, ENCODED)


@pytest.mark.parametrize("layer", [kl.TransformerEncoder, kl.TransformerDecoder])
def test_blocks_reject_bad_arguments(layer):
    with pytest.raises(ValueError, match=f"{layer.__name__} layer .*num_heads=0"):
        layer(8, num_heads=0)
    with pytest.raises(ValueError, match=f"{layer.__name__} layer .*intermediate_dim=-1"):
        layer(-1, num_heads=2)
    with pytest.raises(ValueError, match=r"feature size .*\(4\).*num_heads=8.*\(2, 5, 4\)"):
        layer(8, num_heads=8)(SEQUENCE)


# --- position layers -----------------------------------------------------------------------


def test_position_embedding_contract_and_start_index():
    check_layer_contract(lambda: kl.PositionEmbedding(7, initializer=SEEDED), (2, 5, 4),
                         input_data=SEQUENCE, trainable_weights=1)
    layer = kl.PositionEmbedding(7)
    y = to_numpy(layer(SEQUENCE))
    table = to_numpy(layer.embeddings)
    np.testing.assert_array_equal(y, np.broadcast_to(table[:5], (2, 5, 4)))
    np.testing.assert_array_equal(to_numpy(layer(SEQUENCE[:, :2], start_index=3))[0], table[3:5])


def test_position_embedding_rejects_a_longer_sequence():
    layer = kl.PositionEmbedding(4, name="pos")
    with pytest.raises(ValueError, match=r"PositionEmbedding layer 'pos'.*length 5.*"
                                         r"\(2, 5, 4\).*sequence_length=4"):
        layer(SEQUENCE)
    layer(SEQUENCE[:, :4])
    with pytest.raises(ValueError, match=r"'pos'.*length 2, from position 3.*sequence_length=4"):
        layer(SEQUENCE[:, :2], start_index=3)


def test_sine_position_encoding_matches_the_formula():
    check_layer_contract(lambda: kl.SinePositionEncoding(max_wavelength=100), (2, 5, 4),
                         input_data=SEQUENCE)
    y = to_numpy(kl.SinePositionEncoding(max_wavelength=100)(SEQUENCE))
    positions, i = np.arange(5)[:, None], np.arange(4)[None, :]
    angles = positions / 100.0 ** (2 * (i // 2) / 4)
    expected = np.where(i % 2 == 0, np.sin(angles), np.cos(angles))
    np.testing.assert_allclose(y, np.broadcast_to(expected, (2, 5, 4)), rtol=1e-5, atol=1e-6)


def numpy_rotary(x, max_wavelength=10000, scaling_factor=1.0, positions=None):
    """RoPE on (batch, sequence, ..., features), rotating features i and i + d/2, at
    `positions` (batch or 1, sequence) (default 0, 1, ...)."""
    d = x.shape[-1]
    if positions is None:
        positions = np.arange(x.shape[1])[None]
    inverse = 1.0 / max_wavelength ** (np.arange(0, d, 2) / d)
    angles = positions[..., None] / scaling_factor * inverse
    angles = np.concatenate([angles, angles], -1)
    angles = angles.reshape(len(angles), x.shape[1], *[1] * (x.ndim - 3), d)
    rotated = np.concatenate([-x[..., d // 2:], x[..., : d // 2]], -1)
    return x * np.cos(angles) + rotated * np.sin(angles)


def test_rotary_embedding_matches_the_formula_and_is_relative():
    check_layer_contract(lambda: kl.RotaryEmbedding(scaling_factor=2.0), (2, 5, 4),
                         input_data=SEQUENCE)
    heads = random_inputs((2, 5, 3, 4), seed=3)
    close(kl.RotaryEmbedding(max_wavelength=100, scaling_factor=2.0)(heads),
          numpy_rotary(heads, 100, 2.0))
    # Channels-first layout: (batch, features, sequence).
    transposed = kl.RotaryEmbedding(sequence_axis=2, feature_axis=1)(SEQUENCE.transpose(0, 2, 1))
    close(to_numpy(transposed).transpose(0, 2, 1), numpy_rotary(SEQUENCE))
    # q . k after rotation depends on positions only through their difference.
    q, k = np.ones((1, 5, 4), "float32"), random_inputs((1, 5, 4), seed=4)
    k[:] = k[:, :1]
    rope = kl.RotaryEmbedding()
    dots = np.einsum("btd,bsd->bts", to_numpy(rope(q)), to_numpy(rope(k)))[0]
    np.testing.assert_allclose(np.diag(dots, 1)[:-1], np.diag(dots, 1)[1:], rtol=1e-4, atol=1e-5)


def test_rotary_embedding_at_explicit_positions_and_a_start_index():
    heads = random_inputs((2, 5, 3, 4), seed=3)
    rope = kl.RotaryEmbedding(max_wavelength=100, scaling_factor=2.0)
    # Per-example positions, e.g. left-padded sequences; then shared ones.
    positions = np.array([[0, 0, 1, 2, 3], [7, 8, 9, 10, 11]], "int32")
    close(rope(heads, positions=positions), numpy_rotary(heads, 100, 2.0, positions))
    close(rope(heads, positions=positions[1]), numpy_rotary(heads, 100, 2.0, positions[1:]))
    # start_index, a Python int or a tensor (a decoding step), is positions start_index + t.
    close(rope(heads, start_index=7), numpy_rotary(heads, 100, 2.0, positions[1:]))
    start = keras.ops.convert_to_tensor(7, "int32")
    close(rope(heads[:, :1], start_index=start), numpy_rotary(heads, 100, 2.0,
                                                             positions[1:])[:, :1])
    # Channels-first, positions along axis 2.
    transposed = kl.RotaryEmbedding(sequence_axis=2, feature_axis=1)(
        SEQUENCE.transpose(0, 2, 1), positions=positions)
    close(to_numpy(transposed).transpose(0, 2, 1), numpy_rotary(SEQUENCE, positions=positions))


def test_rotary_embedding_rejects_bad_positions():
    rope = kl.RotaryEmbedding(name="rope")
    with pytest.raises(ValueError, match=r"RotaryEmbedding layer 'rope'.*\(2, 5\).*"
                                         r"positions of shape \(4,\)"):
        rope(SEQUENCE, positions=np.arange(4))
    with pytest.raises(ValueError, match=r"'rope'.*positions of shape \(3, 5\)"):
        rope(SEQUENCE, positions=np.zeros((3, 5), "int32"))
    # As in keras-hub, explicit positions replace start_index.
    close(rope(SEQUENCE, positions=np.arange(5), start_index=2), rope(SEQUENCE))


def test_rotary_embedding_dynamic_scaling_matches_the_formula():
    rope = kl.RotaryEmbedding(rope_type="dynamic", scaling_factor=4.0, max_wavelength=100)
    heads = random_inputs((2, 5, 3, 4), seed=3)
    # NTK-aware: frequencies divided by s ** (d / (d - 2)); as positions divided by it.
    close(rope(heads), numpy_rotary(heads, 100, 4.0 ** (4 / 2)))


def test_rotary_embedding_yarn_keeps_fast_pairs_and_interpolates_slow_ones():
    """Pairs that turn many times over the original context keep their frequency; pairs
    that turn less than once are interpolated; cos and sin are scaled by 0.1 ln(s) + 1."""
    features, scale = 64, 4.0
    rope = kl.RotaryEmbedding(rope_type="yarn", scaling_factor=scale)
    frequencies = to_numpy(rope._inverse_frequencies(features))
    original = 1.0 / 10000 ** (np.arange(0, features, 2) / features)
    np.testing.assert_allclose(frequencies[:5], original[:5], rtol=1e-6)
    np.testing.assert_allclose(frequencies[-5:], original[-5:] / scale, rtol=1e-6)
    x = np.ones((1, 1, features), "float32")  # position 0: cos 1, sin 0
    np.testing.assert_allclose(to_numpy(rope(x)), x * (0.1 * np.log(scale) + 1), rtol=1e-6)


def test_rotary_embedding_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"RotaryEmbedding layer .*rope_type.*'ntk'"):
        kl.RotaryEmbedding(rope_type="ntk")
    with pytest.raises(ValueError, match=r"scaling_factor=0.5"):
        kl.RotaryEmbedding(scaling_factor=0.5)
    with pytest.raises(ValueError, match=r"original_max_position_embeddings=0"):
        kl.RotaryEmbedding(original_max_position_embeddings=0)
    with pytest.raises(ValueError, match=r"denominator_dim=-2"):
        kl.RotaryEmbedding(denominator_dim=-2)
    for argument in ("max_wavelength", "beta_fast", "beta_slow"):
        with pytest.raises(ValueError, match=f"`{argument}` must be a positive number.*=0"):
            kl.RotaryEmbedding(**{argument: 0})
    with pytest.raises(ValueError, match=r"SinePositionEncoding layer .*max_wavelength='1'"):
        kl.SinePositionEncoding(max_wavelength="1")
    # keras-hub's configs may hold a float wavelength.
    heads = random_inputs((2, 5, 3, 4), seed=3)
    close(kl.RotaryEmbedding(max_wavelength=100.0)(heads), numpy_rotary(heads, 100))


def test_position_layers_at_explicit_positions():
    positions = np.array([[4, 0, 1, 5, 2], [0, 1, 2, 3, 4]])
    layer = kl.PositionEmbedding(7)
    layer.build(SEQUENCE.shape)
    table = to_numpy(layer.embeddings)
    close(layer(SEQUENCE, positions=positions), table[positions])
    close(layer(SEQUENCE, positions=positions[0]), np.broadcast_to(table[positions[0]],
                                                                   (2, 5, 4)))
    sine = kl.SinePositionEncoding()
    close(sine(SEQUENCE, positions=positions[1]), sine(SEQUENCE))
    close(to_numpy(sine(SEQUENCE, positions=positions))[0, 1], to_numpy(sine(SEQUENCE))[0, 0])
    # Step by step from start_index gives the whole sequence.
    for position_layer in (layer, sine, kl.RotaryEmbedding()):
        whole = to_numpy(position_layer(SEQUENCE))
        steps = [to_numpy(position_layer(SEQUENCE[:, t:t + 1], start_index=t)) for t in range(5)]
        close(np.concatenate(steps, axis=1), whole)


def test_position_layers_keep_unknown_sizes_and_a_float16_policy():
    for layer in (kl.PositionEmbedding(40), kl.SinePositionEncoding(), kl.RotaryEmbedding()):
        assert tuple(layer(keras.Input((None, 6))).shape) == (None, None, 6)
        assert tuple(layer(keras.Input((None, 5, 6))).shape) == (None, None, 5, 6)
    for make in (lambda: kl.PositionEmbedding(21, dtype="float16"),
                 lambda: kl.SinePositionEncoding(dtype="float16"),
                 lambda: kl.RotaryEmbedding(dtype="float16")):
        assert make()(keras.Input((21, 30))).dtype == "float16"


def test_rotary_embedding_rejects_odd_features():
    with pytest.raises(ValueError, match=r"RotaryEmbedding layer 'rope'.*even.*\(2, 5, 3\)"):
        kl.RotaryEmbedding(name="rope")(np.ones((2, 5, 3), "float32"))


def test_token_and_position_embedding():
    tokens = np.array([[3, 1, 0, 0, 0], [7, 2, 9, 4, 0]], "int32")
    check_layer_contract(
        lambda: kl.TokenAndPositionEmbedding(10, 6, 4, embeddings_initializer=SEEDED,
                                             mask_zero=True),
        (2, 5), input_dtype="int32", input_data=tokens, expected_output_shape=(2, 5, 4),
        trainable_weights=2, expected_mask=tokens != 0,
    )
    layer = kl.TokenAndPositionEmbedding(10, 6, 4)
    y = to_numpy(layer(tokens))
    table, positions = (to_numpy(w) for w in layer.weights)
    close(y, table[tokens] + positions[None, :5])
    assert [w.path.split("/", 1)[1] for w in layer.weights] == [
        "token_embedding/embeddings", "position_embedding/embeddings"]
    with pytest.raises(ValueError, match=r"sequence_length=6"):
        layer(np.ones((2, 7), "int32"))


def test_token_and_position_embedding_ties_and_reverses():
    tokens = np.array([[3, 1, 0, 0, 0], [7, 2, 9, 4, 0]], "int32")
    layer = kl.TokenAndPositionEmbedding(10, 6, 4, embeddings_initializer="ones")
    np.testing.assert_array_equal(to_numpy(layer(tokens)), np.full((2, 5, 4), 2.0))
    untied = kl.TokenAndPositionEmbedding(10, 6, 4, tie_weights=False)
    assert layer.get_config()["tie_weights"] and not untied.get_config()["tie_weights"]
    untied(tokens)
    assert [w.path.split("/", 1)[1] for w in untied.weights] == [
        "token_embedding/embeddings", "token_embedding/reverse_embeddings",
        "position_embedding/embeddings"]
    # Logits against the tied table; against the separate one when untied.
    hidden = random_inputs((2, 5, 4), seed=5)
    table = to_numpy(layer.token_embedding.embeddings)
    close(layer.token_embedding(hidden, reverse=True), hidden @ table.T)
    close(untied.token_embedding(hidden, reverse=True),
          hidden @ to_numpy(untied.token_embedding.reverse_embeddings))
    # Explicit positions pick the position rows.
    positions = np.array([4, 0, 1, 5, 2])
    close(untied(tokens, positions=positions),
          to_numpy(untied.token_embedding(tokens))
          + to_numpy(untied.position_embedding.embeddings)[positions])
    # The mask of mask_zero reaches the output.
    masked = kl.TokenAndPositionEmbedding(10, 6, 4, mask_zero=True)
    inputs = keras.Input((5,), dtype="int32")
    pooled = keras.layers.GlobalAveragePooling1D()(masked(inputs))
    y = to_numpy(keras.Model(inputs, pooled)(tokens))
    full = to_numpy(masked(tokens))
    close(y[0], full[0, :2].mean(0))


@pytest.mark.parametrize("layer", [kl.TransformerEncoder, kl.TransformerDecoder])
def test_blocks_in_training_with_dropout_near_one_keep_only_the_norms(layer):
    """Every sublayer's output is dropped, so post-norm leaves norm(norm(x))."""
    block = layer(4, num_heads=2, dropout=0.99999)
    args = (ENCODED,) if layer is kl.TransformerDecoder else ()
    y = block(SEQUENCE, *args, training=True)
    norms = [block.self_attention_layer_norm, block.feedforward_layer_norm]
    if args:
        norms.insert(1, block.cross_attention_layer_norm)
    x = keras.ops.convert_to_tensor(SEQUENCE)
    for norm in norms:
        x = norm(x)
    close(y, x)


@pytest.mark.parametrize("with_encoder", [False, True])
def test_decoder_passes_the_decoder_mask_on(with_encoder):
    tokens, source = keras.Input((5,), dtype="int32"), keras.Input((3, 6))
    decoded = kl.TransformerDecoder(8, num_heads=2)(
        kl.Embedding(10, 4, mask_zero=True)(tokens), *((source,) if with_encoder else ()))
    pooled = keras.layers.GlobalAveragePooling1D()(decoded)
    model = keras.Model([tokens, source], [decoded, pooled])
    data = np.array([[1, 2, 3, 0, 0], [4, 5, 6, 7, 8]], "int32")
    y, mean = (to_numpy(t) for t in model([data, ENCODED]))
    close(mean[0], y[0, :3].mean(0))
    close(mean[1], y[1].mean(0))


def test_blocks_build_from_list_shapes_and_take_the_padding_mask_second():
    encoder = kl.TransformerEncoder(8, num_heads=2)
    encoder.build([2, 5, 4])
    close(encoder(SEQUENCE, PADDING), encoder(SEQUENCE, padding_mask=PADDING))
    decoder = kl.TransformerDecoder(8, num_heads=2)
    decoder.build([2, 5, 4], [2, 3, 6])
    assert decoder.get_config()["encoder_sequence_shape"] == (2, 3, 6)
    assert tuple(decoder(SEQUENCE, ENCODED).shape) == (2, 5, 4)
