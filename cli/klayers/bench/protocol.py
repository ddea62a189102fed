"""The benchmark worker's protocol, written once: the job the parent sends on stdin, the
"ready" event and one "record" event per measurement that the worker prints as JSON lines.

Keras-free, so the parent (bench.run, bench.results), the worker and the tests' fake worker
all speak it from the same definitions.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

READY = "ready"
RECORD = "record"
EVENTS = (READY, RECORD)


@dataclass
class WorkerSettings:
    """The run's settings the worker needs (made by bench.run's Settings.to_job)."""

    min_time: float
    min_rounds: int
    threads: int | None = None
    cores: list[int] | None = None
    torch_compile: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkerSettings:
        return cls(**data)


@dataclass
class MeasurementJob:
    """One measurement as the worker gets it (bench.suites's Measurement.to_job)."""

    index: int
    layer: str
    kind: str
    keras_name: str | None
    config: dict[str, Any]
    input_shape: list
    input_dtype: str
    implementation: str
    device: str
    dtype: str
    mode: str
    batch_size: int
    quantize: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MeasurementJob:
        return cls(**data)


@dataclass
class Job:
    """The whole job: the run's settings and the measurements, as bench.suites writes them."""

    settings: WorkerSettings
    measurements: list[MeasurementJob]

    def to_json(self) -> str:
        return json.dumps({"settings": self.settings.to_dict(),
                           "measurements": [m.to_dict() for m in self.measurements]})

    @classmethod
    def from_json(cls, text: str) -> Job:
        data = json.loads(text)
        return cls(settings=WorkerSettings.from_dict(data["settings"]),
                   measurements=[MeasurementJob.from_dict(m) for m in data["measurements"]])


@dataclass
class Ready:
    """The worker imported keras and its backend: versions, and each device's peak GFLOP/s
    (float32 matrix products) and memory bandwidth in GB/s (float32 scaling)."""

    backend: str
    keras_version: str | None = None
    backend_version: str | None = None
    peak_gflops: dict[str, float] = field(default_factory=dict)
    peak_gbytes_per_s: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"event": READY, **dataclasses.asdict(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Ready:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in names})

    @classmethod
    def from_json(cls, text: str) -> Ready:
        return cls.from_dict(json.loads(text))


@dataclass
class Record:
    """One measurement's figures, measured or failed (status "ok", "error", "timeout",
    "skipped"); latency_ms and paired_speedup are statistics.summarize's summaries;
    weight_bytes is what the timed model's weights take (after quantization, if any)."""

    index: int
    implementation: str
    backend: str
    device: str
    dtype: str
    mode: str
    batch_size: int
    status: str = "ok"
    error: str | None = None
    first_call_s: float | None = None
    latency_ms: dict[str, float] | None = None
    rounds: int = 0
    throughput: float | None = None
    peak_memory_mb: float | None = None
    weight_bytes: int | None = None
    jit_compile: bool | None = None
    paired_speedup: dict[str, float] | None = None

    @classmethod
    def empty(cls, measurement: MeasurementJob, backend: str, **figures: Any) -> Record:
        """The record of `measurement` (a job's entry) before anything is measured."""
        return cls(index=measurement.index, implementation=measurement.implementation,
                   backend=backend, device=measurement.device, dtype=measurement.dtype,
                   mode=measurement.mode, batch_size=measurement.batch_size, **figures)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps({"event": RECORD, **self.to_dict()})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        """From an event or a stored record; keys that are not the record's are ignored."""
        return cls(**{key: data[key] for key in RECORD_FIELDS if key in data})

    @classmethod
    def from_json(cls, text: str) -> Record:
        return cls.from_dict(json.loads(text))


RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(Record))
# What a stored result takes from the worker's record, beside what the measurement says.
FIGURES = ("status", "error", "throughput", "latency_ms", "rounds", "first_call_s",
           "peak_memory_mb", "weight_bytes", "jit_compile", "paired_speedup")
