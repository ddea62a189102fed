"""A benchmark run: which backend measures what on which device, running it, writing it.

`plan` turns cases and the backends' probe reports into one plan per backend (skipping, with
a reason, a backend that is not installed or has none of the requested devices);
`run_benchmark` runs the plans one after another and writes the results, also when the run
is interrupted. Neither imports keras: the measuring happens in the workers.
"""

from __future__ import annotations

import datetime
import fnmatch
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from klayers.bench import report
from klayers.bench import run as orchestrator
from klayers.bench.results import (
    RecordLog,
    machine_peaks,
    make_record,
    with_peak_fractions,
    write_results,
)
from klayers.bench.run import Settings
from klayers.bench.suites import Case, Measurement, measurements
from klayers.process import load_average, thread_environment


@dataclass
class BackendPlan:
    backend: str
    measurements: list[Measurement]
    device_models: dict[str, str | None] = field(default_factory=dict)


@dataclass
class Outcome:
    records: list[dict[str, Any]]
    environment: dict[str, Any]
    interrupted: bool


def device_name(device: dict[str, Any]) -> str:
    """A probed device as every backend's `keras.device` takes it: "cpu:0", "gpu:1"."""
    index = device["name"].rpartition(":")[2]
    return f"{device['kind']}:{index if index.isdigit() else 0}"


def plan(
    cases: Sequence[Case],
    reports: Sequence[dict[str, Any]],
    devices: Sequence[str],
    baselines: Sequence[str],
) -> tuple[list[BackendPlan], list[str]]:
    """One plan per usable backend, and one line per backend or device left out, saying why.

    `devices` are globs over device names ("cpu*", "gpu:0") or kinds ("gpu"); empty means
    every device a backend sees.
    """
    plans, skipped = [], []
    for report_ in reports:
        backend = report_["backend"]
        if report_["status"] != "ok":
            reason = report_["error"] or report_["status"]
            skipped.append(f"skipping {backend}: {reason}")
            continue
        found = {device_name(device): device.get("model") for device in report_["devices"]}
        chosen = {name: model for name, model in found.items() if not devices or any(
            fnmatch.fnmatchcase(name, pattern) or name.partition(":")[0] == pattern
            for pattern in devices)}
        if not chosen:
            skipped.append(f"skipping {backend}: no device matches {', '.join(devices)} "
                           f"(it sees {', '.join(found) or 'none'})")
            continue
        planned = measurements(tuple(cases), backend, sorted(chosen), tuple(baselines))
        plans.append(BackendPlan(backend, planned, chosen))
    return plans, skipped


def environment_record(
    found: dict[str, Any], settings: Settings, suite: str, baselines: Sequence[str]
) -> dict[str, Any]:
    """The `environment` object of results.json, from `environment.environment_info()`."""
    machine = found["machine"]
    return {
        "klayers": found.get("klayers"),
        "python": machine["python"],
        "keras": found.get("keras"),
        "backends": {r["backend"]: r["version"] for r in found["backends"]},
        "platform": machine["platform"],
        "cpu": machine["cpu"],
        "cores": machine["logical_cores"],
        "usable_cores": machine["usable_cores"],
        "memory_bytes": machine["memory_bytes"],
        "threads": {**thread_environment(settings.threads),
                    "threads": settings.threads,
                    "cores": list(settings.cores) if settings.cores else None},
        "gpus": machine["gpus"],
        "git_commit": machine["git_commit"],
        "suite": suite,
        "baselines": list(baselines),
        "settings": {"min_time_s": settings.min_time, "min_rounds": settings.min_rounds,
                     "timeout_s": settings.timeout, "torch_compile": settings.torch_compile,
                     "interleaved": True},
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "load_average_start": load_average(),
    }


def default_output(root: Path = Path("benchmarks/results")) -> Path:
    stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H%M")
    return root / f"{stamp}-{os.uname().nodename}"


def run_benchmark(
    plans: Sequence[BackendPlan],
    settings: Settings,
    output: Path,
    environment: dict[str, Any],
    *,
    on_record: Callable[[dict[str, Any], Measurement | None], None] | None = None,
    command: Sequence[str] | None = None,
) -> Outcome:
    """Runs every plan, appending to results.jsonl, then writes results and reports.

    A Ctrl-C stops the run; what was measured so far is still written, and the outcome says
    it was interrupted. `on_record` gets each record and the measurement that comes next.
    """
    log = RecordLog(output / "results.jsonl", environment)
    records: list[dict[str, Any]] = []
    peaks: dict[str, dict[str, float]] = {}
    bandwidths: dict[str, dict[str, float]] = {}
    versions: dict[str, dict[str, Any]] = {}
    interrupted = False
    try:
        for backend_plan in plans:
            by_index = {m.index: m for m in backend_plan.measurements}

            def on_event(kind: str, event: dict[str, Any], plan_=backend_plan, index=by_index):
                if kind == "ready":
                    peaks[plan_.backend] = event["peak_gflops"]
                    bandwidths[plan_.backend] = event.get("peak_gbytes_per_s") or {}
                    versions[plan_.backend] = {"keras": event["keras_version"],
                                               "backend": event["backend_version"]}
                    log.ready(plan_.backend, peaks[plan_.backend], versions[plan_.backend],
                              bandwidths[plan_.backend])
                    return
                measurement = index[event["index"]]
                record = make_record(measurement, event,
                                     plan_.device_models.get(measurement.device))
                log.append(record)
                records.append(record)
                if on_record:
                    on_record(record, index.get(event["index"] + 1))

            orchestrator.run_backend(backend_plan.backend, backend_plan.measurements, settings,
                                     on_event, command=command)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        log.close()
    peak, bandwidth = machine_peaks(peaks), machine_peaks(bandwidths)
    environment = {
        **environment,
        "peak_gflops": peaks,
        "machine_peak_gflops": peak,
        "peak_gbytes_per_s": bandwidths,
        "machine_peak_gbytes_per_s": bandwidth,
        "worker_versions": versions,
        "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "load_average_end": load_average(),
        "interrupted": interrupted,
    }
    final = with_peak_fractions(records, peak, bandwidth)
    write_results(output, environment, final)
    report.write_reports(output, environment, final)
    return Outcome(final, environment, interrupted)
