"""Residual: the skip connection `x + f(x)` around any layer."""

from __future__ import annotations

import inspect

import keras

from keraslayers.layers import validation
from keraslayers.layers.core import Dense
from keraslayers.layers.quantization import QuantizableComposite


@keras.saving.register_keras_serializable(package="keraslayers")
class Residual(QuantizableComposite, keras.layers.Layer):
    """Wraps a layer `f` and returns `shortcut(x) + f(x)`.

    `shortcut` is the identity when `f` keeps the input's shape. When `f` changes the last
    dimension, a learned projection (a bias-free `Dense`, weight `shortcut_projection/kernel`)
    maps `x` to the new size. `f` may change nothing but the last dimension. The wrapped
    layer is saved with the wrapper, so `.keras` files hold both. `quantize(mode)` quantizes
    the projection and what `f` holds that takes the mode (as `model.quantize` would); a
    quantized projection's dtype policy is kept in the config.

    Args:
        layer: the layer `f`, a `keras.layers.Layer` (a `keras.Sequential` of several is
            fine).
        use_projection: None (default) projects the shortcut only when `f` changes the last
            dimension; True always projects; False never does (a shape change is an error).

    Input shape:
        Whatever `layer` takes.

    Output shape:
        Whatever `layer` returns.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> block = kl.Residual(kl.Dense(8, activation="relu"))
        >>> tuple(block(np.ones((2, 4), "float32")).shape)
        (2, 8)
    """

    def __init__(self, layer, use_projection=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(layer, keras.layers.Layer):
            raise ValueError(
                f"{validation.describe(self)}: `layer` must be a keras.layers.Layer, "
                f"received {layer!r}."
            )
        if use_projection not in (None, True, False):
            raise ValueError(
                f"{validation.describe(self)}: `use_projection` must be None, True or False, "
                f"received use_projection={use_projection!r}."
            )
        self.layer = layer
        self.use_projection = use_projection
        self.supports_masking = True
        self.projection = None
        self._layer_call_args = set(inspect.signature(layer.call).parameters)

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build(input_shape)
        output_shape = tuple(self.layer.compute_output_shape(input_shape))
        input_shape = tuple(input_shape)
        if len(output_shape) != len(input_shape) or any(
            i is not None and o is not None and i != o
            for i, o in zip(input_shape[:-1], output_shape[:-1], strict=True)
        ):
            raise ValueError(
                f"{validation.describe(self)}: the wrapped layer may change only the last "
                f"dimension, but it maps {input_shape} to {output_shape}."
            )
        changes_size = output_shape[-1] != input_shape[-1]
        if changes_size and self.use_projection is False:
            raise ValueError(
                f"{validation.describe(self)}: the wrapped layer changes the last dimension "
                f"from {input_shape[-1]} to {output_shape[-1]}, which needs a projection; "
                "use use_projection=None or True."
            )
        if self.use_projection or changes_size:
            self.projection = Dense(
                output_shape[-1],
                use_bias=False,
                dtype=self.dtype_policy,
                name="shortcut_projection",
            )
            self.projection.build(input_shape)

    def _recorded_sublayers(self):
        # The wrapped layer keeps its dtype policy in its own config.
        return [] if self.projection is None else [self.projection]

    def call(self, inputs, training=None, mask=None):
        kwargs = {}
        if "mask" in self._layer_call_args:
            kwargs["mask"] = mask
        if "training" in self._layer_call_args:
            kwargs["training"] = training
        residual = self.layer(inputs, **kwargs)
        shortcut = inputs if self.projection is None else self.projection(inputs)
        return keras.ops.add(keras.ops.cast(shortcut, residual.dtype), residual)

    def compute_mask(self, inputs, mask=None):
        return self.layer.compute_mask(inputs, mask)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "layer": keras.saving.serialize_keras_object(self.layer),
            "use_projection": self.use_projection,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layer"] = keras.saving.deserialize_keras_object(config["layer"])
        return cls(**config)
