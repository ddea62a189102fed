"""Benchmark suites: YAML files of cases, read and checked without importing keras.

A suite file (configs/bench/*.yaml) looks like

    description: what it is for
    min_time: 0.5                 # optional: seconds of timed steps per measurement
    defaults: {batch_sizes: [32], dtypes: [float32], modes: [predict, train]}
    cases:
      - layer: Dense              # a name from the catalogue
        config: {units: 256}      # constructor arguments, as from_config takes them
        input_shape: [256]        # without the batch axis; a list of shapes for several inputs
        batch_sizes: [32, 256]    # optional, overrides the defaults (as dtypes and modes do)
        quantize: int8            # optional: `model.quantize(mode)` before timing (int8, int4,
                                  # float8), ours and Keras's layer alike
    catalog: {scales: [1, 4]}     # optional: every catalogue example, its sizes times each scale

Every mistake is a `SuiteError` naming the file, the key and the value.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import importlib.util
import itertools
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from klayers import configs
from klayers.bench.protocol import MeasurementJob

SUITES_DIR = configs.folder("bench")
MODES = ("predict", "train")
DTYPE_POLICIES = ("float32", "float16", "bfloat16", "mixed_float16", "mixed_bfloat16")
BASELINES = ("keras", "native")
# The modes of Keras's `quantize` that need no calibration data (gptq and awq need a dataset).
QUANTIZE_MODES = ("int8", "int4", "float8")
_CASE_KEYS = {"layer", "config", "input_shape", "input_dtype", "batch_sizes", "dtypes", "modes",
              "quantize"}
_MODEL_CASE_KEYS = {"model", "batch_sizes", "dtypes", "modes", "quantize"}
_LENGTH_BOUNDS = ("sequence_length",)
_SUITE_KEYS = {"description", "min_time", "defaults", "cases", "catalog"}


class SuiteError(ValueError):
    """A suite file or a command-line case that cannot be run, with what is wrong in it."""


@dataclass(frozen=True)
class Case:
    """One layer configuration at one input shape, measured at several batch sizes and so on.

    `kind` says where the layer comes from: "catalog" (a keraslayers layer by name), "custom"
    (`layer` is "package.module:Class") or "model" (`layer` is the path of a .keras file).
    `keras_name` is the Keras layer to compare with, when there is one. `quantize` is the
    mode the model is quantized to before it is timed (None: not quantized).
    """

    layer: str
    config: dict[str, Any]
    input_shape: tuple
    batch_sizes: tuple[int, ...] = (32,)
    dtypes: tuple[str, ...] = ("float32",)
    modes: tuple[str, ...] = MODES
    input_dtype: str = "float32"
    kind: str = "catalog"
    keras_name: str | None = None
    quantize: str | None = None

    @property
    def label(self) -> str:
        """A short name that tells cases of the same layer apart: layer, arguments, shape
        (and the quantization mode)."""
        quantized = f", {self.quantize}" if self.quantize else ""
        if self.kind == "model":
            return Path(self.layer).name + quantized
        arguments = ", ".join(f"{key}={_short(value)}" for key, value in self.config.items())
        return f"{self.layer}({arguments}) on {shape_text(self.input_shape)}{quantized}"


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    cases: tuple[Case, ...]
    min_time: float | None = None


@dataclass(frozen=True)
class Measurement:
    """One line of work for a worker: a case at one batch size, dtype, mode and implementation."""

    case: Case
    implementation: str
    device: str
    dtype: str
    mode: str
    batch_size: int
    index: int = 0  # its position in its backend's job, which the worker's records echo

    def to_job(self) -> MeasurementJob:
        """What the worker needs of it."""
        case = self.case
        return MeasurementJob(
            index=self.index, layer=case.layer, kind=case.kind, keras_name=case.keras_name,
            config=case.config, input_shape=case.input_shape, input_dtype=case.input_dtype,
            implementation=self.implementation, device=self.device, dtype=self.dtype,
            mode=self.mode, batch_size=self.batch_size, quantize=case.quantize,
        )


def catalog_records() -> list[Any]:
    """The catalogue's records, read from keraslayers/catalog.py without importing keras.

    Importing the `keraslayers` package would import keras (and a backend) into this, the
    parent, process. The catalogue module itself is plain data, so it is loaded on its own.
    """
    package = importlib.util.find_spec("keraslayers")
    if package is None or not package.submodule_search_locations:
        raise SuiteError("the keraslayers package is not installed")
    path = Path(next(iter(package.submodule_search_locations))) / "catalog.py"
    spec = importlib.util.spec_from_file_location("klayers_bench_catalog", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return list(module.LAYERS)


def suite_path(name_or_path: str) -> Path:
    """A suite's file: a name in configs/bench/ ("quick") or a path to a YAML file."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml"):
        return candidate
    return SUITES_DIR / f"{name_or_path}.yaml"


def available_suites() -> list[str]:
    return sorted(path.stem for path in SUITES_DIR.glob("*.yaml"))


def load_suite(name_or_path: str) -> Suite:
    """Reads and checks a suite; raises SuiteError naming the file, key and value at fault."""
    path = suite_path(name_or_path)
    if not path.is_file():
        known = ", ".join(available_suites())
        raise SuiteError(f"no suite file {str(path)!r} (suites in configs/bench/: {known})")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" line {where.line + 1}" if where else ""
        problem = getattr(error, "problem", None) or error
        raise SuiteError(f"{path}:{line} is not valid YAML: {problem}") from None
    return parse_suite(data, str(path), name=path.stem)


def parse_suite(data: Any, source: str, *, name: str = "suite") -> Suite:
    if not isinstance(data, dict):
        raise SuiteError(f"{source}: a suite is a mapping with `cases` and/or `catalog`, "
                         f"received {type(data).__name__}")
    _check_keys(data, _SUITE_KEYS, source, "the suite")
    defaults = data.get("defaults") or {}
    _check_keys(defaults, {"batch_sizes", "dtypes", "modes"}, source, "defaults")
    records = {record.name: record for record in catalog_records()}
    folder = Path(source).parent if Path(source).is_file() else None
    cases = [
        _parse_case(entry, defaults, records, f"{source}: cases[{number}]", folder)
        for number, entry in enumerate(_list(data, "cases", source))
    ]
    if "catalog" in data:
        cases += _catalog_cases(data["catalog"], defaults, records, f"{source}: catalog")
    if not cases:
        raise SuiteError(f"{source}: the suite has no cases")
    min_time = data.get("min_time")
    if min_time is not None and not (isinstance(min_time, (int, float)) and min_time > 0):
        raise SuiteError(f"{source}: min_time must be a positive number, received {min_time!r}")
    return Suite(name, str(data.get("description", "")), tuple(cases), min_time)


def custom_case(
    target: str, kwargs: str, input_shape: str, batch_sizes: tuple[int, ...], dtypes, modes
) -> Case:
    """The case of `--custom package.module:Class --kwargs JSON --input-shape 128,64`."""
    class_name = _class_name(target, "--custom")
    try:
        config = json.loads(kwargs)
    except json.JSONDecodeError as error:
        raise SuiteError(f"--kwargs is not JSON ({error.msg}): {kwargs!r}") from None
    if not isinstance(config, dict):
        raise SuiteError(f"--kwargs must be a JSON object, received {kwargs!r}")
    shapes = parse_input_shape(input_shape)
    return Case(target, config, shapes, batch_sizes, dtypes, modes, kind="custom",
                keras_name=class_name)


def model_case(path: str, batch_sizes: tuple[int, ...], dtypes, modes) -> Case:
    """The case of `--model path.keras`: the worker reads the input shapes from the model."""
    if not Path(path).is_file():
        raise SuiteError(f"--model: no such file {path!r}")
    return Case(str(Path(path).resolve()), {}, (), batch_sizes, dtypes, modes, kind="model")


def _class_name(target: str, where: str) -> str:
    """The class of "package.module:Class"; a SuiteError says what a target looks like."""
    module, _, class_name = target.partition(":")
    if not module or not class_name.isidentifier():
        raise SuiteError(f"{where} must be 'package.module:ClassName', received {target!r}")
    return class_name


def parse_input_shape(text: str) -> tuple:
    """"128,64" -> (128, 64); "8,16;8,32" -> ((8, 16), (8, 32)) for several inputs."""
    try:
        shapes = [tuple(int(size) for size in part.split(",")) for part in text.split(";")]
    except ValueError:
        raise SuiteError(f"--input-shape must be comma-separated integers (';' between "
                         f"inputs), received {text!r}") from None
    if any(size <= 0 for shape in shapes for size in shape):
        raise SuiteError(f"--input-shape sizes must be positive, received {text!r}")
    return shapes[0] if len(shapes) == 1 else tuple(shapes)


def quantized(cases: tuple[Case, ...], mode: str | None) -> tuple[Case, ...]:
    """`--quantize MODE`: every case quantized to `mode` (the cases as they are for None)."""
    if mode is None:
        return cases
    mode = _quantize_mode(mode, "--quantize")
    return tuple(dataclasses.replace(case, quantize=mode) for case in cases)


def _quantize_mode(value: Any, where: str) -> str | None:
    if value is None or value in QUANTIZE_MODES:
        return value
    raise SuiteError(f"{where}: unknown quantization mode {value!r}; expected one of "
                     f"{', '.join(QUANTIZE_MODES)} (gptq and awq need calibration data, which "
                     "a benchmark does not have)")


def select(cases: tuple[Case, ...], patterns: tuple[str, ...]) -> tuple[Case, ...]:
    """The cases whose layer name matches one of the globs (all of them without a pattern)."""
    if not patterns:
        return cases
    return tuple(case for case in cases
                 if any(fnmatch.fnmatchcase(case.layer, pattern) for pattern in patterns))


def measurements(
    cases: tuple[Case, ...], backend: str, devices: list[str], baselines: tuple[str, ...]
) -> list[Measurement]:
    """Every measurement of `cases` on one backend: ours, then each baseline that applies.

    The Keras baseline needs a Keras layer of the same name; the native one exists only on
    torch (the worker says "skipped" for a layer without a torch.nn equivalent); a saved model
    has no counterpart.
    """
    planned: list[Measurement] = []
    for case in cases:
        implementations = [{"custom": "custom", "model": "model"}.get(case.kind, "keraslayers")]
        if case.kind != "model":
            if "keras" in baselines and case.keras_name:
                implementations.append("keras")
            if "native" in baselines and backend == "torch":
                implementations.append("native")
        for device, dtype, mode, batch, implementation in itertools.product(
            devices, case.dtypes, case.modes, case.batch_sizes, implementations
        ):
            planned.append(Measurement(case, implementation, device, dtype, mode, batch,
                                       len(planned)))
    return planned


def _parse_case(entry: Any, defaults: dict, records: dict, where: str,
                folder: Path | None = None) -> Case:
    """A case of a suite file: a catalogue layer by name, a "package.module:Class" layer, or
    `model: path.keras` (relative to the suite's `folder`)."""
    if not isinstance(entry, dict):
        raise SuiteError(f"{where}: a case is a mapping with layer, config, input_shape (or "
                         f"model: path.keras); received {entry!r}")
    if "model" in entry:
        _check_keys(entry, _MODEL_CASE_KEYS, where, "a model case")
        path = Path(str(entry["model"]))
        path = path if path.is_absolute() or folder is None else folder / path
        if path.suffix != ".keras" or not path.is_file():
            raise SuiteError(f"{where}.model: no .keras file at {str(path)!r}")
        return Case(str(path.resolve()), {}, (), **_measured_as(entry, defaults, where),
                    kind="model", quantize=_quantize_mode(entry.get("quantize"),
                                                          f"{where}.quantize"))
    _check_keys(entry, _CASE_KEYS, where, "a case")
    layer = entry.get("layer")
    custom = isinstance(layer, str) and ":" in layer
    if custom:
        keras_name = _class_name(layer, f"{where}.layer")
    elif layer in records:
        keras_name = records[layer].keras_name
    else:
        close = [name for name in records if name.lower() == str(layer).lower()]
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise SuiteError(f"{where}.layer: unknown layer {layer!r}{hint}; "
                         f"`klayers list` shows the catalogue, or give 'package.module:Class'")
    config = entry.get("config") or {}
    if not isinstance(config, dict):
        raise SuiteError(f"{where}.config must be a mapping, received {config!r}")
    shape = _shape(entry.get("input_shape"), f"{where}.input_shape")
    default_dtype = "float32" if custom else records[layer].example_input_dtype
    return Case(
        layer, config, shape, **_measured_as(entry, defaults, where),
        input_dtype=str(entry.get("input_dtype", default_dtype)),
        kind="custom" if custom else "catalog", keras_name=keras_name,
        quantize=_quantize_mode(entry.get("quantize"), f"{where}.quantize"),
    )


def _measured_as(entry: dict, defaults: dict, where: str) -> dict[str, tuple]:
    """A case's batch sizes, dtypes and modes: its own, else the suite's defaults."""
    return {
        "batch_sizes": _batch_sizes(entry.get("batch_sizes", defaults.get("batch_sizes", [32])),
                                    f"{where}.batch_sizes"),
        "dtypes": _choices(entry.get("dtypes", defaults.get("dtypes", ["float32"])),
                           DTYPE_POLICIES, f"{where}.dtypes"),
        "modes": _choices(entry.get("modes", defaults.get("modes", list(MODES))), MODES,
                          f"{where}.modes"),
    }


def _catalog_cases(spec: Any, defaults: dict, records: dict, where: str) -> list[Case]:
    if not isinstance(spec, dict):
        raise SuiteError(f"{where} must be a mapping like {{scales: [1, 4]}}, received {spec!r}")
    _check_keys(spec, {"scales"}, where, "catalog")
    scales = _batch_sizes(spec.get("scales", [1]), f"{where}.scales")
    cases = []
    for record in records.values():
        example = tuple(record.example_input_shape)
        for scale in scales:
            # The example's shape without its batch axis, every size times the scale.
            if _several(example):
                shape = tuple(tuple(size * scale for size in s[1:]) for s in example)
            else:
                shape = tuple(size * scale for size in example[1:])
            config = dict(record.example_config)
            # Arguments that bound the input's length grow with it (PositionEmbedding).
            for key in _LENGTH_BOUNDS:
                if isinstance(config.get(key), int):
                    config[key] *= scale
            entry = {"layer": record.name, "config": config, "input_shape": _nested_lists(shape)}
            cases.append(_parse_case(entry, defaults, records, f"{where}[{record.name}]"))
    return cases


def _check_keys(data: Any, allowed: set[str], where: str, what: str) -> None:
    if not isinstance(data, dict):
        raise SuiteError(f"{where}: {what} must be a mapping, received {data!r}")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise SuiteError(f"{where}: unknown key {unknown[0]!r} in {what}; "
                         f"expected {', '.join(sorted(allowed))}")


def _list(data: dict, key: str, source: str) -> list:
    value = data.get(key) or []
    if not isinstance(value, list):
        raise SuiteError(f"{source}: {key} must be a list, received {value!r}")
    return value


def _shape(value: Any, where: str) -> tuple:
    def sizes(shape: Any) -> tuple[int, ...]:
        if not isinstance(shape, list) or not shape or not all(
            isinstance(size, int) and not isinstance(size, bool) and size > 0 for size in shape
        ):
            raise SuiteError(f"{where} must be a list of positive integers (without the batch "
                             f"axis) or a list of such lists, received {value!r}")
        return tuple(shape)

    if isinstance(value, list) and value and isinstance(value[0], list):
        return tuple(sizes(shape) for shape in value)
    return sizes(value)


def _batch_sizes(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not value or not all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value
    ):
        raise SuiteError(f"{where} must be a list of positive integers, received {value!r}")
    return tuple(value)


def _choices(value: Any, allowed: tuple[str, ...], where: str) -> tuple[str, ...]:
    values = value if isinstance(value, list) else [value]
    for item in values:
        if item not in allowed:
            raise SuiteError(f"{where}: unknown value {item!r}; expected one of "
                             f"{', '.join(allowed)}")
    return tuple(values)


def shape_text(shape: tuple | list) -> str:
    """(32, 64) -> "32x64"; several inputs are joined with " & "."""
    if _several(shape):
        return " & ".join("x".join(map(str, s)) for s in shape)
    return "x".join(map(str, shape))


def _several(shape: tuple) -> bool:
    return bool(shape) and isinstance(shape[0], (list, tuple))


def _nested_lists(shape: tuple) -> list:
    return [list(s) for s in shape] if _several(shape) else list(shape)


def _short(value: Any) -> str:
    if isinstance(value, dict):
        # A nested layer: its class and its arguments, as the outer label shows them.
        if "class_name" in value:
            inner = ", ".join(f"{key}={_short(item)}"
                              for key, item in (value.get("config") or {}).items())
            return f"{value['class_name']}({inner})"
        return "{...}"
    if isinstance(value, list):
        return "[" + ", ".join(_short(item) for item in value) + "]"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
