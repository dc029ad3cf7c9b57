"""The rate_limited_provider built-in through `battle run`, issue 6's end-to-end proof
of rate-limit demotion: the fast form passes against the reference router, and with
`rate_limit` off (the 429s count as failures, the breaker alone holds the router back)
it fails, naming the SLO on attempts that met A's limit, although clients saw nothing
wrong."""

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
    result = run_battle(["run", "rate_limited_provider", "--runs-dir", str(tmp_path)])
    assert result.returncode == 0, result.stdout + result.stderr
    report = report_of(tmp_path)
    assert report["verdict"] == "passed"
    assert_valid(report)
    # A did meet its limit: the limit was applied, and honoured.
    assert slo(report, "limited_attempts")["observed"] >= 1
    assert_no_process_left(only_run(tmp_path))


def test_with_rate_limit_off_the_router_hammers_the_limited_provider(tmp_path):
    off = ["--set", "sut.options.rate_limit=false"]
    result = run_battle(["run", "rate_limited_provider", *off, "--runs-dir", str(tmp_path)])
    assert result.returncode == 1, result.stdout + result.stderr
    report = report_of(tmp_path)
    assert report["verdict"] == "failed"
    assert_valid(report)
    assert "limited_attempts" in failing(report)
    # Failover hid it from the clients: only the upstream side shows the defect.
    assert slo(report, "success")["passed"]
    expression = slo(report, "limited_attempts")["expression"]
    assert f"FAIL SLO {expression}" in result.stdout
    assert expression in (only_run(tmp_path) / "report.md").read_text()
    assert_no_process_left(only_run(tmp_path))
