"""Attention layers: Attention, AdditiveAttention, MultiHeadAttention, GroupQueryAttention.

Every layer hands its projected tensors to one function, `attend`, which holds the attention
math: scores, scaling, masking, a float32 softmax, dropout on the weights. Where nothing but
the output is needed it calls `keras.ops.dot_product_attention`, which has fused kernels on
accelerators; otherwise it spells the computation out.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import string

import keras
from keras import constraints, initializers, ops, regularizers

from keraslayers.layers import formulation, validation
from keraslayers.layers.core import EinsumDense
from keraslayers.layers.lora import LoRAComposite
from keraslayers.layers.quantization import QuantizableComposite

# Replaces masked scores before the softmax: finite, so a row whose every position is masked
# does not compute 0 / 0; its weights are then set to zero.
MASKED_SCORE = -1e9


def attend(
    query,
    key,
    value,
    *,
    scale=1.0,
    scores=None,
    mask=None,
    causal=False,
    dropout=0.0,
    seed_generator=None,
    training=False,
    return_scores=False,
    scores_after_dropout=False,
    flash_attention=None,
):
    """`softmax(scale * query . key + masking) @ value`, per head.

    `weights[b, n, t, s] = softmax_s(scale * sum_h query[b, t, n, h] * key[b, s, n, h])`,
    with `-1e9` in place of the score wherever `mask` is False (and, with `causal`, wherever
    `s > t`), then `outputs[b, t, n, :] = sum_s dropout(weights)[b, n, t, s] * value[b, s, n, :]`.
    The softmax is computed in float32 whatever the inputs' dtype. A target position that
    sees no source position (a fully masked row) gets zero weights and a zero output, on
    both paths, as Keras's masked `Softmax` gives. A single head may come without its axis
    (`query` `(batch, target, key_dim)` and so on, weights `(batch, target, source)`): plain
    batched matrix products then, which XLA compiles without the layout copies a size-1
    heads axis costs it.

    Args:
        query: `(batch, target, heads, key_dim)` or `(batch, target, key_dim)`.
        key: `(batch, source, heads, key_dim)` or `(batch, source, key_dim)`.
        value: `(batch, source, heads, value_dim)` or `(batch, source, value_dim)`.
        scale: a Python float, or a scalar tensor (a learned scale).
        scores: precomputed scores `(batch, heads, target, source)` (`(batch, target,
            source)` without heads), for layers whose scores are not a dot product; `key` and
            `scale` are then unused.
        mask: boolean, broadcastable to the weights' shape; False hides a source position
            from a target position.
        causal: also hide source positions after the target position (`s > t`).
        dropout: rate of dropout on the weights, applied when `training`.
        seed_generator: the `keras.random.SeedGenerator` of the dropout.
        training: whether to apply dropout.
        return_scores: also return the weights.
        scores_after_dropout: return the weights after dropout (as `keras.layers.Attention`
            does) rather than before it (as Keras's `MultiHeadAttention` does).
        flash_attention: passed to `keras.ops.dot_product_attention` on the fused path.

    Returns:
        `(outputs, weights)`: outputs `(batch, target, heads, value_dim)` (or `(batch,
        target, value_dim)`), and the weights `(batch, heads, target, source)` (or `(batch,
        target, source)`) when `return_scores`, else None.
    """
    dropping = bool(training) and dropout > 0
    fused = (
        scores is None
        and not dropping
        and not return_scores
        and isinstance(scale, numbers.Real)
        # Backends disagree on a value size that differs from the key's (JAX refuses it).
        and query.shape[-1] == value.shape[-1]
    )
    rank = len(query.shape)  # the weights' rank too
    if causal and not (fused and mask is None):
        # Only a causal-only call goes to the backend's `is_causal` (fused kernels on GPU);
        # anywhere else the causal mask joins the others.
        mask = _and(mask, causal_mask(ops.shape(query)[1], ops.shape(key)[1], rank=rank))
        causal = False
    if fused:
        if rank == 3:
            # dot_product_attention wants a heads axis: (batch, time, 1, dim).
            mask = None if mask is None else ops.expand_dims(_at_rank(mask, 3), 1)
            query, key, value = (ops.expand_dims(x, 2) for x in (query, key, value))
        outputs = ops.dot_product_attention(
            query, key, value, mask=mask, scale=float(scale), is_causal=causal,
            flash_attention=flash_attention,
        )
        if mask is not None:
            # The fused kernels average the values over a fully masked row; zero it instead.
            # (batch, heads, target, source) -> (batch, target, heads, 1)
            sees_something = ops.transpose(ops.any(_at_rank(mask, 4), axis=-1), (0, 2, 1))
            outputs = ops.where(ops.expand_dims(sees_something, -1), outputs, 0)
        return (ops.squeeze(outputs, 2) if rank == 3 else outputs), None
    if scores is None:
        if rank == 3:
            # (batch, target, key_dim), (batch, source, key_dim) -> (batch, target, source)
            scores = ops.matmul(query, ops.swapaxes(key, 1, 2))
        else:
            # (batch, target, heads, key_dim), (batch, source, heads, key_dim)
            #   -> (batch, heads, target, source)
            scores = ops.einsum("btnh,bsnh->bnts", query, key)
        scores = ops.multiply(scores, ops.cast(scale, scores.dtype))
    scores = ops.cast(scores, "float32")
    if mask is not None:
        scores = ops.where(mask, scores, MASKED_SCORE)
    weights = ops.softmax(scores, axis=-1)
    if mask is not None:
        weights = ops.where(mask, weights, 0.0)
    dropped = weights
    if dropping:
        dropped = keras.random.dropout(weights, dropout, seed=seed_generator)
    dropped = ops.cast(dropped, value.dtype)
    if rank == 3:
        # (batch, target, source), (batch, source, value_dim) -> (batch, target, value_dim)
        outputs = ops.matmul(dropped, value)
    else:
        # (batch, heads, target, source), (batch, source, heads, value_dim)
        #   -> (batch, target, heads, value_dim)
        outputs = ops.einsum("bnts,bsnh->btnh", dropped, value)
    if not return_scores:
        return outputs, None
    return outputs, dropped if scores_after_dropout else ops.cast(weights, value.dtype)


def _at_rank(mask, rank):
    """`mask` with leading axes of size 1 added up to `rank`."""
    while len(mask.shape) < rank:
        mask = ops.expand_dims(mask, 0)
    return mask


def causal_mask(target_length, source_length, start=0, rank=4):
    """`(1, 1, target, source)` (or rank `rank`): True where source position <= target
    position.

    The target positions are `start, start + 1, ...`: with a decoding cache the queries sit
    after the `start` positions already in it.
    """
    rows = ops.expand_dims(ops.arange(target_length) + start, 1)
    columns = ops.expand_dims(ops.arange(source_length), 0)
    return _at_rank(ops.greater_equal(rows, columns), rank)


def _sliding_window_mask(target_length, source_length, window):
    """`(1, 1, target, source)`: True where |target - source| < window."""
    rows = ops.expand_dims(ops.arange(target_length), 1)
    columns = ops.expand_dims(ops.arange(source_length), 0)
    band = ops.less(ops.abs(rows - columns), window)
    return ops.reshape(band, (1, 1, target_length, source_length))


def _check_mask(layer, argument, mask, expected):
    """A mask must broadcast against `expected` (sizes None where unknown)."""
    shape = tuple(mask.shape)
    fits = len(shape) <= len(expected) and all(
        m is None or e is None or m in (1, e)
        for m, e in zip(reversed(shape), reversed(expected), strict=False)
    )
    if not fits:
        raise ValueError(
            f"{validation.describe(layer)}: `{argument}` of shape {shape} does not broadcast "
            f"to {tuple(expected)}."
        )


def _and(a, b):
    return b if a is None else a if b is None else ops.logical_and(a, b)


def _as_bool(mask):
    return mask if mask is None else ops.cast(mask, "bool")


def _product(sizes):
    """The product of static and dynamic sizes (a tensor where one is unknown)."""
    result = 1
    for size in sizes:
        result = result * size
    return result


@dataclasses.dataclass(frozen=True)
class _Layout:
    """Where attention runs in inputs `(batch, *positions, features)` of rank `rank`.

    `attention_axes` are the position axes attended over (in the order given, which orders
    the scores' axes as in Keras); `batch_axes` are the batch axis and the other position
    axes, each of whose entries attends on its own. `fold` turns this layout into the one
    `attend` takes, `(batch', positions', ...)`: the batch axes merged into one and the
    attended axes into another, row-major, so a softmax over the merged axis is Keras's
    softmax over all the attended axes at once. Rank-3 inputs are already in that layout.
    """

    rank: int
    attention_axes: tuple
    batch_axes: tuple

    @classmethod
    def of(cls, layer, rank, attention_axes=None):
        """The layout of rank-`rank` inputs; axes may count from the end, as in Keras."""
        if attention_axes is None:
            axes = tuple(range(1, rank - 1))
        else:
            axes = tuple(a + rank if a < 0 else a for a in attention_axes)
            if not all(1 <= a <= rank - 2 for a in axes) or len(set(axes)) != len(axes):
                raise ValueError(
                    f"{validation.describe(layer)}: `attention_axes` must be distinct position "
                    f"axes of the inputs, each in [1, {rank - 2}] or [{1 - rank}, -2] for inputs "
                    f"of rank {rank} (batch, *positions, features); received "
                    f"attention_axes={attention_axes!r}."
                )
        batch_axes = (0, *(a for a in range(1, rank - 1) if a not in axes))
        return cls(rank, axes, batch_axes)

    @property
    def is_sequence(self):
        return self.rank == 3

    def _order(self, ndim):
        """Batch axes, attended axes, then what follows the positions (heads, head size)."""
        return (*self.batch_axes, *self.attention_axes, *range(self.rank - 1, ndim))

    def fold(self, x):
        """`(batch, *positions, *rest)` -> `(batch', positions', *rest)`."""
        if self.is_sequence:
            return x
        x = ops.transpose(x, self._order(len(x.shape)))
        shape = ops.shape(x)
        batch_rank, attended_rank = len(self.batch_axes), len(self.attention_axes)
        positions = _product(shape[batch_rank : batch_rank + attended_rank])
        return ops.reshape(x, (-1, positions, *shape[batch_rank + attended_rank :]))

    def unfold(self, x, like):
        """`fold`'s inverse: `(batch', positions', *rest)` -> `(batch, *positions, *rest)`,
        the batch and positions sized as in `like` `(batch, *positions, ...)`."""
        if self.is_sequence:
            return x
        shape = ops.shape(like)
        order = self._order(len(x.shape) + self.rank - 3)
        sizes = [shape[a] for a in order[: self.rank - 1]]
        x = ops.reshape(x, (*sizes, *ops.shape(x)[2:]))
        return ops.transpose(x, [order.index(a) for a in range(len(order))])

    def fold_positions_mask(self, mask, like):
        """A mask over the positions of `like` `(batch, *positions, ...)` -> `(batch', n)`."""
        mask = _as_bool(mask)
        if self.is_sequence:
            return mask
        positions = ops.shape(like)[: self.rank - 1]
        return self.fold(ops.broadcast_to(mask, positions))

    def attention_mask_shape(self, query, key):
        """Keras's `attention_mask` layout: `(*batch axes, *query's attended, *key's attended)`."""
        return (
            *(query.shape[a] for a in self.batch_axes),
            *(query.shape[a] for a in self.attention_axes),
            *(key.shape[a] for a in self.attention_axes),
        )

    def per_head_attention_mask_shape(self, query, key, heads):
        """Keras's `attention_mask` with a heads axis, as the scores:
        `(*batch axes, heads, *query's attended, *key's attended)`."""
        shape = self.attention_mask_shape(query, key)
        batch_rank = len(self.batch_axes)
        return (*shape[:batch_rank], heads, *shape[batch_rank:])

    def fold_attention_mask(self, mask, query, key, heads=None):
        """`attention_mask` in Keras's layout -> `(batch' or 1, target, source)`; with
        `heads` (the mask has a heads axis, size `heads` or 1) -> `(batch' or 1, heads,
        target, source)`."""
        mask = _as_bool(mask)
        if self.is_sequence:
            return mask
        query_shape, key_shape = ops.shape(query), ops.shape(key)
        batch = tuple(query_shape[a] for a in self.batch_axes)
        target_sizes = tuple(query_shape[a] for a in self.attention_axes)
        source_sizes = tuple(key_shape[a] for a in self.attention_axes)
        heads_axis = () if heads is None else (heads,)
        target, source = _product(target_sizes), _product(source_sizes)
        return ops.reshape(
            ops.broadcast_to(mask, (*batch, *heads_axis, *target_sizes, *source_sizes)),
            (-1, *heads_axis, target, source),
        )

    def unfold_scores(self, scores, query, key):
        """`(batch', heads, target, source)` -> Keras's
        `(*batch axes, heads, *query's attended, *key's attended)`."""
        if self.is_sequence:
            return scores
        query_shape, key_shape = ops.shape(query), ops.shape(key)
        return ops.reshape(scores, (
            *(query_shape[a] for a in self.batch_axes),
            ops.shape(scores)[1],
            *(query_shape[a] for a in self.attention_axes),
            *(key_shape[a] for a in self.attention_axes),
        ))


def projection_equation(free_dims, bound_dims, output_dims):
    """Keras's MultiHeadAttention projection: `(equation, bias_axes)` of an EinsumDense that
    maps the last `bound_dims` axes of an input with `free_dims` others (batch, positions)
    to `output_dims` axes: `"abc,cde->abde"` and `"de"` for (2, 1, 2), a rank-3 input
    projected to heads; `"abcd,cde->abe"` and `"e"` for (2, 2, 1), heads projected back."""
    letters = string.ascii_lowercase
    free = letters[:free_dims]
    bound = letters[free_dims:free_dims + bound_dims]
    output = letters[free_dims + bound_dims:free_dims + bound_dims + output_dims]
    return f"{free}{bound},{bound}{output}->{free}{output}", output


class _Projection(EinsumDense):
    """An attention projection: Keras's EinsumDense with the equation Keras's
    MultiHeadAttention gives it (`projection_equation`), so the same weights (kernel
    `(*input dims, *output dims)`, bias `output dims`), LoRA factors and quantized weights
    (int8, int4, float8: `quantize(mode)` and `model.quantize(mode)` take it as Keras's
    EinsumDense).

    The float product is `tensordot` over the bound axes: the equation's einsum, in the
    formulation these layers have always been measured with; the quantized products are
    EinsumDense's (Keras's arithmetic).
    """

    def __init__(self, equation, output_shape, **kwargs):
        super().__init__(equation, output_shape, **kwargs)
        # Masks are the attention layer's business; a projection only passes them on.
        self.supports_masking = True
        self._bound_axes = sum(1 for c in self._parsed.kernel if c in self._parsed.inputs)

    def _product(self, inputs, kernel):
        # (batch, *positions, *bound) . (*bound, *outputs) -> (batch, *positions, *outputs)
        return ops.tensordot(inputs, kernel, axes=self._bound_axes)


_Projection._quantizing_class = _Projection


@keras.saving.register_keras_serializable(package="keraslayers")
class Attention(keras.layers.Layer):
    """Dot-product (Luong-style) attention: `softmax(scores(query, key)) @ value`.

    `scores = scale * query @ key^T` ("dot"), or
    `scores = concat_score_weight * sum(tanh(scale * (query + key)), -1)` ("concat"), where
    `scale` is a learned scalar with `use_scale=True` and 1 otherwise. Drop-in for
    `keras.layers.Attention`: weights `scale` then `concat_score_weight`, both scalars.
    Besides `[query, value]` and `[query, value, key]` it takes a single tensor, which
    attends to itself (Keras's layer refuses one).

    Inputs may have any rank >= 3, `(batch, *others, T, dim)`, as in Keras: the axis before
    the features is attended over, separately for every entry of the axes before it.
    A query position whose every value position is masked gets zero weights and a zero
    output (Keras's layer spreads its weights evenly over the masked values there).
    With dropout in training, the returned scores are the weights after dropout, as Keras's.

    Args:
        use_scale: learn a scalar that multiplies the scores.
        score_mode: "dot" or "concat".
        dropout: rate of dropout on the attention weights in training.
        seed: integer seed of the dropout.

    Call arguments:
        inputs: `[query, value]`, `[query, value, key]` or one tensor (self-attention).
        mask: `[query_mask, value_mask]` (`(batch, *others, Tq)`, `(batch, *others, Tv)`),
            or one mask for a single tensor; filled in from Keras masks. Masked values are
            ignored; masked query positions give zero outputs.
        return_attention_scores: also return the weights `(batch, *others, Tq, Tv)`.
        use_causal_mask: position `i` attends only to positions `j <= i`.

    Input shape:
        query `(batch, *others, Tq, dim)`, value `(batch, *others, Tv, value_dim)`, key
        `(batch, *others, Tv, dim)`.

    Output shape:
        `(batch, *others, Tq, value_dim)`.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> q, v = np.ones((2, 3, 4), "float32"), np.ones((2, 5, 4), "float32")
        >>> tuple(kl.Attention()([q, v]).shape)
        (2, 3, 4)
    """

    def __init__(self, use_scale=False, score_mode="dot", dropout=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if score_mode not in ("dot", "concat"):
            raise ValueError(
                f"{validation.describe(self)}: `score_mode` must be 'dot' or 'concat', "
                f"received score_mode={score_mode!r}."
            )
        self.use_scale = bool(use_scale)
        self.score_mode = score_mode
        self.dropout = validation.rate(self, "dropout", dropout)
        self.seed = seed
        if self.dropout > 0:
            self.seed_generator = keras.random.SeedGenerator(seed)
        # Keras's layer never runs a fused kernel; ours does where it can, unless flash
        # attention is disabled globally (`keras.config.disable_flash_attention()`).
        self._flash_attention = keras.config.is_flash_attention_enabled()
        self.supports_masking = True

    def _split(self, inputs, what="inputs"):
        """`inputs` as `[query, value, key]` (key defaulting to value, value to query)."""
        if not isinstance(inputs, (list, tuple)):
            return [inputs, inputs, inputs]
        if not 2 <= len(inputs) <= 3:
            raise ValueError(
                f"{validation.describe(self)}: {what} must be one tensor, [query, value] or "
                f"[query, value, key]; received a list of length {len(inputs)}."
            )
        return [inputs[0], inputs[1], inputs[2] if len(inputs) == 3 else inputs[1]]

    def build(self, input_shape):
        self._check_shapes(input_shape)
        self.scale = None
        self.concat_score_weight = None
        if self.use_scale:
            self.scale = self.add_weight(name="scale", shape=(), initializer="ones")
        if self.score_mode == "concat":
            self.concat_score_weight = self.add_weight(
                name="concat_score_weight", shape=(), initializer="ones"
            )

    def _check_shapes(self, input_shape):
        """`[query, value, key]` shapes, once checked: same rank >= 3, the same axes before
        the attended one, query and key of one feature size, value and key of one length."""
        query_shape, value_shape, key_shape = self._shapes(input_shape)
        for name, shape in (("query", query_shape), ("value", value_shape), ("key", key_shape)):
            if len(shape) < 3 or len(shape) != len(query_shape):
                raise ValueError(
                    f"{validation.describe(self)}: query, value and key must have the same "
                    f"rank >= 3 (batch, ..., time, features), received query "
                    f"{tuple(query_shape)} and {name} {tuple(shape)}."
                )
        others = [query_shape[:-2], value_shape[:-2], key_shape[:-2]]
        if not all(validation.shapes_agree(others[0], other) for other in others[1:]):
            raise ValueError(
                f"{validation.describe(self)}: query, value and key must agree on every axis "
                f"before the attended one, received query {tuple(query_shape)}, value "
                f"{tuple(value_shape)} and key {tuple(key_shape)}."
            )
        if not validation.shapes_agree(query_shape[-1:], key_shape[-1:]):
            raise ValueError(
                f"{validation.describe(self)}: query and key need the same feature size, "
                f"received query {tuple(query_shape)} and key {tuple(key_shape)}."
            )
        if not validation.shapes_agree(value_shape[-2:-1], key_shape[-2:-1]):
            raise ValueError(
                f"{validation.describe(self)}: value and key need the same length, "
                f"received value {tuple(value_shape)} and key {tuple(key_shape)}."
            )
        return query_shape, value_shape, key_shape

    def _shapes(self, input_shape):
        if isinstance(input_shape, (list, tuple)) and input_shape and isinstance(
            input_shape[0], (list, tuple)
        ):
            return [tuple(s) for s in self._split(list(input_shape), "input_shape")]
        return [tuple(input_shape)] * 3

    def _scores(self, query, key):
        """`(batch, Tq, Tv)`, for `attend`; None for "dot", which `attend` computes."""
        if self.score_mode == "dot":
            return None
        # (batch, Tq, 1, dim) + (batch, 1, Tv, dim) -> (batch, Tq, Tv)
        summed = ops.expand_dims(query, -2) + ops.expand_dims(key, -3)
        if self.scale is not None:
            summed = summed * self.scale
        return self.concat_score_weight * ops.sum(ops.tanh(summed), axis=-1)

    def call(
        self,
        inputs,
        mask=None,
        training=False,
        return_attention_scores=False,
        use_causal_mask=False,
    ):
        query, value, key = self._split(inputs)
        query_mask, value_mask = self._masks(inputs, mask)
        scores_mask = None
        if value_mask is not None:
            _check_mask(self, "value_mask", value_mask, tuple(value.shape[:-1]))
            # (batch, *others, Tv) -> (batch', 1, Tv)
            value_mask = _as_bool(value_mask)
            if len(value.shape) > 3:
                value_mask = ops.broadcast_to(value_mask, ops.shape(value)[:-1])
            scores_mask = ops.reshape(value_mask, (-1, 1, ops.shape(value)[-2]))
        # A single head, without a heads axis: (batch', T, dim), the axes before T folded
        # into batch' for inputs of rank > 3.
        folded = [_fold_leading_axes(x) for x in (query, key, value)]
        outputs, weights = attend(
            folded[0],
            folded[1],
            folded[2],
            scale=1.0 if self.scale is None else self.scale,
            scores=self._scores(folded[0], folded[1]),
            mask=scores_mask,
            causal=use_causal_mask,
            dropout=self.dropout,
            seed_generator=getattr(self, "seed_generator", None),
            training=training,
            return_scores=return_attention_scores,
            scores_after_dropout=True,
            flash_attention=self._flash_attention,
        )
        if len(query.shape) > 3:
            leading = ops.shape(query)[:-1]  # (batch, *others, Tq)
            outputs = ops.reshape(outputs, (*leading, ops.shape(value)[-1]))
            if weights is not None:
                weights = ops.reshape(weights, (*leading, ops.shape(key)[-2]))
        if query_mask is not None:
            _check_mask(self, "query_mask", query_mask, tuple(query.shape[:-1]))
            outputs = ops.where(ops.expand_dims(_as_bool(query_mask), -1), outputs, 0)
        if return_attention_scores:
            return outputs, weights
        return outputs

    def _masks(self, inputs, mask):
        """(query_mask, value_mask) from Keras's list of masks, or one mask for one tensor."""
        if mask is None:
            return None, None
        if not isinstance(inputs, (list, tuple)):
            return mask, mask
        if not isinstance(mask, (list, tuple)) or not 2 <= len(mask) <= 3:
            raise ValueError(
                f"{validation.describe(self)}: `mask` must be a list [query_mask, value_mask] "
                f"(of length 2 or 3), received mask={mask!r}."
            )
        return mask[0], mask[1]

    def compute_mask(self, inputs, mask=None):
        if mask is None:
            return None
        if not isinstance(inputs, (list, tuple)):
            return mask
        query_mask, _ = self._masks(inputs, mask)
        return None if query_mask is None else ops.convert_to_tensor(query_mask)

    def compute_output_shape(self, input_shape):
        query_shape, value_shape, _ = self._check_shapes(input_shape)
        return (*query_shape[:-1], value_shape[-1])

    def compute_output_spec(self, inputs, return_attention_scores=False, **kwargs):
        query, value, key = self._split(inputs)
        shape = self.compute_output_shape([query.shape, value.shape, key.shape])
        outputs = keras.KerasTensor(shape, dtype=self.compute_dtype)
        if not return_attention_scores:
            return outputs
        # (batch, *others, Tq, Tv)
        scores = keras.KerasTensor((*query.shape[:-1], key.shape[-2]), dtype=self.compute_dtype)
        return outputs, scores

    def get_config(self):
        return {
            **super().get_config(),
            "use_scale": self.use_scale,
            "score_mode": self.score_mode,
            "dropout": self.dropout,
            "seed": self.seed,
        }


# AdditiveAttention's scores, by (backend, device kind) (see `formulation.choose`): Keras's
# `sum(scale * tanh(query + key), -1)`, or "product", the same as a matrix product of the
# tanh with the scale, which writes no scaled copy of the `(batch, Tq, Tv, dim)` tanh.
ADDITIVE_SCORES_FORMULATIONS = {
    # benchmarks/probes/additive_attention.py, self-attention on 32x64 (batch 32) and 128x128
    # (batch 16), predict / train, "product" against Keras's layer in the same run (busy CPU):
    # TensorFlow 1.13x / 1.46x and 1.10x / 1.96x; JAX 2.20x / 1.92x and 1.00x / 1.18x;
    # torch 1.02x / 1.24x and 1.23x / 1.40x. Keras's own sum: 0.92x-1.09x.
    ("tensorflow", "cpu"): "product",
    ("jax", "cpu"): "product",
    ("torch", "cpu"): "product",
}


def additive_scores_formulation() -> str:
    """`ADDITIVE_SCORES_FORMULATIONS`' choice: "product" or Keras's sum."""
    return formulation.choose("additive_scores", ADDITIVE_SCORES_FORMULATIONS)


@keras.saving.register_keras_serializable(package="keraslayers")
class AdditiveAttention(Attention):
    """Additive (Bahdanau-style) attention: `softmax(scores(query, key)) @ value`.

    `scores[b, i, j] = sum_d scale[d] * tanh(query[b, i, d] + key[b, j, d])`, where `scale`
    is a learned vector of the feature size with `use_scale=True` (Keras's default) and 1
    otherwise; the rest (masks, causal mask, float32 softmax, dropout on the weights, the
    returned scores) is `Attention`'s. Drop-in for `keras.layers.AdditiveAttention`: weight
    `scale` `(dim,)`. Like `Attention`, it also takes a single tensor, which attends to
    itself, and a query position whose every value position is masked gets zero weights and a
    zero output (Keras's layer spreads its weights evenly over the masked values there).

    Args:
        use_scale: learn a vector that weights the features' contributions to the scores.
        dropout: rate of dropout on the attention weights in training.
        seed: integer seed of the dropout.

    Call arguments:
        inputs: `[query, value]`, `[query, value, key]` or one tensor (self-attention).
        mask: `[query_mask, value_mask]` (`(batch, *others, Tq)`, `(batch, *others, Tv)`),
            or one mask for a single tensor; filled in from Keras masks.
        return_attention_scores: also return the weights `(batch, *others, Tq, Tv)`.
        use_causal_mask: position `i` attends only to positions `j <= i`.

    Input shape:
        query `(batch, *others, Tq, dim)`, value `(batch, *others, Tv, value_dim)`, key
        `(batch, *others, Tv, dim)`.

    Output shape:
        `(batch, *others, Tq, value_dim)`.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> q, v = np.ones((2, 3, 4), "float32"), np.ones((2, 5, 4), "float32")
        >>> tuple(kl.AdditiveAttention()([q, v]).shape)
        (2, 3, 4)
    """

    def __init__(self, use_scale=True, dropout=0.0, seed=None, **kwargs):
        super().__init__(use_scale=use_scale, dropout=dropout, seed=seed, **kwargs)

    def build(self, input_shape):
        query_shape, _, _ = self._check_shapes(input_shape)
        (dim,) = validation.known_sizes(self, query_shape, [len(query_shape) - 1])
        self.scale = None
        self.concat_score_weight = None
        if self.use_scale:
            self.scale = self.add_weight(name="scale", shape=(dim,), initializer="glorot_uniform")

    def _scores(self, query, key):
        """`(batch, Tq, Tv)` from `(batch, Tq, dim)` and `(batch, Tv, dim)`."""
        # (batch, Tq, 1, dim) + (batch, 1, Tv, dim) -> (batch, Tq, Tv, dim)
        hidden = ops.tanh(ops.expand_dims(query, -2) + ops.expand_dims(key, -3))
        if self.scale is None:
            return ops.sum(hidden, axis=-1)
        if additive_scores_formulation() == "product":
            # (batch, Tq, Tv, dim) @ (dim,) -> (batch, Tq, Tv)
            return ops.matmul(hidden, self.scale)
        return ops.sum(self.scale * hidden, axis=-1)

    def get_config(self):
        config = super().get_config()
        del config["score_mode"]
        return config


def _fold_leading_axes(x):
    """`(batch, *others, T, dim)` -> `(batch', T, dim)`; rank-3 tensors unchanged."""
    if len(x.shape) == 3:
        return x
    return ops.reshape(x, (-1, *ops.shape(x)[-2:]))


class _ProjectedAttention(LoRAComposite, QuantizableComposite, keras.layers.Layer):
    """What MultiHeadAttention and GroupQueryAttention share: arguments, masks, the call,
    `enable_lora` (projections named "query", "key", "value", "gate", "attention_output"),
    `quantize` (every projection, as `model.quantize` quantizes Keras's).

    Subclasses create, in `build`, the projections `query_dense`, `key_dense`,
    `value_dense`, `output_dense` (and `gate_dense` with `use_gate`), then call
    `_build_lora_layers()`, and set `self._scale`, `self._key_value_repeats`,
    `self._score_heads` (heads of the scores), `self._value_size` (of a value head) and
    `self._layout` (where attention runs).
    """

    def __init__(self, **kwargs):
        # `lora_layers` (a keyword only in configs): the projections `enable_lora` adapted.
        lora_layers = self._init_lora_layers(kwargs)
        super().__init__(**kwargs)
        self._set_lora_layers(lora_layers)

    # MultiHeadAttention attends over any position axes of inputs of any rank >= 3.
    _any_rank = False
    _attention_axes_argument = None

    def _init_common(self, dropout, use_bias, sliding_window, flash_attention,
                     kernel_initializer, bias_initializer, kernel_regularizer,
                     bias_regularizer, kernel_constraint, bias_constraint, use_gate, seed):
        self.dropout = validation.rate(self, "dropout", dropout)
        self.use_bias = bool(use_bias)
        if sliding_window is not None:
            sliding_window = validation.positive_int(self, "sliding_window", sliding_window)
        self.sliding_window = sliding_window
        self.flash_attention = flash_attention
        # As Keras's layers: None follows `keras.config.enable_flash_attention()` /
        # `disable_flash_attention()` (None: the backend chooses; False: never), read here.
        self._flash_attention = (
            keras.config.is_flash_attention_enabled() if flash_attention is None
            else flash_attention
        )
        if self._flash_attention and self.dropout > 0:
            raise ValueError(
                f"{validation.describe(self)}: dropout is not supported with flash attention "
                f"(flash_attention=True); received dropout={dropout!r}."
            )
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.use_gate = bool(use_gate)
        self.seed = seed
        if self.dropout > 0:
            self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def _projection(self, name, input_rank, bound_dims, output_shape, activation=None):
        """Keras's projection of an input of `input_rank` over its last `bound_dims` axes to
        `output_shape`."""
        # A fresh initializer per projection: a seeded initializer object reused would give
        # every kernel the same values.
        kernel_initializer = self.kernel_initializer.__class__.from_config(
            self.kernel_initializer.get_config()
        )
        bias_initializer = self.bias_initializer.__class__.from_config(
            self.bias_initializer.get_config()
        )
        free_dims = input_rank - bound_dims
        equation, bias_axes = projection_equation(free_dims, bound_dims, len(output_shape))
        return _Projection(
            equation,
            (None,) * (free_dims - 1) + tuple(int(size) for size in output_shape),
            activation=activation,
            bias_axes=bias_axes if self.use_bias else None,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=self.kernel_regularizer,
            bias_regularizer=self.bias_regularizer,
            kernel_constraint=self.kernel_constraint,
            bias_constraint=self.bias_constraint,
            activity_regularizer=self._projections_activity_regularizer,
            dtype=self.dtype_policy,
            name=name,
        )

    def _check_shapes(self, query_shape, value_shape, key_shape, building=True):
        """Ranks and sizes the projections and the attention need; returns the layout.

        Keras's ValueError where Keras raises one (value and key positions that differ,
        and for GroupQueryAttention query and value feature sizes). `building`: the feature
        sizes must also be known, to create the weights.
        """
        query_shape, value_shape, key_shape = (
            tuple(s) for s in (query_shape, value_shape, key_shape)
        )
        if not validation.shapes_agree(value_shape[1:-1], key_shape[1:-1]):
            raise ValueError(
                f"{validation.describe(self)}: all axes of value and key but the last must be "
                f"equal (the same positions), received value {value_shape} and key "
                f"{key_shape}."
            )
        rank = len(query_shape)
        for name, shape in (("query", query_shape), ("value", value_shape), ("key", key_shape)):
            if len(shape) < 3 or (len(shape) != 3 and not self._any_rank):
                raise ValueError(
                    f"{validation.describe(self)}: {name} must have rank "
                    f"{'>= 3 (batch, *positions' if self._any_rank else '3 (batch, time'}, "
                    f"features), received shape {tuple(shape)}."
                )
            if len(shape) != rank:
                raise ValueError(
                    f"{validation.describe(self)}: query, value and key must have the same "
                    f"rank, received query {tuple(query_shape)} and {name} {tuple(shape)}."
                )
            if building:
                validation.known_sizes(self, shape, [rank - 1])
        layout = _Layout.of(self, rank, self._attention_axes_argument)
        if not validation.shapes_agree([query_shape[a] for a in layout.batch_axes],
                           [value_shape[a] for a in layout.batch_axes]):
            raise ValueError(
                f"{validation.describe(self)}: query and value must agree on every axis not "
                f"attended over (batch and axes outside attention_axes="
                f"{self._attention_axes_argument!r}), received query {tuple(query_shape)} and "
                f"value {tuple(value_shape)}."
            )
        return layout

    def call(
        self,
        query,
        value=None,
        key=None,
        query_mask=None,
        value_mask=None,
        key_mask=None,
        attention_mask=None,
        return_attention_scores=False,
        training=None,
        use_causal_mask=False,
        cache=None,
        cache_update_index=None,
        mask=None,
    ):
        if value is None:
            # Self-attention on one tensor: Keras hands its mask over as `mask`.
            value = query
            query_mask = mask if query_mask is None else query_mask
            value_mask = mask if value_mask is None else value_mask
        key = value if key is None else key
        if self._flash_attention and return_attention_scores:
            raise ValueError(
                f"{validation.describe(self)}: returning attention scores is not supported "
                "with flash attention (flash_attention=True); received "
                "return_attention_scores=True."
            )
        gate = self.gate_dense(query) if self.use_gate else None
        query = self.query_dense(query)  # (batch, *positions, heads, key_dim)
        if cache is None:
            if cache_update_index is not None:
                raise ValueError(
                    f"{validation.describe(self)}: `cache_update_index` needs a `cache`; "
                    f"received cache=None and cache_update_index={cache_update_index!r}."
                )
            key = self.key_dense(key)  # (batch, *source positions, key_value_heads, key_dim)
            value = self.value_dense(value)  # (..., key_value_heads, value_dim)
        else:
            key, value, cache = self._use_cache(key, value, cache, cache_update_index)
        scores_mask, causal = self._scores_mask(
            query, key, query_mask, value_mask, key_mask, attention_mask, use_causal_mask,
            cache_update_index,
        )
        layout = self._layout
        # (batch', positions', heads, head_dim): what `attend` takes.
        folded_key, folded_value = layout.fold(key), layout.fold(value)
        if self._key_value_repeats > 1:
            folded_key = ops.repeat(folded_key, self._key_value_repeats, axis=2)
            folded_value = ops.repeat(folded_value, self._key_value_repeats, axis=2)
        outputs, scores = attend(
            layout.fold(query),
            folded_key,
            folded_value,
            scale=self._scale,
            mask=scores_mask,
            causal=causal,
            dropout=self.dropout,
            seed_generator=getattr(self, "seed_generator", None),
            training=training,
            return_scores=return_attention_scores,
            flash_attention=self._flash_attention,
        )
        outputs = layout.unfold(outputs, query)  # (batch, *positions, heads, value_dim)
        if gate is not None:
            outputs = outputs * gate
        outputs = self.output_dense(outputs)  # (batch, *positions, *output_shape)
        results = (outputs,)
        if return_attention_scores:
            results += (layout.unfold_scores(scores, query, key),)
        if cache is not None:
            results += (cache,)
        return results[0] if len(results) == 1 else results

    def _use_cache(self, key, value, cache, cache_update_index):
        """Keys and values `(batch, max_length, key_value_heads, head_dim)` read from `cache`
        `(batch, 2, max_length, key_value_heads, head_dim)`, after writing the projections of
        `key` and `value` into it from position `cache_update_index` (unless None: then
        `key` and `value` are not read); and the cache, updated."""
        query_heads, head_dim = self.query_dense.partial_output_shape[-2:]
        heads = query_heads // self._key_value_repeats
        expected = (2, heads, head_dim)
        shape = tuple(cache.shape)
        if not self._layout.is_sequence or self._value_size != expected[2] or not (
            len(shape) == 5 and (shape[1], *shape[3:]) == expected
        ):
            raise ValueError(
                f"{validation.describe(self)}: a cache needs rank-3 inputs attended over their "
                f"sequence and equal key and value head sizes, and has shape (batch, 2, "
                f"max_length, {heads}, {expected[2]}); received cache of shape {shape} for "
                f"inputs of rank {self._layout.rank} and value head size {self._value_size}."
            )
        key_cache, value_cache = cache[:, 0], cache[:, 1]
        if cache_update_index is None:
            return key_cache, value_cache, cache
        start = (0, cache_update_index, 0, 0)
        key_cache = ops.slice_update(
            key_cache, start, ops.cast(self.key_dense(key), key_cache.dtype)
        )
        value_cache = ops.slice_update(
            value_cache, start, ops.cast(self.value_dense(value), value_cache.dtype)
        )
        return key_cache, value_cache, ops.stack((key_cache, value_cache), axis=1)

    def _scores_mask(self, query, key, query_mask, value_mask, key_mask, attention_mask,
                     use_causal_mask, cache_update_index):
        """All masks merged, `(batch' or 1, heads or 1, target, source)` or None, and whether
        the causal mask is left for `attend` to apply (when it is the only one).

        `query` and `key` are projected, `(batch, *positions, heads, head_dim)`.
        """
        layout = self._layout
        query_positions, key_positions = tuple(query.shape[:-2]), tuple(key.shape[:-2])
        merged = None
        if query_mask is not None:
            _check_mask(self, "query_mask", query_mask, query_positions)
            # (batch', target, 1)
            merged = ops.expand_dims(layout.fold_positions_mask(query_mask, query), -1)
        for name, keys_mask in (("value_mask", value_mask), ("key_mask", key_mask)):
            if keys_mask is not None:
                _check_mask(self, name, keys_mask, key_positions)
                # (batch', 1, source)
                keys_mask = ops.expand_dims(layout.fold_positions_mask(keys_mask, key), -2)
                merged = _and(merged, keys_mask)
        per_head = None
        if attention_mask is not None:
            shared, per_head = self._attention_mask(attention_mask, query, key)
            merged = _and(merged, shared)
        if merged is not None:
            while len(merged.shape) < 3:
                merged = ops.expand_dims(merged, 0)
            merged = ops.expand_dims(merged, 1)  # (batch', 1, target, source): every head
        merged = _and(merged, per_head)
        causal_only = (use_causal_mask and merged is None and self.sliding_window is None
                       and cache_update_index is None)
        if causal_only:
            return None, True
        query_shape, key_shape = ops.shape(query), ops.shape(key)
        target_length = _product(query_shape[a] for a in layout.attention_axes)
        source_length = _product(key_shape[a] for a in layout.attention_axes)
        if use_causal_mask:
            start = 0 if cache_update_index is None else cache_update_index
            merged = _and(merged, causal_mask(target_length, source_length, start))
        if self.sliding_window is not None:
            band = _sliding_window_mask(target_length, source_length, self.sliding_window)
            merged = _and(merged, band)
        return merged, False

    def _attention_mask(self, attention_mask, query, key):
        """`attention_mask`, in Keras's layouts, folded: `(shared, None)` with shared
        `(batch' or 1, target, source)`, or `(None, per_head)` with per_head `(batch' or 1,
        heads or 1, target, source)` for a mask with a heads axis (as many axes as the
        scores, as in Keras)."""
        layout = self._layout
        batch_rank = len(layout.batch_axes)
        leading = len(attention_mask.shape) - 2 * len(layout.attention_axes)
        if not layout.is_sequence and 0 <= leading < batch_rank:
            # As Keras: a mask's leading axes are the first batch axes; it has size 1 on the
            # missing ones, which come just before the attended axes.
            sizes = ops.shape(attention_mask)
            attention_mask = ops.reshape(attention_mask, (
                *sizes[:leading], *(1,) * (batch_rank - leading), *sizes[leading:]
            ))
        if leading != batch_rank + 1:
            _check_mask(self, "attention_mask", attention_mask,
                        layout.attention_mask_shape(query, key))
            return layout.fold_attention_mask(attention_mask, query, key), None
        heads = self._score_heads
        _check_mask(self, "attention_mask", attention_mask,
                    layout.per_head_attention_mask_shape(query, key, heads))
        mask_heads = 1 if attention_mask.shape[batch_rank] == 1 else heads
        return None, layout.fold_attention_mask(attention_mask, query, key, mask_heads)

    def compute_output_shape(self, query_shape, value_shape=None, key_shape=None):
        value_shape = query_shape if value_shape is None else value_shape
        key_shape = value_shape if key_shape is None else key_shape
        self._check_shapes(query_shape, value_shape, key_shape, building=False)
        return (*query_shape[:-1], *self._projected_output_shape(query_shape))

    def compute_output_spec(self, query, value=None, key=None, return_attention_scores=False,
                            cache=None, **kwargs):
        value = query if value is None else value
        shape = self.compute_output_shape(query.shape, value.shape,
                                          None if key is None else key.shape)
        results = (keras.KerasTensor(shape, dtype=self.compute_dtype),)
        if return_attention_scores:
            # (*batch axes, heads, *query's attended, *key's attended)
            layout = _Layout.of(self, len(query.shape), self._attention_axes_argument)
            # With a cache, the keys are the cache's: (batch, max_length, ...).
            source_shape = value.shape if cache is None else (cache.shape[0], cache.shape[2])
            scores_shape = (*(query.shape[a] for a in layout.batch_axes), self._score_heads,
                            *(query.shape[a] for a in layout.attention_axes),
                            *(source_shape[a] for a in layout.attention_axes))
            results += (keras.KerasTensor(scores_shape, dtype=self.compute_dtype),)
        if cache is not None:
            results += (keras.KerasTensor(cache.shape, dtype=cache.dtype),)
        return results[0] if len(results) == 1 else results

    def _common_config(self):
        return {
            "dropout": self.dropout,
            "use_bias": self.use_bias,
            "sliding_window": self.sliding_window,
            "flash_attention": self.flash_attention,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
            "use_gate": self.use_gate,
            "seed": self.seed,
            **self._lora_layers_config(),
        }


@keras.saving.register_keras_serializable(package="keraslayers")
class MultiHeadAttention(_ProjectedAttention):
    """Multi-head attention (Vaswani et al., 2017).

    Each of `num_heads` heads projects the query and key to `key_dim` and the value to
    `value_dim`, computes `softmax(q k^T / sqrt(key_dim)) v`, and a last projection maps the
    concatenated heads to `output_shape` (by default the query's feature size). Drop-in
    for `keras.layers.MultiHeadAttention`: weights `query/kernel` `(dim, heads, key_dim)`,
    `query/bias` `(heads, key_dim)`, then `key`, (`gate` with `use_gate`), `value`, and
    `attention_output/kernel` `(heads, value_dim, *output_shape)`, `attention_output/bias`.
    Called on one tensor, it attends to itself.

    Inputs may have any rank >= 3, `(batch, *positions, features)`, e.g. images
    `(batch, height, width, channels)`: each position attends to the positions along
    `attention_axes` (by default all of them, jointly), separately for every entry of the
    other position axes, as in Keras.

    A target position that sees no source position (every one masked) gets zero heads, so
    its output is the output bias; Keras's layer gives that on its explicit path (scores
    returned, dropout, rank > 3) but averages the values there on its fused path. The
    returned scores are the weights before dropout, as Keras's. With `activity_regularizer`,
    each projection adds one loss (4, or 5 with `use_gate`), as in Keras.

    The projections are EinsumDense layers with Keras's equations, so `model.quantize(mode)`
    quantizes them as Keras's ("int8", "int4", "float8": the same quantized weights, which
    load from a quantized Keras layer), and `layer.quantize(mode)` quantizes all of them at
    once; LoRA (`enable_lora`) works on int8 and int4 projections. A quantized layer's
    config keeps its projections' dtype policies (a `DTypePolicyMap`), so it saves and loads.

    Args:
        num_heads: number of heads.
        key_dim: size of each head for query and key.
        value_dim: size of each head for value (default `key_dim`).
        dropout: rate of dropout on the attention weights in training.
        use_bias: whether the projections have biases.
        output_shape: int or tuple, the trailing output shape (default the query's size).
        attention_axes: int or tuple, the position axes attended over (negative ones count
            from the end of the input shape, so -2 is the last position axis); None for all.
        sliding_window: attend only to positions within `sliding_window - 1` of the query's.
        flash_attention: True or False to force flash attention on or off; None follows
            `keras.config.enable_flash_attention()` / `disable_flash_attention()` (read at
            construction, as in Keras): off when disabled, else the backend chooses. Passed
            to `keras.ops.dot_product_attention` when the fused path runs; True refuses
            `dropout` and `return_attention_scores`.
        kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
        activity_regularizer, kernel_constraint, bias_constraint: for the projections.
        use_gate: multiply the heads by `sigmoid(query @ gate)` before the last projection.
        seed: integer seed of the dropout.

    Call arguments:
        query: `(batch, target, dim)`, or `(batch, *target positions, dim)`.
        value: `(batch, source, value_features)` (or `(batch, *source positions, ...)`,
            equal to the query's on the axes not attended over); None for self-attention.
        key: `(batch, source, key_features)`; default `value`.
        query_mask, value_mask, key_mask: `(batch, target)` / `(batch, source)` booleans
            (`(batch, *positions)` for higher ranks), filled in from Keras masks.
        attention_mask: boolean `(batch, target, source)` (batch may be missing or 1), or
            per head `(batch, heads, target, source)` (heads may be 1); for higher ranks, as
            Keras, `(batch, *other axes, [heads,] *attended target axes, *attended source
            axes)`: a mask with as many axes as the scores has a heads axis; one with fewer
            batch axes has the first ones (as Keras broadcasts it). False hides a source
            position from a target position.
        return_attention_scores: also return the weights `(batch, heads, target, source)`
            (`(batch, *other axes, heads, *attended target axes, *attended source axes)`).
        use_causal_mask: target position `i` attends only to source positions `j <= i`
            (positions over several attended axes counted in row-major order).
        cache: decoding cache `(batch, 2, max_length, heads, key_dim)` of the projected keys
            and values (rank-3 inputs, `value_dim == key_dim`), as keras-hub's
            `CachedMultiHeadAttention`; the call then returns `(outputs, cache)` (with the
            scores in between when asked for), and `value_mask`, `key_mask` and the source
            axis of `attention_mask` cover the cache's `max_length` positions.
        cache_update_index: where the projections of `key` and `value` are written into
            `cache`, and the position of the first query (for `use_causal_mask`); None
            reads the cache without writing to it (and `key` and `value` are unused).
        mask: the Keras mask of a single tensor in self-attention, filled in by Keras.

    Input shape:
        See the call arguments.

    Output shape:
        `(batch, *target positions, *output_shape)`.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> q, v = np.ones((2, 3, 8), "float32"), np.ones((2, 5, 6), "float32")
        >>> tuple(kl.MultiHeadAttention(num_heads=2, key_dim=4)(q, v).shape)
        (2, 3, 8)
    """

    def __init__(
        self,
        num_heads,
        key_dim,
        value_dim=None,
        dropout=0.0,
        use_bias=True,
        output_shape=None,
        attention_axes=None,
        sliding_window=None,
        flash_attention=None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        use_gate=False,
        seed=None,
        **kwargs,
    ):
        # As Keras's: the activity regularizer is the projections' (query, key, value, gate,
        # output: one loss each), not this layer's, whose output is the last projection's.
        super().__init__(**kwargs)
        self._projections_activity_regularizer = regularizers.get(activity_regularizer)
        self.num_heads = validation.positive_int(self, "num_heads", num_heads)
        self.key_dim = validation.positive_int(self, "key_dim", key_dim)
        self.value_dim = self.key_dim
        if value_dim is not None:
            self.value_dim = validation.positive_int(self, "value_dim", value_dim)
        # Stored under a private name: Functional models read `output_shape` off layers.
        self._output_shape = self._checked_output_shape(output_shape)
        self.attention_axes = self._checked_attention_axes(attention_axes)
        self._init_common(dropout, use_bias, sliding_window, flash_attention,
                          kernel_initializer, bias_initializer, kernel_regularizer,
                          bias_regularizer, kernel_constraint, bias_constraint, use_gate, seed)
        self._scale = 1.0 / math.sqrt(self.key_dim)
        self._key_value_repeats = 1
        self._score_heads = self.num_heads
        self._value_size = self.value_dim

    def _checked_output_shape(self, output_shape):
        if output_shape is None:
            return None
        dims = (output_shape,) if isinstance(output_shape, numbers.Integral) else output_shape
        try:
            dims = tuple(dims)
        except TypeError:
            dims = ()
        if not dims or not all(
            isinstance(d, numbers.Integral) and not isinstance(d, bool) and d > 0 for d in dims
        ):
            raise ValueError(
                f"{validation.describe(self)}: `output_shape` must be a positive integer or a "
                f"tuple of them, received output_shape={output_shape!r}."
            )
        return tuple(int(d) for d in dims)

    _any_rank = True

    @property
    def _attention_axes_argument(self):
        return self.attention_axes

    def _checked_attention_axes(self, attention_axes):
        """A tuple of ints, or None; whether they fit the inputs' rank is known at build."""
        if attention_axes is None:
            return None
        axes = (attention_axes,) if isinstance(attention_axes, numbers.Integral) else attention_axes
        if not isinstance(axes, (list, tuple)) or not axes or not all(
            isinstance(a, numbers.Integral) and not isinstance(a, bool) for a in axes
        ):
            raise ValueError(
                f"{validation.describe(self)}: `attention_axes` must be None, an int or a "
                f"non-empty tuple of ints; received attention_axes={attention_axes!r}."
            )
        return tuple(int(a) for a in axes)

    def build(self, query_shape, value_shape=None, key_shape=None):
        value_shape = query_shape if value_shape is None else value_shape
        key_shape = value_shape if key_shape is None else key_shape
        self._layout = self._check_shapes(query_shape, value_shape, key_shape)
        heads, rank = self.num_heads, len(query_shape)
        self.query_dense = self._projection("query", rank, 1, (heads, self.key_dim))
        self.query_dense.build(query_shape)
        self.key_dense = self._projection("key", rank, 1, (heads, self.key_dim))
        self.key_dense.build(key_shape)
        if self.use_gate:
            self.gate_dense = self._projection(
                "gate", rank, 1, (heads, self.value_dim), "sigmoid"
            )
            self.gate_dense.build(query_shape)
        self.value_dense = self._projection("value", rank, 1, (heads, self.value_dim))
        self.value_dense.build(value_shape)
        output_shape = self._projected_output_shape(query_shape)
        # (batch, *positions, heads, value_dim) -> (batch, *positions, *output_shape)
        self.output_dense = self._projection("attention_output", rank + 1, 2, output_shape)
        self.output_dense.build((*query_shape[:-1], heads, self.value_dim))
        self._build_lora_layers()

    def _projected_output_shape(self, query_shape):
        return self._output_shape or (query_shape[-1],)

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "key_dim": self.key_dim,
            "value_dim": self.value_dim,
            "output_shape": self._output_shape,
            "attention_axes": self.attention_axes,
            "activity_regularizer": regularizers.serialize(
                self._projections_activity_regularizer
            ),
            **self._common_config(),
        }


class ZeroSizeError(ValueError, ZeroDivisionError):
    """A size of zero that Keras's GroupQueryAttention divides by, raising a
    ZeroDivisionError; ours is also the ValueError of every other bad size, so a user's
    `except` for either keeps working."""


def _positive_divisor(layer, argument, value):
    try:
        return validation.positive_int(layer, argument, value)
    except ValueError as error:
        if not isinstance(value, bool) and isinstance(value, numbers.Real) and value == 0:
            raise ZeroSizeError(str(error)) from None
        raise


@keras.saving.register_keras_serializable(package="keraslayers")
class GroupQueryAttention(_ProjectedAttention):
    """Grouped-query attention (Ainslie et al., 2023): heads share keys and values.

    `num_query_heads` query heads attend in groups of `num_query_heads / num_key_value_heads`
    to the same key and value head; with one key-value head this is multi-query attention,
    with as many as query heads it is multi-head attention. The scores are scaled by
    `1 / sqrt(head_dim)`; the output has the query's feature size. Drop-in for
    `keras.layers.GroupQueryAttention`: weights `query/kernel` `(dim, query_heads,
    head_dim)` and bias, `key` and `value` `(dim, key_value_heads, head_dim)` and biases,
    `attention_output/kernel` `(query_heads, head_dim, dim)` and bias `(dim,)`. Called on one
    tensor, it attends to itself.

    A target position that sees no source position gets zero heads (its output is the
    output bias), where Keras's fused path averages the values. The returned scores are the
    weights before dropout, as Keras's. With `activity_regularizer`, this layer's output and
    each projection add one loss, as in Keras. As Keras's, `compute_output_shape` (so a
    symbolic call) refuses a value whose feature size differs from the query's, which a call
    on tensors accepts. Quantization and LoRA as in `MultiHeadAttention`.

    Args:
        head_dim: size of each head.
        num_query_heads: number of query heads.
        num_key_value_heads: number of key and value heads; divides `num_query_heads`.
        dropout, use_bias, sliding_window, flash_attention, kernel_initializer,
        bias_initializer, kernel_regularizer, bias_regularizer, activity_regularizer,
        kernel_constraint, bias_constraint, use_gate, seed: as in `MultiHeadAttention`.

    Call arguments:
        As `MultiHeadAttention` for rank-3 inputs; scores are `(batch, query_heads, target,
        source)`, a per-head `attention_mask` `(batch, query_heads, target, source)`, a
        `cache` `(batch, 2, max_length, num_key_value_heads, head_dim)`.

    Input shape:
        query `(batch, target, dim)`, value and key `(batch, source, features)`.

    Output shape:
        `(batch, target, dim)`.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> x = np.ones((2, 5, 8), "float32")
        >>> tuple(kl.GroupQueryAttention(4, num_query_heads=4, num_key_value_heads=2)(x, x).shape)
        (2, 5, 8)
    """

    def __init__(
        self,
        head_dim,
        num_query_heads,
        num_key_value_heads,
        dropout=0.0,
        use_bias=True,
        sliding_window=None,
        flash_attention=None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        use_gate=False,
        seed=None,
        **kwargs,
    ):
        # As Keras's: the activity regularizer applies to this layer's output and to each
        # projection's.
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self._projections_activity_regularizer = self.activity_regularizer
        self.head_dim = _positive_divisor(self, "head_dim", head_dim)
        self.num_query_heads = validation.positive_int(self, "num_query_heads", num_query_heads)
        self.num_key_value_heads = _positive_divisor(
            self, "num_key_value_heads", num_key_value_heads
        )
        if self.num_query_heads % self.num_key_value_heads:
            raise ValueError(
                f"{validation.describe(self)}: `num_query_heads` must be divisible by "
                f"`num_key_value_heads`, received num_query_heads={num_query_heads} and "
                f"num_key_value_heads={num_key_value_heads}."
            )
        self._init_common(dropout, use_bias, sliding_window, flash_attention,
                          kernel_initializer, bias_initializer, kernel_regularizer,
                          bias_regularizer, kernel_constraint, bias_constraint, use_gate, seed)
        self._scale = 1.0 / math.sqrt(self.head_dim)
        self._key_value_repeats = self.num_query_heads // self.num_key_value_heads
        self._score_heads = self.num_query_heads
        self._value_size = self.head_dim

    def build(self, query_shape, value_shape=None, key_shape=None):
        value_shape = query_shape if value_shape is None else value_shape
        key_shape = value_shape if key_shape is None else key_shape
        self._layout = self._check_shapes(query_shape, value_shape, key_shape)
        query_heads, key_value_heads = self.num_query_heads, self.num_key_value_heads
        # Keras's equations ("bqm,muh->bquh", ...) with MultiHeadAttention's letters.
        self.query_dense = self._projection("query", 3, 1, (query_heads, self.head_dim))
        self.query_dense.build(query_shape)
        self.key_dense = self._projection("key", 3, 1, (key_value_heads, self.head_dim))
        self.key_dense.build(key_shape)
        if self.use_gate:
            self.gate_dense = self._projection(
                "gate", 3, 1, (query_heads, self.head_dim), "sigmoid"
            )
            self.gate_dense.build(query_shape)
        self.value_dense = self._projection("value", 3, 1, (key_value_heads, self.head_dim))
        self.value_dense.build(value_shape)
        self.output_dense = self._projection("attention_output", 4, 2, (query_shape[-1],))
        self.output_dense.build((*query_shape[:-1], query_heads, self.head_dim))
        self._build_lora_layers()

    def _projected_output_shape(self, query_shape):
        return (query_shape[-1],)

    def compute_output_shape(self, query_shape, value_shape=None, key_shape=None):
        # Keras's layer refuses these here (so in symbolic calls), though a call on tensors
        # takes them.
        if value_shape is not None and not validation.shapes_agree(
            tuple(query_shape)[-1:], tuple(value_shape)[-1:]
        ):
            raise ValueError(
                f"{validation.describe(self)}: the last axes of query and value must be "
                f"equal, received query_shape={tuple(query_shape)} and "
                f"value_shape={tuple(value_shape)}."
            )
        return super().compute_output_shape(query_shape, value_shape, key_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "head_dim": self.head_dim,
            "num_query_heads": self.num_query_heads,
            "num_key_value_heads": self.num_key_value_heads,
            **self._common_config(),
        }
