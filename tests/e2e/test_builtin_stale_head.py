"""The stale_head built-in through `battle run`, issue 6's end-to-end proof of head
tracking: the fast form passes against the reference router (no client is sent A's
stale answers), and with `head_tracking` off it fails on `heads_monotonic`, clients
getting a head lower than one answered before; how stale the answers got is reported
(`head_lag_max_blocks`), not failed on."""

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


def test_with_head_tracking_off_clients_see_heads_go_backwards(tmp_path):
    off = ["--set", "sut.options.head_tracking=false"]
    result = run_battle(["run", "stale_head", *off, "--runs-dir", str(tmp_path)])
    assert result.returncode == 1, result.stdout + result.stderr
    report = report_of(tmp_path)
    assert_caught(report, {"heads_monotonic"})
    # Each witness: a head lower than one this client was answered before.
    for witness in slo(report, "heads_monotonic")["witnesses"]:
        assert witness["result_block"] < witness["seen_max"], witness
    # The stale answers reached the clients: the fault's whole lag, reported.
    assert report["metrics"]["head_lag_max_blocks"] >= LAG_BLOCKS
    expression = slo(report, "heads_monotonic")["expression"]
    assert f"FAIL SLO {expression}" in result.stdout
    assert expression in (only_run(tmp_path) / "report.md").read_text()
    assert_no_process_left(only_run(tmp_path))
