# The two commands of the README: `make repro` (whole pipeline on real MNIST) and `make test`.
# Both create .venv on first use and install into it from constraints.txt, the lock of every
# package and version the tests passed with; `make lock` regenerates it.
VENV ?= .venv
PYTHON ?= python3
LOCK := constraints.txt
export PATH := $(abspath $(VENV))/bin:$(PATH)
export MLFLOW_DISABLE_TELEMETRY ?= true
UI_PORT ?= 5000

.PHONY: setup setup-dev lock browser services repro test lint format ui bench team-up team-down clean

# A venv's bundled pip (23.x) resolves the pinned set too, but pip 26 does it several times faster.
$(VENV)/bin/pip:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade "pip>=26"

setup: $(VENV)/.installed  ## the pipeline's packages only
setup-dev: $(VENV)/.installed-dev  ## and the tests', the linter's and the team stack's

$(VENV)/.installed: pyproject.toml $(LOCK) | $(VENV)/bin/pip
	$(VENV)/bin/pip install --quiet -c $(LOCK) -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(VENV)/bin/pip install --quiet -c $(LOCK) -e ".[dev]"
	touch $@

# Resolve pyproject.toml's ranges afresh in a throw-away venv and pin the result. Run it after
# changing a dependency in pyproject.toml (tests/test_lock.py fails until you do), or to move to
# newer releases on purpose; then `make test` and commit constraints.txt with the change.
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --upgrade "pip>=26"
	.lock-venv/bin/pip install --quiet -e ".[dev]"
	{ echo "# The lock: every package of pip install -e .[dev] at the versions the tests passed with,"; \
	  echo "# used as pip constraints (-c). Written by make lock on $$(uname -sm), $$(.lock-venv/bin/python -V)."; \
	  .lock-venv/bin/pip freeze --exclude-editable --all | grep -v '^pip=='; } > $(LOCK).tmp
	mv $(LOCK).tmp $(LOCK)
	rm -rf .lock-venv

repro: setup  ## run the pipeline; only what changed is rebuilt
	dvc repro

# Two pytest workers: the end-to-end tests of the shared project run on one, the team stack's on the
# other (--dist loadgroup keeps each group on one worker, in file order), the unit tests fill in.
TEST_WORKERS ?= 2

test: setup-dev lint browser services  ## unit tests and real end-to-end pipeline runs on tiny params
	pytest -n $(TEST_WORKERS) --dist loadgroup

# Debian's chromium for the MLflow UI test, installed where apt-get runs as root; elsewhere
# that one test skips and says why.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		{ apt-get install -y -qq chromium >/dev/null 2>&1 || \
		  { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }; }; } || \
		echo "chromium could not be installed: the MLflow UI test will skip"

# Debian's postgresql and rclone (the DVC remote's WebDAV server) for the team-stack tests and
# `make team-up`, installed the same way.
services:
	@{ ls /usr/lib/postgresql/*/bin/initdb && command -v rclone; } >/dev/null 2>&1 || \
		{ [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		{ apt-get install -y -qq postgresql rclone >/dev/null 2>&1 || \
		  { apt-get update -qq && apt-get install -y -qq postgresql rclone >/dev/null; }; }; } || \
		echo "postgresql or rclone could not be installed: the team-stack tests will skip"

lint: setup-dev
	ruff check .
	ruff format --check .
	lint-imports

format: setup-dev
	ruff check --fix .
	ruff format .

ui: setup  ## the MLflow UI on this repository's store, bound to 127.0.0.1 only; prints the runs' URL
	vaebench ui --port $(UI_PORT)

bench: setup-dev  ## training throughput: the original recipe's loop vs the trainer vs the limit
	python bench/throughput.py

team-up: setup-dev services  ## PostgreSQL + MLflow with basic-auth + a WebDAV DVC remote + Dask over TLS, on 127.0.0.1
	vaebench team up

team-down: setup-dev  ## stop the team stack; its data stays (`vaebench team purge` deletes it)
	vaebench team down

clean:  ## remove the local MLflow store and the venv (DVC outputs stay: use `dvc gc`)
	[ ! -x $(VENV)/bin/python ] || $(VENV)/bin/python -m vaebench.tracking.store --remove
	rm -rf $(VENV)
