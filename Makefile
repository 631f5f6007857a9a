# Nexus — one-machine workflow. `make run` and `make test` work on a fresh clone with Python 3.11+.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q
ARGS   ?=

.PHONY: run test check lint format typecheck bench schema clean distclean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Nexus needs Python >= 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# Stamp files: reinstall only when pyproject.toml changes.
$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(PIP) install -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[test,dev]'
	@touch $@ $(VENV)/.installed-run

# The monitor dashboard's browser test runs Debian's Chromium (installed by apt-get, never downloaded).
/usr/bin/chromium:
	bash deploy/ensure-chromium.sh

## run: create the venv if missing, install, start NATS + all services + demo traffic (Ctrl-C stops all)
run: $(VENV)/.installed-run
	$(BIN)/nexus up $(ARGS)

## test: install with test extras and run the whole suite
test: $(VENV)/.installed-test /usr/bin/chromium
	$(BIN)/python -m pytest $(ARGS)

## check: formatting, lint, types, tests — the one gate
check: $(VENV)/.installed-test /usr/bin/chromium
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest $(ARGS)

format: $(VENV)/.installed-test
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

lint: $(VENV)/.installed-test
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

## bench: run every benchmark under bench/ (prints figures beside same-run baselines)
bench: $(VENV)/.installed-test
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b $(ARGS) || exit 1; done

## schema: regenerate the JSON Schema of every public message into docs/schema
schema: $(VENV)/.installed-run
	$(BIN)/nexus schema --out docs/schema

## clean: remove local state (NATS store, snapshots, logs) and caches
clean:
	rm -rf var/ .pytest_cache .mypy_cache .ruff_cache tests/artifacts
	find . -name __pycache__ -type d -prune -not -path './.venv/*' -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
