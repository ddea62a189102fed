"""klayers: Keras 3 layers written against keras.ops, for TensorFlow, JAX and PyTorch."""

from keraslayers.layers.convolution import (
    Conv1D,
    Conv1DTranspose,
    Conv2D,
    Conv2DTranspose,
    Conv3D,
    Conv3DTranspose,
    DepthwiseConv2D,
    SeparableConv2D,
)
from keraslayers.layers.core import Activation, Dense, ReLU
from keraslayers.layers.embedding import Embedding
from keraslayers.layers.normalization import (
    BatchNormalization,
    LayerNormalization,
    RMSNormalization,
)
from keraslayers.layers.regularization import Dropout
from keraslayers.layers.residual import Residual

__version__ = "0.1.0"

__all__ = [
    "Activation",
    "BatchNormalization",
    "Conv1D",
    "Conv1DTranspose",
    "Conv2D",
    "Conv2DTranspose",
    "Conv3D",
    "Conv3DTranspose",
    "Dense",
    "DepthwiseConv2D",
    "Dropout",
    "Embedding",
    "LayerNormalization",
    "RMSNormalization",
    "ReLU",
    "Residual",
    "SeparableConv2D",
]
