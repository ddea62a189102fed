"""Which formulation of the convolutional LSTM's loop is fastest, per backend.

Keras's own ConvLSTM2D ran at most a third of its best backend's speed on torch (predict)
and JAX (train) on this CPU (issue 17). This probe times, interleaved, predict and train
steps (`predict_on_batch`, `train_on_batch` with MSE and SGD, as `klayers bench` times them)
of Keras's layer and of ours with each plan of `recurrent.CONV_RECURRENT_PLANS` forced
(`keraslayers.layers.formulation.forcing("conv_recurrent", ...)`):

- keras: Keras's own way, each step convolves its input and its state, `ops.scan`.
- ahead_*: the input convolution of every step first, as one convolution of `time * batch`
  inputs; then the loop (`scan`: `ops.scan`; `unrolled`: a Python loop when the steps are
  known; `eager`: a Python loop always, with the gates sliced).
- *_taps: the convolutions as one matrix product over the kernel's taps
  (`recurrent.conv_by_taps`), not `ops.conv`.

Run: `KERAS_BACKEND=jax python benchmarks/probes/conv_lstm.py` (2 threads, as the bench runs);
`--quick` for the headline case only.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
from depthwise_conv1d import _set_threads, _steps  # noqa: E402
from timing import interleaved  # noqa: E402

import keraslayers as kl  # noqa: E402
from keraslayers.layers import formulation, recurrent  # noqa: E402

# (layer, config, (time, *spatial, channels), batch): the standard suite's cases.
CASES = [
    ("ConvLSTM2D", {"filters": 32, "kernel_size": 3, "padding": "same"}, (8, 16, 16, 16), 8),
    ("ConvLSTM2D", {"filters": 8, "kernel_size": 3, "padding": "same"}, (4, 8, 8, 4), 32),
    ("ConvLSTM1D", {"filters": 16, "kernel_size": 3, "padding": "same",
                    "return_sequences": True}, (16, 32, 8), 32),
    ("ConvLSTM3D", {"filters": 4, "kernel_size": 3, "padding": "same"}, (4, 6, 6, 6, 2), 8),
]


def _forced(chosen, function):
    def run():
        with formulation.forcing("conv_recurrent", chosen):
            return function()

    return run


def main(quick=False, plans=None):
    _set_threads()
    backend = keras.backend.backend()
    plans = plans or sorted(recurrent.CONV_RECURRENT_PLANS)
    for name, config, shape, batch in CASES[:1] if quick else CASES:
        for mode in ("predict", "train"):
            functions = {"Keras's layer": _steps(getattr(keras.layers, name)(**config), shape,
                                                 batch)[mode == "train"]}
            for chosen in plans:
                step = _steps(getattr(kl, name)(**config), shape, batch)[mode == "train"]
                functions[chosen] = _forced(chosen, step)
            medians = interleaved(functions, rounds=7, repeats=3, warm_up=2)
            baseline = medians["Keras's layer"]
            print(f"{backend} {name}{config} on {shape}, batch {batch}, {mode}:")
            for label, us in medians.items():
                print(f"  {label:20s} {us / 1e3:8.2f} ms  {batch / us * 1e6:9.0f} samples/s"
                      f"  {baseline / us:6.2f}x Keras's")
            sys.stdout.flush()


if __name__ == "__main__":
    chosen = [arg.split("=", 1)[1].split(",") for arg in sys.argv if arg.startswith("--plans=")]
    main(quick="--quick" in sys.argv, plans=chosen[0] if chosen else None)
