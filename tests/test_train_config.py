"""klayers.train.setups: shipped set-ups load and build; every mistake names file, key, value."""

import textwrap

import keras
import numpy as np
import pytest

from keraslayers.models import MODELS
from klayers.train import setups as train_config
from klayers.train.datasets import load_dataset
from klayers.train.setups import (
    TrainConfigError,
    available_configs,
    compile_model,
    load_train_config,
    prepare_dataset,
)

GOOD = """\
description: a test set-up
model: mlp
model_args: {hidden_units: [16]}
dataset: digits
flatten_inputs: true
epochs: 2
batch_size: 32
optimizer: adam
learning_rate: 0.01
loss: sparse_categorical_crossentropy
metrics: [accuracy]
target_metric: accuracy
target: 0.5
"""


def write(tmp_path, text, name="setup.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def replace(key, value):
    """GOOD with one key's line replaced (value None: the line removed)."""
    lines = [line for line in GOOD.splitlines() if not line.startswith(f"{key}:")]
    if value is not None:
        lines.append(f"{key}: {value}")
    return "\n".join(lines) + "\n"


def test_every_model_has_a_shipped_config():
    assert set(MODELS) <= set(available_configs())
    for name in available_configs():
        config = load_train_config(name)
        assert config.name == name and config.model in MODELS
        assert config.model == name or config.fine_tune is not None
        assert config.target_metric in ("accuracy", "mse_ratio", "greedy_accuracy")


def test_the_lora_set_up_fine_tunes_the_transformer_on_a_shifted_task():
    config = load_train_config("transformer_lora")
    settings = config.fine_tune
    assert config.model == "transformer" and settings.dataset == "shifted_reverse"
    assert settings.quantize == "int8" and settings.lora_rank == 4
    train_config.check_fine_tune_data(config, prepare_dataset(config),
                                      prepare_dataset(config, dataset=settings.dataset))
    with pytest.raises(TrainConfigError, match="fine_tune.dataset.*sequence_length"):
        train_config.check_fine_tune_data(config, prepare_dataset(config),
                                          prepare_dataset(config, dataset="sort"))


def test_load_by_path_and_defaults(tmp_path):
    config = load_train_config(write(tmp_path, GOOD))
    assert config.name == "setup" and config.model_args == {"hidden_units": [16]}
    assert config.seed == 0 and config.reconstruct is False and config.flatten_inputs is True
    assert config.meets_target({"accuracy": 0.5}) and not config.meets_target({"accuracy": 0.4})


def test_error_targets_are_ceilings():
    config = load_train_config("autoencoder")
    assert config.target_is_ceiling
    assert config.meets_target({"mse_ratio": 0.3}) and not config.meets_target({"mse_ratio": 0.6})


@pytest.mark.parametrize("text, expected", [
    (replace("model", "mlpp"), "key 'model': expected one of mlp, cnn"),
    (replace("dataset", "digitz"), "key 'dataset'"),
    (replace("epochs", 0), "key 'epochs': expected a positive integer, received 0"),
    (replace("batch_size", "many"), "key 'batch_size'"),
    (replace("optimizer", "adagrad"), "key 'optimizer'"),
    (replace("learning_rate", -1), "key 'learning_rate': expected a positive number"),
    (replace("loss", "hinge"), "key 'loss'"),
    (replace("metrics", "accuracy"), "key 'metrics'"),
    (replace("metrics", "[f1]"), "key 'metrics'"),
    (replace("target_metric", "mse"), "key 'target_metric'"),
    (replace("target_metric", "mse_ratio"), "mse_ratio needs reconstruct: true"),
    (replace("target_metric", "greedy_accuracy"), "needs model transformer_seq2seq"),
    (replace("target", "high"), "key 'target'"),
    (replace("model_args", "[1, 2]"), "key 'model_args'"),
    (replace("flatten_inputs", "yes please"), "key 'flatten_inputs': expected true or false"),
    (replace("seed", -3), "key 'seed'"),
    (replace("description", 7), "key 'description'"),
    (replace("colour", "red"), "unknown key 'colour'"),
    (replace("target", None), "missing key 'target'"),
    (replace("fine_tune", "7"), "key 'fine_tune': expected a mapping"),
    (replace("fine_tune", "{dataset: digits, lora_rank: 4, epochs: 1}"),
     "key 'fine_tune.target': missing key"),
    (replace("fine_tune", "{dataset: digits, lora_rank: 4, epochs: 1, target: 1, rank: 2}"),
     "key 'fine_tune.rank': unknown key"),
    (replace("fine_tune", "{dataset: nope, lora_rank: 4, epochs: 1, target: 1}"),
     "key 'fine_tune.dataset': expected one of"),
    (replace("fine_tune", "{dataset: reverse, lora_rank: 0, epochs: 1, target: 1}"),
     "key 'fine_tune.lora_rank': expected a positive integer, received 0"),
    (replace("fine_tune", "{dataset: reverse, lora_rank: 2, epochs: 1.5, target: 1}"),
     "key 'fine_tune.epochs': expected a positive integer"),
    (replace("fine_tune", "{dataset: reverse, lora_rank: 2, epochs: 1, target: x}"),
     "key 'fine_tune.target': expected a number"),
    (replace("fine_tune", "{dataset: reverse, lora_rank: 2, epochs: 1, target: 1, "
                          "quantize: int2}"), "key 'fine_tune.quantize': expected one of int8"),
    (replace("fine_tune", "{dataset: reverse, lora_rank: 2, epochs: 1, target: 1, "
                          "lora_alpha: -1}"), "key 'fine_tune.lora_alpha': expected a positive"),
    (replace("fine_tune", "{dataset: reverse, lora_rank: 2, epochs: 1, target: 1, "
                          "learning_rate: 0}"), "key 'fine_tune.learning_rate': expected a"),
    (replace("fine_tune", "{dataset: digits, lora_rank: 2, epochs: 1, target: 1}"),
     "a data set other than the set-up's dataset ('digits')"),
    ("model: [\n", "cannot read it as YAML"),
    ("- just\n- a list\n", "expected a mapping"),
])
def test_every_mistake_names_file_key_and_value(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(TrainConfigError) as error:
        load_train_config(path)
    message = str(error.value)
    assert expected in message and "setup.yaml" in message and "\n" not in message


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(TrainConfigError, match="no training set-up named 'nope'.*mlp"):
        load_train_config("nope")
    with pytest.raises(TrainConfigError, match="no such file"):
        load_train_config("/does/not/exist.yaml")


def test_unknown_model_argument_is_named_when_building(tmp_path):
    config = load_train_config(write(tmp_path, replace("model_args", "{width: 3}")))
    with pytest.raises(TrainConfigError, match="mlp takes no argument 'width'.*hidden_units"):
        compile_model(config, prepare_dataset(config))


def test_bad_model_argument_value_is_a_config_error(tmp_path):
    config = load_train_config(write(tmp_path, replace("model_args", "{dropout: 1.5}")))
    with pytest.raises(TrainConfigError, match="setup.yaml.*dropout=1.5"):
        compile_model(config, prepare_dataset(config))


def test_data_not_shaped_for_the_model_is_refused(tmp_path):
    config = load_train_config(write(tmp_path, GOOD))
    with pytest.raises(TrainConfigError, match="flat inputs.*prepare_dataset"):
        compile_model(config, load_dataset("digits", 0))
    with pytest.raises(TrainConfigError, match="reconstructs.*prepare_dataset"):
        compile_model(load_train_config("autoencoder"), load_dataset("digits", 0))


def test_compile_model_uses_the_settings_and_the_data(tmp_path):
    config = load_train_config(write(tmp_path, GOOD))
    data = prepare_dataset(config, seed=1)
    model = compile_model(config, data)
    assert model.input_shape == (None, 64) and model.output_shape == (None, 10)
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(0.01)
    model.fit(data.x_train[:64], data.y_train[:64], epochs=1, batch_size=32, verbose=0)
    figures = train_config.evaluate_model(config, model, data)
    assert set(figures) == {"loss", "accuracy"} and 0 <= figures["accuracy"] <= 1


def test_autoencoder_figures_include_the_baseline():
    config = load_train_config("autoencoder")
    data = prepare_dataset(config)
    model = compile_model(config, data)
    figures = train_config.evaluate_model(config, model, data)
    assert figures["baseline_mse"] == data.info["baseline_mse"]
    assert figures["mse_ratio"] == pytest.approx(figures["mse"] / figures["baseline_mse"])
    predictions = model.predict(data.x_test, verbose=0)
    assert figures["mse"] == pytest.approx(float(np.mean((predictions - data.x_test) ** 2)),
                                           rel=1e-5)


def test_dataset_override_keeps_the_models_shape():
    config = load_train_config("mlp")
    assert prepare_dataset(config, dataset="digits").x_test.ndim == 2


def test_greedy_decoding_feeds_back_its_own_tokens():
    config = load_train_config("transformer_seq2seq")
    data = prepare_dataset(config)
    model = compile_model(config, data)
    inputs = {key: value[:8] for key, value in data.x_test.items()}
    decoded = train_config.greedy_decode(model, inputs, batch_size=8)
    assert decoded.shape == inputs["target_input"].shape
    # Fed its own output (shifted behind the start token), the model predicts that output
    # again at every position: each token was chosen from the tokens before it.
    fed_back = np.concatenate([inputs["target_input"][:, :1], decoded[:, :-1]], axis=1)
    again = model.predict({**inputs, "target_input": fed_back}, verbose=0).argmax(axis=-1)
    np.testing.assert_array_equal(again, decoded)
    figures = train_config.evaluate_model(config, model, data)
    assert 0 <= figures["greedy_sequence_accuracy"] <= figures["greedy_accuracy"] <= 1
