"""The total_outage built-in through `battle run`: the fast form passes against the
reference router, and fails against it when its breaker backs off too far after a
failed probe (`backoff_factor = 8`: reopened for 16 s, past the providers' return),
the report naming the recovery SLOs."""

from __future__ import annotations

from battle_cli import (
    assert_no_process_left,
    assert_valid,
    failing,
    only_run,
    report_of,
    run_battle,
    slo,
)


def test_the_fast_form_passes_against_the_reference_router(tmp_path):
    result = run_battle(["run", "total_outage", "--runs-dir", str(tmp_path)])
    assert result.returncode == 0, result.stdout + result.stderr
    report = report_of(tmp_path)
    assert report["verdict"] == "passed"
    assert_valid(report)  # all three outages touched exchanges
    # Clients did see the outage: the scenario is not passing for want of a fault.
    assert slo(report, "recovery_time")["observed"] > 0
    assert_no_process_left(only_run(tmp_path))


def test_a_breaker_that_backs_off_too_far_fails_the_recovery_slos(tmp_path):
    slow = ["--set", "sut.options.circuit_breaker={backoff_factor = 8}"]
    result = run_battle(["run", "total_outage", *slow, "--runs-dir", str(tmp_path)])
    assert result.returncode == 1, result.stdout + result.stderr
    report = report_of(tmp_path)
    assert report["verdict"] == "failed"
    assert_valid(report)
    caught_by = {"success_outside", "recovery_success", "recovery_time", "come_back"}
    assert failing(report) == caught_by
    markdown = (only_run(tmp_path) / "report.md").read_text()
    for name in caught_by:
        assert f"FAIL SLO {slo(report, name)['expression']}" in result.stdout
        assert slo(report, name)["expression"] in markdown
    assert_no_process_left(only_run(tmp_path))
