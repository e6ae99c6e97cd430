# loopml developer commands. Needs only Python 3.11+ on the machine.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
DEMO_DIR ?= demo-project
CONSTRAINTS := requirements/dev-constraints.txt

.PHONY: demo test bench lint clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(PIP) install -q -c $(CONSTRAINTS) -e ".[sklearn]"
	touch $@

# torch is installed first and pinned to the CPU build, so that the torch
# extra's range is already satisfied and no CUDA build is pulled in.
$(VENV)/.installed-dev: pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(PIP) install -q -c $(CONSTRAINTS) "torch==2.13.0"
	$(PIP) install -q -c $(CONSTRAINTS) -e ".[dev,torch]"
	touch $@

demo: $(VENV)/.installed
	$(BIN)/loopml demo --project $(DEMO_DIR)

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

bench: $(VENV)/.installed-dev
	$(PIP) install -q -c $(CONSTRAINTS) -e ".[bench]"
	$(BIN)/python bench/tracking_vs_mlflow.py $(BENCH_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache build *.egg-info src/*.egg-info
