"""Benchmark records and the files that hold them: results.jsonl, results.json, results.csv.

results.jsonl grows by one line per record as the run goes, so an interrupted run keeps
what it measured; results.json and results.csv are written once at the end, each to a
temporary file in the same folder first and then renamed over the target, so no reader ever
sees half a file.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from klayers.bench.flops import step_flops
from klayers.bench.protocol import FIGURES
from klayers.bench.statistics import is_noisy, ratio_with_spread, relative_speeds
from klayers.bench.suites import Measurement, shape_text
from klayers.bench.traffic import step_bytes
from klayers.process import write_atomic

OURS = ("keraslayers", "custom", "model")
CSV_COLUMNS = (
    "layer", "case", "implementation", "backend", "device", "device_model", "dtype", "mode",
    "batch_size", "input_shape", "quantize", "status", "throughput", "latency_ms_median",
    "latency_ms_p25", "latency_ms_p75", "rounds", "first_call_s", "flops", "gflops",
    "peak_fraction", "bytes", "gbytes_per_s", "roofline_fraction", "peak_memory_mb",
    "weight_bytes", "jit_compile", "noisy", "paired_speedup", "error", "config",
)


def make_record(
    measurement: Measurement, measured: dict[str, Any], device_model: str | None = None
) -> dict[str, Any]:
    """The full record of a measurement: what was measured, the worker's figures, FLOPs and
    bytes moved (the same for every implementation of a case)."""
    case = measurement.case
    record = {
        "layer": case.layer,
        "case": case.label,
        "implementation": measurement.implementation,
        "backend": measured["backend"],
        "device": measurement.device,
        "device_model": device_model,
        "dtype": measurement.dtype,
        "mode": measurement.mode,
        "batch_size": measurement.batch_size,
        "input_shape": _json_shape(case.input_shape),
        "quantize": case.quantize,
        "config": case.config,
        **{key: measured.get(key) for key in FIGURES},
        "flops": None,
        "gflops": None,
        "peak_fraction": None,  # against the machine's peak, known once every backend ran
        "bytes": None,
        "gbytes_per_s": None,
        "roofline_fraction": None,  # against the machine's roofline, known then too
        "noisy": None,
    }
    if case.kind == "catalog":
        record["flops"] = step_flops(case.layer, case.config, case.input_shape,
                                     measurement.batch_size, measurement.mode)
        record["bytes"] = step_bytes(
            case.layer, case.config, case.input_shape, measurement.batch_size,
            measurement.mode, measurement.dtype, case.input_dtype,
            # A quantized model reads its quantized weights, as measured.
            weight_bytes=measured.get("weight_bytes") if case.quantize else None,
        )
    latency = record["latency_ms"]
    if record["status"] == "ok" and latency:
        record["noisy"] = is_noisy(latency)
        seconds = latency["median"] / 1e3
        if record["flops"]:
            record["gflops"] = record["flops"] / seconds / 1e9
        if record["bytes"]:
            record["gbytes_per_s"] = record["bytes"] / seconds / 1e9
    return record


def machine_peaks(peaks: dict[str, dict[str, float]]) -> dict[str, float]:
    """The machine's peak per device (GFLOP/s, or GB/s): the best backend's, from
    {backend: {device: x}}."""
    best: dict[str, float] = {}
    for per_device in peaks.values():
        for device, gflops in per_device.items():
            best[device] = max(best.get(device, 0.0), gflops)
    return best


def with_peak_fractions(
    records: Iterable[dict[str, Any]], peaks: dict[str, float],
    bandwidths: dict[str, float] | None = None,
) -> list[dict[str, Any]]:
    """The records with `peak_fraction` = achieved GFLOP/s over the device's machine peak, and
    `roofline_fraction` = achieved throughput over the roofline's bound (`roofline_fraction`).

    `peaks` and `bandwidths` map a device to its machine peak GFLOP/s and GB/s; without a
    bandwidth (a run from before the probe) the roofline fraction stays None.
    """
    out = []
    for record in records:
        peak = peaks.get(record["device"])
        fraction = record["gflops"] / peak if record.get("gflops") and peak else None
        bandwidth = (bandwidths or {}).get(record["device"])
        out.append({**record, "peak_fraction": fraction,
                    "roofline_fraction": roofline_fraction(record, peak, bandwidth)})
    return out


def roofline_fraction(record: dict[str, Any], peak_gflops: float | None,
                      bandwidth: float | None) -> float | None:
    """Achieved throughput over the roofline's bound min(peak, intensity x bandwidth).

    In time: the least time the step's FLOPs and bytes allow (the larger of FLOPs/peak and
    bytes/bandwidth) over its median time; for a step without FLOPs, achieved GB/s over the
    bandwidth. None without a byte count, a measured time or a bandwidth.
    """
    gbytes_per_s = record.get("gbytes_per_s")
    if not gbytes_per_s or not bandwidth:
        return None
    # Both bounds as a share of the step's time: the larger one is the roofline's.
    fraction = gbytes_per_s / bandwidth
    if record.get("gflops") and peak_gflops:
        fraction = max(fraction, record["gflops"] / peak_gflops)
    return fraction


class RecordLog:
    """results.jsonl: the run's environment first, then one JSON line per record (and, as each
    worker gets ready, its backend's peaks and versions), written through to disk as each
    arrives, so that `klayers report` can render a run that never wrote its results.json."""

    def __init__(self, path: Path, environment: dict[str, Any] | None = None) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("w", encoding="utf-8")  # one run's log, not the last one's too
        self._write({LOG_KIND: "environment", "environment": environment or {}})

    def ready(self, backend: str, peak_gflops: dict[str, float],
              versions: dict[str, Any], peak_gbytes_per_s: dict[str, float] | None = None) -> None:
        self._write({LOG_KIND: "ready", "backend": backend, "peak_gflops": peak_gflops,
                     "peak_gbytes_per_s": peak_gbytes_per_s or {}, "versions": versions})

    def append(self, record: dict[str, Any]) -> None:
        self._write(record)

    def _write(self, line: dict[str, Any]) -> None:
        self._file.write(json.dumps(line) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


LOG_KIND = "klayers_log"  # the key of results.jsonl's lines that are not records


def read_log(path: Path) -> list[dict[str, Any]]:
    """The records of a results.jsonl; a last line cut short by a kill is left out."""
    return read_log_document(path)["results"]


def read_log_document(path: Path) -> dict[str, Any]:
    """A results.jsonl as results.json's {"environment", "results"}: the environment it starts
    with, the peaks of the workers that got ready, and the records (with peak fractions)."""
    environment: dict[str, Any] = {}
    peaks: dict[str, dict[str, float]] = {}
    bandwidths: dict[str, dict[str, float]] = {}
    versions: dict[str, dict[str, Any]] = {}
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(entry, dict):
            continue
        if entry.get(LOG_KIND) == "environment":
            environment = dict(entry.get("environment") or {})
        elif entry.get(LOG_KIND) == "ready":
            peaks[entry["backend"]] = entry.get("peak_gflops") or {}
            bandwidths[entry["backend"]] = entry.get("peak_gbytes_per_s") or {}
            versions[entry["backend"]] = entry.get("versions") or {}
        elif LOG_KIND not in entry:
            records.append(entry)
    peak, bandwidth = machine_peaks(peaks), machine_peaks(bandwidths)
    environment.setdefault("peak_gflops", peaks)
    environment.setdefault("machine_peak_gflops", peak)
    environment.setdefault("peak_gbytes_per_s", bandwidths)
    environment.setdefault("machine_peak_gbytes_per_s", bandwidth)
    environment.setdefault("worker_versions", versions)
    return {"environment": environment,
            "results": with_peak_fractions(records, peak, bandwidth)}


def write_results(output: Path, environment: dict[str, Any], records: list[dict]) -> None:
    """results.json ({"environment", "results"}) and results.csv, each written atomically."""
    document = {"environment": environment, "results": records}
    write_atomic(output / "results.json", json.dumps(document, indent=2) + "\n")
    write_atomic(output / "results.csv", to_csv(records))


def load_results(path: Path) -> dict[str, Any]:
    """A results.json or results.jsonl (or a run's folder: its results.json, else its
    results.jsonl), checked enough to render or compare; ValueError says what is wrong."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json" if (path / "results.json").exists() \
            else path / "results.jsonl"
    if path.suffix == ".jsonl":
        try:
            return read_log_document(path)
        except (OSError, KeyError, TypeError) as error:
            raise ValueError(f"{path}: cannot read results: {error}") from None
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: cannot read results: {error}") from None
    if not isinstance(document, dict) or not isinstance(document.get("results"), list):
        raise ValueError(f"{path}: not a klayers results.json (no `results` list)")
    document.setdefault("environment", {})
    return document


def merge_runs(labels: list[str], documents: list[dict[str, Any]]) -> dict[str, Any]:
    """Several runs as one document: each record's backend names its run ("jax@laptop"), so
    that each machine's backends are columns of their own, and the environment lists every
    run's. Runs with the same label are numbered."""
    seen: dict[str, int] = {}
    unique = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        unique.append(label if labels.count(label) == 1 else f"{label}-{seen[label]}")
    records = [{**record, "backend": f"{record['backend']}@{label}", "run": label}
               for label, document in zip(unique, documents, strict=True)
               for record in document["results"]]
    runs = [{"label": label, "environment": document.get("environment") or {}}
            for label, document in zip(unique, documents, strict=True)]
    return {"environment": {"runs": runs}, "results": records}


def to_csv(records: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for record in records:
        latency = record.get("latency_ms") or {}
        row = {column: record.get(column) for column in CSV_COLUMNS}
        row.update(
            latency_ms_median=latency.get("median"), latency_ms_p25=latency.get("p25"),
            latency_ms_p75=latency.get("p75"), input_shape=shape_text(record["input_shape"]),
            config=json.dumps(record.get("config"), sort_keys=True),
            paired_speedup=(record.get("paired_speedup") or {}).get("median"),
        )
        writer.writerow(row)
    return buffer.getvalue()


def _json_shape(shape: tuple) -> list:
    return [list(s) if isinstance(s, tuple) else s for s in shape]


@dataclass
class Row:
    """One line of a comparison: a case at one device, dtype, mode and batch size.

    `ours` holds our implementation's record per backend; `baselines` the Keras and native
    records per (backend, implementation).
    """

    case: str
    device: str
    dtype: str
    mode: str
    batch_size: int
    ours: dict[str, dict] = field(default_factory=dict)
    baselines: dict[tuple[str, str], dict] = field(default_factory=dict)

    def relative(self) -> dict[str, float]:
        """Each backend's throughput over the fastest's, for our implementation."""
        return relative_speeds({backend: record["throughput"]
                                for backend, record in self.ours.items()
                                if record["status"] == "ok"})

    def baseline_ratio(self, backend: str, implementation: str) -> tuple[float, float] | None:
        """How many times faster ours ran than the baseline on `backend`, with its spread.

        The median of the paired ratios where both were timed interleaved (± half their IQR);
        otherwise the ratio of the two medians (runs from before pairing, or a restarted worker).
        """
        ours = self.ours.get(backend)
        baseline = self.baselines.get((backend, implementation))
        if not ours or not baseline or ours["status"] != "ok" or baseline["status"] != "ok":
            return None
        paired = baseline.get("paired_speedup")
        if paired:
            return paired["median"], paired["iqr"] / 2
        return ratio_with_spread(ours["latency_ms"], baseline["latency_ms"])


def rows_by_case(records: list[dict[str, Any]]) -> dict[str, list[Row]]:
    """The records grouped for tables: {case: [Row, ...]}, in the order they were measured."""
    rows: dict[tuple, Row] = {}
    for record in records:
        key = (record["case"], record["device"], record["dtype"], record["mode"],
               record["batch_size"])
        row = rows.setdefault(key, Row(*key))
        if record["implementation"] in OURS:
            row.ours[record["backend"]] = record
        elif record["status"] != "skipped":
            row.baselines[(record["backend"], record["implementation"])] = record
    grouped: dict[str, list[Row]] = {}
    for row in rows.values():
        grouped.setdefault(row.case, []).append(row)
    return grouped
