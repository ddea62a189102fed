"""What GPTQ and AWQ calibration buys, Keras 3.15.1's against ours, per backend.

The same model twice (Keras's layers, then klayers' with Keras's weights): token embeddings
whose features are correlated (what GPTQ's error correction exploits, as in a language
model), then two feed-forward blocks (Dense 128 -> 256 gelu -> 128, residual). Each is
quantized by `model.quantize(mode, config=...)` with the same calibration tokens, then run on
held-out tokens; the figure is the output's error against the float model's, relative to its
norm. Beside them, rounding each weight to nearest on our grid (no calibration), and the
wall time of each `model.quantize` call.

Also checks, on Keras's own code, two differences calibration.py's docstring names: whether
Keras's statistic sees any sample (the Hessian updates counted), and per-channel GPTQ
(`group_size=-1`) on a layer of more than 128 inputs.

Run each backend in turn: `KERAS_BACKEND=jax python benchmarks/probes/gptq.py`.
"""

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402
from keras.src.quantizers import gptq  # noqa: E402

import keraslayers as kl  # noqa: E402
from keraslayers.layers import calibration  # noqa: E402

VOCABULARY, WIDTH, HIDDEN, LENGTH = 512, 128, 256, 32


class Block(keras.layers.Layer):
    """x + Dense(WIDTH)(Dense(HIDDEN, gelu)(x))."""

    def __init__(self, layers, **kwargs):
        super().__init__(**kwargs)
        self.up = layers.Dense(HIDDEN, activation="gelu")
        self.down = layers.Dense(WIDTH)

    def call(self, inputs):
        return inputs + self.down(self.up(inputs))


def model_of(layers, weights=None, outliers=False):
    embedding = keras.layers.Embedding(VOCABULARY, WIDTH)
    blocks = [Block(layers), Block(layers)]
    tokens = keras.Input((LENGTH,), dtype="int32")
    x = embedding(tokens)
    for block in blocks:
        x = block(x)
    model = keras.Model(tokens, x)
    if weights is None:
        rng = np.random.default_rng(0)
        # Correlated features: a random table through a random mixing of low effective rank.
        mixing = rng.normal(size=(WIDTH, WIDTH)) * np.exp(-np.arange(WIDTH) / 16)[:, None]
        table = (rng.normal(size=(VOCABULARY, WIDTH)) @ mixing).astype("float32")
        table /= table.std()
        if outliers:  # a few feature channels 20x larger (what AWQ protects)
            table[:, ::32] *= 20.0
        embedding.embeddings.assign(table)
    else:
        model.set_weights(weights)
    return model, {"pre_block_layers": [embedding], "sequential_blocks": blocks}


def config_of(mode, structure, **settings):
    tokens = np.random.default_rng(1).integers(0, VOCABULARY, size=20_000)
    return calibration.CONFIG_CLASSES[mode](
        dataset=[tokens], tokenizer=object(), sequence_length=LENGTH, num_samples=32,
        quantization_layer_structure=structure, **settings)


def relative_error(model, reference, tokens):
    return float(np.linalg.norm(ops.convert_to_numpy(model(tokens)) - reference)
                 / np.linalg.norm(reference))


def rounded_to_nearest(weights, bits, group_size):
    """The float model with each Dense kernel rounded to its grid (ours), no calibration."""
    model, _ = model_of(kl, weights)
    for layer in model._flatten_layers():
        if isinstance(layer, kl.Dense):
            kernel = ops.transpose(layer.kernel)  # (out, in)
            rows = kernel.shape[1]
            group = rows if group_size == -1 else group_size
            pieces = []
            for start in range(0, rows, group):
                piece = kernel[:, start:start + group]
                scale, zero, top = calibration.grid_parameters(piece, bits=bits)
                pieces.append(calibration.from_grid(
                    calibration.to_grid(piece, scale, zero, top), scale, zero))
            layer._kernel.assign(ops.transpose(ops.concatenate(pieces, axis=1)))
    return model


def main():
    keras.utils.set_random_seed(0)
    backend = keras.backend.backend()
    tokens = np.random.default_rng(2).integers(0, VOCABULARY, size=(64, LENGTH))

    updates = []
    keras_update = gptq.GPTQ.update_hessian_with_batch
    gptq.GPTQ.update_hessian_with_batch = lambda self, x: (updates.append(1),
                                                           keras_update(self, x))[1]
    settings = [
        (False, "gptq", dict(weight_bits=4, group_size=128)),
        (False, "gptq", dict(weight_bits=4, group_size=128, activation_order=True)),
        (False, "gptq", dict(weight_bits=3, group_size=64)),
        (False, "awq", dict(group_size=128)),
        (True, "gptq", dict(weight_bits=4, group_size=128)),
        (True, "awq", dict(group_size=128)),
    ]
    print(f"{backend}: output error relative to the float model's (held-out tokens); "
          "quantize() wall time")
    for outliers, mode, setting in settings:
        float_model, _ = model_of(keras.layers, outliers=outliers)
        weights = float_model.get_weights()
        reference = ops.convert_to_numpy(float_model(tokens))
        row = f"  {mode} {setting}{' outlier channels' if outliers else ''}:"
        rtn = rounded_to_nearest(weights, setting.get("weight_bits", 4), setting["group_size"])
        row += f" round-to-nearest {relative_error(rtn, reference, tokens):.4f};"
        for name, layers in (("Keras", keras.layers), ("klayers", kl)):
            updates.clear()
            model, structure = model_of(layers, weights)
            start = time.perf_counter()
            model.quantize(mode, config=config_of(mode, structure, **setting))
            seconds = time.perf_counter() - start
            counted = ""
            if name == "Keras" and mode == "gptq":
                counted = f", Hessian updates {len(updates)}"
            error = relative_error(model, reference, tokens)
            row += f" {name} {error:.4f} ({seconds:.1f} s{counted});"
        print(row)

    # Per-channel GPTQ on Dense(128 -> 256) then Dense(256 -> 128): more than 128 inputs.
    model, structure = model_of(keras.layers)
    try:
        model.quantize("gptq", config=config_of("gptq", structure, weight_bits=4,
                                                 group_size=-1))
        print("  Keras gptq group_size=-1 over 256 inputs: ran")
    except Exception as error:  # noqa: BLE001 - the probe reports what Keras raises
        print(f"  Keras gptq group_size=-1 over 256 inputs: {type(error).__name__}: "
              f"{str(error).splitlines()[0][:160]}")


if __name__ == "__main__":
    main()
