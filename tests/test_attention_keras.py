"""Attention, MultiHeadAttention, GroupQueryAttention against what Keras's own tests check
(keras/src/layers/attention/*_test.py), and issue 15: N-D Attention, scores under dropout,
per-head attention masks, shape errors, activity regularizer losses, the flash attention flag.

Where ours differs from Keras on purpose, the test says so.
"""

import warnings

import keras
import numpy as np
import pytest

import keraslayers as kl
from tests.contract import check_layer_contract, random_inputs, to_numpy
from tests.test_attention import check_parity, close

QUERY = random_inputs((2, 3, 4), seed=21)
VALUE = random_inputs((2, 5, 4), seed=22)
SELF = random_inputs((2, 5, 4), seed=23)
GRID = random_inputs((2, 2, 3, 4), seed=24)  # (batch, rows, columns, features)
GRID_VALUE = random_inputs((2, 2, 5, 4), seed=25)
HEAD_MASK = random_inputs((2, 2, 3, 5), "int32", seed=26, high=2).astype(bool) | np.eye(
    3, 5, dtype=bool
)  # (batch, heads, target, source); every row sees a position
VALUE_MASK = np.array([[True, True, True, False, False], [True, False, True, True, True]])


def _weights_shared(ours, theirs, *inputs):
    theirs(*inputs)
    ours(*inputs)
    ours.set_weights(theirs.get_weights())


@pytest.fixture
def flash_disabled():
    keras.config.disable_flash_attention()
    yield
    keras.config.enable_flash_attention()


@pytest.fixture
def fused_calls(monkeypatch):
    """The `flash_attention` argument of every `keras.ops.dot_product_attention` call."""
    seen = []
    dot_product_attention = keras.ops.dot_product_attention

    def spy(*args, **kwargs):
        seen.append(kwargs.get("flash_attention"))
        return dot_product_attention(*args, **kwargs)

    monkeypatch.setattr(keras.ops, "dot_product_attention", spy)
    return seen


# --- Attention: N-D inputs -----------------------------------------------------------------


def _grid_calls(layer, t):
    query, value = t
    return [layer([query, value]), *layer([query, value], return_attention_scores=True),
            layer([query, query], use_causal_mask=True)]


@pytest.mark.parametrize("kwargs", [{}, {"use_scale": True, "score_mode": "concat"}],
                         ids=["dot", "concat-scaled"])
def test_attention_on_rank_4_inputs_matches_keras(kwargs):
    results = check_parity(kl.Attention(**kwargs), keras.layers.Attention(**kwargs),
                           [GRID, GRID_VALUE], _grid_calls,
                           lambda layer, t: layer(list(t), return_attention_scores=True))
    assert results[0].shape == (2, 2, 3, 4) and results[2].shape == (2, 2, 3, 5)


def test_attention_on_rank_4_inputs_is_attention_per_row():
    layer = kl.Attention()
    outputs, scores = layer([GRID, GRID_VALUE], return_attention_scores=True)
    for row in range(2):
        expected, expected_scores = layer([GRID[:, row], GRID_VALUE[:, row]],
                                          return_attention_scores=True)
        close(to_numpy(outputs)[:, row], expected)
        close(to_numpy(scores)[:, row], expected_scores)


def test_attention_rank_4_masks_are_per_row():
    """Keras's layer fails on N-D inputs with masks (its (batch, ..., Tv) value mask does
    not broadcast against its scores); ours takes masks shaped like the inputs' positions."""
    layer = kl.Attention()
    value_mask = random_inputs((2, 2, 5), "int32", seed=27, high=2).astype(bool)
    value_mask[..., 0] = True
    query_mask = np.array([[[True, True, False]] * 2, [[True, False, True]] * 2])
    outputs = to_numpy(layer([GRID, GRID_VALUE], mask=[query_mask, value_mask]))
    for row in range(2):
        close(outputs[:, row], layer([GRID[:, row], GRID_VALUE[:, row]],
                                     mask=[query_mask[:, row], value_mask[:, row]]))
    assert np.all(outputs[~query_mask] == 0)


def test_attention_rank_4_symbolic_shapes():
    query, value = keras.Input((2, 3, 4)), keras.Input((2, 5, 6))
    key = keras.Input((2, 5, 4))
    outputs, scores = kl.Attention()([query, value, key], return_attention_scores=True)
    assert tuple(outputs.shape) == (None, 2, 3, 6) and tuple(scores.shape) == (None, 2, 3, 5)


def test_attention_rank_4_contract():
    query_mask = np.array([[[True, True, False]] * 2, [[True, False, True]] * 2])
    check_layer_contract(lambda: kl.Attention(use_scale=True, dropout=0.5, seed=2),
                         (2, 2, 3, 4), input_data=GRID, trainable_weights=1,
                         seed_generators=1, random=True, input_mask=query_mask,
                         expected_mask=query_mask)


def test_attention_refuses_inputs_that_do_not_fit():
    layer = kl.Attention(name="att")
    with pytest.raises(ValueError, match=r"'att'.*same rank >= 3.*\(2, 3, 4\).*\(2, 2, 5, 4\)"):
        layer([QUERY, GRID_VALUE])
    with pytest.raises(ValueError, match=r"'att'.*every axis before the attended one"):
        kl.Attention(name="att")([GRID, random_inputs((2, 3, 5, 4), seed=1)])
    with pytest.raises(ValueError, match=r"'att'.*same feature size.*\(2, 5, 6\)"):
        kl.Attention(name="att")([QUERY, VALUE, random_inputs((2, 5, 6), seed=1)])
    with pytest.raises(ValueError, match=r"'att'.*same length.*\(2, 4, 4\)"):
        kl.Attention(name="att").compute_output_shape([(2, 3, 4), (2, 5, 4), (2, 4, 4)])


# --- Attention: Keras's attention_test.py --------------------------------------------------


def test_attention_values_of_keras_tests():
    query = np.array([[[1.0, 0.0], [0.0, 1.0]]], "float32")
    key = np.array([[[0.0, 1.0], [1.0, 0.0]]], "float32")
    value = np.array([[[1.0, 2.0], [3.0, 4.0]]], "float32")
    outputs, scores = kl.Attention()([query, value, key], return_attention_scores=True)
    close(outputs, [[[2.462, 3.462], [1.538, 2.538]]], 1e-3)
    close(scores, [[[0.269, 0.731], [0.731, 0.269]]], 1e-3)
    outputs, scores = kl.Attention(score_mode="concat")([query, value, key],
                                                        return_attention_scores=True)
    close(outputs, [[[1.727, 2.727], [2.272, 3.272]]], 1e-3)
    close(scores, [[[0.636, 0.363], [0.363, 0.636]]], 1e-3)
    ones = np.ones((1, 2, 2), "float32")
    outputs, scores = kl.Attention()([query, ones], mask=[np.array([[True, False]])] * 2,
                                     return_attention_scores=True)
    close(outputs, [[[1.0, 1.0], [0.0, 0.0]]])
    close(scores, [[[1.0, 0.0], [1.0, 0.0]]])


def test_attention_dropout_scores_are_the_dropped_weights_as_keras():
    kwargs = {"dropout": 0.5, "seed": 3}
    ours, theirs = kl.Attention(**kwargs), keras.layers.Attention(**kwargs)
    outputs, scores = (to_numpy(y) for y in ours([QUERY, VALUE], return_attention_scores=True,
                                                 training=True))
    expected = [to_numpy(y) for y in theirs([QUERY, VALUE], return_attention_scores=True,
                                            training=True)]
    close(outputs, expected[0])
    close(scores, expected[1])
    # The scores are what multiplied the values: dropped (zero) or scaled by 1 / (1 - rate).
    close(outputs, np.matmul(scores, VALUE))
    inference = to_numpy(ours([QUERY, VALUE], return_attention_scores=True)[1])
    assert np.any(scores == 0)
    kept = scores != 0
    close(scores[kept], 2 * inference[kept])


def test_attention_errors_of_keras_tests():
    layer = kl.Attention()
    pair = [QUERY, VALUE]
    with pytest.raises(ValueError, match="length 4"):
        layer([QUERY, VALUE, VALUE, VALUE])
    with pytest.raises(ValueError, match="must be a list"):
        layer(pair, mask=np.ones((2, 3), bool))
    with pytest.raises(ValueError, match="length 2 or 3"):
        layer(pair, mask=[np.ones((2, 3), bool)])
    with pytest.raises(ValueError, match="score_mode='invalid'"):
        kl.Attention(score_mode="invalid")


def test_attention_compute_mask_as_keras():
    layer = kl.Attention()
    pair = [np.ones((2, 3, 4)), np.ones((2, 4, 4))]
    assert layer.compute_mask(pair, None) is None
    assert layer.compute_mask(pair, [None, np.array([True, False, True])]) is None
    for mask in (np.array([True, False, True]), np.array([1, 0, 1]), np.array([1.0, 0.0]),
                 np.array([False])):
        np.testing.assert_array_equal(to_numpy(layer.compute_mask(pair, [mask, ~(mask > 0)])),
                                      mask)


def test_attention_scores_tuple_symbolic_and_eager():
    layer = kl.Attention()
    query, value = keras.Input((3, 5)), keras.Input((4, 5))
    outputs, scores = layer([query, value], return_attention_scores=True)
    assert tuple(outputs.shape) == (None, 3, 5) and tuple(scores.shape) == (None, 3, 4)
    # A call with scores leaves no trace on the next symbolic call.
    eager = layer([QUERY, VALUE], return_attention_scores=True)
    assert isinstance(eager, tuple) and len(eager) == 2
    assert not isinstance(layer([query, value]), (tuple, list))
    assert layer.compute_output_shape([query.shape, value.shape]) == (None, 3, 5)


def test_attention_seed_in_config():
    restored = kl.Attention.from_config(kl.Attention(dropout=0.5, seed=1337).get_config())
    assert restored.seed == 1337


# --- scores under dropout: MultiHeadAttention and GroupQueryAttention ----------------------


@pytest.mark.parametrize("name", ["MultiHeadAttention", "GroupQueryAttention"])
def test_projected_attention_dropout_matches_keras(name):
    """Keras's MultiHeadAttention and GroupQueryAttention return the weights before dropout
    (unlike its Attention); with the same seed, ours drops the same weights."""
    args = {"MultiHeadAttention": (2, 3), "GroupQueryAttention": (2, 2, 1)}[name]
    ours = getattr(kl, name)(*args, dropout=0.5, seed=4)
    theirs = getattr(keras.layers, name)(*args, dropout=0.5, seed=4)
    _weights_shared(ours, theirs, QUERY, VALUE)
    for scores in (True, False):
        expected = theirs(QUERY, VALUE, training=True, return_attention_scores=scores)
        actual = ours(QUERY, VALUE, training=True, return_attention_scores=scores)
        for a, b in zip(keras.tree.flatten(actual), keras.tree.flatten(expected), strict=True):
            close(a, b)
    _, inference = ours(QUERY, VALUE, return_attention_scores=True)
    _, training = ours(QUERY, VALUE, training=True, return_attention_scores=True)
    close(training, inference)


# --- per-head attention masks --------------------------------------------------------------


@pytest.mark.parametrize("name", ["MultiHeadAttention", "GroupQueryAttention"])
def test_per_head_attention_mask_matches_keras(name):
    args = {"MultiHeadAttention": (2, 3), "GroupQueryAttention": (3, 2, 1)}[name]

    def calls(layer, t):
        query, value = t
        return [layer(query, value, attention_mask=HEAD_MASK),
                *layer(query, value, attention_mask=HEAD_MASK, return_attention_scores=True),
                layer(query, value, attention_mask=HEAD_MASK[:, :1])]

    ours = getattr(kl, name)(*args)
    check_parity(ours, getattr(keras.layers, name)(*args), [QUERY, VALUE], calls,
                 lambda layer, t: calls(layer, t)[:1])
    # Keras's layer merges a value mask (batch, 1, source) into a per-head mask by plain
    # broadcasting, to (batch, batch, target, source), mixing the batch's entries; ours
    # hides the masked values from every head.
    merged = HEAD_MASK & VALUE_MASK[:, None, None]
    for scores in (False, True):
        actual = ours(QUERY, VALUE, attention_mask=HEAD_MASK, value_mask=VALUE_MASK,
                      return_attention_scores=scores)
        expected = ours(QUERY, VALUE, attention_mask=merged, return_attention_scores=scores)
        for a, b in zip(keras.tree.flatten(actual), keras.tree.flatten(expected), strict=True):
            close(a, b)



def test_attention_masks_of_every_rank_agree():
    """Keras's test_masking_with_different_shapes: (T, S), (B, T, S), (B, heads, T, S)."""
    layer = kl.MultiHeadAttention(num_heads=2, key_dim=2)
    causal = np.tril(np.ones((5, 5), bool))
    first = layer(SELF, SELF, attention_mask=causal)
    for mask in (np.broadcast_to(causal, (2, 5, 5)), np.broadcast_to(causal, (2, 2, 5, 5))):
        close(layer(SELF, SELF, attention_mask=mask), first)
        close(layer(SELF, SELF, attention_mask=mask, return_attention_scores=True)[0], first)


def test_per_head_attention_mask_on_rank_4_inputs_matches_keras():
    """Rank-4 inputs attended over axis 2: the scores (batch, rows, heads, target, source)
    and a mask of that rank has the heads axis."""
    mask = random_inputs((2, 2, 2, 3, 5), "int32", seed=28, high=2).astype(bool)
    mask[..., 0] = True
    kwargs = {"num_heads": 2, "key_dim": 3, "attention_axes": (2,)}

    def calls(layer, t):
        query, value = t
        return [layer(query, value, attention_mask=mask),
                *layer(query, value, attention_mask=mask, return_attention_scores=True)]

    check_parity(kl.MultiHeadAttention(**kwargs), keras.layers.MultiHeadAttention(**kwargs),
                 [GRID, GRID_VALUE], calls, lambda layer, t: calls(layer, t)[:1])


def test_per_head_attention_mask_of_the_wrong_heads_is_refused():
    layer = kl.GroupQueryAttention(2, 4, 2, name="gqa")
    with pytest.raises(ValueError, match=r"'gqa'.*attention_mask.*\(2, 2, 3, 5\).*\(2, 4, 3, 5\)"):
        layer(QUERY, VALUE, attention_mask=HEAD_MASK)


# --- compute_output_shape and shape errors (Keras's test_compute_output_shape and
# --- test_shape_mismatch_error) ------------------------------------------------------------


@pytest.mark.parametrize(
    "query, value, key, output_shape",
    [((4, 8), (2, 8), None, None), ((4, 8), (2, 8), (2, 3), (3, 4)),
     ((4, 2, 3, 8), (1, 1, 5, 8), (1, 1, 5, 2), (3, 2)),
     ((4, 2, 3, 8), (4, 2, 3, 7), (4, 2, 3, 8), None)],
    ids=["self-key", "key-projected", "high-dim", "different-value-size"],
)
def test_multi_head_attention_compute_output_shape_is_the_outputs(query, value, key,
                                                                  output_shape):
    layer = kl.MultiHeadAttention(2, 2, value_dim=2, output_shape=output_shape)
    shapes = [(7, *query), (7, *value), None if key is None else (7, *key)]
    outputs = layer(*(None if s is None else np.ones(s, "float32") for s in shapes))
    assert layer.compute_output_shape(*shapes) == tuple(outputs.shape)
    assert layer.compute_output_shape(*(None if s is None else list(s) for s in shapes)) == (
        tuple(outputs.shape))


@pytest.mark.parametrize(
    "query, value, key",
    [((2, 4, 8), (2, 2, 7), (2,)), ((2, 4, 8), (2, 2, 8), (2, 1, 7)),
     ((2, 4, 2, 3, 8), (2, 1, 1, 5, 8), (2, 1, 15, 5, 2))],
    ids=["rank-1-key", "key-length", "high-dim"],
)
def test_multi_head_attention_refuses_value_and_key_that_differ(query, value, key):
    layer = kl.MultiHeadAttention(4, 2, value_dim=2)
    with pytest.raises(ValueError, match="must be equal"):
        layer.compute_output_shape(query, value, key)
    with pytest.raises(ValueError, match="must be equal"):
        layer(np.ones(query, "float32"), np.ones(value, "float32"), np.ones(key, "float32"))
    with pytest.raises(ValueError, match="must be equal"):
        layer(keras.Input(batch_shape=query), keras.Input(batch_shape=value),
              keras.Input(batch_shape=key))


def test_group_query_attention_shapes_as_keras():
    for key in (None, (7, 2, 3)):
        layer = kl.GroupQueryAttention(2, 4, 2, name="gqa")
        outputs = layer(np.ones((7, 4, 8), "float32"), np.ones((7, 2, 8), "float32"),
                        None if key is None else np.ones(key, "float32"))
        assert layer.compute_output_shape((7, 4, 8), (7, 2, 8), key) == tuple(outputs.shape)
    with pytest.raises(ValueError, match=r"'gqa'.*must be equal.*\(2, 4, 8\).*\(2, 2, 7\)"):
        layer.compute_output_shape((2, 4, 8), (2, 2, 7), 2)
    with pytest.raises(ValueError, match=r"'gqa'.*must be equal"):
        layer.compute_output_shape((2, 4, 8), (2, 2, 8), (2, 1, 7))
    # As Keras's: a symbolic call checks the query and value feature sizes, an eager one not.
    with pytest.raises(ValueError, match="must be equal"):
        layer(keras.Input((3, 4)), keras.Input((5, 6)))
    outputs, scores = layer(keras.Input((10, 8)), keras.Input((15, 8)),
                            return_attention_scores=True)
    assert tuple(outputs.shape) == (None, 10, 8) and tuple(scores.shape) == (None, 4, 10, 15)


@pytest.mark.parametrize("shape", [(1, 2, 3), (2, 3, 5)])
def test_symbolic_scores_shapes_are_the_eager_ones(shape):
    layer = kl.MultiHeadAttention(num_heads=4, key_dim=2)
    symbolic = layer(keras.Input(batch_shape=shape), keras.Input(batch_shape=shape),
                     return_attention_scores=True)
    data = random_inputs(shape, seed=29)
    eager = layer(data, data, return_attention_scores=True)
    assert [tuple(y.shape) for y in symbolic] == [tuple(y.shape) for y in eager]


# --- activity regularizer ------------------------------------------------------------------


@pytest.mark.parametrize("name, use_gate, expected", [
    ("MultiHeadAttention", False, 4), ("MultiHeadAttention", True, 5),
    ("GroupQueryAttention", False, 5),
])
def test_activity_regularizer_adds_the_losses_keras_adds(name, use_gate, expected):
    args = {"MultiHeadAttention": (2, 3), "GroupQueryAttention": (2, 2, 1)}[name]
    kwargs = {"activity_regularizer": "l2", "use_gate": use_gate}
    ours, theirs = getattr(kl, name)(*args, **kwargs), getattr(keras.layers, name)(*args,
                                                                                  **kwargs)
    _weights_shared(ours, theirs, QUERY, VALUE)
    ours(QUERY, VALUE)
    theirs(QUERY, VALUE)
    assert len(ours.losses) == len(theirs.losses) == expected
    close(sorted(float(to_numpy(x)) for x in ours.losses),
          sorted(float(to_numpy(x)) for x in theirs.losses))
    if name == "MultiHeadAttention":
        assert ours.activity_regularizer is None  # only the projections', as Keras's
    config = ours.get_config()
    assert config["activity_regularizer"]["class_name"] == "L2"
    restored = getattr(kl, name).from_config(config)
    restored(QUERY, VALUE)
    assert len(restored.losses) == expected


@pytest.mark.parametrize("name", ["MultiHeadAttention", "GroupQueryAttention"])
def test_configs_load_both_ways_with_keras(name):
    args = {"MultiHeadAttention": (2, 3), "GroupQueryAttention": (2, 2, 1)}[name]
    kwargs = {"activity_regularizer": "l2", "sliding_window": 2, "dropout": 0.25, "seed": 5}
    ours_class, theirs_class = getattr(kl, name), getattr(keras.layers, name)
    for source, target in ((theirs_class, ours_class), (ours_class, theirs_class)):
        layer = target.from_config(source(*args, **kwargs).get_config())
        layer(QUERY, VALUE)
        assert len(layer.losses) == {"MultiHeadAttention": 4, "GroupQueryAttention": 5}[name]
        assert layer.get_config()["sliding_window"] == 2 and layer.get_config()["seed"] == 5


# --- the flash attention flag --------------------------------------------------------------


@pytest.mark.parametrize("name", ["MultiHeadAttention", "GroupQueryAttention"])
def test_flash_attention_follows_the_global_flag_as_keras(name, flash_disabled, fused_calls):
    args = {"MultiHeadAttention": (2, 2), "GroupQueryAttention": (2, 2, 1)}[name]
    ours, theirs = getattr(kl, name)(*args), getattr(keras.layers, name)(*args)
    assert ours._flash_attention is theirs._flash_attention is False
    ours(QUERY, VALUE)
    assert fused_calls == [False]
    # Explicit True wins over the global flag, as in Keras; the argument is what is saved.
    forced = getattr(kl, name)(*args, flash_attention=True)
    assert forced._flash_attention is True and forced.get_config()["flash_attention"] is True
    assert getattr(kl, name)(*args).get_config()["flash_attention"] is None
    keras.config.enable_flash_attention()
    assert getattr(kl, name)(*args)._flash_attention is None
    assert ours._flash_attention is False  # read at construction, as Keras's


def test_flash_attention_false_is_kept_under_the_default_flag():
    """Keras's layers store `flash_attention or is_flash_attention_enabled()`, which turns an
    explicit False into None (backend's choice) while the flag is at its default; ours keeps
    False."""
    assert kl.MultiHeadAttention(2, 2, flash_attention=False)._flash_attention is False
    assert keras.layers.MultiHeadAttention(2, 2, flash_attention=False)._flash_attention is None


def test_attention_follows_the_global_flag(flash_disabled, fused_calls):
    kl.Attention()([QUERY, VALUE])
    keras.config.enable_flash_attention()
    kl.Attention()([QUERY, VALUE])
    assert fused_calls == [False, None]


@pytest.mark.parametrize("name", ["MultiHeadAttention", "GroupQueryAttention"])
def test_flash_attention_errors_as_keras(name):
    args = {"MultiHeadAttention": (2, 2), "GroupQueryAttention": (2, 2, 2)}[name]
    with pytest.raises(ValueError, match=rf"{name} layer .*[Dd]ropout is not supported.*"
                                         r"dropout=0.1"):
        getattr(kl, name)(*args, flash_attention=True, dropout=0.1)
    layer = getattr(kl, name)(*args, flash_attention=True)
    with pytest.raises(ValueError, match=r"attention scores is not supported.*"
                                         r"return_attention_scores=True"):
        layer(QUERY, QUERY, return_attention_scores=True)


# --- fully masked rows ---------------------------------------------------------------------


@pytest.mark.parametrize("scores", [False, True], ids=["fused", "explicit"])
def test_fully_masked_rows_give_zero_on_both_paths(scores):
    """Keras's fused path (and its Attention layer on every path) spreads such a row's
    weights evenly over the masked positions; ours gives zero weights and zero heads."""
    value_mask = np.array([[False] * 5, [True, False, True, False, True]])
    outputs = to_numpy(keras.tree.flatten(kl.Attention()(
        [QUERY, VALUE], mask=[None, value_mask], return_attention_scores=scores))[0])
    assert np.all(outputs[0] == 0) and not np.any(np.all(outputs[1] == 0, axis=-1))
    for layer in (kl.MultiHeadAttention(2, 2, bias_initializer="ones"),
                  kl.GroupQueryAttention(2, 2, 1, bias_initializer="ones")):
        result = layer(QUERY, VALUE, value_mask=value_mask, return_attention_scores=scores)
        outputs = to_numpy(keras.tree.flatten(result)[0])
        close(outputs[0], np.ones((3, 4)))  # the output bias alone
        if scores:
            assert np.all(to_numpy(result[1])[0] == 0)


# --- MultiHeadAttention and GroupQueryAttention: the rest of Keras's tests ------------------


@pytest.mark.parametrize("name", ["MultiHeadAttention", "GroupQueryAttention"])
@pytest.mark.parametrize("kwargs, weights, seed_generators", [
    ({}, 8, 0), ({"use_bias": False, "dropout": 0.5}, 4, 1), ({"use_gate": True}, 10, 0),
    ({"use_bias": False, "dropout": 0.5, "use_gate": True}, 5, 1),
])
def test_weight_counts_of_keras_tests(name, kwargs, weights, seed_generators):
    layer = (kl.MultiHeadAttention(2, 2, **kwargs) if name == "MultiHeadAttention"
             else kl.GroupQueryAttention(2, 2, 2, **kwargs))
    layer.build((2, 8, 16), (2, 4, 16))
    assert len(layer.trainable_weights) == weights
    assert len(layer.non_trainable_variables) == seed_generators  # SeedGenerator state
    assert len(layer.losses) == 0 and layer.supports_masking


@pytest.mark.parametrize("query, value, mask, axes", [
    ((3, 4), (3, 2), (4, 2), (2,)), ((3, 4), (3, 2), (3, 4, 2), (2,)),
    ((3, 4), (3, 2), (3, 2, 4, 2), (2,)), ((3, 4), (3, 2), (3, 4, 3, 2), (1, 2)),
    ((5, 3, 4), (5, 3, 2), (3, 4, 3, 2), (2, 3)),
    ((5, 3, 4), (5, 3, 2), (5, 3, 4, 3, 2), (2, 3)),
], ids=["4d-mask2", "4d-mask3", "4d-mask4", "4d-2d", "5d-2d", "5d-2d-full"])
def test_high_dim_attention_of_keras_tests(query, value, mask, axes):
    """Keras's test_high_dim_attention shapes, with the attention masks their names give."""
    query, value = random_inputs((3, *query, 8), seed=30), random_inputs((3, *value, 8), seed=31)
    mask = random_inputs((3, *mask), "int32", seed=32, high=2).astype(bool)
    mask[..., 0] = True
    kwargs = {"num_heads": 2, "key_dim": 2, "attention_axes": axes}
    ours, theirs = kl.MultiHeadAttention(**kwargs), keras.layers.MultiHeadAttention(**kwargs)
    _weights_shared(ours, theirs, query, value)
    assert len(ours.trainable_weights) == 8
    for mask_ in (None, mask):
        expected = theirs(query, value, attention_mask=mask_, return_attention_scores=True)
        actual = ours(query, value, attention_mask=mask_, return_attention_scores=True)
        assert tuple(actual[0].shape) == query.shape
        for a, b in zip(actual, expected, strict=True):
            close(a, b)


def test_attention_axes_negative_indexing():
    x = random_inputs((2, 3, 2, 4), seed=33)
    for use_gate in (False, True):
        positive = kl.MultiHeadAttention(2, 4, attention_axes=2, use_gate=use_gate)
        negative = kl.MultiHeadAttention(2, 4, attention_axes=-2, use_gate=use_gate)
        _weights_shared(negative, positive, x, x)
        for a, b in zip(positive(x, x, return_attention_scores=True),
                        negative(x, x, return_attention_scores=True), strict=True):
            close(a, b)


@pytest.mark.parametrize("bad", [0, -2, 1.5])
def test_multi_head_attention_refuses_bad_sizes(bad):
    for argument in ("num_heads", "key_dim", "value_dim"):
        kwargs = {"num_heads": 4, "key_dim": 4, argument: bad}
        with pytest.raises(ValueError, match=f"`{argument}`"):
            kl.MultiHeadAttention(**kwargs)
    kl.MultiHeadAttention(num_heads=4, key_dim=4, value_dim=None)
    with pytest.raises(ValueError, match="output_shape=8.0"):
        kl.MultiHeadAttention(2, 16, output_shape=8.0)
    for name in ("MultiHeadAttention", "GroupQueryAttention"):
        args = (2, 4) if name == "MultiHeadAttention" else (2, 2, 2)
        for window in (0, -3):
            with pytest.raises(ValueError, match=f"sliding_window={window}"):
                getattr(kl, name)(*args, sliding_window=window)
        restored = getattr(kl, name).from_config(getattr(kl, name)(
            *args, sliding_window=5).get_config())
        assert restored.sliding_window == 5


@pytest.mark.parametrize("argument", ["head_dim", "num_key_value_heads"])
def test_group_query_attention_zero_sizes_raise_what_keras_raises(argument):
    """Keras's layer divides by these (ZeroDivisionError); ours raises an error that is
    both that and the ValueError of every other bad size."""
    kwargs = {"head_dim": 2, "num_query_heads": 2, "num_key_value_heads": 1, argument: 0}
    with pytest.raises(ZeroDivisionError):
        keras.layers.GroupQueryAttention(**kwargs)
    for error in (ZeroDivisionError, ValueError):
        with pytest.raises(error, match=rf"GroupQueryAttention layer .*{argument}=0"):
            kl.GroupQueryAttention(**kwargs)
    with pytest.raises(ValueError, match=rf"{argument}=-1") as raised:
        kl.GroupQueryAttention(**{**kwargs, argument: -1})
    assert not isinstance(raised.value, ZeroDivisionError)


@pytest.mark.parametrize("name", ["MultiHeadAttention", "GroupQueryAttention"])
def test_projections_get_their_own_initial_values_and_constraints(name):
    args = (12, 4) if name == "MultiHeadAttention" else (4, 12, 12)
    layer = getattr(kl, name)(
        *args, use_gate=True, kernel_initializer=keras.initializers.TruncatedNormal(0.02),
        kernel_constraint="non_neg", bias_constraint="non_neg")
    layer.build((2, 4, 8), (2, 4, 8))
    query = to_numpy(layer.query_dense.kernel)
    for sublayer in (layer.key_dense, layer.value_dense, layer.gate_dense):
        assert not np.allclose(query, to_numpy(sublayer.kernel))
        assert isinstance(sublayer.kernel.constraint, keras.constraints.NonNeg)
        assert isinstance(sublayer.bias.constraint, keras.constraints.NonNeg)
    assert not np.allclose(query.ravel()[:64], to_numpy(layer.output_dense.kernel).ravel()[:64])


EMBEDDED_QUERY = np.array([[1, 2, 3, 0, 0], [3, 3, 1, 1, 2], [1, 0, 0, 0, 0]])
EMBEDDED_VALUE = np.array([[5, 4, 0], [3, 0, 0], [2, 1, 1]])


@pytest.mark.parametrize("name", ["MultiHeadAttention", "GroupQueryAttention"])
@pytest.mark.parametrize("causal", [False, True])
def test_keras_masks_are_the_attention_mask_they_imply(name, causal):
    layer = kl.MultiHeadAttention(2, 2) if name == "MultiHeadAttention" else (
        kl.GroupQueryAttention(2, 2, 2))
    assert layer.supports_masking
    query = kl.Embedding(4, 8, mask_zero=True)(EMBEDDED_QUERY)
    value = kl.Embedding(6, 8, mask_zero=True)(EMBEDDED_VALUE)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outputs = layer(query=query, value=value, use_causal_mask=causal)
    assert not caught
    np.testing.assert_array_equal(to_numpy(outputs._keras_mask), EMBEDDED_QUERY != 0)
    mask = (EMBEDDED_QUERY != 0)[:, :, None] & (EMBEDDED_VALUE != 0)[:, None, :]
    if causal:
        mask &= np.tri(5, 3, dtype=bool)
    plain = [keras.ops.convert_to_tensor(to_numpy(x)) for x in (query, value)]
    close(layer(query=plain[0], value=plain[1], attention_mask=mask), outputs)


@pytest.mark.parametrize("name", ["MultiHeadAttention", "GroupQueryAttention"])
def test_sliding_window_scores(name):
    layer = kl.MultiHeadAttention(2, 4, sliding_window=3) if name == "MultiHeadAttention" else (
        kl.GroupQueryAttention(4, 4, 2, sliding_window=3))
    x = random_inputs((1, 6, 8), seed=34)
    rows, columns = np.indices((6, 6))
    for causal in (True, False):
        _, scores = layer(x, x, use_causal_mask=causal, return_attention_scores=True)
        seen = np.abs(rows - columns) < 3
        if causal:
            seen &= columns <= rows
        scores = to_numpy(scores)[0, 0]
        assert np.all(scores[seen] > 0) and np.all(scores[~seen] == 0)


@pytest.mark.parametrize("name", ["MultiHeadAttention", "GroupQueryAttention"])
@pytest.mark.parametrize("dropout, scores", [(0.0, True), (0.1, False), (0.1, True)])
def test_causal_mask_holds_off_the_fused_path(name, dropout, scores):
    layer = kl.MultiHeadAttention(2, 4, dropout=dropout) if name == "MultiHeadAttention" else (
        kl.GroupQueryAttention(4, 4, 2, dropout=dropout))
    x = random_inputs((1, 6, 8), seed=35)
    future = np.triu(np.ones((6, 6), bool), k=1)
    if scores:
        _, weights = layer(x, x, use_causal_mask=True, return_attention_scores=True)
        assert to_numpy(weights)[..., future].sum() < 1e-6
    else:
        close(layer(x, x, use_causal_mask=True), layer(x, x, attention_mask=~future))
    extra = np.ones((1, 6, 6), bool)
    extra[:, 2, 1] = False
    close(layer(x, x, attention_mask=extra, use_causal_mask=True),
          layer(x, x, attention_mask=extra & ~future))


def test_causal_mask_on_rank_4_inputs():
    x = random_inputs((1, 5, 3, 8), seed=36)
    layer = kl.MultiHeadAttention(2, 4, attention_axes=1)
    _, scores = layer(x, x, use_causal_mask=True, return_attention_scores=True)
    assert to_numpy(scores)[..., np.triu(np.ones((5, 5), bool), k=1)].sum() < 1e-6


@pytest.mark.parametrize("name", ["MultiHeadAttention", "GroupQueryAttention"])
def test_values_of_keras_correctness_tests(name):
    """Identity projections over 8 heads of 8 (Keras checks them in float16)."""
    layer = kl.MultiHeadAttention(8, 8) if name == "MultiHeadAttention" else (
        kl.GroupQueryAttention(8, 8, 8))
    query = np.identity(8, dtype="float32")[None]
    value = (np.arange(64, dtype="float32").reshape(1, 8, 8) / 100.0)
    layer.build(query.shape, value.shape, query.shape)
    kernel = np.repeat(np.identity(8, dtype="float32")[:, None], 8, axis=1)
    layer.set_weights([kernel, np.zeros((8, 8))] * 3 + [kernel, np.zeros(8)])
    column = np.array([2.406, 2.440, 2.473, 2.504, 2.535, 2.568, 2.602, 2.633])
    expected = np.tile(column[None, :, None], (1, 1, 8))
    scores_row = np.full((8, 8), 0.1187) + np.eye(8) * (0.1691 - 0.1187)
    outputs, scores = layer(query, value, query, return_attention_scores=True)
    close(outputs, expected, 1e-2)
    close(scores, np.broadcast_to(scores_row, (1, 8, 8, 8)), 1e-2)
    close(layer(query, value, query), expected, 1e-2)


@pytest.mark.parametrize("output_shape, expected", [(8, (2, 4, 8)), ((8, 8), (2, 4, 8, 8))])
def test_output_shape_as_int_or_tuple(output_shape, expected):
    x = random_inputs((2, 4, 16), seed=37)
    assert tuple(kl.MultiHeadAttention(2, 16, output_shape=output_shape)(x, x).shape) == expected
