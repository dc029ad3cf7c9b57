"""The stale_head built-in through `battle run`, issue 6's end-to-end proof of head
tracking: the fast form passes against the reference router, and with `head_tracking`
off it fails, naming the SLOs on heads going backwards, stale answers and routing
away from the stale provider."""

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
    result = run_battle(["run", "stale_head", "--runs-dir", str(tmp_path)])
    assert result.returncode == 0, result.stdout + result.stderr
    report = report_of(tmp_path)
    assert report["verdict"] == "passed"
    assert_valid(report)
    assert slo(report, "heads_backwards")["observed"] == 0
    assert_no_process_left(only_run(tmp_path))


def test_with_head_tracking_off_clients_see_stale_and_backwards_heads(tmp_path):
    off = ["--set", "sut.options.head_tracking=false"]
    result = run_battle(["run", "stale_head", *off, "--runs-dir", str(tmp_path)])
    assert result.returncode == 1, result.stdout + result.stderr
    report = report_of(tmp_path)
    assert report["verdict"] == "failed"
    assert_valid(report)
    caught_by = {"heads_backwards", "stale_answers", "route_away"}
    assert caught_by <= failing(report), failing(report)
    assert slo(report, "stale_answers")["observed"] >= 10  # the fault's lag
    markdown = (only_run(tmp_path) / "report.md").read_text()
    for name in caught_by:
        assert f"FAIL SLO {slo(report, name)['expression']}" in result.stdout
        assert slo(report, name)["expression"] in markdown
    assert_no_process_left(only_run(tmp_path))
