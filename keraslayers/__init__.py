"""klayers: Keras 3 layers written against keras.ops, for TensorFlow, JAX and PyTorch."""

from keraslayers.layers.activations import ELU, LeakyReLU, PReLU, Softmax
from keraslayers.layers.attention import (
    AdditiveAttention,
    Attention,
    GroupQueryAttention,
    MultiHeadAttention,
)
from keraslayers.layers.convolution import (
    Conv1D,
    Conv1DTranspose,
    Conv2D,
    Conv2DTranspose,
    Conv3D,
    Conv3DTranspose,
    DepthwiseConv1D,
    DepthwiseConv2D,
    SeparableConv1D,
    SeparableConv2D,
)
from keraslayers.layers.core import Activation, Dense, EinsumDense, Masking, ReLU
from keraslayers.layers.embedding import (
    AlibiBias,
    Embedding,
    PositionEmbedding,
    ReversibleEmbedding,
    RotaryEmbedding,
    SinePositionEncoding,
    TokenAndPositionEmbedding,
)
from keraslayers.layers.normalization import (
    BatchNormalization,
    GroupNormalization,
    LayerNormalization,
    RMSNormalization,
    SpectralNormalization,
    UnitNormalization,
)
from keraslayers.layers.pooling import (
    AdaptiveAveragePooling1D,
    AdaptiveAveragePooling2D,
    AdaptiveAveragePooling3D,
    AdaptiveMaxPooling1D,
    AdaptiveMaxPooling2D,
    AdaptiveMaxPooling3D,
    AveragePooling1D,
    AveragePooling2D,
    AveragePooling3D,
    GlobalAveragePooling1D,
    GlobalAveragePooling2D,
    GlobalAveragePooling3D,
    GlobalMaxPooling1D,
    GlobalMaxPooling2D,
    GlobalMaxPooling3D,
    MaxPooling1D,
    MaxPooling2D,
    MaxPooling3D,
)
from keraslayers.layers.recurrent import (
    GRU,
    LSTM,
    RNN,
    Bidirectional,
    ConvLSTM1D,
    ConvLSTM2D,
    ConvLSTM3D,
    SimpleRNN,
    TimeDistributed,
)

# Cells are public too, but not in __all__: a cell's call takes (inputs, states), so the
# catalogue's single-input contract cannot run it; tests/test_recurrent.py checks them.
from keraslayers.layers.recurrent import ConvLSTMCell as ConvLSTMCell
from keraslayers.layers.recurrent import GRUCell as GRUCell
from keraslayers.layers.recurrent import LSTMCell as LSTMCell
from keraslayers.layers.recurrent import SimpleRNNCell as SimpleRNNCell
from keraslayers.layers.recurrent import StackedRNNCells as StackedRNNCells
from keraslayers.layers.regularization import (
    AlphaDropout,
    Dropout,
    GaussianDropout,
    GaussianNoise,
    SpatialDropout1D,
    SpatialDropout2D,
    SpatialDropout3D,
)
from keraslayers.layers.reshaping import UpSampling1D, UpSampling2D, UpSampling3D
from keraslayers.layers.residual import Residual
from keraslayers.layers.transformer import TransformerDecoder, TransformerEncoder

__version__ = "0.1.0"

__all__ = [
    "Activation",
    "AlibiBias",
    "AdditiveAttention",
    "Attention",
    "AveragePooling1D",
    "AveragePooling2D",
    "AveragePooling3D",
    "BatchNormalization",
    "Bidirectional",
    "Conv1D",
    "Conv1DTranspose",
    "Conv2D",
    "Conv2DTranspose",
    "Conv3D",
    "Conv3DTranspose",
    "ConvLSTM1D",
    "ConvLSTM2D",
    "ConvLSTM3D",
    "Dense",
    "EinsumDense",
    "DepthwiseConv1D",
    "DepthwiseConv2D",
    "Dropout",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "SpatialDropout3D",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
    "ELU",
    "Embedding",
    "GRU",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "GlobalAveragePooling3D",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
    "GlobalMaxPooling3D",
    "GroupQueryAttention",
    "LSTM",
    "LayerNormalization",
    "LeakyReLU",
    "Masking",
    "MaxPooling1D",
    "MaxPooling2D",
    "MaxPooling3D",
    "AdaptiveAveragePooling1D",
    "AdaptiveAveragePooling2D",
    "AdaptiveAveragePooling3D",
    "AdaptiveMaxPooling1D",
    "AdaptiveMaxPooling2D",
    "AdaptiveMaxPooling3D",
    "MultiHeadAttention",
    "PReLU",
    "PositionEmbedding",
    "RMSNormalization",
    "GroupNormalization",
    "UnitNormalization",
    "SpectralNormalization",
    "RNN",
    "TimeDistributed",
    "ReLU",
    "Residual",
    "RotaryEmbedding",
    "SeparableConv1D",
    "SeparableConv2D",
    "SimpleRNN",
    "SinePositionEncoding",
    "Softmax",
    "TokenAndPositionEmbedding",
    "ReversibleEmbedding",
    "TransformerDecoder",
    "TransformerEncoder",
    "UpSampling1D",
    "UpSampling2D",
    "UpSampling3D",
]
