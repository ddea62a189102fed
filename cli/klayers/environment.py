"""What the machine and the installed backends look like, for `klayers info` and benchmark records.

The parent process never imports keras or a backend: each backend is probed in a subprocess of
its own (`python -m klayers.environment --probe NAME`), so one backend's import cannot slow down,
break or change the threading of another, and a broken install shows up as an error record
instead of a crash.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

BACKENDS: tuple[str, ...] = ("tensorflow", "jax", "torch")

# The variables that decide how many threads the backends use; benchmarks must record them.
THREAD_VARIABLES: tuple[str, ...] = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
    "XLA_FLAGS",
)

DEFAULT_PROBE_TIMEOUT = 120.0  # seconds; importing TensorFlow alone takes several


def package_version(distribution: str) -> str | None:
    """The installed version of `distribution`, or None when it is not installed."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    """CPU, cores, memory, thread settings, platform, Python and git commit of this machine."""
    return {
        "cpu": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(usable_cores() or []) or os.cpu_count(),
        "memory_bytes": _total_memory(),
        "threads": {name: os.environ.get(name) for name in THREAD_VARIABLES},
        "platform": platform.platform(),
        "python": platform.python_version(),
        "git_commit": _git_commit(),
    }


def named_backends(value: str) -> tuple[str, ...]:
    """The backends that `value` names ("jax,torch", or "all"), in order and once each; a
    ValueError names one that is not a backend."""
    if value.strip().lower() == "all":
        return BACKENDS
    names = tuple(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
    if not names:
        raise ValueError(f"--backend {value!r}: expected a comma-separated list of "
                         f"{', '.join(BACKENDS)}, or all")
    for name in names:
        if name not in BACKENDS:
            raise ValueError(f"unknown backend {name!r}; expected {', '.join(BACKENDS)} or all")
    return names


def backend_installed(name: str) -> bool:
    """Whether the backend framework `name` can be imported, found without importing it."""
    return importlib.util.find_spec(name) is not None


def probe_command(name: str) -> list[str]:
    """The command line that probes backend `name` in a fresh interpreter."""
    return [sys.executable, "-m", "klayers.environment", "--probe", name]


def probe_backend(
    name: str,
    *,
    timeout: float = DEFAULT_PROBE_TIMEOUT,
    command: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Runs the probe of backend `name` in a subprocess and returns what it found.

    The record has `backend`, `status` ("ok" or "error"), `version`, `devices` (each with
    `name`, `kind` "cpu"/"gpu"/"tpu" and, where known, `model`), `gpu_names` and `error`
    (the last line of the probe's stderr, or what else went wrong). A probe that crashes,
    prints something other than JSON or outlives `timeout` seconds gives an error record;
    this function does not raise for it. `command` replaces `probe_command(name)`.
    """
    command = list(command) if command is not None else probe_command(name)
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        return _error_record(name, f"probe timed out after {timeout:g} s")
    except OSError as error:
        return _error_record(name, f"probe could not start: {error}")
    if completed.returncode != 0:
        message = _last_line(completed.stderr) or f"probe exited with code {completed.returncode}"
        return _error_record(name, message)
    # Frameworks may print banners on import; the probe's JSON is always its last line.
    output = _last_line(completed.stdout)
    try:
        found = json.loads(output)
    except json.JSONDecodeError:
        found = None
    if not isinstance(found, dict) or not isinstance(found.get("devices"), list):
        return _error_record(name, f"probe printed no JSON record: {output[:200]!r}")
    return {
        "backend": name,
        "status": "ok",
        "version": found.get("version"),
        "devices": found["devices"],
        "gpu_names": found.get("gpu_names", []),
        "error": None,
    }


def backend_report(name: str, *, timeout: float = DEFAULT_PROBE_TIMEOUT) -> dict[str, Any]:
    """`probe_backend`'s record plus `installed`; a backend that is not installed is not probed.

    Its status is then "not installed", with no version and no devices.
    """
    if not backend_installed(name):
        return {
            "backend": name,
            "installed": False,
            "status": "not installed",
            "version": None,
            "devices": [],
            "gpu_names": [],
            "error": None,
        }
    report = {"backend": name, "installed": True, **probe_backend(name, timeout=timeout)}
    # A failed probe still leaves the installed version worth showing.
    report["version"] = report["version"] or package_version(name)
    return report


def environment_info(
    backends: Sequence[str] = BACKENDS, *, timeout: float = DEFAULT_PROBE_TIMEOUT
) -> dict[str, Any]:
    """Everything `klayers info` shows: versions, the machine (with its GPUs) and each backend."""
    reports = [backend_report(name, timeout=timeout) for name in backends]
    machine = machine_info()
    # The backends see the same GPUs, or none for a CPU-only build: keep the longest list, not
    # the union, so that eight identical GPUs still count as eight.
    machine["gpus"] = max((report["gpu_names"] for report in reports), key=len, default=[])
    return {
        "klayers": package_version("klayers"),
        "keras": package_version("keras"),
        "machine": machine,
        "backends": reports,
    }


def _error_record(name: str, message: str) -> dict[str, Any]:
    return {
        "backend": name,
        "status": "error",
        "version": None,
        "devices": [],
        "gpu_names": [],
        "error": message,
    }


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                # x86 says "model name"; some ARM kernels only say "Hardware" or "Processor".
                if key.strip() in ("model name", "Hardware", "Processor") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or None


def usable_cores() -> list[int] | None:
    """The cores this process may run on (containers and `taskset` restrict them, which
    os.cpu_count() ignores); None where the platform cannot say."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None


def _total_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _git_commit() -> str | None:
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if completed.returncode != 0:  # not a git checkout
        return None
    return completed.stdout.strip() or None


# What follows runs in the probe subprocess only: it imports one backend framework, never keras.


def _device_kind(platform_name: str) -> str:
    platform_name = platform_name.lower()
    return platform_name if platform_name in ("cpu", "tpu") else "gpu"


def _probe_tensorflow() -> tuple[str, list[dict[str, Any]]]:
    import tensorflow as tf

    devices = []
    for device in tf.config.list_physical_devices():
        record = {
            "name": device.name.removeprefix("/physical_device:"),
            "kind": _device_kind(device.device_type),
        }
        if record["kind"] == "gpu":
            record["model"] = tf.config.experimental.get_device_details(device).get("device_name")
        devices.append(record)
    return tf.__version__, devices


def _probe_jax() -> tuple[str, list[dict[str, Any]]]:
    import jax

    devices = []
    for device in jax.devices():
        record = {"name": f"{device.platform}:{device.id}", "kind": _device_kind(device.platform)}
        if record["kind"] != "cpu":
            record["model"] = device.device_kind
        devices.append(record)
    return jax.__version__, devices


def _probe_torch() -> tuple[str, list[dict[str, Any]]]:
    import torch

    devices: list[dict[str, Any]] = [{"name": "cpu", "kind": "cpu"}]
    if torch.cuda.is_available():
        devices += [
            {"name": f"cuda:{index}", "kind": "gpu", "model": torch.cuda.get_device_name(index)}
            for index in range(torch.cuda.device_count())
        ]
    if torch.backends.mps.is_available():
        devices.append({"name": "mps", "kind": "gpu", "model": "Apple MPS"})
    return str(torch.__version__), devices


_PROBES = {"tensorflow": _probe_tensorflow, "jax": _probe_jax, "torch": _probe_torch}


def _main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m klayers.environment")
    parser.add_argument("--probe", choices=sorted(_PROBES), required=True,
                        help="backend to import and list the devices of, as one JSON line")
    name = parser.parse_args(argv).probe
    version, devices = _PROBES[name]()
    gpu_names = [device.get("model") or device["name"] for device in devices
                 if device["kind"] == "gpu"]
    print(json.dumps({"backend": name, "version": version, "devices": devices,
                      "gpu_names": gpu_names}))


if __name__ == "__main__":
    _main()
