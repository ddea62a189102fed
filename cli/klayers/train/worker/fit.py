"""The worker's work: trains or evaluates a training job's model (see the package's docstring).

Imports keras, keraslayers and numpy at the top; `__main__` runs it once the process is ready.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

import keraslayers  # noqa: F401  (registers our layers, so saved models load)
from klayers.process import write_atomic
from klayers.train.datasets import Dataset
from klayers.train.setups import (
    MODEL_METADATA,
    TrainConfig,
    check_fine_tune_data,
    enable_model_lora,
    evaluate_model,
    fine_tune_optimizer,
    prepare_dataset,
)

BATCH_EVENT_INTERVAL_S = 0.1  # progress updates: often enough for a bar, cheap for the step
CHECKPOINT = "checkpoint.json"
MODEL_FILE = "model.keras"

HISTORY_FILE = "history.csv"


class JobError(Exception):
    """A job that cannot run as asked; its message is the worker's one-line error."""


def main(job: dict[str, Any], protocol: Any) -> None:
    """Runs `job` (train or evaluate), writing its events to `protocol`."""
    def emit(event: dict[str, Any]) -> None:
        protocol.write(json.dumps(event) + "\n")
        protocol.flush()

    from klayers.train.datasets import DatasetError
    from klayers.train.setups import TrainConfigError

    try:
        if job["mode"] == "evaluate":
            evaluate(job, emit)
        else:
            train(job, emit)
    except (JobError, DatasetError, TrainConfigError) as error:
        emit({"event": "error", "message": " ".join(str(error).split())})
        sys.exit(1)


def _start_backend(job: dict[str, Any]) -> Any:
    """Imports keras (and with it the backend), seeds it, and applies the thread setting."""


    keras.utils.set_random_seed(job["seed"])
    if keras.backend.backend() == "torch" and job.get("threads"):
        import torch

        torch.set_num_threads(job["threads"])
    return keras


def _backend_version(backend: str) -> str:
    import importlib

    return str(importlib.import_module(backend).__version__)


def _devices(keras: Any, job: dict[str, Any], batch_size: int) -> list[str]:
    """The devices the run uses: all (or `devices`) of JAX's for data parallelism, else one."""
    if not job.get("distribute"):
        return [_default_device(keras)]
    available = keras.distribution.list_devices()
    wanted = job.get("devices") or len(available)
    if wanted > len(available):
        raise JobError(f"--devices {wanted}: the {keras.backend.backend()} backend sees only "
                       f"{len(available)} device(s): {', '.join(available)}")
    devices = available[:wanted]
    if batch_size % len(devices):
        raise JobError(f"--batch-size {batch_size} does not split evenly across "
                       f"{len(devices)} devices; use a multiple of {len(devices)}")
    # Before the model exists: its variables are then created replicated on every device.
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    return devices


def _default_device(keras: Any) -> str:
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        return f"{device.platform}:{device.id}"
    if backend == "torch":
        import torch

        return "cuda:0" if torch.cuda.is_available() else "cpu"
    import tensorflow as tf

    return "gpu:0" if tf.config.list_logical_devices("GPU") else "cpu:0"


def train(job: dict[str, Any], emit: Any) -> None:
    """Trains (or resumes) the job's model, checkpointing each epoch, and reports the figures."""
    config = TrainConfig(**job["config"])
    folder = Path(job["output"])
    dataset = prepare_dataset(config, job["seed"])
    shifted = None
    if config.fine_tune:
        shifted = prepare_dataset(config, job["seed"], dataset=config.fine_tune.dataset)
        check_fine_tune_data(config, dataset, shifted)
    keras = _start_backend(job)
    devices = _devices(keras, job, config.batch_size)
    checkpoint = _read_checkpoint(folder) if job.get("resume") else None
    if checkpoint is None:
        model = _build(config, dataset)
        state: dict[str, Any] = {"epoch": 0, "history": [], "epoch_times_s": [],
                                 "time_to_first_step_s": None, "resumed_at": []}
        random_state = None
    else:
        model = keras.saving.load_model(folder / checkpoint["model_file"])
        state = checkpoint
        state["resumed_at"] = [*state.get("resumed_at", []), state["epoch"]]
        random_state = _load_random_state(folder / checkpoint["random_state_file"])
        _restore_seed_states(model, random_state)
    steps = math.ceil(_usable_samples(dataset.num_train, len(devices)) / config.batch_size)
    emit({"event": "ready", "backend": keras.backend.backend(),
          "keras_version": keras.__version__,
          "backend_version": _backend_version(keras.backend.backend()),
          "devices": devices, "device_count": len(devices), "task": dataset.task,
          "num_train": dataset.num_train, "num_test": dataset.num_test,
          "parameters": model.count_params(), "steps_per_epoch": steps,
          "start_epoch": state["epoch"], "epochs": config.epochs,
          "fine_tune_epochs": config.fine_tune.epochs if config.fine_tune else 0})
    folder.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(folder)
    for epoch in range(state["epoch"], config.epochs):
        x, y = _epoch_order(dataset, job["seed"], epoch, len(devices))
        progress = _progress_callback(emit, epoch, steps,
                                      first_step=state["time_to_first_step_s"] is None,
                                      random_state=random_state)
        random_state = None  # restored once, at the start of the first epoch after a resume
        progress.fit_started = time.perf_counter()
        model.fit(x, y, batch_size=config.batch_size, epochs=1, shuffle=False, verbose=0,
                  validation_data=(dataset.x_test, dataset.y_test), callbacks=[progress])
        if progress.first_step_s is not None:
            state["time_to_first_step_s"] = progress.first_step_s
        logs = {name: float(value) for name, value in progress.epoch_logs.items()}
        row = {"epoch": epoch + 1, **logs, "train_time_s": progress.train_time_s}
        state["history"].append(row)
        state["epoch_times_s"].append(progress.train_time_s)
        state["epoch"] = epoch + 1
        _write_checkpoint(folder, model, state)
        write_atomic(folder / HISTORY_FILE, _history_csv(state["history"]))
        emit({"event": "epoch", "epoch": epoch + 1, "epochs": config.epochs, "logs": logs,
              "train_time_s": progress.train_time_s,
              "samples_per_s": len(y) / progress.train_time_s})
    figures = evaluate_model(config, model, dataset)
    fine_tuned = None
    if shifted is not None:
        fine_tuned = fine_tune(config, model, dataset, shifted, figures, job["seed"], emit)
    _save_model(model, folder / MODEL_FILE)
    metadata = {"config": job["config"], "seed": job["seed"], "trained_on": keras.backend.backend(),
                "devices": devices, "epochs": state["epoch"],
                # The saved model's figures on the data `klayers evaluate` checks it on.
                "test": fine_tuned["shifted_after"] if fine_tuned else figures}
    if fine_tuned:
        metadata["pretrained_test"] = figures
    write_atomic(folder / MODEL_METADATA, json.dumps(metadata, indent=2) + "\n")
    emit({"event": "done", "test": figures, "fine_tune": fine_tuned, "epochs": state["epoch"],
          "history": state["history"], "epoch_times_s": state["epoch_times_s"],
          "time_to_first_step_s": state["time_to_first_step_s"],
          "resumed_at": state["resumed_at"], "num_train_per_epoch":
              _usable_samples(dataset.num_train, len(devices))})


def weight_bytes(model: Any) -> int:
    """Bytes of the model's weights as stored (an int8 kernel: 1 per value), the random seed
    states left out."""
    return sum(math.prod(variable.shape) * np.dtype(variable.dtype).itemsize
               for variable in model.weights if variable.name != "seed_generator_state")


def trainable_count(model: Any) -> int:
    return sum(math.prod(variable.shape) for variable in model.trainable_weights)


def fine_tune(config: TrainConfig, model: Any, dataset: Dataset, shifted: Dataset,
              base_figures: dict[str, float], seed: int, emit: Any) -> dict[str, Any]:
    """Fine-tunes the trained `model` on `shifted` with LoRA (after `model.quantize`, when the
    set-up asks); returns the figures for the run's results.

    The figures: the base task's test figures before (`base_figures`) and after (forgetting),
    the shifted task's before and after, trainable parameters of full fine-tuning against
    LoRA's, weight bytes before and after quantization, and the fine-tune's time. The global
    seed is set again first, so the LoRA factors start the same whether the pre-training ran
    straight through or was resumed: a run stopped while fine-tuning redoes the fine-tune
    from the pre-trained checkpoint.
    """
    settings = config.fine_tune
    keras.utils.set_random_seed(seed)
    shifted_before = evaluate_model(config, model, shifted)
    trainable_full = trainable_count(model)
    bytes_float = weight_bytes(model)
    bytes_quantized = None
    if settings.quantize:
        model.quantize(settings.quantize)
        bytes_quantized = weight_bytes(model)
    adapted = enable_model_lora(model, settings.lora_rank, settings.lora_alpha)
    trainable_lora = trainable_count(model)
    model.compile(optimizer=fine_tune_optimizer(config), loss=config.loss,
                  metrics=list(config.metrics))
    steps = math.ceil(shifted.num_train / config.batch_size)
    history = []
    started = time.perf_counter()
    for epoch in range(settings.epochs):
        order = np.random.default_rng([seed, 1, epoch]).permutation(shifted.num_train)
        progress = _progress_callback(_phase_emit(emit, "fine_tune"), epoch, steps,
                                      first_step=False, random_state=None)
        model.fit(shifted.x_train[order], shifted.y_train[order], batch_size=config.batch_size,
                  epochs=1, shuffle=False, verbose=0,
                  validation_data=(shifted.x_test, shifted.y_test), callbacks=[progress])
        logs = {name: float(value) for name, value in progress.epoch_logs.items()}
        history.append({"epoch": epoch + 1, **logs, "train_time_s": progress.train_time_s})
        emit({"event": "fine_tune_epoch", "epoch": epoch + 1, "epochs": settings.epochs,
              "logs": logs, "train_time_s": progress.train_time_s})
    time_s = time.perf_counter() - started
    shifted_after = evaluate_model(config, model, shifted)
    return {"dataset": shifted.name, "quantize": settings.quantize,
            "lora_rank": settings.lora_rank, "lora_alpha": settings.lora_alpha,
            "epochs": settings.epochs, "adapted_layers": adapted,
            "base_before": base_figures, "shifted_before": shifted_before,
            "shifted_after": shifted_after, "base_after": evaluate_model(config, model, dataset),
            "trainable_full": trainable_full, "trainable_lora": trainable_lora,
            "weight_bytes_float": bytes_float, "weight_bytes_quantized": bytes_quantized,
            "weight_bytes_lora": weight_bytes(model), "time_s": time_s,
            "train_time_s": sum(row["train_time_s"] for row in history), "history": history}


def _phase_emit(emit: Any, phase: str) -> Any:
    """`emit` for a later phase of the job: its batch events carry the phase's name."""
    return lambda event: emit({**event, "phase": phase})


def evaluate(job: dict[str, Any], emit: Any) -> None:
    """Loads a saved model and reports its test-set figures on the data it was trained on
    (a fine-tuned model's: the fine-tuning data set)."""
    config = TrainConfig(**job["config"])
    dataset = prepare_dataset(config, job["seed"],
                              dataset=config.fine_tune.dataset if config.fine_tune else None)
    keras = _start_backend(job)
    started = time.perf_counter()
    try:
        model = keras.saving.load_model(job["model_path"])
    except Exception as error:  # noqa: BLE001  (a file that is not a model is the user's mistake)
        message = f"{type(error).__name__}: {error}".strip().splitlines()[0]
        raise JobError(f"cannot load {job['model_path']}: {message}") from error
    load_s = time.perf_counter() - started
    emit({"event": "ready", "backend": keras.backend.backend(),
          "keras_version": keras.__version__,
          "backend_version": _backend_version(keras.backend.backend()),
          "devices": [_default_device(keras)], "device_count": 1, "task": dataset.task,
          "num_train": dataset.num_train, "num_test": dataset.num_test,
          "parameters": model.count_params()})
    started = time.perf_counter()
    figures = evaluate_model(config, model, dataset)
    emit({"event": "done", "test": figures, "load_s": load_s,
          "evaluate_s": time.perf_counter() - started})


def _build(config: TrainConfig, dataset: Dataset) -> Any:
    from klayers.train.setups import compile_model

    return compile_model(config, dataset)


def _usable_samples(count: int, devices: int) -> int:
    """Samples per epoch: across several devices, a multiple of their count, so that every
    batch, the last one too, splits evenly (at most devices - 1 samples sit out an epoch)."""
    return count - count % devices


def _epoch_order(dataset: Dataset, seed: int, epoch: int, devices: int) -> tuple[Any, Any]:
    """The training data in this epoch's order, a function of the seed and the epoch alone.

    Keras's own shuffling draws from a generator a resumed run cannot rewind; this order is
    the same whether the epoch runs straight on or after a resume.
    """
    order = np.random.default_rng([seed, epoch]).permutation(dataset.num_train)
    order = order[:_usable_samples(len(order), devices)]
    x = dataset.x_train
    x = {name: values[order] for name, values in x.items()} if isinstance(x, dict) else x[order]
    return x, dataset.y_train[order]


def _progress_callback(emit: Any, epoch: int, steps: int, first_step: bool,
                       random_state: dict[str, np.ndarray] | None) -> Any:
    """A Keras callback that times the epoch's training steps and reports them as events.

    The training time runs from the start of the epoch to the end of its last step (the
    validation pass after it is not counted); the time to the first step runs from
    `fit_started` (set just before `fit`) to the end of the first step, compilation included.
    Reading a loss as a Python float waits for the step that computes it, so the clock stops
    only when the step's work is done.
    """

    class Progress(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.fit_started = 0.0
            self.epoch_started = 0.0
            self.last_event = 0.0
            self.first_step_s: float | None = None
            self.train_time_s = 0.0
            self.epoch_logs: dict[str, Any] = {}

        def on_train_begin(self, logs: dict | None = None) -> None:
            if random_state is not None:
                _restore_global_random_state(random_state)

        def on_epoch_begin(self, epoch_: int, logs: dict | None = None) -> None:
            self.epoch_started = self.last_event = time.perf_counter()

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            last = batch + 1 == steps
            first = batch == 0 and first_step
            if not (last or first
                    or time.perf_counter() - self.last_event >= BATCH_EVENT_INTERVAL_S):
                return
            values = {name: float(value) for name, value in (logs or {}).items()}
            now = time.perf_counter()  # after the wait for the step's results
            if first:
                self.first_step_s = now - self.fit_started
            if last:
                self.train_time_s = now - self.epoch_started
            self.last_event = now
            emit({"event": "batch", "epoch": epoch + 1, "step": batch + 1, "steps": steps,
                  "logs": values})

        def on_epoch_end(self, epoch_: int, logs: dict | None = None) -> None:
            self.epoch_logs = dict(logs or {})

    return Progress()


# Random state a .keras file leaves out: the SeedGenerator states of the layers (Dropout's
# masks) and, on torch, the global generator that Keras's unseeded dropout draws from.
def _seed_variables(model: Any) -> list[Any]:
    return [variable for variable in model.non_trainable_variables
            if variable.name == "seed_generator_state"]


def _random_state(model: Any) -> dict[str, np.ndarray]:

    state = {f"seed_{index}": keras.ops.convert_to_numpy(variable)
             for index, variable in enumerate(_seed_variables(model))}
    if keras.backend.backend() == "torch":
        import torch

        state["torch_rng"] = torch.get_rng_state().numpy()
    return state


def _restore_seed_states(model: Any, state: dict[str, np.ndarray]) -> None:
    variables = _seed_variables(model)
    saved = sorted(key for key in state if key.startswith("seed_"))
    if len(saved) != len(variables):
        raise JobError(f"the checkpoint holds {len(saved)} random seed states, the model "
                       f"{len(variables)}: it is not this model's checkpoint")
    for index, variable in enumerate(variables):
        variable.assign(state[f"seed_{index}"])


def _restore_global_random_state(state: dict[str, np.ndarray]) -> None:
    # Called when training starts, after Keras's first-call tracing, which on torch may run
    # the model eagerly and draw from the global generator, as the uninterrupted run did then.
    if "torch_rng" in state:
        import torch

        torch.set_rng_state(torch.from_numpy(state["torch_rng"]))


def _load_random_state(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as saved:
        return {key: saved[key] for key in saved.files}


def _read_checkpoint(folder: Path) -> dict[str, Any] | None:
    """The last complete checkpoint of `folder`, or None when it has none."""
    path = folder / CHECKPOINT
    if not path.exists():
        return None
    checkpoint = json.loads(path.read_text(encoding="utf-8"))
    for key in ("model_file", "random_state_file"):
        if not (folder / checkpoint[key]).exists():
            raise JobError(f"{path} names {checkpoint[key]}, which is missing")
    return checkpoint


def _write_checkpoint(folder: Path, model: Any, state: dict[str, Any]) -> None:
    """The model (with its optimizer state) and the random state of this epoch, then
    checkpoint.json naming them; the previous epoch's files go once the new ones are named."""
    stem = f"checkpoint-epoch{state['epoch']:04d}"
    previous = _read_checkpoint(folder)
    _save_model(model, folder / f"{stem}.keras")
    buffer = io.BytesIO()
    np.savez(buffer, **_random_state(model))
    write_atomic(folder / f"{stem}.npz", buffer.getvalue())
    record = {**state, "model_file": f"{stem}.keras", "random_state_file": f"{stem}.npz"}
    write_atomic(folder / CHECKPOINT, json.dumps(record, indent=2) + "\n")
    if previous:
        for key in ("model_file", "random_state_file"):
            if previous[key] != record[key]:
                (folder / previous[key]).unlink(missing_ok=True)


def _save_model(model: Any, path: Path) -> None:
    """model.save, whole or not at all: a temporary .keras beside `path`, then a rename."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.",
                                         suffix=".tmp.keras")
    os.close(handle)
    try:
        model.save(temporary)
        with open(temporary, "rb") as file:
            os.fsync(file.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _remove_stale_temporaries(folder: Path) -> None:
    """Temporary files a killed worker left half-written; nothing else points to them."""
    for path in folder.glob(".*.tmp*"):
        path.unlink(missing_ok=True)


def _history_csv(history: list[dict[str, Any]]) -> str:
    columns = list(dict.fromkeys(key for row in history for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    return buffer.getvalue()

