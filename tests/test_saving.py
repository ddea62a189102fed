"""A `.keras` file written under this backend loads under the next one with the same outputs.

One model holds every catalogued layer. Each backend's process loads its file under the next
backend of tensorflow -> jax -> torch -> tensorflow, so the three processes together save under
every backend and load under every backend, each once (all six pairs took 100 s of JAX's time).
"""

import os
import pathlib
import subprocess
import sys

import keras
import numpy as np

from keraslayers import catalog
from tests.contract import BACKEND, to_numpy
from tests.test_catalog import example_inputs, make_example

ROOT = pathlib.Path(__file__).resolve().parents[1]


def model_of_every_layer() -> keras.Model:
    inputs, outputs = [], []
    for record in catalog.LAYERS:
        tensor = keras.Input(batch_shape=record.example_input_shape,
                             dtype=record.example_input_dtype, name=f"{record.name}_input")
        inputs.append(tensor)
        outputs.append(make_example(record)(tensor))
    return keras.Model(inputs, outputs)


NEXT_BACKEND = {"tensorflow": "jax", "jax": "torch", "torch": "tensorflow"}


def test_every_layer_loads_under_the_next_backend(tmp_path):
    model = model_of_every_layer()
    data = [example_inputs(record) for record in catalog.LAYERS]
    # One training step, so the saved weights are not just their initial values.
    targets = [np.ones(tuple(output.shape), "float32") for output in model.outputs]
    model.compile(optimizer="sgd", loss=["mse"] * len(targets))
    model.train_on_batch(data, targets)
    outputs = [to_numpy(y) for y in keras.tree.flatten(model(data))]
    model.save(tmp_path / "every_layer.keras")
    np.savez(tmp_path / "data.npz",
             **{f"input_{i}": x for i, x in enumerate(data)},
             **{f"output_{i}": y for i, y in enumerate(outputs)})
    backend = NEXT_BACKEND[BACKEND]
    result = subprocess.run(
        [sys.executable, "-m", "tests.cross_backend_loader",
         str(tmp_path / "every_layer.keras"), str(tmp_path / "data.npz")],
        cwd=ROOT, env={**os.environ, "KERAS_BACKEND": backend},
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, f"{backend}:\n{result.stdout}\n{result.stderr[-3000:]}"
    assert f"{backend}: {len(outputs)} outputs" in result.stdout
