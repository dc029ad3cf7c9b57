"""http_failover and ws_continuity on a fleet of anvil nodes (real Ethereum nodes, one
chain; `--providers anvil` switches every provider of the built-in to anvil): both fast
forms pass against the reference router. Answers are not checked against the mock
chain's truth here (anvil's is its own); every SLO still is.

Skipped when the anvil binary is absent, unless BATTLE_REQUIRE_ANVIL=1 (CI sets it)."""

from __future__ import annotations

import os

import pytest
from battle_cli import assert_no_process_left, assert_passed, only_run, report_of, run_battle

from providers.anvil import find_anvil

REQUIRE = os.environ.get("BATTLE_REQUIRE_ANVIL") == "1"
if find_anvil() is None and not REQUIRE:
    pytest.skip(
        "anvil not installed (run `make` to npm-install @foundry-rs/anvil-linux-amd64)",
        allow_module_level=True,
    )


@pytest.mark.parametrize("name", ["http_failover", "ws_continuity"])
def test_the_fast_form_passes_against_the_reference_router_on_anvil_nodes(tmp_path, name):
    result = run_battle(["run", name, "--providers", "anvil", "--runs-dir", str(tmp_path)])
    assert result.returncode == 0, result.stdout + result.stderr
    run = only_run(tmp_path)
    assert "provider A: anvil" in result.stdout
    report = report_of(tmp_path)
    assert_passed(report)
    assert_no_process_left(run)
