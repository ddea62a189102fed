"""Advanced activation layers: LeakyReLU, PReLU, ELU, Softmax.

Drop-ins for Keras 3.15.1's layers of the same names: the same arguments, weights (PReLU's
`alpha`), outputs and gradients. Each passes an incoming mask through; Softmax also reads it
(masked positions get zero probability).
"""

from __future__ import annotations

import numbers
import warnings

import keras
from keras import activations, constraints, initializers, ops, regularizers

from keraslayers.layers.validation import describe

# Masked logits are replaced by this before the softmax: exp of it underflows to 0 in float32,
# the dtype the softmax is computed in under 16-bit policies too.
_MASKED_LOGIT = -1e9


class ArgumentTypeError(ValueError, TypeError):
    """An argument of the wrong type. Keras raises a TypeError there (from comparing it with
    a number); this is both, so a user's `except` for either keeps working."""


def _number(layer, argument: str, value, minimum=None) -> float:
    """A real number (`>= minimum` when given), as a float."""
    expected = "a number" if minimum is None else f"a number >= {minimum}"
    message = f"{describe(layer)}: `{argument}` must be {expected}, received {argument}={value!r}."
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgumentTypeError(message)
    if value != value or (minimum is not None and value < minimum):  # NaN, or below
        raise ValueError(message)
    return float(value)


@keras.saving.register_keras_serializable(package="keraslayers")
class LeakyReLU(keras.layers.Layer):
    """Leaky rectified linear unit: `f(x) = x` for `x >= 0`, `negative_slope * x` otherwise.

    Args:
        negative_slope: non-negative float, the slope below zero. Defaults to 0.3. The legacy
            keyword `alpha` (Keras 2's name) is still taken, with a deprecation warning, and
            wins over `negative_slope`, as in Keras.

    Input shape:
        Any.

    Output shape:
        Same as the input.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> x = np.array([[-2.0, 0.0, 3.0]], "float32")
        >>> np.asarray(kl.LeakyReLU(negative_slope=0.5)(x)).tolist()
        [[-1.0, 0.0, 3.0]]
    """

    def __init__(self, negative_slope=0.3, **kwargs):
        if "alpha" in kwargs:
            negative_slope = kwargs.pop("alpha")
            warnings.warn("LeakyReLU: argument `alpha` is deprecated; use `negative_slope`.",
                          stacklevel=2)
        super().__init__(**kwargs)
        self.negative_slope = _number(self, "negative_slope", negative_slope, minimum=0)
        self.supports_masking = True
        self._build_at_init()

    def call(self, inputs):
        return activations.leaky_relu(inputs, negative_slope=self.negative_slope)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}


@keras.saving.register_keras_serializable(package="keraslayers")
class PReLU(keras.layers.Layer):
    """Parametric rectified linear unit: `f(x) = x` for `x >= 0`, `alpha * x` otherwise,
    with `alpha` learned.

    `alpha` has the input's shape without the batch axis, of size 1 along `shared_axes`:
    for `(batch, height, width, channels)` feature maps, `shared_axes=[1, 2]` learns one
    slope per channel.

    Args:
        alpha_initializer: initializer of `alpha` ("zeros" by default: a ReLU at first).
        alpha_regularizer: optional regularizer of `alpha`.
        alpha_constraint: optional constraint on `alpha`.
        shared_axes: an axis or a list of axes (counted from 1, the batch axis being 0) along
            which one slope is shared; None for a slope per element.

    Input shape:
        Any, with known sizes along the axes that are not shared.

    Output shape:
        Same as the input.

    Example:
        >>> import keras, numpy as np, keraslayers as kl
        >>> layer = kl.PReLU(alpha_initializer=keras.initializers.Constant(0.25),
        ...                  shared_axes=[1])
        >>> x = np.array([[[-4.0, 2.0], [1.0, -8.0]]], "float32")
        >>> np.asarray(layer(x)).tolist(), tuple(layer.alpha.shape)
        ([[[-1.0, 2.0], [1.0, -2.0]]], (1, 2))
    """

    def __init__(self, alpha_initializer="Zeros", alpha_regularizer=None, alpha_constraint=None,
                 shared_axes=None, **kwargs):
        super().__init__(**kwargs)
        self.alpha_initializer = initializers.get(alpha_initializer)
        self.alpha_regularizer = regularizers.get(alpha_regularizer)
        self.alpha_constraint = constraints.get(alpha_constraint)
        self.shared_axes = self._checked_axes(shared_axes)
        self.supports_masking = True

    def _checked_axes(self, shared_axes):
        if shared_axes is None:
            return None
        axes = list(shared_axes) if isinstance(shared_axes, (list, tuple)) else [shared_axes]
        for axis in axes:
            if isinstance(axis, bool) or not isinstance(axis, numbers.Integral) or axis < 1:
                raise ValueError(
                    f"{describe(self)}: `shared_axes` must be an axis or a list of axes >= 1 "
                    f"(axis 0 is the batch), received shared_axes={shared_axes!r}."
                )
        return [int(axis) for axis in axes]

    def build(self, input_shape):
        rank = len(input_shape)
        shared = self.shared_axes or []
        if any(axis >= rank for axis in shared):
            raise ValueError(
                f"{describe(self)}: `shared_axes` {shared} are not all axes of an input of "
                f"shape {tuple(input_shape)} (axes 1 to {rank - 1})."
            )
        # (size of each axis after the batch's, 1 where shared)
        alpha_shape = tuple(1 if axis in shared else input_shape[axis] for axis in range(1, rank))
        if None in alpha_shape:
            raise ValueError(
                f"{describe(self)}: the sizes of the axes that are not shared must be known to "
                f"create `alpha`, received an input of shape {tuple(input_shape)} with "
                f"shared_axes={self.shared_axes!r}."
            )
        self.alpha = self.add_weight(
            name="alpha",
            shape=alpha_shape,
            initializer=self.alpha_initializer,
            regularizer=self.alpha_regularizer,
            constraint=self.alpha_constraint,
        )
        axes = {axis: input_shape[axis] for axis in range(1, rank) if axis not in shared}
        self.input_spec = keras.layers.InputSpec(ndim=rank, axes=axes)
        self.built = True

    def call(self, inputs):
        # The same sum as Keras's (relu(x) - alpha * relu(-x)), so the gradients at 0 agree.
        return activations.relu(inputs) - self.alpha * activations.relu(-inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "alpha_initializer": initializers.serialize(self.alpha_initializer),
            "alpha_regularizer": regularizers.serialize(self.alpha_regularizer),
            "alpha_constraint": constraints.serialize(self.alpha_constraint),
            "shared_axes": self.shared_axes,
        }


@keras.saving.register_keras_serializable(package="keraslayers")
class ELU(keras.layers.Layer):
    """Exponential linear unit: `f(x) = x` for `x > 0`, `alpha * (exp(x) - 1)` otherwise.

    Args:
        alpha: float, the scale of the negative part. Defaults to 1.0.

    Input shape:
        Any.

    Output shape:
        Same as the input.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> y = kl.ELU(alpha=2.0)(np.array([[-100.0, 3.0]], "float32"))
        >>> np.round(np.asarray(y), 4).tolist()
        [[-2.0, 3.0]]
    """

    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha = _number(self, "alpha", alpha)
        self.supports_masking = True
        self._build_at_init()

    def call(self, inputs):
        return activations.elu(inputs, alpha=self.alpha)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


@keras.saving.register_keras_serializable(package="keraslayers")
class Softmax(keras.layers.Layer):
    """Softmax over `axis`: `f(x) = exp(x - max(x)) / sum(exp(x - max(x)))`.

    With a `mask`, masked positions are left out of the sum and get probability 0 (a
    row masked everywhere gives zeros). Under 16-bit policies the softmax is computed in
    float32, then cast to the compute dtype.

    Args:
        axis: an axis or a list of axes to normalize over (jointly). Defaults to -1.

    Call arguments:
        inputs: the logits.
        mask: optional boolean mask (1 keeps, 0 masks; non-boolean masks keep values
            > 0.5), broadcastable to `inputs`: each of its sizes, aligned from the last
            axis, is 1 or the input's. A mask from the previous layer is used when none is
            given, and is passed on.

    Input shape:
        Any.

    Output shape:
        Same as the input.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> x = np.array([[1.0, 1.0, 5.0]], "float32")
        >>> np.asarray(kl.Softmax()(x, mask=np.array([[True, True, False]]))).tolist()
        [[0.5, 0.5, 0.0]]
    """

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = self._checked_axis(axis)
        self.supports_masking = True
        self._build_at_init()

    def _checked_axis(self, axis):
        axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
        if not axes or not all(
            isinstance(a, numbers.Integral) and not isinstance(a, bool) for a in axes
        ):
            raise ValueError(
                f"{describe(self)}: `axis` must be an integer or a non-empty list of "
                f"integers, received axis={axis!r}."
            )
        return [int(a) for a in axis] if isinstance(axis, (list, tuple)) else int(axis)

    def _normalized_axes(self, rank: int) -> tuple[int, ...]:
        axes = self.axis if isinstance(self.axis, list) else [self.axis]
        if not all(-rank <= a < rank for a in axes):
            raise ValueError(
                f"{describe(self)}: `axis` {self.axis!r} is out of bounds for an input of "
                f"rank {rank}."
            )
        return tuple(sorted({a % rank for a in axes}))

    def _checked_mask(self, inputs, mask):
        if len(mask.shape) > len(inputs.shape) or any(
            m is not None and i is not None and m not in (1, i)
            for m, i in zip(mask.shape[::-1], inputs.shape[::-1], strict=False)
        ):
            raise ValueError(
                f"{describe(self)}: the `mask` must broadcast to the inputs (each size 1 or "
                f"the input's, aligned from the last axis), received a mask of shape "
                f"{tuple(mask.shape)} for inputs of shape {tuple(inputs.shape)}."
            )
        if keras.backend.standardize_dtype(mask.dtype) != "bool":
            mask = ops.greater(mask, ops.cast(0.5, mask.dtype))
        return mask

    def call(self, inputs, mask=None):
        axes = self._normalized_axes(len(inputs.shape))
        logits = inputs
        if keras.backend.standardize_dtype(inputs.dtype) in ("float16", "bfloat16"):
            logits = ops.cast(inputs, "float32")
        if mask is not None:
            mask = self._checked_mask(inputs, mask)
            logits = ops.where(mask, logits, _MASKED_LOGIT)
        if len(axes) == 1:
            # Keras's softmax activation, which keeps the logits for crossentropy losses.
            outputs = activations.softmax(logits, axis=axes[0])
        else:
            outputs = ops.exp(logits - ops.logsumexp(logits, axis=axes, keepdims=True))
        if mask is not None:
            outputs = ops.where(mask, outputs, 0.0)
        if logits.dtype != inputs.dtype:
            outputs = ops.cast(outputs, inputs.dtype)
        return outputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}
