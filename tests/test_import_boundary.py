"""The parent process stays free of keras and every backend: only the worker subpackages may
import them, since the parent drives one worker subprocess per backend (Keras fixes its backend
when it is first imported).

One test walks the whole klayers package, so a new module is covered without being listed.
"""

import json
import pkgutil
import subprocess
import sys

import klayers

FORBIDDEN = ["keras", "keraslayers", "tensorflow", "jax", "torch"]


def parent_modules():
    names = ["klayers"]
    for module in pkgutil.walk_packages(klayers.__path__, prefix="klayers."):
        if "worker" not in module.name.split(".")[1:]:
            names.append(module.name)
    return sorted(names)


def test_the_walk_finds_every_feature_and_skips_the_workers():
    names = parent_modules()
    for expected in ("klayers.main", "klayers.environment", "klayers.process",
                     "klayers.bench.protocol",
                     "klayers.bench.run", "klayers.train.run",
                     "klayers.train.datasets"):
        assert expected in names
    assert not any(".worker" in name for name in names)


def test_no_parent_module_imports_keras_or_a_backend():
    script = (
        "import importlib, json, sys\n"
        f"for name in {parent_modules()!r}:\n"
        "    importlib.import_module(name)\n"
        # What the parent does at run time without a worker: list the catalogue, load the data.
        "from klayers.bench.suites import catalog_records\ncatalog_records()\n"
        "from klayers.train.datasets import load_dataset\nload_dataset('digits', 0)\n"
        f"print(json.dumps(sorted(set({FORBIDDEN!r}) & set(sys.modules))))"
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                               check=False)
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout.strip().splitlines()[-1]) == []
