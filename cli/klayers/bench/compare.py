"""`klayers compare`: two runs' matching records side by side, and which ones slowed down.

Records match on what was measured (case, implementation, backend, device, dtype, mode, batch
size), or on the fields `--match` names (the case always): comparing a CPU run with a GPU run,
`--match implementation,backend,dtype,mode,batch_size` lines up each record with its
counterpart on the other device. The change is that of the median step latency, so +0.25
means 25% slower. A case that ran in the base run but failed in the new one counts as a
regression too.
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


def record_key(record: dict[str, Any], fields: tuple[str, ...] = KEY) -> tuple:
    return tuple(record.get(name) for name in fields)


def match_fields(text: str) -> tuple[str, ...]:
    """`--match`'s comma-separated fields (of KEY), the case first; ValueError names a wrong one."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    for name in names:
        if name not in KEY:
            raise ValueError(f"--match: unknown field {name!r}; expected some of "
                             f"{', '.join(KEY)}")
    return ("case", *dict.fromkeys(name for name in names if name != "case"))


def compare(
    base: list[dict[str, Any]], new: list[dict[str, Any]], threshold: float = DEFAULT_THRESHOLD,
    fields: tuple[str, ...] = KEY,
) -> list[Change]:
    """Every record of either run, matched on `fields` with its counterpart, in the new run's
    order. A ValueError says when `fields` leave two records of one run the same key."""
    base_by_key = _by_key(base, fields, "the base run")
    new_by_key = _by_key(new, fields, "the new run")
    keys = list(new_by_key) + [key for key in base_by_key if key not in new_by_key]
    return [_change(key, base_by_key.get(key), new_by_key.get(key), threshold) for key in keys]


def _by_key(records: list[dict[str, Any]], fields: tuple[str, ...],
            run: str) -> dict[tuple, dict[str, Any]]:
    by_key: dict[tuple, dict[str, Any]] = {}
    for record in records:
        if record.get("status") == "skipped":
            continue
        key = record_key(record, fields)
        if key in by_key:
            differing = [name for name in KEY if by_key[key].get(name) != record.get(name)]
            raise ValueError(
                f"--match {','.join(fields)}: two records of {run} match as one "
                f"({key[0]!r}; they differ in {', '.join(differing)}): add "
                f"{' or '.join(differing)} to --match")
        by_key[key] = record
    return by_key


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
