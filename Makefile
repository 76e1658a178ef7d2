# The two commands of the README: `make repro` (whole pipeline on real MNIST) and `make test`.
# Both create .venv and install the project into it on first use.
VENV ?= .venv
PYTHON ?= python3
export PATH := $(abspath $(VENV))/bin:$(PATH)
export MLFLOW_DISABLE_TELEMETRY ?= true
UI_PORT ?= 5000

.PHONY: setup browser repro test lint format ui bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e ".[dev]"
	touch $@

repro: setup  ## run the pipeline; only what changed is rebuilt
	dvc repro

test: setup lint browser  ## unit tests and real end-to-end pipeline runs on tiny params
	pytest

# Debian's chromium for the MLflow UI test, installed where apt-get runs as root; elsewhere
# that one test skips and says why.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		{ apt-get install -y -qq chromium >/dev/null 2>&1 || \
		  { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }; }; } || \
		echo "chromium could not be installed: the MLflow UI test will skip"

lint: setup
	ruff check .
	ruff format --check .

format: setup
	ruff check --fix .
	ruff format .

ui: setup  ## the MLflow UI on this repository's store, bound to 127.0.0.1 only; prints the runs' URL
	vaebench ui --port $(UI_PORT)

bench: setup  ## training throughput: the seed's loop vs the trainer vs the limit
	python bench/throughput.py

clean:  ## remove the venv and the local MLflow store (DVC outputs stay: use `dvc gc`)
	rm -rf $(VENV) mlflow.db mlartifacts
