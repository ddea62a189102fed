"""Core layers: Dense, Activation, ReLU."""

from __future__ import annotations

import numbers

import keras
from keras import activations, constraints, initializers, ops, regularizers

from keraslayers.layers import validation
from keraslayers.layers.lora import LoRA, adapted_weight

# Activations whose outputs are ratios of sums: they lose too much in 16-bit floats.
_FLOAT32_ACTIVATIONS = ("softmax", "log_softmax")


@keras.saving.register_keras_serializable(package="keraslayers")
class Dense(LoRA, keras.layers.Layer):
    """Densely connected layer: `outputs = activation(inputs @ kernel + bias)`.

    The product contracts the last axis of the input, so any input of rank >= 2 works:
    `(batch, ..., input_dim)` maps to `(batch, ..., units)`. Drop-in for `keras.layers.Dense`
    (same arguments and weights `kernel` `(input_dim, units)` and `bias` `(units,)`).

    Args:
        units: positive integer, the size of the last output axis.
        activation: activation name or callable; None for linear.
        use_bias: whether to add a learned bias.
        kernel_initializer, bias_initializer: initializers of the weights.
        kernel_regularizer, bias_regularizer, activity_regularizer: optional regularizers.
        kernel_constraint, bias_constraint: optional constraints.
        quantization_config: accepted so that Keras's Dense configs load; must be None.
        lora_rank: positive integer: the layer enables LoRA of this rank when built (see
            `enable_lora`); None for none.
        lora_alpha: positive number, the LoRA update's scale is `lora_alpha / lora_rank`;
            `lora_rank` when None.

    Input shape:
        `(batch, ..., input_dim)`, rank >= 2.

    Output shape:
        `(batch, ..., units)`.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> tuple(kl.Dense(4, activation="relu")(np.ones((2, 3), "float32")).shape)
        (2, 4)
    """

    def __init__(
        self,
        units,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        lora_rank=None,
        lora_alpha=None,
        quantization_config=None,
        **kwargs,
    ):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        validation.no_quantization(self, quantization_config)
        self._init_lora(lora_rank, lora_alpha)
        self.units = validation.positive_int(self, "units", units)
        self.activation = validation.activation(self, activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.supports_masking = True
        validation.expect_input_spec(self, min_ndim=2)

    def build(self, input_shape):
        validation.min_rank(self, input_shape, 2)
        (input_dim,) = validation.known_sizes(self, input_shape, [len(input_shape) - 1])
        self._kernel = self.add_weight(
            name="kernel",
            shape=(input_dim, self.units),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(self.units,),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        validation.expect_input_spec(self, min_ndim=2, axes_sizes={-1: input_dim})
        self.built = True
        self._build_lora()

    kernel = adapted_weight("kernel", "The kernel `(input_dim, units)`, with the LoRA update.")

    def call(self, inputs):
        # (batch, ..., input_dim) @ (input_dim, units) -> (batch, ..., units)
        outputs = ops.matmul(inputs, self.kernel)
        if self.bias is not None:
            outputs = outputs + self.bias
        # `layer.activation = None` after construction means linear, as in Keras.
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "activity_regularizer": regularizers.serialize(self.activity_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
            "quantization_config": None,
            **self._lora_config(),
        }


@keras.saving.register_keras_serializable(package="keraslayers")
class Activation(keras.layers.Layer):
    """Applies an activation function elementwise: `outputs = activation(inputs)`.

    Takes every name Keras knows (relu, sigmoid, tanh, gelu, silu, softmax, ...) or a
    callable. Softmax and log-softmax are computed in float32 under 16-bit policies.

    Args:
        activation: activation name or callable.

    Input shape:
        Any.

    Output shape:
        Same as the input.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> np.asarray(kl.Activation("relu")(np.array([[-1.0, 2.0]], "float32"))).tolist()
        [[0.0, 2.0]]
    """

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = validation.activation(self, activation)
        self.supports_masking = True
        # Built now only if `build` is not overridden, as Keras's stateless layers are: a
        # subclass's own `build` still runs at the first call.
        self._build_at_init()

    def call(self, inputs):
        name = getattr(self.activation, "__name__", "")
        if name in _FLOAT32_ACTIVATIONS and ops.dtype(inputs) in ("float16", "bfloat16"):
            return ops.cast(self.activation(ops.cast(inputs, "float32")), inputs.dtype)
        return self.activation(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "activation": activations.serialize(self.activation)}


@keras.saving.register_keras_serializable(package="keraslayers")
class ReLU(keras.layers.Layer):
    """Rectified linear unit with optional cap, threshold and leak.

    `f(x) = max_value` for `x >= max_value`, `x` for `threshold <= x < max_value`,
    `negative_slope * (x - threshold)` otherwise.

    Args:
        max_value: non-negative float, the cap; None for no cap.
        negative_slope: non-negative float, slope below the threshold.
        threshold: non-negative float, where the unit starts to pass its input.

    Input shape:
        Any.

    Output shape:
        Same as the input.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> np.asarray(kl.ReLU(max_value=1.0)(np.array([[-1.0, 0.5, 3.0]], "float32"))).tolist()
        [[0.0, 0.5, 1.0]]
    """

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        self.max_value = self._checked("max_value", max_value, allow_none=True)
        self.negative_slope = self._checked("negative_slope", negative_slope)
        self.threshold = self._checked("threshold", threshold)
        self.supports_masking = True
        # Built now only if `build` is not overridden, as Keras's stateless layers are: a
        # subclass's own `build` still runs at the first call.
        self._build_at_init()

    def _checked(self, argument, value, allow_none=False):
        """A non-negative number: a ValueError for a negative one or a None (where Keras
        takes none), a TypeError for a non-number, as Keras's comparison raises."""
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, numbers.Real)
        ):
            raise TypeError(
                f"{validation.describe(self)}: `{argument}` must be a non-negative number, "
                f"received {argument}={value!r}."
            )
        return validation.non_negative(self, argument, value, allow_none=allow_none)

    def call(self, inputs):
        return activations.relu(
            inputs,
            negative_slope=self.negative_slope,
            max_value=self.max_value,
            threshold=self.threshold,
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "max_value": self.max_value,
            "negative_slope": self.negative_slope,
            "threshold": self.threshold,
        }
