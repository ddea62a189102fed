"""Runs the benchmark workers: one subprocess per backend, one backend after another.

The parent sends a worker its measurements as one JSON job on stdin and reads one JSON line
per event back, waiting at most `timeout` seconds for each. A worker that crashes, hangs or
is killed for memory costs only the measurement it was on: that one is recorded as failed,
with the last lines of the worker's stderr, and a fresh worker takes the rest. A worker that
fails before it is ready (a broken install) fails all its measurements with that error.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from klayers.bench.suites import Measurement
from klayers.environment import THREAD_VARIABLES

STDERR_LINES = 5  # of a failed worker's stderr, kept in its records' error

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

    def to_job(self) -> dict[str, Any]:
        return {"min_time": self.min_time, "min_rounds": self.min_rounds,
                "threads": self.threads, "cores": list(self.cores) if self.cores else None,
                "torch_compile": self.torch_compile}


def worker_command() -> list[str]:
    return [sys.executable, "-m", "klayers.bench.worker"]


def thread_environment(threads: int) -> dict[str, str]:
    """The thread settings every backend's worker gets, the same for all.

    XLA (JAX) has no thread-count variable: the worker's CPU affinity (Settings.cores) is what
    holds every backend to the same cores.
    """
    return {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
            "TF_NUM_INTRAOP_THREADS": str(threads), "TF_NUM_INTEROP_THREADS": "1"}


def worker_environment(backend: str, settings: Settings) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name not in THREAD_VARIABLES}
    env.update(thread_environment(settings.threads))
    env.update(KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    return env


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
    return {"index": measurement.index, "implementation": measurement.implementation,
            "backend": backend, "device": measurement.device, "dtype": measurement.dtype,
            "mode": measurement.mode, "batch_size": measurement.batch_size, "status": status,
            "error": error, "first_call_s": None, "latency_ms": None, "rounds": 0,
            "throughput": None, "peak_memory_mb": None, "jit_compile": None,
            "paired_speedup": None}


def _run_worker(
    backend: str,
    remaining: list[Measurement],
    settings: Settings,
    on_event: OnEvent,
    command: list[str],
) -> list[Measurement]:
    """Runs one worker over `remaining`; returns what is left when it fails midway."""
    job = {"settings": settings.to_job(), "measurements": [m.to_job() for m in remaining]}
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as stderr:
        try:
            worker = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                env=worker_environment(backend, settings), text=True,
                # Its own session: a Ctrl-C reaches the parent only, which then stops it.
                start_new_session=True,
            )
        except OSError as error:
            _fail_all(remaining, backend, f"worker could not start: {error}", on_event)
            return []
        try:
            return _follow(worker, job, backend, remaining, settings, on_event, stderr)
        finally:
            stop(worker)


def _follow(worker, job, backend, remaining, settings, on_event, stderr) -> list[Measurement]:
    lines = line_queue(worker)
    try:
        worker.stdin.write(json.dumps(job))
        worker.stdin.close()
    except OSError:
        pass  # it died already; what it said on stderr is read below
    event = _next_event(lines, settings.timeout)
    if event is _TIMEOUT:
        stop(worker)
        message = f"worker not ready after {settings.timeout:g} s" + stderr_tail(stderr)
        _fail_all(remaining, backend, message, on_event)
        return []
    if event is None:
        message = worker_error(worker, stderr, "failed before it was ready")
        _fail_all(remaining, backend, message, on_event)
        return []
    on_event("ready", event)
    for position, measurement in enumerate(remaining):
        event = _next_event(lines, settings.timeout)
        if event is _TIMEOUT:
            stop(worker)
            on_event("record", failed_record(
                measurement, backend, "timeout", f"no result after {settings.timeout:g} s"))
            return remaining[position + 1:]
        if event is None:
            message = worker_error(worker, stderr, "crashed")
            on_event("record", failed_record(measurement, backend, "error", message))
            return remaining[position + 1:]
        on_event("record", {**event, "index": measurement.index})
    return []


_TIMEOUT: dict[str, Any] = {"event": "timeout"}


def line_queue(worker: subprocess.Popen) -> queue.Queue:
    """The worker's stdout as a queue of lines, ended by None, so reads can time out."""
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        for line in worker.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return lines


def _next_event(lines: queue.Queue, timeout: float) -> dict[str, Any] | None:
    """The next protocol event; None at the end of the output; _TIMEOUT after `timeout` s."""
    while True:
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            return _TIMEOUT
        if line is None:
            return None
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue  # not ours: the worker keeps stdout for the protocol, but be lenient
        if isinstance(event, dict) and event.get("event") in ("ready", "record"):
            return event


def worker_error(worker: subprocess.Popen, stderr, problem: str) -> str:
    try:
        code = worker.wait(timeout=10)
    except subprocess.TimeoutExpired:
        stop(worker)
        code = worker.wait()
    if code < 0:
        name = signal.Signals(-code).name
        # The parent only kills a worker after a timeout; a SIGKILL here is the OOM killer's.
        cause = " (killed: out of memory?)" if -code == signal.SIGKILL else ""
        return f"worker {problem}: {name}{cause}" + stderr_tail(stderr)
    return f"worker {problem} (exit code {code})" + stderr_tail(stderr)


def stderr_tail(stderr) -> str:
    stderr.seek(0)
    tail = [line.rstrip() for line in stderr.read().splitlines() if line.strip()][-STDERR_LINES:]
    return ": " + " | ".join(tail) if tail else ""


def _fail_all(remaining: list[Measurement], backend: str, error: str, on_event: OnEvent) -> None:
    for measurement in remaining:
        on_event("record", failed_record(measurement, backend, "error", error))


def stop(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        try:
            os.killpg(worker.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        worker.wait()
