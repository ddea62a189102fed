"""keraslayers.models: every builder builds from klayers layers only, learns, and (slow) reaches
its issue-7 target with its shipped training set-up."""

import keras
import numpy as np
import pytest

import keraslayers as kl
from keraslayers import models
from klayers.train.setups import (
    compile_model,
    evaluate_model,
    load_train_config,
    prepare_dataset,
)

# Keras's own plumbing that a model made of klayers layers may contain.
PLUMBING = (keras.layers.InputLayer, keras.Sequential, keras.Model)


def all_layers(layer):
    """The layer and every layer inside it: models' layers, wrapped and wrapping layers."""
    yield layer
    children = []
    if isinstance(layer, keras.Model):
        children = layer.layers
    elif isinstance(layer, kl.Residual):
        children = [layer.layer]
    elif isinstance(layer, kl.Bidirectional):
        children = [layer.forward_layer, layer.backward_layer]
    for child in children:
        yield from all_layers(child)


def slice_of(x, count):
    return {k: v[:count] for k, v in x.items()} if isinstance(x, dict) else x[:count]


def test_registry_names_every_builder():
    assert list(models.MODELS) == ["mlp", "cnn", "resnet", "autoencoder", "lstm", "gru",
                                   "transformer", "transformer_seq2seq"]
    assert all(models.MODELS[name] is getattr(models, name) for name in models.MODELS)


@pytest.mark.parametrize("name", list(models.MODELS))
def test_model_is_made_of_klayers_and_its_loss_falls(name):
    config = load_train_config(name)
    data = prepare_dataset(config)
    model = compile_model(config, data)
    foreign = [type(layer).__name__ for layer in all_layers(model)
               if not type(layer).__module__.startswith("keraslayers.")
               and not isinstance(layer, PLUMBING)]
    assert not foreign
    x, y = slice_of(data.x_train, 256), data.y_train[:256]
    if data.task == "reconstruction":
        expected = (None, *data.x_train.shape[1:])
    else:  # a class distribution per sample, or per step of a sequence task
        expected = (None, *data.y_train.shape[1:], data.info["num_classes"])
    assert model.output_shape == expected
    # Two epochs of 8 steps: the second epoch's mean loss is below the first's. Only the
    # training step is compiled (JAX compiles each new function and shape).
    losses = model.fit(x, y, epochs=2, batch_size=32, verbose=0).history["loss"]
    assert np.all(np.isfinite(losses)) and losses[1] < losses[0]


@pytest.mark.parametrize("builder, arguments, shape", [
    (models.mlp, {"input_shape": (12,), "num_classes": 3, "hidden_units": [8]}, (None, 3)),
    (models.cnn, {"input_shape": (16, 16, 3), "num_classes": 5}, (None, 5)),
    (models.resnet, {"input_shape": (8, 8, 2), "filters": [8, 16, 16]}, (None, 10)),
    (models.autoencoder, {"input_shape": (16, 8, 3), "filters": [4, 4, 4]}, (None, 16, 8, 3)),
    (models.lstm, {"vocabulary_size": 9, "per_token": True, "num_classes": 4,
                   "num_layers": 2}, (None, None, 4)),
    (models.gru, {"input_shape": (None, 3), "num_classes": 5}, (None, 5)),
    (models.transformer, {"vocabulary_size": 9, "sequence_length": 6}, (None, 2)),
    (models.transformer_seq2seq, {"sequence_length": 6, "target_length": 4,
                                  "embedding_dim": 8, "num_heads": 2}, (None, 4, 16)),
])
def test_output_shapes_follow_the_arguments(builder, arguments, shape):
    assert builder(**arguments).output_shape == shape


@pytest.mark.parametrize("builder, arguments, message", [
    (models.mlp, {"input_shape": (8, 8)}, "models.mlp: `input_shape` must be (features,)"),
    (models.mlp, {"hidden_units": [64, 0]}, "`hidden_units` ... [64, 0]"),
    (models.cnn, {"num_classes": 0}, "models.cnn: `num_classes` ... num_classes=0"),
    (models.cnn, {"dropout": 1.0}, "`dropout` must be a number in [0, 1)"),
    (models.resnet, {"input_shape": (8, 8)}, "(height, width, channels)"),
    (models.autoencoder, {"input_shape": (6, 6, 1)}, "divisible by 2**len(filters) = 4"),
    (models.lstm, {}, "give `vocabulary_size`"),
    (models.gru, {"input_shape": (5, None)}, "known number of features"),
    (models.transformer, {"embedding_dim": 10, "num_heads": 4}, "divisible by `num_heads`"),
    (models.transformer_seq2seq, {"target_length": -1}, "`target_length`"),
])
def test_bad_arguments_name_the_model_argument_and_value(builder, arguments, message):
    with pytest.raises(ValueError) as error:
        builder(**arguments)
    assert all(part in str(error.value) for part in message.split(" ... "))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(models.MODELS))
def test_default_setup_reaches_its_target(name):
    config = load_train_config(name)
    keras.utils.set_random_seed(config.seed)
    data = prepare_dataset(config)
    model = compile_model(config, data)
    model.fit(data.x_train, data.y_train, epochs=config.epochs, batch_size=config.batch_size,
              verbose=0)
    figures = evaluate_model(config, model, data)
    assert config.meets_target(figures), (config.target_metric, figures, config.target)
