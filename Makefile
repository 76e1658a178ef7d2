# The two commands of the README: `make repro` (whole pipeline on real MNIST) and `make test`.
# Both create .venv and install the project into it on first use.
VENV ?= .venv
PYTHON ?= python3
export PATH := $(abspath $(VENV))/bin:$(PATH)
export MLFLOW_DISABLE_TELEMETRY ?= true
UI_PORT ?= 5000

.PHONY: setup browser postgres repro test lint format ui bench team-up team-down clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e ".[dev]"
	touch $@

repro: setup  ## run the pipeline; only what changed is rebuilt
	dvc repro

# Two pytest workers: the end-to-end tests of the shared project run on one, the team stack's on the
# other (--dist loadgroup keeps each group on one worker, in file order), the unit tests fill in.
TEST_WORKERS ?= 2

test: setup lint browser postgres  ## unit tests and real end-to-end pipeline runs on tiny params
	pytest -n $(TEST_WORKERS) --dist loadgroup

# Debian's chromium for the MLflow UI test, installed where apt-get runs as root; elsewhere
# that one test skips and says why.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		{ apt-get install -y -qq chromium >/dev/null 2>&1 || \
		  { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }; }; } || \
		echo "chromium could not be installed: the MLflow UI test will skip"

# Debian's postgresql for the team-stack tests and `make team-up`, installed the same way.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		{ apt-get install -y -qq postgresql >/dev/null 2>&1 || \
		  { apt-get update -qq && apt-get install -y -qq postgresql >/dev/null; }; }; } || \
		echo "postgresql could not be installed: the team-stack tests will skip"

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

team-up: setup postgres  ## PostgreSQL + S3 (moto) + MLflow with basic-auth on 127.0.0.1; prints what workers export
	vaebench team up

team-down: setup  ## stop the team stack and delete its data
	vaebench team down

clean:  ## remove the venv and the local MLflow store (DVC outputs stay: use `dvc gc`)
	rm -rf $(VENV) mlflow.db mlartifacts
