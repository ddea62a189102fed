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
# quieter machine. They run on TensorFlow: JAX's process is the longest of the three (its
# eager calls compile every op; 16 of the suite's 23 minutes), TensorFlow's has room.
# KLAYERS_SLOW_BACKEND picks another backend, or "all".
SLOW_TESTS_BACKEND = "tensorflow"


# Parity grids (`@pytest.mark.grid`): a parametrized test that repeats one check over many
# options of layers written once against keras.ops. JAX compiles every op of an eager call, so
# each case costs it 5-10 s (TensorFlow and torch: under 1 s). JAX runs the first case of each
# grid, or with `@pytest.mark.grid("chosen")` the first case of each value of the parameter
# `chosen` (each formulation, say); TensorFlow and torch run them all; KLAYERS_FULL_GRIDS=1 runs
# them all on JAX too.
GRID_PARTIAL_BACKENDS = ("jax",)


# Tests of the command itself (`@pytest.mark.once`: `klayers` run in subprocesses that pick their
# own backends, the parent's Keras-free code) do the same work whichever backend this process
# imported: they run in one process only, ONCE_BACKEND's (torch's is the shortest of the
# three). KLAYERS_ONCE_BACKEND picks another backend, or "all".
ONCE_BACKEND = "torch"


def pytest_collection_modifyitems(config, items):
    backend = keras.backend.backend()
    once = os.environ.get("KLAYERS_ONCE_BACKEND", ONCE_BACKEND)
    if once not in ("all", backend):
        skip = pytest.mark.skip(reason=f"tests of the command run in the {once} process only")
        for item in items:
            if "once" in item.keywords:
                item.add_marker(skip)
    chosen = os.environ.get("KLAYERS_SLOW_BACKEND", SLOW_TESTS_BACKEND)
    if chosen not in ("all", backend):
        skip = pytest.mark.skip(
            reason=f"slow tests run on the {chosen} backend only, not {backend}")
        for item in items:
            if "slow" in item.keywords:
                item.add_marker(skip)
    if backend in GRID_PARTIAL_BACKENDS and not os.environ.get("KLAYERS_FULL_GRIDS"):
        seen = set()
        skip = pytest.mark.skip(reason=f"grid: {backend} runs this test's first case only "
                                       "(KLAYERS_FULL_GRIDS=1 runs all)")
        for item in items:
            if "grid" not in item.keywords:
                continue
            kept = item.get_closest_marker("grid").args
            params = getattr(item, "callspec", None)
            values = tuple(repr(params.params[name]) for name in kept) if params else ()
            group = (item.path, item.originalname, values)
            if group in seen:
                item.add_marker(skip)
            seen.add(group)
