# The two commands a fresh machine needs: `make quickstart` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: quickstart test lint typecheck unit bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.quickstart-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[quickstart]'
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# Azurite, the Azure Storage emulator, for the Azure Blob datastore tests.
AZURITE_VERSION ?= 3.37.0
.azurite/.installed:
	npm install --silent --no-audit --no-fund --prefix .azurite azurite@$(AZURITE_VERSION)
	touch $@

# Debian's prometheus (promtool checks /metrics in the online endpoint tests), wrk (the
# online serving benchmark) and rclone (the copy benchmarks' peer), installed once when missing.
.debian/.installed:
	command -v promtool >/dev/null && command -v wrk >/dev/null && command -v rclone >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus wrk rclone)
	mkdir -p .debian && touch $@

quickstart: $(VENV)/.quickstart-installed
	$(BIN)/keel --workspace .keel-quickstart quickstart

test: $(VENV)/.dev-installed lint typecheck unit

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(VENV)/.dev-installed
	$(BIN)/mypy

unit: $(VENV)/.dev-installed .azurite/.installed .debian/.installed
	$(BIN)/pytest -n 2 --dist loadgroup

bench: $(VENV)/.dev-installed .debian/.installed
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .azurite .debian .keel-quickstart .pytest_cache .mypy_cache .ruff_cache
