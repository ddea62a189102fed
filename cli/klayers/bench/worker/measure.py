"""The worker's work: builds and times the layers of a benchmark job (see the package's docstring).

Imports keras, keraslayers and numpy at the top; `__main__` runs it once the process is ready.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np

import keraslayers
from klayers.bench.protocol import RECORD, Job, MeasurementJob, Ready, Record, WorkerSettings
from klayers.bench.statistics import summarize
from klayers.bench.suites import BASELINES

# Square float32 matmuls for the peak: a backend's best size varies (its blocking, its threads),
# so the peak is the best over these sizes.
PEAK_MATMUL_SIZES = {"cpu": (1024, 2048, 4096), "gpu": (4096, 8192)}
PEAK_REPEATS = 10  # the best of them: other load on the machine only slows a repeat down
PEAK_SECONDS = 2.0  # per size, after at least 3 repeats
# The bandwidth probe's arrays: on a CPU, 4 times its last-level cache (at least 64 MiB, at
# most 1 GiB), so the data streams from memory; on a GPU (tens of MiB of L2), these sizes.
BANDWIDTH_CACHE_MULTIPLE = 4
BANDWIDTH_CPU_BYTES = (64 << 20, 1 << 30)
BANDWIDTH_GPU_BYTES = (256 << 20, 1 << 30)
BANDWIDTH_REPEATS = 5  # the best of them, as for the peak
BANDWIDTH_SECONDS = 0.1  # per step and size, after at least 2 repeats
BANDWIDTH_SCALE = 1.0001  # near 1, so that repeated in-place scaling stays finite
WARMUP_FRACTION = 0.2  # of the minimum time, spent on warm-up steps after the first call
MIN_WARMUP_STEPS = 2
MAX_ROUNDS = 100_000  # a cap for steps of a few microseconds
BLOCKS_PER_MIN_TIME = 10  # blocks of steps per implementation, at least, when interleaved

# torch.nn modules for the native baseline, by Keras layer name (see _native_module).
NATIVE_LAYERS = ("Dense", "Conv2D", "LayerNormalization", "LSTM", "Embedding", "MaxPooling2D",
                 "MultiHeadAttention")
# Layers called on (query, value) that attend to themselves when given one tensor, and those
# that take their inputs as one list.
SELF_ATTENTION = ("Attention", "AdditiveAttention", "MultiHeadAttention", "GroupQueryAttention")
LIST_INPUTS = ("Attention", "AdditiveAttention")
# Layers whose output depends on the input's shape alone: a training step has no gradient.
SHAPE_ONLY = ("SinePositionEncoding",)


def main(job: Job, protocol: Any) -> None:
    """Measures `job`, writing its events to `protocol` (see `process.protocol_stream`)."""
    settings = job.settings
    keras.utils.set_random_seed(0)
    backend = keras.backend.backend()
    if backend == "torch" and settings.threads:
        import torch

        torch.set_num_threads(settings.threads)
    devices = sorted({measurement.device for measurement in job.measurements})
    emit(protocol, Ready(
        backend=backend,
        keras_version=keras.__version__,
        backend_version=_backend_version(backend),
        peak_gflops={device: peak_gflops(device) for device in devices},
        peak_gbytes_per_s={device: peak_gbytes_per_s(device) for device in devices},
    ).to_dict())
    for group in groups(job.measurements):
        for record in measure_group(group, settings):
            emit(protocol, {"event": RECORD, **record})


def emit(stream: Any, event: dict[str, Any]) -> None:
    stream.write(json.dumps(event) + "\n")
    stream.flush()


def peak_gflops(device: str) -> float:
    """The best GFLOP/s of large float32 matrix products on `device`, over sizes and repeats."""

    rng = np.random.default_rng(0)
    best = 0.0
    with _device_scope(device):
        matmul = _compiled_matmul()
        for size in PEAK_MATMUL_SIZES["gpu" if device.startswith("gpu") else "cpu"]:
            a, b = (keras.ops.convert_to_tensor(rng.standard_normal((size, size), dtype="float32"))
                    for _ in range(2))
            _wait(matmul(a, b))
            spent, repeats = 0.0, 0
            while repeats < PEAK_REPEATS and (repeats < 3 or spent < PEAK_SECONDS):
                start = time.perf_counter()
                _wait(matmul(a, b))
                seconds = time.perf_counter() - start
                best = max(best, 2 * size**3 / seconds / 1e9)
                spent, repeats = spent + seconds, repeats + 1
    return best


def peak_gbytes_per_s(device: str) -> float:
    """The best GB/s of `y = x * a` over large float32 arrays on `device`, over sizes and
    repeats, counting the bytes read and written (8 per element).

    Each size runs the scaling as the layers run (compiled on JAX, one kernel call elsewhere,
    a new output each time) and, where the backend can, into memory it already holds (torch's
    `out=`, a donated buffer on JAX): fresh pages cost some backends more than the copy
    itself on a CPU, and the roofline's bound is the memory's speed, not the allocator's.
    """
    best = 0.0
    gpu = device.startswith("gpu")
    with _device_scope(device):
        for size in BANDWIDTH_GPU_BYTES if gpu else (_cpu_probe_bytes(),):
            elements = size // 4
            for scale in _scaling_steps(elements):
                _wait(scale())  # compiles, and touches the output's pages
                spent, repeats = 0.0, 0
                while repeats < BANDWIDTH_REPEATS and (repeats < 2 or spent < BANDWIDTH_SECONDS):
                    start = time.perf_counter()
                    _wait(scale())
                    seconds = time.perf_counter() - start
                    best = max(best, 8 * elements / seconds / 1e9)
                    spent, repeats = spent + seconds, repeats + 1
    return best


def _cpu_probe_bytes() -> int:
    """BANDWIDTH_CACHE_MULTIPLE times the largest CPU cache Linux reports, within bounds."""
    largest = 0
    for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        with contextlib.suppress(OSError, ValueError):
            text = (index / "size").read_text().strip()
            units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
            largest = max(largest, int(text[:-1]) * units[text[-1]] if text[-1] in units
                          else int(text))
    low, high = BANDWIDTH_CPU_BYTES
    return min(max(BANDWIDTH_CACHE_MULTIPLE * largest, low), high)


def _scaling_steps(elements: int) -> list[Callable[[], Any]]:
    """Steps computing `x * a` on `elements` float32 values, each returning its result; to be
    run in order (JAX's second step consumes the first one's input)."""

    backend = keras.backend.backend()
    x = keras.ops.ones((elements,), "float32")
    if backend == "jax":
        import jax

        allocating = jax.jit(lambda values: values * BANDWIDTH_SCALE)
        in_place = jax.jit(lambda values: values * BANDWIDTH_SCALE, donate_argnums=0)
        donated = [x]

        def scale_donated() -> Any:
            donated[0] = in_place(donated[0])
            return donated[0]

        return [lambda: allocating(x), scale_donated]
    steps = [lambda: keras.ops.multiply(x, BANDWIDTH_SCALE)]
    if backend == "torch":
        import torch

        out = torch.empty_like(x)
        steps.append(lambda: torch.mul(x, BANDWIDTH_SCALE, out=out))
    return steps


def _device_scope(device: str) -> contextlib.AbstractContextManager:
    """Places work on `device`; a no-op on the backend's default device.

    On torch, a model built inside `keras.device(...)` gets no gradients (Keras 3.15), so
    the scope is entered only where it is needed: a device other than the default one.
    """

    backend = keras.backend.backend()
    if backend == "torch":
        import torch

        has_gpu = torch.cuda.is_available()
    elif backend == "jax":
        import jax

        has_gpu = jax.devices()[0].platform != "cpu"
    else:
        import tensorflow as tf

        has_gpu = bool(tf.config.list_logical_devices("GPU"))
    default = "gpu:0" if has_gpu else "cpu:0"
    return contextlib.nullcontext() if device == default else keras.device(device)


def _compiled_matmul() -> Callable[[Any, Any], Any]:

    if keras.backend.backend() == "jax":
        import jax

        return jax.jit(keras.ops.matmul)
    return keras.ops.matmul  # one kernel call: tracing it would add nothing


def _wait(value: Any) -> None:
    """Returns once `value` is computed: asynchronous backends only queue the work."""

    backend = keras.backend.backend()
    if backend == "jax":
        value.block_until_ready()
    elif backend == "torch":
        import torch

        if value.is_cuda:
            torch.cuda.synchronize(value.device)
    else:
        # An element of the result cannot exist before the op that makes it has finished.
        value[(0,) * len(value.shape)].numpy()


def measure_group(jobs: list[MeasurementJob], settings: WorkerSettings) -> list[dict[str, Any]]:
    """Measures implementations of one case side by side; a record each, never an exception.

    Each is built, called once (compile) and warmed up on its own, then all are timed in
    alternating blocks of steps (ours, Keras, torch.nn, ours, ...), so that whatever else
    slows the machine down slows each of them alike. Each baseline's record also gets
    `paired_speedup`: per round, the baseline's median step over ours, summarised over rounds.
    """
    records = [_empty_record(job) for job in jobs]
    # One set of input tensors for all Keras-side implementations: where the buffer lies in
    # memory (huge pages or not) moved a memory-bound step by up to 20% between two copies of
    # the same data, and that difference would be read as one of the layers.
    shared_inputs: dict[tuple, list[Any]] = {}
    steps: dict[int, Callable[[], None]] = {}
    step_estimates: dict[int, float] = {}
    with _device_scope(jobs[0].device):
        for position, job in enumerate(jobs):
            memory = _MemoryMeter(job.device)
            try:
                if job.implementation == "native":
                    step, jit, weight_bytes = _native_step(job, settings)
                else:
                    step, jit, weight_bytes = _keras_step(job, settings, shared_inputs)
                records[position].update(jit_compile=jit, weight_bytes=weight_bytes)
                first_call, step_estimates[position] = _warm_up(step, settings.min_time)
            except Exception as error:  # noqa: BLE001  (any failure of a case is that case's result)
                records[position].update(_failure(error))
                continue
            steps[position] = step
            records[position].update(first_call_s=first_call,
                                     peak_memory_mb=memory.peak_growth_mb())
        samples, block_medians, failures = _time_interleaved(
            steps, step_estimates, settings.min_time, settings.min_rounds)
    for position, error in failures.items():
        records[position].update(_failure(error))
    for position, times in samples.items():
        latency = summarize([seconds * 1e3 for seconds in times])
        throughput = jobs[position].batch_size / (latency["median"] / 1e3)
        records[position].update(latency_ms=latency, rounds=len(times), throughput=throughput)
    ours = block_medians.get(0) if jobs[0].implementation not in BASELINES else None
    for position, medians in block_medians.items():
        if ours and position != 0:
            records[position]["paired_speedup"] = summarize(
                [theirs / mine for theirs, mine in zip(medians, ours, strict=True)])
    return records


def _empty_record(job: MeasurementJob) -> dict[str, Any]:

    return Record.empty(job, keras.backend.backend()).to_dict()


def _failure(error: Exception) -> dict[str, Any]:
    if isinstance(error, _Skipped):
        return {"status": "skipped", "error": str(error)}
    message = f"{type(error).__name__}: {error}".strip().splitlines()[0]
    return {"status": "error", "error": message[:500]}


def group_key(job: MeasurementJob) -> tuple:
    """What a case's implementations share: they are measured together (`measure_group`)."""
    return (job.layer, json.dumps(job.config, sort_keys=True), str(job.input_shape),
            job.device, job.dtype, job.mode, job.batch_size, job.quantize)


def groups(jobs: list[MeasurementJob]) -> list[list[MeasurementJob]]:
    """The job's measurements cut into runs of consecutive ones with the same `group_key`."""
    grouped: list[list[MeasurementJob]] = []
    for job in jobs:
        if grouped and group_key(grouped[-1][-1]) == group_key(job):
            grouped[-1].append(job)
        else:
            grouped.append([job])
    return grouped


class _Skipped(Exception):
    """The measurement does not apply (no such baseline, an unsupported dtype)."""


def _warm_up(step: Callable[[], None], min_time: float) -> tuple[float, float]:
    """Seconds of the first call, and the median seconds of a warm-up step after it."""
    start = time.perf_counter()
    step()
    first_call = time.perf_counter() - start
    warmup_end = time.perf_counter() + WARMUP_FRACTION * min_time
    times: list[float] = []
    while len(times) < MIN_WARMUP_STEPS or time.perf_counter() < warmup_end:
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return first_call, sorted(times)[len(times) // 2]


def _time_interleaved(
    steps: dict[int, Callable[[], None]],
    step_estimates: dict[int, float],
    min_time: float,
    min_rounds: int,
) -> tuple[dict[int, list[float]], dict[int, list[float]], dict[int, Exception]]:
    """Per-step seconds of each step, the median of each of its blocks, and steps that failed.

    Rounds run a block of every step in turn until each has at least `min_time` seconds and
    `min_rounds` steps. A block lasts about 1/BLOCKS_PER_MIN_TIME of the minimum time (at
    least one step), so each step gets that many blocks, at least, to pair with the others.
    """
    block_sizes = {key: max(1, round(min_time / BLOCKS_PER_MIN_TIME / max(estimate, 1e-9)))
                   for key, estimate in step_estimates.items()}
    samples: dict[int, list[float]] = {key: [] for key in steps}
    medians: dict[int, list[float]] = {key: [] for key in steps}
    failures: dict[int, Exception] = {}

    def done(key: int) -> bool:
        times = samples[key]
        return (sum(times) >= min_time and len(times) >= min_rounds) or len(times) >= MAX_ROUNDS

    while samples and not all(done(key) for key in samples):
        for key in list(samples):
            block: list[float] = []
            try:
                for _ in range(block_sizes[key]):
                    start = time.perf_counter()
                    steps[key]()
                    block.append(time.perf_counter() - start)
            except Exception as error:  # noqa: BLE001  (a step failing late fails only itself)
                failures[key] = error
                del samples[key], medians[key]
                continue
            samples[key].extend(block)
            medians[key].append(sorted(block)[len(block) // 2])
    return samples, medians, failures


def _inputs(job: MeasurementJob, shapes: list[tuple[int, ...]], dtype: str) -> list[Any]:

    rng = np.random.default_rng(0)
    batch = job.batch_size
    if dtype.startswith("int"):
        # Indices for an Embedding must lie below its input_dim.
        high = job.config.get("input_dim", 2)
        return [rng.integers(0, high, size=(batch, *shape)).astype(dtype) for shape in shapes]
    return [rng.standard_normal((batch, *shape)).astype(dtype) for shape in shapes]


def _input_shapes(input_shape: list) -> list[tuple[int, ...]]:
    if input_shape and isinstance(input_shape[0], list):
        return [tuple(shape) for shape in input_shape]
    return [tuple(input_shape)]


def _layer_class(job: MeasurementJob) -> type:


    if job.implementation == "keraslayers":
        return getattr(keraslayers, job.layer)
    if job.implementation == "custom":
        module_name, _, class_name = job.layer.partition(":")
        return getattr(importlib.import_module(module_name), class_name)
    if not hasattr(keras.layers, job.keras_name or ""):
        raise _Skipped(f"keras.layers has no {job.keras_name}")
    return getattr(keras.layers, job.keras_name)


def _with_keras_inner_layers(config: Any) -> Any:
    """The config with every nested klayers layer ("keraslayers>LSTM") swapped for Keras's own.

    So that the Keras baseline of a wrapper (Bidirectional, RNN of cells) times Keras's inner
    layers too, not ours.
    """

    if isinstance(config, list):
        return [_with_keras_inner_layers(item) for item in config]
    if not isinstance(config, dict):
        return config
    swapped = {key: _with_keras_inner_layers(value) for key, value in config.items()}
    name = config.get("registered_name")
    if isinstance(name, str) and name.startswith("keraslayers>"):
        class_name = name.partition(">")[2]
        if not hasattr(keras.layers, class_name):
            raise _Skipped(f"keras.layers has no {class_name} (nested in the config)")
        swapped.update(module="keras.layers", class_name=class_name, registered_name=None)
    return swapped


def _keras_model(job: MeasurementJob) -> tuple[Any, list[tuple[int, ...]], str]:
    """The model to time, the input shapes without batch, and the input dtype."""

    if job.implementation == "model":
        if job.dtype != "float32":
            raise _Skipped("a saved model runs in the dtype it was saved with (float32 here)")
        model = keras.saving.load_model(job.layer, compile=False)
        shapes = [tuple(tensor.shape[1:]) for tensor in model.inputs]
        if any(size is None for shape in shapes for size in shape):
            raise ValueError(f"{job.layer}: inputs {shapes} have unknown sizes")
        return model, shapes, model.inputs[0].dtype
    if job.mode == "train" and job.layer in SHAPE_ONLY:
        raise _Skipped(f"{job.layer}'s output depends on its input's shape alone: "
                       "a training step has nothing to differentiate")
    shapes = _input_shapes(job.input_shape)
    config = job.config
    if job.implementation == "keras":
        config = _with_keras_inner_layers(config)
    layer = _layer_class(job).from_config({**config, "dtype": job.dtype})
    inputs = [keras.Input(shape, dtype=job.input_dtype) for shape in shapes]
    arguments = inputs
    if job.keras_name in SELF_ATTENTION and len(inputs) == 1:
        # Keras's attention layers need a query and a value: self-attention passes the
        # input as both, to ours as well, so that both do the same work.
        arguments = [inputs[0], inputs[0]]

    def call(arguments: list) -> Any:
        return layer(arguments) if job.keras_name in LIST_INPUTS else layer(*arguments)

    outputs = call(arguments)
    if (job.mode == "train" and not layer.trainable_weights
            and all(str(tensor.dtype).startswith("float") for tensor in arguments)):
        # A training step of a layer without weights must still run its backward pass, as in
        # any model with weights before it: a learned scalar scales the input (on both sides,
        # and on the native side too), and the model is rebuilt on the scaled input.
        scale = _input_scale_layer()
        outputs = call([scale(tensor) for tensor in arguments])
    if isinstance(outputs, (list, tuple)):  # return_state and the like: time the main output
        outputs = outputs[0]
    return keras.Model(inputs, outputs), shapes, job.input_dtype


def _input_scale_layer() -> Any:
    """A keras layer multiplying its input by one learned scalar (initially 1)."""

    class InputScale(keras.layers.Layer):
        def build(self, input_shape):
            self.scale = self.add_weight(shape=(), initializer="ones", name="scale")

        def call(self, x):
            return x * keras.ops.cast(self.scale, x.dtype)

    return InputScale(name="input_scale")


def _keras_step(job: MeasurementJob, settings: WorkerSettings, shared_inputs: dict[tuple, list[Any]]
                ) -> tuple[Callable[[], None], Any, int]:
    """A predict or train step through Keras's own compiled functions, its jit setting and the
    bytes its weights take (after quantization, for a quantized case).

    `shared_inputs` maps `(shapes, dtype)` to tensors already converted for another
    implementation of the same case; they are reused, and new ones are added to it.
    """

    model, shapes, input_dtype = _keras_model(job)
    if job.quantize:
        _quantize(model, job)
    weight_bytes = sum(keras.ops.convert_to_numpy(w).nbytes for w in model.weights)
    jit = True if keras.backend.backend() == "torch" and settings.torch_compile else "auto"
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse", jit_compile=jit)
    # Converted once, here, so that the timed steps copy nothing from the host.
    key = (tuple(shapes), input_dtype)
    if key not in shared_inputs:
        shared_inputs[key] = [keras.ops.convert_to_tensor(a)
                              for a in _inputs(job, shapes, input_dtype)]
    arrays = shared_inputs[key]
    x = arrays[0] if len(arrays) == 1 else arrays
    # The output's shape comes from the symbolic model: on torch, a predict_on_batch call
    # before train_on_batch leaves the model without gradients (Keras 3.15).
    output_shape = (job.batch_size, *model.outputs[0].shape[1:])
    if None in output_shape:
        # A size the layer leaves to its input (EinsumDense's `output_shape` with None): one
        # eager call tells it (not predict_on_batch, for the reason above).
        output_shape = tuple(int(size) for size in keras.ops.shape(model(x)))
    target = keras.ops.convert_to_tensor(np.zeros(output_shape, "float32"))
    # Both return NumPy values, so each step ends only when its result is on the host.
    if job.mode == "predict":
        return (lambda: model.predict_on_batch(x)), model.jit_compile, weight_bytes
    return (lambda: model.train_on_batch(x, target)), model.jit_compile, weight_bytes


def _quantize(model: Any, job: MeasurementJob) -> None:
    """`model.quantize(job.quantize)`; a model with no layer that quantizes is skipped, not
    timed as if it were quantized."""
    model.quantize(job.quantize)
    if not any(layer.quantization_mode for layer in model._flatten_layers()):
        raise _Skipped(f"no layer of {job.layer} quantizes to {job.quantize} "
                       f"(in the {job.implementation} implementation)")


def _native_step(job: MeasurementJob, settings: WorkerSettings
                 ) -> tuple[Callable[[], None], Any, int]:
    """The torch.nn equivalent of the layer, run as PyTorch users run it (channels first)."""

    if keras.backend.backend() != "torch":
        raise _Skipped("the native baseline is torch.nn, on the torch backend only")
    if job.quantize:
        raise _Skipped("the native baseline is not quantized (torch.nn has no such mode)")
    if job.dtype != "float32":
        raise _Skipped("the native baseline runs in float32 only")
    import torch

    module, shapes = _native_module(job)
    if job.mode == "train" and not list(module.parameters()):
        # As on the Keras side: a learned scalar before a module without weights, so that the
        # training step runs its backward pass.
        module = _native_input_scale(module)
    device = torch.device("cuda" if job.device.startswith("gpu") else "cpu")
    module = module.to(device)
    weight_bytes = sum(t.numel() * t.element_size()
                       for t in [*module.parameters(), *module.buffers()])
    if settings.torch_compile:
        module = torch.compile(module)
    arrays = _inputs(job, shapes, job.input_dtype)
    x = [torch.as_tensor(a, device=device) for a in arrays]

    def synchronize() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    if job.mode == "predict":
        module.eval()

        def predict() -> None:
            with torch.no_grad():
                module(*x)
            synchronize()

        return predict, settings.torch_compile, weight_bytes
    module.train()
    with torch.no_grad():
        target = torch.zeros_like(module(*x))
    optimizer = torch.optim.SGD(module.parameters(), lr=1e-3)

    def train() -> None:
        loss = torch.nn.functional.mse_loss(module(*x), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        synchronize()

    return train, settings.torch_compile, weight_bytes


def _native_input_scale(module: Any) -> Any:
    """`module` applied to its inputs times one learned scalar (initially 1)."""
    import torch

    class InputScale(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.module = module
            self.scale = torch.nn.Parameter(torch.ones(()))

        def forward(self, *inputs):
            return self.module(*(tensor * self.scale for tensor in inputs))

    return InputScale()


def _native_module(job: MeasurementJob) -> tuple[Any, list[tuple[int, ...]]]:
    """A torch.nn module equal in work to the Keras layer, and its input shapes (no batch).

    Only configurations with an exact equivalent are built; others are skipped.
    """
    from torch import nn

    class LastStep(nn.Module):
        """An LSTM giving what Keras's gives: every step's output, or the last one."""

        def __init__(self, lstm: nn.Module, sequences: bool) -> None:
            super().__init__()
            self.lstm, self.sequences = lstm, sequences

        def forward(self, x):
            outputs, _ = self.lstm(x)
            return outputs if self.sequences else outputs[:, -1]

    class SelfAttention(nn.Module):
        """nn.MultiheadAttention giving only its output, as Keras's layer does."""

        def __init__(self, attention: nn.Module) -> None:
            super().__init__()
            self.attention = attention

        def forward(self, query, value):
            return self.attention(query, value, value, need_weights=False)[0]

    name, config = job.keras_name, job.config
    shapes = _input_shapes(job.input_shape)
    shape = shapes[0]
    activations = {None: nn.Identity, "linear": nn.Identity, "relu": nn.ReLU, "gelu": nn.GELU,
                   "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "silu": nn.SiLU}
    activation = config.get("activation")
    if name not in NATIVE_LAYERS or (activation is not None and activation not in activations):
        raise _Skipped(f"no torch.nn equivalent of {name} with this config")
    if name == "Dense":
        linear = nn.Linear(shape[-1], config["units"], bias=config.get("use_bias", True))
        return nn.Sequential(linear, activations[activation]()), shapes
    if name == "LayerNormalization" and config.get("axis", -1) in (-1, [-1]):
        return nn.LayerNorm(shape[-1], eps=config.get("epsilon", 1e-3)), shapes
    if name == "Embedding":
        return nn.Embedding(config["input_dim"], config["output_dim"]), shapes
    if name == "LSTM" and not config.get("return_state"):
        return LastStep(nn.LSTM(shape[-1], config["units"], batch_first=True),
                         config.get("return_sequences", False)), shapes
    if name in ("Conv2D", "MaxPooling2D"):
        padding = config.get("padding", "valid")
        if config.get("data_format") == "channels_first" or padding != "valid":
            raise _Skipped(f"{name} with padding={padding!r}: torch pads differently")
        height, width, channels = shape
        if name == "Conv2D":
            convolution = nn.Conv2d(
                channels, config["filters"], config["kernel_size"],
                stride=config.get("strides", 1), dilation=config.get("dilation_rate", 1),
                groups=config.get("groups", 1), bias=config.get("use_bias", True))
            module = nn.Sequential(convolution, activations[activation]())
        else:
            window = config.get("pool_size", 2)
            module = nn.MaxPool2d(window, stride=config.get("strides") or window)
        # PyTorch's layout is channels first: (channels, height, width).
        return module, [(channels, height, width)]
    if name == "MultiHeadAttention" and not config.get("value_dim") and (
        config["num_heads"] * config["key_dim"] == shape[-1]
    ):
        attention = nn.MultiheadAttention(shape[-1], config["num_heads"], batch_first=True,
                                          bias=config.get("use_bias", True))
        return SelfAttention(attention), shapes if len(shapes) > 1 else [shape, shape]
    raise _Skipped(f"no torch.nn equivalent of {name} with this config")


def _backend_version(backend: str) -> str | None:
    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}.get(backend)
    return str(importlib.import_module(module).__version__) if module else None


class _MemoryMeter:
    """Peak memory growth from its creation: process RSS on CPU, the allocator's on GPU."""

    def __init__(self, device: str) -> None:
        self.gpu = device.startswith("gpu")
        self.device = device
        self.start = self._current()

    def _current(self) -> float | None:

        if not self.gpu:
            # Writing 5 to clear_refs resets the kernel's high-water mark (VmHWM) to now.
            try:
                with open("/proc/self/clear_refs", "w") as clear_refs:
                    clear_refs.write("5")
            except OSError:
                pass
            return _proc_status_kb("VmRSS")
        backend = keras.backend.backend()
        index = int(self.device.partition(":")[2] or 0)
        if backend == "torch":
            import torch

            torch.cuda.reset_peak_memory_stats(index)
            return torch.cuda.memory_allocated(index) / 1024
        if backend == "tensorflow":
            import tensorflow as tf

            tf.config.experimental.reset_memory_stats(f"GPU:{index}")
            return tf.config.experimental.get_memory_info(f"GPU:{index}")["current"] / 1024
        import jax

        stats = jax.devices()[index].memory_stats() or {}
        return stats.get("bytes_in_use", 0) / 1024

    def peak_growth_mb(self) -> float | None:

        if self.start is None:
            return None
        if not self.gpu:
            peak = _proc_status_kb("VmHWM")
        else:
            backend = keras.backend.backend()
            index = int(self.device.partition(":")[2] or 0)
            if backend == "torch":
                import torch

                peak = torch.cuda.max_memory_allocated(index) / 1024
            elif backend == "tensorflow":
                import tensorflow as tf

                peak = tf.config.experimental.get_memory_info(f"GPU:{index}")["peak"] / 1024
            else:
                import jax

                peak = (jax.devices()[index].memory_stats() or {}).get("peak_bytes_in_use", 0)
                peak /= 1024
        return None if peak is None else max(peak - self.start, 0.0) / 1024


def _proc_status_kb(field: str) -> float | None:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return float(line.split()[1])
    except OSError:
        pass
    return None

