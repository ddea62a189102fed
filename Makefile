# `make test` and `make bench` do all the set-up on a fresh machine with Python 3.11.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
BACKENDS := tensorflow jax torch
# Two test processes per backend: most of a test's time is single-threaded tracing and compiling.
PYTEST_ARGS ?= -n 2

.PHONY: install test test-wheel test-latest lock browser lint bench bench-standard clean

$(BIN)/klayers: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ".[all,dev]"
	touch $@

install: $(BIN)/klayers

lint: install
	$(BIN)/ruff check keraslayers cli configs tests benchmarks/probes

# The package as users get it: the wheel, installed into a fresh environment and run outside the
# source tree. Its dependencies are read from .venv (a .pth file), so nothing is downloaded twice.
WHEEL_DIR := build/wheel
test-wheel: install
	rm -rf $(WHEEL_DIR) && mkdir -p $(WHEEL_DIR)
	$(BIN)/pip wheel --quiet --no-deps --wheel-dir $(WHEEL_DIR) .
	$(PYTHON) -m venv $(WHEEL_DIR)/env
	$(BIN)/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])" \
		> "$$($(WHEEL_DIR)/env/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/dependencies.pth"
	$(WHEEL_DIR)/env/bin/pip install --quiet --no-deps $(WHEEL_DIR)/klayers-*.whl
	cd $(WHEEL_DIR) && env/bin/klayers list > list.txt && grep -q "LSTM" list.txt
	cd $(WHEEL_DIR) && env/bin/klayers bench --layer Dense --backend torch --min-time 0.05 --output bench
	cd $(WHEEL_DIR) && env/bin/klayers train mlp --backend torch --epochs 1 --output train
	cd $(WHEEL_DIR) && KERAS_BACKEND=torch env/bin/python -c "import json, keraslayers, klayers.configs; \
		records = json.load(open('bench/results.json'))['results']; \
		assert records and all(r['status'] == 'ok' for r in records), records; \
		assert 'site-packages' in keraslayers.__file__, keraslayers.__file__; \
		assert 'site-packages' in str(klayers.configs.folder('bench'))"

# Chromium from the Debian packages, for the HTML report's browser test: installed where this
# user may (CI runs as root); elsewhere that test says it was skipped and why.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium \
		>/dev/null; } || echo "no chromium: the report's browser test will be skipped"

# JAX's tests spend most of their time compiling small programs: XLA's CPU backend compiles
# about 30% faster without its LLVM optimizations (tests/test_conv_lstm.py and
# tests/test_llama_block.py: 118 -> 84 s), and the tests' shapes are too small for the
# optimized code to matter. Tests only: benchmarks never get this flag.
JAX_TEST_XLA_FLAGS := --xla_backend_optimization_level=0
# The two pytest workers of JAX's process share one compilation cache, fresh each run, so a
# program one compiles the other loads (tests/test_quantized_attention.py, test_convolution.py and
# test_recurrent.py: 97.8 and 93.4 s -> 88.6 and 85.9 s).
JAX_TEST_CACHE := build/jax-test-cache
JAX_TEST_ENV := XLA_FLAGS="$(JAX_TEST_XLA_FLAGS) $${XLA_FLAGS:-}" \
	JAX_COMPILATION_CACHE_DIR="$(CURDIR)/$(JAX_TEST_CACHE)" \
	JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0 JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES=0

# One pytest process per backend: Keras fixes its backend when it is first imported.
test: install lint test-wheel browser
	@status=0; for backend in $(BACKENDS); do \
		echo "=== tests on $$backend"; \
		( if [ $$backend = jax ]; then rm -rf $(JAX_TEST_CACHE); export $(JAX_TEST_ENV); fi; \
		  KERAS_BACKEND=$$backend $(BIN)/python -m pytest -q $(PYTEST_ARGS) ) || status=1; \
	done; exit $$status

# The newest releases within pyproject.toml's ranges (torch pinned: see constraints.txt), tested
# the same way in a separate environment; `make lock` then writes what it tested to constraints.txt.
LATEST_VENV := .venv-latest
test-latest:
	rm -rf $(LATEST_VENV)
	$(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/pip install --quiet --upgrade pip
	$(LATEST_VENV)/bin/pip install --quiet --upgrade "torch==2.13.0" -e ".[all,dev]"
	$(LATEST_VENV)/bin/pip list --format=freeze | grep -i -E "^(keras|keras-hub|tensorflow|jax|torch)=="
	@status=0; for backend in $(BACKENDS); do \
		echo "=== tests on $$backend (latest releases)"; \
		( if [ $$backend = jax ]; then rm -rf $(JAX_TEST_CACHE); export $(JAX_TEST_ENV); fi; \
		  KERAS_BACKEND=$$backend $(LATEST_VENV)/bin/python -m pytest -q $(PYTEST_ARGS) ) || status=1; \
	done; exit $$status

lock:
	test -x $(LATEST_VENV)/bin/pip || { echo "run make test-latest first"; exit 1; }
	{ echo "# The tested lock: every package make test and make bench install, at the versions the"; \
	  echo "# tests last passed with (pip freeze, $$(date +%Y-%m-%d)). Users get the ranges of pyproject.toml;"; \
	  echo "# make test-latest tries the newest releases within them. Refresh with make lock."; \
	  echo "# torch: the CPU build served to this project's machines (any other version resolves to CUDA)."; \
	  $(LATEST_VENV)/bin/pip freeze --exclude-editable | sed 's/^torch==\(.*\)+cpu$$/torch==\1/'; \
	} > constraints.txt.tmp && mv constraints.txt.tmp constraints.txt

# The quick suite on every installed backend; results in benchmarks/results/<date>-<host>/.
bench: install
	$(BIN)/klayers info
	$(BIN)/klayers bench

# The suite of record (benchmarks/README.md): every layer at two sizes, Keras and torch.nn baselines.
bench-standard: install
	$(BIN)/klayers info
	$(BIN)/klayers bench --suite standard --baseline keras,native

clean:
	rm -rf $(VENV) $(LATEST_VENV) build *.egg-info
