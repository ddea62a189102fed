"""Reference models built only from klayers layers, for `klayers train`.

Every builder takes keyword arguments (the data's shapes, then the model's hyper-parameters,
all with defaults) and returns an uncompiled `keras.Model`. `MODELS` maps each model's name
to its builder.
"""

from __future__ import annotations

from collections.abc import Callable

import keras

from keraslayers.models.sequence import gru, lstm, transformer, transformer_seq2seq
from keraslayers.models.vision import autoencoder, cnn, mlp, resnet

MODELS: dict[str, Callable[..., keras.Model]] = {
    "mlp": mlp,
    "cnn": cnn,
    "resnet": resnet,
    "autoencoder": autoencoder,
    "lstm": lstm,
    "gru": gru,
    "transformer": transformer,
    "transformer_seq2seq": transformer_seq2seq,
}

__all__ = [
    "MODELS",
    "autoencoder",
    "cnn",
    "gru",
    "lstm",
    "mlp",
    "resnet",
    "transformer",
    "transformer_seq2seq",
]
