"""The ws_continuity built-in through `battle run` (issue 6's WebSocket proof end to
end): the fast form passes against the reference router, and with each of its
WebSocket behaviours switched off (resubscribe elsewhere, backfill over HTTP, drop
repeats by hash) the same scenario fails, the report naming the SLOs that caught it."""

from __future__ import annotations

import pytest
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
    assert_no_process_left(only_run(tmp_path))


# ws_every_block and ws_sessions_kept are ws_continuity's own SQL SLOs, which declare no
# witness query: they must fail, but list no witnesses.
OWN_SQL = frozenset({"ws_every_block", "ws_sessions_kept"})
OFF = [
    # (behaviour switched off, SLOs that must catch it). Without resubscribe the router
    # ends its clients' sessions when its upstream stalls or closes: the clients
    # reconnect and miss the blocks in between (no gap inside one subscription, so
    # ws_no_gap holds; ws_every_block counts across reconnects).
    ("resubscribe = false", {"ws_sessions_kept", "ws_every_block"}),
    # Without backfill the blocks the drop and the stall hid never reach the clients.
    ("backfill_limit = 0", {"ws_no_gap", "ws_every_block"}),
    # Without dedupe the blocks A repeats reach the clients twice.
    ("dedupe = false", {"ws_no_duplicate"}),
]


@pytest.mark.parametrize(("off", "caught_by"), OFF, ids=[o for o, _ in OFF])
def test_the_fast_form_fails_with_a_websocket_behaviour_off(tmp_path, off, caught_by):
    setting = f"sut.options.websocket={{{off}}}"
    result = run_battle(["run", "ws_continuity", "--set", setting, "--runs-dir", str(tmp_path)])
    assert result.returncode == 1, result.stdout + result.stderr
    report = report_of(tmp_path)
    assert_caught(report, caught_by, unwitnessed=OWN_SQL)
    for name in caught_by:
        assert f"FAIL SLO {slo(report, name)['expression']}" in result.stdout
    assert_no_process_left(only_run(tmp_path))
