# Two commands do everything on a fresh machine with Python 3.11+:
#   make quickstart   set up, then run the whole loop end to end on embedded defaults
#   make test         set up, then run ruff, mypy, the layer contract and the whole test suite
# For the edit loop: make check (lint and the unit tests, under two minutes on 2 cores).
# make bento builds the scoring service's Bento from a fresh clone.
# Set-up installs uv (pip-installable) and syncs .venv to exactly uv.lock: `setup` (quickstart) without
# the optional Spark feature engine, `setup-full` (test, lint, check, bench) with it (`--extra spark`;
# Spark also needs Java 17+). `uv sync` is exact: each target's sync adds or removes pyspark.

PYTHON ?= python3
UV_VERSION ?= 0.13.9
TOOLS := .tools
UV := $(shell command -v uv 2>/dev/null || echo $(TOOLS)/bin/uv)
VENV := .venv
export UV_PYTHON_DOWNLOADS := never
# Installed modules compiled to bytecode once (as pip does): where PYTHONDONTWRITEBYTECODE is set,
# every Python process would otherwise compile each module it imports, every time it starts.
export UV_COMPILE_BYTECODE := 1
# Trust the platform certificate store too (machines behind a TLS-inspecting proxy).
export UV_SYSTEM_CERTS := true

.PHONY: setup setup-full quickstart test check lint bench bento clean

$(TOOLS)/bin/uv:
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

setup: $(UV)
	$(UV) sync --frozen --python $(PYTHON)

setup-full: $(UV)
	$(UV) sync --frozen --extra spark --python $(PYTHON)

quickstart: setup
	$(VENV)/bin/churn quickstart

lint: setup-full
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: lint
	$(VENV)/bin/pytest

check: lint
	$(VENV)/bin/pytest -q tests/unit

bench: setup-full
	$(VENV)/bin/python bench/run.py

# The scoring service as a Bento (in $BENTOML_HOME, ~/bentoml by default), its Python packages
# pinned to uv.lock; BentoML calls uv while it builds, so uv's folder goes first on PATH.
bento: setup
	mkdir -p build
	$(UV) export --frozen --no-dev --no-emit-project --no-hashes --no-header --no-annotate --quiet \
		-o build/bento-requirements.txt
	PATH="$(abspath $(dir $(UV))):$$PATH" BENTOML_DO_NOT_TRACK=true $(VENV)/bin/bentoml build

clean:
	rm -rf workspace bench/results
