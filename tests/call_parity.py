"""Parity of two layers' calls that take more than one input or a call option (keras-hub's
layers and ours, Keras's ReversibleEmbedding and ours): same outputs and gradients."""

import keras
import numpy as np

from tests.contract import outputs_and_gradients

TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}


class BoundCall(keras.layers.Layer):
    """`layer(x, *args, **kwargs)` as a one-input layer with the wrapped layer's weights."""

    def __init__(self, layer, *args, output_shape=None, **kwargs):
        super().__init__()
        self.layer = layer
        self.bound_args = args
        self.bound_kwargs = kwargs
        self.bound_output_shape = output_shape
        self.built = True  # the wrapped layer is built already

    def call(self, x, training=None):
        return self.layer(x, *self.bound_args, training=training, **self.bound_kwargs)

    def compute_output_shape(self, input_shape):
        if self.bound_output_shape is not None:
            return self.bound_output_shape
        return tuple(self.layer.compute_output_shape(input_shape))


def assert_same_outputs_and_gradients(ours, theirs, x, *args, output_shape=None,
                                      input_gradient=None, **kwargs):
    """`input_gradient=False` where the outputs do not depend on the input's values."""
    if input_gradient is None:
        input_gradient = np.issubdtype(np.asarray(x).dtype, np.floating)
    results = [outputs_and_gradients(BoundCall(layer, *args, output_shape=output_shape,
                                               **kwargs), x, input_gradient=input_gradient)
               for layer in (ours, theirs)]
    assert len(results[0]) == len(results[1])
    for a, b in zip(*results, strict=True):
        if a.dtype == object:  # no gradient (TF, torch) for a weight the call leaves unused
            assert b.dtype == object and a.item() is None and b.item() is None
        else:
            np.testing.assert_allclose(a, b, **TOLERANCE)
