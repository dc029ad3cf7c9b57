"""The ws_continuity built-in through `battle run` (issue 6's WebSocket proof end to
end): the fast form passes against the reference router, every fault having touched
the feed. Routers without resubscription, gap fill or dedupe failing it on the SLOs
that name them are proven on routers Battle did not write (tests/e2e/matrix.py)."""

from __future__ import annotations

from battle_cli import (
    assert_no_process_left,
    assert_passed,
    only_run,
    report_of,
    run_battle,
    slo,
)


def test_the_fast_form_passes_against_the_reference_router(tmp_path):
    result = run_battle(["run", "ws_continuity", "--runs-dir", str(tmp_path)])
    assert result.returncode == 0, result.stdout + result.stderr
    report = report_of(tmp_path)
    assert_passed(report)  # valid: every fault (drop, repeat, stall, close) touched the feed
    assert slo(report, "ws_every_block")["observed"] == 0
    assert slo(report, "ws_no_gap")["observed"] == 0
    assert report["metrics"]["ws_gap_blocks"] == 0
    # The router did move: off the stalled A and off the closed B.
    assert slo(report, "upstream_move_away")["observed"] > 0
    # It did fill the gaps the drop and the stall left, over HTTP.
    assert slo(report, "backfill_fetches")["observed"] > 0
    assert_no_process_left(only_run(tmp_path))
