"""Reference image models: an MLP, a CNN, a residual network and a convolutional autoencoder.

Each builder returns an uncompiled `keras.Model` made only of klayers layers (Keras supplies
the `Input`/`Model` plumbing and, inside `Residual`, a `Sequential` container). They are sized
for small images such as scikit-learn's 8x8 digits, so that they train to their targets in
seconds on a CPU; every size is an argument.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

import keraslayers as kl


def _check_shape(model: str, input_shape, rank: int) -> tuple[int, ...]:
    shape = tuple(input_shape)
    if len(shape) != rank or not all(isinstance(d, int) and d > 0 for d in shape):
        expected = "(features,)" if rank == 1 else "(height, width, channels)"
        raise ValueError(
            f"models.{model}: `input_shape` must be {expected} of positive ints, "
            f"received input_shape={input_shape!r}."
        )
    return shape


def _check_positive(model: str, name: str, value) -> None:
    values = value if isinstance(value, (list, tuple)) else (value,)
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                             for v in values):
        raise ValueError(
            f"models.{model}: `{name}` must be a positive int (or a non-empty list of them), "
            f"received {name}={value!r}."
        )


def _check_rate(model: str, name: str, value) -> None:
    if not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(
            f"models.{model}: `{name}` must be a number in [0, 1), received {name}={value!r}."
        )


def mlp(input_shape: Sequence[int] = (64,), num_classes: int = 10,
        hidden_units: Sequence[int] = (128, 64), dropout: float = 0.2) -> keras.Model:
    """A multilayer perceptron classifier: (Dense, BatchNormalization, ReLU, Dropout) blocks.

    Each hidden block computes `dropout(relu(batch_norm(x @ W)))` (the Dense has no bias: the
    normalization's offset replaces it); a softmax Dense gives the class probabilities.

    Args:
        input_shape: `(features,)`, flat inputs (digits: `(64,)`).
        num_classes: number of classes.
        hidden_units: width of each hidden block, in order.
        dropout: dropout rate after each hidden block.

    Input shape:
        `(batch, features)`.

    Output shape:
        `(batch, num_classes)`, probabilities.

    Example:
        >>> from keraslayers import models
        >>> models.mlp(input_shape=(64,), num_classes=10).output_shape
        (None, 10)
    """
    input_shape = _check_shape("mlp", input_shape, 1)
    _check_positive("mlp", "num_classes", num_classes)
    _check_positive("mlp", "hidden_units", list(hidden_units))
    _check_rate("mlp", "dropout", dropout)
    inputs = keras.Input(input_shape, name="features")
    x = inputs
    for i, units in enumerate(hidden_units):
        x = kl.Dense(units, use_bias=False, name=f"dense_{i}")(x)
        x = kl.BatchNormalization(name=f"batch_norm_{i}")(x)
        x = kl.Activation("relu", name=f"relu_{i}")(x)
        x = kl.Dropout(dropout, name=f"dropout_{i}")(x)
    outputs = kl.Dense(num_classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name="mlp")


def cnn(input_shape: Sequence[int] = (8, 8, 1), num_classes: int = 10,
        filters: Sequence[int] = (32, 64), dense_units: int = 64,
        dropout: float = 0.2) -> keras.Model:
    """A convolutional classifier: per stage two 3x3 ReLU convolutions, then 2x2 max pooling.

    After the last stage (which has no pooling), a ReLU convolution whose kernel covers the
    whole remaining feature map acts as a dense layer over the flattened map, so where a
    stroke lies still counts (global pooling would discard it, and on 8x8 digits that costs
    accuracy); global average pooling then only drops the 1x1 spatial axes. Dropout and a
    softmax Dense finish it.

    Args:
        input_shape: `(height, width, channels)`, channels last (digits: `(8, 8, 1)`).
        num_classes: number of classes.
        filters: filters of each stage's convolutions; each stage but the last halves the
            image (rounding up).
        dense_units: units of the dense layer over the last feature map.
        dropout: dropout rate before the classifier.

    Input shape:
        `(batch, height, width, channels)`.

    Output shape:
        `(batch, num_classes)`, probabilities.

    Example:
        >>> from keraslayers import models
        >>> models.cnn(input_shape=(8, 8, 1), num_classes=10).output_shape
        (None, 10)
    """
    input_shape = _check_shape("cnn", input_shape, 3)
    _check_positive("cnn", "num_classes", num_classes)
    _check_positive("cnn", "filters", list(filters))
    _check_positive("cnn", "dense_units", dense_units)
    _check_rate("cnn", "dropout", dropout)
    inputs = keras.Input(input_shape, name="images")
    x = inputs
    height, width = input_shape[:2]
    for stage, channels in enumerate(filters):
        for j in range(2):
            x = kl.Conv2D(channels, 3, padding="same", activation="relu",
                          name=f"conv_{stage}_{j}")(x)
        if stage < len(filters) - 1:
            x = kl.MaxPooling2D(2, padding="same", name=f"pool_{stage}")(x)
            height, width = -(-height // 2), -(-width // 2)
    # (batch, height, width, channels) -> (batch, 1, 1, dense_units) -> (batch, dense_units)
    x = kl.Conv2D(dense_units, (height, width), activation="relu", name="dense_conv")(x)
    x = kl.GlobalAveragePooling2D(name="squeeze")(x)
    x = kl.Dropout(dropout, name="dropout")(x)
    outputs = kl.Dense(num_classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name="cnn")


def _residual_block(width: int, momentum: float, name: str) -> kl.Residual:
    """`relu(x + bn(conv(relu(bn(conv(x))))))`'s inner part, wrapped in `Residual`.

    When `width` differs from the input's channels, `Residual` adds its learned 1x1
    projection of the shortcut (a bias-free Dense over the channel axis).
    """
    branch = keras.Sequential(
        [
            kl.Conv2D(width, 3, padding="same", use_bias=False, name="conv_a"),
            kl.BatchNormalization(momentum=momentum, name="batch_norm_a"),
            kl.Activation("relu", name="relu_a"),
            kl.Conv2D(width, 3, padding="same", use_bias=False, name="conv_b"),
            # Zero-initialised scale: each block starts as the identity, which lets a deeper
            # stack train as fast as a shallow one (Goyal et al., 2017).
            kl.BatchNormalization(momentum=momentum, gamma_initializer="zeros",
                                  name="batch_norm_b"),
        ],
        name=f"{name}_branch",
    )
    return kl.Residual(branch, name=name)


def resnet(input_shape: Sequence[int] = (8, 8, 1), num_classes: int = 10,
           filters: Sequence[int] = (32, 64), blocks_per_stage: int = 1,
           batch_norm_momentum: float = 0.9) -> keras.Model:
    """A small residual network: a convolution stem, then stages of residual blocks.

    A block is `relu(x + BN(conv3x3(relu(BN(conv3x3(x))))))` (`kl.Residual`, with a learned
    projection of `x` when a stage widens the channels); stages after the first start with a
    2x2 max pooling. Global average pooling and a softmax Dense finish it.

    Args:
        input_shape: `(height, width, channels)`, channels last (digits: `(8, 8, 1)`).
        num_classes: number of classes.
        filters: channels of each stage (the stem has the first stage's).
        blocks_per_stage: residual blocks per stage.
        batch_norm_momentum: momentum of the normalizations' moving statistics. The default
            0.9 (Keras's is 0.99) lets them follow the weights on small data sets, where a
            training run has only a few hundred steps.

    Input shape:
        `(batch, height, width, channels)`.

    Output shape:
        `(batch, num_classes)`, probabilities.

    Example:
        >>> from keraslayers import models
        >>> models.resnet(input_shape=(8, 8, 1), num_classes=10).output_shape
        (None, 10)
    """
    input_shape = _check_shape("resnet", input_shape, 3)
    _check_positive("resnet", "num_classes", num_classes)
    _check_positive("resnet", "filters", list(filters))
    _check_positive("resnet", "blocks_per_stage", blocks_per_stage)
    _check_rate("resnet", "batch_norm_momentum", batch_norm_momentum)
    inputs = keras.Input(input_shape, name="images")
    x = kl.Conv2D(filters[0], 3, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = kl.BatchNormalization(momentum=batch_norm_momentum, name="stem_batch_norm")(x)
    x = kl.Activation("relu", name="stem_relu")(x)
    for stage, width in enumerate(filters):
        if stage > 0:
            x = kl.MaxPooling2D(2, padding="same", name=f"pool_{stage}")(x)
        for block in range(blocks_per_stage):
            x = _residual_block(width, batch_norm_momentum, name=f"block_{stage}_{block}")(x)
            x = kl.Activation("relu", name=f"relu_{stage}_{block}")(x)
    x = kl.GlobalAveragePooling2D(name="global_pool")(x)
    outputs = kl.Dense(num_classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name="resnet")


def autoencoder(input_shape: Sequence[int] = (8, 8, 1), filters: Sequence[int] = (32, 16),
                code_channels: int = 8) -> keras.Model:
    """A convolutional autoencoder: strided convolutions down, transposed convolutions up.

    Each encoder stage is a 3x3 ReLU convolution with stride 2 (halving height and width);
    the last one gives the code, `code_channels` channels at `1/2**len(filters)` of the
    image's size (digits: 2x2x8 = 32 numbers for 64 pixels). The decoder mirrors it with
    stride-2 `Conv2DTranspose` layers; a sigmoid 3x3 convolution gives pixels in [0, 1].

    Args:
        input_shape: `(height, width, channels)`, channels last; height and width divisible
            by `2**len(filters)`. Pixel values in [0, 1].
        filters: channels of the encoder's stages before the code (the decoder's in reverse).
        code_channels: channels of the code.

    Input shape:
        `(batch, height, width, channels)`.

    Output shape:
        `(batch, height, width, channels)`, the reconstruction.

    Example:
        >>> from keraslayers import models
        >>> models.autoencoder(input_shape=(8, 8, 1)).output_shape
        (None, 8, 8, 1)
    """
    input_shape = _check_shape("autoencoder", input_shape, 3)
    _check_positive("autoencoder", "filters", list(filters))
    _check_positive("autoencoder", "code_channels", code_channels)
    factor = 2 ** len(filters)
    if input_shape[0] % factor or input_shape[1] % factor:
        raise ValueError(
            f"models.autoencoder: height and width must be divisible by 2**len(filters) = "
            f"{factor}, received input_shape={input_shape!r} with filters={filters!r}."
        )
    inputs = keras.Input(input_shape, name="images")
    x = inputs
    for i, width in enumerate(filters):
        x = kl.Conv2D(width, 3, strides=2, padding="same", activation="relu",
                      name=f"encode_{i}")(x)
    x = kl.Conv2D(code_channels, 1, activation="relu", name="code")(x)
    for i, width in enumerate(reversed(filters)):
        x = kl.Conv2DTranspose(width, 3, strides=2, padding="same", activation="relu",
                               name=f"decode_{i}")(x)
    outputs = kl.Conv2D(input_shape[-1], 3, padding="same", activation="sigmoid",
                        name="reconstruction")(x)
    return keras.Model(inputs, outputs, name="autoencoder")
