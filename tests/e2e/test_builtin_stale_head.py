"""The stale_head built-in through `battle run`, issue 6's end-to-end proof of head
tracking: the fast form passes against the reference router (no client is sent A's
stale answers). A router without head tracking, or whose heads go backwards, failing on
`heads_monotonic` is proven on routers Battle did not write (tests/e2e/matrix.py)."""

from __future__ import annotations

from battle_cli import (
    assert_no_process_left,
    assert_passed,
    only_run,
    report_of,
    run_battle,
    slo,
)

from scenarios.builtin.stale_head import FAST

LAG_BLOCKS = FAST[4]


def test_the_fast_form_passes_against_the_reference_router(tmp_path):
    result = run_battle(["run", "stale_head", "--runs-dir", str(tmp_path)])
    assert result.returncode == 0, result.stdout + result.stderr
    report = report_of(tmp_path)
    assert_passed(report)
    assert slo(report, "heads_monotonic")["observed"] == 0
    # Head tracking kept A's stale answers from the clients.
    assert report["metrics"]["head_lag_max_blocks"] < LAG_BLOCKS
    assert_no_process_left(only_run(tmp_path))
