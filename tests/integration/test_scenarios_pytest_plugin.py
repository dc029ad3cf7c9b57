"""The pytest plugin, as a team would use it: a separate pytest session (found through
the `pytest11` entry point) whose tests carry `@pytest.mark.battle` and take `battle`."""

from __future__ import annotations

import subprocess
import sys
import textwrap

TESTS = """
import pytest
from scenarios import HttpLoad, Scenario, mock

TINY = Scenario(name="tiny", providers=[mock("A")], duration_s=3,
                workloads=[HttpLoad(rate=10, mix="eth_blockNumber=1")],
                slos=["success_rate >= 0.99"])
IMPOSSIBLE = ["slos=['success_rate > 1']"]

@pytest.mark.battle(TINY)
def test_a_passing_run_hands_back_its_result(battle):
    assert battle.passed and battle.metrics["requests_total"] == 30
    assert (battle.run_dir / "report.md").exists()

@pytest.mark.battle(TINY, set=IMPOSSIBLE, expect="failed")
def test_an_expected_failure_passes(battle):
    assert battle.failed_slos == ["success_rate"]

@pytest.mark.battle(TINY, set=IMPOSSIBLE)
def test_an_unexpected_failure_fails_the_test(battle):
    pass

@pytest.mark.battle(TINY, profile={"come_back_s": 7})
def test_the_router_profile_reaches_the_run(battle):
    import json
    spec = json.loads((battle.run_dir / "scenario.json").read_text())
    assert spec["expect"]["come_back_s"] == 7 and spec["expect_declared"] == ["come_back_s"]

@pytest.mark.battle("no_such_builtin")
def test_a_bad_scenario_is_an_error(battle):
    pass
"""


def test_the_plugin_runs_the_marked_scenario_and_gates_on_its_verdict(tmp_path):
    (tmp_path / "test_router.py").write_text(textwrap.dedent(TESTS))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
         "--battle-runs-dir", str(tmp_path / "runs"), "test_router.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "1 failed, 3 passed" in out and "1 error" in out, out
    assert "battle verdict failed, expected passed" in out
    assert "FAIL SLO success_rate > 1" in out
    assert "no built-in scenario 'no_such_builtin'" in out
    assert len(list((tmp_path / "runs").iterdir())) == 4
