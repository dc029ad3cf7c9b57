"""The long_running_stability built-in through `battle run`: its fast form passes against
the reference router (A flapping through the whole run, the breaker opening and closing
each time); the same scenario against a router that really leaks memory on every call
(tests/e2e/leaky_router.py, a managed SUT) fails on its memory-growth SLO."""

from __future__ import annotations

from pathlib import Path

from battle_cli import (
    assert_caught,
    assert_no_process_left,
    assert_passed,
    only_run,
    report_of,
    run_battle,
    slo,
)

from scenarios.builtin.long_running_stability import FAST

HERE = Path(__file__).resolve().parent
OUTAGES = FAST[5]

LEAKY_SCENARIO = f"""
from scenarios.api import managed
from scenarios.builtin import get


def build(full: bool = False):
    leaky = managed(
        ["{{python}}", {str(HERE / "leaky_router.py")!r}, "--config", "{{config}}"],
        template={str(HERE / "leaky_router.toml.j2")!r},
        config_name="router.toml",
        ready="GET /health",
        metrics_path="/metrics",
        ws_path="/",
    )
    return get("long_running_stability").scenario(full=full).replace(sut=leaky)
"""


def test_the_fast_form_passes_against_the_reference_router(tmp_path):
    result = run_battle(["run", "long_running_stability", "--runs-dir", str(tmp_path)])
    assert result.returncode == 0, result.stdout + result.stderr
    report = report_of(tmp_path)
    assert_passed(report)
    # Every outage was one breaker cycle: opened (stopped sending), closed (came back).
    cycles = report["tables"]["breaker_table"]
    assert len(cycles) == OUTAGES
    assert all(c["stop_ms"] is not None and c["return_ms"] is not None for c in cycles)
    assert slo(report, "memory_growth")["observed"] is not None
    assert_no_process_left(only_run(tmp_path))


def test_a_router_that_leaks_memory_fails_the_memory_growth_slo(tmp_path):
    scenario = tmp_path / "leaky_stability.py"
    scenario.write_text(LEAKY_SCENARIO)
    runs = tmp_path / "runs"
    result = run_battle(["run", str(scenario), "--runs-dir", str(runs)])
    assert result.returncode == 1, result.stdout + result.stderr
    report = report_of(runs)
    # memory_growth is the scenario's own SQL SLO (the RSS slope after its warm-up),
    # with no witness query.
    assert_caught(report, {"memory_growth"}, unwitnessed=frozenset({"memory_growth"}))
    # 64 KB kept per call: the slope's lower bound is far above the profile's 0.5 KB.
    assert slo(report, "memory_growth")["observed"] > 10
    assert "FAIL SLO memory_growth" in result.stdout
    assert_no_process_left(only_run(runs))
