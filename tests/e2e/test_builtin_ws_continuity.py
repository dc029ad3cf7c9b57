"""The ws_continuity built-in through `battle run` (issue 6's WebSocket proof end to
end): the fast form passes against the reference router, every fault having touched
the feed; with its silence detection off (a stall timeout longer than the run) the
zombie socket keeps its clients silent and `ws_silence` names it. Routers without
resubscription, gap fill, dedupe or silence detection failing it on the SLOs that name
them are proven on routers Battle did not write (tests/e2e/matrix.py)."""

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
    # The silent A was noticed: no client went without news for more than a few seconds.
    assert 2.0 < report["metrics"]["ws_silence_max_s"] < 6.0
    assert report["tables"]["ws_silence_table"]
    assert_no_process_left(only_run(tmp_path))


def test_a_router_that_never_notices_a_silent_upstream_fails_ws_silence(tmp_path):
    off = ["--set", "sut.options.websocket={stall_timeout_s=120}"]
    result = run_battle(["run", "ws_continuity", *off, "--runs-dir", str(tmp_path)])
    assert result.returncode == 1, result.stdout + result.stderr
    report = report_of(tmp_path)
    assert_caught(report, {"ws_silence", "upstream_move_away"})
    top = slo(report, "ws_silence")["witnesses"][0]
    assert top["silence_s"] > 10, top
    assert_no_process_left(only_run(tmp_path))
