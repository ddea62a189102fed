"""Normalization layers: LayerNormalization, BatchNormalization, RMSNormalization,
GroupNormalization, UnitNormalization, SpectralNormalization.

Statistics are computed in float32 whatever the dtype policy (16-bit sums lose them), the
weights stay float32 (`autocast=False`), and the output is cast to the compute dtype.
"""

from __future__ import annotations

import numbers
import warnings

import keras
from keras import constraints, initializers, ops, regularizers

from keraslayers.layers import formulation, validation


def _float32_or_wider(x):
    if ops.dtype(x) in ("float16", "bfloat16"):
        return ops.cast(x, "float32")
    return x


def _axes_arg(layer, axis):
    """Validates the type of an `axis` argument (a TypeError, as Keras's); bounds are checked
    at build."""
    items = axis if isinstance(axis, (list, tuple)) else [axis]
    if not items or not all(isinstance(a, int) and not isinstance(a, bool) for a in items):
        raise TypeError(
            f"{validation.describe(layer)}: `axis` must be an int or a list of ints, "
            f"received axis={axis!r}."
        )
    return list(axis) if isinstance(axis, (list, tuple)) else axis


def _normalized_axes_spec(layer, axes, input_shape):
    """Fixes the sizes of the normalized axes only, as given (negative axes count from the
    end), not the rank: like Keras's layers, one built for `(batch, steps, features)` takes
    `(batch, a, b, features)` too."""
    sizes = {axis: input_shape[axis] for axis in axes}
    min_rank = max(axis + 1 if axis >= 0 else -axis for axis in axes)
    validation.expect_input_spec(layer, min_ndim=min_rank, axes_sizes=sizes)


def _given_axes(axis) -> list[int]:
    """An `axis` argument as a list, its negative entries still counting from the end."""
    return list(axis) if isinstance(axis, list) else [axis]


def _broadcastable(weight, axes, rank):
    """Reshapes a weight over `axes` so it broadcasts against a rank-`rank` input."""
    if axes == [rank - 1]:
        return weight
    shape = [1] * rank
    for a, size in zip(axes, weight.shape, strict=True):
        shape[a] = size
    return ops.reshape(weight, shape)


@keras.saving.register_keras_serializable(package="keraslayers")
class LayerNormalization(keras.layers.Layer):
    """Normalizes each sample over `axis`: `gamma * (x - mean) / sqrt(var + epsilon) + beta`.

    Mean and variance are taken per sample over the axes in `axis` (the features), so the
    result does not depend on the batch. Drop-in for `keras.layers.LayerNormalization`:
    weights `gamma` then `beta`, each shaped like the normalized axes.

    Args:
        axis: int or list of ints, the axes to normalize over (default the last).
        epsilon: small float added to the variance.
        center: whether to add the learned offset `beta`.
        scale: whether to multiply by the learned `gamma`.
        beta_initializer, gamma_initializer, beta_regularizer, gamma_regularizer,
        beta_constraint, gamma_constraint: for the weights.
        rms_scaling: divide by the standard deviation only, without centering (Keras's
            deprecated spelling of RMS scaling, which Keras takes through `**kwargs`;
            prefer `RMSNormalization`).

    Input shape:
        Any; the normalized axes must have known sizes.

    Output shape:
        Same as the input.

    Example:
        >>> import keras, numpy as np, keraslayers as kl
        >>> y = kl.LayerNormalization()(np.array([[1.0, 2.0, 3.0]], "float32"))
        >>> np.round(keras.ops.convert_to_numpy(y).astype("float64"), 3).tolist()
        [[-1.224, 0.0, 1.224]]
    """

    def __init__(
        self,
        axis=-1,
        epsilon=1e-3,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        rms_scaling=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.axis = _axes_arg(self, axis)
        self.epsilon = float(validation.non_negative(self, "epsilon", epsilon))
        self.center = bool(center)
        self.scale = bool(scale)
        self.rms_scaling = bool(rms_scaling)
        if self.rms_scaling:
            # Keras warns here too: the option divides by the standard deviation.
            warnings.warn(
                f"{validation.describe(self)}: rms_scaling=True is deprecated (as in Keras): it "
                "divides by the standard deviation without centering, not by the root mean "
                "square; use RMSNormalization for RMS normalization.",
                stacklevel=2,
            )
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)
        self.supports_masking = True
        self.autocast = False

    def build(self, input_shape):
        self._axes = validation.axes(self, self.axis, input_shape)
        shape = validation.known_sizes(self, input_shape, self._axes)
        self.gamma = None
        if self.scale or self.rms_scaling:
            self.gamma = self.add_weight(
                name="gamma",
                shape=shape,
                initializer=self.gamma_initializer,
                regularizer=self.gamma_regularizer,
                constraint=self.gamma_constraint,
                autocast=False,
            )
        self.beta = None
        if self.center and not self.rms_scaling:
            self.beta = self.add_weight(
                name="beta",
                shape=shape,
                initializer=self.beta_initializer,
                regularizer=self.beta_regularizer,
                constraint=self.beta_constraint,
                autocast=False,
            )
        self._built_rank = len(input_shape)
        _normalized_axes_spec(self, _given_axes(self.axis), input_shape)

    def _input_axes(self, rank) -> list[int]:
        """The normalized axes of a rank-`rank` input (the build's unless the rank differs)."""
        if rank == self._built_rank:
            return self._axes
        return sorted({axis % rank for axis in _given_axes(self.axis)})

    def call(self, inputs):
        x = _float32_or_wider(inputs)
        rank = len(x.shape)
        axes = self._input_axes(rank)
        trailing = axes == list(range(rank - len(axes), rank))
        if trailing and not self.rms_scaling:
            # A fused kernel where the backend has one (torch's layer_norm); it is only
            # right for trailing axes.
            outputs = ops.layer_normalization(
                x, self.gamma, self.beta, axis=axes, epsilon=self.epsilon
            )
            return ops.cast(outputs, self.compute_dtype)
        mean, variance = ops.moments(x, axes=axes, keepdims=True)
        # Keras's rms_scaling divides by the standard deviation without centering.
        centered = x if self.rms_scaling else x - mean
        outputs = centered * ops.rsqrt(variance + self.epsilon)
        if self.gamma is not None:
            outputs = outputs * _broadcastable(self.gamma, axes, rank)
        if self.beta is not None:
            outputs = outputs + _broadcastable(self.beta, axes, rank)
        return ops.cast(outputs, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "axis": self.axis,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "rms_scaling": self.rms_scaling,
            "beta_initializer": initializers.serialize(self.beta_initializer),
            "gamma_initializer": initializers.serialize(self.gamma_initializer),
            "beta_regularizer": regularizers.serialize(self.beta_regularizer),
            "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
            "beta_constraint": constraints.serialize(self.beta_constraint),
            "gamma_constraint": constraints.serialize(self.gamma_constraint),
        }


@keras.saving.register_keras_serializable(package="keraslayers")
class BatchNormalization(keras.layers.Layer):
    """Normalizes each feature over the batch: `gamma * (x - mean) / sqrt(var + eps) + beta`.

    In training (`training=True` and the layer trainable) mean and variance come from the
    batch, over every axis but `axis`, and the moving statistics follow them:
    `moving = moving * momentum + batch * (1 - momentum)`. At inference the moving
    statistics are used. A mask (one axis fewer than the input) excludes padded positions
    from the batch statistics. Drop-in for `keras.layers.BatchNormalization`: weights
    `gamma`, `beta` (trainable), `moving_mean`, `moving_variance` (not trainable).

    Args:
        axis: the feature axis (-1 for channels-last, 1 for channels-first).
        momentum: weight of the old moving statistics in each update.
        epsilon: small float added to the variance.
        center, scale: whether to learn `beta` and `gamma`.
        beta_initializer, gamma_initializer, moving_mean_initializer,
        moving_variance_initializer, beta_regularizer, gamma_regularizer, beta_constraint,
        gamma_constraint: for the weights.
        renorm: batch renormalization (Ioffe, 2017): in training, the batch-normalized values
            are corrected towards the moving statistics by `r = std / renorm_std` and
            `d = (mean - renorm_mean) / renorm_std` (no gradient through either), which adds
            the non-trainable weights `moving_stddev`, `renorm_mean` and `renorm_stddev`.
        renorm_clipping: optional dict with `rmin`, `rmax` (bounds of r) and `dmax` (bound of
            |d|).
        renorm_momentum: momentum of the renorm statistics.
        synchronized: average the statistics across replicas (TensorFlow distribution only).

    Input shape:
        Any; the size of `axis` must be known.

    Output shape:
        Same as the input.

    Example:
        >>> import numpy as np, keraslayers as kl
        >>> bn = kl.BatchNormalization()
        >>> y = bn(np.array([[0.0], [2.0]], "float32"), training=True)
        >>> np.round(np.asarray(bn.moving_mean, "float64"), 3).tolist()
        [0.01]
    """

    def __init__(
        self,
        axis=-1,
        momentum=0.99,
        epsilon=1e-3,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        moving_mean_initializer="zeros",
        moving_variance_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        renorm=False,
        renorm_clipping=None,
        renorm_momentum=0.99,
        synchronized=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(axis, numbers.Integral) or isinstance(axis, bool):
            # A TypeError, as Keras's `int(axis)` raises for a list or None.
            raise TypeError(
                f"{validation.describe(self)}: `axis` must be an int, received axis={axis!r}."
            )
        if synchronized and keras.backend.backend() != "tensorflow":
            raise ValueError(
                f"{validation.describe(self)}: synchronized=True is only supported on the "
                f"TensorFlow backend, not on {keras.backend.backend()!r}."
            )
        self.axis = int(axis)
        self.momentum = float(validation.non_negative(self, "momentum", momentum))
        self.epsilon = float(validation.non_negative(self, "epsilon", epsilon))
        self.center = bool(center)
        self.scale = bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)
        self.synchronized = bool(synchronized)
        self.renorm = bool(renorm)
        # Keras checks the clipping only for a renormalizing layer.
        self.renorm_clipping = (
            self._checked_renorm_clipping(renorm_clipping) if self.renorm else renorm_clipping
        )
        self.renorm_momentum = float(
            validation.non_negative(self, "renorm_momentum", renorm_momentum)
        )
        self.supports_masking = True

    def _checked_renorm_clipping(self, clipping):
        if clipping is None:
            return None
        clipping = dict(clipping)
        unknown = set(clipping) - {"rmin", "rmax", "dmax"}
        rmin, rmax, dmax = (clipping.get(key) for key in ("rmin", "rmax", "dmax"))
        if unknown or (rmin is not None and rmax is not None and rmax < rmin) or (
            dmax is not None and dmax < 0
        ):
            raise ValueError(
                f"{validation.describe(self)}: `renorm_clipping` takes the keys rmin <= rmax "
                f"and dmax >= 0, received renorm_clipping={clipping!r}."
            )
        return clipping

    def build(self, input_shape):
        (self._axis,) = validation.axes(self, self.axis, input_shape)
        shape = validation.known_sizes(self, input_shape, [self._axis])
        self.gamma = self.beta = None
        if self.scale:
            self.gamma = self.add_weight(
                name="gamma",
                shape=shape,
                initializer=self.gamma_initializer,
                regularizer=self.gamma_regularizer,
                constraint=self.gamma_constraint,
                autocast=False,
            )
        if self.center:
            self.beta = self.add_weight(
                name="beta",
                shape=shape,
                initializer=self.beta_initializer,
                regularizer=self.beta_regularizer,
                constraint=self.beta_constraint,
                autocast=False,
            )
        self.moving_mean = self.add_weight(
            name="moving_mean",
            shape=shape,
            initializer=self.moving_mean_initializer,
            trainable=False,
            autocast=False,
        )
        self.moving_variance = self.add_weight(
            name="moving_variance",
            shape=shape,
            initializer=self.moving_variance_initializer,
            trainable=False,
            autocast=False,
        )
        if self.renorm:
            def stddev_initializer(shape, dtype=None):
                return ops.sqrt(self.moving_variance_initializer(shape, dtype=dtype))

            for name, initializer in (
                ("moving_stddev", stddev_initializer),
                ("renorm_mean", self.moving_mean_initializer),
                ("renorm_stddev", stddev_initializer),
            ):
                variable = self.add_weight(
                    name=name, shape=shape, initializer=initializer, trainable=False,
                    autocast=False,
                )
                setattr(self, name, variable)
        self._reduction_axes = [a for a in range(len(input_shape)) if a != self._axis]
        validation.expect_input_spec(
            self, rank=len(input_shape), axes_sizes={self._axis: input_shape[self._axis]}
        )

    def call(self, inputs, training=None, mask=None):
        if mask is not None and len(mask.shape) != len(inputs.shape) - 1:
            raise ValueError(
                f"{validation.describe(self)}: the mask must have one axis fewer than the "
                f"input, received mask shape {tuple(mask.shape)} for input shape "
                f"{tuple(inputs.shape)}."
            )
        x = _float32_or_wider(inputs)
        gamma, beta = self.gamma, self.beta
        if training and self.trainable:
            mean, variance = self._batch_moments(x, mask)
            if self.renorm:
                gamma, beta = self._renormalized_transform(mean, variance)
                self._update_renorm_statistics(mean, variance)
            else:
                m = self.momentum
                self.moving_mean.assign(self.moving_mean * m + mean * (1.0 - m))
                self.moving_variance.assign(self.moving_variance * m + variance * (1.0 - m))
        else:
            mean, variance = self.moving_mean, self.moving_variance
        outputs = ops.batch_normalization(
            x,
            mean=mean,
            variance=variance,
            axis=self._axis,
            offset=beta,
            scale=gamma,
            epsilon=self.epsilon,
        )
        return ops.cast(outputs, self.compute_dtype)

    def _renormalized_transform(self, mean, variance):
        """Scale and offset that apply `(x_hat * r + d) * gamma + beta` in one step."""
        renorm_stddev = ops.maximum(self.renorm_stddev, self.epsilon**0.5)
        r = ops.sqrt(variance + self.epsilon) / renorm_stddev
        d = (mean - self.renorm_mean) / renorm_stddev
        clipping = self.renorm_clipping or {}
        if clipping.get("rmin") is not None:
            r = ops.maximum(r, clipping["rmin"])
        if clipping.get("rmax") is not None:
            r = ops.minimum(r, clipping["rmax"])
        if clipping.get("dmax") is not None:
            d = ops.clip(d, -clipping["dmax"], clipping["dmax"])
        r, d = ops.stop_gradient(r), ops.stop_gradient(d)
        gamma = r if self.gamma is None else r * self.gamma
        beta = d if self.gamma is None else d * self.gamma
        return gamma, beta if self.beta is None else beta + self.beta

    def _update_renorm_statistics(self, mean, variance):
        stddev = ops.sqrt(variance + self.epsilon)
        rm, m = self.renorm_momentum, self.momentum
        self.renorm_mean.assign(self.renorm_mean * rm + mean * (1.0 - rm))
        self.renorm_stddev.assign(self.renorm_stddev * rm + stddev * (1.0 - rm))
        self.moving_mean.assign(self.moving_mean * m + mean * (1.0 - m))
        moving_stddev = self.moving_stddev * m + stddev * (1.0 - m)
        self.moving_stddev.assign(moving_stddev)
        self.moving_variance.assign(ops.relu(ops.square(moving_stddev) - self.epsilon))

    def _batch_moments(self, x, mask):
        """Mean and variance per feature, over every axis but the feature axis."""
        if mask is None:
            return ops.moments(x, axes=self._reduction_axes, synchronized=self.synchronized)
        # (batch, ..., features): True where a position counts. Selecting (not weighting)
        # keeps a NaN or inf at a masked position out of the statistics, as in Keras.
        keep = ops.broadcast_to(ops.expand_dims(ops.cast(mask, "bool"), -1), ops.shape(x))
        count = ops.sum(ops.cast(keep, x.dtype), self._reduction_axes) + keras.config.epsilon()
        mean = ops.sum(ops.where(keep, x, 0), self._reduction_axes) / count
        centered = ops.where(keep, x - _broadcastable(mean, [self._axis], len(x.shape)), 0)
        variance = ops.sum(ops.square(centered), self._reduction_axes) / count
        return mean, variance

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": initializers.serialize(self.beta_initializer),
            "gamma_initializer": initializers.serialize(self.gamma_initializer),
            "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
            "moving_variance_initializer": initializers.serialize(
                self.moving_variance_initializer
            ),
            "beta_regularizer": regularizers.serialize(self.beta_regularizer),
            "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
            "beta_constraint": constraints.serialize(self.beta_constraint),
            "gamma_constraint": constraints.serialize(self.gamma_constraint),
            "synchronized": self.synchronized,
            "renorm": self.renorm,
            "renorm_clipping": self.renorm_clipping,
            "renorm_momentum": self.renorm_momentum,
        }


@keras.saving.register_keras_serializable(package="keraslayers")
class RMSNormalization(keras.layers.Layer):
    """Root-mean-square normalization: `scale * x / sqrt(mean(x ** 2) + epsilon)`.

    The mean is taken per sample over `axis`; there is no centering and no offset. Drop-in
    for `keras.layers.RMSNormalization`: one weight, `scale`, shaped like the normalized axes.

    Args:
        axis: int or list of ints, the axes to normalize over (default the last).
        epsilon: small float added to the mean square.

    Input shape:
        Any; the normalized axes must have known sizes.

    Output shape:
        Same as the input.

    Example:
        >>> import keras, numpy as np, keraslayers as kl
        >>> y = kl.RMSNormalization()(np.array([[3.0, 4.0]], "float32"))
        >>> np.round(keras.ops.convert_to_numpy(y).astype("float64"), 3).tolist()
        [[0.849, 1.131]]
    """

    def __init__(self, axis=-1, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.axis = _axes_arg(self, axis)
        self.epsilon = float(validation.non_negative(self, "epsilon", epsilon))
        self.supports_masking = True
        self.autocast = False

    def build(self, input_shape):
        self._axes = validation.axes(self, self.axis, input_shape)
        shape = validation.known_sizes(self, input_shape, self._axes)
        self.scale = self.add_weight(name="scale", shape=shape, initializer="ones", autocast=False)
        self._built_rank = len(input_shape)
        _normalized_axes_spec(self, _given_axes(self.axis), input_shape)

    def _input_axes(self, rank) -> list[int]:
        """The normalized axes of a rank-`rank` input (the build's unless the rank differs)."""
        if rank == self._built_rank:
            return self._axes
        return sorted({axis % rank for axis in _given_axes(self.axis)})

    def call(self, inputs):
        x = _float32_or_wider(inputs)
        rank = len(x.shape)
        axes = self._input_axes(rank)
        if axes == [rank - 1]:
            # A fused kernel where the backend has one (torch's rms_norm).
            outputs = ops.rms_normalization(x, scale=self.scale, axis=-1, epsilon=self.epsilon)
        else:
            mean_square = ops.mean(ops.square(x), axis=axes, keepdims=True)
            outputs = x * ops.rsqrt(mean_square + self.epsilon)
            outputs = outputs * _broadcastable(self.scale, axes, rank)
        return ops.cast(outputs, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon}


# GroupNormalization formulations by (backend, device kind), read through `formulation.choose`;
# a pair not listed runs Keras's (`_normalize_in_groups`). Measured with `klayers bench --custom
# keraslayers.layers.normalization:GroupNormalization --kwargs '{"groups": 8}' --input-shape
# 32,32,64 --baseline keras --backend all --min-time 0.5` (batch 32, 2-core CPU), ours over
# Keras's, predict / train, per-channel statistics everywhere (load 3.5-4.2): tensorflow
# 1.67x / 1.25x, jax 1.19x / 1.17x, torch 0.87x / 0.93x; with this table (load 2.2-2.5):
# tensorflow 1.47x / 1.21x, jax 1.50x / 1.31x, torch (Keras's formulation) 1.15x / 1.00x.
PER_CHANNEL_STATISTICS = "per_channel_statistics"
GROUP_NORMALIZATION_FORMULATIONS = {
    ("tensorflow", "cpu"): PER_CHANNEL_STATISTICS,
    ("jax", "cpu"): PER_CHANNEL_STATISTICS,
}


@keras.saving.register_keras_serializable(package="keraslayers")
class GroupNormalization(keras.layers.Layer):
    """Normalizes each sample per group of channels: `gamma * (x - mean) / sqrt(var + eps) + beta`.

    The `axis` channels are split into `groups` groups of consecutive channels; mean and
    variance are taken per sample and per group, over the group's channels and every other
    non-batch axis. `groups=1` is layer normalization over all non-batch axes, `groups=-1`
    (one group per channel) instance normalization. Drop-in for
    `keras.layers.GroupNormalization`: weights `gamma` then `beta`, one value per channel.

    Args:
        groups: positive int, the number of groups (it must divide the number of channels),
            or -1 for one group per channel (the config then records the channel count, as
            Keras's does after build).
        axis: int, the channels axis (default the last).
        epsilon: small float added to the variance.
        center: whether to add the learned offset `beta`.
        scale: whether to multiply by the learned `gamma`.
        beta_initializer, gamma_initializer, beta_regularizer, gamma_regularizer,
        beta_constraint, gamma_constraint: for the weights.

    Input shape:
        Any rank >= 2 with a known channel count.

    Output shape:
        Same as the input.

    Example:
        >>> import keras, numpy as np, keraslayers as kl
        >>> x = np.array([[1.0, 3.0, 10.0, 30.0]], "float32")
        >>> y = kl.GroupNormalization(groups=2, epsilon=0.0)(x)
        >>> np.round(keras.ops.convert_to_numpy(y).astype("float64"), 3).tolist()
        [[-1.0, 1.0, -1.0, 1.0]]
    """

    def __init__(
        self,
        groups=32,
        axis=-1,
        epsilon=1e-3,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        **kwargs,
    ):
        if isinstance(groups, bool) or not isinstance(groups, int) or (
                groups <= 0 and groups != -1):
            raise ValueError(
                f"GroupNormalization layer '{kwargs.get('name', 'group_normalization')}': "
                f"invalid value for argument `groups`, expected a positive integer (or -1 for "
                f"instance normalization), received groups={groups!r}."
            )
        super().__init__(**kwargs)
        self.groups = groups
        self.axis = axis
        self.epsilon = epsilon
        self.center = center
        self.scale = scale
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)
        self.supports_masking = True
        self.autocast = False

    def build(self, input_shape):
        if isinstance(self.axis, bool) or not isinstance(self.axis, int):
            raise TypeError(
                f"{validation.describe(self)}: `axis` must be an int, received "
                f"axis={self.axis!r}."
            )
        self._axis = validation.axes(self, self.axis, input_shape)[0]
        channels = input_shape[self._axis]
        if channels is None:
            raise ValueError(
                f"{validation.describe(self)}: axis {self.axis} of the input must have a "
                f"known size, received an input of shape {tuple(input_shape)}."
            )
        if self.groups == -1:
            self.groups = channels
        if channels < self.groups or channels % self.groups:
            raise ValueError(
                f"{validation.describe(self)}: `groups` must divide the number of channels "
                f"({channels}, axis {self.axis}), received groups={self.groups}."
            )
        validation.expect_input_spec(self, rank=len(input_shape),
                                     axes_sizes={self.axis: channels})
        rank = len(input_shape)
        self._reduced_axes = tuple(a for a in range(1, rank) if a != self._axis)
        self._group_size = channels // self.groups
        self._weight_shape = tuple(channels if a == self._axis else 1 for a in range(rank))
        self.gamma = self.add_weight(
            name="gamma", shape=(channels,), initializer=self.gamma_initializer,
            regularizer=self.gamma_regularizer, constraint=self.gamma_constraint,
            autocast=False,
        ) if self.scale else None
        self.beta = self.add_weight(
            name="beta", shape=(channels,), initializer=self.beta_initializer,
            regularizer=self.beta_regularizer, constraint=self.beta_constraint,
            autocast=False,
        ) if self.center else None

    def call(self, inputs):
        x = _float32_or_wider(inputs)
        if formulation.choose("group_normalization", GROUP_NORMALIZATION_FORMULATIONS) == (
                PER_CHANNEL_STATISTICS):
            outputs = self._normalize_from_channel_statistics(x)
        else:
            outputs = self._normalize_in_groups(x)
        return ops.cast(outputs, self.compute_dtype)

    def _normalize_from_channel_statistics(self, x):
        """Statistics per (sample, channel) over the other axes, in the input's own layout (no
        reshape of the input), then per group on the small (batch, channels) tensor."""
        centered = x - self._group_mean(self._channel_mean(x))
        variance = self._group_mean(self._channel_mean(ops.square(centered)))
        inv = ops.rsqrt(variance + self.epsilon)
        if self.scale:
            inv = inv * ops.reshape(ops.cast(self.gamma, x.dtype), self._weight_shape)
        outputs = centered * inv
        if self.center:
            outputs = outputs + ops.reshape(ops.cast(self.beta, x.dtype), self._weight_shape)
        return outputs

    def _normalize_in_groups(self, x):
        """Keras's formulation: the channel axis split into (groups, size), moments over the
        group's axes, then `x * inv + (beta - mean * inv)`."""
        shape = ops.shape(x)
        grouped_shape = list(shape)
        grouped_shape[self._axis:self._axis + 1] = [self.groups, self._group_size]
        grouped = ops.reshape(x, grouped_shape)  # (batch, ..., groups, size, ...)
        axes = [a for a in range(1, len(grouped_shape)) if a != self._axis]
        mean, variance = ops.moments(grouped, axes=axes, keepdims=True)
        weight_shape = [1] * len(grouped_shape)
        weight_shape[self._axis:self._axis + 2] = [self.groups, self._group_size]
        inv = ops.rsqrt(variance + self.epsilon)
        if self.scale:
            inv = inv * ops.reshape(ops.cast(self.gamma, x.dtype), weight_shape)
        offset = -mean * inv
        if self.center:
            offset = offset + ops.reshape(ops.cast(self.beta, x.dtype), weight_shape)
        return ops.reshape(grouped * inv + offset, shape)

    def _channel_mean(self, x):
        """The mean per sample and channel, over the other axes (none on a rank-2 input)."""
        if not self._reduced_axes:
            return x
        return ops.mean(x, axis=self._reduced_axes, keepdims=True)

    def _group_mean(self, per_channel):
        """(batch, 1.., channels, 1..) -> the mean over each group, repeated per channel."""
        stats_shape = ops.shape(per_channel)
        grouped = ops.reshape(per_channel, (-1, self.groups, self._group_size))
        grouped = ops.broadcast_to(ops.mean(grouped, axis=-1, keepdims=True), ops.shape(grouped))
        return ops.reshape(grouped, stats_shape)

    def compute_output_shape(self, input_shape):
        validation.axes(self, self.axis, input_shape)
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "groups": self.groups,
            "axis": self.axis,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": initializers.serialize(self.beta_initializer),
            "gamma_initializer": initializers.serialize(self.gamma_initializer),
            "beta_regularizer": regularizers.serialize(self.beta_regularizer),
            "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
            "beta_constraint": constraints.serialize(self.beta_constraint),
            "gamma_constraint": constraints.serialize(self.gamma_constraint),
        }


@keras.saving.register_keras_serializable(package="keraslayers")
class UnitNormalization(keras.layers.Layer):
    """Scales each sample to unit L2 norm over `axis`: `x / max(sqrt(sum(x ** 2)), 1e-12)`.

    The sum of squares is taken in float32 whatever the dtype policy (a 16-bit sum overflows
    or loses small values). Drop-in for `keras.layers.UnitNormalization`; no weights.

    Args:
        axis: int or list of ints, the axes whose L2 norm becomes 1 (default the last).

    Input shape:
        Any.

    Output shape:
        Same as the input.

    Example:
        >>> import keras, numpy as np, keraslayers as kl
        >>> y = kl.UnitNormalization()(np.array([[3.0, 4.0]], "float32"))
        >>> np.round(keras.ops.convert_to_numpy(y).astype("float64"), 3).tolist()
        [[0.6, 0.8]]
    """

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = _axes_arg(self, axis)
        self.supports_masking = True
        self.autocast = False
        self.built = True

    def call(self, inputs):
        validation.axes(self, self.axis, inputs.shape)
        x = _float32_or_wider(inputs)
        outputs = ops.normalize(x, axis=self.axis, order=2, epsilon=1e-12)
        return ops.cast(outputs, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        validation.axes(self, self.axis, input_shape)
        return input_shape

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


@keras.saving.register_keras_serializable(package="keraslayers")
class SpectralNormalization(keras.layers.Wrapper):
    """Divides a wrapped layer's kernel by its largest singular value, found by power iteration.

    With the kernel `W` flattened to `(fan_in, units)` and `u` a `(1, units)` vector kept
    between steps, each training call runs `power_iterations` times `v = normalize(u W^T)`,
    `u = normalize(v W)`, then sets `W = W / (v W u^T)` and stores `u` (so the kernel seen
    at inference is the last training step's). A kernel of zeros is left as it is.
    Drop-in for `keras.layers.SpectralNormalization`: weights in Keras's order, the wrapped
    kernel (which the wrapper tracks as its own), the non-trainable `vector_u`, then the
    wrapped layer's other weights.

    Args:
        layer: the layer to wrap; it must have a `kernel` (Dense, Conv2D...) or an
            `embeddings` (Embedding) weight.
        power_iterations: positive int, the power-iteration steps per training call.

    Input shape:
        The wrapped layer's.

    Output shape:
        The wrapped layer's.

    Example:
        >>> import keras, numpy as np, keraslayers as kl
        >>> layer = kl.SpectralNormalization(keras.layers.Dense(3))
        >>> tuple(layer(np.ones((2, 4), "float32"), training=True).shape)
        (2, 3)
        >>> [w.name for w in layer.weights]
        ['kernel', 'vector_u', 'bias']
    """

    def __init__(self, layer, power_iterations=1, **kwargs):
        super().__init__(layer, **kwargs)
        if isinstance(power_iterations, bool) or not isinstance(
                power_iterations, numbers.Integral) or power_iterations <= 0:
            raise ValueError(
                f"{validation.describe(self)}: `power_iterations` should be greater than "
                f"zero (a positive integer), received power_iterations={power_iterations!r}."
            )
        self.power_iterations = power_iterations

    def build(self, input_shape):
        super().build(input_shape)
        validation.expect_input_spec(self, min_ndim=1, axes_sizes={-1: input_shape[-1]})
        if hasattr(self.layer, "kernel"):
            self.kernel = self.layer.kernel
        elif hasattr(self.layer, "embeddings"):
            self.kernel = self.layer.embeddings
        else:
            raise ValueError(
                f"{validation.describe(self)}: the wrapped {type(self.layer).__name__} "
                f"layer '{self.layer.name}' object has no attribute 'kernel' nor "
                "'embeddings'; expected a layer with one (Dense, Conv2D, Embedding...)."
            )
        self.kernel_shape = self.kernel.shape
        self.vector_u = self.add_weight(
            shape=(1, self.kernel_shape[-1]),
            initializer=initializers.TruncatedNormal(stddev=0.02),
            trainable=False,
            name="vector_u",
            dtype=self.kernel.dtype,
        )

    def call(self, inputs, training=False):
        if training:
            vector_u, kernel = ops.cond(
                ops.all(ops.equal(self.kernel.value, 0)),
                lambda: (self.vector_u.value, self.kernel.value),
                self.normalized_weights,
            )
            self.vector_u.assign(vector_u)
            self.kernel.assign(kernel)
        return ops.cast(self.layer(inputs), inputs.dtype)

    def normalized_weights(self):
        """`(u, W / sigma)`: the next `u` and the spectrally normalized kernel."""
        weights = ops.reshape(self.kernel.value, (-1, self.kernel_shape[-1]))  # (fan_in, units)
        vector_u = self.vector_u.value  # (1, units)
        for _ in range(self.power_iterations):
            vector_v = ops.normalize(ops.matmul(vector_u, ops.transpose(weights)), axis=None)
            vector_u = ops.normalize(ops.matmul(vector_v, weights), axis=None)
        vector_u = ops.stop_gradient(vector_u)
        vector_v = ops.stop_gradient(vector_v)
        sigma = ops.matmul(ops.matmul(vector_v, weights), ops.transpose(vector_u))  # (1, 1)
        kernel = ops.reshape(ops.divide(self.kernel.value, sigma), self.kernel_shape)
        return ops.cast(vector_u, self.vector_u.dtype), ops.cast(kernel, self.kernel.dtype)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), "power_iterations": self.power_iterations}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        # Keras's `Wrapper.from_config` pops "layer" from the caller's dict: work on a copy.
        return super().from_config(dict(config), custom_objects=custom_objects)
