"""The process layer that `klayers bench` and `klayers train` share.

Both run one worker subprocess per backend: spawn it in a session of its own with the same
thread settings for every backend, send it one JSON job on stdin, read its stdout as JSON-line
events with a timeout, stop it, and explain its failure with the tail of its stderr. Also the
machine facts both plans need (threads and cores, load average) and whole-or-nothing file writes;
and, for the workers' entry modules, what must happen before they import a backend.
Nothing here imports keras or a backend.
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
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import IO, Any, TextIO

from klayers.environment import THREAD_VARIABLES, usable_cores

STDERR_LINES = 5  # of a failed worker's stderr, kept in its error message

TIMEOUT: dict[str, Any] = {"event": "timeout"}  # what read_event returns when a worker is silent


def threads_and_cores(threads: int | None) -> tuple[int, tuple[int, ...] | None]:
    """`--threads` (None: every usable core) and the cores a worker is pinned to (None: not
    pinned, when the platform cannot pin or more threads than usable cores are asked for)."""
    usable = usable_cores()
    threads = threads or (len(usable) if usable else os.cpu_count() or 1)
    cores = tuple(usable[:threads]) if usable and threads <= len(usable) else None
    return threads, cores


def load_average() -> float | None:
    """The 1-minute load average: other work on the machine skews every figure of a run."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def thread_environment(threads: int) -> dict[str, str]:
    """The thread settings every backend's worker gets, the same for all.

    XLA (JAX) has no thread-count variable: the worker's CPU affinity (its cores) is what
    holds every backend to the same cores.
    """
    return {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
            "TF_NUM_INTRAOP_THREADS": str(threads), "TF_NUM_INTEROP_THREADS": "1"}


def worker_environment(backend: str, threads: int) -> dict[str, str]:
    """The parent's environment less its thread settings, plus the worker's."""
    env = {name: value for name, value in os.environ.items() if name not in THREAD_VARIABLES}
    env.update(thread_environment(threads))
    env.update(KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    return env


class Worker:
    """A running worker: its process, its stdout as a queue of lines, its stderr file."""

    def __init__(self, process: subprocess.Popen, stderr: IO[str]) -> None:
        self.process = process
        self.stderr = stderr
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def send(self, job: dict[str, Any] | Any) -> None:
        """The job, as one JSON document on stdin (a dict, or a record with to_json), which
        is then closed."""
        text = job.to_json() if hasattr(job, "to_json") else json.dumps(job)
        try:
            self.process.stdin.write(text)
            self.process.stdin.close()
        except OSError:
            pass  # it died already; what it said on stderr is read by error()

    def read_event(self, timeout: float, kinds: Collection[str]) -> dict[str, Any] | None:
        """The next JSON-line event whose "event" is one of `kinds`; None at the end of the
        output; TIMEOUT after `timeout` seconds without one."""
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                return TIMEOUT
            if line is None:
                return None
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue  # not ours: the worker keeps stdout for the protocol, but be lenient
            if isinstance(event, dict) and event.get("event") in kinds:
                return event

    def stderr_tail(self) -> str:
        """": line | line" of the last STDERR_LINES non-blank lines of stderr, or ""."""
        self.stderr.seek(0)
        lines = [line.rstrip() for line in self.stderr.read().splitlines() if line.strip()]
        tail = lines[-STDERR_LINES:]
        return ": " + " | ".join(tail) if tail else ""

    def error(self, problem: str) -> str:
        """Why the worker ended: its exit code or signal, and the tail of its stderr."""
        try:
            code = self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.stop()
            code = self.process.wait()
        if code < 0:
            name = signal.Signals(-code).name
            # The parent only kills a worker after a timeout; a SIGKILL here is the OOM killer's.
            cause = " (killed: out of memory?)" if -code == signal.SIGKILL else ""
            return f"worker {problem}: {name}{cause}" + self.stderr_tail()
        return f"worker {problem} (exit code {code})" + self.stderr_tail()

    def stop(self) -> None:
        """Kills the worker's whole session (it may have started processes of its own)."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.process.wait()


def protocol_stream() -> TextIO:
    """In a worker: stdout for the JSON-line protocol alone. The frameworks print banners and
    warnings on stdout; from here on what they print goes to stderr."""
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    return protocol


def pin_to_cores(cores: Sequence[int] | None) -> None:
    """In a worker, before it imports a backend: run on `cores` only, so that the backends
    size their thread pools to them (XLA has no thread-count variable)."""
    if cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cores)


def spawn(command: Sequence[str], env: dict[str, str], stderr: IO[str]) -> Worker:
    """Starts `command` with pipes for stdin and stdout; raises OSError if it cannot start."""
    process = subprocess.Popen(
        list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=env,
        text=True,
        # Its own session: a Ctrl-C reaches the parent only, which then stops it.
        start_new_session=True,
    )
    return Worker(process, stderr)


def stderr_file() -> IO[str]:
    """A temporary file for a worker's stderr (a pipe could fill up and block it)."""
    return tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace")


def write_atomic(path: Path, data: str | bytes) -> None:
    """Writes `path` whole or not at all: a temporary file beside it, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp's 0600 would hide results from others
        with os.fdopen(handle, "wb") as file:
            file.write(data.encode("utf-8") if isinstance(data, str) else data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
