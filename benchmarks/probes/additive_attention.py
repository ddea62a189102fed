"""How AdditiveAttention's scores are fastest computed, per backend.

The scores `sum_d scale[d] * tanh(query[i, d] + key[j, d])` make a `(batch, Tq, Tv, dim)`
tensor, the layer's whole cost. This probe times, interleaved, predict and train steps
(`predict_on_batch`, `train_on_batch` with MSE and SGD, as `klayers bench` times them; one
tensor attending to itself, as the bench runs it) of Keras's layer and of ours with each
formulation of the scores forced (`formulation.forcing("additive_scores", ...)`):

- keras: Keras's `sum(scale * tanh(query + key), -1)`.
- product: `matmul(tanh(query + key), scale)`, which writes no scaled copy of the tanh.

Run: `KERAS_BACKEND=torch python benchmarks/probes/additive_attention.py` (2 threads, as the
bench runs).
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from depthwise_conv1d import _set_threads  # noqa: E402
from keras import ops  # noqa: E402
from timing import interleaved  # noqa: E402

import keraslayers as kl  # noqa: E402
from keraslayers.layers import formulation  # noqa: E402

CASES = [((32, 64), 32), ((128, 128), 16)]  # ((steps, features), batch), the standard suite's


def _steps(layer, shape, batch):
    inputs = keras.Input(shape)
    model = keras.Model(inputs, layer([inputs, inputs]))
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse")
    x = ops.convert_to_tensor(np.random.default_rng(0).standard_normal((batch, *shape), "float32"))
    target = ops.convert_to_tensor(np.zeros((batch, *shape), "float32"))
    return (lambda: model.predict_on_batch(x)), (lambda: model.train_on_batch(x, target))


def _forced(chosen, function):
    def run():
        with formulation.forcing("additive_scores", chosen):
            return function()

    return run


def main():
    _set_threads()
    backend = keras.backend.backend()
    for shape, batch in CASES:
        for mode in ("predict", "train"):
            functions = {"Keras's layer": _steps(keras.layers.AdditiveAttention(), shape,
                                                 batch)[mode == "train"]}
            for chosen in ("keras", "product"):
                step = _steps(kl.AdditiveAttention(), shape, batch)[mode == "train"]
                functions[chosen] = _forced(chosen, step)
            medians = interleaved(functions, rounds=7, repeats=3, warm_up=2)
            baseline = medians["Keras's layer"]
            print(f"{backend} AdditiveAttention on {shape}, batch {batch}, {mode}:")
            for label, us in medians.items():
                print(f"  {label:16s} {us / 1e3:8.2f} ms  {batch / us * 1e6:9.0f} samples/s"
                      f"  {baseline / us:6.2f}x Keras's")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
