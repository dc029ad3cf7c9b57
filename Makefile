# Two entry points, each doing its own set-up: `make demo` and `make test`.
VENV := .venv
STAMP := $(VENV)/.installed-stamp
BIN := $(VENV)/bin
# anvil (a real node, for provider conformance tests and `battle fleet up --kind anvil`),
# from npm without its install scripts. Without npm the anvil tests skip, saying why;
# CI sets BATTLE_REQUIRE_ANVIL=1 so that they fail instead.
ANVIL := node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $$(scripts/find-python) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

$(ANVIL): package.json
	npm install --ignore-scripts --no-audit --no-fund --loglevel=error \
		|| echo "warning: npm install failed; tests that need anvil will skip"
	@test -x $(ANVIL) && touch $(ANVIL) || true

demo: $(STAMP)
	$(BIN)/battle demo

# The end-to-end battle runs, two at a time: each is a whole stack at a few dozen
# requests a second, mostly waiting on its schedule, so two fit on two cores and CI
# stays well under its 20 minutes. The rest runs one test at a time: some of it
# measures timing.
test: $(STAMP) $(ANVIL)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest tests/unit tests/integration
	$(BIN)/python -m pytest -n 2 tests/e2e

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
	rm -rf $(VENV) runs
