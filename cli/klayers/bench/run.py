"""Runs the benchmark workers: one subprocess per backend, one backend after another.

The parent sends a worker its measurements as one JSON job on stdin and reads one JSON line
per event back, waiting at most `timeout` seconds for each. A worker that crashes, hangs or
is killed for memory costs only the measurement it was on: that one is recorded as failed,
with the last lines of the worker's stderr, and a fresh worker takes the rest. A worker that
fails before it is ready (a broken install) fails all its measurements with that error.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from klayers import process
from klayers.bench import protocol
from klayers.bench.suites import Measurement

OnEvent = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class Settings:
    """What every worker of a run shares, recorded with the results."""

    min_time: float = 1.0
    min_rounds: int = 10
    threads: int = 1
    cores: tuple[int, ...] | None = None
    torch_compile: bool = False
    timeout: float = 300.0

    def to_job(self) -> protocol.WorkerSettings:
        return protocol.WorkerSettings(
            min_time=self.min_time, min_rounds=self.min_rounds, threads=self.threads,
            cores=list(self.cores) if self.cores else None, torch_compile=self.torch_compile)


def worker_command() -> list[str]:
    return [sys.executable, "-m", "klayers.bench.worker"]


def worker_environment(backend: str, settings: Settings) -> dict[str, str]:
    return process.worker_environment(backend, settings.threads)


def run_backend(
    backend: str,
    planned: Sequence[Measurement],
    settings: Settings,
    on_event: OnEvent,
    *,
    command: Sequence[str] | None = None,
) -> None:
    """Measures `planned` on `backend`, calling `on_event` for every "ready" and "record".

    Every measurement gets exactly one "record" event, measured or failed, in order.
    """
    remaining = list(planned)
    while remaining:
        remaining = _run_worker(backend, remaining, settings, on_event,
                                list(command) if command else worker_command())


def failed_record(measurement: Measurement, backend: str, status: str, error: str) -> dict:
    """The record of a measurement that produced none: status "error" or "timeout"."""
    return protocol.Record(
        index=measurement.index, implementation=measurement.implementation, backend=backend,
        device=measurement.device, dtype=measurement.dtype, mode=measurement.mode,
        batch_size=measurement.batch_size, status=status, error=error).to_dict()


def _run_worker(
    backend: str,
    remaining: list[Measurement],
    settings: Settings,
    on_event: OnEvent,
    command: list[str],
) -> list[Measurement]:
    """Runs one worker over `remaining`; returns what is left when it fails midway."""
    job = protocol.Job(settings.to_job(), [m.to_job() for m in remaining])
    with process.stderr_file() as stderr:
        try:
            worker = process.spawn(command, worker_environment(backend, settings), stderr)
        except OSError as error:
            _fail_all(remaining, backend, f"worker could not start: {error}", on_event)
            return []
        try:
            return _follow(worker, job, backend, remaining, settings, on_event)
        finally:
            worker.stop()


_EVENTS = protocol.EVENTS


def _follow(worker: process.Worker, job, backend, remaining, settings,
            on_event) -> list[Measurement]:
    worker.send(job)
    event = worker.read_event(settings.timeout, _EVENTS)
    if event is process.TIMEOUT:
        worker.stop()
        message = f"worker not ready after {settings.timeout:g} s" + worker.stderr_tail()
        _fail_all(remaining, backend, message, on_event)
        return []
    if event is None:
        _fail_all(remaining, backend, worker.error("failed before it was ready"), on_event)
        return []
    on_event("ready", event)
    for position, measurement in enumerate(remaining):
        event = worker.read_event(settings.timeout, _EVENTS)
        if event is process.TIMEOUT:
            worker.stop()
            on_event("record", failed_record(
                measurement, backend, "timeout", f"no result after {settings.timeout:g} s"))
            return remaining[position + 1:]
        if event is None:
            on_event("record", failed_record(measurement, backend, "error",
                                             worker.error("crashed")))
            return remaining[position + 1:]
        on_event("record", {**event, "index": measurement.index})
    return []


def _fail_all(remaining: list[Measurement], backend: str, error: str, on_event: OnEvent) -> None:
    for measurement in remaining:
        on_event("record", failed_record(measurement, backend, "error", error))
