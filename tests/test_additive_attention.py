"""AdditiveAttention: contract, parity with Keras (both score formulations), masks, dropout,
configs, errors."""

import keras
import numpy as np
import pytest

import keraslayers as kl
from keraslayers.layers import attention, formulation
from keraslayers.layers.formulation import KERAS
from tests.contract import check_layer_contract, random_inputs, to_numpy
from tests.test_attention import check_parity, close

QUERY = random_inputs((2, 3, 4), seed=31)
VALUE = random_inputs((2, 5, 6), seed=32)
KEY = random_inputs((2, 5, 4), seed=33)
SELF = random_inputs((2, 5, 4), seed=34)
GRID = random_inputs((2, 2, 3, 4), seed=35)  # (batch, rows, columns, features)
GRID_VALUE = random_inputs((2, 2, 5, 6), seed=36)
GRID_KEY = random_inputs((2, 2, 5, 4), seed=37)
QUERY_MASK = np.array([[True, True, False], [True, True, True]])
VALUE_MASK = np.array([[True, True, True, False, False], [True, False, True, True, True]])
SCORES = ("product", KERAS)


def _calls(layer, t):
    """Masks and scores, a plain call, a causal call with a value mask: compiled once on JAX."""
    query, value, key = t
    return [
        *layer([query, value, key], mask=[QUERY_MASK, VALUE_MASK],
               return_attention_scores=True),
        layer([query, value]) if value.shape[-1] == query.shape[-1] else layer([query, key]),
        layer([query, key, key], use_causal_mask=True, mask=[None, VALUE_MASK]),
    ]


def _gradient_calls(layer, t):
    query, value, key = t
    return [*layer([query, value, key], mask=[QUERY_MASK, VALUE_MASK],
                   return_attention_scores=True),
            layer([query, key, key], use_causal_mask=True)]


@pytest.mark.grid("chosen")
@pytest.mark.parametrize("chosen", SCORES)
@pytest.mark.parametrize("kwargs", [{}, {"use_scale": False}], ids=["scaled", "unscaled"])
def test_matches_keras(chosen, kwargs):
    with formulation.forcing("additive_scores", chosen):
        results = check_parity(kl.AdditiveAttention(**kwargs),
                               keras.layers.AdditiveAttention(**kwargs), [QUERY, VALUE, KEY],
                               _calls, _gradient_calls)
    assert results[0].shape == (2, 3, 6) and results[1].shape == (2, 3, 5)


@pytest.mark.grid("chosen")
@pytest.mark.parametrize("chosen", SCORES)
def test_rank_4_matches_keras(chosen):
    def call(layer, t):
        return list(layer(t, return_attention_scores=True))

    with formulation.forcing("additive_scores", chosen):
        results = check_parity(kl.AdditiveAttention(), keras.layers.AdditiveAttention(),
                               [GRID, GRID_VALUE, GRID_KEY], call)
    assert results[0].shape == (2, 2, 3, 6) and results[1].shape == (2, 2, 3, 5)


def test_values_of_keras_tests():
    query = np.array([[[1.0, 0.0], [0.0, 1.0]]], "float32")
    key = np.array([[[0.0, 1.0], [1.0, 0.0]]], "float32")
    value = np.array([[[1.0, 2.0], [3.0, 4.0]]], "float32")
    outputs, scores = kl.AdditiveAttention(use_scale=False)([query, value, key],
                                                            return_attention_scores=True)
    close(outputs, [[[1.727, 2.727], [2.272, 3.272]]], 1e-3)
    close(scores, [[[0.636, 0.363], [0.363, 0.636]]], 1e-3)
    ones = np.ones((1, 2, 2), "float32")
    outputs, scores = kl.AdditiveAttention(use_scale=False)(
        [query, ones], mask=[np.array([[True, False]])] * 2, return_attention_scores=True)
    close(outputs, [[[1.0, 1.0], [0.0, 0.0]]])
    close(scores, [[[1.0, 0.0], [1.0, 0.0]]])


def test_contract():
    check_layer_contract(lambda: kl.AdditiveAttention(), (2, 5, 4), input_data=SELF,
                         trainable_weights=1)
    check_layer_contract(lambda: kl.AdditiveAttention(use_scale=False, dropout=0.5, seed=3),
                         (2, 5, 4), input_data=SELF, seed_generators=1, random=True)


def test_query_mask_propagates_and_masked_queries_give_zeros():
    layer = kl.AdditiveAttention()
    mask = layer.compute_mask([QUERY, VALUE], [QUERY_MASK, VALUE_MASK])
    np.testing.assert_array_equal(to_numpy(mask), QUERY_MASK)
    assert layer.compute_mask([QUERY, VALUE], [None, VALUE_MASK]) is None
    outputs = to_numpy(layer([QUERY, VALUE, KEY], mask=[QUERY_MASK, VALUE_MASK]))
    assert np.all(outputs[~QUERY_MASK] == 0)


def test_reads_keras_masks_in_a_model():
    tokens = keras.Input((5,), dtype="int32")
    embedded = keras.layers.Embedding(7, 4, mask_zero=True)(tokens)
    outputs = kl.AdditiveAttention()([embedded, embedded])
    model = keras.Model(tokens, outputs)
    ids = np.array([[1, 2, 3, 0, 0], [4, 5, 6, 1, 2]], "int32")
    y = to_numpy(model(ids))
    assert np.all(y[0, 3:] == 0) and np.all(y[0, :3] != 0)


def test_self_attention_on_one_tensor():
    layer = kl.AdditiveAttention()
    close(layer(SELF), layer([SELF, SELF]), 1e-6)


def test_fully_masked_rows_give_zeros():
    outputs, scores = kl.AdditiveAttention()([QUERY, VALUE, KEY],
                                            mask=[None, np.zeros((2, 5), bool)],
                                            return_attention_scores=True)
    assert np.all(to_numpy(outputs) == 0) and np.all(to_numpy(scores) == 0)


def test_dropout_scores_are_the_dropped_weights_as_keras():
    kwargs = {"dropout": 0.5, "seed": 3}
    ours, theirs = kl.AdditiveAttention(**kwargs), keras.layers.AdditiveAttention(**kwargs)
    theirs([QUERY, VALUE, KEY])
    ours([QUERY, VALUE, KEY])
    ours.set_weights(theirs.get_weights())
    outputs, scores = (to_numpy(y) for y in ours([QUERY, VALUE, KEY],
                                                 return_attention_scores=True, training=True))
    expected = [to_numpy(y) for y in theirs([QUERY, VALUE, KEY], return_attention_scores=True,
                                            training=True)]
    close(outputs, expected[0])
    close(scores, expected[1])
    close(outputs, np.matmul(scores, VALUE))


def test_weights_and_config_as_keras():
    theirs = keras.layers.AdditiveAttention(use_scale=True, dropout=0.25, seed=5)
    theirs([QUERY, VALUE, KEY])
    config = theirs.get_config()
    ours = kl.AdditiveAttention.from_config(config)
    ours([QUERY, VALUE, KEY])
    assert ours.get_config() == {**config, "name": ours.name}
    assert "score_mode" not in ours.get_config()
    assert [(w.name, tuple(w.shape)) for w in ours.weights] == [("scale", (4,))]
    assert ours.seed == 5 and ours.dropout == 0.25


def test_scores_formulation_table():
    for kind in ("gpu", "tpu"):
        with formulation.forcing_device_kind(kind):
            assert attention.additive_scores_formulation() == KERAS
    with formulation.forcing_device_kind("cpu"):
        assert attention.additive_scores_formulation() == "product"


def test_mixed_precision_keeps_a_float32_scale_and_normalised_weights():
    layer = kl.AdditiveAttention(dtype="mixed_bfloat16")
    outputs, scores = layer([QUERY, VALUE, KEY], return_attention_scores=True)
    assert keras.backend.standardize_dtype(outputs.dtype) == "bfloat16"
    assert keras.backend.standardize_dtype(layer.scale.dtype) == "float32"
    np.testing.assert_allclose(to_numpy(keras.ops.sum(keras.ops.cast(scores, "float32"), -1)),
                               1.0, atol=1e-2)


def test_errors():
    layer = kl.AdditiveAttention(name="add")
    with pytest.raises(ValueError, match=r"AdditiveAttention layer 'add'.*list of length 4"):
        layer([QUERY, VALUE, KEY, KEY])
    with pytest.raises(ValueError, match=r"AdditiveAttention layer 'add'.*`mask` must be a list"):
        layer([QUERY, KEY], mask=QUERY_MASK)
    with pytest.raises(ValueError, match=r"AdditiveAttention layer .*`dropout`.*dropout=1.5"):
        kl.AdditiveAttention(dropout=1.5)
    with pytest.raises(ValueError, match=r"AdditiveAttention layer 'add'.*same feature size"):
        kl.AdditiveAttention(name="add")([QUERY, VALUE, VALUE])
    with pytest.raises(ValueError, match=r"AdditiveAttention layer 'add'.*must be known"):
        kl.AdditiveAttention(name="add").build([(2, 3, None), (2, 5, None)])
    with pytest.raises(ValueError, match=r"AdditiveAttention layer 'add'.*does not broadcast"):
        kl.AdditiveAttention(name="add")([QUERY, KEY], mask=[None, np.ones((2, 4), bool)])
