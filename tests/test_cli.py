"""The `klayers` command: `--help`, `--version`, `list`, `info`, and the backend probes.

Only `test_info_json_probes_every_backend` runs the real probes (a few seconds, for the
TensorFlow import); the other `info` tests use fake probes or fake probe commands.
"""

import importlib.metadata
import importlib.util
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from keraslayers.catalog import LAYERS
from klayers import environment
from klayers.main import cli

# The command's parent side (Keras-free) and its probes' subprocesses: one backend's process.
pytestmark = pytest.mark.once


def invoke(*args: str):
    result = CliRunner().invoke(cli, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def test_help_lists_the_commands():
    result = invoke("--help")
    assert result.exit_code == 0
    assert "list" in result.output
    assert "info" in result.output


def test_version_is_the_distribution_version():
    result = invoke("--version")
    assert result.exit_code == 0
    assert importlib.metadata.version("klayers") in result.output


def test_python_m_klayers_runs_the_command():
    completed = subprocess.run(
        [sys.executable, "-m", "klayers", "--help"], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert "Usage: klayers" in completed.stdout




def test_list_json_is_the_catalogue():
    result = invoke("list", "--json")
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert sorted(row["name"] for row in rows) == sorted(record.name for record in LAYERS)
    assert all(set(row) == {"name", "family", "keras_name", "summary"} for row in rows)
    assert [(row["family"], row["name"]) for row in rows] == sorted(
        (row["family"], row["name"]) for row in rows
    )


def test_list_table_shows_every_layer():
    result = invoke("list")
    assert result.exit_code == 0
    for record in LAYERS:
        assert record.name in result.output


def test_list_family_filter():
    result = invoke("list", "--json", "--family", "normalization")
    assert result.exit_code == 0
    names = {row["name"] for row in json.loads(result.stdout)}
    assert names == {record.name for record in LAYERS if record.family == "normalization"}


def test_list_unknown_family_names_the_bad_value_and_the_known_ones():
    result = invoke("list", "--family", "no-such-family")
    assert result.exit_code != 0
    assert "no-such-family" in result.output
    assert "normalization" in result.output


def test_info_json_probes_every_backend():
    result = invoke("info", "--json")
    assert result.exit_code == 0
    found = json.loads(result.stdout)
    assert found["machine"]["logical_cores"] > 0
    assert [report["backend"] for report in found["backends"]] == list(environment.BACKENDS)
    for report in found["backends"]:
        installed = importlib.util.find_spec(report["backend"]) is not None
        assert report["installed"] == installed
        if installed:
            assert report["status"] == "ok", report["error"]
            assert any(device["kind"] == "cpu" for device in report["devices"])


def test_missing_backend_is_reported_without_probing(monkeypatch):
    def no_probe(name, **kwargs):
        raise AssertionError(f"probed {name}")

    monkeypatch.setattr(environment, "probe_backend", no_probe)
    report = environment.backend_report("klayers_no_such_backend")
    assert report["installed"] is False
    assert report["status"] == "not installed"
    assert report["devices"] == []


def test_info_table_shows_missing_and_failed_backends_and_gpus(monkeypatch):
    def fake_probe(name, **kwargs):
        if name == "jax":
            devices = [{"name": "gpu:0", "kind": "gpu", "model": "Fake GPU 9000"}]
            return {"backend": name, "status": "ok", "version": "9.9", "devices": devices,
                    "gpu_names": ["Fake GPU 9000"], "error": None}
        return {"backend": name, "status": "error", "version": None, "devices": [],
                "gpu_names": [], "error": "boom"}

    monkeypatch.setattr(environment, "backend_installed", lambda name: name != "torch")
    monkeypatch.setattr(environment, "probe_backend", fake_probe)
    result = invoke("info")
    assert result.exit_code == 0
    assert "not installed" in result.output
    assert "error" in result.output and "boom" in result.output
    assert "Fake GPU 9000" in result.output
    assert environment.environment_info()["machine"]["gpus"] == ["Fake GPU 9000"]


def python_command(code: str) -> list[str]:
    return [sys.executable, "-c", code]


@pytest.mark.parametrize(
    "command, timeout, message",
    [
        (python_command("import sys; sys.exit('no device for you')"), 30, "no device for you"),
        (python_command("print('not json')"), 30, "not json"),
        (python_command("print('[1, 2]')"), 30, "no JSON record"),
        (python_command("import time; time.sleep(30)"), 0.5, "timed out"),
        (["/nonexistent/klayers-python"], 30, "could not start"),
    ],
    ids=["crash", "garbage", "wrong-json", "timeout", "no-executable"],
)
def test_failed_probe_is_an_error_record(command, timeout, message):
    report = environment.probe_backend("jax", timeout=timeout, command=command)
    assert report["status"] == "error"
    assert message in report["error"]
    assert report["devices"] == []


def test_probe_reads_the_last_line_after_banners():
    record = {"backend": "torch", "version": "1.0", "gpu_names": ["G"],
              "devices": [{"name": "cpu", "kind": "cpu"}, {"name": "cuda:0", "kind": "gpu"}]}
    command = python_command(f"print('a banner'); print({json.dumps(record)!r})")
    report = environment.probe_backend("torch", command=command)
    assert report["status"] == "ok"
    assert report["devices"] == record["devices"]
    assert report["gpu_names"] == ["G"]


def test_machine_info_records_thread_settings(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    machine = environment.machine_info()
    assert machine["threads"]["OMP_NUM_THREADS"] == "3"
    assert set(machine["threads"]) == set(environment.THREAD_VARIABLES)
    assert 0 < machine["usable_cores"] <= machine["logical_cores"]


def test_backend_is_repeatable_comma_separated_or_all_on_every_command():
    from klayers.main import _backend_list

    assert _backend_list(None, None, ()) is None
    assert _backend_list(None, None, ("jax", "torch")) == "jax,torch"
    assert _backend_list(None, None, ("jax, torch",)) == "jax,torch"
    assert _backend_list(None, None, ("jax", "ALL")) == "all"
    result = CliRunner().invoke(cli, ["bench", "--backend", "jax,theano"])
    assert result.exit_code != 0
    assert "unknown backend 'theano'" in result.output


@pytest.mark.parametrize("command", ["bench", "train", "evaluate"])
def test_threads_must_be_positive_on_every_command(command, tmp_path):
    args = {"bench": [], "train": ["mlp"], "evaluate": [str(tmp_path / "model.keras")]}[command]
    result = CliRunner().invoke(cli, [command, *args, "--threads", "0"])
    assert result.exit_code != 0
    assert result.output.strip() == "Error: --threads must be a positive integer, received 0"
