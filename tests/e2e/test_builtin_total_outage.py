"""The total_outage built-in through `battle run`: the fast form passes against the
reference router, and fails against it when its breaker backs off too far after a
failed probe (`backoff_factor = 16`: reopened for 30 s, its cap, past the providers'
return and the run's end), the report naming the recovery SLOs: every provider
abandoned, none back in time, clients not served again."""

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


def test_the_fast_form_passes_against_the_reference_router(tmp_path):
    result = run_battle(["run", "total_outage", "--runs-dir", str(tmp_path)])
    assert result.returncode == 0, result.stdout + result.stderr
    report = report_of(tmp_path)
    assert_passed(report)  # valid: all three outages touched exchanges
    # Clients did see the outage: the scenario is not passing for want of a fault.
    assert slo(report, "recovery_time")["observed"] > 0
    assert_no_process_left(only_run(tmp_path))


def test_a_breaker_that_backs_off_too_far_fails_the_recovery_slos(tmp_path):
    # backoff_factor = 8 (reopened for 16 s) recovers at expect.recovery_s's limit
    # (15 s: observed 14.999) and passes or fails by milliseconds; 16 hits the breaker's
    # 30 s cap, far past it.
    slow = ["--set", "sut.options.circuit_breaker={backoff_factor = 16}"]
    result = run_battle(["run", "total_outage", *slow, "--runs-dir", str(tmp_path)])
    assert result.returncode == 1, result.stdout + result.stderr
    report = report_of(tmp_path)
    caught_by = {"no_abandoned_provider", "recovery_time", "come_back"}
    assert_caught(report, caught_by)
    # Every provider carried traffic before the outage and none after it.
    abandoned = {w["provider"] for w in slo(report, "no_abandoned_provider")["witnesses"]}
    assert abandoned == {"A", "B", "C"}
    markdown = (only_run(tmp_path) / "report.md").read_text()
    for name in caught_by:
        assert f"FAIL SLO {slo(report, name)['expression']}" in result.stdout
        assert slo(report, name)["expression"] in markdown
    assert_no_process_left(only_run(tmp_path))
