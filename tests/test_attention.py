"""Attention, MultiHeadAttention, GroupQueryAttention: contract, parity with Keras, masks,
errors.

Tiny shapes, reused across tests, keep JAX's per-shape compilations few.
"""

import os
import re
import tempfile

import keras
import numpy as np
import pytest

import keraslayers as kl
from tests.contract import (
    BACKEND,
    check_layer_contract,
    dtype_policy,
    random_inputs,
    to_numpy,
)

QUERY = random_inputs((2, 3, 4), seed=1)
VALUE = random_inputs((2, 5, 6), seed=2)
KEY = random_inputs((2, 5, 4), seed=3)
VALUE_SIZED_KEY = random_inputs((2, 5, 6), seed=6)
SELF = random_inputs((2, 5, 4), seed=4)
IMAGE = random_inputs((2, 2, 3, 4), seed=11)  # (batch, height, width, channels)
QUERY_MASK = np.array([[True, True, False], [True, True, True]])
VALUE_MASK = np.array([[True, True, True, False, False], [True, False, True, True, True]])
SEEDED = {"class_name": "GlorotUniform", "config": {"seed": 1}}
ATTENTION_MASK = random_inputs((2, 3, 5), "int32", seed=5, high=2).astype(bool) | np.eye(
    3, 5, dtype=bool
)


# --- outputs and gradients of a layer called on several inputs, on every backend ---------


def outputs_and_gradients(layer, inputs, call):
    """[each output, d loss/d each input, d loss/d each trainable weight].

    `call(layer, tensors)` runs the layer; the loss is `sum(output * c)` summed over the
    outputs, for fixed random `c`.
    """
    outputs = keras.tree.flatten(call(layer, [keras.ops.convert_to_tensor(x) for x in inputs]))
    cotangents = [random_inputs(tuple(y.shape), seed=7 + i) for i, y in enumerate(outputs)]
    return [to_numpy(r) for r in _GRADIENTS[BACKEND](layer, inputs, call, cotangents)]


def _loss(outputs, cotangents):
    return sum(
        keras.ops.sum(keras.ops.cast(y, "float32") * keras.ops.convert_to_tensor(c))
        for y, c in zip(keras.tree.flatten(outputs), cotangents, strict=True)
    )


def _tensorflow(layer, inputs, call, cotangents):
    import tensorflow as tf

    tensors = [tf.constant(x) for x in inputs]
    with tf.GradientTape() as tape:
        tape.watch(tensors)
        outputs = call(layer, tensors)
        loss = _loss(outputs, cotangents)
    grads = tape.gradient(loss, tensors + list(layer.trainable_variables))
    return [*keras.tree.flatten(outputs), *grads]


def _jax(layer, inputs, call, cotangents):
    import jax

    variables = layer.trainable_variables
    frozen = [(v, v.value) for v in layer.non_trainable_variables]

    def loss(tensors, weights):
        mapping = list(zip(variables, weights, strict=True)) + frozen
        with keras.StatelessScope(state_mapping=mapping):
            outputs = call(layer, tensors)
        return _loss(outputs, cotangents), outputs

    weights = [v.value for v in variables]
    # One compiled program: op by op, JAX would compile every small op separately.
    gradient = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))
    (_, outputs), grads = gradient(list(inputs), weights)
    return [*keras.tree.flatten(outputs), *grads[0], *grads[1]]


def _torch(layer, inputs, call, cotangents):
    import torch

    tensors = [torch.tensor(x, requires_grad=True) for x in inputs]
    for variable in layer.trainable_variables:
        variable.value.grad = None
    outputs = call(layer, tensors)
    _loss(outputs, cotangents).backward()
    grads = [t.grad for t in tensors] + [v.value.grad for v in layer.trainable_variables]
    return [*(y.detach() for y in keras.tree.flatten(outputs)), *grads]


_GRADIENTS = {"tensorflow": _tensorflow, "jax": _jax, "torch": _torch}


def check_parity(ours, theirs, inputs, call, gradient_call=None, tolerance=1e-5):
    """Same weight names, shapes and order as Keras's layer; same outputs of `call`, and
    same outputs and gradients of `gradient_call` (default `call`).

    A short `gradient_call` keeps JAX fast: it compiles the whole differentiated program.
    """
    tensors = [keras.ops.convert_to_tensor(x) for x in inputs]
    expected = [to_numpy(y) for y in keras.tree.flatten(call(theirs, tensors))]
    call(ours, tensors)
    assert [(w.path.split("/", 1)[1], tuple(w.shape)) for w in ours.weights] == [
        (w.path.split("/", 1)[1], tuple(w.shape)) for w in theirs.weights
    ]
    ours.set_weights(theirs.get_weights())
    actual = [to_numpy(y) for y in keras.tree.flatten(call(ours, tensors))]
    gradient_call = call if gradient_call is None else gradient_call
    expected += outputs_and_gradients(theirs, inputs, gradient_call)
    actual += outputs_and_gradients(ours, inputs, gradient_call)
    assert len(actual) == len(expected)
    for a, b in zip(actual, expected, strict=True):
        np.testing.assert_allclose(a, b, rtol=tolerance, atol=tolerance)
    return actual


def close(a, b, tolerance=1e-5):
    np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=tolerance, atol=tolerance)



# --- Attention -----------------------------------------------------------------------------


def _attention_gradient_calls(layer, t):
    """One call down each path: explicit (masks, scores) and fused."""
    query, value, key = t
    return [*layer([query, value, key], mask=[QUERY_MASK, VALUE_MASK],
                   return_attention_scores=True),
            layer([query, key, key], use_causal_mask=True, mask=[None, VALUE_MASK])]


def _attention_calls(layer, t):
    """Several calls in one: each configuration is compiled once on JAX."""
    query, value, key = t
    return [
        # masks and scores: the explicit formulation
        *layer([query, value, key], mask=[QUERY_MASK, VALUE_MASK],
               return_attention_scores=True),
        # no scores: keras.ops.dot_product_attention where the scores are a plain product
        layer([query, key]),
        layer([query, key, key], use_causal_mask=True, mask=[None, VALUE_MASK]),
    ]


@pytest.mark.parametrize(
    "kwargs", [{}, {"use_scale": True}, {"score_mode": "concat", "use_scale": True}],
    ids=["dot", "dot-scaled", "concat-scaled"],
)
def test_attention_matches_keras(kwargs):
    results = check_parity(kl.Attention(**kwargs), keras.layers.Attention(**kwargs),
                           [QUERY, VALUE, KEY], _attention_calls, _attention_gradient_calls)
    assert results[0].shape == (2, 3, 6) and results[1].shape == (2, 3, 5)


def test_attention_self_attention_on_one_tensor():
    layer = kl.Attention()
    np.testing.assert_allclose(to_numpy(layer(SELF)), to_numpy(layer([SELF, SELF])),
                               rtol=1e-6, atol=1e-6)
    mask = VALUE_MASK
    np.testing.assert_allclose(to_numpy(layer(SELF, mask=mask)),
                               to_numpy(layer([SELF, SELF], mask=[mask, mask])),
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(to_numpy(layer.compute_mask(SELF, mask)), mask)


def test_attention_contract():
    check_layer_contract(lambda: kl.Attention(use_scale=True, score_mode="concat"), (2, 5, 4),
                         input_data=SELF, trainable_weights=2)
    check_layer_contract(lambda: kl.Attention(dropout=0.5, seed=3), (2, 5, 4),
                         input_data=SELF, seed_generators=1, random=True)


def test_attention_propagates_the_query_mask():
    layer = kl.Attention()
    mask = layer.compute_mask([QUERY, VALUE], [QUERY_MASK, VALUE_MASK])
    np.testing.assert_array_equal(to_numpy(mask), QUERY_MASK)
    assert layer.compute_mask([QUERY, VALUE], [None, VALUE_MASK]) is None


# --- MultiHeadAttention --------------------------------------------------------------------


def _mha_calls(layer, t):
    """Cross-, masked, causal and self-attention, with and without scores, in one."""
    query, value, key = t
    return [
        layer(query, value, key),
        layer(query, value, attention_mask=ATTENTION_MASK, value_mask=VALUE_MASK,
              key_mask=VALUE_MASK | np.eye(2, 5, dtype=bool)),
        # A query as long as the value, for causal masks.
        layer(SELF, value, use_causal_mask=True),
        *layer(SELF, value, use_causal_mask=True, value_mask=VALUE_MASK,
               return_attention_scores=True),
        *layer(query, value, key, attention_mask=ATTENTION_MASK[0],
               return_attention_scores=True),
    ]


def _mha_gradient_calls(layer, t):
    """One call down each path: fused (masks) and explicit (causal, masks, scores)."""
    query, value, key = t
    return [
        layer(query, value, key, attention_mask=ATTENTION_MASK, value_mask=VALUE_MASK),
        *layer(SELF, value, use_causal_mask=True, value_mask=VALUE_MASK,
               return_attention_scores=True),
    ]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_heads": 2, "key_dim": 3},
        {"num_heads": 1, "key_dim": 2, "use_bias": False, "use_gate": True,
         "sliding_window": 2},
    ],
    ids=["default", "gate-window-nobias"],
)
def test_multi_head_attention_matches_keras(kwargs):
    check_parity(kl.MultiHeadAttention(**kwargs), keras.layers.MultiHeadAttention(**kwargs),
                 [QUERY, VALUE, VALUE_SIZED_KEY], _mha_calls, _mha_gradient_calls)


def test_multi_head_attention_value_dim_and_output_shape_match_keras():
    """Keras's own layer fails on JAX when value_dim != key_dim unless it returns scores
    (its fused path needs equal head sizes), so every call here returns them."""
    kwargs = {"num_heads": 2, "key_dim": 3, "value_dim": 2, "output_shape": (2, 3)}

    def calls(layer, t):
        query, value, key = t
        return [*layer(query, value, key, return_attention_scores=True),
                *layer(query, value, key, attention_mask=ATTENTION_MASK,
                       return_attention_scores=True)]

    check_parity(kl.MultiHeadAttention(**kwargs), keras.layers.MultiHeadAttention(**kwargs),
                 [QUERY, VALUE, KEY], calls,
                 lambda layer, t: layer(*t, value_mask=VALUE_MASK, return_attention_scores=True))


def numpy_multi_head_attention(layer, query, value, mask=None):
    """The reference formula, in NumPy, with the layer's weights (all with biases)."""
    w = [to_numpy(v) for v in layer.weights]
    q = np.einsum("btd,dnh->btnh", query, w[0]) + w[1]
    k = np.einsum("bsd,dnh->bsnh", value, w[2]) + w[3]
    v = np.einsum("bsd,dnh->bsnh", value, w[4]) + w[5]
    scores = np.einsum("btnh,bsnh->bnts", q, k) / np.sqrt(q.shape[-1])
    if mask is not None:
        scores = np.where(mask[:, None], scores, -1e9)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    heads = np.einsum("bnts,bsnh->btnh", weights, v)
    return np.einsum("btnh,nho->bto", heads, w[6]) + w[7]


def test_multi_head_attention_value_dim_differs_on_every_backend():
    """Keras 3.15's own layer fails here on JAX (its fused path needs equal head sizes)."""
    layer = kl.MultiHeadAttention(num_heads=2, key_dim=3, value_dim=5)
    mask = np.broadcast_to(VALUE_MASK[:, None], (2, 3, 5))
    y = layer(QUERY, VALUE, value_mask=VALUE_MASK)
    assert tuple(y.shape) == (2, 3, 4)
    np.testing.assert_allclose(to_numpy(y), numpy_multi_head_attention(layer, QUERY, VALUE, mask),
                               rtol=1e-5, atol=1e-5)
    assert [tuple(w.shape) for w in layer.weights] == [
        (4, 2, 3), (2, 3), (6, 2, 3), (2, 3), (6, 2, 5), (2, 5), (2, 5, 4), (4,)]


def test_multi_head_attention_query_mask_hides_rows():
    """Keras's layer ignores an explicit `query_mask` unless `query` carries a Keras mask;
    ours honours it. A hidden row sees nothing: its heads are zero, so its output is the
    output bias (Keras's fused path averages the values there instead, its explicit path
    gives zero, like ours)."""
    ours = kl.MultiHeadAttention(num_heads=2, key_dim=3)
    theirs = keras.layers.MultiHeadAttention(num_heads=2, key_dim=3)
    theirs(QUERY, VALUE)
    ours(QUERY, VALUE)
    ours.set_weights(theirs.get_weights())
    y = to_numpy(ours(QUERY, VALUE, query_mask=QUERY_MASK))
    rows = np.broadcast_to(QUERY_MASK[:, :, None], (2, 3, 5))
    expected = to_numpy(theirs(QUERY, VALUE, attention_mask=rows))
    np.testing.assert_allclose(y[QUERY_MASK], expected[QUERY_MASK], rtol=1e-5, atol=1e-5)
    bias = to_numpy(ours.output_dense.bias)
    np.testing.assert_allclose(y[~QUERY_MASK], bias[None], rtol=1e-6, atol=1e-6)
    _, scores = ours(QUERY, VALUE, query_mask=QUERY_MASK, return_attention_scores=True)
    assert np.all(to_numpy(scores)[0, :, 2] == 0)


def test_multi_head_attention_reads_keras_masks_in_a_model():
    tokens = keras.Input((5,), dtype="int32")
    x = kl.Embedding(10, 4, mask_zero=True)(tokens)
    attended = kl.MultiHeadAttention(num_heads=2, key_dim=2)(x, x)
    alone = kl.MultiHeadAttention(num_heads=2, key_dim=2)(x)
    model = keras.Model(tokens, [attended, alone])
    data = np.array([[3, 4, 5, 0, 0], [1, 2, 0, 0, 0]], "int32")
    embedding = model.layers[1]
    first = [to_numpy(y) for y in model(data)]
    # What padding embeds to must not reach the outputs at real positions.
    table = to_numpy(embedding.embeddings).copy()
    table[0] += 5.0
    embedding.embeddings.assign(table)
    second = [to_numpy(y) for y in model(data)]
    for a, b in zip(first, second, strict=True):
        np.testing.assert_allclose(a[0, :3], b[0, :3], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(a[1, :2], b[1, :2], rtol=1e-5, atol=1e-5)


def test_multi_head_attention_contract():
    def make_layer():
        return kl.MultiHeadAttention(num_heads=2, key_dim=2, dropout=0.5, seed=1,
                                     output_shape=3, kernel_initializer=SEEDED)

    check_layer_contract(make_layer, (2, 5, 4), input_data=SELF,
                         expected_output_shape=(2, 5, 3), trainable_weights=8,
                         seed_generators=1, random=True)


def test_multi_head_attention_symbolic_cross_attention_and_scores():
    query, value = keras.Input((3, 4)), keras.Input((5, 6))
    layer = kl.MultiHeadAttention(num_heads=2, key_dim=3)
    outputs, scores = layer(query, value, return_attention_scores=True)
    assert tuple(outputs.shape) == (None, 3, 4)
    assert tuple(scores.shape) == (None, 2, 3, 5)


def test_multi_head_attention_saves_and_loads_with_two_inputs():
    query, value = keras.Input((3, 4)), keras.Input((5, 6))
    outputs = kl.MultiHeadAttention(num_heads=2, key_dim=3, value_dim=2)(
        query, value, use_causal_mask=True)
    model = keras.Model([query, value], outputs)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "mha.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(to_numpy(loaded([QUERY, VALUE])), to_numpy(model([QUERY, VALUE])),
                               rtol=1e-6, atol=1e-6)


# --- MultiHeadAttention on inputs of any rank, over any axes -------------------------------


def _first_key_always_visible(shape, seed):
    """A random boolean mask whose every row sees at least the first key position."""
    mask = random_inputs(shape, "int32", seed=seed, high=2).astype(bool)
    mask.reshape(-1)[:: int(np.prod(shape[-1:]))] = True
    return mask


# name: (attention_axes, value, attention_mask in Keras's layout)
RANK_4 = {
    # (batch, 2, 3, 4) attends over both axes to (batch, 3, 2, 6): mask (batch, 2, 3, 3, 2)
    "image-2d": ((1, 2), random_inputs((2, 3, 2, 6), seed=12),
                 _first_key_always_visible((2, 2, 3, 3, 2), seed=13)),
    # each of the 2 rows attends over its 3 columns to 5 columns: mask (batch, 2, 3, 5)
    "rows": ((2,), random_inputs((2, 2, 5, 6), seed=14),
             _first_key_always_visible((2, 2, 3, 5), seed=15)),
}


@pytest.mark.parametrize("name", list(RANK_4))
def test_multi_head_attention_any_rank_and_axes_match_keras(name):
    axes, value, mask = RANK_4[name]
    kwargs = {"num_heads": 2, "key_dim": 3, "attention_axes": axes}

    def calls(layer, t):
        query, value = t
        return [layer(query, value), layer(query, value, attention_mask=mask),
                *layer(query, value, attention_mask=mask, return_attention_scores=True)]

    def gradient_calls(layer, t):
        query, value = t
        return [layer(query, value, attention_mask=mask),
                *layer(query, value, return_attention_scores=True)]

    results = check_parity(kl.MultiHeadAttention(**kwargs),
                           keras.layers.MultiHeadAttention(**kwargs), [IMAGE, value], calls,
                           gradient_calls)
    assert results[0].shape == IMAGE.shape
    # (batch, *other axes, heads, *attended query axes, *attended value axes)
    assert results[3].shape == {"image-2d": (2, 2, 2, 3, 3, 2), "rows": (2, 2, 2, 3, 5)}[name]


@pytest.mark.parametrize("name", list(RANK_4))
def test_multi_head_attention_any_rank_masks_and_causality(name):
    """Keras's own layer builds its query/value and causal masks for rank-3 inputs only;
    ours generalises them: a value mask is the attention mask that hides those positions
    from every query, and causal order runs row-major over the attended axes."""
    axes, value, _ = RANK_4[name]
    layer = kl.MultiHeadAttention(num_heads=2, key_dim=3, attention_axes=axes)
    value_mask = _first_key_always_visible(value.shape[:-1], seed=16)
    if name == "image-2d":
        # (batch, 3, 2) -> (batch, [query] 2, 3, [value] 3, 2)
        as_attention = np.broadcast_to(value_mask[:, None, None], (2, 2, 3, 3, 2))
        causal = np.tri(6, dtype=bool).reshape(2, 3, 2, 3)
    else:
        # (batch, 2, 5) -> (batch, 2, [query] 3, [value] 5)
        as_attention = np.broadcast_to(value_mask[:, :, None], (2, 2, 3, 5))
        causal = np.tri(3, dtype=bool)
    close(layer(IMAGE, value, value_mask=value_mask),
          layer(IMAGE, value, attention_mask=as_attention))
    attending_to_itself = kl.MultiHeadAttention(num_heads=2, key_dim=3, attention_axes=axes)
    close(attending_to_itself(IMAGE, use_causal_mask=True),
          attending_to_itself(IMAGE, attention_mask=causal))
    changed = IMAGE.copy()
    changed[:, 1:, 2:] += 10.0  # the last position in row-major order, and later rows
    first, second = to_numpy(attending_to_itself(IMAGE, use_causal_mask=True)), to_numpy(
        attending_to_itself(changed, use_causal_mask=True))
    close(first[:, 0], second[:, 0])  # the first row comes before every change


def test_multi_head_attention_rank_4_contract():
    check_layer_contract(
        lambda: kl.MultiHeadAttention(num_heads=2, key_dim=2, attention_axes=(1, 2),
                                      kernel_initializer=SEEDED),
        (2, 2, 3, 4), input_data=IMAGE, trainable_weights=8,
    )


def test_multi_head_attention_rank_4_with_unknown_positions():
    query = keras.Input((None, 3, 4))
    layer = kl.MultiHeadAttention(num_heads=2, key_dim=2, attention_axes=(1, 2))
    outputs, scores = layer(query, query, return_attention_scores=True)
    assert tuple(outputs.shape) == (None, None, 3, 4)
    assert tuple(scores.shape) == (None, 2, None, 3, None, 3)
    model = keras.Model(query, [outputs, scores])
    predicted = model.predict(IMAGE, verbose=0)
    for a, b in zip(predicted, layer(IMAGE, IMAGE, return_attention_scores=True), strict=True):
        close(a, b)


# --- GroupQueryAttention -------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"head_dim": 2, "num_query_heads": 4, "num_key_value_heads": 2},
        {"head_dim": 3, "num_query_heads": 2, "num_key_value_heads": 1, "use_bias": False},
    ],
    ids=["grouped", "multi-query-nobias"],
)
def test_group_query_attention_matches_keras(kwargs):
    def calls(layer, t):
        (x,) = t
        return [
            layer(x, x),
            layer(x, x, attention_mask=np.eye(5, dtype=bool) | np.tri(5, k=-2, dtype=bool)),
            *layer(x, x, value_mask=VALUE_MASK, use_causal_mask=True,
                   return_attention_scores=True),
        ]

    check_parity(kl.GroupQueryAttention(**kwargs), keras.layers.GroupQueryAttention(**kwargs),
                 [SELF], calls, lambda layer, t: calls(layer, t)[1:])


def test_group_query_attention_cross_attention_weights():
    layer = kl.GroupQueryAttention(head_dim=3, num_query_heads=4, num_key_value_heads=2)
    outputs, scores = layer(QUERY, VALUE, return_attention_scores=True)
    assert tuple(outputs.shape) == (2, 3, 4) and tuple(scores.shape) == (2, 4, 3, 5)
    assert [tuple(w.shape) for w in layer.weights] == [
        (4, 4, 3), (4, 3), (6, 2, 3), (2, 3), (6, 2, 3), (2, 3), (4, 3, 4), (4,)]


def test_group_query_attention_contract():
    check_layer_contract(
        lambda: kl.GroupQueryAttention(head_dim=2, num_query_heads=4, num_key_value_heads=1),
        (2, 5, 4), input_data=SELF, trainable_weights=8,
    )


# --- masks behave, on every layer ----------------------------------------------------------

LAYERS = {
    "Attention": lambda: kl.Attention(use_scale=True),
    "MultiHeadAttention": lambda: kl.MultiHeadAttention(num_heads=2, key_dim=2),
    "GroupQueryAttention": lambda: kl.GroupQueryAttention(2, 2, 1),
}


def _attend(layer, query, value, query_mask, value_mask, **kwargs):
    if isinstance(layer, kl.Attention):
        return layer([query, value], mask=[query_mask, value_mask], **kwargs)
    return layer(query, value, query_mask=query_mask, value_mask=value_mask, **kwargs)


@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize("scores", [False, True])
def test_fully_masked_rows_are_finite(name, scores):
    layer = LAYERS[name]()
    query_mask = np.array([[False, False, False], [True, True, False]])
    value_mask = np.array([[False] * 5, [True, False, True, False, True]])
    value = random_inputs((2, 5, 4), seed=9)
    result = _attend(layer, QUERY, value, query_mask, value_mask,
                     return_attention_scores=scores)
    for y in keras.tree.flatten(result):
        assert np.all(np.isfinite(to_numpy(y)))


@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize("scores", [False, True])
def test_padded_keys_never_change_outputs(name, scores):
    layer = LAYERS[name]()
    value = random_inputs((2, 5, 4), seed=9)
    changed = value.copy()
    changed[~VALUE_MASK] = 100.0
    first = _attend(layer, QUERY, value, None, VALUE_MASK, return_attention_scores=scores)
    second = _attend(layer, QUERY, changed, None, VALUE_MASK, return_attention_scores=scores)
    for a, b in zip(keras.tree.flatten(first), keras.tree.flatten(second), strict=True):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", list(LAYERS))
def test_causal_outputs_ignore_the_future(name):
    layer = LAYERS[name]()
    changed = SELF.copy()
    changed[:, 3:] += 10.0
    first = to_numpy(_attend(layer, SELF, SELF, None, None, use_causal_mask=True))
    second = to_numpy(_attend(layer, changed, changed, None, None, use_causal_mask=True))
    np.testing.assert_allclose(first[:, :3], second[:, :3], rtol=1e-5, atol=1e-5)
    assert not np.allclose(first[:, 3:], second[:, 3:])


@pytest.mark.parametrize("name", list(LAYERS))
def test_causal_only_calls_take_the_backends_causal_path(name, monkeypatch):
    """`is_causal=True` has fused kernels on GPU; other masks join the causal one."""
    seen = []
    dot_product_attention = keras.ops.dot_product_attention

    def spy(*args, **kwargs):
        seen.append((kwargs["is_causal"], kwargs["mask"] is None))
        return dot_product_attention(*args, **kwargs)

    monkeypatch.setattr(keras.ops, "dot_product_attention", spy)
    # A learned scale is a tensor, which the fused path does not take.
    layer = kl.Attention() if name == "Attention" else LAYERS[name]()
    causal = _attend(layer, SELF, SELF, None, None, use_causal_mask=True)
    explicit = _attend(layer, SELF, SELF, None, np.ones((2, 5), bool), use_causal_mask=True)
    assert seen == [(True, True), (False, False)]
    close(causal, explicit)


@pytest.mark.parametrize("name", ["MultiHeadAttention", "GroupQueryAttention"])
def test_decoding_with_a_cache_matches_the_causal_pass(name):
    layer = LAYERS[name]()
    full = to_numpy(layer(SELF, SELF, use_causal_mask=True))
    key_value_heads = 2 if name == "MultiHeadAttention" else 1
    empty = np.zeros((2, 2, 5, key_value_heads, 2), "float32")
    # Two positions at once, then one at a time.
    outputs, cache = layer(SELF[:, :2], SELF[:, :2], use_causal_mask=True, cache=empty,
                           cache_update_index=0)
    steps = [to_numpy(outputs)]
    for t in range(2, 5):
        outputs, cache = layer(SELF[:, t:t + 1], SELF[:, t:t + 1], use_causal_mask=True,
                               cache=cache, cache_update_index=t)
        steps.append(to_numpy(outputs))
    close(np.concatenate(steps, axis=1), full)
    # Without an index the cache is read, not written: attention to every cached position.
    outputs, scores, same = layer(SELF[:, :1], SELF[:, :1], cache=cache,
                                  return_attention_scores=True)
    close(same, cache)
    expected, expected_scores = layer(SELF[:, :1], SELF, return_attention_scores=True)
    close(outputs, expected)
    close(scores, expected_scores)


def test_cache_errors():
    layer = kl.MultiHeadAttention(num_heads=2, key_dim=2, value_dim=3, name="mha")
    with pytest.raises(ValueError, match=r"'mha'.*\(batch, 2, max_length, 2, 2\).*"
                                         r"\(2, 2, 5, 2, 2\).*value head size 3"):
        layer(SELF, SELF, cache=np.zeros((2, 2, 5, 2, 2), "float32"), cache_update_index=0)
    with pytest.raises(ValueError, match=r"'mha'.*`cache_update_index` needs a `cache`"
                                         r".*cache_update_index=2"):
        layer(SELF, SELF, cache_update_index=2)


@pytest.mark.parametrize(
    "name, policy",
    [("Attention", "mixed_float16"), ("MultiHeadAttention", "mixed_float16"),
     ("GroupQueryAttention", "mixed_bfloat16")],
)
def test_softmax_in_float32_under_mixed_precision(name, policy):
    """-1e9 is -inf in float16: a float16 softmax would turn a fully masked row into NaN."""
    if policy == "mixed_float16" and BACKEND == "torch":
        pytest.skip("Keras does not run float16 matrix products on the torch CPU backend")
    reference = LAYERS[name]()
    query_mask = np.array([[False, False, False], [True, True, False]])
    value_mask = np.array([[False] * 5, [True, False, True, False, True]])
    value = random_inputs((2, 5, 4), seed=9)
    expected = _attend(reference, QUERY, value, query_mask, value_mask,
                       return_attention_scores=True)
    with dtype_policy(policy):
        layer = LAYERS[name]()
    _attend(layer, QUERY, value, query_mask, value_mask)
    layer.set_weights(reference.get_weights())
    for scores in (False, True):
        result = _attend(layer, QUERY, value, query_mask, value_mask,
                         return_attention_scores=scores)
        for y, e in zip(keras.tree.flatten(result), keras.tree.flatten(expected), strict=False):
            assert keras.backend.standardize_dtype(y.dtype) == layer.compute_dtype
            np.testing.assert_allclose(to_numpy(keras.ops.cast(y, "float32")), to_numpy(e),
                                       rtol=0.05, atol=0.05)


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize("argument", ["num_heads", "key_dim"])
@pytest.mark.parametrize("value", [0, -2])
def test_multi_head_attention_rejects_bad_sizes(argument, value):
    kwargs = {"num_heads": 2, "key_dim": 2, argument: value}
    with pytest.raises(ValueError, match=f"MultiHeadAttention layer .*{argument}={value}"):
        kl.MultiHeadAttention(**kwargs)


def test_group_query_attention_rejects_indivisible_heads():
    with pytest.raises(ValueError, match=r"GroupQueryAttention layer 'gqa'.*num_query_heads=6 "
                                         r"and num_key_value_heads=4"):
        kl.GroupQueryAttention(2, 6, 4, name="gqa")


def test_masks_that_do_not_broadcast_are_rejected():
    layer = kl.MultiHeadAttention(num_heads=2, key_dim=2, name="mha")
    with pytest.raises(ValueError, match=r"'mha'.*attention_mask.*\(2, 3, 4\).*\(2, 3, 5\)"):
        layer(QUERY, VALUE, attention_mask=np.ones((2, 3, 4), bool))
    with pytest.raises(ValueError, match=r"'mha'.*value_mask.*\(2, 3\).*\(2, 5\)"):
        layer(QUERY, VALUE, value_mask=np.ones((2, 3), bool))
    with pytest.raises(ValueError, match=r"Attention layer 'att'.*value_mask.*\(2, 4\)"):
        kl.Attention(name="att")([QUERY, KEY], mask=[None, np.ones((2, 4), bool)])


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match=r"Attention layer .*score_mode='add'"):
        kl.Attention(score_mode="add")
    with pytest.raises(ValueError, match=r"MultiHeadAttention layer .*attention_axes='time'"):
        kl.MultiHeadAttention(2, 2, attention_axes="time")
    with pytest.raises(ValueError, match=r"MultiHeadAttention layer .*dropout=1.5"):
        kl.MultiHeadAttention(2, 2, dropout=1.5)
    with pytest.raises(ValueError, match=r"MultiHeadAttention layer .*rank >= 3.*\(2, 3\)"):
        kl.MultiHeadAttention(2, 2)(np.ones((2, 3), "float32"))
    with pytest.raises(ValueError, match=r"GroupQueryAttention layer .*rank 3.*\(2, 2, 3, 4\)"):
        kl.GroupQueryAttention(2, 2, 1)(IMAGE)


@pytest.mark.parametrize("axes", [(3,), (0,), -1, (1, -3)])
def test_attention_axes_out_of_range_are_rejected_at_build(axes):
    layer = kl.MultiHeadAttention(2, 2, attention_axes=axes, name="mha")
    stored = re.escape(repr(tuple(np.atleast_1d(axes).tolist())))  # an int is kept as (int,)
    with pytest.raises(ValueError, match=rf"MultiHeadAttention layer 'mha'.*\[1, 2\] or "
                                         rf"\[-3, -2\].*rank 4.*attention_axes={stored}"):
        layer(IMAGE)


def test_inputs_that_disagree_outside_the_attention_axes_are_rejected():
    layer = kl.MultiHeadAttention(2, 2, attention_axes=(2,), name="mha")
    with pytest.raises(ValueError, match=r"'mha'.*axis not attended over.*\(2, 2, 3, 4\).*"
                                         r"\(2, 5, 3, 4\)"):
        layer(IMAGE, np.ones((2, 5, 3, 4), "float32"))
    with pytest.raises(ValueError, match=r"'mha'.*same rank.*\(2, 5, 4\)"):
        kl.MultiHeadAttention(2, 2, name="mha")(IMAGE, SELF)
