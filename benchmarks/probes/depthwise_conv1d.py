"""Which formulation of a 1D depthwise (and separable) convolution is fastest, per backend.

Keras's own DepthwiseConv1D and SeparableConv1D ran 20 to 100 times slower on JAX and torch
than on TensorFlow on this CPU (issue 17). This probe times, interleaved, predict and train
steps (`predict_on_batch`, `train_on_batch` with MSE and SGD, as `klayers bench` times them)
of Keras's layer and of ours with each formulation of the depthwise half forced
(`keraslayers.layers.formulation.forcing("depthwise1d", ...)`):

- keras: Keras's own op (`ops.depthwise_conv` / `ops.separable_conv`).
- taps: a sum over the kernel's taps of the padded input scaled per channel, then sliced.
- sliced_taps: the same, each tap's slice taken first, then scaled.
- unit_axis: Keras's 2D depthwise op on `(batch, 1, steps, channels)`.

and, for SeparableConv1D, the pointwise half as a 1x1 `ops.conv` (ours) or an `ops.matmul`
("+matmul").

Run: `KERAS_BACKEND=jax python benchmarks/probes/depthwise_conv1d.py` (2 threads, as the
bench runs); `--quick` for the small cases only.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402
from timing import interleaved  # noqa: E402

import keraslayers as kl  # noqa: E402
from keraslayers.layers import formulation  # noqa: E402

FORMULATIONS = ("keras", "taps", "sliced_taps", "unit_axis")
# (layer, config, (steps, channels), batch)
CASES = [
    ("DepthwiseConv1D", {"kernel_size": 3, "padding": "same"}, (256, 64), 32),
    ("SeparableConv1D", {"filters": 64, "kernel_size": 3, "padding": "same"}, (256, 64), 32),
    ("DepthwiseConv1D", {"kernel_size": 3, "padding": "same"}, (1024, 128), 32),
    ("SeparableConv1D", {"filters": 128, "kernel_size": 3, "padding": "same"}, (1024, 128), 32),
]


class MatmulSeparableConv1D(kl.SeparableConv1D):
    """The pointwise half as a matrix product of the channels (channels-last inputs)."""

    def _pointwise(self, depthwise):
        return ops.matmul(depthwise, self.pointwise_kernel[0])


def _set_threads():
    backend = keras.backend.backend()
    if backend == "torch":
        import torch

        torch.set_num_threads(2)
    elif backend == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(2)
        tf.config.threading.set_inter_op_parallelism_threads(2)


def _steps(layer, shape, batch, integer=False):
    """(predict, train) zero-argument functions on a fresh model around `layer`; `integer`:
    token ids below 1000 as the input."""
    inputs = keras.Input(shape, dtype="int32" if integer else "float32")
    model = keras.Model(inputs, layer(inputs))
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse")
    rng = np.random.default_rng(0)
    x = ops.convert_to_tensor(rng.integers(0, 1000, (batch, *shape), "int32") if integer
                              else rng.standard_normal((batch, *shape), "float32"))
    target = ops.convert_to_tensor(np.zeros((batch, *model.outputs[0].shape[1:]), "float32"))
    return (lambda: model.predict_on_batch(x)), (lambda: model.train_on_batch(x, target))


def _forced(chosen, function):
    def run():
        with formulation.forcing("depthwise1d", chosen):
            return function()

    return run


def main(quick=False):
    _set_threads()
    backend = keras.backend.backend()
    for name, config, shape, batch in CASES[:2] if quick else CASES:
        variants = {"Keras's layer": getattr(keras.layers, name)(**config)}
        for chosen in FORMULATIONS:
            variants[chosen] = getattr(kl, name)(**config)
            if name == "SeparableConv1D" and chosen != "keras":
                variants[f"{chosen}+matmul"] = MatmulSeparableConv1D(**config)
        for mode in ("predict", "train"):
            functions = {}
            for label, layer in variants.items():
                chosen = label.split("+")[0] if label != "Keras's layer" else "keras"
                step = _steps(layer.__class__.from_config(layer.get_config()), shape, batch)
                functions[label] = _forced(chosen, step[mode == "train"])
            medians = interleaved(functions, rounds=7, repeats=5, warm_up=2)
            baseline = medians["Keras's layer"]
            print(f"{backend} {name}{config} on {shape}, batch {batch}, {mode}:")
            for label, us in medians.items():
                print(f"  {label:20s} {us / 1e3:8.2f} ms  {batch / us * 1e6:9.0f} samples/s"
                      f"  {baseline / us:6.2f}x Keras's")
            sys.stdout.flush()


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
