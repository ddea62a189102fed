"""The catalogue: one record per layer.

It feeds `klayers list`, the tests (every layer is checked, and saved in one model that every
backend must load) and the benchmarks. It holds plain data only, so reading it is cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class LayerRecord:
    """A layer of the package and a small example of it.

    `example_config` is the layer's config as `from_config` takes it (nested layers in
    Keras's serialised form); `example_input_shape` includes the batch axis.
    """

    name: str
    family: str
    keras_name: str | None
    summary: str
    example_config: dict = field(default_factory=dict)
    example_input_shape: tuple = (2, 8)
    example_input_dtype: str = "float32"


def _nested(class_name: str, config: dict) -> dict:
    """A klayers layer serialised as Keras writes it inside another layer's config."""
    registered = f"keraslayers>{class_name}"
    return {"module": None, "class_name": class_name, "registered_name": registered,
            "config": config}


LAYERS: tuple[LayerRecord, ...] = (
    LayerRecord("Dense", "core", "Dense", "Fully connected: activation(x @ kernel + bias).",
                {"units": 16, "activation": "relu"}, (4, 8)),
    LayerRecord("Activation", "core", "Activation",
                "Elementwise activation by name (relu, gelu, silu, softmax, ...) or callable.",
                {"activation": "gelu"}, (4, 8)),
    LayerRecord("ReLU", "core", "ReLU", "Rectified linear unit with cap, threshold and leak.",
                {"max_value": 6.0, "negative_slope": 0.1}, (4, 8)),
    LayerRecord("Conv1D", "convolution", "Conv1D",
                "1D convolution over time; causal padding, dilation and groups.",
                {"filters": 4, "kernel_size": 3, "padding": "causal", "dilation_rate": 2},
                (2, 8, 3)),
    LayerRecord("Conv2D", "convolution", "Conv2D",
                "2D convolution over images; strides, dilation, groups, both data formats.",
                {"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same",
                 "activation": "relu"}, (2, 8, 8, 3)),
    LayerRecord("Conv3D", "convolution", "Conv3D", "3D convolution over volumes.",
                {"filters": 4, "kernel_size": 2, "groups": 2}, (2, 4, 4, 4, 2)),
    LayerRecord("DepthwiseConv2D", "convolution", "DepthwiseConv2D",
                "Each channel convolved with its own depth_multiplier kernels; no mixing.",
                {"kernel_size": 3, "depth_multiplier": 2, "padding": "same"}, (2, 8, 8, 3)),
    LayerRecord("SeparableConv2D", "convolution", "SeparableConv2D",
                "Depthwise convolution, then a 1x1 convolution mixing channels.",
                {"filters": 4, "kernel_size": 3, "depth_multiplier": 2}, (2, 8, 8, 3)),
    LayerRecord("Conv1DTranspose", "deconvolution", "Conv1DTranspose",
                "Transposed 1D convolution: upsamples a sequence by its strides.",
                {"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same"}, (2, 5, 3)),
    LayerRecord("Conv2DTranspose", "deconvolution", "Conv2DTranspose",
                "Transposed 2D convolution: upsamples images by its strides.",
                {"filters": 4, "kernel_size": 3, "strides": 2, "output_padding": 1},
                (2, 5, 5, 3)),
    LayerRecord("Conv3DTranspose", "deconvolution", "Conv3DTranspose",
                "Transposed 3D convolution: upsamples volumes by its strides.",
                {"filters": 2, "kernel_size": 2, "strides": 2, "padding": "same"},
                (2, 3, 3, 3, 2)),
    LayerRecord("MaxPooling1D", "pooling", "MaxPooling1D",
                "Maximum over windows sliding along the steps axis.",
                {"pool_size": 2, "strides": 1, "padding": "same"}, (2, 7, 3)),
    LayerRecord("MaxPooling2D", "pooling", "MaxPooling2D",
                "Maximum over windows sliding along height and width.",
                {"pool_size": 3, "strides": 2}, (2, 7, 7, 3)),
    LayerRecord("MaxPooling3D", "pooling", "MaxPooling3D",
                "Maximum over windows sliding along depth, height and width.",
                {"pool_size": 2, "padding": "same"}, (2, 3, 4, 4, 2)),
    LayerRecord("AveragePooling1D", "pooling", "AveragePooling1D",
                "Mean over windows along the steps axis; \"same\" excludes the padding.",
                {"pool_size": 3, "strides": 2, "padding": "same"}, (2, 8, 3)),
    LayerRecord("AveragePooling2D", "pooling", "AveragePooling2D",
                "Mean over windows along height and width; \"same\" excludes the padding.",
                {"pool_size": 2, "padding": "same", "data_format": "channels_first"},
                (2, 3, 5, 5)),
    LayerRecord("AveragePooling3D", "pooling", "AveragePooling3D",
                "Mean over windows along depth, height and width.",
                {"pool_size": 2}, (2, 4, 4, 4, 2)),
    LayerRecord("GlobalMaxPooling1D", "pooling", "GlobalMaxPooling1D",
                "Maximum over all steps, per channel.", {}, (2, 6, 4)),
    LayerRecord("GlobalMaxPooling2D", "pooling", "GlobalMaxPooling2D",
                "Maximum over height and width, per channel.", {"keepdims": True},
                (2, 5, 5, 3)),
    LayerRecord("GlobalMaxPooling3D", "pooling", "GlobalMaxPooling3D",
                "Maximum over depth, height and width, per channel.", {}, (2, 3, 3, 3, 2)),
    LayerRecord("GlobalAveragePooling1D", "pooling", "GlobalAveragePooling1D",
                "Mean over all steps, per channel; masked steps are left out.", {}, (2, 6, 4)),
    LayerRecord("GlobalAveragePooling2D", "pooling", "GlobalAveragePooling2D",
                "Mean over height and width, per channel.", {}, (2, 5, 5, 3)),
    LayerRecord("GlobalAveragePooling3D", "pooling", "GlobalAveragePooling3D",
                "Mean over depth, height and width, per channel.", {"keepdims": True},
                (2, 3, 3, 3, 2)),
    LayerRecord("SimpleRNN", "recurrent", "SimpleRNN",
                "Fully connected RNN: h_t = tanh(x_t @ W + h_{t-1} @ U + b).",
                {"units": 8, "return_sequences": True}, (2, 5, 4)),
    LayerRecord("LSTM", "recurrent", "LSTM",
                "Long short-term memory over a sequence; masks, go_backwards, stateful.",
                {"units": 8}, (2, 5, 4)),
    LayerRecord("GRU", "recurrent", "GRU",
                "Gated recurrent unit over a sequence; reset_after True or False.",
                {"units": 8, "reset_after": False, "go_backwards": True}, (2, 5, 4)),
    LayerRecord("RNN", "recurrent", "RNN",
                "Runs any cell, or a stack of cells, over the time axis with ops.scan.",
                {"cell": [_nested("GRUCell", {"units": 8}), _nested("LSTMCell", {"units": 8})],
                 "return_sequences": True}, (2, 5, 4)),
    LayerRecord("Bidirectional", "recurrent", "Bidirectional",
                "A recurrent layer forwards and backwards, outputs merged (concat, sum, ...).",
                {"layer": _nested("LSTM", {"units": 8, "return_sequences": True}),
                 "merge_mode": "concat"}, (2, 5, 4)),
    LayerRecord("Dropout", "regularization", "Dropout",
                "Zeroes a random fraction of inputs in training; identity at inference.",
                {"rate": 0.25, "seed": 1}, (4, 8)),
    LayerRecord("Embedding", "embedding", "Embedding",
                "Integer indices to learned vectors; mask_zero for padding.",
                {"input_dim": 32, "output_dim": 8, "mask_zero": True}, (4, 6), "int32"),
    LayerRecord("LayerNormalization", "normalization", "LayerNormalization",
                "Per-sample normalization over the feature axes, learned scale and offset.",
                {"epsilon": 1e-5}, (4, 6, 8)),
    LayerRecord("BatchNormalization", "normalization", "BatchNormalization",
                "Per-feature normalization over the batch, with moving statistics.",
                {"momentum": 0.9}, (4, 6, 8)),
    LayerRecord("RMSNormalization", "normalization", "RMSNormalization",
                "Divides by the root mean square over the feature axes, learned scale.",
                {}, (4, 6, 8)),
    LayerRecord("ReversibleEmbedding", "embedding", "ReversibleEmbedding",
                "Embedding that also projects vectors back to vocabulary logits (reverse=True).",
                {"input_dim": 32, "output_dim": 8, "mask_zero": True}, (4, 6), "int32"),
    LayerRecord("Residual", "residual", None,
                "x + f(x) around any layer, with a learned projection when f resizes x.",
                {"layer": _nested("Dense", {"units": 12, "activation": "relu"})}, (4, 8)),
    LayerRecord("PositionEmbedding", "embedding", None,
                "A learned vector per position, broadcast to the input's shape.",
                {"sequence_length": 8}, (2, 6, 8)),
    LayerRecord("SinePositionEncoding", "embedding", None,
                "Fixed sinusoidal position encodings (Vaswani et al.), no weights.",
                {"max_wavelength": 10000}, (2, 6, 8)),
    LayerRecord("RotaryEmbedding", "embedding", None,
                "Rotary position embedding (RoPE): rotates feature pairs by position.",
                {"max_wavelength": 10000}, (2, 6, 8)),
    LayerRecord("TokenAndPositionEmbedding", "embedding", None,
                "Token embedding plus learned position embedding; mask_zero for padding.",
                {"vocabulary_size": 32, "sequence_length": 8, "embedding_dim": 8,
                 "mask_zero": True}, (2, 6), "int32"),
    LayerRecord("Attention", "attention", "Attention",
                "Dot-product or concat (Luong) attention; one tensor attends to itself.",
                {"use_scale": True}, (2, 6, 8)),
    LayerRecord("MultiHeadAttention", "attention", "MultiHeadAttention",
                "Multi-head scaled dot-product attention; one tensor attends to itself.",
                {"num_heads": 2, "key_dim": 4}, (2, 6, 8)),
    LayerRecord("GroupQueryAttention", "attention", "GroupQueryAttention",
                "Grouped-query attention: query heads share key and value heads.",
                {"head_dim": 4, "num_query_heads": 4, "num_key_value_heads": 2}, (2, 6, 8)),
    LayerRecord("TransformerEncoder", "transformer", None,
                "Self-attention and feedforward block with residuals, pre- or post-norm.",
                {"intermediate_dim": 16, "num_heads": 2}, (2, 6, 8)),
    LayerRecord("TransformerDecoder", "transformer", None,
                "Causal self-attention, optional cross-attention and feedforward block.",
                {"intermediate_dim": 16, "num_heads": 2, "normalize_first": True}, (2, 6, 8)),
)
