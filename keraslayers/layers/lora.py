"""Low-rank adaptation (LoRA), shared by the layers Keras gives it: Dense, Embedding, Conv1D/2D/3D
and the attention projections (Keras's EinsumDense).

A LoRA layer freezes its base weight `W` `(*in, out)` and learns two factors, `a` `(*in, rank)`
and `b` `(rank, out)`; it computes with `W + (lora_alpha / rank) * (a @ b)`, as Keras does.
The factors are float32 whatever the dtype policy (as in Keras), and are saved as weights of
their own: unlike Keras, saving does not merge them into `W`.
"""

from __future__ import annotations

import numbers

from keras import initializers, ops

from keraslayers.layers import validation


def adapted_weight(name: str, doc: str) -> property:
    """A read-only property `name` over the variable `_name`: the variable itself without LoRA
    (no extra op on that path), `_name + scale * (a @ b)` in the compute dtype with it. On an
    int8/int4-quantized layer the base is the dequantized weight (see `Quantizable`), which
    the update then meets in float (QLoRA)."""

    def effective(layer):
        base = layer._lora_base()
        if not layer.lora_enabled:
            return base
        a, b = layer._lora_factors()
        delta = (layer.lora_alpha / layer.lora_rank) * ops.matmul(a, b)
        return ops.cast(ops.add(base, delta), layer.compute_dtype)

    return property(effective, doc=doc)


def _positive_number(layer, argument, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError(
            f"{validation.describe(layer)}: `{argument}` must be a positive number, received "
            f"{argument}={value!r}."
        )
    return value


class LoRA:
    """Mixin for a layer with one adaptable weight.

    The layer stores the weight as `_<_lora_weight>` (exposed through `adapted_weight`), calls
    `_init_lora` in `__init__` and `_build_lora` at the end of `build`. The factors are
    `lora_<_lora_weight>_a` and `_b`, Keras's names.
    """

    _lora_weight = "kernel"

    def _init_lora(self, lora_rank, lora_alpha) -> None:
        if lora_rank is not None:
            lora_rank = validation.positive_int(self, "lora_rank", lora_rank)
        if lora_alpha is not None:
            lora_alpha = _positive_number(self, "lora_alpha", lora_alpha)
        self.lora_rank = lora_rank
        self.lora_alpha = lora_alpha if lora_alpha is not None else lora_rank
        self.lora_enabled = False

    def _build_lora(self) -> None:
        if self.lora_rank:
            self.enable_lora(self.lora_rank, lora_alpha=self.lora_alpha)

    def _lora_base(self):
        """The weight the LoRA update adds to: the variable `_<_lora_weight>`."""
        return getattr(self, f"_{self._lora_weight}")

    def _lora_weight_shape(self):
        """`(*in, out)` of the adapted weight (a quantized layer's unpacked shape)."""
        return tuple(getattr(self, f"_{self._lora_weight}").shape)

    def _check_lora_quantization(self, rank) -> None:
        """Refuses LoRA where the layer's quantization cannot carry it (none here)."""

    def _lora_factors(self):
        name = self._lora_weight
        return getattr(self, f"lora_{name}_a"), getattr(self, f"lora_{name}_b")

    def _check_lora(self, rank, lora_alpha) -> None:
        """Every reason `enable_lora` refuses, checked before anything changes (ValueErrors,
        as Keras raises for a constraint, an unbuilt layer and a second call)."""
        name = self._lora_weight
        if getattr(self, f"{name}_constraint", None) is not None:
            raise ValueError(
                f"{validation.describe(self)}: LoRA is incompatible with a constraint on the "
                f"{name}; received {name}_constraint={getattr(self, f'{name}_constraint')!r}. "
                f"Remove the `{name}_constraint` argument to enable LoRA."
            )
        if not self.built:
            raise ValueError(
                f"{validation.describe(self)}: cannot enable LoRA on a layer that is not built "
                "yet; build it (or call it once) first."
            )
        if self.lora_enabled:
            raise ValueError(
                f"{validation.describe(self)}: LoRA is already enabled (rank={self.lora_rank}); "
                f"it can be enabled once per layer, received rank={rank!r}."
            )
        validation.positive_int(self, "rank", rank)
        if lora_alpha is not None:
            _positive_number(self, "lora_alpha", lora_alpha)
        self._check_lora_quantization(rank)

    def enable_lora(self, rank, lora_alpha=None, a_initializer="he_uniform",
                    b_initializer="zeros"):
        """Freezes the base weight and adds the trainable factors `a` `(*in, rank)` and `b`
        `(rank, out)`; the layer then computes with `W + (lora_alpha / rank) * (a @ b)`.

        Args:
            rank: positive integer, the rank of the update.
            lora_alpha: positive number scaling the update by `lora_alpha / rank`; `rank`
                (a scale of 1) when None.
            a_initializer, b_initializer: initializers of the factors (`b` zeros: the layer
                starts out computing what it computed before).
        """
        self._check_lora(rank, lora_alpha)
        a_initializer = initializers.get(a_initializer)
        b_initializer = initializers.get(b_initializer)
        name = self._lora_weight
        base = getattr(self, f"_{name}")
        shape = self._lora_weight_shape()
        regularizer = getattr(self, f"{name}_regularizer", None)
        self._tracker.unlock()
        try:
            a = self.add_weight(
                name=f"lora_{name}_a", shape=(*shape[:-1], rank),
                initializer=a_initializer, dtype="float32", regularizer=regularizer,
            )
            b = self.add_weight(
                name=f"lora_{name}_b", shape=(rank, shape[-1]),
                initializer=b_initializer, dtype="float32", regularizer=regularizer,
            )
        finally:
            self._tracker.lock()
        setattr(self, f"lora_{name}_a", a)
        setattr(self, f"lora_{name}_b", b)
        base.trainable = False
        self.lora_rank = int(rank)
        self.lora_alpha = lora_alpha if lora_alpha is not None else self.lora_rank
        self.lora_enabled = True

    def _lora_config(self) -> dict:
        # Only when set, as Keras writes them: configs without LoRA stay Keras's.
        if not self.lora_rank:
            return {}
        return {"lora_rank": self.lora_rank, "lora_alpha": self.lora_alpha}

    def load_own_variables(self, store):
        """Also loads a file without the factors into a LoRA layer: a plain layer's, or one
        Keras saved (Keras merges the update into the base weight at save); the factors
        are then zeroed, as Keras does, so the layer computes what was saved."""
        if self.lora_enabled:
            factors = [id(v) for v in self._lora_factors()]
            own = self._trainable_variables + self._non_trainable_variables
            base = [v for v in own if id(v) not in factors]
            if len(store.keys()) == len(base):
                for i, variable in enumerate(base):
                    variable.assign(store[str(i)])
                for factor in self._lora_factors():
                    factor.assign(ops.zeros(factor.shape, factor.dtype))
                return
        super().load_own_variables(store)


def lora_sublayers(layer, prefix=""):
    """`(path, sublayer)` for every LoRA-capable layer inside `layer`, depth first in build
    order; a path joins the layer names with "/" (`"self_attention_layer/query"`)."""
    for sublayer in layer._flatten_layers(include_self=False, recursive=False):
        path = f"{prefix}{sublayer.name}"
        if isinstance(sublayer, LoRA):
            yield path, sublayer
        yield from lora_sublayers(sublayer, f"{path}/")


class LoRAComposite:
    """Mixin for a block of LoRA-capable sublayers (attention, Transformer blocks).

    `enable_lora(rank)` adapts the sublayers named in `target_layer_names` and freezes the
    rest of the block, as keras-hub's `Backbone.enable_lora` does. The block's config records
    which sublayers have LoRA (`lora_layers`, only when some do, however it was enabled: by
    the block or on a sublayer, Keras's `mha.query_dense.enable_lora(r)`), so that a saved
    block rebuilds the same factors and its file keeps them apart from the frozen weights.
    Which other sublayers were frozen is not saved (Keras saves no sublayer's `trainable`).
    Subclasses call `_init_lora_layers(kwargs)` before `super().__init__`, then
    `_set_lora_layers`, and `_build_lora_layers()` at the end of `build`.
    """

    # keras-hub's default targets: the query and value projections (as in the LoRA paper).
    _lora_default_targets = ("query", "value")

    def _init_lora_layers(self, kwargs) -> dict | None:
        return kwargs.pop("lora_layers", None)

    def _set_lora_layers(self, lora_layers) -> None:
        if lora_layers is not None and not isinstance(lora_layers, dict):
            raise ValueError(
                f"{validation.describe(self)}: `lora_layers` must be a dict of sublayer path "
                f"to {{'rank', 'lora_alpha'}}, received lora_layers={lora_layers!r}."
            )
        self._pending_lora_layers = dict(lora_layers or {})

    @property
    def lora_layers(self) -> dict:
        """`{sublayer path: {"rank", "lora_alpha"}}` of the sublayers with LoRA."""
        if not self.built:
            return dict(self._pending_lora_layers)
        return {
            path: {"rank": sublayer.lora_rank, "lora_alpha": sublayer.lora_alpha}
            for path, sublayer in lora_sublayers(self)
            if sublayer.lora_enabled
        }

    def _build_lora_layers(self) -> None:
        pending = self._pending_lora_layers
        if not pending:
            return
        found = dict(lora_sublayers(self))
        unknown = sorted(set(pending) - set(found))
        if unknown:
            raise ValueError(
                f"{validation.describe(self)}: `lora_layers` names sublayers it does not have: "
                f"{unknown}; it has {sorted(found)}."
            )
        for path, settings in pending.items():
            if not found[path].lora_enabled:
                found[path].enable_lora(settings["rank"], lora_alpha=settings["lora_alpha"])

    def _freeze_all_but(self, paths) -> None:
        adapted = {id(sublayer) for path, sublayer in lora_sublayers(self) if path in paths}
        for sublayer in self._flatten_layers(include_self=False):
            if id(sublayer) not in adapted and not sublayer._flatten_layers(include_self=False):
                sublayer.trainable = False

    def enable_lora(self, rank, lora_alpha=None, a_initializer="he_uniform",
                    b_initializer="zeros", target_layer_names=None):
        """Enables LoRA on the sublayers named in `target_layer_names` (names such as
        "query", "key", "value", "attention_output", "feedforward_intermediate_dense"; the
        query and value projections by default, keras-hub's choice) and freezes every other
        sublayer; the adapted sublayers keep their biases trainable, as keras-hub's do.

        Args:
            rank, lora_alpha, a_initializer, b_initializer: as `Dense.enable_lora`.
            target_layer_names: names of the sublayers to adapt; None for query and value.
        """
        if not self.built:
            raise ValueError(
                f"{validation.describe(self)}: cannot enable LoRA on a layer that is not built "
                "yet; build it (or call it once) first."
            )
        names = self._lora_default_targets if target_layer_names is None else target_layer_names
        if isinstance(names, str):
            names = [names]
        available = list(lora_sublayers(self))
        chosen = [(path, sublayer) for path, sublayer in available if sublayer.name in names]
        if not chosen:
            raise ValueError(
                f"{validation.describe(self)}: no sublayer is named as `target_layer_names` "
                f"asks, received target_layer_names={list(names)!r}; the LoRA-capable "
                f"sublayers are {sorted({sublayer.name for _, sublayer in available})}."
            )
        for _, sublayer in chosen:
            sublayer._check_lora(rank, lora_alpha)
        for initializer in (a_initializer, b_initializer):
            initializers.get(initializer)  # a bad one raises before anything changes
        for _, sublayer in chosen:
            sublayer.enable_lora(rank, lora_alpha, a_initializer, b_initializer)
        self._freeze_all_but(set(self.lora_layers))

    def _lora_layers_config(self) -> dict:
        lora_layers = self.lora_layers
        return {"lora_layers": lora_layers} if lora_layers else {}
