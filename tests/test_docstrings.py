"""Every docstring example in keraslayers runs and prints what it says (on one backend).

The examples are written to print the same on every backend (`tuple(y.shape)`, NumPy
values), so one backend's run checks them; TensorFlow's test process is the fastest.
"""

import doctest
import importlib
import pkgutil

import keras
import pytest

import keraslayers

MODULES = sorted(info.name for info in pkgutil.walk_packages(keraslayers.__path__, "keraslayers."))


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="the examples print the same everywhere; one backend runs them")
@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    results = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert results.failed == 0, f"{results.failed} of {results.attempted} examples failed in {name}"


def test_every_layer_has_an_example():
    finder = doctest.DocTestFinder()
    for name in keraslayers.__all__:
        layer = getattr(keraslayers, name)
        examples = [test for test in finder.find(layer, name) if test.name == name]
        assert examples and examples[0].examples, f"{name} has no docstring example"
