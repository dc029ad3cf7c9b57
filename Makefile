# Two entry points, each doing its own set-up: `make demo` and `make test`.
VENV := .venv
STAMP := $(VENV)/.installed-stamp
BIN := $(VENV)/bin
# The exact versions `make test` (and CI) run, with their hashes, for Python 3.12 on
# Linux x86_64: `make lock` makes it from pyproject.toml's ranges.
LOCK := requirements.txt
# `make test-latest`: the newest versions pyproject.toml's ranges allow, in a venv of
# their own, so that a release that breaks us shows up before a user meets it.
LATEST := .venv-latest
# pip-compile lives in a venv of its own: a tool of the lock, not of the project.
LOCK_TOOLS := .venv-lock
PIP_TOOLS := pip-tools==7.6.2
# `make lock` keeps the pins that still fit the ranges; `make lock LOCK_FLAGS=--upgrade`
# moves every pin to the newest version allowed.
LOCK_FLAGS :=
# anvil (a real node, for provider conformance tests and `battle fleet up --kind anvil`),
# from npm without its install scripts. Without npm the anvil tests skip, saying why;
# CI sets BATTLE_REQUIRE_ANVIL=1 so that they fail instead.
ANVIL := node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil

.PHONY: demo test test-latest matrix lock lint bench clean

# Every path below is relative to the clone and every interpreter path quoted, so a
# clone under a directory whose name has a space sets up too. `pip check` fails the
# set-up when pyproject.toml needs something the lock lacks (run `make lock`).
$(STAMP): pyproject.toml $(LOCK)
	@test -x $(BIN)/python || { py="$$(scripts/find-python)" && "$$py" -m venv $(VENV); }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	@touch $(STAMP)

lock:
	@test -x $(LOCK_TOOLS)/bin/python || { py="$$(scripts/find-python)" && "$$py" -m venv $(LOCK_TOOLS); }
	$(LOCK_TOOLS)/bin/python -m pip install --quiet $(PIP_TOOLS)
	CUSTOM_COMPILE_COMMAND="make lock" $(LOCK_TOOLS)/bin/python -m piptools compile --quiet \
		--generate-hashes --extra dev --strip-extras --allow-unsafe \
		--no-emit-index-url --no-emit-find-links $(LOCK_FLAGS) -o $(LOCK) pyproject.toml

$(ANVIL): package.json
	npm install --ignore-scripts --no-audit --no-fund --loglevel=error \
		|| echo "warning: npm install failed; tests that need anvil will skip"
	@test -x $(ANVIL) && touch $(ANVIL) || true

demo: $(STAMP)
	$(BIN)/battle demo

# No test depends on a real-time window a busy core would miss, so tests run side by
# side: four at a time for the unit and integration suites, most of whose time is spent
# waiting on the children they start (162 s against 399 s one at a time, on 2 cores);
# three end-to-end runs at a time, each a whole stack at a few dozen requests a second,
# mostly waiting on its schedule (two at a time held a 2-core box at a load average of
# 0.7 to 1.0, and took 854 s: too long for a CI run of 20 minutes).
test: $(STAMP) $(ANVIL)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n 4 tests/unit tests/integration
	$(BIN)/python -m pytest -n 3 tests/e2e

# No stamp: every run upgrades to whatever is newest now (eagerly, dependencies too).
test-latest: $(ANVIL)
	@test -x $(LATEST)/bin/python || { py="$$(scripts/find-python)" && "$$py" -m venv $(LATEST); }
	$(LATEST)/bin/python -m pip install --quiet --upgrade pip
	$(LATEST)/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager -e '.[dev]'
	$(LATEST)/bin/python scripts/versions-vs-lock $(LATEST)/bin/python $(LOCK)
	$(LATEST)/bin/python -m pytest -n 4 tests/unit tests/integration

# The verdict matrix (tests/e2e/matrix.py): the built-ins against routers Battle did not
# write (the two of tests/routers/, correct and with defects planted; nginx and HAProxy
# with good configs), every cell three times, two at a time; it prints false alarms,
# misses and flips. CI runs the cells of tests/routers/ once (tests/e2e/test_matrix.py).
matrix: $(STAMP)
	$(BIN)/python tests/e2e/matrix.py --repeat 3 --jobs 2

bench: $(STAMP) $(ANVIL)
	$(BIN)/python bench/stack_latency.py
	$(BIN)/python bench/providers_throughput.py
	$(BIN)/python bench/router_throughput.py
	$(BIN)/python bench/loadgen_throughput.py
	$(BIN)/python bench/analysis_ingest_report.py
	$(BIN)/python bench/chaosproxy_throughput.py
	$(BIN)/python bench/chaosproxy_capacity.py

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) $(LATEST) $(LOCK_TOOLS) runs
