"""`klayers train` and `klayers evaluate`: one worker subprocess per backend, one after another.

`plan_training` turns the command's options into a `TrainPlan` (or a `TrainError`, one line,
before anything starts or is written); `run_training` runs klayers.train.worker once per
backend with the same set-up, seed and data, passes its events on to a display, and writes
results.json (atomically, after every change) and learning_curves.png in the run's folder.
The workers write the models, histories and checkpoints under <output>/<backend>/.
`plan_evaluation` and `run_evaluation` do the same for a saved model's test-set figures.
Nothing here imports keras.
"""

from __future__ import annotations

import dataclasses
import datetime
import io
import json
import os
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from klayers import environment, process
from klayers.process import write_atomic
from klayers.train.datasets import DATASETS
from klayers.train.setups import (
    ERROR_METRICS,
    MODEL_METADATA,
    TrainConfig,
    TrainConfigError,
    load_train_config,
    reaches_target,
)

RESULTS_FILE = "results.json"
CHART_FILE = "learning_curves.png"
RUNS_ROOT = Path("runs")
DISTRIBUTIONS = ("data-parallel",)
# The backends `--distribute data-parallel` runs on (keras.distribution is JAX-only in Keras 3).
DISTRIBUTED_BACKENDS = ("jax",)
# A worker that says nothing for this long is hung: even a slow epoch reports its steps.
SILENCE_TIMEOUT_S = 1800.0


class TrainError(ValueError):
    """A run that cannot start as asked; the message is one line saying why."""


class WorkerFailed(Exception):
    """A worker that crashed, hung, or reported an error; the message says which."""

    def __init__(self, message: str, *, reported: bool = False) -> None:
        super().__init__(message)
        self.reported = reported  # True: the worker's own one-line error (a user's mistake)


@dataclass(frozen=True)
class TrainPlan:
    config: TrainConfig  # with --epochs, --batch-size and --dataset applied
    seed: int
    backends: tuple[str, ...]
    output: Path
    resume: bool
    distribute: str | None = None
    devices: int | None = None
    threads: int = 1
    cores: tuple[int, ...] | None = None
    previous: dict[str, Any] | None = None  # the results.json of the run a --resume continues


class Display(Protocol):
    """What `run_training` and `run_evaluation` tell the user about, as it happens."""

    def starting(self, backend: str) -> None: ...
    def event(self, backend: str, event: dict[str, Any]) -> None: ...
    def failed(self, backend: str, message: str) -> None: ...


# --- planning: every check that can fail before a worker starts


def default_backend() -> str:
    """The backend a Keras user has chosen: KERAS_BACKEND, else ~/.keras/keras.json's."""
    chosen = os.environ.get("KERAS_BACKEND")
    if chosen:
        return chosen
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        saved = json.loads(Path(home, "keras.json").read_text(encoding="utf-8"))
        return str(saved.get("backend") or "tensorflow")
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


def parse_backends(value: str | None) -> tuple[str, ...]:
    """A comma-separated list of backends, or "all" (every installed one)."""
    if value is None:
        names = (default_backend(),)
    else:
        try:
            names = environment.named_backends(value)
        except ValueError as error:
            raise TrainError(str(error)) from None
    if value is not None and value.strip().lower() == "all":
        names = tuple(name for name in names if environment.backend_installed(name))
        if not names:
            raise TrainError("--backend all: none of " + ", ".join(environment.BACKENDS)
                             + " is installed")
    for name in names:
        if not environment.backend_installed(name):
            raise TrainError(f"backend {name!r} is not installed")
    return names


def default_output(config_name: str, root: Path = RUNS_ROOT) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return root / f"{config_name}-{stamp}"


def latest_run(config_name: str, root: Path = RUNS_ROOT) -> Path | None:
    """The newest run folder of `config_name` under `root` (their names sort by time)."""
    runs = sorted(path for path in root.glob(f"{config_name}-*")
                  if (path / RESULTS_FILE).is_file())
    return runs[-1] if runs else None


def plan_training(
    model: str,
    *,
    backends: str | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    dataset: str | None = None,
    seed: int | None = None,
    output: Path | None = None,
    resume: bool = False,
    distribute: str | None = None,
    devices: int | None = None,
    threads: int | None = None,
) -> TrainPlan:
    """Checks the options and resolves them against the set-up (and, on --resume, the run)."""
    for name, value in (("--epochs", epochs), ("--batch-size", batch_size),
                        ("--devices", devices)):
        if value is not None and value <= 0:
            raise TrainError(f"{name} must be a positive integer, received {value}")
    if seed is not None and seed < 0:
        raise TrainError(f"--seed must be a non-negative integer, received {seed}")
    if dataset is not None and dataset not in DATASETS:
        raise TrainError(f"unknown data set {dataset!r}; known: {', '.join(DATASETS)}")
    if distribute is not None and distribute not in DISTRIBUTIONS:
        raise TrainError(f"unknown --distribute {distribute!r}; expected "
                         + ", ".join(DISTRIBUTIONS))
    if devices is not None and distribute is None:
        raise TrainError("--devices needs --distribute data-parallel")
    try:
        config = load_train_config(model)
    except TrainConfigError as error:
        raise TrainError(str(error)) from None
    chosen = parse_backends(backends)
    previous = None
    if resume:
        output = output or latest_run(config.name)
        if output is None:
            raise TrainError(f"--resume: no run of {config.name!r} under {RUNS_ROOT}/; "
                             "name the run's folder with --output")
        previous = _previous_run(output, config)
        run = previous["run"]
        asked = {"--batch-size": batch_size, "--dataset": dataset, "--seed": seed,
                 "--distribute": distribute, "--devices": devices}
        for option, value in asked.items():
            kept = run[option.lstrip("-").replace("-", "_")]
            if value is not None and value != kept:
                raise TrainError(f"{option} {value} differs from the run's ({kept}) in "
                                 f"{output}; a resumed run keeps its settings")
        config = TrainConfig(**run["config"])
        seed, distribute, devices = run["seed"], run["distribute"], run["devices"]
        if backends is None:
            chosen = tuple(run["backends"])
        done = max((record.get("epochs_done") or 0 for record in previous["results"]),
                   default=0)
        if epochs is not None and epochs < done:
            raise TrainError(f"--epochs {epochs}: the run in {output} has trained {done} "
                             "epochs already")
    else:
        output = output or default_output(config.name)
        if output.exists() and not output.is_dir():
            raise TrainError(f"--output {output} is a file, not a folder")
        if output.is_dir() and any(output.iterdir()):
            what = "another run" if (output / RESULTS_FILE).exists() else "other files"
            raise TrainError(f"--output {output} holds {what}; continue it with --resume "
                             "or choose another folder")
    overrides = {key: value for key, value in (("epochs", epochs), ("batch_size", batch_size),
                                                ("dataset", dataset)) if value is not None}
    config = dataclasses.replace(config, **overrides)
    if distribute is not None:
        unsupported = [name for name in chosen if name not in DISTRIBUTED_BACKENDS]
        if unsupported:
            raise TrainError(f"--distribute {distribute} runs on the "
                             f"{', '.join(DISTRIBUTED_BACKENDS)} backend only "
                             f"(keras.distribution); not on {', '.join(unsupported)}")
        if devices and config.batch_size % devices:
            raise TrainError(f"--batch-size {config.batch_size} does not split evenly across "
                             f"{devices} devices; use a multiple of {devices}")
    threads, cores = process.threads_and_cores(threads)
    return TrainPlan(config, config.seed if seed is None else seed, chosen, output, resume,
                     distribute, devices, threads, cores, previous)


def _previous_run(output: Path, config: TrainConfig) -> dict[str, Any]:
    path = output / RESULTS_FILE
    if not path.is_file():
        raise TrainError(f"--resume: {output} holds no run ({RESULTS_FILE} is missing)")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        run = document["run"]
        saved_name = run["config"]["name"]
    except (OSError, ValueError, KeyError, TypeError):
        raise TrainError(f"--resume: {path} is not a klayers training run") from None
    if saved_name != config.name:
        raise TrainError(f"--resume: {output} holds a run of {saved_name!r}, not "
                         f"{config.name!r}")
    return document


# --- running


@dataclass
class TrainOutcome:
    document: dict[str, Any]  # what results.json holds
    interrupted: bool = False
    failed: list[str] = field(default_factory=list)  # backends that did not finish


def worker_command() -> list[str]:
    return [sys.executable, "-m", "klayers.train.worker"]


def run_training(plan: TrainPlan, display: Display, *,
                 command: Sequence[str] | None = None) -> TrainOutcome:
    """Trains on every backend of the plan in turn; writes results.json and the chart.

    A worker's own error before any backend was ready (a data set that cannot be loaded, a
    model that does not build) is the user's mistake: it raises TrainError and leaves
    nothing behind. Later failures are recorded and the next backend runs. A Ctrl-C stops
    the worker and records the run as interrupted; --resume continues it.
    """
    document = _new_document(plan)
    outcome = TrainOutcome(document)
    records = {record["backend"]: record for record in document["results"]}
    written = bool(plan.previous)

    def save() -> None:
        document["environment"]["finished"] = _now()
        write_atomic(plan.output / RESULTS_FILE, json.dumps(document, indent=2) + "\n")

    for backend in plan.backends:
        record = records.setdefault(backend, _empty_record(backend))
        if record not in document["results"]:
            document["results"].append(record)
        record.update(status="running", error=None)
        job = {"mode": "train", "config": dataclasses.asdict(plan.config), "seed": plan.seed,
               "output": str(plan.output / backend), "resume": plan.resume,
               "threads": plan.threads, "cores": list(plan.cores) if plan.cores else None,
               "distribute": plan.distribute, "devices": plan.devices,
               "host_devices": plan.devices if plan.distribute else None}

        def on_event(event: dict[str, Any], record: dict[str, Any] = record,
                     backend: str = backend) -> None:
            nonlocal written
            _apply_event(record, event)
            if event["event"] == "ready" and not written:
                written = True  # the first worker is ready: the run exists, write it down
                save()
            elif event["event"] in ("epoch", "done"):
                save()
            display.event(backend, event)

        display.starting(backend)
        try:
            run_worker(backend, job, plan.threads, on_event, command=command)
        except WorkerFailed as failure:
            if failure.reported and not written:
                raise TrainError(f"{backend}: {failure}") from None
            record.update(status="error", error=str(failure))
            outcome.failed.append(backend)
            display.failed(backend, str(failure))
        except KeyboardInterrupt:
            record["status"] = "interrupted"
            outcome.interrupted = True
            outcome.failed.append(backend)
            break
        finally:
            if written:
                save()
    if written:
        write_chart(plan.output, document["results"])
    return outcome


def run_worker(backend: str, job: dict[str, Any], threads: int,
               on_event: Callable[[dict[str, Any]], None], *,
               command: Sequence[str] | None = None) -> dict[str, Any]:
    """Runs one worker on `job`, passing each event to `on_event`; returns the "done" event.

    Raises WorkerFailed when the worker reports an error, crashes, or falls silent for
    SILENCE_TIMEOUT_S; the worker is stopped in every case, a Ctrl-C included.
    """
    env = process.worker_environment(backend, threads)
    with process.stderr_file() as stderr:
        try:
            worker = process.spawn(command or worker_command(), env, stderr)
        except OSError as error:
            raise WorkerFailed(f"worker could not start: {error}") from None
        try:
            worker.send(job)
            while True:
                event = worker.read_event(SILENCE_TIMEOUT_S, _EVENTS)
                if event is process.TIMEOUT:
                    raise WorkerFailed(f"worker silent for {SILENCE_TIMEOUT_S:g} s"
                                       + worker.stderr_tail())
                if event is None:
                    raise WorkerFailed(worker.error("ended before it finished"))
                if event["event"] == "error":
                    raise WorkerFailed(event["message"], reported=True)
                on_event(event)
                if event["event"] == "done":
                    return event
        finally:
            worker.stop()


_EVENTS = ("ready", "batch", "epoch", "fine_tune_epoch", "done", "error")


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _new_document(plan: TrainPlan) -> dict[str, Any]:
    """results.json's content at the start: the run's settings, the machine, no results yet
    (or, on --resume, the run's results so far)."""
    config = plan.config
    run = {"model": config.model, "config": dataclasses.asdict(config),
           "dataset": config.dataset, "seed": plan.seed, "epochs": config.epochs,
           "batch_size": config.batch_size, "backends": list(plan.backends),
           "distribute": plan.distribute, "devices": plan.devices,
           "target_metric": config.target_metric, "target": config.target,
           "target_is_ceiling": config.target_is_ceiling}
    machine = environment.machine_info()
    env = {"klayers": environment.package_version("klayers"),
           "keras": environment.package_version("keras"), **machine,
           "threads": {**process.thread_environment(plan.threads),
                       "threads": plan.threads,
                       "cores": list(plan.cores) if plan.cores else None},
           "started": _now(), "finished": None, "load_average_start": process.load_average()}
    if plan.previous:
        results = [dict(record) for record in plan.previous.get("results", [])]
        backends = list(dict.fromkeys([*plan.previous["run"]["backends"], *plan.backends]))
        run["backends"] = backends
        env["resumed"] = [*plan.previous["environment"].get("resumed", []), _now()]
        env["started"] = plan.previous["environment"].get("started", env["started"])
    else:
        results = []
    return {"kind": "klayers-train", "run": run, "environment": env, "results": results}


def _empty_record(backend: str) -> dict[str, Any]:
    return {"backend": backend, "status": "pending", "error": None, "keras_version": None,
            "backend_version": None, "devices": [], "device_count": None, "task": None,
            "num_train": None, "num_test": None, "parameters": None, "epochs_done": 0,
            "history": [], "epoch_times_s": [], "time_to_first_step_s": None,
            "s_per_epoch": None, "samples_per_s": None, "timing_includes_compile": None,
            "resumed_at": [], "test": None}


def _apply_event(record: dict[str, Any], event: dict[str, Any]) -> None:
    kind = event["event"]
    if kind == "ready":
        record.update({key: event[key] for key in (
            "keras_version", "backend_version", "devices", "device_count", "task",
            "num_train", "num_test", "parameters")})
    elif kind == "epoch":
        record["epochs_done"] = event["epoch"]
        record["history"] = [row for row in record["history"] if row["epoch"] < event["epoch"]]
        record["history"].append({"epoch": event["epoch"], **event["logs"],
                                  "train_time_s": event["train_time_s"]})
    elif kind == "done":
        record.update(status="ok", epochs_done=event["epochs"], history=event["history"],
                      epoch_times_s=event["epoch_times_s"], test=event["test"],
                      time_to_first_step_s=event["time_to_first_step_s"],
                      resumed_at=event["resumed_at"], fine_tune=event.get("fine_tune"))
        record.update(epoch_speed(event["epoch_times_s"], event["resumed_at"],
                                  event["num_train_per_epoch"]))


def epoch_speed(times: Sequence[float], resumed_at: Sequence[int],
                samples: int) -> dict[str, Any]:
    """Seconds per epoch (the median) and samples per second.

    The first epoch of a process compiles the training step: it is left out when other
    epochs are there to time (the first step's time is reported on its own).
    """
    compiling = {0, *resumed_at}
    steady = [t for index, t in enumerate(times) if index not in compiling]
    chosen = steady or list(times)
    if not chosen:
        return {"s_per_epoch": None, "samples_per_s": None, "timing_includes_compile": None}
    seconds = statistics.median(chosen)
    return {"s_per_epoch": seconds, "samples_per_s": samples / seconds if seconds else None,
            "timing_includes_compile": not steady}


def target_value(record: dict[str, Any], run: dict[str, Any]) -> float | None:
    test = record.get("test") or {}
    return test.get(run["target_metric"])


def meets_target(value: float | None, run: dict[str, Any]) -> bool | None:
    if value is None:
        return None
    return reaches_target(value, run["target"], run["target_metric"])


# --- the chart


def write_chart(output: Path, records: list[dict[str, Any]]) -> str | None:
    """learning_curves.png: loss (and the first metric) per epoch, per backend, train and
    test; written atomically. None when no backend has finished an epoch."""
    with_history = [record for record in records if record.get("history")]
    if not with_history:
        return None
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, and no GUI toolkit to import
    from matplotlib import pyplot

    names = [key for key in with_history[0]["history"][0]
             if key not in ("epoch", "train_time_s") and not key.startswith("val_")]
    panels = ["loss"] + [name for name in names if name != "loss"][:1]
    figure, axes = pyplot.subplots(1, len(panels), figsize=(5.5 * len(panels), 4),
                                   squeeze=False)
    for axis, name in zip(axes[0], panels, strict=True):
        for number, record in enumerate(with_history):
            color = f"C{number}"
            epochs = [row["epoch"] for row in record["history"]]
            axis.plot(epochs, [row.get(name) for row in record["history"]], color=color,
                      label=f"{record['backend']} train")
            if any(f"val_{name}" in row for row in record["history"]):
                axis.plot(epochs, [row.get(f"val_{name}") for row in record["history"]],
                          color=color, linestyle="--", label=f"{record['backend']} test")
        axis.set_xlabel("epoch")
        axis.set_ylabel(name)
        if name == "loss" or name in ERROR_METRICS:
            axis.set_yscale("log")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle("Learning curves per backend (solid: training set, dashed: test set)")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    pyplot.close(figure)
    write_atomic(output / CHART_FILE, buffer.getvalue())
    return CHART_FILE


# --- evaluate


@dataclass(frozen=True)
class EvaluatePlan:
    model_path: Path
    metadata: dict[str, Any]
    backends: tuple[str, ...]
    threads: int


def plan_evaluation(model_path: Path, backends: str | None,
                    threads: int | None = None) -> EvaluatePlan:
    """Checks the model file and reads the set-up it was trained with from model.json."""
    if not model_path.is_file():
        raise TrainError(f"{model_path}: no such file")
    metadata_path = model_path.parent / MODEL_METADATA
    try:
        metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
        TrainConfig(**metadata["config"])
        int(metadata["seed"])
    except OSError:
        raise TrainError(f"{metadata_path} is missing: evaluate needs the {MODEL_METADATA} "
                         "that klayers train writes beside the model (data set, seed)") from None
    except (ValueError, KeyError, TypeError):
        raise TrainError(f"{metadata_path} is not a klayers training record") from None
    return EvaluatePlan(model_path, metadata, parse_backends(backends),
                        process.threads_and_cores(threads)[0])


def run_evaluation(plan: EvaluatePlan, display: Display, *,
                   command: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The test-set figures of the saved model under each backend, one record per backend."""
    records = []
    for backend in plan.backends:
        record: dict[str, Any] = {"backend": backend, "status": "error", "error": None,
                                  "test": None}
        job = {"mode": "evaluate", "config": plan.metadata["config"],
               "seed": plan.metadata["seed"], "model_path": str(plan.model_path.resolve()),
               "threads": plan.threads}

        def on_event(event: dict[str, Any], record: dict[str, Any] = record,
                     backend: str = backend) -> None:
            if event["event"] == "ready":
                record.update(backend_version=event["backend_version"],
                              keras_version=event["keras_version"])
            display.event(backend, event)

        display.starting(backend)
        try:
            done = run_worker(backend, job, plan.threads, on_event, command=command)
        except WorkerFailed as failure:
            record["error"] = str(failure)
            display.failed(backend, str(failure))
        else:
            record.update(status="ok", test=done["test"], load_s=done["load_s"],
                          evaluate_s=done["evaluate_s"])
        records.append(record)
    return records


def evaluation_spread(records: list[dict[str, Any]], metric: str) -> float | None:
    """The largest difference of `metric` between backends that evaluated the model."""
    values = [record["test"][metric] for record in records
              if record["status"] == "ok" and metric in record["test"]]
    return max(values) - min(values) if len(values) > 1 else None
