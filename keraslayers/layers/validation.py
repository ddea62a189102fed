"""Argument and shape checks shared by every layer.

Each check raises a ValueError that names the layer, the argument or input, the value
received and what was expected, so a user's mistake never surfaces as a backend traceback.
"""

from __future__ import annotations

import numbers

import keras


def describe(layer: keras.layers.Layer) -> str:
    """`Dense layer 'dense_3'`: how error messages name a layer."""
    return f"{type(layer).__name__} layer '{layer.name}'"


def positive_int(layer: keras.layers.Layer, argument: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(
            f"{describe(layer)}: `{argument}` must be a positive integer, received "
            f"{argument}={value!r}."
        )
    return int(value)


def rate(layer: keras.layers.Layer, argument: str, value) -> float:
    """A probability of dropping something: a number in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise ValueError(
            f"{describe(layer)}: `{argument}` must be a number in [0, 1), received "
            f"{argument}={value!r}."
        )
    return float(value)


def non_negative(layer: keras.layers.Layer, argument: str, value, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value < 0:
        raise ValueError(
            f"{describe(layer)}: `{argument}` must be a non-negative number, received "
            f"{argument}={value!r}."
        )
    return value


def activation(layer: keras.layers.Layer, value, argument: str = "activation"):
    """Resolves an activation name or callable; None means linear."""
    try:
        return keras.activations.get(value)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"{describe(layer)}: unknown `{argument}` {value!r}; expected the name of a "
            "Keras activation (relu, gelu, silu, sigmoid, tanh, softmax, ...) or a callable."
        ) from error


def min_rank(layer: keras.layers.Layer, input_shape, rank: int, what: str = "input") -> None:
    if len(input_shape) < rank:
        raise ValueError(
            f"{describe(layer)}: {what} must have rank >= {rank}, received an {what} of "
            f"shape {tuple(input_shape)} (rank {len(input_shape)})."
        )


class AxisError(ValueError, IndexError):
    """An axis outside an input's rank. Keras's layers raise an IndexError there (from
    indexing the shape) and a ValueError from `compute_output_shape`: this is both, so a
    user's `except` for either keeps working (as NumPy's AxisError)."""


def axes(layer: keras.layers.Layer, axis, input_shape) -> list[int]:
    """Normalises an int or list of ints to sorted non-negative axes of `input_shape`."""
    rank = len(input_shape)
    requested = list(axis) if isinstance(axis, (list, tuple)) else [axis]
    for a in requested:
        if isinstance(a, bool) or not isinstance(a, numbers.Integral) or not -rank <= a < rank:
            raise AxisError(
                f"{describe(layer)}: axis {a!r} is out of bounds for an input of shape "
                f"{tuple(input_shape)} (rank {rank}); received axis={axis!r}."
            )
    return sorted({int(a) % rank for a in requested})


def shapes_agree(shape, other) -> bool:
    """Whether two shapes have the same rank and the same size wherever both are known."""
    return len(shape) == len(other) and all(
        a is None or b is None or a == b for a, b in zip(shape, other, strict=True)
    )


def known_sizes(layer: keras.layers.Layer, input_shape, axes_: list[int]) -> tuple[int, ...]:
    """The sizes of `axes_`, which a weight's shape depends on, so they must be known."""
    sizes = tuple(input_shape[a] for a in axes_)
    if any(size is None for size in sizes):
        raise ValueError(
            f"{describe(layer)}: the size of axis {axes_} must be known to create the "
            f"layer's weights, received an input of shape {tuple(input_shape)}."
        )
    return sizes


def expect_input_spec(layer: keras.layers.Layer, rank=None, min_ndim=None, axes_sizes=None):
    """Lets Keras reject later inputs whose rank or feature sizes differ from the build.

    Keras checks an InputSpec in `Layer.__call__`, before `build` and `call`, on symbolic and
    eager inputs alike, and its ValueError names the layer, the axis, the expected size and
    the shape received.
    """
    layer.input_spec = keras.layers.InputSpec(ndim=rank, min_ndim=min_ndim, axes=axes_sizes)
