"""The concurrent_load built-in through `battle run`: against the reference router on a
healthy fleet its fast form climbs every step, reports the highest holding rate and
passes; on a fleet whose providers cap their rate (3 x 20 req/s) the figure drops below
the steps they cannot carry and the SLO naming it fails."""

from __future__ import annotations

from battle_cli import (
    assert_caught,
    assert_no_process_left,
    assert_passed,
    only_run,
    report_of,
    run_battle,
    slo,
)

from scenarios.builtin.concurrent_load import FAST

STEP_RATES = [rate for rate, _ in FAST[0]]
REQUIRED = FAST[1]


def test_the_fast_form_reports_the_highest_holding_rate_and_passes(tmp_path):
    result = run_battle(["run", "concurrent_load", "--runs-dir", str(tmp_path)])
    assert result.returncode == 0, result.stdout + result.stderr
    report = report_of(tmp_path)
    assert_passed(report)
    figure = slo(report, "highest_holding_rate")
    assert figure["observed"] in STEP_RATES
    assert figure["observed"] >= REQUIRED
    assert f"highest_holding_rate: value >= {REQUIRED} (observed" in result.stdout
    # The router's own time per call is judged (policy) and reported.
    assert slo(report, "overhead")["observed"] is not None
    assert_no_process_left(only_run(tmp_path))


def test_a_fleet_that_caps_its_rate_lowers_the_figure_and_fails(tmp_path):
    limited = tmp_path / "limited.toml"
    limited.write_text("".join(
        f'[[providers]]\nname = "{name}"\n'
        "behaviour = { rate_limit = { rps = 20, burst = 20 } }\n"
        for name in "ABC"
    ))  # fmt: skip
    runs = tmp_path / "runs"
    result = run_battle(["run", "concurrent_load", "--providers", str(limited),
                         "--runs-dir", str(runs)])  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    report = report_of(runs)
    # highest_holding_rate is the scenario's own SQL SLO, with no witness query.
    assert_caught(report, {"highest_holding_rate"}, unwitnessed=frozenset({"highest_holding_rate"}))
    # The fleet carries 60 req/s in all (and a burst of 60): the 100 req/s step cannot hold.
    assert slo(report, "highest_holding_rate")["observed"] < 100
    assert "FAIL SLO highest_holding_rate" in result.stdout
    assert_no_process_left(only_run(runs))
