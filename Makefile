# airflow-synth: the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PG_BIN ?= /usr/lib/postgresql/15/bin
PYTEST_ARGS ?=
DEMO_ARGS ?=
AIRFLOW_ARGS ?=
# TabularARGN's engine: installed without its pins (see the argn extra in pyproject.toml)
MOSTLYAI_ENGINE ?= 2.7.3

.PHONY: help install prereqs demo test lint airflow stack-up stack-down stack-env dev-shell dev-env bench mutants clean

help:
	@echo "make demo    install into .venv/ and run the ESL demo end to end (local PostgreSQL + S3)"
	@echo "make test    run the whole test suite (unit, integration, DAG tests)"
	@echo "make airflow start the Airflow UI on the local stack (login admin/admin)"
	@echo "make dev-shell  a shell where 'python my_dag.py' and 'airflow dags test <id>' run your DAG"
	@echo "             on the local stack (DAGS_FOLDER=dir pins the DAGs folder); make dev-env writes"
	@echo "             only its env file .local/dev.env (for an IDE: set -a; . .local/dev.env; set +a)"
	@echo "make bench   run the benchmarks in benchmarks/"
	@echo "make mutants mutation-test the gate, privacy, publish and integrity decisions (mutmut)"
	@echo "make stack-up / stack-down / stack-env   manage the local PostgreSQL + S3 server"

# PostgreSQL 15 server binaries, chromium + chromium-driver (browser tests of the UI page) and
# redis-server (the Celery broker of the CeleryExecutor deployment test): installed with apt
# when missing (root only).
prereqs:
	@if [ ! -x "$(PG_BIN)/initdb" ]; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	    echo "Installing PostgreSQL 15 server binaries with apt ..."; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >/dev/null; \
	  else \
	    echo "PostgreSQL 15 binaries not found in $(PG_BIN): run 'sudo apt-get install postgresql-15' (or set PG_BIN / SYNTH_PG_BIN)."; exit 1; \
	  fi; \
	fi
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	    echo "Installing chromium + chromium-driver with apt (browser tests of the UI page) ..."; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  else \
	    echo "chromium/chromedriver not found: run 'sudo apt-get install chromium chromium-driver' (the browser tests need them)."; exit 1; \
	  fi; \
	fi
	@if ! command -v redis-server >/dev/null; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	    echo "Installing redis-server with apt ..."; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
	  else \
	    echo "redis-server not found: run 'sudo apt-get install redis-server' (the Celery deployment test needs it)."; exit 1; \
	  fi; \
	fi

# The virtual environment. torch is installed first and pinned: a bare `torch` requirement
# would pull several GB of CUDA packages. constraints.txt pins a set known to work together.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	$(PY) -m pip install -q --no-deps mostlyai-engine==$(MOSTLYAI_ENGINE)
	touch $(STAMP)

install: prereqs $(STAMP)

demo: install
	$(PY) -m airflow_synth.demo $(DEMO_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: install lint
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# Airflow on the local stack: PostgreSQL metadata DB, LocalExecutor, 127.0.0.1 only. Ctrl-C,
# SIGTERM (make passes it on) or SIGHUP stop it and everything it started.
# Options: make airflow AIRFLOW_ARGS="--port 8081 --users 2000"
airflow: install
	$(PY) -m airflow_synth.demo.standalone $(AIRFLOW_ARGS)

stack-up: install
	$(PY) -m airflow_synth.local up

stack-down: install
	$(PY) -m airflow_synth.local down

stack-env: install
	@$(PY) -m airflow_synth.local env

# Develop your own DAG (README "Develop your own DAG"): the logic is in
# airflow_synth/local/devshell.py. DAGS_FOLDER=~/my_dags pins the DAGs folder (default: the
# folder each command runs in); DEV_ARGS="--no-seed" leaves the demo source DB as it is.
DAGS_FOLDER ?=
DEV_ARGS ?=
DEV_OPTS = $(if $(DAGS_FOLDER),--dags-folder $(DAGS_FOLDER)) $(DEV_ARGS)
dev-shell: install
	@$(PY) -m airflow_synth.local dev-shell $(DEV_OPTS)

dev-env: install
	@$(PY) -m airflow_synth.local dev-env $(DEV_OPTS)

bench: install
	$(PY) -m benchmarks

# Mutation testing (mutmut) of the gate, privacy-filter, publish and integrity decisions:
# which functions in tools/mutants.py, which tests in pyproject.toml [tool.mutmut].
# Fails when a mutant survives. MUTANTS_ARGS="--jobs 4 'airflow_synth.core.assess.checks.*'".
MUTANTS_ARGS ?=
mutants: install
	$(PY) tools/mutants.py $(MUTANTS_ARGS)

clean: stack-down
	rm -rf .local
