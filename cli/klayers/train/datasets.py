"""Data sets for `klayers train`, as NumPy arrays, without importing keras.

Offline, always available:

- `digits`: scikit-learn's 8x8 handwritten digits (1,797 images that ship with the package),
  pixels scaled to [0, 1], images `(8, 8, 1)`, 10 classes, a stratified train/test split
  fixed by the seed. `Dataset.flattened()` gives `(64,)` vectors (for the MLP) and
  `Dataset.as_reconstruction()` makes the targets the images (for the autoencoder).
- Generated sequence tasks, the same arrays for the same seed, test sequences never in the
  training set: `adding` (raw float sequences, the adding problem as a decision), `majority`
  (token ids; which token occurs most often), `reverse` (token ids; every position labelled
  with the token at the mirrored position), `shifted_reverse` (the same tokens, each position
  labelled with the token one before the mirrored one: a task near `reverse`, for fine-tuning)
  and `sort` (source and target token ids for an
  encoder-decoder: the source sorted).

With a network (downloaded by `keras.datasets` into its cache on first use): `mnist`,
`fashion_mnist`, `cifar10` (images with a channel axis, scaled to [0, 1]) and `imdb` (review
token ids, padded or cut to 200 tokens). Without a network and without a cached copy they fail
at once with a `DatasetError` rather than hang.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

TASKS = ("classification", "reconstruction", "sequence")
GENERATED = ("adding", "majority", "reverse", "shifted_reverse", "sort")
KERAS_DATASETS = ("mnist", "fashion_mnist", "cifar10", "imdb")
DATASETS = ("digits", *GENERATED, *KERAS_DATASETS)

# keras.datasets downloads from Google Cloud Storage; a short connection attempt tells a
# machine without a network apart before keras would retry a download for minutes.
DOWNLOAD_HOST = ("storage.googleapis.com", 443)
REACHABILITY_TIMEOUT_S = 3.0
# What each keras.datasets loader leaves in the cache folder: with it, no network is needed.
KERAS_CACHE_ENTRIES = {
    "mnist": ("mnist.npz",),
    "fashion_mnist": tuple(
        f"fashion-mnist/{split}-{part}-idx{rank}-ubyte.gz"
        for split in ("train", "t10k") for part, rank in (("labels", 1), ("images", 3))
    ),
    "cifar10": ("cifar-10-batches-py-target",),
    "imdb": ("imdb.npz",),
}
IMDB_VOCABULARY = 10_000
IMDB_LENGTH = 200

# Token ids of the generated token tasks: 0 pads (models mask it), 1 starts a decoder's input.
PAD, START = 0, 1


class DatasetError(ValueError):
    """A data set that cannot be loaded, with a one-line reason."""


@dataclass(frozen=True)
class Dataset:
    """A data set split into train and test, and what a model builder needs to know of it.

    `task` is "classification" (one integer label per sample), "reconstruction" (the targets
    are the inputs) or "sequence" (one integer label per step). `x_*` is an array, or a dict
    of arrays for models with several named inputs (`sort`: "source", "target_input").
    `info` holds keyword arguments for the builders in `keraslayers.models` (`input_shape`,
    `num_classes`, `vocabulary_size`, `sequence_length`, `per_token`, ...) and, for images,
    `baseline_mse`: the test-set mean squared error of predicting the mean training image for
    every image, the figure an autoencoder must beat.
    """

    name: str
    task: str
    x_train: Any
    y_train: np.ndarray
    x_test: Any
    y_test: np.ndarray
    info: dict[str, Any]

    @property
    def num_train(self) -> int:
        return len(self.y_train)

    @property
    def num_test(self) -> int:
        return len(self.y_test)

    def flattened(self) -> Dataset:
        """The same data with each image as one flat vector, for models of flat features."""
        if isinstance(self.x_train, dict):
            raise DatasetError(f"data set {self.name!r} has several inputs; it cannot be flattened")
        features = int(np.prod(self.x_train.shape[1:]))
        return dataclasses.replace(
            self,
            x_train=self.x_train.reshape(len(self.x_train), features),
            x_test=self.x_test.reshape(len(self.x_test), features),
            info={**self.info, "input_shape": (features,)},
        )

    def as_reconstruction(self) -> Dataset:
        """The same images with themselves as targets, for autoencoders."""
        if "baseline_mse" not in self.info:
            raise DatasetError(
                f"data set {self.name!r} is not an image data set; an autoencoder needs images"
            )
        info = {k: v for k, v in self.info.items() if k != "num_classes"}
        return dataclasses.replace(self, task="reconstruction", y_train=self.x_train,
                                   y_test=self.x_test, info=info)


def load_dataset(name: str, seed: int) -> Dataset:
    """Loads the data set `name` (one of `DATASETS`); `seed` fixes the split and generation."""
    if name not in _LOADERS:
        raise DatasetError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DatasetError(f"the seed must be a non-negative int, received {seed!r}")
    return _LOADERS[name](int(seed))


def _with_baseline(info: dict[str, Any], x_train: np.ndarray, x_test: np.ndarray) -> dict:
    mean_image = x_train.mean(axis=0)
    return {**info, "baseline_mse": float(np.mean((x_test - mean_image) ** 2))}


def _digits(seed: int) -> Dataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    # Pixels are counts 0..16 of the original 32x32 bitmap's set bits per 4x4 block.
    images = (digits.images / 16.0).astype("float32")[..., None]
    labels = digits.target.astype("int32")
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=0.2, stratify=labels, random_state=seed
    )
    info = _with_baseline({"input_shape": (8, 8, 1), "num_classes": 10}, x_train, x_test)
    return Dataset("digits", "classification", x_train, y_train, x_test, y_test, info)


def _split_unique(x: np.ndarray, y: Any, num_train: int, num_test: int, name: str):
    """Drops repeated samples (keeping first occurrences, in order), then splits.

    So no test sample also appears in the training set: a model cannot score by memory.
    """
    flat = x.reshape(len(x), -1)
    _, first = np.unique(flat, axis=0, return_index=True)
    keep = np.sort(first)
    if len(keep) < num_train + num_test:
        raise DatasetError(
            f"data set {name!r}: only {len(keep)} distinct samples for {num_train} + {num_test}"
        )
    train, test = keep[:num_train], keep[num_train:num_train + num_test]
    select = (lambda idx: {k: v[idx] for k, v in y.items()}) if isinstance(y, dict) \
        else (lambda idx: y[idx])
    return x[train], select(train), x[test], select(test)


# Generation draws a few more samples than needed, so the unique ones are enough.
_SPARE = 1.05


def _adding(seed: int, num_train: int = 6000, num_test: int = 1000, steps: int = 20):
    """The adding problem (Hochreiter & Schmidhuber, 1997) as a decision.

    Each step has two features: a value drawn uniformly from [0, 1) and a marker, 1 at exactly
    two steps (one in each half) and 0 elsewhere. The label is 1 when the two marked values
    add up to more than 1, else 0, so both classes are equally likely. The model must find
    the markers and carry the first marked value over up to `steps` steps.
    """
    rng = np.random.default_rng(seed)
    count = int((num_train + num_test) * _SPARE)
    values = rng.random((count, steps), dtype=np.float32)
    markers = np.zeros((count, steps), "float32")
    rows = np.arange(count)
    first = rng.integers(0, steps // 2, count)
    second = rng.integers(steps // 2, steps, count)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = np.stack([values, markers], axis=-1)
    y = (values[rows, first] + values[rows, second] > 1.0).astype("int32")
    x_train, y_train, x_test, y_test = _split_unique(x, y, num_train, num_test, "adding")
    info = {"input_shape": (steps, 2), "num_classes": 2, "per_token": False}
    return Dataset("adding", "classification", x_train, y_train, x_test, y_test, info)


def _majority(seed: int, num_train: int = 6000, num_test: int = 1000, steps: int = 16,
              symbols: int = 6):
    """Which token occurs most often in a sequence of `steps` tokens from `symbols` kinds.

    Tokens are ids 1..symbols (0 pads); the label is the majority token's id minus 1. Only
    sequences whose most frequent token is unique are kept, so every label is well defined.
    """
    rng = np.random.default_rng(seed)
    count = int((num_train + num_test) * 1.6)  # about 2/3 of draws have a unique mode
    tokens = rng.integers(1, symbols + 1, (count, steps)).astype("int32")
    counts = np.stack([(tokens == s).sum(axis=1) for s in range(1, symbols + 1)], axis=1)
    top_two = np.sort(counts, axis=1)[:, -2:]
    unique_mode = top_two[:, 1] > top_two[:, 0]
    tokens, labels = tokens[unique_mode], counts[unique_mode].argmax(axis=1).astype("int32")
    x_train, y_train, x_test, y_test = _split_unique(tokens, labels, num_train, num_test,
                                                     "majority")
    info = {"vocabulary_size": symbols + 1, "sequence_length": steps, "num_classes": symbols,
            "per_token": False}
    return Dataset("majority", "classification", x_train, y_train, x_test, y_test, info)


def _reverse(seed: int, num_train: int = 6000, num_test: int = 1000, steps: int = 12,
             symbols: int = 14):
    """Every position labelled with the token at the mirrored position: `y[t] = x[steps-1-t]`.

    Tokens are ids 2..symbols+1 (0 pads, 1 is reserved as the start token); the labels are
    token ids, so `num_classes` is the vocabulary size.
    """
    rng = np.random.default_rng(seed)
    count = int((num_train + num_test) * _SPARE)
    tokens = rng.integers(START + 1, symbols + START + 1, (count, steps)).astype("int32")
    x_train, y_train, x_test, y_test = _split_unique(tokens, tokens[:, ::-1].copy(),
                                                     num_train, num_test, "reverse")
    vocabulary = symbols + START + 1
    info = {"vocabulary_size": vocabulary, "sequence_length": steps, "num_classes": vocabulary,
            "per_token": True}
    return Dataset("reverse", "sequence", x_train, y_train, x_test, y_test, info)


def _shifted_reverse(seed: int, num_train: int = 6000, num_test: int = 1000, steps: int = 12,
                     symbols: int = 14):
    """`reverse` shifted by one position: `y[t] = x[(steps - 2 - t) mod steps]`, the token one
    before the mirrored position (the first token labels the last position).

    Same vocabulary, length and label space as `reverse`, so a model pre-trained on `reverse`
    takes it as it is and only has to attend one position over: the shifted task of the
    LoRA fine-tuning set-up. Its sequences come from a generator of their own (seeded by
    `[seed, 1]`), not the ones `reverse` draws for the same seed.
    """
    rng = np.random.default_rng([seed, 1])
    count = int((num_train + num_test) * _SPARE)
    tokens = rng.integers(START + 1, symbols + START + 1, (count, steps)).astype("int32")
    labels = np.roll(tokens[:, ::-1], -1, axis=1)
    x_train, y_train, x_test, y_test = _split_unique(tokens, labels, num_train, num_test,
                                                     "shifted_reverse")
    vocabulary = symbols + START + 1
    info = {"vocabulary_size": vocabulary, "sequence_length": steps, "num_classes": vocabulary,
            "per_token": True}
    return Dataset("shifted_reverse", "sequence", x_train, y_train, x_test, y_test, info)


def _sort(seed: int, num_train: int = 6000, num_test: int = 1000, steps: int = 10,
          symbols: int = 14):
    """Sequence to sequence: the source tokens in ascending order.

    Inputs are a dict: "source" (tokens 2..symbols+1) and "target_input", the sorted tokens
    shifted right behind the start token 1 (teacher forcing); the labels are the sorted tokens.
    """
    rng = np.random.default_rng(seed)
    count = int((num_train + num_test) * _SPARE)
    source = rng.integers(START + 1, symbols + START + 1, (count, steps)).astype("int32")
    target = np.sort(source, axis=1)
    target_input = np.concatenate([np.full((count, 1), START, "int32"), target[:, :-1]], axis=1)
    src_train, y_train, src_test, y_test = _split_unique(
        source, {"target": target, "target_input": target_input}, num_train, num_test, "sort"
    )
    x_train = {"source": src_train, "target_input": y_train.pop("target_input")}
    x_test = {"source": src_test, "target_input": y_test.pop("target_input")}
    vocabulary = symbols + START + 1
    info = {"vocabulary_size": vocabulary, "sequence_length": steps, "target_length": steps,
            "num_classes": vocabulary, "per_token": True}
    return Dataset("sort", "sequence", x_train, y_train["target"], x_test, y_test["target"],
                   info)


def keras_cache_dir() -> Path:
    """Where keras.datasets keeps its downloads: KERAS_HOME, else ~/.keras, and /tmp/.keras
    when that cannot be written (as keras.utils.get_file decides)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    if not os.access(home, os.W_OK):
        home = "/tmp/.keras"
    return Path(home) / "datasets"


def is_cached(name: str) -> bool:
    """Whether keras.datasets already holds every file of `name`, so it needs no network."""
    return all((keras_cache_dir() / entry).exists() for entry in KERAS_CACHE_ENTRIES[name])


def network_reachable(address: tuple[str, int] = DOWNLOAD_HOST,
                      timeout: float = REACHABILITY_TIMEOUT_S) -> bool:
    """Whether a TCP connection to keras.datasets' download host opens within `timeout`."""
    try:
        with socket.create_connection(address, timeout=timeout):
            return True
    except OSError:
        return False


def _keras_dataset(name: str) -> Callable[[int], Dataset]:
    def load(seed: int) -> Dataset:
        del seed  # keras.datasets' train/test split is fixed
        if not is_cached(name) and not network_reachable():
            host = f"{DOWNLOAD_HOST[0]}:{DOWNLOAD_HOST[1]}"
            raise DatasetError(
                f"data set {name!r} must be downloaded by keras.datasets, but {host} cannot "
                f"be reached (no network?) and there is no copy in {keras_cache_dir()}; "
                "use an offline data set: " + ", ".join(("digits", *GENERATED))
            )
        import keras

        try:
            if name == "imdb":
                (x_train, y_train), (x_test, y_test) = keras.datasets.imdb.load_data(
                    num_words=IMDB_VOCABULARY
                )
            else:
                (x_train, y_train), (x_test, y_test) = getattr(keras.datasets, name).load_data()
        except Exception as error:  # a download that fails half-way, a corrupt cache
            raise DatasetError(f"keras.datasets could not load {name!r}: {error}") from error
        y_train = np.asarray(y_train).reshape(-1).astype("int32")
        y_test = np.asarray(y_test).reshape(-1).astype("int32")
        if name == "imdb":
            x_train, x_test = _pad_tokens(x_train), _pad_tokens(x_test)
            info = {"vocabulary_size": IMDB_VOCABULARY, "sequence_length": IMDB_LENGTH,
                    "num_classes": 2, "per_token": False}
            return Dataset(name, "classification", x_train, y_train, x_test, y_test, info)
        x_train = _images(x_train)
        x_test = _images(x_test)
        info = _with_baseline({"input_shape": x_train.shape[1:], "num_classes": 10},
                              x_train, x_test)
        return Dataset(name, "classification", x_train, y_train, x_test, y_test, info)

    return load


def _images(pixels: np.ndarray) -> np.ndarray:
    """uint8 images, with or without a channel axis, as float32 in [0, 1] with one."""
    images = pixels.astype("float32") / 255.0
    return images[..., None] if images.ndim == 3 else images


def _pad_tokens(sequences) -> np.ndarray:
    """Token-id lists as one int32 array: the last IMDB_LENGTH ids, zeros in front."""
    out = np.zeros((len(sequences), IMDB_LENGTH), "int32")
    for row, ids in enumerate(sequences):
        ids = list(ids)[-IMDB_LENGTH:]
        if ids:
            out[row, -len(ids):] = ids
    return out


_LOADERS: dict[str, Callable[[int], Dataset]] = {
    "digits": _digits,
    "adding": _adding,
    "majority": _majority,
    "reverse": _reverse,
    "shifted_reverse": _shifted_reverse,
    "sort": _sort,
    **{name: _keras_dataset(name) for name in KERAS_DATASETS},
}
