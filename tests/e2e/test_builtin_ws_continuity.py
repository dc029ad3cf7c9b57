"""The ws_continuity built-in through `battle run` (issue 6's WebSocket proof end to
end): the fast form passes against the reference router, and with each of its
WebSocket behaviours switched off (resubscribe elsewhere, backfill over HTTP, drop
repeats by hash) the same scenario fails, the report naming the SLOs that caught it."""

from __future__ import annotations

import pytest
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
    result = run_battle(["run", "ws_continuity", "--runs-dir", str(tmp_path)])
    assert result.returncode == 0, result.stdout + result.stderr
    report = report_of(tmp_path)
    assert report["verdict"] == "passed"
    assert_valid(report)  # every fault (drop, repeat, stall, close) touched the feed
    assert slo(report, "ws_every_block")["observed"] == 0
    assert report["metrics"]["ws_gap_blocks"] == 0
    # The router did move: off the stalled A and off the closed B.
    assert slo(report, "upstream_move_away")["observed"] > 0
    assert_no_process_left(only_run(tmp_path))


OFF = [
    # (behaviour switched off, SLOs that must catch it)
    ("resubscribe = false", {"ws_sessions_kept", "ws_every_block"}),
    ("backfill_limit = 0", {"ws_gaps", "ws_every_block"}),
    ("dedupe = false", {"ws_duplicates"}),
]


@pytest.mark.parametrize(("off", "caught_by"), OFF, ids=[o for o, _ in OFF])
def test_the_fast_form_fails_with_a_websocket_behaviour_off(tmp_path, off, caught_by):
    setting = f"sut.options.websocket={{{off}}}"
    result = run_battle(["run", "ws_continuity", "--set", setting, "--runs-dir", str(tmp_path)])
    assert result.returncode == 1, result.stdout + result.stderr
    report = report_of(tmp_path)
    assert_valid(report)
    assert caught_by <= failing(report), failing(report)
    for name in caught_by:
        assert f"FAIL SLO {slo(report, name)['expression']}" in result.stdout
    assert_no_process_left(only_run(tmp_path))
