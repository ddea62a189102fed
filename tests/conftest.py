"""Test set-up: quiet TensorFlow, a fixed seed per test, no leaked dtype policy."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seeded_and_float32():
    keras.utils.set_random_seed(1234)
    yield
    keras.config.set_dtype_policy("float32")
