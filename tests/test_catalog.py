"""The catalogue and the package agree; every catalogued example meets the contract."""

import ast
import pathlib

import keras
import pytest

import keraslayers as kl
from keraslayers import catalog
from tests.contract import check_layer_contract, random_inputs

PACKAGE = pathlib.Path(kl.__file__).parent
FAMILIES = {"core", "convolution", "deconvolution", "pooling", "recurrent", "normalization",
            "regularization", "embedding", "attention", "transformer", "residual"}


def test_every_public_layer_is_catalogued_once():
    names = [record.name for record in catalog.LAYERS]
    assert len(names) == len(set(names))
    assert sorted(names) == sorted(kl.__all__)
    for record in catalog.LAYERS:
        assert issubclass(getattr(kl, record.name), keras.layers.Layer)
        assert record.family in FAMILIES, record
        assert record.summary and len(record.summary) <= 100, record


def test_keras_counterparts_exist():
    for record in catalog.LAYERS:
        if record.keras_name is not None:
            assert hasattr(keras.layers, record.keras_name), record.keras_name


def test_layers_are_registered_for_loading():
    for name in kl.__all__:
        assert keras.saving.get_registered_object(f"keraslayers>{name}") is getattr(kl, name)


def test_library_imports_no_backend():
    """Layers are written against keras.ops only, so they run on every backend."""
    forbidden = {"tensorflow", "jax", "jaxlib", "torch"}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            for module in modules:
                assert module.split(".")[0] not in forbidden, f"{path}: imports {module}"


def make_example(record: catalog.LayerRecord) -> keras.layers.Layer:
    return getattr(kl, record.name).from_config(dict(record.example_config))


def example_inputs(record: catalog.LayerRecord):
    return random_inputs(record.example_input_shape, record.example_input_dtype)


@pytest.mark.parametrize("record", catalog.LAYERS, ids=lambda r: r.name)
def test_catalogued_example_builds_and_round_trips(record):
    layer = make_example(record)
    outputs = layer(example_inputs(record))
    assert tuple(outputs.shape) == tuple(layer.compute_output_shape(record.example_input_shape))
    check_layer_contract(
        lambda: make_example(record), record.example_input_shape,
        input_dtype=record.example_input_dtype, input_data=example_inputs(record),
        trainable_weights=len(layer.trainable_weights),
        non_trainable_weights=len(layer.non_trainable_weights),
        seed_generators=len(layer.non_trainable_variables) - len(layer.non_trainable_weights),
        check_mixed_precision=False,
    )
