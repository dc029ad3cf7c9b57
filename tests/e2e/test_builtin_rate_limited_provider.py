"""The rate_limited_provider built-in through `battle run`, issue 6's end-to-end proof
of rate-limit demotion: the fast form passes against the reference router, honouring
A's Retry-After. A router that ignores it failing on `no_retry_after_breach` is proven
on routers Battle did not write (tests/e2e/matrix.py)."""

from __future__ import annotations

import duckdb
from battle_cli import (
    assert_no_process_left,
    assert_passed,
    only_run,
    report_of,
    run_battle,
    slo,
)


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
