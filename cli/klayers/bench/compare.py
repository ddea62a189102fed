"""`klayers compare`: two runs' matching records side by side, and which ones slowed down.

Records match on what was measured (case, implementation, backend, device, dtype, mode, batch
size); the change is that of the median step latency, so +0.25 means 25% slower. A case that
ran in the base run but failed in the new one counts as a regression too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

KEY = ("case", "implementation", "backend", "device", "dtype", "mode", "batch_size")
DEFAULT_THRESHOLD = 0.10


@dataclass(frozen=True)
class Change:
    key: tuple
    base: dict[str, Any] | None
    new: dict[str, Any] | None
    change: float | None  # new median latency over the base's, minus 1
    verdict: str  # "slower", "faster", "same", "failed", "fixed", "only in base", "only in new"

    @property
    def regression(self) -> bool:
        return self.verdict in ("slower", "failed")


def record_key(record: dict[str, Any]) -> tuple:
    return tuple(record.get(name) for name in KEY)


def compare(
    base: list[dict[str, Any]], new: list[dict[str, Any]], threshold: float = DEFAULT_THRESHOLD
) -> list[Change]:
    """Every record of either run, matched with its counterpart, in the new run's order."""
    base_by_key = {record_key(r): r for r in base if r.get("status") != "skipped"}
    new_by_key = {record_key(r): r for r in new if r.get("status") != "skipped"}
    keys = list(new_by_key) + [key for key in base_by_key if key not in new_by_key]
    return [_change(key, base_by_key.get(key), new_by_key.get(key), threshold) for key in keys]


def _change(key: tuple, base: dict | None, new: dict | None, threshold: float) -> Change:
    if base is None:
        return Change(key, None, new, None, "only in new")
    if new is None:
        return Change(key, base, None, None, "only in base")
    base_ok, new_ok = base.get("status") == "ok", new.get("status") == "ok"
    if not new_ok:
        return Change(key, base, new, None, "failed" if base_ok else "same")
    if not base_ok:
        return Change(key, base, new, None, "fixed")
    change = new["latency_ms"]["median"] / base["latency_ms"]["median"] - 1
    if change > threshold:
        verdict = "slower"
    elif change < -threshold:
        verdict = "faster"
    else:
        verdict = "same"
    return Change(key, base, new, change, verdict)
