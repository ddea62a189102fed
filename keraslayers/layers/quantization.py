"""Quantization (int8, int4, float8) shared by Dense, EinsumDense (and the attention
projections, which are EinsumDense layers), Embedding and ReversibleEmbedding.

The layers quantize as Keras 3.15.1's do, through the public `keras.quantizers` and
`keras.dtype_policies`: `layer.quantize(mode)` (or `model.quantize(mode)`) replaces the float
weight by its quantized form and sets the dtype policy `<mode>_from_<policy>`; a layer whose
config holds such a policy builds quantized weights directly (that is how a quantized `.keras`
file loads). The quantized weights have Keras's names, shapes, dtypes and order:

- int8: the weight as int8 and a float32 scale per output channel (`kernel_scale` `(units,)`,
  `embeddings_scale` `(input_dim,)`); a weight's float value is `q / scale`.
- int4: two 4-bit values packed per int8 byte along the last axis, with either one scale per
  output channel (`block_size` None or -1) or, by default (`block_size=128`), a scale and an
  int8 zero point per group of `block_size` rows, plus `g_idx` (each row's group): a weight's
  value is `(q - zero[g]) * scale[g]`.
- float8 (Dense): the float kernel stays, and six float32 variables (`inputs_scale`,
  `inputs_amax_history`, `kernel_scale`, ...) drive the float8 quantize-dequantize of the
  inputs, kernel and output gradient; training overwrites them with their new values (their
  "gradients"), as Keras's `overwrite_with_gradient` variables.

Dense and EinsumDense also take the calibrated modes, "gptq" and "awq" (with a
`keras.quantizers.GPTQConfig` / `AWQConfig`), calibrated by `Model.quantize`'s pass: see
`keraslayers.layers.calibration`.

Layers built from such sublayers (MultiHeadAttention, GroupQueryAttention, the Transformer
blocks, TokenAndPositionEmbedding, Residual: `QuantizableComposite`) take `quantize(mode)` for
all of them, and record their quantized sublayers' policies in their config as a
`DTypePolicyMap`, as keras-hub's backbones do, so that a quantized model of them loads.

Errors name the layer: an unknown mode, a mode the layer does not quantize to (a
`QuantizationModeError`, which `Model.quantize` skips with a warning, as it skips Keras's
layers), an unbuilt layer, a second `quantize`; they are raised before anything changes.
"""

from __future__ import annotations

import functools
import re

import keras
from keras import dtype_policies, ops, quantizers
from keras.quantizers import Int4QuantizationConfig, QuantizationConfig

from keraslayers.layers import calibration, validation

# Every mode Keras's `Layer.quantize` knows; a layer quantizes to some of them.
KERAS_MODES = ("int8", "float8", "int4", "gptq", "awq")

# The largest finite values of the float8 formats (ml_dtypes.finfo(...).max).
FLOAT8_MAX = {"float8_e4m3fn": 448.0, "float8_e5m2": 57344.0}

# Per-channel int4 (no zero point): the signed 4-bit range.
INT4_RANGE = (-8, 7)


class QuantizationModeError(ValueError, NotImplementedError):
    """A mode a layer does not quantize to. A ValueError for the user; also the
    NotImplementedError through which `Model.quantize` skips a layer with a warning (as it
    skips Keras's Embedding for float8), so a model of several layer kinds still quantizes."""


def quantization_config(layer, value):
    """The constructor's `quantization_config`: None, a `keras.quantizers.QuantizationConfig`
    or its serialized dict (what `get_config` writes)."""
    if value is None or isinstance(value, QuantizationConfig):
        return value
    if isinstance(value, dict) and "class_name" in value:
        try:
            config = keras.saving.deserialize_keras_object(value)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"{validation.describe(layer)}: `quantization_config` could not be "
                f"deserialized, received quantization_config={value!r} ({error})."
            ) from error
        if isinstance(config, QuantizationConfig):
            return config
    raise ValueError(
        f"{validation.describe(layer)}: `quantization_config` must be None, a "
        "keras.quantizers.QuantizationConfig or its serialized dict, received "
        f"quantization_config={value!r}: that quantization is not supported."
    )


def layer_policy(layer):
    """The layer's own dtype policy (its entry in a DTypePolicyMap)."""
    policy = layer.dtype_policy
    if isinstance(policy, dtype_policies.DTypePolicyMap) and layer.path:
        return policy[layer.path]
    return policy


def int4_block_size(layer, config) -> int | None:
    """The int4 group size: the config's (quantizing), else the dtype policy's (building
    from a saved config); None means one scale per output channel (Keras's -1)."""
    if isinstance(config, Int4QuantizationConfig):
        block_size = config.block_size
    else:
        block_size = getattr(layer_policy(layer), "block_size", None)
    return None if block_size is None or block_size == -1 else int(block_size)


def dequantize_grouped(values, scale, zero, g_idx, group_axis):
    """`(values - zero[g]) * scale[g]`, with each position's group `g = g_idx[i]` gathered
    from `scale` and `zero` along `group_axis` (their groups axis)."""
    groups = ops.cast(g_idx, "int32")
    scale = ops.take(scale, groups, axis=group_axis)
    zero = ops.cast(ops.take(zero, groups, axis=group_axis), scale.dtype)
    return ops.multiply(ops.subtract(values, zero), scale)


def int8_matmul(inputs, kernel, kernel_scale, inputs_quantizer, compute_dtype):
    """`inputs @ (kernel / kernel_scale)` computed on the quantized kernel (and, with an
    `inputs_quantizer`, on int8 inputs: an int8 x int8 product, de-scaled once at the end).

    `kernel` `(in, out)` holds integers (int8, or int4 values unpacked to int8) and
    `kernel_scale` `(out,)`. The gradient reaches the inputs only (through the dequantized
    kernel): the quantized weights are not trained.
    """

    @ops.custom_gradient
    def product(inputs, kernel, kernel_scale):
        def grad(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            float_kernel = ops.divide(ops.cast(kernel, compute_dtype), kernel_scale)
            return ops.matmul(upstream, ops.transpose(float_kernel)), None, None

        output_scale = kernel_scale
        if inputs_quantizer:
            # (batch, ..., in) -> int8 and a scale (batch, ..., 1)
            inputs, inputs_scale = inputs_quantizer(inputs, axis=-1)
            output_scale = ops.multiply(output_scale, inputs_scale)
        outputs = ops.cast(ops.matmul(inputs, kernel), compute_dtype)
        return ops.divide(outputs, output_scale), grad

    return product(inputs, kernel, kernel_scale)


def grouped_matmul(inputs, kernel, kernel_scale, kernel_zero, g_idx, compute_dtype):
    """`inputs @ W` with `W` `(in, out)` dequantized per group of input rows
    (`dequantize_grouped` along axis 0); the gradient reaches the inputs only."""

    @ops.custom_gradient
    def product(inputs, kernel, kernel_scale, kernel_zero, g_idx):
        float_kernel = ops.cast(
            dequantize_grouped(kernel, kernel_scale, kernel_zero, g_idx, group_axis=0),
            compute_dtype,
        )

        def grad(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            return ops.matmul(upstream, ops.transpose(float_kernel)), None, None, None, None

        return ops.matmul(inputs, float_kernel), grad

    return product(inputs, kernel, kernel_scale, kernel_zero, g_idx)


def quantize_grouped(weight, block_size):
    """Asymmetric int4 quantization of `weight` `(rows, columns)` per group of `block_size`
    rows: `(q int8 (rows, columns), scale (groups, columns), zero int8 (groups, columns))`."""
    return quantizers.abs_max_quantize_grouped_with_zero_point(
        weight, block_size=block_size, value_range=INT4_RANGE, dtype="int8", to_numpy=True
    )


def float8_input_qdq(layer, training):
    """Float8 (e4m3) quantize-dequantize of a forward operand with its `scale` and amax
    history; in training, the "gradients" of `scale` and `amax_history` are their new
    values (the scale from the history's maximum, the history with this operand's amax),
    which the optimizer writes over them."""

    @ops.custom_gradient
    def qdq(values, scale, amax_history):
        if training:
            new_scale = quantizers.compute_float8_scale(
                ops.max(amax_history, axis=0), scale,
                ops.cast(FLOAT8_MAX["float8_e4m3fn"], "float32"),
            )
            new_amax_history = quantizers.compute_float8_amax_history(values, amax_history)
        else:
            new_scale = new_amax_history = None
        outputs = quantizers.quantize_and_dequantize(
            values, scale, "float8_e4m3fn", layer.compute_dtype
        )

        def grad(*args, upstream=None, variables=None):
            if upstream is None:
                (upstream,) = args
            return upstream, new_scale, new_amax_history

        return outputs, grad

    return qdq


def float8_gradient_qdq(layer):
    """Identity forward; backward, the float8 (e5m2) quantize-dequantize of the incoming
    gradient, and the new scale and amax history of the gradient as the "gradients" of
    `scale` and `amax_history`."""

    @ops.custom_gradient
    def qdq(outputs, scale, amax_history):
        def grad(*args, upstream=None, variables=None):
            if upstream is None:
                (upstream,) = args
            new_scale = quantizers.compute_float8_scale(
                ops.max(amax_history, axis=0), scale,
                ops.cast(FLOAT8_MAX["float8_e5m2"], "float32"),
            )
            upstream_qdq = quantizers.quantize_and_dequantize(
                upstream, scale, "float8_e5m2", layer.compute_dtype
            )
            new_amax_history = quantizers.compute_float8_amax_history(upstream, amax_history)
            return upstream_qdq, new_scale, new_amax_history

        return outputs, grad

    return qdq


def float8_product(layer, inputs, product, training):
    """`product(inputs, kernel)` on float8 quantize-dequantized operands (`float8_input_qdq`
    with the layer's `inputs_*` and `kernel_*` scales), its gradient float8 quantize-
    dequantized on the way back (`float8_gradient_qdq`), then the bias and activation, as
    Keras's float8 Dense and EinsumDense compute."""
    inputs_qdq = float8_input_qdq(layer, training)
    outputs = product(
        inputs_qdq(inputs, ops.convert_to_tensor(layer.inputs_scale),
                   ops.convert_to_tensor(layer.inputs_amax_history)),
        inputs_qdq(ops.convert_to_tensor(layer._kernel),
                   ops.convert_to_tensor(layer.kernel_scale),
                   ops.convert_to_tensor(layer.kernel_amax_history)),
    )
    # Right after the product, so XLA's gemm rewrite sees the pattern (as Keras places it).
    outputs = float8_gradient_qdq(layer)(
        outputs, ops.convert_to_tensor(layer.outputs_grad_scale),
        ops.convert_to_tensor(layer.outputs_grad_amax_history),
    )
    bias = layer.bias
    if bias is not None and layer.compute_dtype == "float32":
        # Keras rounds a float32 bias through bfloat16 here (for the bias-add fusion); done
        # too so that the outputs are Keras's.
        bias = ops.cast(ops.cast(bias, "bfloat16"), bias.dtype)
    if bias is not None:
        outputs = outputs + bias
    if layer.activation is not None:
        outputs = layer.activation(outputs)
    return outputs


def requested_mode(layer, mode, config):
    """`(mode, config)` of a `quantize(mode, config)` call: Keras's shortcut
    `quantize(config="int8")` read as the mode, the mode taken from the config; a ValueError
    naming the layer for a config that is no QuantizationConfig or contradicts `mode`, and
    for neither given."""
    described = validation.describe(layer)
    if isinstance(config, str):  # Keras's shortcut: quantize(config="int8")
        mode, config = config, None
    if config is not None:
        if not isinstance(config, QuantizationConfig):
            raise ValueError(
                f"{described}: `config` must be a keras.quantizers.QuantizationConfig, "
                f"received config={config!r} (of type {type(config).__name__})."
            )
        if mode is not None and mode != config.mode:
            raise ValueError(
                f"{described}: `mode` and `config` disagree, received mode={mode!r} "
                f"and a config of mode {config.mode!r}."
            )
        mode = config.mode
    if mode is None:
        raise ValueError(f"{described}: `quantize` needs a `mode` or a `config`.")
    return mode, config


def _uncalibrated_error(layer, mode):
    return QuantizationModeError(
        f"{validation.describe(layer)}: cannot quantize to mode={mode!r}: this Keras's {mode} "
        "calibration pass (`Model.quantize`) could not be widened to klayers' layers "
        "(keraslayers.layers.calibration.register_with_keras), so it would leave this one "
        "uncalibrated."
    )


def _check_calibration_config(layer, mode, config):
    """GPTQ and AWQ take their settings (bits, group size) from a config of their own."""
    expected = calibration.CONFIG_CLASSES[mode]
    if not isinstance(config, expected):
        raise ValueError(
            f"{validation.describe(layer)}: mode={mode!r} needs config=keras.quantizers."
            f"{expected.__name__}(...) (its bits, group size and calibration data), received "
            f"config={config!r}."
        )
    if not calibration.registered():
        raise _uncalibrated_error(layer, mode)


class _CheckedQuantize:
    """Runs the layer's `_check_quantize_request(mode, config)` before Keras's own
    `quantize` wrapper (config resolution, its checks, the tracker), so that every refusal
    names the layer and comes before any change."""

    def __new__(cls, *args, **kwargs):
        layer = super().__new__(cls, *args, **kwargs)
        keras_quantize = layer.quantize

        @functools.wraps(keras_quantize)
        def quantize(mode=None, config=None, **kwargs):
            mode = layer._check_quantize_request(mode, config)
            if config is None and mode == "int4":
                config = layer._policy_int4_config()
            return keras_quantize(mode=mode, config=config, **kwargs)

        layer.quantize = quantize
        return layer

    def _policy_int4_config(self):
        """Setting an int4 policy on a built layer (`layer.dtype_policy = "int4/32_from_
        float32"`) quantizes it with the policy's block size; Keras's default config (blocks
        of 128) would build weights the policy's name contradicts."""
        block_size = getattr(layer_policy(self), "block_size", None)
        return None if block_size is None else Int4QuantizationConfig(block_size=block_size)


class Quantizable(_CheckedQuantize):
    """Mixin giving a layer Keras's quantization API.

    A subclass lists its `_quantization_modes`, names the class that quantizes
    (`_quantizing_class`: its subclasses refuse `quantize` unless `type_check=False`, as
    Keras's layers refuse theirs), defines `_<mode>_build(shape, config)` (the quantized
    variables), `_<mode>_call` (the quantized forward pass), `_quantize_<mode>(config)`
    (the quantized values of the float weights, computed before anything changes),
    `_replaced_weights(mode)` (the float weights that quantizing removes),
    `_float_weight_shape()`, `_quantized_weight_names(mode)` (Keras's file order) and
    `_dequantized_weight()` (the float weight the quantized one stands for).
    """

    _quantization_modes: tuple[str, ...] = ("int8", "int4")
    _quantizing_class: type | None = None

    def _init_quantization(self, config) -> None:
        self.quantization_config = quantization_config(self, config)

    def _check_quantize_request(self, mode, config):
        """The mode `quantize(mode, config)` would quantize to, or a ValueError naming the
        layer: an unbuilt or already quantized layer, an unknown mode, a mode this layer does
        not take, a config that is no QuantizationConfig or contradicts `mode`."""
        described = validation.describe(self)
        mode, config = requested_mode(self, mode, config)
        if mode not in KERAS_MODES:
            raise ValueError(
                f"{described}: unknown quantization mode, received mode={mode!r}; "
                f"expected one of {self._quantization_modes}."
            )
        if not self.built:
            raise ValueError(
                f"{described}: cannot quantize a layer that is not built yet, received "
                f"mode={mode!r}; build it (or call it once) first."
            )
        if getattr(self, "_is_quantized", False):
            raise ValueError(
                f"{described}: already quantized (dtype_policy="
                f"'{layer_policy(self).name}'); a layer quantizes once, received mode={mode!r}."
            )
        if mode not in self._quantization_modes:
            raise self._quantization_mode_error(mode)
        if mode in calibration.MODES:
            _check_calibration_config(self, mode, config)
        if mode == "int8" and self.compute_dtype == "float16":
            raise ValueError(
                f"{described}: mode='int8' does not work well with compute_dtype='float16' "
                "(as in Keras); use a policy such as 'mixed_bfloat16' or 'float32' before "
                "calling `quantize()`."
            )
        if getattr(self, "lora_enabled", False) and mode not in ("int8", "int4"):
            raise ValueError(
                f"{described}: LoRA is enabled, and LoRA works with the int8 and int4 modes "
                f"only (Keras's float8 call refuses it), received mode={mode!r}."
            )
        return mode

    def _quantization_mode_error(self, mode):
        return QuantizationModeError(
            f"{validation.describe(self)}: cannot quantize to mode={mode!r}; this layer "
            f"quantizes to {self._quantization_modes}."
        )

    def quantize(self, mode=None, type_check=True, config=None):
        """Quantizes the built layer's weights to `mode` (see the module's docstring for
        the weights each mode creates) and sets the dtype policy `<mode>_from_<policy>`.

        Args:
            mode: "int8" or "int4" (Dense and EinsumDense also "float8", "gptq", "awq");
                optional with a `config`.
            type_check: whether a subclass of this layer refuses (NotImplementedError, as
                in Keras: a subclass may compute something else).
            config: a `keras.quantizers.QuantizationConfig` (`Int4QuantizationConfig(
                block_size=...)`, custom weight or activation quantizers), or None for the
                mode's default.
        """
        if type_check and type(self) is not self._quantizing_class:
            raise self._not_implemented_error(self.quantize)
        shape = self._float_weight_shape()
        # Every quantized value first: a quantizer that fails leaves the layer as it was.
        values = getattr(self, f"_quantize_{mode}")(config)
        self.quantization_config = config
        for name in self._replaced_weights(mode):
            delattr(self, name)
        self.quantized_build(shape, mode, config)
        for name, value in values.items():
            getattr(self, name).assign(value)
        policy = layer_policy(self)
        if policy.quantization_mode is None:
            self.dtype_policy = dtype_policies.get(
                f"{quantized_policy_name(self, mode, config)}_from_{policy.name}"
            )

    def quantized_build(self, shape, mode, config=None):
        if mode not in self._quantization_modes:
            raise self._quantization_mode_error(mode)
        self._quantized_shape = tuple(shape)
        getattr(self, f"_{mode}_build")(shape, config)
        self._is_quantized = True

    def _stored_variables(self):
        """The variables in the order a file holds them: Keras's for the quantization mode,
        then the LoRA factors (saved apart, as klayers saves them unquantized)."""
        names = self._quantized_weight_names(self.quantization_mode)
        stored = [getattr(self, name) for name in names if getattr(self, name, None) is not None]
        factors = list(self._lora_factors()) if getattr(self, "lora_enabled", False) else []
        return stored, factors

    def save_own_variables(self, store):
        if not self.built or self.quantization_mode is None:
            return super().save_own_variables(store)
        stored, factors = self._stored_variables()
        for i, variable in enumerate(stored + factors):
            store[str(i)] = variable

    def load_own_variables(self, store):
        """Loads the file of a quantized layer: Keras's (whose LoRA update is merged into the
        quantized weights: the factors are then zeroed) or klayers' (factors saved apart)."""
        if not self.built or self.quantization_mode is None:
            return super().load_own_variables(store)
        stored, factors = self._stored_variables()
        count = len(store.keys())
        if count not in (len(stored), len(stored) + len(factors)):
            raise ValueError(
                f"{validation.describe(self)}: the file holds {count} variables, the "
                f"{self.quantization_mode}-quantized layer has {len(stored)} (plus "
                f"{len(factors)} LoRA factors)."
            )
        for i, variable in enumerate(stored):
            variable.assign(store[str(i)])
        for i, factor in enumerate(factors):
            if count == len(stored):
                factor.assign(ops.zeros(factor.shape, factor.dtype))
            else:
                factor.assign(store[str(len(stored) + i)])

    def _lora_weight_shape(self):
        if getattr(self, "_is_quantized", False):
            return self._quantized_shape
        return super()._lora_weight_shape()

    def _lora_base(self):
        if self.quantization_mode in ("int8", "int4", *calibration.MODES):
            return self._dequantized_weight()
        return super()._lora_base()

    def _check_lora_quantization(self, rank) -> None:
        if self.quantization_mode not in (None, "int8", "int4"):
            raise ValueError(
                f"{validation.describe(self)}: LoRA works on float, int8 and int4 layers; "
                f"this one is quantized to {self.quantization_mode!r}, received rank={rank!r}."
            )

    def _quantized_config(self) -> dict:
        config = self.quantization_config
        if getattr(config, "quantization_layer_structure", None) is not None:
            # A GPTQ/AWQ config's blocks are calibration input, as its dataset (which Keras
            # drops): saved, they would serialize the model inside its own layer's config
            # (Keras 3.15.1's layers recurse there without end).
            config = config.__class__.from_config(
                {**config.get_config(), "quantization_layer_structure": None}
            )
        return {"quantization_config": keras.saving.serialize_keras_object(config)}


def quantized_policy_name(layer, mode, config) -> str:
    """Keras's policy name for `mode`: "int8", "float8", "int4/<block_size>" (-1 per
    channel), "gptq/<bits>/<group size>", "awq/4/<group size>"."""
    if mode in calibration.MODES:
        return config.dtype_policy_string()
    if mode != "int4":
        return mode
    block_size = int4_block_size(layer, config)
    return f"int4/{-1 if block_size is None else block_size}"



def sublayers_in_order(layer) -> list:
    """Every sublayer of `layer`, depth first in build order (Keras's `_flatten_layers`
    visits each layer's sublayers last first)."""
    found = {}

    def visit(parent):
        for sublayer in parent._flatten_layers(include_self=False, recursive=False):
            if id(sublayer) not in found:
                found[id(sublayer)] = sublayer
                visit(sublayer)

    visit(layer)
    return list(found.values())


def _policy_copy(policy):
    """A policy object of its own (serializing a DTypePolicyMap may rename the ones in it)."""
    return dtype_policies.deserialize(dtype_policies.serialize(policy))


class QuantizableComposite(_CheckedQuantize):
    """Mixin for a layer built from sublayers (attention, Transformer blocks, embeddings):
    `quantize(mode)` on the block, and a config that keeps its sublayers' dtype policies.

    `quantize(mode)` quantizes every sublayer that takes `mode` (the attention projections,
    Dense, Embedding: what `Model.quantize` would quantize in it) and leaves the others;
    every refusal (an unbuilt block, an unknown mode, a quantized sublayer, a mode none of
    them takes, a sublayer's own refusal) is a ValueError naming the block, raised before
    any sublayer changes.

    `get_config` writes `dtype` as a `keras.dtype_policies.DTypePolicyMap` when a sublayer's
    policy differs from the block's (a quantized sublayer's `int8_from_float32`), as
    keras-hub's Backbone saves a quantized model: the block's sublayers get the map as their
    `dtype` and look their own policy up by path, so a loaded block builds quantized weights
    where the file holds them. The keys are patterns, `(?:.*/)?<block name>/<sublayer
    path>`, since a block's path (its parents' name scopes) is not the same when a model
    loads: a Sequential model builds its layers under its own name, then loads them outside
    it.
    """

    def _recorded_sublayers(self):
        """The sublayers this block creates with its own dtype policy (all, by default)."""
        return sublayers_in_order(self)

    def _quantizable_sublayers(self):
        return [layer for layer in sublayers_in_order(self) if isinstance(layer, Quantizable)]

    def _check_quantize_request(self, mode, config):
        described = validation.describe(self)
        mode, config = requested_mode(self, mode, config)
        sublayers = self._quantizable_sublayers()
        # (An unbuilt block may have no sublayers yet: then the modes its kinds take.)
        modes = tuple(dict.fromkeys(
            m for layer in sublayers for m in layer._quantization_modes
        )) or ("int8", "int4", "float8")
        if mode not in KERAS_MODES:
            raise ValueError(
                f"{described}: unknown quantization mode, received mode={mode!r}; "
                f"expected one of {modes}."
            )
        if not self.built:
            raise ValueError(
                f"{described}: cannot quantize a layer that is not built yet, received "
                f"mode={mode!r}; build it (or call it once) first."
            )
        quantized = [layer for layer in sublayers if getattr(layer, "_is_quantized", False)]
        if quantized:
            raise ValueError(
                f"{described}: already quantized (its sublayer '{quantized[0].path}' has "
                f"dtype_policy='{layer_policy(quantized[0]).name}'); a layer quantizes once, "
                f"received mode={mode!r}."
            )
        if mode in calibration.MODES:
            raise QuantizationModeError(
                f"{described}: quantize(mode={mode!r}) on a block would leave its sublayers "
                "uncalibrated; `model.quantize(mode, config=...)` calibrates them (give the "
                "blocks as `quantization_layer_structure`)."
            )
        targets = [layer for layer in sublayers if mode in layer._quantization_modes]
        if not targets:
            raise QuantizationModeError(
                f"{described}: cannot quantize to mode={mode!r}; its sublayers quantize to "
                f"{modes}."
            )
        for layer in targets:
            try:
                layer._check_quantize_request(mode, config)
            except ValueError as error:
                raise ValueError(
                    f"{described}: cannot quantize its sublayer '{layer.path}', received "
                    f"mode={mode!r}: {error}"
                ) from error
        return mode

    def _policy_int4_config(self):
        return None

    def quantize(self, mode=None, type_check=True, config=None):
        """Quantizes every sublayer that takes `mode` (see `Dense.quantize`), as
        `Model.quantize` would; `type_check` and `config` go to each of them."""
        for layer in self._quantizable_sublayers():
            if mode in layer._quantization_modes:
                layer.quantize(mode, type_check=type_check, config=config)
        if keras.backend.backend() == "torch":
            # As `Model.quantize`: torch's parameter lists still hold the replaced weights.
            for layer in self._flatten_layers():
                layer._track_variables()

    def _sublayer_policies(self):
        """The block's dtype policy, or a DTypePolicyMap of the sublayers' that differ."""
        own = self.dtype_policy
        if not isinstance(own, dtype_policies.DTypePolicyMap):
            default = own
        elif not self.built:  # its sublayers have no paths yet: the map as it came
            return own
        else:
            default = own.default_policy
        policies = {}
        for layer in self._recorded_sublayers():
            policy = layer_policy(layer)
            if policy.name == default.name or not layer.path:
                continue
            relative = layer.path.removeprefix(f"{self.path}/") if self.path else layer.path
            policies[f"(?:.*/)?{re.escape(f'{self.name}/{relative}')}"] = _policy_copy(policy)
        if not policies:
            return default
        return dtype_policies.DTypePolicyMap(default_policy=default.name, policy_map=policies)

    def get_config(self):
        config = super().get_config()
        config["dtype"] = dtype_policies.serialize(self._sublayer_policies())
        return config
