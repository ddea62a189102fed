"""The catalogue and the package agree; every catalogued example meets the contract."""

import ast
import pathlib

import keras
import pytest

import keraslayers as kl
from keraslayers import catalog
from tests.contract import check_layer_contract, random_inputs

PACKAGE = pathlib.Path(kl.__file__).parent
FAMILIES = {"core", "activation", "convolution", "deconvolution", "pooling", "reshaping",
            "recurrent", "normalization", "regularization", "embedding", "attention",
            "transformer", "residual"}


def test_every_public_layer_is_catalogued_once():
    names = [record.name for record in catalog.LAYERS]
    assert len(names) == len(set(names))
    assert sorted(names) == sorted(kl.__all__)
    for record in catalog.LAYERS:
        assert issubclass(getattr(kl, record.name), keras.layers.Layer)
        assert record.family in FAMILIES, record
        assert record.summary and len(record.summary) <= 100, record


def test_every_catalogued_layer_has_its_weight_counts_written_down():
    assert sorted(EXAMPLE_WEIGHT_COUNTS) == sorted(record.name for record in catalog.LAYERS)


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


# (trainable, non-trainable, seed generators) of each catalogued example, counted by hand
# from its config: e.g. SeparableConv2D = depthwise kernel, pointwise kernel, bias; RNN of a
# GRUCell and an LSTMCell = 3 weights and a dropout seed generator per cell; BatchNormalization
# = gamma, beta / moving mean, moving variance.
EXAMPLE_WEIGHT_COUNTS = {
    "Dense": (2, 0, 0),
    "EinsumDense": (2, 0, 0),
    "Activation": (0, 0, 0),
    "ReLU": (0, 0, 0),
    "LeakyReLU": (0, 0, 0),
    "PReLU": (1, 0, 0),
    "ELU": (0, 0, 0),
    "Softmax": (0, 0, 0),
    **dict.fromkeys(["UpSampling1D", "UpSampling2D", "UpSampling3D"], (0, 0, 0)),
    "Conv1D": (2, 0, 0),
    "Conv2D": (2, 0, 0),
    "Conv3D": (2, 0, 0),
    "DepthwiseConv1D": (2, 0, 0),
    "SeparableConv1D": (3, 0, 0),
    "DepthwiseConv2D": (2, 0, 0),
    "SeparableConv2D": (3, 0, 0),
    "Conv1DTranspose": (2, 0, 0),
    "Conv2DTranspose": (2, 0, 0),
    "Conv3DTranspose": (2, 0, 0),
    "MaxPooling1D": (0, 0, 0),
    "MaxPooling2D": (0, 0, 0),
    "MaxPooling3D": (0, 0, 0),
    "AveragePooling1D": (0, 0, 0),
    "AveragePooling2D": (0, 0, 0),
    "AveragePooling3D": (0, 0, 0),
    "GlobalMaxPooling1D": (0, 0, 0),
    "GlobalMaxPooling2D": (0, 0, 0),
    "GlobalMaxPooling3D": (0, 0, 0),
    "GlobalAveragePooling1D": (0, 0, 0),
    "GlobalAveragePooling2D": (0, 0, 0),
    "GlobalAveragePooling3D": (0, 0, 0),
    "SimpleRNN": (3, 0, 1),
    "LSTM": (3, 0, 1),
    "GRU": (3, 0, 1),
    "RNN": (6, 0, 2),
    "Bidirectional": (6, 0, 2),
    **dict.fromkeys(["ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D"], (3, 0, 1)),
    "TimeDistributed": (2, 0, 0),
    **dict.fromkeys([f"Adaptive{kind}Pooling{rank}D" for kind in ("Average", "Max")
                     for rank in (1, 2, 3)], (0, 0, 0)),
    "Dropout": (0, 0, 1),
    **dict.fromkeys(["SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
                     "GaussianNoise", "GaussianDropout", "AlphaDropout"], (0, 0, 1)),
    "GroupNormalization": (2, 0, 0),
    "UnitNormalization": (0, 0, 0),
    "SpectralNormalization": (2, 1, 0),
    "Embedding": (1, 0, 0),
    "ReversibleEmbedding": (1, 0, 0),
    "Masking": (0, 0, 0),
    "LayerNormalization": (2, 0, 0),
    "BatchNormalization": (2, 2, 0),
    "RMSNormalization": (1, 0, 0),
    "Residual": (3, 0, 0),
    "PositionEmbedding": (1, 0, 0),
    "SinePositionEncoding": (0, 0, 0),
    "RotaryEmbedding": (0, 0, 0),
    "AlibiBias": (0, 0, 0),
    "TokenAndPositionEmbedding": (2, 0, 0),
    "Attention": (1, 0, 0),
    "AdditiveAttention": (1, 0, 0),
    "MultiHeadAttention": (8, 0, 0),
    "GroupQueryAttention": (8, 0, 0),
    "TransformerEncoder": (16, 0, 0),
    "TransformerDecoder": (16, 0, 0),
}


def make_example(record: catalog.LayerRecord) -> keras.layers.Layer:
    return getattr(kl, record.name).from_config(dict(record.example_config))


def example_inputs(record: catalog.LayerRecord):
    return random_inputs(record.example_input_shape, record.example_input_dtype)


@pytest.mark.parametrize("record", catalog.LAYERS, ids=lambda r: r.name)
def test_catalogued_example_builds_and_round_trips(record):
    layer = make_example(record)
    outputs = layer(example_inputs(record))
    assert tuple(outputs.shape) == tuple(layer.compute_output_shape(record.example_input_shape))
    trainable, non_trainable, seed_generators = EXAMPLE_WEIGHT_COUNTS[record.name]
    check_layer_contract(
        lambda: make_example(record), record.example_input_shape,
        input_dtype=record.example_input_dtype, input_data=example_inputs(record),
        trainable_weights=trainable, non_trainable_weights=non_trainable,
        seed_generators=seed_generators,
        check_mixed_precision=False,
    )
