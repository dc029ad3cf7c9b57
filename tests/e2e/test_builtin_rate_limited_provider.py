"""The rate_limited_provider built-in through `battle run`: the fast form passes against
the reference router, which fails over from each of the six limit shapes and honours
every Retry-After, with a per-shape back-off table in the report; with its in-body
recognition off it still fails over but returns to a provider that said "limit" inside
an HTTP 200 at once, and the declared back-off catches it. A router that ignores
Retry-After failing on `no_retry_after_breach` is proven on routers Battle did not write
(tests/e2e/matrix.py)."""

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

from scenarios.builtin.rate_limited_provider import SHAPES

# Declared so that the pass also shows the declared back-off quiet on a router that
# keeps one (the reference router's default back-off without a hint is 1 s).
DECLARED = ["--expect", "rate_limit_backoff_s=0.5"]
IN_BODY_SHAPES = {"a-200-body-backoff", "b-200-32007", "c-200-429"}


def limited_answers(run) -> dict[str, int]:
    """Per fault, the answers that met its limit."""
    con = duckdb.connect(str(run / "run.duckdb"), read_only=True)
    try:
        rows = con.execute(
            "SELECT fault_id, count(*) FROM upstream"
            " WHERE fault_kind = 'rate_limit' GROUP BY fault_id"
        ).fetchall()
    finally:
        con.close()
    return dict(rows)


def test_the_fast_form_passes_against_the_reference_router_in_every_shape(tmp_path):
    result = run_battle(["run", "rate_limited_provider", *DECLARED, "--runs-dir", str(tmp_path)])
    assert result.returncode == 0, result.stdout + result.stderr
    report = report_of(tmp_path)
    assert_passed(report)
    # Every shape did meet its limit (each was applied), and no back-off was breached.
    run = only_run(tmp_path)
    answers = limited_answers(run)
    assert set(answers) == {s[0] for s in SHAPES}, answers
    assert slo(report, "no_retry_after_breach")["observed"] == 0
    table = {row["fault_id"]: row for row in report["tables"]["rate_limit_shapes"]}
    assert set(table) == set(answers)
    assert table["a-429-text"]["shape"] == "HTTP 429, text body, Retry-After 3 s"
    assert table["b-200-32007"]["asked_in"] == "none"
    assert table["a-200-body-backoff"]["asked_in"] == "body"
    # The router stayed away for the Retry-After it was given.
    assert table["b-429-jsonrpc"]["away_min_s"] >= 2.9, table["b-429-jsonrpc"]
    assert "Rate limits: back-off per answer shape" in (run / "report.md").read_text()
    assert_no_process_left(run)


def test_a_router_that_backs_off_only_on_http_429_breaks_the_declared_back_off(tmp_path):
    off = ["--set", "sut.options.rate_limit={in_body=false}"]
    result = run_battle(
        ["run", "rate_limited_provider", *off, *DECLARED, "--runs-dir", str(tmp_path)]
    )
    assert result.returncode == 1, result.stdout + result.stderr
    report = report_of(tmp_path)
    assert_caught(report, {"rate_limit_backoff"})
    # It still fails over (no client is failed) and honours the headers it can read.
    assert slo(report, "no_unrescued_failure")["passed"]
    assert slo(report, "no_retry_after_breach")["passed"]
    witnessed = {w["fault_id"] for w in slo(report, "rate_limit_backoff")["witnesses"]}
    assert witnessed and witnessed <= IN_BODY_SHAPES, witnessed
    assert_no_process_left(only_run(tmp_path))
