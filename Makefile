# One entry point per job; every target installs what it needs first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
ANVIL_VERSION := 1.7.1
ANVIL_DIR := .cache/anvil
ANVIL := $(ANVIL_DIR)/node_modules/.bin/anvil
STAMP := $(VENV)/.installed

# The other dev nodes the integration tests run against, from npm like anvil.
# Hardhat 3 needs Node >= 22.13: a Node 22 binary from npm goes beside it, so
# the machine's Node (20 is enough for everything else) is never used for it.
# hardhat pins @nomicfoundation/edr exactly; npm skips EDR's native package
# on Node < 22 (its engines field), so it is named here, checked after install.
HARDHAT_VERSION := 3.18.0
HARDHAT_EDR_VERSION := 0.22.0
HARDHAT_NODE_VERSION := 22.23.3
NODE_ARCH := $(if $(filter aarch64 arm64,$(shell uname -m)),arm64,x64)
HARDHAT_DIR := .cache/hardhat
HARDHAT := $(HARDHAT_DIR)/installed-$(HARDHAT_VERSION)
GANACHE_VERSION := 7.9.2
GANACHE_DIR := .cache/ganache
GANACHE := $(GANACHE_DIR)/installed-$(GANACHE_VERSION)
DEV_NODES := $(ANVIL) $(HARDHAT) $(GANACHE)
NPM_INSTALL := npm install --no-save --no-audit --no-fund --loglevel=error

.PHONY: demo test test-fast lint faults sim bench wheel clean

# Seeds of the deterministic simulation for `make sim` (`make faults` runs 10,000 too).
SEEDS ?= 10000

demo: $(STAMP) $(ANVIL)
	$(VENV)/bin/ogpu-events demo

test: $(STAMP) $(DEV_NODES)
	$(PY) -m pytest

# Everything that starts no process (no node, database or subprocess): under a minute, no npm.
test-fast: $(STAMP)
	$(PY) -m pytest -m "not nodes"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

faults: $(STAMP) $(DEV_NODES)
	$(PY) scripts/fault_matrix.py
	@echo "== checkpoints, full size: 500 events and 20 SIGKILLs per database, 6 replica handovers =="
	OGPU_CHECKPOINT_FULL=1 $(PY) -m pytest -q tests/nodes/test_checkpoint_processes.py

sim: $(STAMP)
	$(PY) scripts/fault_matrix.py --sim-only --sim $(SEEDS)

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
	@$(NPM_INSTALL) --prefix $(ANVIL_DIR) @foundry-rs/anvil@$(ANVIL_VERSION)

# Stamp files named by version: a version bump reinstalls, a failed install retries.
$(HARDHAT):
	@echo "== installing hardhat $(HARDHAT_VERSION) (EDR $(HARDHAT_EDR_VERSION), Node $(HARDHAT_NODE_VERSION)) from npm into $(HARDHAT_DIR) (about 10-40 s, once) =="
	@$(NPM_INSTALL) --prefix $(HARDHAT_DIR) hardhat@$(HARDHAT_VERSION) \
		node-linux-$(NODE_ARCH)@$(HARDHAT_NODE_VERSION) \
		@nomicfoundation/edr-linux-$(NODE_ARCH)-gnu@$(HARDHAT_EDR_VERSION)
	@edr=$$(node -p 'require("./$(HARDHAT_DIR)/node_modules/@nomicfoundation/edr/package.json").version'); \
		test "$$edr" = "$(HARDHAT_EDR_VERSION)" || \
		{ echo "hardhat $(HARDHAT_VERSION) wants EDR $$edr: set HARDHAT_EDR_VERSION to it"; exit 1; }
	@touch $@

$(GANACHE):
	@echo "== installing ganache $(GANACHE_VERSION) from npm into $(GANACHE_DIR) (about 10-30 s, once) =="
	@$(NPM_INSTALL) --prefix $(GANACHE_DIR) ganache@$(GANACHE_VERSION)
	@touch $@

clean:
	rm -rf $(VENV) .cache dist build .pytest_cache .mypy_cache .ruff_cache
