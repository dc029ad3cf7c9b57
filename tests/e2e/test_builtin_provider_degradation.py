"""The provider_degradation built-in through `battle run`, issue 6's end-to-end proof of
timeout handling: the fast form passes against the reference router (`fastest`,
breaker on). Routers with other policies passing it, and attempt timeouts longer than a
client waits failing it on `no_hung_call`, are proven on routers Battle did not write
(tests/e2e/matrix.py)."""

from __future__ import annotations

from battle_cli import (
    assert_no_process_left,
    assert_passed,
    only_run,
    report_of,
    run_battle,
    slo,
)

JUDGED = {"no_unrescued_failure", "no_wrong_answer", "no_hung_call", "no_retry_storm",
          "hang_bounded", "route_away"}  # fmt: skip


def test_the_fast_form_passes_against_the_reference_router(tmp_path):
    result = run_battle(["run", "provider_degradation", "--runs-dir", str(tmp_path)])
    assert result.returncode == 0, result.stdout + result.stderr
    report = report_of(tmp_path)
    assert_passed(report)  # valid: the ramp and the hang both touched exchanges with A
    assert JUDGED <= {s["name"] for s in report["slos"]}
    # The breaker cut A off at the hang's first timeouts: no call waited on it.
    assert slo(report, "hang_bounded")["observed"] < 2000
    assert_no_process_left(only_run(tmp_path))
