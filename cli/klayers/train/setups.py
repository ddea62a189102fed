"""Training set-ups: YAML files that say which model to train on which data, and how.

A file (configs/train/<name>.yaml) looks like

    description: what it shows              # optional
    model: mlp                              # a name in keraslayers.models.MODELS
    model_args: {hidden_units: [128, 64]}   # optional: the builder's hyper-parameters
    dataset: digits                         # a name in klayers.datasets.DATASETS
    flatten_inputs: true                    # optional: images as flat vectors (default false)
    reconstruct: false                      # optional: targets are the inputs (autoencoders)
    seed: 0                                 # optional: data split/generation and weights
    epochs: 30
    batch_size: 64
    optimizer: adam                         # adam, adamw, sgd, rmsprop, nadam
    learning_rate: 0.003
    loss: sparse_categorical_crossentropy
    metrics: [accuracy]
    target_metric: accuracy                 # a key of evaluate_model's result
    target: 0.95                            # the test-set figure the default set-up reaches
    fine_tune:                              # optional: then fine-tune with LoRA
      dataset: shifted_reverse              # a shifted task the model takes as it is
      quantize: int8                        # optional: model.quantize(mode) first (QLoRA)
      lora_rank: 4
      lora_alpha: 8                         # optional (default the rank: a scale of 1)
      epochs: 8
      learning_rate: 0.01                   # optional (default the set-up's)
      target: 0.95                          # the shifted task's test figure (target_metric)

The target is a floor for scores (accuracy) and a ceiling for errors (loss, mse, mae,
`mse_ratio`: test MSE over the data set's mean-image baseline). Every mistake is a
`TrainConfigError` naming the file, the key and the value. Nothing here imports keras at
module level: the parent process of `klayers train` reads configs without a backend.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from klayers import configs
from klayers.train.datasets import DATASETS, Dataset, load_dataset

if TYPE_CHECKING:
    import keras

# What the training worker writes beside the model (data set, seed), read back by evaluate.
MODEL_METADATA = "model.json"
TRAIN_CONFIGS_DIR = configs.folder("train")
MODEL_NAMES = ("mlp", "cnn", "resnet", "autoencoder", "lstm", "gru", "transformer",
               "transformer_seq2seq")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "nadam")
LOSSES = ("sparse_categorical_crossentropy", "categorical_crossentropy",
          "binary_crossentropy", "mse", "mae")
METRICS = ("accuracy", "sparse_categorical_accuracy", "sparse_top_k_categorical_accuracy",
           "mse", "mae")
# Figures where lower is better; the target is then a ceiling.
ERROR_METRICS = ("loss", "mse", "mae", "mse_ratio")
# Figures evaluate_model adds to Keras's own (greedy_*: encoder-decoder models only).
DERIVED_METRICS = ("mse_ratio", "greedy_accuracy", "greedy_sequence_accuracy")

_REQUIRED = ("model", "dataset", "epochs", "batch_size", "optimizer", "learning_rate", "loss",
             "metrics", "target_metric", "target")
_OPTIONAL = ("description", "model_args", "flatten_inputs", "reconstruct", "seed", "fine_tune")
_FINE_TUNE_REQUIRED = ("dataset", "lora_rank", "epochs", "target")
_FINE_TUNE_OPTIONAL = ("quantize", "lora_alpha", "learning_rate")
# The modes whose quantized Dense and Embedding kernels carry LoRA (QLoRA).
FINE_TUNE_QUANTIZE = ("int8", "int4")
# What the fine-tuning data set must share with the set-up's: the model's shape and task.
_FINE_TUNE_SHARED_INFO = ("vocabulary_size", "sequence_length", "target_length", "num_classes",
                          "per_token", "input_shape")


class TrainConfigError(ValueError):
    """A training set-up that cannot be used, with the file, key and value at fault."""


@dataclass
class FineTuneConfig:
    """The `fine_tune:` section: LoRA fine-tuning of the trained model on a shifted task."""

    dataset: str
    lora_rank: int
    epochs: int
    target: float
    quantize: str | None = None
    lora_alpha: float | None = None
    learning_rate: float | None = None


@dataclass
class TrainConfig:
    """One training set-up, as read from its YAML file (see the module's docstring)."""

    name: str
    model: str
    model_args: dict[str, Any]
    dataset: str
    epochs: int
    batch_size: int
    optimizer: str
    learning_rate: float
    loss: str
    metrics: list[str]
    target_metric: str
    target: float
    description: str = ""
    flatten_inputs: bool = False
    reconstruct: bool = False
    seed: int = 0
    fine_tune: FineTuneConfig | None = None
    path: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        # dataclasses.asdict (results.json, model.json, a worker's job) leaves a mapping.
        if isinstance(self.fine_tune, dict):
            self.fine_tune = FineTuneConfig(**self.fine_tune)

    @property
    def target_is_ceiling(self) -> bool:
        """True when the target metric is an error (lower is better)."""
        return self.target_metric in ERROR_METRICS

    def meets_target(self, figures: dict[str, float]) -> bool:
        """Whether `figures` (as evaluate_model returns) reach the target."""
        return reaches_target(figures[self.target_metric], self.target, self.target_metric)


def reaches_target(value: float, target: float, metric: str) -> bool:
    """The target rule, written once: an error metric (ERROR_METRICS) at most `target`,
    any other at least `target`."""
    return value <= target if metric in ERROR_METRICS else value >= target


def available_configs() -> list[str]:
    """The names of the set-ups in configs/train/."""
    return sorted(path.stem for path in TRAIN_CONFIGS_DIR.glob("*.yaml"))


def load_train_config(name_or_path: str) -> TrainConfig:
    """Reads a set-up by name (configs/train/<name>.yaml) or from a YAML file's path."""
    text = str(name_or_path)
    path = Path(text)
    if not (text.endswith((".yaml", ".yml")) or path.exists()):
        path = TRAIN_CONFIGS_DIR / f"{text}.yaml"
        if not path.exists():
            known = ", ".join(available_configs()) or "none"
            raise TrainConfigError(f"no training set-up named {text!r} (known: {known}); "
                                   "give a name or the path of a YAML file")
    if not path.is_file():
        raise TrainConfigError(f"{path}: no such file")
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        reason = " ".join(str(error).split())
        raise TrainConfigError(f"{path}: cannot read it as YAML: {reason}") from error
    return _parse(raw, path)


def _parse(raw: Any, path: Path) -> TrainConfig:
    def fail(key: str, value: Any, expected: str):
        raise TrainConfigError(f"{path}: key {key!r}: {expected}, received {value!r}")

    def positive_number(key: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not 0 < value < math.inf:
            fail(key, value, "expected a positive number")
        return float(value)

    if not isinstance(raw, dict):
        raise TrainConfigError(f"{path}: expected a mapping of keys to values, received {raw!r}")
    unknown = sorted(set(map(str, raw)) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise TrainConfigError(f"{path}: unknown key {unknown[0]!r}; the keys are "
                               + ", ".join(_REQUIRED + _OPTIONAL))
    missing = [key for key in _REQUIRED if key not in raw]
    if missing:
        raise TrainConfigError(f"{path}: missing key {missing[0]!r}")

    def choice(key: str, options: tuple[str, ...]) -> str:
        value = raw[key]
        if value not in options:
            fail(key, value, "expected one of " + ", ".join(options))
        return value

    def positive_int(key: str) -> int:
        value = raw[key]
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            fail(key, value, "expected a positive integer")
        return value

    def flag(key: str) -> bool:
        value = raw.get(key, False)
        if not isinstance(value, bool):
            fail(key, value, "expected true or false")
        return value

    model = choice("model", MODEL_NAMES)
    dataset = choice("dataset", DATASETS)
    learning_rate = positive_number("learning_rate", raw["learning_rate"])
    metrics = raw["metrics"]
    if not isinstance(metrics, list) or any(m not in METRICS for m in metrics):
        fail("metrics", metrics, "expected a list of " + ", ".join(METRICS))
    target_metric = raw["target_metric"]
    if target_metric not in ("loss", *metrics, *DERIVED_METRICS):
        fail("target_metric", target_metric, "expected loss, " + ", ".join(DERIVED_METRICS)
             + " or one of the file's metrics " + repr(metrics))
    if target_metric.startswith("greedy_") and model != "transformer_seq2seq":
        fail("target_metric", target_metric, "greedy decoding needs model transformer_seq2seq")
    target = raw["target"]
    if isinstance(target, bool) or not isinstance(target, (int, float)) \
            or not math.isfinite(target):
        fail("target", target, "expected a number")
    model_args = raw.get("model_args") or {}
    if not isinstance(model_args, dict) or not all(isinstance(k, str) for k in model_args):
        fail("model_args", model_args, "expected a mapping of argument names to values")
    description = raw.get("description", "")
    if not isinstance(description, str):
        fail("description", description, "expected text")
    seed = raw.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        fail("seed", seed, "expected a non-negative integer")
    reconstruct = flag("reconstruct")
    if target_metric == "mse_ratio" and not reconstruct:
        fail("target_metric", target_metric, "mse_ratio needs reconstruct: true")
    fine_tune = None
    if "fine_tune" in raw:
        fine_tune = _parse_fine_tune(raw["fine_tune"], dataset, fail, positive_number)
    return TrainConfig(
        name=path.stem,
        model=model,
        model_args=dict(model_args),
        dataset=dataset,
        epochs=positive_int("epochs"),
        batch_size=positive_int("batch_size"),
        optimizer=choice("optimizer", OPTIMIZERS),
        learning_rate=float(learning_rate),
        loss=choice("loss", LOSSES),
        metrics=list(metrics),
        target_metric=target_metric,
        target=float(target),
        description=description,
        flatten_inputs=flag("flatten_inputs"),
        reconstruct=reconstruct,
        seed=seed,
        fine_tune=fine_tune,
        path=str(path),
    )


def _parse_fine_tune(section: Any, dataset: str, fail, positive_number) -> FineTuneConfig:
    """The `fine_tune:` mapping; keys are named `fine_tune.<key>` in errors."""
    if not isinstance(section, dict):
        fail("fine_tune", section, "expected a mapping of " + ", ".join(
            _FINE_TUNE_REQUIRED + _FINE_TUNE_OPTIONAL) + " to values")
    unknown = sorted(set(map(str, section)) - set(_FINE_TUNE_REQUIRED) - set(_FINE_TUNE_OPTIONAL))
    if unknown:
        fail(f"fine_tune.{unknown[0]}", section[unknown[0]], "unknown key; the keys are "
             + ", ".join(_FINE_TUNE_REQUIRED + _FINE_TUNE_OPTIONAL))
    missing = [key for key in _FINE_TUNE_REQUIRED if key not in section]
    if missing:
        fail(f"fine_tune.{missing[0]}", None, "missing key")

    def positive_int(key: str) -> int:
        value = section[key]
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            fail(f"fine_tune.{key}", value, "expected a positive integer")
        return value

    shifted = section["dataset"]
    if shifted not in DATASETS:
        fail("fine_tune.dataset", shifted, "expected one of " + ", ".join(DATASETS))
    if shifted == dataset:
        fail("fine_tune.dataset", shifted, "expected a data set other than the set-up's "
             f"dataset ({dataset!r}): the fine-tune is on a task the model has not seen")
    quantize = section.get("quantize")
    if quantize is not None and quantize not in FINE_TUNE_QUANTIZE:
        fail("fine_tune.quantize", quantize, "expected one of " + ", ".join(FINE_TUNE_QUANTIZE)
             + " (or no key: LoRA on the float model)")
    target = section["target"]
    if isinstance(target, bool) or not isinstance(target, (int, float)) \
            or not math.isfinite(target):
        fail("fine_tune.target", target, "expected a number")
    optional = {key: positive_number(f"fine_tune.{key}", section[key])
                for key in ("lora_alpha", "learning_rate") if section.get(key) is not None}
    return FineTuneConfig(dataset=shifted, lora_rank=positive_int("lora_rank"),
                          epochs=positive_int("epochs"), target=float(target),
                          quantize=quantize, **optional)


def check_fine_tune_data(config: TrainConfig, base: Dataset, shifted: Dataset) -> None:
    """Refuses a fine-tuning data set the trained model cannot take as it is: another task,
    or other input shapes, vocabulary or classes (a TrainConfigError naming both)."""
    where = f"{config.path or config.name}: key 'fine_tune.dataset'"
    if shifted.task != base.task:
        raise TrainConfigError(f"{where}: {shifted.name!r} is a {shifted.task} task but the "
                               f"model was trained on {base.name!r}, a {base.task} task")
    for key in _FINE_TUNE_SHARED_INFO:
        if shifted.info.get(key) != base.info.get(key):
            raise TrainConfigError(
                f"{where}: {shifted.name!r} has {key}={shifted.info.get(key)!r} but the model "
                f"was built for {base.name!r}'s {key}={base.info.get(key)!r}; the fine-tuning "
                "data must fit the trained model as it is"
            )


def prepare_dataset(config: TrainConfig, seed: int | None = None,
                    dataset: str | None = None) -> Dataset:
    """Loads the set-up's data set (or `dataset`, overriding it) shaped for its model.

    `seed` defaults to the set-up's. Applies `flatten_inputs` and `reconstruct`, so the
    result fits `compile_model(config, ...)`.
    """
    data = load_dataset(dataset or config.dataset, config.seed if seed is None else seed)
    if config.flatten_inputs:
        data = data.flattened()
    if config.reconstruct:
        data = data.as_reconstruction()
    return data


def builder_arguments(config: TrainConfig, dataset: Dataset) -> dict[str, Any]:
    """The builder's keyword arguments: what it takes of the data set's info, then model_args.

    model_args win over the data set's info, so a file can, say, fix a sequence length.
    """
    from keraslayers.models import MODELS

    parameters = inspect.signature(MODELS[config.model]).parameters
    for key, value in config.model_args.items():
        if key not in parameters:
            raise TrainConfigError(
                f"{config.path or config.name}: key 'model_args': {config.model} takes no "
                f"argument {key!r} (value {value!r}); it takes " + ", ".join(parameters)
            )
    taken = {k: v for k, v in dataset.info.items() if k in parameters}
    return {**taken, **config.model_args}


def compile_model(config: TrainConfig, dataset: Dataset) -> keras.Model:
    """Builds the set-up's model for `dataset` and compiles it with the set-up's training
    settings. `dataset` should come from `prepare_dataset(config, ...)`."""
    import keras

    from keraslayers.models import MODELS

    if config.flatten_inputs and not isinstance(dataset.x_train, dict) \
            and dataset.x_train.ndim != 2:
        raise TrainConfigError(
            f"{config.path or config.name}: the model takes flat inputs (flatten_inputs: true) "
            f"but data set {dataset.name!r} has inputs of shape {dataset.x_train.shape[1:]}; "
            "load it with prepare_dataset"
        )
    if config.reconstruct and dataset.task != "reconstruction":
        raise TrainConfigError(
            f"{config.path or config.name}: the model reconstructs its inputs "
            f"(reconstruct: true) but data set {dataset.name!r} is a {dataset.task} task; "
            "load it with prepare_dataset"
        )
    arguments = builder_arguments(config, dataset)
    try:
        model = MODELS[config.model](**arguments)
    except (TypeError, ValueError) as error:
        raise TrainConfigError(
            f"{config.path or config.name}: cannot build {config.model} with {arguments!r}: "
            f"{error}"
        ) from error
    optimizer = keras.optimizers.get(
        {"class_name": config.optimizer, "config": {"learning_rate": config.learning_rate}}
    )
    model.compile(optimizer=optimizer, loss=config.loss, metrics=list(config.metrics))
    return model


def fine_tune_optimizer(config: TrainConfig) -> Any:
    """The set-up's optimizer, new, at the fine-tune's learning rate (default the set-up's)."""
    import keras

    learning_rate = config.fine_tune.learning_rate or config.learning_rate
    return keras.optimizers.get(
        {"class_name": config.optimizer, "config": {"learning_rate": learning_rate}})


def enable_model_lora(model: keras.Model, rank: int,
                      lora_alpha: float | None = None) -> list[str]:
    """Prepares a trained model for LoRA fine-tuning, as a keras-hub user would; returns the
    paths of the layers that got LoRA.

    keras-hub splits a model into a backbone and a task head: `Backbone.enable_lora(rank)`
    freezes every backbone weight and adapts only the attention query and value projections,
    while the task's head (a classifier's Dense, outside the backbone) keeps training. Here:

    - Transformer blocks and attention layers: their block-level `enable_lora(rank)`
      (keras-hub's targets, query and value; the rest of the block frozen).
    - The head (each layer whose output is a model output): trains. A float head trains in
      full, as in keras-hub; a quantized one (`model.quantize` first, QLoRA) cannot train its
      integer kernel, so it gets LoRA at the same rank, and its bias trains.
    - Every other layer, Dense and Embedding outside blocks included (the token and position
      embeddings, norms): frozen, as keras-hub's backbone is.
    """
    from keraslayers.layers.lora import LoRA, LoRAComposite

    outputs = {id(tensor) for tensor in model.outputs}
    adapted = []
    for layer in model.layers:
        is_head = any(id(node.outputs[0]) in outputs for node in layer._inbound_nodes
                      if node.outputs)
        if isinstance(layer, LoRAComposite):
            layer.enable_lora(rank, lora_alpha=lora_alpha)
            adapted += [f"{layer.name}/{path}" for path in layer.lora_layers]
        elif is_head and isinstance(layer, LoRA) and getattr(layer, "quantization_mode", None):
            layer.enable_lora(rank, lora_alpha=lora_alpha)
            adapted.append(layer.name)
        elif not is_head:
            layer.trainable = False
    return adapted


def greedy_decode(model: keras.Model, inputs: dict[str, np.ndarray],
                  batch_size: int) -> np.ndarray:
    """An encoder-decoder's own output sequence, without teacher forcing.

    Starts from `inputs["target_input"]`'s first token (the start token) and feeds back the
    most probable token one position at a time: position t's prediction depends only on
    positions up to t (causal self-attention), so the later, still-unknown inputs do not
    matter. Returns `(batch, target_length)` token ids.
    """
    target_input = np.zeros_like(inputs["target_input"])
    target_input[:, 0] = inputs["target_input"][:, 0]
    length = target_input.shape[1]
    decoded = np.zeros_like(target_input)
    for position in range(length):
        probabilities = model.predict({**inputs, "target_input": target_input},
                                      batch_size=batch_size, verbose=0)
        decoded[:, position] = probabilities[:, position].argmax(axis=-1)
        if position + 1 < length:
            target_input[:, position + 1] = decoded[:, position]
    return decoded


def evaluate_model(config: TrainConfig, model: keras.Model, dataset: Dataset,
                   batch_size: int | None = None) -> dict[str, float]:
    """The model's test-set figures: Keras's loss and metrics, plus for reconstruction tasks
    `baseline_mse` (predict the mean training image) and `mse_ratio` (test MSE / baseline),
    and for encoder-decoders `greedy_accuracy` and `greedy_sequence_accuracy`: the share of
    tokens, and of whole sequences, right when the model decodes on its own (greedy_decode)
    instead of being fed the true previous tokens."""
    figures = model.evaluate(dataset.x_test, dataset.y_test,
                             batch_size=batch_size or config.batch_size, verbose=0,
                             return_dict=True)
    figures = {name: float(value) for name, value in figures.items()}
    if isinstance(dataset.x_test, dict) and "target_input" in dataset.x_test:
        decoded = greedy_decode(model, dataset.x_test, batch_size or config.batch_size)
        figures["greedy_accuracy"] = float(np.mean(decoded == dataset.y_test))
        figures["greedy_sequence_accuracy"] = float(np.mean(np.all(decoded == dataset.y_test,
                                                                   axis=1)))
    if dataset.task == "reconstruction":
        predictions = model.predict(dataset.x_test, batch_size=batch_size or config.batch_size,
                                    verbose=0)
        mse = float(((predictions - dataset.y_test) ** 2).mean())
        figures["mse"] = mse
        figures["baseline_mse"] = dataset.info["baseline_mse"]
        figures["mse_ratio"] = mse / dataset.info["baseline_mse"]
    return figures

