# `make test` and `make bench` do all the set-up on a fresh machine with Python 3.11.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
BACKENDS := tensorflow jax torch
# Two test processes per backend: most of a test's time is single-threaded tracing and compiling.
PYTEST_ARGS ?= -n 2

.PHONY: install test lint bench bench-standard clean

$(BIN)/klayers: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ".[all,dev]"
	touch $@

install: $(BIN)/klayers

lint: install
	$(BIN)/ruff check keraslayers cli tests benchmarks/probes

# One pytest process per backend: Keras fixes its backend when it is first imported.
test: install lint
	@status=0; for backend in $(BACKENDS); do \
		echo "=== tests on $$backend"; \
		KERAS_BACKEND=$$backend $(BIN)/python -m pytest -q $(PYTEST_ARGS) || status=1; \
	done; exit $$status

# The quick suite on every installed backend; results in benchmarks/results/<date>-<host>/.
bench: install
	$(BIN)/klayers info
	$(BIN)/klayers bench

# The suite of record (benchmarks/README.md): every layer at two sizes, Keras and torch.nn baselines.
bench-standard: install
	$(BIN)/klayers info
	$(BIN)/klayers bench --suite standard --baseline keras,native

clean:
	rm -rf $(VENV) build *.egg-info
