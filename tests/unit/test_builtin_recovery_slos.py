"""The raw-SQL SLOs of the total_outage built-in, judged exactly as the scenario states
them on literal rows (once on a run that fails, once on one that passes), and the
breaker view's handling of an exchange the fault hit a moment before its recorded
start, which the built-ins' route-away SLOs rely on."""

from __future__ import annotations

import duckdb
import pytest
from analysis_rows import fault, make_run, req, stopped, up

from analysis import CheckResult
from analysis.database import ingest
from scenarios.builtin import get

OUTAGE = [e for p in "abc" for e in fault(f"{p}-down", p.upper(), 3, 7)]


def judge(tmp_path, slo_name: str, tables: dict, name: str) -> CheckResult:
    """total_outage's fast-form SLO `slo_name` on a run of `tables`."""
    (check,) = [s for s in get("total_outage").scenario().slos if s.name == slo_name]
    con = duckdb.connect(str(ingest(make_run(tmp_path, tables, name=name))))
    return check.judge(con)


def calls(failing_until_s: float, outcome: str = "http_error") -> list[dict]:
    """A call every 100 ms for 26 s, failing from 3 s (the outage) to `failing_until_s`."""
    return [req(i, i * 100, outcome=outcome if 3000 <= i * 100 < failing_until_s * 1000
                else "ok") for i in range(260)]  # fmt: skip


def test_recovery_time_fires_when_clients_fail_long_after_the_outage(tmp_path):
    # Failures until 23.5 s: the second [23, 24) is the last bad one; the outage ended at
    # 7.001 s (the helper records transitions 1 ms late): 17 s, over the profile's 15 s.
    slow = judge(tmp_path, "recovery_time", {"requests": calls(23.5), "fault_events": OUTAGE},
                 "slow")  # fmt: skip
    assert (slow.observed, slow.passed) == (pytest.approx(16.999), False)
    assert slow.witnesses[0]["second_after_t0"] == 7 and slow.witness_count == 17
    quick = judge(tmp_path, "recovery_time", {"requests": calls(9.2), "fault_events": OUTAGE},
                  "quick")  # fmt: skip
    assert (quick.observed, quick.passed) == (pytest.approx(2.999), True)


def test_recovery_time_is_zero_when_clients_are_fine_once_the_outage_ends(tmp_path):
    ended = judge(tmp_path, "recovery_time", {"requests": calls(7.0), "fault_events": OUTAGE},
                  "ended")  # fmt: skip
    # The second [7, 8) holds calls from 7.0 s on only, all answered.
    assert (ended.observed, ended.passed) == (0, True)


def test_no_hung_call_fires_on_a_call_that_timed_out(tmp_path):
    hung = judge(tmp_path, "no_hung_call",
                 {"requests": calls(3.2, outcome="timeout"), "fault_events": OUTAGE},
                 "hung")  # fmt: skip
    assert (hung.observed, hung.passed) == (2, False)
    fast = judge(tmp_path, "no_hung_call", {"requests": calls(9.0), "fault_events": OUTAGE},
                 "fast")  # fmt: skip
    assert (fast.observed, fast.passed) == (0, True)


def test_an_exchange_hit_just_before_the_recorded_start_counts_as_the_faults(tmp_path):
    # The fault's start is recorded at 3.001 s; the proxy received a request at 3.0007 s
    # and already applied the fault to it. The router then left A alone until a probe
    # at 5.2 s: it stopped at once, not never.
    ups = [up(1, "A", 3000.7, outcome="reset", fault="a-down"), up(2, "B", 3000.8),
           up(None, "A", 5200, outcome="reset", fault="a-down", flow="probe"),
           up(3, "A", 8000)]  # fmt: skip
    tables = {"requests": [req(1, 3000), req(2, 3000), req(3, 8000)], "upstream": ups,
              "fault_events": fault("a-down", "A", 3, 6), "lifecycle": [stopped(0, 3)]}  # fmt: skip
    con = duckdb.connect(str(ingest(make_run(tmp_path, tables))))
    row = con.execute("SELECT stop_ms, wasted_attempts, probes FROM breaker").fetchone()
    # The probe carries no client tag: the router's own traffic, not a client probe.
    assert row == (0, 1, 0)
