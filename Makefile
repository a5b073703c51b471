# Two commands work on a fresh machine: `make demo` (install, prepare synthetic data, score sample
# submissions, train and enter the baselines, serve at http://127.0.0.1:8000) and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast lint audit bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU build lies on disk; any other torch requirement would pull gigabytes of CUDA.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/leaderboard demo

test: $(STAMP)
	$(BIN)/pytest -q

# The inner loop: everything but the tests marked slow (subprocesses, sandboxes, fuzzing,
# the browser, the demo) and those needing a GPU.
test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not slow and not browser and not gpu"

lint: $(STAMP)
	$(BIN)/ruff check app evaluator baselines tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

audit: $(STAMP)
	$(BIN)/pip-audit --skip-editable --progress-spinner off
