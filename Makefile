# One entry point per job; every target installs what it needs first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
ANVIL_VERSION := 1.7.1
ANVIL_DIR := .cache/anvil
ANVIL := $(ANVIL_DIR)/node_modules/.bin/anvil
STAMP := $(VENV)/.installed

.PHONY: demo test lint faults bench wheel clean

demo: $(STAMP) $(ANVIL)
	$(VENV)/bin/ogpu-events demo

test: $(STAMP) $(ANVIL)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

faults: $(STAMP) $(ANVIL)
	$(PY) scripts/fault_matrix.py

bench: $(STAMP) $(ANVIL)
	$(PY) scripts/bench.py

wheel: $(STAMP)
	$(PY) -m pip wheel --no-deps -q -w dist .

$(STAMP): pyproject.toml
	@echo "== installing ogpu with its test and lint tools into $(VENV) (pip; about a minute on a first run) =="
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,dev]'
	touch $@

$(ANVIL):
	@echo "== installing anvil $(ANVIL_VERSION) from npm into $(ANVIL_DIR) (about 10-30 s, once) =="
	npm install --no-save --no-audit --no-fund --prefix $(ANVIL_DIR) @foundry-rs/anvil@$(ANVIL_VERSION)

clean:
	rm -rf $(VENV) .cache dist build .pytest_cache .mypy_cache .ruff_cache
