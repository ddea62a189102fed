"""The shared layer-contract checks (GUIDE.md section 2), run for every layer on every backend.

`check_layer_contract` builds a layer from a factory and checks what a Keras user relies on:
symbolic and eager calls agree with `compute_output_shape`; weight counts; a config round
trip; `.keras` save and load; a training step that moves every trainable weight;
`mixed_bfloat16` (and `mixed_float16` where the backend runs it); an XLA-compiled model
that agrees with eager (TensorFlow, JAX); masks; seeded randomness. `check_keras_parity`
compares outputs and gradients with the Keras layer of the same name after copying its
weights.
"""

from __future__ import annotations

import inspect
import os
import tempfile
from collections.abc import Callable

import keras
import numpy as np

BACKEND = keras.backend.backend()
UNSET = object()
TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}


def random_inputs(shape, dtype="float32", seed=0, high=10):
    """Normal floats, or integers in [0, high) for an integer dtype."""
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind in "iu":
        return rng.integers(0, high, size=shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def _dtype(x) -> str:
    return keras.backend.standardize_dtype(x.dtype)


def _is_float(dtype: str) -> bool:
    return dtype.startswith(("float", "bfloat"))


class dtype_policy:
    """Sets Keras's global dtype policy for the `with` block."""

    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        self.previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy(self.name)

    def __exit__(self, *exc):
        keras.config.set_dtype_policy(self.previous)


def check_layer_contract(
    make_layer: Callable[[], keras.layers.Layer],
    input_shape: tuple,
    *,
    input_dtype: str = "float32",
    input_data=None,
    expected_output_shape: tuple | None = None,
    trainable_weights: int = 0,
    non_trainable_weights: int = 0,
    seed_generators: int = 0,
    input_mask=None,
    expected_mask=UNSET,
    random: bool = False,
    check_mixed_precision: bool = True,
) -> None:
    """Runs every contract check for one configuration of a layer.

    `make_layer` returns a fresh, unbuilt layer each call (the same configuration every
    time). `input_shape` includes the batch axis. `expected_mask` (None or an array) is the
    mask the layer must emit for `input_data` and `input_mask`. `random` layers must draw the
    same values from the same seed, new values on each training call, and none at inference.
    """
    x = random_inputs(input_shape, input_dtype) if input_data is None else input_data

    _check_config_round_trip(make_layer)
    _check_symbolic(make_layer, input_shape, input_dtype, expected_output_shape)

    layer = make_layer()
    y = layer(x)
    output_shape = tuple(layer.compute_output_shape(input_shape))
    assert tuple(y.shape) == output_shape, (tuple(y.shape), output_shape)
    if expected_output_shape is not None:
        assert output_shape == tuple(expected_output_shape), output_shape
    if _is_float(_dtype(y)):
        assert _dtype(y) == layer.compute_dtype, (_dtype(y), layer.compute_dtype)
    np.testing.assert_array_equal(to_numpy(layer(x)), to_numpy(y), "inference must be stable")

    assert len(layer.trainable_weights) == trainable_weights, layer.trainable_weights
    assert len(layer.non_trainable_weights) == non_trainable_weights, layer.non_trainable_weights
    state = len(layer.non_trainable_variables) - len(layer.non_trainable_weights)
    assert state == seed_generators, f"{state} seed-generator variables"

    _check_rebuilt_from_config(layer, x, y)
    model = _model_around(layer, input_shape, input_dtype)
    _check_save_and_load(model, x)
    _check_jit_agrees_with_eager(model, x)
    if trainable_weights:
        _check_training_step(model, x)
    if expected_mask is not UNSET:
        mask = layer.compute_mask(keras.ops.convert_to_tensor(x), input_mask)
        if expected_mask is None:
            assert mask is None, mask
        else:
            np.testing.assert_array_equal(to_numpy(mask), np.asarray(expected_mask))
    if random:
        _check_seeded_randomness(make_layer, x)
    if check_mixed_precision:
        for policy in _mixed_policies():
            _check_mixed_precision(make_layer, x, policy)


def _check_config_round_trip(make_layer):
    layer = make_layer()
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config


def _check_symbolic(make_layer, input_shape, input_dtype, expected_output_shape):
    """A symbolic call (unknown batch) gives what compute_output_shape says."""
    layer = make_layer()
    inputs = keras.Input(shape=input_shape[1:], dtype=input_dtype)
    outputs = layer(inputs)
    expected = tuple(layer.compute_output_shape((None, *input_shape[1:])))
    assert tuple(outputs.shape) == expected, (tuple(outputs.shape), expected)
    if expected_output_shape is not None:
        assert expected[1:] == tuple(expected_output_shape)[1:], expected


def _check_rebuilt_from_config(layer, x, y):
    clone = type(layer).from_config(layer.get_config())
    clone(x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(to_numpy(clone(x)), to_numpy(y), **TOLERANCE)


def _model_around(layer, input_shape, input_dtype):
    inputs = keras.Input(batch_shape=input_shape, dtype=input_dtype)
    return keras.Model(inputs, layer(inputs))


def _check_save_and_load(model, x):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(to_numpy(loaded(x)), to_numpy(model(x)), **TOLERANCE)


def _check_jit_agrees_with_eager(model, x):
    """XLA on TensorFlow and JAX agrees with eager calls.

    Not on torch: Keras's torch.compile path is experimental and compiles for tens of seconds
    per model, and without it `predict` would compare eager with eager.
    """
    if BACKEND == "torch":
        return
    model.compile(jit_compile=True)
    compiled = model.predict(x, batch_size=len(x), verbose=0)
    np.testing.assert_allclose(compiled, to_numpy(model(x)), rtol=1e-4, atol=1e-5)


def _check_training_step(model, x):
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mean_squared_error")
    before = [to_numpy(w).copy() for w in model.trainable_weights]
    target = random_inputs(tuple(model.outputs[0].shape), "float32", seed=1)
    model.train_on_batch(x, target)
    for weight, old in zip(model.trainable_weights, before, strict=True):
        assert np.any(to_numpy(weight) != old), f"{weight.path} did not move in a training step"


def _check_seeded_randomness(make_layer, x):
    first, second = make_layer(), make_layer()
    a = to_numpy(first(x, training=True))
    np.testing.assert_array_equal(a, to_numpy(second(x, training=True)), "same seed, same draw")
    assert np.any(a != to_numpy(first(x, training=True))), "each training call draws anew"


def _mixed_policies():
    # Keras does not run float16 matrix products on the torch CPU backend.
    return ["mixed_bfloat16"] if BACKEND == "torch" else ["mixed_bfloat16", "mixed_float16"]


def _check_mixed_precision(make_layer, x, policy):
    """Computes in the 16-bit type, keeps float32 variables."""
    with dtype_policy(policy):
        layer = make_layer()
    y = layer(x)
    compute = keras.DTypePolicy(policy).compute_dtype
    for output in keras.tree.flatten(y):
        if _is_float(_dtype(output)):
            assert _dtype(output) == compute, (policy, _dtype(output))
    for weight in layer.weights:
        assert _dtype(weight) == "float32", (policy, weight.path, _dtype(weight))


def check_keras_parity(
    ours, theirs, x, *, training=False, input_gradient=None, tolerance=TOLERANCE
):
    """Same weights (names, shapes, order), outputs and gradients as the Keras layer.

    The Keras layer's weights are copied into ours; the gradients are those of
    `sum(outputs * c)` for a fixed random `c`, with respect to every trainable weight and to
    the input (by default when it is a float tensor; `input_gradient=False` for layers that
    read a float input as indices).
    """
    theirs(x)
    ours(x)
    assert [(w.name, tuple(w.shape)) for w in ours.weights] == [
        (w.name, tuple(w.shape)) for w in theirs.weights
    ]
    ours.set_weights(theirs.get_weights())
    our_results = outputs_and_gradients(ours, x, training, input_gradient)
    their_results = outputs_and_gradients(theirs, x, training, input_gradient)
    assert len(our_results) == len(their_results)
    for a, b in zip(our_results, their_results, strict=True):
        np.testing.assert_allclose(a, b, **tolerance)


def outputs_and_gradients(layer, x, training=False, input_gradient=None) -> list[np.ndarray]:
    """[outputs, d loss/d input (if asked), d loss/d each trainable weight]."""
    cotangent = random_inputs(tuple(layer.compute_output_shape(x.shape)), "float32", seed=7)
    differentiate_input = _is_float(str(x.dtype)) if input_gradient is None else input_gradient
    results = _GRADIENTS[BACKEND](layer, x, cotangent, training, differentiate_input)
    return [to_numpy(r) for r in results]


def _tensorflow_gradients(layer, x, cotangent, training, differentiate_input):
    import tensorflow as tf

    x = tf.constant(x)
    with tf.GradientTape() as tape:
        if differentiate_input:
            tape.watch(x)
        y = layer(x, training=training)
        loss = tf.reduce_sum(tf.cast(y, "float32") * cotangent)
    sources = ([x] if differentiate_input else []) + list(layer.trainable_variables)
    return [y, *tape.gradient(loss, sources)]


def _jax_gradients(layer, x, cotangent, training, differentiate_input):
    import jax
    import jax.numpy as jnp

    trainable = [v.value for v in layer.trainable_variables]
    non_trainable = [v.value for v in layer.non_trainable_variables]

    # stateless_call hands its keywords straight to `call`.
    takes_training = "training" in inspect.signature(layer.call).parameters
    kwargs = {"training": training} if takes_training else {}

    def loss(inputs, weights):
        y, _ = layer.stateless_call(weights, non_trainable, inputs, **kwargs)
        return jnp.sum(y.astype("float32") * cotangent), y

    argnums = (0, 1) if differentiate_input else 1
    (_, y), grads = jax.value_and_grad(loss, argnums=argnums, has_aux=True)(x, trainable)
    if differentiate_input:
        return [y, grads[0], *grads[1]]
    return [y, *grads]


def _torch_gradients(layer, x, cotangent, training, differentiate_input):
    import torch

    x = torch.tensor(x, requires_grad=differentiate_input)
    for variable in layer.trainable_variables:
        variable.value.grad = None
    y = layer(x, training=training)
    (y.float() * torch.tensor(cotangent)).sum().backward()
    grads = [v.value.grad for v in layer.trainable_variables]
    return [y.detach(), *([x.grad] if differentiate_input else []), *grads]


_GRADIENTS = {
    "tensorflow": _tensorflow_gradients,
    "jax": _jax_gradients,
    "torch": _torch_gradients,
}
