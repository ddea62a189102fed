"""How much faster than Keras's LayerNormalization can a layer be on torch, at most?

The bench's small LayerNormalization case (64x256, batch 32, predict) runs Keras's layer and
ours at about the same speed, both well behind `torch.nn.LayerNorm`. Both layers end in one
`torch.nn.functional.layer_norm` call; around it is the Keras step (`predict_on_batch`: the
model call, its checks, the output copied to NumPy), which no layer controls. This probe
times, interleaved:

- keras / ours: a model of Keras's layer and one of ours, as `klayers bench` runs them.
- floor: the same model with `keras.layers.Identity`: a Keras step with no work in it.
- layer_norm: `torch.nn.functional.layer_norm` alone, the one kernel a layer needs.

floor + layer_norm is the fastest a Keras model of any layer normalization can run, so
keras / (floor + layer_norm) is the most any formulation could gain over Keras's layer.

Run: `KERAS_BACKEND=torch python benchmarks/probes/layer_norm_torch.py`.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from timing import interleaved  # noqa: E402

import keraslayers  # noqa: E402

BATCH = 32


def model(layer, shape):
    inputs = keras.Input(shape)
    return keras.Model(inputs, layer(inputs))


def measure(shape):
    """Median milliseconds of each model's predict step and of the kernel alone."""
    x = keras.ops.convert_to_tensor(
        np.random.default_rng(0).standard_normal((BATCH, *shape)).astype("float32"))
    models = {
        "keras": model(keras.layers.LayerNormalization(epsilon=1e-5), shape),
        "ours": model(keraslayers.LayerNormalization(epsilon=1e-5), shape),
        "floor": model(keras.layers.Identity(), shape),
    }
    functions = {name: (lambda m=m: m.predict_on_batch(x)) for name, m in models.items()}
    weight, bias = torch.ones(shape[-1]), torch.zeros(shape[-1])
    functions["layer_norm"] = lambda: torch.nn.functional.layer_norm(
        x, (shape[-1],), weight, bias, 1e-5)
    with torch.no_grad():
        medians = interleaved(functions, rounds=15, repeats=20 if shape[0] < 512 else 2)
    return {name: value / 1e3 for name, value in medians.items()}


def main():
    if keras.backend.backend() != "torch":
        raise SystemExit("this probe measures the torch backend: run it with KERAS_BACKEND=torch")
    torch.set_num_threads(2)
    for shape in ((64, 256), (512, 1024)):
        ms = measure(shape)
        bound = ms["keras"] / (ms["floor"] + ms["layer_norm"])
        print(f"LayerNormalization on {shape[0]}x{shape[1]}, batch {BATCH}, predict (ms): "
              + ", ".join(f"{name} {value:.3f}" for name, value in ms.items()))
        print(f"  ours over Keras's layer {ms['keras'] / ms['ours']:.2f}x; "
              f"the most any layer could reach: {bound:.2f}x")


if __name__ == "__main__":
    main()
