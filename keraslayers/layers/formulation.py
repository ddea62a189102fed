"""Which formulation of a layer's computation runs, by backend and device kind.

Some layers compute the same numbers in more than one way: Keras's own op, and formulations
that ran faster where they were measured (all on CPU so far; see benchmarks/README.md). Each
layer family keeps one table from `(backend, device kind)` to a formulation, every entry with
its measurement; `choose` reads it. A pair nobody measured (a GPU or TPU, so far) gets
`KERAS`, Keras's own op, until a measurement says otherwise: a formulation that is faster on
one device's compiler can be slower on another's.

Tests force a formulation with `forcing(family, formulation)`, or a device kind with
`forcing_device_kind(kind)`, to reach every formulation on every backend and machine.
"""

from __future__ import annotations

import contextlib
import functools

import keras

KERAS = "keras"
DEVICE_KINDS = ("cpu", "gpu", "tpu")

_forced_formulations: dict[str, str] = {}
_forced_device_kind: list[str] = []


@functools.cache
def _listed_device_kind(backend: str) -> str:
    """The kind of the first device `keras.distribution` lists (TensorFlow, JAX): what
    both place computations on by default. Cached: listing devices asks the runtime."""
    device = keras.distribution.list_devices()[0].lower()
    return "tpu" if device.startswith("tpu") else "gpu" if device.startswith("gpu") else "cpu"


def device_kind() -> str:
    """"cpu", "gpu" or "tpu": where this backend runs the layers' ops by default.

    `keras.distribution.list_devices` answers on TensorFlow and JAX but not on torch (no
    distribution backend there), whose Keras backend instead keeps the device it places new
    tensors on, `keras.device(...)` scopes included.
    """
    if _forced_device_kind:
        return _forced_device_kind[-1]
    backend = keras.backend.backend()
    if backend == "torch":
        from keras.src.backend.torch.core import get_device

        device = str(get_device()).lower()
        return "gpu" if device.startswith(("cuda", "mps")) else (
            "tpu" if device.startswith("xla") else "cpu")
    return _listed_device_kind(backend)


def choose(family: str, table: dict[tuple[str, str], str]) -> str:
    """The formulation `table` names for this backend and device kind, else `KERAS`; a
    formulation forced for `family` (tests) wins."""
    if family in _forced_formulations:
        return _forced_formulations[family]
    return table.get((keras.backend.backend(), device_kind()), KERAS)


@contextlib.contextmanager
def forcing(family: str, formulation: str):
    """Within the block, `choose(family, ...)` returns `formulation` (for tests)."""
    previous = _forced_formulations.get(family)
    _forced_formulations[family] = formulation
    try:
        yield
    finally:
        if previous is None:
            del _forced_formulations[family]
        else:
            _forced_formulations[family] = previous


@contextlib.contextmanager
def forcing_device_kind(kind: str):
    """Within the block, `device_kind()` returns `kind` (for tests of the tables)."""
    if kind not in DEVICE_KINDS:
        raise ValueError(f"device kind must be one of {DEVICE_KINDS}, received {kind!r}.")
    _forced_device_kind.append(kind)
    try:
        yield
    finally:
        _forced_device_kind.pop()
