"""Reference sequence models: bidirectional LSTM and GRU, a Transformer encoder, and an
encoder-decoder Transformer for sequence-to-sequence tasks.

Each builder returns an uncompiled `keras.Model` made only of klayers layers. Inputs are
either token ids (give `vocabulary_size`: an `Embedding` or `TokenAndPositionEmbedding` comes
first) or raw feature sequences (`input_shape=(steps, features)`, recurrent models only).
With `per_token=True` the model labels every step (`(batch, steps, num_classes)`);
otherwise it labels the whole sequence (`(batch, num_classes)`).
"""

from __future__ import annotations

import keras

import keraslayers as kl
from keraslayers.models.vision import _check_positive, _check_rate


def _sequence_inputs(model: str, input_shape, vocabulary_size, sequence_length):
    """The model's `Input`: token ids when `vocabulary_size` is set, else raw features."""
    if vocabulary_size is not None:
        _check_positive(model, "vocabulary_size", vocabulary_size)
        if sequence_length is not None:
            _check_positive(model, "sequence_length", sequence_length)
        return keras.Input((sequence_length,), dtype="int32", name="tokens")
    if input_shape is None:
        raise ValueError(
            f"models.{model}: give `vocabulary_size` (token ids) or `input_shape` "
            "(steps, features) (raw sequences); received neither."
        )
    shape = tuple(input_shape)
    if len(shape) != 2 or not all(d is None or (isinstance(d, int) and d > 0) for d in shape) \
            or shape[1] is None:
        raise ValueError(
            f"models.{model}: `input_shape` must be (steps, features) with a known number of "
            f"features, received input_shape={input_shape!r}."
        )
    return keras.Input(shape, name="sequences")


def _recurrent(model: str, layer_class, input_shape, vocabulary_size, sequence_length,
               num_classes, per_token, units, embedding_dim, num_layers, dropout):
    _check_positive(model, "num_classes", num_classes)
    _check_positive(model, "units", units)
    _check_positive(model, "embedding_dim", embedding_dim)
    _check_positive(model, "num_layers", num_layers)
    _check_rate(model, "dropout", dropout)
    inputs = _sequence_inputs(model, input_shape, vocabulary_size, sequence_length)
    x = inputs
    if vocabulary_size is not None:
        # Token id 0 is padding: the mask makes the recurrent layers skip it.
        x = kl.Embedding(vocabulary_size, embedding_dim, mask_zero=True, name="embedding")(x)
    for i in range(num_layers):
        # Only the last layer of a whole-sequence model collapses the steps.
        return_sequences = per_token or i < num_layers - 1
        x = kl.Bidirectional(
            layer_class(units, return_sequences=return_sequences, name=f"{model}_{i}"),
            name=f"bidirectional_{i}",
        )(x)
    x = kl.Dropout(dropout, name="dropout")(x)
    outputs = kl.Dense(num_classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name=model)


def lstm(input_shape=None, vocabulary_size: int | None = None,
         sequence_length: int | None = None, num_classes: int = 2, per_token: bool = False,
         units: int = 32, embedding_dim: int = 16, num_layers: int = 1,
         dropout: float = 0.0) -> keras.Model:
    """A bidirectional LSTM classifier of whole sequences or of every step.

    `[Embedding ->] Bidirectional(LSTM) x num_layers -> Dropout -> Dense(softmax)`; the
    forward and backward outputs are concatenated.

    Args:
        input_shape: `(steps, features)` for raw sequences (steps may be None).
        vocabulary_size: for token-id inputs, the number of ids (0 is padding, masked).
        sequence_length: steps of token-id inputs (None: any length).
        num_classes: classes per sequence (or per step).
        per_token: label every step instead of the whole sequence.
        units: LSTM units per direction.
        embedding_dim: size of the token embedding.
        num_layers: stacked bidirectional layers.
        dropout: dropout rate before the classifier.

    Input shape:
        `(batch, steps, features)` floats, or `(batch, steps)` token ids.

    Output shape:
        `(batch, num_classes)`, or `(batch, steps, num_classes)` with `per_token`.

    Example:
        >>> from keraslayers import models
        >>> models.lstm(input_shape=(20, 2), num_classes=2).output_shape
        (None, 2)
    """
    return _recurrent("lstm", kl.LSTM, input_shape, vocabulary_size, sequence_length,
                      num_classes, per_token, units, embedding_dim, num_layers, dropout)


def gru(input_shape=None, vocabulary_size: int | None = None,
        sequence_length: int | None = None, num_classes: int = 2, per_token: bool = False,
        units: int = 32, embedding_dim: int = 16, num_layers: int = 1,
        dropout: float = 0.0) -> keras.Model:
    """A bidirectional GRU classifier of whole sequences or of every step.

    `[Embedding ->] Bidirectional(GRU) x num_layers -> Dropout -> Dense(softmax)`; the
    forward and backward outputs are concatenated.

    Args:
        input_shape: `(steps, features)` for raw sequences (steps may be None).
        vocabulary_size: for token-id inputs, the number of ids (0 is padding, masked).
        sequence_length: steps of token-id inputs (None: any length).
        num_classes: classes per sequence (or per step).
        per_token: label every step instead of the whole sequence.
        units: GRU units per direction.
        embedding_dim: size of the token embedding.
        num_layers: stacked bidirectional layers.
        dropout: dropout rate before the classifier.

    Input shape:
        `(batch, steps, features)` floats, or `(batch, steps)` token ids.

    Output shape:
        `(batch, num_classes)`, or `(batch, steps, num_classes)` with `per_token`.

    Example:
        >>> from keraslayers import models
        >>> models.gru(vocabulary_size=10, sequence_length=12, num_classes=8).output_shape
        (None, 8)
    """
    return _recurrent("gru", kl.GRU, input_shape, vocabulary_size, sequence_length,
                      num_classes, per_token, units, embedding_dim, num_layers, dropout)


def _check_transformer(model, vocabulary_size, sequence_length, embedding_dim, num_heads,
                       intermediate_dim, num_layers, dropout):
    _check_positive(model, "vocabulary_size", vocabulary_size)
    _check_positive(model, "sequence_length", sequence_length)
    _check_positive(model, "embedding_dim", embedding_dim)
    _check_positive(model, "num_heads", num_heads)
    _check_positive(model, "intermediate_dim", intermediate_dim)
    _check_positive(model, "num_layers", num_layers)
    _check_rate(model, "dropout", dropout)
    if embedding_dim % num_heads:
        raise ValueError(
            f"models.{model}: `embedding_dim` must be divisible by `num_heads`, received "
            f"embedding_dim={embedding_dim!r} and num_heads={num_heads!r}."
        )


def transformer(vocabulary_size: int = 16, sequence_length: int = 12, num_classes: int = 2,
                per_token: bool = False, embedding_dim: int = 64, num_heads: int = 4,
                intermediate_dim: int = 128, num_layers: int = 2,
                dropout: float = 0.0) -> keras.Model:
    """A Transformer encoder classifier of whole sequences or of every token.

    `TokenAndPositionEmbedding -> TransformerEncoder x num_layers -> Dense(softmax)`, with
    `GlobalAveragePooling1D` over the (unpadded) tokens first when labelling whole sequences.
    The encoders are pre-norm (`normalize_first=True`), which trains stably without warm-up.

    Args:
        vocabulary_size: number of token ids (0 is padding, masked).
        sequence_length: tokens per sequence (the learned position embedding's length).
        num_classes: classes per sequence (or per token).
        per_token: label every token instead of the whole sequence.
        embedding_dim: model width; divisible by `num_heads`.
        num_heads: attention heads.
        intermediate_dim: width of each encoder's feedforward network.
        num_layers: encoder blocks.
        dropout: dropout rate inside the encoders.

    Input shape:
        `(batch, sequence_length)` token ids.

    Output shape:
        `(batch, num_classes)`, or `(batch, sequence_length, num_classes)` with `per_token`.

    Example:
        >>> from keraslayers import models
        >>> models.transformer(vocabulary_size=16, sequence_length=12, num_classes=16,
        ...                    per_token=True).output_shape
        (None, 12, 16)
    """
    _check_transformer("transformer", vocabulary_size, sequence_length, embedding_dim,
                       num_heads, intermediate_dim, num_layers, dropout)
    _check_positive("transformer", "num_classes", num_classes)
    inputs = keras.Input((sequence_length,), dtype="int32", name="tokens")
    x = kl.TokenAndPositionEmbedding(vocabulary_size, sequence_length, embedding_dim,
                                     mask_zero=True, name="embedding")(inputs)
    for i in range(num_layers):
        x = kl.TransformerEncoder(intermediate_dim, num_heads, dropout=dropout,
                                  normalize_first=True, name=f"encoder_{i}")(x)
    x = kl.LayerNormalization(name="final_norm")(x)
    if not per_token:
        x = kl.GlobalAveragePooling1D(name="pool")(x)
    outputs = kl.Dense(num_classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name="transformer")


def transformer_seq2seq(vocabulary_size: int = 16, sequence_length: int = 12,
                        target_length: int | None = None, embedding_dim: int = 64,
                        num_heads: int = 4, intermediate_dim: int = 128, num_layers: int = 1,
                        dropout: float = 0.0) -> keras.Model:
    """An encoder-decoder Transformer that predicts a target sequence from a source one.

    The encoder (`TokenAndPositionEmbedding -> TransformerEncoder x num_layers`) reads the
    source; the decoder (`TokenAndPositionEmbedding -> TransformerDecoder x num_layers`, causal
    self-attention and cross-attention to the encoder's output) reads the target shifted right
    by one (a start token first: teacher forcing) and predicts each next target token. Source
    and target share one vocabulary; id 0 is padding and is masked.

    Args:
        vocabulary_size: number of token ids, shared by source and target.
        sequence_length: source tokens.
        target_length: target tokens (default `sequence_length`).
        embedding_dim: model width; divisible by `num_heads`.
        num_heads: attention heads.
        intermediate_dim: width of each block's feedforward network.
        num_layers: encoder blocks, and as many decoder blocks.
        dropout: dropout rate inside the blocks.

    Input shape:
        A dict: `"source"` `(batch, sequence_length)` and `"target_input"`
        `(batch, target_length)`, token ids.

    Output shape:
        `(batch, target_length, vocabulary_size)`, next-token probabilities.

    Example:
        >>> from keraslayers import models
        >>> models.transformer_seq2seq(vocabulary_size=16, sequence_length=8).output_shape
        (None, 8, 16)
    """
    target_length = sequence_length if target_length is None else target_length
    _check_transformer("transformer_seq2seq", vocabulary_size, sequence_length, embedding_dim,
                       num_heads, intermediate_dim, num_layers, dropout)
    _check_positive("transformer_seq2seq", "target_length", target_length)
    source = keras.Input((sequence_length,), dtype="int32", name="source")
    target_input = keras.Input((target_length,), dtype="int32", name="target_input")
    x = kl.TokenAndPositionEmbedding(vocabulary_size, sequence_length, embedding_dim,
                                     mask_zero=True, name="source_embedding")(source)
    for i in range(num_layers):
        x = kl.TransformerEncoder(intermediate_dim, num_heads, dropout=dropout,
                                  normalize_first=True, name=f"encoder_{i}")(x)
    encoded = kl.LayerNormalization(name="encoder_norm")(x)
    y = kl.TokenAndPositionEmbedding(vocabulary_size, target_length, embedding_dim,
                                     mask_zero=True, name="target_embedding")(target_input)
    for i in range(num_layers):
        y = kl.TransformerDecoder(intermediate_dim, num_heads, dropout=dropout,
                                  normalize_first=True, name=f"decoder_{i}")(y, encoded)
    y = kl.LayerNormalization(name="decoder_norm")(y)
    outputs = kl.Dense(vocabulary_size, activation="softmax", name="next_token")(y)
    return keras.Model({"source": source, "target_input": target_input}, outputs,
                       name="transformer_seq2seq")
