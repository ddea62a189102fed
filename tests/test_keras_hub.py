"""keras-hub's layers and ours: a config keras-hub saves loads into ours, the weights come in
the same order (so `ours.set_weights(hub.get_weights())` works), and the outputs and
gradients agree; on every backend."""

import json

import numpy as np
import pytest

import keraslayers as kl
from keraslayers.layers import formulation
from tests.call_parity import TOLERANCE, assert_same_outputs_and_gradients
from tests.contract import random_inputs, to_numpy

keras_hub = pytest.importorskip("keras_hub")
hub = keras_hub.layers

SEQUENCE = random_inputs((2, 5, 4), seed=1)
HEADS = random_inputs((2, 5, 3, 4), seed=2)
ENCODED = random_inputs((2, 3, 6), seed=3)
TOKENS = np.array([[3, 1, 0, 0, 0], [7, 2, 9, 4, 0]], "int32")
PADDING = TOKENS != 0
POSITIONS = np.array([[0, 0, 1, 2, 3], [4, 2, 5, 6, 1]], "int32")


def ours_from(hub_layer, x, *args, **kwargs):
    """Our layer from `hub_layer`'s config (as JSON holds it), with its weights."""
    hub_layer(x, *args, **kwargs)
    config = json.loads(json.dumps(hub_layer.get_config()))
    ours = getattr(kl, type(hub_layer).__name__).from_config(config)
    ours(x, *args, **kwargs)
    assert [(w.path.split("/", 1)[1], tuple(w.shape)) for w in ours.weights] == [
        (w.path.split("/", 1)[1], tuple(w.shape)) for w in hub_layer.weights]
    ours.set_weights(hub_layer.get_weights())
    return ours


CALLS = [{}, {"start_index": 2}, {"positions": POSITIONS}, {"positions": POSITIONS[1]}]


@pytest.mark.parametrize("call", CALLS, ids=["plain", "start_index", "positions", "shared"])
def test_position_embedding(call):
    if "start_index" in call:
        x = SEQUENCE[:, :3]
    else:
        x = SEQUENCE
    theirs = hub.PositionEmbedding(7)
    assert_same_outputs_and_gradients(ours_from(theirs, x), theirs, x, input_gradient=False,
                                      **call)


@pytest.mark.parametrize("call", CALLS, ids=["plain", "start_index", "positions", "shared"])
def test_sine_position_encoding(call):
    if "positions" in call:  # keras-hub's einsum needs float positions
        call = {"positions": call["positions"].astype("float32")}
    theirs = hub.SinePositionEncoding(max_wavelength=100)
    ours = ours_from(theirs, SEQUENCE)
    # No weights, and the outputs do not depend on the input's values: no gradients.
    np.testing.assert_allclose(to_numpy(ours(SEQUENCE, **call)),
                               to_numpy(theirs(SEQUENCE, **call)), **TOLERANCE)


ROPES = {
    "linear": {"max_wavelength": 100, "scaling_factor": 2.0},
    "dynamic": {"rope_type": "dynamic", "scaling_factor": 4.0},
    "yarn": {"rope_type": "yarn", "scaling_factor": 4.0, "original_max_position_embeddings": 8,
             "beta_fast": 8.0},
    "yarn_untruncated": {"rope_type": "yarn", "scaling_factor": 8.0, "truncate": False,
                         "original_max_position_embeddings": 4, "beta_fast": 4.0,
                         "beta_slow": 0.5},
    "denominator_dim": {"denominator_dim": 8, "max_wavelength": 50},
}


@pytest.mark.parametrize("rotation", ["keras", "halves"])
@pytest.mark.parametrize("call", CALLS, ids=["plain", "start_index", "positions", "shared"])
@pytest.mark.parametrize("arguments", ROPES.values(), ids=ROPES.keys())
def test_rotary_embedding(arguments, call, rotation):
    """Both rotations (embedding.ROTARY_FORMULATIONS) compute keras-hub's layer."""
    theirs = hub.RotaryEmbedding(**arguments)
    with formulation.forcing("rotary", rotation):
        assert_same_outputs_and_gradients(ours_from(theirs, HEADS), theirs, HEADS, **call)


@pytest.mark.parametrize("rotation", ["keras", "halves"])
def test_rotary_embedding_with_other_axes(rotation):
    theirs = hub.RotaryEmbedding(sequence_axis=2, feature_axis=1)
    x = SEQUENCE.transpose(0, 2, 1)
    with formulation.forcing("rotary", rotation):
        assert_same_outputs_and_gradients(ours_from(theirs, x), theirs, x)
        assert_same_outputs_and_gradients(ours_from(theirs, x), theirs, x, positions=POSITIONS)


@pytest.mark.parametrize("tie_weights", [True, False])
def test_token_and_position_embedding(tie_weights):
    theirs = hub.TokenAndPositionEmbedding(10, 7, 4, tie_weights=tie_weights, mask_zero=True)
    ours = ours_from(theirs, TOKENS)
    for call in CALLS[::2]:
        assert_same_outputs_and_gradients(ours, theirs, TOKENS, **call)
    # The token embedding projects back to logits as keras-hub's does.
    assert_same_outputs_and_gradients(ours.token_embedding, theirs.token_embedding, SEQUENCE,
                                      reverse=True, output_shape=(2, 5, 10))


@pytest.mark.parametrize("normalize_first", [False, True])
def test_transformer_encoder(normalize_first):
    theirs = hub.TransformerEncoder(8, num_heads=2, normalize_first=normalize_first)
    ours = ours_from(theirs, SEQUENCE)
    assert_same_outputs_and_gradients(ours, theirs, SEQUENCE)
    assert_same_outputs_and_gradients(ours, theirs, SEQUENCE, padding_mask=PADDING)
    outputs, scores = ours(SEQUENCE, padding_mask=PADDING, return_attention_scores=True)
    their_outputs, their_scores = theirs(SEQUENCE, padding_mask=PADDING,
                                         return_attention_scores=True)
    np.testing.assert_allclose(to_numpy(outputs), to_numpy(their_outputs), **TOLERANCE)
    np.testing.assert_allclose(to_numpy(scores), to_numpy(their_scores), **TOLERANCE)


@pytest.mark.parametrize("normalize_first", [False, True])
@pytest.mark.parametrize("with_encoder", [False, True])
def test_transformer_decoder(with_encoder, normalize_first):
    theirs = hub.TransformerDecoder(8, num_heads=2, normalize_first=normalize_first)
    args = (ENCODED,) if with_encoder else ()
    ours = ours_from(theirs, SEQUENCE, *args)
    assert ours.get_config()["decoder_sequence_shape"] == (2, 5, 4)
    assert_same_outputs_and_gradients(ours, theirs, SEQUENCE, *args)
    assert_same_outputs_and_gradients(ours, theirs, SEQUENCE, *args,
                                      decoder_padding_mask=PADDING)


def test_transformer_decoder_cache():
    theirs = hub.TransformerDecoder(8, num_heads=2)
    ours = ours_from(theirs, SEQUENCE, ENCODED)
    caches = {"self_attention_cache": np.zeros((2, 2, 5, 2, 2), "float32"),
              "cross_attention_cache": np.zeros((2, 2, 3, 2, 2), "float32")}
    for t in range(3):
        kwargs = {"self_attention_cache_update_index": t,
                  "cross_attention_cache_update_index": 0 if t == 0 else None}
        results = [layer(SEQUENCE[:, t:t + 1], ENCODED, **caches, **kwargs)
                   for layer in (ours, theirs)]
        for a, b in zip(*results, strict=True):
            np.testing.assert_allclose(to_numpy(a), to_numpy(b), **TOLERANCE)
        caches = dict(zip(caches, (to_numpy(c) for c in results[0][1:]), strict=True))


def test_a_built_decoder_config_builds_on_load():
    """keras-hub's decoder saves its build shapes and builds from them; ours too, both ways."""
    theirs = hub.TransformerDecoder(8, num_heads=2)
    theirs(SEQUENCE, ENCODED)
    ours = kl.TransformerDecoder.from_config(json.loads(json.dumps(theirs.get_config())))
    assert ours.built and len(ours.weights) == len(theirs.weights) == 26
    back = hub.TransformerDecoder.from_config(json.loads(json.dumps(ours.get_config())))
    assert back.built and len(back.weights) == 26
