"""Every layer with a Keras (or keras-hub) counterpart takes that layer's parameters: the same
names, in the same order, of the same kind, with the same defaults, as explicit parameters
(so positional calls, `inspect.signature` and IDEs see what Keras users see). Extras come
only after Keras's."""

import inspect

import keras
import pytest

import keraslayers as kl

keras_hub = pytest.importorskip("keras_hub")

def _public_layers():
    cells = {name for name in dir(kl) if name.endswith(("Cell", "Cells"))}  # not in __all__
    for name in sorted({*kl.__all__, *cells}):
        ours = getattr(kl, name)
        if not (isinstance(ours, type) and issubclass(ours, keras.layers.Layer)):
            continue
        theirs = getattr(keras.layers, name, None) or getattr(keras_hub.layers, name, None)
        if theirs is not None:
            yield pytest.param(ours, theirs, id=name)


def _parameters(cls):
    return [p for p in inspect.signature(cls.__init__).parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def _described(parameter):
    default = "required" if parameter.default is inspect.Parameter.empty else parameter.default
    return parameter.name, parameter.kind.description, repr(default)


@pytest.mark.parametrize("ours, theirs", list(_public_layers()))
def test_takes_keras_parameters_in_keras_order(ours, theirs):
    expected = [_described(p) for p in _parameters(theirs)]
    received = [_described(p) for p in _parameters(ours)]
    assert received[:len(expected)] == expected
    # Whatever Keras takes through **kwargs (name, dtype, ...), ours takes too.
    assert any(p.kind is p.VAR_KEYWORD
               for p in inspect.signature(ours.__init__).parameters.values())
