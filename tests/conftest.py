"""Test set-up: quiet TensorFlow, a fixed seed per test, no leaked dtype policy."""

import os
import signal

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# pytest-xdist's workers ignore SIGINT, and an ignored signal stays ignored in child processes:
# restore Python's handler so the commands that tests start get a Ctrl-C as a user's would.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seeded_and_float32():
    keras.utils.set_random_seed(1234)
    yield
    keras.config.set_dtype_policy("float32")


# The accuracy tests (`@pytest.mark.slow`) train full models: run them once, on the backend
# that trains the eight reference set-ups with the least CPU time, and skip them elsewhere.
# Measured with model.fit on the shared, busy 2-core CPU: JAX 69 s of process CPU time in
# all, TensorFlow 76 s; torch took 23-62 s per image model alone (mlp, cnn, resnet) on a
# quieter machine. KLAYERS_SLOW_BACKEND picks another backend, or "all".
SLOW_TESTS_BACKEND = "jax"


def pytest_collection_modifyitems(config, items):
    chosen = os.environ.get("KLAYERS_SLOW_BACKEND", SLOW_TESTS_BACKEND)
    backend = keras.backend.backend()
    if chosen in ("all", backend):
        return
    skip = pytest.mark.skip(reason=f"slow tests run on the {chosen} backend only, not {backend}")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
