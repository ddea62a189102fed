"""Loads a `.keras` file under the backend in KERAS_BACKEND and checks its outputs.

Run by tests/test_saving.py in a fresh process per backend:
`python -m tests.cross_backend_loader MODEL.keras DATA.npz`. DATA holds the inputs
(`input_0`, ...) and the outputs the saving backend computed (`output_0`, ...). Prints the
largest difference and exits 1 when any output differs by more than 1e-4.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keraslayers  # noqa: E402, F401  (registers the layers for loading)


def main(model_path: str, data_path: str) -> int:
    data = np.load(data_path)
    inputs = [data[f"input_{i}"] for i in range(len([k for k in data if k.startswith("input")]))]
    model = keras.saving.load_model(model_path)
    outputs = keras.tree.flatten(model(inputs))
    worst = 0.0
    for i, output in enumerate(outputs):
        expected = data[f"output_{i}"]
        worst = max(worst, float(np.max(np.abs(keras.ops.convert_to_numpy(output) - expected))))
    print(f"{keras.backend.backend()}: {len(outputs)} outputs, max abs difference {worst:.3g}")
    return 0 if worst <= 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
