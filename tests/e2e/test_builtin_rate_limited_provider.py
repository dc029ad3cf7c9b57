"""The rate_limited_provider built-in through `battle run`, issue 6's end-to-end proof
of rate-limit demotion: the fast form passes against the reference router, and with
`rate_limit` off (the 429s count as failures, the breaker alone holds the router back)
it fails on `no_retry_after_breach`, the router sending calls to A inside the
Retry-After A had just answered, although clients saw nothing wrong."""

from __future__ import annotations

import duckdb
from battle_cli import (
    assert_caught,
    assert_no_process_left,
    assert_passed,
    only_run,
    report_of,
    run_battle,
    slo,
)

from scenarios.builtin.rate_limited_provider import RETRY_AFTER_S


def limited_answers(run) -> int:
    """A's answers that met its limit (HTTP 429 inside the fault's window)."""
    con = duckdb.connect(str(run / "run.duckdb"), read_only=True)
    try:
        return con.execute(
            "SELECT count(*) FROM upstream"
            " WHERE provider = 'A' AND fault_id = 'a-limit' AND http_status = 429"
        ).fetchone()[0]
    finally:
        con.close()


def test_the_fast_form_passes_against_the_reference_router(tmp_path):
    result = run_battle(["run", "rate_limited_provider", "--runs-dir", str(tmp_path)])
    assert result.returncode == 0, result.stdout + result.stderr
    report = report_of(tmp_path)
    assert_passed(report)
    # A did meet its limit (the limit was applied), and the Retry-After was honoured.
    assert limited_answers(only_run(tmp_path)) >= 1
    assert slo(report, "no_retry_after_breach")["observed"] == 0
    assert_no_process_left(only_run(tmp_path))


def test_with_rate_limit_off_the_router_ignores_the_retry_after(tmp_path):
    off = ["--set", "sut.options.rate_limit=false"]
    result = run_battle(["run", "rate_limited_provider", *off, "--runs-dir", str(tmp_path)])
    assert result.returncode == 1, result.stdout + result.stderr
    report = report_of(tmp_path)
    assert_caught(report, {"no_retry_after_breach"})
    # Each witness is a call sent to A within the Retry-After of a limit answer.
    for witness in slo(report, "no_retry_after_breach")["witnesses"]:
        assert witness["provider"] == "A", witness
        assert witness["after_limit_s"] < RETRY_AFTER_S, witness
    # Failover hid it from the clients: only the upstream side shows the defect.
    assert slo(report, "no_unrescued_failure")["passed"]
    expression = slo(report, "no_retry_after_breach")["expression"]
    assert f"FAIL SLO {expression}" in result.stdout
    assert expression in (only_run(tmp_path) / "report.md").read_text()
    assert_no_process_left(only_run(tmp_path))
