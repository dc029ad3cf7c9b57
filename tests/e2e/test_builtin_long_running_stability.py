"""The long_running_stability built-in through `battle run`: its fast form passes against
the reference router (A flapping through the whole run, the breaker opening and closing
each time). A router that leaks ~1 KB per call failing its memory-growth SLO is proven
on a router Battle did not write (tests/e2e/matrix.py, aio_priority's slow_leak)."""

from __future__ import annotations

from battle_cli import (
    assert_no_process_left,
    assert_passed,
    only_run,
    report_of,
    run_battle,
    slo,
)

from scenarios.builtin.long_running_stability import FAST

OUTAGES = FAST[5]


def test_the_fast_form_passes_against_the_reference_router(tmp_path):
    result = run_battle(["run", "long_running_stability", "--runs-dir", str(tmp_path)])
    assert result.returncode == 0, result.stdout + result.stderr
    report = report_of(tmp_path)
    assert_passed(report)
    # Every outage was one breaker cycle: opened (stopped sending), closed (came back).
    cycles = report["tables"]["breaker_table"]
    assert len(cycles) == OUTAGES
    assert all(c["stop_ms"] is not None and c["return_ms"] is not None for c in cycles)
    assert slo(report, "memory_growth")["observed"] is not None
    assert_no_process_left(only_run(tmp_path))
