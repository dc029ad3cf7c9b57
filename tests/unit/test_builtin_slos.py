"""The raw-SQL SLOs of the built-in scenarios ws_continuity and long_running_stability,
each judged exactly as the scenario states it, on literal rows: once on a run that
fails it and once on a run that passes."""

from __future__ import annotations

import duckdb
import pytest
from analysis_rows import T0, S, make_run, req, up

from analysis import CheckResult
from analysis.database import ingest
from scenarios.builtin import get

# The chain's schedule (true_head): block n produced at T0 + n seconds.
CHAIN = {"genesis_ns": T0, "block_time_ms": 1000}


def judge(tmp_path, scenario_name: str, slo_name: str, tables: dict, name: str) -> CheckResult:
    """The SLO `slo_name` of the built-in's fast form, judged on a run of `tables` (with
    calls from t0 to 20 s, the load's span)."""
    (check,) = [s for s in get(scenario_name).scenario().slos if s.name == slo_name]
    tables = {"requests": [req(0, 0), req(1, 20_000)], **tables}
    run = make_run(tmp_path, tables, scenario=CHAIN, name=name)
    con = duckdb.connect(str(ingest(run)))
    return check.judge(con)


# --- ws_continuity --------------------------------------------------------------------


def head(block: int, at_s: float, connection: str, sub: str) -> dict:
    return {"worker": 0, "connection": connection, "subscription": sub, "kind": "newHeads",
            "block_number": block, "block_hash": f"h{block}", "parent_hash": f"h{block - 1}",
            "t_received": T0 + int(at_s * S)}  # fmt: skip


def test_every_block_counts_blocks_lost_across_a_reconnect(tmp_path):
    # Client c0 resubscribed (s1 -> s2) and never saw blocks 4 and 5; c1 saw all.
    lost = [head(n, n, "c0", "s1") for n in (1, 2, 3)] + [head(n, n, "c0", "s2") for n in (6, 7)]
    whole = [head(n, n, "c1", "s3") for n in range(1, 8)]
    failed = judge(tmp_path, "ws_continuity", "ws_every_block",
                   {"ws_notifications": lost + whole}, "lost")  # fmt: skip
    assert (failed.observed, failed.passed) == (2, False)
    passed = judge(tmp_path, "ws_continuity", "ws_every_block",
                   {"ws_notifications": whole}, "whole")  # fmt: skip
    assert (passed.observed, passed.passed) == (0, True)


def session(event: str, at_s: float) -> dict:
    return {"worker": 0, "connection": "c0", "event": event, "t": T0 + int(at_s * S)}


def test_sessions_kept_fires_when_the_router_drops_a_client(tmp_path):
    dropped = [session("connect", 0), session("subscribe", 0.1), session("disconnect", 5),
               session("reconnect", 5.5), session("subscribe", 5.6)]  # fmt: skip
    failed = judge(tmp_path, "ws_continuity", "ws_sessions_kept",
                   {"ws_sessions": dropped}, "dropped")  # fmt: skip
    assert (failed.observed, failed.passed) == (1, False)
    kept = [session("connect", 0), session("subscribe", 0.1), session("close", 20)]
    passed = judge(tmp_path, "ws_continuity", "ws_sessions_kept",
                   {"ws_sessions": kept}, "kept")  # fmt: skip
    assert (passed.observed, passed.passed) == (0, True)


def test_kept_up_fires_when_a_client_stops_getting_blocks(tmp_path):
    subscribed = [{**session("subscribe", 0.1), "connection": c} for c in ("c0", "c1")]
    silent = [head(n, n + 0.05, "c0", "s1") for n in range(1, 21)]
    silent += [head(n, n + 0.05, "c1", "s2") for n in range(1, 6)]  # nothing after block 5
    failed = judge(tmp_path, "ws_continuity", "ws_kept_up",
                   {"ws_sessions": subscribed, "ws_notifications": silent}, "silent")  # fmt: skip
    assert (failed.observed, failed.passed) == (15, False)
    both = [head(n, n + 0.05, c, s) for c, s in (("c0", "s1"), ("c1", "s2")) for n in range(1, 21)]
    passed = judge(tmp_path, "ws_continuity", "ws_kept_up",
                   {"ws_sessions": subscribed, "ws_notifications": both}, "both")  # fmt: skip
    assert (passed.observed, passed.passed) == (0, True)


def stall(provider: str, start_s: float, end_s: float) -> list[dict]:
    base = {"fault_id": f"{provider.lower()}-stall", "provider": provider, "kind": "ws_stall",
            "params": "{}", "planned_start": T0 + int(start_s * S),
            "planned_end": T0 + int(end_s * S)}  # fmt: skip
    return [{**base, "event": "start", "t": base["planned_start"]},
            {**base, "event": "end", "t": base["planned_end"]}]  # fmt: skip


def opened(provider: str, at_s: float) -> dict:
    return {"provider": provider, "proxy": "p0", "conn_id": f"c-{provider}-{at_s}",
            "action": "open", "t": T0 + int(at_s * S),
            "flow_id": f"f-{provider}-{at_s}"}  # fmt: skip


def test_move_away_is_the_time_until_a_socket_opens_on_another_provider(tmp_path):
    moved = {"fault_events": stall("A", 5, 10), "upstream_ws": [opened("A", 0), opened("B", 8)]}
    passed = judge(tmp_path, "ws_continuity", "upstream_move_away", moved, "moved")
    assert (passed.observed, passed.passed) == (pytest.approx(3000), True)
    # Reopening on the stalled provider itself is not moving away; nothing else opened.
    stuck = {"fault_events": stall("A", 5, 10), "upstream_ws": [opened("A", 0), opened("A", 8)]}
    failed = judge(tmp_path, "ws_continuity", "upstream_move_away", stuck, "stuck")
    assert failed.passed is False and failed.observed > 5000


# --- long_running_stability -----------------------------------------------------------


def sample(at_s: float, rss_mb: float) -> dict:
    return {"t": T0 + int(at_s * S), "pid": 7, "role": "sut", "cpu": 0.1,
            "rss": int(rss_mb * 1e6)}  # fmt: skip


def test_memory_growth_ignores_the_warm_up_and_fires_on_a_steady_leak(tmp_path):
    # Ten calls a second for 20 s. Start-up: 40 MB -> 60 MB in the first 4 s, then flat
    # (noise of 0.2 MB).
    served = {"requests": [req(i, i * 100) for i in range(200)]}
    flat = [sample(s, 40 + 5 * s) for s in range(4)] + [
        sample(s, 60 + 0.2 * (s % 2)) for s in range(4, 21)
    ]
    passed = judge(tmp_path, "long_running_stability", "memory_growth",
                   {**served, "system": flat}, "flat")  # fmt: skip
    assert passed.passed and passed.observed < 0.5
    # A leak of 1 KB per call after warm-up: 10 KB a second.
    leak = [sample(s, 60 + 0.01 * s) for s in range(21)]
    failed = judge(tmp_path, "long_running_stability", "memory_growth",
                   {**served, "system": leak}, "leak")  # fmt: skip
    assert failed.observed == pytest.approx(1.0, abs=0.05) and not failed.passed


def outage(k: int, start_s: float, end_s: float) -> list[dict]:
    base = {"fault_id": f"a-flap#{k}", "spec_id": "a-flap", "provider": "A", "kind": "reset",
            "params": "{}", "planned_start": T0 + int(start_s * S),
            "planned_end": T0 + int(end_s * S)}  # fmt: skip
    return [{**base, "event": "start", "t": base["planned_start"]},
            {**base, "event": "end", "t": base["planned_end"]}]  # fmt: skip


def cycles(wasted: list[int]) -> dict:
    """One 2 s outage of A every 5 s; in outage k, `wasted[k]` client calls 10 ms apart
    each failed on A (then served by B), then nothing to A until it ends."""
    faults, upstream, calls = [], [], []
    for k, n in enumerate(wasted):
        start = 1 + 5 * k
        faults += outage(k, start, start + 2)
        for i in range(n):
            seq, at = 1000 + 100 * k + i, start * 1000 + 10 * i
            calls.append(req(seq, at - 0.5))
            upstream += [up(seq, "A", at, outcome="conn_error", fault=f"a-flap#{k}"),
                         up(seq, "B", at + 1)]  # fmt: skip
    return {"fault_events": faults, "upstream": upstream,
            "requests": [req(0, 0), *calls, req(1, 20_000)]}  # fmt: skip


def test_wasted_growth_fires_when_each_breaker_cycle_wastes_more(tmp_path):
    passed = judge(tmp_path, "long_running_stability", "wasted_growth", cycles([5, 6, 5]), "flat")
    assert (passed.observed, passed.passed) == (pytest.approx(0), True)
    failed = judge(tmp_path, "long_running_stability", "wasted_growth", cycles([3, 6, 9]), "grow")
    assert (failed.observed, failed.passed) == (pytest.approx(3), False)


def test_every_built_in_witness_query_runs_on_a_recorded_run(tmp_path):
    from analysis.queries import query, query_names
    from analysis.slo import SqlCheck, witnesses
    from scenarios.builtin import registry

    tables = {"requests": [req(i, i * 100) for i in range(20)],
              "upstream": [up(i, "A", i * 100 + 1) for i in range(20)],
              "ws_notifications": [head(n, n, "c0", "s1") for n in range(1, 5)],
              "ws_sessions": [session("subscribe", 0.1)],
              "system": [sample(s, 60) for s in range(10)],
              "fault_events": outage(0, 1, 2)}  # fmt: skip
    con = duckdb.connect(str(ingest(make_run(tmp_path, tables, scenario=CHAIN))))
    con.execute("CREATE TEMP TABLE requests_x AS SELECT * FROM main.requests_x")
    listed = [q for q in query_names() if q.endswith(".witnesses")]
    sqls = [(q, query(q)) for q in listed] + [
        (f"{b.name}:{s.name}", s.witnesses)
        for b in registry().values()
        for s in b.scenario().slos
        if isinstance(s, SqlCheck) and s.witnesses
    ]
    assert len(sqls) > 20
    broken = [name for name, sql in sqls if witnesses(con, sql)[1] is None]
    assert broken == []
