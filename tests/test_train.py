"""`klayers train` and `klayers evaluate`: errors, the worker, resume, several backends, devices.

The worker tests train a tiny MLP on the digits (two epochs of 12 steps) inside the test
process, on its backend. The tests that need other backends or other device counts start
`python -m klayers` subprocesses; each runs in one backend's test process only (spread over
the three so that none of them carries all the cost).
"""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from click.testing import CliRunner

import keraslayers  # noqa: F401  (registers our layers, so saved models load here)
from klayers.main import cli
from klayers.train import run as train
from klayers.train.setups import load_train_config
from klayers.train.worker import fit as train_worker

BACKEND = os.environ.get("KERAS_BACKEND", "tensorflow")
TINY = """
    model: mlp
    model_args: {hidden_units: [32], dropout: 0.1}
    dataset: digits
    flatten_inputs: true
    epochs: 2
    batch_size: 128
    optimizer: adam
    learning_rate: 0.01
    loss: sparse_categorical_crossentropy
    metrics: [accuracy]
    target_metric: accuracy
    target: 0.8
"""


def only_in(backend):
    return pytest.mark.skipif(BACKEND != backend,
                              reason=f"starts its own subprocesses; runs in the {backend} "
                                     "test process only")


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(textwrap.dedent(TINY))
    return str(path)


def invoke(*args):
    result = CliRunner().invoke(cli, [str(arg) for arg in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def klayers(*args, timeout=600):
    """`klayers ARGS` in a subprocess: the real command, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "klayers", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, "COLUMNS": "200"})




# Errors: one line, a non-zero exit code, nothing written.


@pytest.mark.parametrize("args, message", [
    (["no_such_model"], "no training set-up named 'no_such_model'"),
    (["TINY", "--backend", "theano"], "unknown backend 'theano'"),
    (["TINY", "--epochs", "0"], "--epochs must be a positive integer, received 0"),
    (["TINY", "--batch-size", "-2"], "--batch-size must be a positive integer, received -2"),
    (["TINY", "--dataset", "nope"], "unknown data set 'nope'"),
    (["TINY", "--backend", "torch,jax", "--distribute", "data-parallel"],
     "--distribute data-parallel runs on the jax backend only (keras.distribution); "
     "not on torch"),
    (["TINY", "--distribute", "model-parallel"], "unknown --distribute 'model-parallel'"),
    (["TINY", "--devices", "2"], "--devices needs --distribute data-parallel"),
    (["TINY", "--backend", "jax", "--distribute", "data-parallel", "--devices", "3"],
     "--batch-size 128 does not split evenly across 3 devices"),
    (["TINY", "--resume"], "no run of 'tiny' under runs/"),
])
@pytest.mark.once
def test_bad_input_is_a_one_line_error_before_anything_starts(tiny, tmp_path, args, message):
    output = tmp_path / "run"
    result = invoke("train", *[tiny if arg == "TINY" else arg for arg in args],
                    *(["--output", output] if "--resume" not in args else []))
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], lines
    assert not output.exists()


@pytest.mark.once
def test_an_output_folder_with_another_run_needs_resume(tiny, tmp_path):
    output = tmp_path / "run"
    output.mkdir()
    (output / "results.json").write_text("{}")
    result = invoke("train", tiny, "--output", output)
    assert result.exit_code != 0
    assert result.output.strip() == (f"Error: --output {output} holds another run; continue "
                                     "it with --resume or choose another folder")
    assert [path.name for path in output.iterdir()] == ["results.json"]


@pytest.mark.once
def test_resume_refuses_other_settings_and_other_runs(tiny, tmp_path):
    output = tmp_path / "run"
    output.mkdir()
    config = dataclasses.asdict(load_train_config(tiny))
    document = {"run": {"config": config, "seed": 0, "batch_size": 128, "dataset": "digits",
                        "distribute": None, "devices": None, "backends": ["jax"]},
                "environment": {}, "results": [{"backend": "jax", "epochs_done": 2}]}
    (output / "results.json").write_text(json.dumps(document))
    result = invoke("train", tiny, "--output", output, "--resume", "--seed", "3")
    assert result.output.strip() == (f"Error: --seed 3 differs from the run's (0) in {output}; "
                                     "a resumed run keeps its settings")
    result = invoke("train", tiny, "--output", output, "--resume", "--epochs", "1")
    assert "has trained 2 epochs already" in result.output
    result = invoke("train", "mlp", "--output", output, "--resume")
    assert result.output.strip() == f"Error: --resume: {output} holds a run of 'tiny', not 'mlp'"
    assert result.exit_code != 0


@only_in("jax")
@pytest.mark.once
def test_a_data_set_the_model_cannot_take_fails_in_one_line_and_writes_nothing(tmp_path):
    # The worker loads the data before it imports keras; a data set of several inputs cannot
    # be flattened for the MLP. The worker's error ends the command, before any file.
    output = tmp_path / "run"
    completed = klayers("train", "mlp", "--dataset", "sort", "--backend", "jax,torch",
                        "--output", output, timeout=120)
    assert completed.returncode == 1
    assert completed.stderr.strip().splitlines() == [
        "Error: jax: data set 'sort' has several inputs; it cannot be flattened"]
    assert not output.exists()


@pytest.mark.once
def test_evaluate_needs_the_record_beside_the_model(tiny, tmp_path):
    model = tmp_path / "model.keras"
    assert invoke("evaluate", model).output.strip() == f"Error: {model}: no such file"
    model.write_bytes(b"not a model")
    result = invoke("evaluate", model)
    assert result.exit_code != 0
    assert result.output.strip().startswith(f"Error: {tmp_path / 'model.json'} is missing")
    config = dataclasses.asdict(load_train_config(tiny))
    (tmp_path / "model.json").write_text(json.dumps({"config": config, "seed": 0}))
    result = invoke("evaluate", model, "--threads", "0")
    assert result.exit_code != 0
    assert result.output.strip() == "Error: --threads must be a positive integer, received 0"


# The worker, in this test process, on its backend


def worker_job(config, output, epochs, resume=False):
    return {"mode": "train", "config": {**config, "epochs": epochs}, "seed": 0,
            "output": str(output), "resume": resume, "threads": None}


def run_job(job):
    events = []
    train_worker.train(job, events.append)
    return events


def weights(path):
    return keras.saving.load_model(path).get_weights()


def test_worker_trains_checkpoints_and_a_resume_reaches_the_same_state(tiny, tmp_path,
                                                                       monkeypatch):
    config = dataclasses.asdict(load_train_config(tiny))
    straight = tmp_path / "straight"
    events = run_job(worker_job(config, straight, epochs=2))
    kinds = [event["event"] for event in events]
    assert kinds[0] == "ready" and kinds[-1] == "done" and kinds.count("epoch") == 2
    assert "batch" in kinds
    done = events[-1]
    history = done["history"]
    assert [row["epoch"] for row in history] == [1, 2]
    assert history[1]["loss"] < history[0]["loss"]
    assert done["test"]["accuracy"] > 0.5  # ten classes: chance is 0.1
    assert done["time_to_first_step_s"] > 0 and all(t > 0 for t in done["epoch_times_s"])
    assert sorted(path.name for path in straight.iterdir()) == [
        "checkpoint-epoch0002.keras", "checkpoint-epoch0002.npz", "checkpoint.json",
        "history.csv", "model.json", "model.keras"]
    assert (straight / "history.csv").read_text().splitlines()[0].split(",") == [
        "epoch", "accuracy", "loss", "val_accuracy", "val_loss", "train_time_s"]
    metadata = json.loads((straight / "model.json").read_text())
    assert metadata["trained_on"] == BACKEND and metadata["test"] == done["test"]

    # The same run, killed while it writes the second epoch's checkpoint, then resumed.
    resumed = tmp_path / "resumed"
    real_write = train_worker.write_atomic

    def killed_at_second_checkpoint(path, data):
        if path.name == "checkpoint.json" and b'"epoch": 2' in (
                data.encode() if isinstance(data, str) else data):
            (path.parent / ".checkpoint.json.killed.tmp").write_text('{"epoch": 2, "mod')
            raise KeyboardInterrupt
        real_write(path, data)

    monkeypatch.setattr(train_worker, "write_atomic", killed_at_second_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        run_job(worker_job(config, resumed, epochs=2))
    monkeypatch.setattr(train_worker, "write_atomic", real_write)
    checkpoint = json.loads((resumed / "checkpoint.json").read_text())
    assert checkpoint["epoch"] == 1 and (resumed / checkpoint["model_file"]).exists()
    assert not (resumed / "model.keras").exists()
    keras.saving.load_model(resumed / checkpoint["model_file"])  # whole, not half-written

    events = run_job(worker_job(config, resumed, epochs=2, resume=True))
    assert events[0]["start_epoch"] == 1
    assert [event["epoch"] for event in events if event["event"] == "epoch"] == [2]
    assert events[-1]["resumed_at"] == [1]
    for ours, theirs in zip(events[-1]["history"], history, strict=True):
        del ours["train_time_s"], theirs["train_time_s"]
        assert ours == pytest.approx(theirs, abs=1e-6)
    assert events[-1]["test"] == pytest.approx(done["test"], abs=1e-6)
    for ours, theirs in zip(weights(resumed / "model.keras"), weights(straight / "model.keras"),
                            strict=True):
        np.testing.assert_allclose(ours, theirs, atol=1e-6)
    assert not list(resumed.glob(".*tmp*"))
    assert not (resumed / "checkpoint-epoch0001.keras").exists()


# The command, end to end, in subprocesses


@only_in("tensorflow")
@pytest.mark.once
def test_several_backends_compared_then_evaluated_across_backends(tiny, tmp_path):
    output = tmp_path / "run"
    completed = klayers("train", tiny, "--backend", "jax,torch", "--threads", "1",
                        "--output", output, "--quiet")
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "jax: epoch 2/2: loss" in completed.stdout
    assert "torch: epoch 2/2: loss" in completed.stdout
    assert "samples/s" in completed.stdout and "first step" in completed.stdout
    document = json.loads((output / "results.json").read_text())
    assert document["run"]["backends"] == ["jax", "torch"]
    assert document["environment"]["threads"]["threads"] == 1
    assert document["environment"]["cpu"] and document["environment"]["finished"]
    for record in document["results"]:
        assert record["status"] == "ok" and record["epochs_done"] == 2
        assert record["device_count"] == 1 and record["num_train"] == 1437
        assert record["test"]["accuracy"] > 0.5
        assert record["history"][1]["loss"] < record["history"][0]["loss"]
        assert record["s_per_epoch"] > 0 and record["samples_per_s"] > 0
        assert record["time_to_first_step_s"] > 0
        assert (output / record["backend"] / "model.keras").is_file()
    assert (output / "learning_curves.png").stat().st_size > 0

    torch_record = document["results"][1]
    completed = klayers("evaluate", output / "torch" / "model.keras", "--backend",
                        "tensorflow,jax", "--threads", "1")
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "accuracy is the same on every backend" in completed.stdout
    assert completed.stdout.count(f"{torch_record['test']['accuracy']:.4f}") == 2


@only_in("torch")
@pytest.mark.once
def test_an_interrupted_run_leaves_whole_files_and_resumes(tiny, tmp_path):
    output = tmp_path / "run"
    command = [sys.executable, "-m", "klayers", "train", tiny, "--backend", "jax",
               "--epochs", "6", "--threads", "1", "--output", str(output), "--quiet"]
    parent = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env={**os.environ, "COLUMNS": "200"})
    for line in parent.stdout:
        if "epoch 1/6" in line:
            parent.send_signal(signal.SIGINT)  # a Ctrl-C, at once after the first epoch
            break
    out, err = parent.communicate(timeout=120)
    assert parent.returncode == 130, err[-2000:]
    assert "--resume" in out
    document = json.loads((output / "results.json").read_text())
    assert document["results"][0]["status"] == "interrupted"
    checkpoint = json.loads((output / "jax" / "checkpoint.json").read_text())
    assert 1 <= checkpoint["epoch"] < 6
    assert (output / "jax" / checkpoint["model_file"]).is_file()
    keras.saving.load_model(output / "jax" / checkpoint["model_file"])

    completed = klayers("train", tiny, "--output", output, "--resume", "--quiet")
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert f"resuming after epoch {checkpoint['epoch']} of 6" in completed.stdout
    record = json.loads((output / "results.json").read_text())["results"][0]
    assert record["status"] == "ok" and record["epochs_done"] == 6
    assert [row["epoch"] for row in record["history"]] == list(range(1, 7))
    assert record["resumed_at"] == [checkpoint["epoch"]]
    assert record["test"]["accuracy"] > 0.8


@only_in("jax")
@pytest.mark.once
def test_data_parallel_on_two_host_devices_reaches_the_same_accuracy(tiny, tmp_path):
    runs = {}
    for name, extra in (("one", []), ("two", ["--distribute", "data-parallel",
                                              "--devices", "2"])):
        output = tmp_path / name
        completed = klayers("train", tiny, "--backend", "jax", "--epochs", "3", "--threads",
                            "1", "--output", output, "--quiet", *extra)
        assert completed.returncode == 0, completed.stderr[-2000:]
        runs[name] = json.loads((output / "results.json").read_text())["results"][0]
    assert runs["two"]["device_count"] == 2
    assert runs["two"]["devices"] == ["cpu:0", "cpu:1"]
    assert runs["one"]["device_count"] == 1
    assert runs["two"]["test"]["accuracy"] == pytest.approx(runs["one"]["test"]["accuracy"],
                                                             abs=0.03)


# The parent's bookkeeping


@pytest.mark.once
def test_epoch_speed_leaves_out_the_epochs_that_compile():
    speed = train.epoch_speed([5.0, 1.0, 3.0, 6.0, 2.0], resumed_at=[3], samples=100)
    assert speed == {"s_per_epoch": 2.0, "samples_per_s": 50.0,
                     "timing_includes_compile": False}
    speed = train.epoch_speed([4.0], resumed_at=[], samples=100)
    assert speed["s_per_epoch"] == 4.0 and speed["timing_includes_compile"] is True


@pytest.mark.once
def test_the_run_bar_counts_every_backends_epochs_in_part_and_resumed():
    import io

    from rich.console import Console

    from klayers.train.display import RichDisplay

    display = RichDisplay(Console(file=io.StringIO()), total_epochs=6)  # 2 backends x 3
    ready = {"event": "ready", "epochs": 3, "steps_per_epoch": 10, "start_epoch": 0,
             "parameters": 1, "num_train": 1, "num_test": 1, "device_count": 1,
             "devices": ["cpu"]}

    def completed():
        return display.progress.tasks[display.run_task].completed

    with display:
        display.event("jax", ready)
        display.event("jax", {"event": "batch", "epoch": 1, "step": 5, "steps": 10, "logs": {}})
        assert completed() == 0.5
        display.event("jax", {"event": "epoch", "epoch": 1, "epochs": 3, "logs": {},
                              "train_time_s": 1.0})
        assert completed() == 1
        display.event("torch", {**ready, "start_epoch": 2})  # resumed after its epoch 2
        assert completed() == 3
