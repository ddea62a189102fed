"""Calibrated quantization (GPTQ and AWQ) for Dense and EinsumDense (and so the attention
projections), as Keras 3.15.1's `Model.quantize("gptq" | "awq", config=...)` does it.

How Keras calibrates: `Model.quantize` first calls `quantize(mode, config)` on every leaf
layer, which builds the quantized variables beside the float kernel (the layer still computes
with the float kernel: "uncalibrated"); then it runs its calibration pass over the model's
blocks (`config.quantization_layer_structure` or `model.get_quantization_layer_structure`):
block by block, it feeds the calibration samples, streams each target layer's inputs into a
statistic (GPTQ: the Hessian `2 X^T X / n`; AWQ: each input channel's largest magnitude), then
quantizes each target's kernel from it and drops the float kernel ("calibrated"); the block's
outputs are the next block's inputs.

Keras's pass finds its own Dense and EinsumDense only. `register_with_keras()` (called when
keraslayers is imported) widens its layer search and its per-layer statistic to klayers'
Dense and EinsumDense, whose statistic and quantization are this module's (`GPTQCalibration`,
`AWQCalibration`); Keras's layers keep Keras's. Without that hook (a Keras whose pass is laid
out otherwise), our layers refuse the two modes with an error that says so.

The quantized weights are Keras's, in layout and value (a `.keras` file of either loads into
the other): the kernel seen as a matrix `(rows, columns)` (`matrix_view`), quantized per
output column and per group of `group_size` rows to `weight_bits` unsigned levels with a zero
point; stored transposed, `quantized_kernel` `(columns, rows)` uint8 (4-bit values packed in
pairs along the columns), `kernel_scale` and `kernel_zero` `(columns, groups)`, `g_idx`
`(rows,)` (each row's group, as Keras writes it: GPTQ's position / group size, whose integer
part is the group), and for AWQ `awq_scales` `(rows,)`. A row's float value is
`(q - zero[g]) * scale[g]` (AWQ: then divided by the row's `awq_scales`).

GPTQ is the paper's (Frantar et al. 2022): the upper Cholesky factor of the damped Hessian's
inverse drives the per-column error correction, columns in blocks of 128, optional activation
order, Keras's damping. AWQ is Keras's grid search of per-row scales `x_max ** ratio`
(21 ratios) minimising the activation-weighted reconstruction error.

Where ours differs from Keras 3.15.1 (each seen on its code, measured by
benchmarks/probes/gptq.py; given the same statistic and grid, our GPTQ column loop and our AWQ
give Keras's weights: tests/test_calibration.py):
- Keras streams the inputs by replacing each target's `call`, but a layer with a quantized
  policy runs `quantized_call` (its `_gptq_call`), so Keras's statistic never sees a sample:
  its Hessian stays zero (GPTQ is then rounding to nearest on a damped identity) and its AWQ
  magnitudes stay zero (every scale 1). Our uncalibrated layer feeds its inputs to its
  statistic itself (`_calibrated_call`).
- Keras's GPTQ spreads each column's error through the inverse Hessian itself rather than its
  Cholesky factor, which is not the optimal update past the first column: given the true
  Hessian it leaves about as much output error as rounding to nearest.
- Keras's grid takes a row's or group's own minimum and maximum, so one whose weights are all
  positive gets a negative zero point, which the uint8 cast wraps (torch, TensorFlow: -19 ->
  237) or clamps (JAX: 0): those weights dequantize far off. Our grid's range holds 0, as the
  paper's does (the same grid wherever the range held 0 already).
- Without groups (`group_size=-1`), Keras computes a new grid at each block of 128 columns and
  returns one scale per block, for a variable that holds one; ours computes it once.
"""

from __future__ import annotations

import keras
from keras import ops

# (quantization.py imports this module too; each reads the other's names at call time only.)
from keraslayers.layers import quantization, validation

MODES = ("gptq", "awq")
CONFIG_CLASSES = {"gptq": keras.quantizers.GPTQConfig, "awq": keras.quantizers.AWQConfig}


def matrix_view(kernel_shape) -> tuple[int, int]:
    """Keras's `(rows, columns)` view of a kernel for GPTQ/AWQ: a 2D kernel as it is; a 3D one
    by where its largest axis is: first (a query/key/value projection `(model, heads, head
    dim)`: rows the model axis) or later (the output projection `(heads, head dim, model)`:
    columns the model axis)."""
    shape = [int(size) for size in kernel_shape]
    if len(shape) == 2:
        return shape[0], shape[1]
    if len(shape) == 3:
        if shape.index(max(shape)) == 0:
            return shape[0], shape[1] * shape[2]
        return shape[0] * shape[1], shape[2]
    raise ValueError(f"GPTQ and AWQ quantize 2D and 3D kernels, received a kernel of shape "
                     f"{tuple(shape)}.")


# The quantization grid shared by GPTQ and AWQ.


def grid_parameters(weights, *, bits, symmetric=False, per_channel=True, group_size=-1):
    """`(scale, zero, top)` of the unsigned `bits`-bit grid for `weights` `(out, in)`: from each
    output row's minimum and maximum (per group of `group_size` inputs; the whole matrix when
    not `per_channel`); `scale` float32 and `zero` uint8 `(out, groups)`, `top = 2**bits - 1`.

    As Keras's: a last partial group counts zero padding in its range; a flat range is widened
    by 1 each way; symmetric grids centre the zero point. Unlike Keras's, the range always
    holds 0 (so the zero point is on the grid)."""
    weights = ops.cast(weights, "float32")
    out_features, in_features = weights.shape
    grouped = per_channel and group_size > 0 and in_features > group_size
    if grouped:
        groups = -(-in_features // group_size)
        padded = ops.pad(weights, [[0, 0], [0, groups * group_size - in_features]])
        blocks = ops.reshape(padded, (out_features, groups, group_size))
        low, high = ops.min(blocks, axis=2), ops.max(blocks, axis=2)
    else:
        reduced = ops.reshape(weights, (out_features, -1) if per_channel else (1, -1))
        low, high = ops.min(reduced, axis=1), ops.max(reduced, axis=1)
    # The range holds zero (as the GPTQ paper's grid): else a group of one sign gets a zero
    # point outside the grid, which the uint8 cast wraps (Keras's grid does this).
    low, high = ops.minimum(low, 0.0), ops.maximum(high, 0.0)
    if symmetric:
        bound = ops.maximum(ops.abs(low), high)
        low = ops.where(low < 0, -bound, low)
        high = bound
    flat = ops.equal(low, high)
    low = ops.where(flat, low - 1, low)
    high = ops.where(flat, high + 1, high)
    top = float(2**bits - 1)
    scale = ops.divide(high - low, top)
    scale = ops.where(scale <= 0, 1e-8, scale)
    if symmetric:
        zero = ops.full_like(scale, (top + 1) / 2)
    else:
        zero = ops.round(ops.divide(-low, scale))
    if not grouped:
        scale = ops.reshape(scale, (-1, 1))
        zero = ops.reshape(zero, (-1, 1))
        if not per_channel:
            scale = ops.tile(scale, (out_features, 1))
            zero = ops.tile(zero, (out_features, 1))
    return scale, ops.cast(zero, "uint8"), top


def to_grid(values, scale, zero, top):
    """The grid levels (float) of `values` for a broadcastable `scale` and `zero`."""
    scale = ops.where(ops.equal(scale, 0), 1e-8, scale)
    return ops.clip(ops.round(ops.divide(values, scale) + ops.cast(zero, scale.dtype)), 0, top)


def from_grid(levels, scale, zero):
    return ops.multiply(scale, levels - ops.cast(zero, scale.dtype))


# GPTQ


def gptq_quantize(weights, hessian, *, bits, symmetric=False, per_channel=True,
                  group_size=-1, activation_order=False, block=128):
    """GPTQ's quantization of `weights` `(out, in)` (the kernel transposed) against the
    (damped) `hessian` `(in, in)` of its inputs: each input column in turn is rounded to its
    grid and its error spread over the columns not yet quantized, through the upper Cholesky
    factor of the inverse Hessian (the optimal update given the columns done; within a block
    of `block` columns after each column, past the block once per block).

    With `activation_order`, columns go in decreasing Hessian diagonal (ties by position) and
    groups are formed in that order. Returns `(levels int32 (out, in), scale, zero (out,
    groups), g_idx float32 (in,))`.
    """
    weights = ops.cast(weights, "float32")
    in_features = weights.shape[1]
    group = in_features if group_size == -1 else group_size
    if activation_order:
        metric = ops.diagonal(hessian)
        metric = ops.where(ops.isfinite(metric), metric, 0.0)
        # Ties broken by position (a jitter far below any real difference), largest first.
        jitter = ops.arange(in_features, dtype="float32") / in_features * 1e-12
        order = ops.argsort(-(metric + jitter))
        weights = ops.take(weights, order, axis=1)
        hessian = ops.take(ops.take(hessian, order, axis=0), order, axis=1)
    correction = ops.transpose(ops.cholesky(ops.inv(hessian)))
    return _gptq_columns(weights, correction, order if activation_order else None,
                         bits=bits, symmetric=symmetric, per_channel=per_channel,
                         group_size=group_size, group=group, block=block)


def _gptq_columns(weights, correction, order, *, bits, symmetric, per_channel, group_size,
                  group, block):
    """GPTQ's column loop over `weights` `(out, in)` (in quantization order) with the error
    `correction` matrix `(in, in)`; `order` (None: as given) puts the columns back."""
    in_features = weights.shape[1]
    parameters = dict(bits=bits, symmetric=symmetric, per_channel=per_channel,
                      group_size=group_size)
    columns, scales, zeros = [], [], []
    current = None  # the grid of the group being quantized: (first column, scale, zero, top)
    for start in range(0, in_features, block):
        end = min(start + block, in_features)
        pending = weights[:, start:end]
        local = correction[start:end, start:end]
        errors = []
        positions = ops.arange(end - start)
        for j in range(end - start):
            column = start + j
            first = (column // group) * group
            if current is None or current[0] != first:
                # The group's grid from the weights as the previous blocks left them.
                scale, zero, top = grid_parameters(
                    weights[:, first:min(first + group, in_features)], **parameters
                )
                current = (first, scale, zero, top)
                scales.append(scale)
                zeros.append(zero)
            _, scale, zero, top = current
            original = pending[:, j]
            levels = to_grid(original[:, None], scale, zero, top)[:, 0]
            columns.append(levels)
            error = ops.divide(original - from_grid(levels[:, None], scale, zero)[:, 0],
                               local[j, j])
            errors.append(error)
            if j < end - start - 1:
                later = ops.cast(positions > j, "float32")
                pending = pending - error[:, None] * (local[j] * later)[None, :]
        if end < in_features:
            spread = ops.matmul(ops.stack(errors, axis=1), correction[start:end, end:])
            weights = ops.concatenate([weights[:, :end], weights[:, end:] - spread], axis=1)
    levels = ops.cast(ops.stack(columns, axis=1), "int32")
    g_idx = ops.arange(in_features, dtype="float32") / group
    if order is not None:
        back = ops.argsort(order)
        levels = ops.take(levels, back, axis=1)
        g_idx = ops.take(g_idx, back, axis=0)
    return levels, ops.concatenate(scales, axis=1), ops.concatenate(zeros, axis=1), g_idx


class GPTQCalibration:
    """The GPTQ statistic of one klayers layer during Keras's calibration pass, and the
    quantization it ends with (the interface Keras's pass calls: `rows`,
    `update_hessian_with_batch`, `quantize_and_correct_layer`, `free`)."""

    def __init__(self, layer, config):
        self.layer = layer
        self.config = config
        self.rows, self.columns = layer._calibration["rows"], layer._calibration["columns"]
        self.hessian = ops.zeros((self.rows, self.rows), "float32")
        self.samples = 0
        layer._calibration_statistic = self

    def observe(self, inputs):
        """The layer's inputs (any shape whose last axes flatten to the kernel's rows)."""
        self.update_hessian_with_batch(ops.reshape(inputs, (-1, self.rows)))

    def update_hessian_with_batch(self, inputs):
        """Folds `inputs` `(..., rows)` into the running `2 X^T X / n`."""
        x = ops.cast(ops.reshape(inputs, (-1, inputs.shape[-1])), "float32")
        if x.shape[-1] != self.rows:
            raise ValueError(
                f"{validation.describe(self.layer)}: calibration inputs have {x.shape[-1]} "
                f"features, the kernel's rows are {self.rows}."
            )
        count = int(x.shape[0])
        total = self.samples + count
        gram = ops.matmul(ops.transpose(x), x)
        gram = (gram + ops.transpose(gram)) / 2.0
        if self.samples:
            self.hessian = self.hessian * (self.samples / total)
        self.hessian = self.hessian + (2.0 / total) * gram
        self.samples = total

    def quantize_and_correct_layer(self, blocksize=128):
        diagonal = ops.diagonal(self.hessian)
        dead = ops.equal(diagonal, 0.0)  # inputs never seen: weight 1, as Keras
        diagonal = ops.where(dead, 1.0, diagonal)
        damping = self.config.hessian_damping * ops.mean(diagonal)
        off_diagonal = self.hessian - ops.diag(ops.diagonal(self.hessian))
        hessian = off_diagonal + ops.diag(diagonal + damping)
        levels, scale, zero, g_idx = gptq_quantize(
            ops.transpose(self.layer._calibration_matrix()), hessian,
            bits=self.config.weight_bits, symmetric=self.config.symmetric,
            per_channel=self.config.per_channel, group_size=self.config.group_size,
            activation_order=self.config.activation_order, block=blocksize,
        )
        self.layer._set_calibrated(levels, scale, zero, g_idx)

    def free(self):
        self.hessian = None
        self.layer._calibration_statistic = None


# AWQ


def awq_scales(weights, magnitudes, *, grid_points=20, group_size=-1):
    """AWQ's per-input scales for `weights` `(out, in)`: of `x_max ** (i / grid_points)`
    (normalised by the square root of their largest times smallest), the one whose 4-bit
    quantization of `weights * scales`, divided back, has the least error weighted by
    `x_max ** 2` (`x_max` the inputs' largest magnitudes, 1 where below 1e-8)."""
    weights = ops.cast(weights, "float32")
    x_max = ops.cast(magnitudes, "float32")
    x_max = ops.where(x_max < 1e-8, 1.0, x_max)
    best, best_loss = None, None
    for i in range(grid_points + 1):
        scales = ops.ones_like(x_max) if i == 0 else ops.power(x_max, i / grid_points)
        scales = ops.maximum(scales, 1e-4)
        scales = scales / ops.maximum(ops.sqrt(ops.max(scales) * ops.min(scales)), 1e-8)
        levels, scale, zero, g_idx = _awq_grid(weights * scales, group_size)
        if g_idx is None:
            rebuilt = from_grid(levels, scale, zero)
        else:
            rebuilt = quantization.dequantize_grouped(levels, scale, zero, g_idx, group_axis=1)
        rebuilt = rebuilt / scales
        loss = ops.mean(ops.square(weights - rebuilt) * ops.square(x_max))
        if best_loss is None or bool(ops.convert_to_numpy(loss < best_loss)):
            best, best_loss = scales, loss
    return best


def _awq_grid(weights, group_size):
    """4-bit levels of `weights` `(out, in)` on their grid, and the grid: `(levels, scale,
    zero, g_idx)`, `g_idx` None for one group."""
    in_features = weights.shape[1]
    scale, zero, top = grid_parameters(weights, bits=4, group_size=group_size)
    if group_size == -1:
        return to_grid(weights, scale, zero, top), scale, zero, None
    g_idx = ops.arange(in_features, dtype="int32") // group_size
    levels = to_grid(weights, ops.take(scale, g_idx, axis=1), ops.take(zero, g_idx, axis=1), top)
    return levels, scale, zero, g_idx


def awq_quantize(weights, magnitudes, *, grid_points=20, group_size=-1):
    """AWQ's quantization of `weights` `(out, in)`: `(levels, scale, zero, awq_scales,
    g_idx)`, the levels of `weights * awq_scales`."""
    scales = awq_scales(weights, magnitudes, grid_points=grid_points, group_size=group_size)
    levels, scale, zero, g_idx = _awq_grid(ops.cast(weights, "float32") * scales, group_size)
    if g_idx is None:
        g_idx = ops.zeros((weights.shape[1],), "float32")
    return levels, scale, zero, scales, ops.cast(g_idx, "float32")


class AWQCalibration:
    """The AWQ statistic (each input channel's largest magnitude) of one klayers layer during
    Keras's calibration pass, and its quantization (Keras's interface: `rows`,
    `update_activation_magnitudes`, `quantize_layer`, `free`)."""

    def __init__(self, layer, config):
        self.layer = layer
        self.config = config
        self.rows, self.columns = layer._calibration["rows"], layer._calibration["columns"]
        self.magnitudes = ops.zeros((self.rows,), "float32")
        layer._calibration_statistic = self

    def observe(self, inputs):
        self.update_activation_magnitudes(ops.reshape(inputs, (-1, self.rows)))

    def update_activation_magnitudes(self, inputs):
        x = ops.cast(ops.reshape(inputs, (-1, inputs.shape[-1])), "float32")
        self.magnitudes = ops.maximum(self.magnitudes, ops.max(ops.abs(x), axis=0))

    def quantize_layer(self):
        levels, scale, zero, scales, g_idx = awq_quantize(
            ops.transpose(self.layer._calibration_matrix()), self.magnitudes,
            grid_points=self.config.num_grid_points, group_size=self.config.group_size,
        )
        self.layer._set_calibrated(levels, scale, zero, g_idx, awq_scales=scales)

    def free(self):
        self.magnitudes = None
        self.layer._calibration_statistic = None


# The layers' side: variables, forward pass, hand-over from the calibration.


class CalibratedQuantization:
    """Mixin for Dense and EinsumDense: the GPTQ and AWQ variables (Keras's names, shapes and
    file order), the forward pass (the float kernel until calibrated, then the dequantized
    one), and what a calibration writes. The layer names its zero-point variable
    (`_zero_point_name`: Keras's Dense says "kernel_zero", EinsumDense "zero_point")."""

    _zero_point_name = "kernel_zero"

    def _calibration_settings(self, mode, config):
        """`(bits, group_size)`: from the config (quantizing), else the dtype policy (a saved
        quantized layer building)."""
        if isinstance(config, CONFIG_CLASSES[mode]):
            return int(config.weight_bits), int(config.group_size)
        policy = quantization.layer_policy(self)
        return int(policy.weight_bits), int(policy.group_size)

    def _calibrated_build(self, mode, kernel_shape, config):
        bits, group_size = self._calibration_settings(mode, config)
        rows, columns = matrix_view(kernel_shape)
        groups = 1 if group_size == -1 else -(-rows // group_size)
        # Built beside a float kernel (`quantize`): uncalibrated until the pass hands over.
        calibrated = getattr(self, "_kernel", None) is None
        self._calibration = dict(mode=mode, bits=bits, rows=rows, columns=columns,
                                 kernel_shape=tuple(kernel_shape))
        if mode == "gptq" and hasattr(self, "gptq_unpacked_column_size"):
            self.gptq_unpacked_column_size = columns  # EinsumDense's config records it
        settings = dict(initializer="zeros", trainable=False)
        self.quantized_kernel = self.add_weight(
            name="kernel", shape=((columns + 1) // 2 if bits == 4 else columns, rows),
            dtype="uint8", **settings,
        )
        self.kernel_scale = self.add_weight(
            name="kernel_scale", shape=(columns, groups), trainable=False, initializer="ones"
        )
        self.kernel_zero = self.add_weight(
            name=self._zero_point_name, shape=(columns, groups), dtype="uint8", **settings
        )
        if mode == "awq":
            self.awq_scales = self.add_weight(
                name="awq_scales", shape=(rows,), trainable=False, initializer="ones"
            )
        self.g_idx = self.add_weight(name="g_idx", shape=(rows,), dtype="float32", **settings)
        self.is_gptq_calibrated = calibrated and mode == "gptq"
        self.is_awq_calibrated = calibrated and mode == "awq"

    def _gptq_build(self, kernel_shape, config=None):
        self._calibrated_build("gptq", kernel_shape, config)

    def _awq_build(self, kernel_shape, config=None):
        self._calibrated_build("awq", kernel_shape, config)

    def _quantize_gptq(self, config):
        return {}  # the values come from the calibration

    _quantize_awq = _quantize_gptq

    @property
    def _calibrated(self) -> bool:
        return bool(self.is_gptq_calibrated or self.is_awq_calibrated)

    def _calibrated_kernel(self):
        """The float kernel (its own shape) the calibrated variables stand for."""
        info = self._calibration
        levels = self.quantized_kernel
        if info["bits"] == 4:
            levels = keras.quantizers.unpack_int4(levels, info["columns"], axis=0, dtype="uint8")
        # (columns, rows), each row's group the integer part of g_idx -> (rows, columns)
        matrix = ops.transpose(quantization.dequantize_grouped(
            ops.cast(levels, "float32"), self.kernel_scale, self.kernel_zero, self.g_idx,
            group_axis=1))
        if info["mode"] == "awq":
            matrix = ops.divide(matrix, self.awq_scales[:, None])
        return ops.cast(ops.reshape(matrix, info["kernel_shape"]), self.compute_dtype)

    def _calibration_matrix(self):
        """The float kernel as the `(rows, columns)` matrix the calibration quantizes."""
        info = self._calibration
        return ops.reshape(ops.convert_to_tensor(self._kernel), (info["rows"], info["columns"]))

    def _set_calibrated(self, levels, scale, zero, g_idx, awq_scales=None):
        """Writes a calibration's result `(columns, rows)` levels, and drops the float kernel."""
        levels = ops.cast(levels, "uint8")
        if self._calibration["bits"] == 4:
            levels, _, _ = keras.quantizers.pack_int4(levels, axis=0, dtype="uint8")
        self.quantized_kernel.assign(levels)
        self.kernel_scale.assign(scale)
        self.kernel_zero.assign(zero)
        self.g_idx.assign(g_idx)
        if awq_scales is not None:
            self.awq_scales.assign(awq_scales)
        del self._kernel
        self._kernel = None
        mode = self._calibration["mode"]
        self.is_gptq_calibrated = mode == "gptq"
        self.is_awq_calibrated = mode == "awq"

    def _calibrated_call(self, inputs, training=None):
        if self._calibrated:
            return self._bias_and_activation(self._product(inputs, self._calibrated_kernel()))
        statistic = getattr(self, "_calibration_statistic", None)
        if statistic is not None:  # inside the calibration pass: the inputs are its data
            statistic.observe(inputs)
        return self._bias_and_activation(self._product(inputs, self._kernel))

    _gptq_call = _awq_call = _calibrated_call

    def load_own_variables(self, store):
        super().load_own_variables(store)
        if self.built and self.quantization_mode in MODES:
            # A saved GPTQ/AWQ layer is calibrated (as Keras's loading says).
            self._kernel = None
            self.is_gptq_calibrated = self.quantization_mode == "gptq"
            self.is_awq_calibrated = self.quantization_mode == "awq"


# Keras's calibration pass, widened to klayers' layers.


def _is_calibrated_leaf(layer) -> bool:
    return (isinstance(layer, (keras.layers.Dense, keras.layers.EinsumDense,
                               CalibratedQuantization))
            and len(list(layer._flatten_layers())) == 1)


def find_layers_in_block(block):
    """Keras's search for the layers its pass calibrates in a block (its Dense and
    EinsumDense leaves, by path), klayers' Dense and EinsumDense included."""
    return {layer.path: layer for layer in block._flatten_layers() if _is_calibrated_leaf(layer)}


def _dispatching(keras_class, ours):
    def statistic(layer, config):
        if isinstance(layer, CalibratedQuantization):
            return ours(layer, config)
        return keras_class(layer, config)

    statistic.keras_class = keras_class
    return statistic


# Keras's own layer search, as found before `register_with_keras` widened it (for the tests).
KERAS_FINDERS = {}


def register_with_keras() -> bool:
    """Widens Keras's GPTQ and AWQ passes to klayers' layers (idempotent); False where this
    Keras lays its pass out otherwise (our layers then refuse the two modes)."""
    try:
        from keras.src.quantizers import awq_core, gptq_core
    except ImportError:
        return False
    for module, name, ours in ((gptq_core, "GPTQ", GPTQCalibration),
                               (awq_core, "AWQ", AWQCalibration)):
        keras_class = getattr(module, name, None)
        keras_finder = getattr(module, "find_layers_in_block", None)
        if keras_class is None or keras_finder is None:
            return False
        if getattr(keras_class, "keras_class", None) is None:
            setattr(module, name, _dispatching(keras_class, ours))
        if keras_finder is not find_layers_in_block:
            KERAS_FINDERS[name] = keras_finder
            module.find_layers_in_block = find_layers_in_block
    return True


def registered() -> bool:
    try:
        from keras.src.quantizers import awq_core, gptq_core
    except ImportError:
        return False
    return all(getattr(getattr(module, name, None), "keras_class", None) is not None
               for module, name in ((gptq_core, "GPTQ"), (awq_core, "AWQ")))


# On import (core.py's Dense and EinsumDense import this module): Keras's pass reaches ours.
register_with_keras()
