"""How much of a klayers-only layer's step is the backend's own floor, per backend.

Issue 17 asks every layer without a Keras counterpart to run within 3x of its best backend.
Some standard cells did not (the run of record lists them): PositionEmbedding,
SinePositionEncoding, RotaryEmbedding, TokenAndPositionEmbedding and Residual. This probe
times, interleaved as `klayers bench` does (`predict_on_batch`, `train_on_batch` with MSE and
SGD), each such case and `keras.layers.Identity` on the same input: a Keras step that
computes nothing and returns as many bytes, the least any layer of that output costs on
that backend (step dispatch; on JAX and TensorFlow also the copy of the output to NumPy,
which torch skips for a broadcast view). `own` is the layer's time above that floor.

Run each backend in turn: `KERAS_BACKEND=jax python benchmarks/probes/klayers_only.py`.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
from depthwise_conv1d import _set_threads, _steps  # noqa: E402
from timing import interleaved  # noqa: E402

import keraslayers as kl  # noqa: E402

# (label, layer factory, input shape, integer input): the standard suite's cases.
CASES = [
    ("PositionEmbedding(64) on 64x128", lambda: kl.PositionEmbedding(64), (64, 128), False),
    ("PositionEmbedding(512) on 512x512", lambda: kl.PositionEmbedding(512), (512, 512), False),
    ("SinePositionEncoding on 64x128", kl.SinePositionEncoding, (64, 128), False),
    ("SinePositionEncoding on 512x512", kl.SinePositionEncoding, (512, 512), False),
    ("RotaryEmbedding on 64x128", kl.RotaryEmbedding, (64, 128), False),
    ("RotaryEmbedding on 512x512", kl.RotaryEmbedding, (512, 512), False),
    ("Residual(Dense(256, relu)) on 256",
     lambda: kl.Residual(kl.Dense(256, activation="relu")), (256,), False),
    ("TokenAndPositionEmbedding(1000, 64, 128) on 64",
     lambda: kl.TokenAndPositionEmbedding(1000, 64, 128), (64,), True),
]
SHAPE_ONLY = ("SinePositionEncoding",)  # no weights, no input gradient: nothing to train


def main():
    _set_threads()
    backend = keras.backend.backend()
    for label, make, shape, integer in CASES:
        for mode in ("predict", "train"):
            if mode == "train" and label.startswith(SHAPE_ONLY):
                continue
            train = mode == "train"
            # The floor returns what the layer returns: for integer token ids, the embedding.
            floor_shape = (*shape, 128) if integer else shape
            functions = {"ours": _steps(make(), shape, 32, integer=integer)[train],
                         "floor": _steps(keras.layers.Identity(), floor_shape, 32)[train]}
            medians = interleaved(functions, rounds=7, repeats=5, warm_up=2)
            ours, floor = medians["ours"] / 1e3, medians["floor"] / 1e3
            print(f"{backend:10s} {label:45s} {mode:7s} ours {ours:8.3f} ms  floor "
                  f"{floor:8.3f} ms  own {ours - floor:8.3f} ms")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
