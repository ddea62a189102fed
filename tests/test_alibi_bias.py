"""AlibiBias: contract, the slopes and the bias by hand, keras-hub's layer (config, outputs,
gradients), errors."""

import json
import math

import keras
import numpy as np
import pytest

import keraslayers as kl
from keraslayers.layers.embedding import alibi_slopes
from tests.call_parity import assert_same_outputs_and_gradients
from tests.contract import check_layer_contract, random_inputs, to_numpy

SCORES = random_inputs((2, 4, 3, 5), seed=1)


def test_alibi_bias_contract():
    check_layer_contract(lambda: kl.AlibiBias(alibi_bias_max=4), (2, 4, 3, 5),
                         input_data=SCORES)


def test_alibi_bias_adds_a_slope_per_head_times_the_distance_to_the_last_key():
    y = to_numpy(kl.AlibiBias()(SCORES))
    # 4 heads, alibi_bias_max 8: slopes 2 ** -2, 2 ** -4, 2 ** -6, 2 ** -8.
    slopes = np.array([2.0 ** -2, 2.0 ** -4, 2.0 ** -6, 2.0 ** -8])
    distances = np.arange(5) - 4
    expected = SCORES + slopes[None, :, None, None] * distances[None, None, None, :]
    np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-6)


def test_slopes_of_a_head_count_that_is_not_a_power_of_two():
    # 6 heads: the 4 slopes of 4 heads, then every other slope of 8 heads, the first two.
    four, eight = alibi_slopes(4), alibi_slopes(8)
    assert alibi_slopes(6) == four + eight[0::2][:2]
    assert alibi_slopes(8, alibi_bias_max=16) == [2.0 ** (-2 * (h + 1)) for h in range(8)]
    assert math.isclose(alibi_slopes(1)[0], 2.0 ** -8)


@pytest.mark.parametrize("heads, alibi_bias_max", [(4, 8), (6, 8), (3, 5)])
def test_alibi_bias_matches_keras_hub(heads, alibi_bias_max):
    keras_hub = pytest.importorskip("keras_hub")
    theirs = keras_hub.layers.AlibiBias(alibi_bias_max=alibi_bias_max)
    # keras-hub's config loads into ours and back.
    ours = kl.AlibiBias.from_config(json.loads(json.dumps(theirs.get_config())))
    keras_hub.layers.AlibiBias.from_config(ours.get_config())
    scores = random_inputs((2, heads, 3, 7), seed=heads)
    assert_same_outputs_and_gradients(ours, theirs, scores)


def test_alibi_bias_keeps_unknown_lengths_and_the_compute_dtype():
    layer = kl.AlibiBias()
    assert tuple(layer(keras.Input((4, None, None))).shape) == (None, 4, None, None)
    half = kl.AlibiBias(dtype="mixed_bfloat16")(SCORES)
    assert keras.backend.standardize_dtype(half.dtype) == "bfloat16"
    np.testing.assert_allclose(to_numpy(half).astype("float32"), to_numpy(layer(SCORES)),
                               rtol=1e-2, atol=2e-2)


def test_alibi_bias_rejects_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match=r"AlibiBias layer 'alibi'.*alibi_bias_max=0"):
        kl.AlibiBias(alibi_bias_max=0, name="alibi")
    layer = kl.AlibiBias(name="alibi")
    with pytest.raises(ValueError, match=r"'alibi'.*\(batch, heads, query_length, key_length\)"
                                         r".*shape \(2, 3, 5\)"):
        layer(SCORES[:, 0])
    with pytest.raises(ValueError, match=r"'alibi'.*known number of heads.*\(None, None, 3, 5\)"):
        layer(keras.Input(batch_shape=(None, None, 3, 5)))
