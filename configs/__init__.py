"""The benchmark suites (bench/) and training set-ups (train/) that ship with the command.

This folder installs as the package `klayers.configs` (pyproject.toml), so that a wheel holds
its YAML files and `klayers` finds them through importlib.resources, installed or not.
"""

from importlib import resources
from pathlib import Path


def folder(name: str) -> Path:
    """The folder of shipped YAML files `name` ("bench" or "train")."""
    return Path(str(resources.files(__name__) / name))
