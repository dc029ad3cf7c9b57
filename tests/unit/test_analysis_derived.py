"""Derived metrics and validity checks, each on literal rows made for it: once on a run
that shows the behaviour and once on one that does not."""

from __future__ import annotations

import json

import duckdb
import pytest
from analysis_rows import MS, T0, S, fault, make_run, req, stopped, up

from analysis.database import ingest
from analysis.queries import query
from analysis.verdict import judge_database


def db(tmp_path, tables, scenario=None, name="run"):
    run = make_run(tmp_path, tables, scenario=scenario, name=name)
    return duckdb.connect(str(ingest(run)))


def value(con, name):
    rows = con.execute(query(name)).fetchall()
    return rows[0][0]


def rows(con, sql):
    return con.execute(sql).fetchall()


# --- correlation -------------------------------------------------------------------


def test_failover_retries_and_amplification_come_from_correlated_attempts(tmp_path):
    con = db(
        tmp_path,
        {
            "requests": [req(0, 0, latency_ms=30), req(1, 100), req(2, 200)],
            "upstream": [
                up(0, "A", 1, outcome="reset"),
                up(0, "A", 2, outcome="reset"),
                up(0, "B", 3),
                up(1, "B", 101),
                up(2, "C", 201, outcome="timeout"),
                up(2, "C", 210),
            ],
        },
    )
    assert value(con, "failovers") == 1
    assert value(con, "retries_same_provider") == 2  # A again for 0, C again for 2
    assert value(con, "amplification") == pytest.approx(6 / 3)
    assert value(con, "correlation_coverage") == 1
    assert value(con, "failover_extra_latency_ms") == pytest.approx(20)
    assert rows(con, "SELECT tag, served_by FROM request_attempts ORDER BY tag") == [
        ("bt-0-0", "B"),
        ("bt-0-1", "B"),
        ("bt-0-2", "C"),
    ]


def test_a_failover_is_found_whichever_provider_the_last_attempt_went_to(tmp_path):
    con = db(
        tmp_path,
        {
            # 0: A fails, B fails, back to A: failed over (to B), last attempt on A.
            # 1: B answers, then A fails and A answers: A never failed over to B.
            # 2: an exchange before t0 fails on A, then C answers: failed over.
            "requests": [req(0, 0), req(1, 100), req(2, 200)],
            "upstream": [
                up(0, "A", 1, outcome="reset"),
                up(0, "B", 2, outcome="timeout"),
                up(0, "A", 3),
                up(1, "B", 101),
                up(1, "A", 102, outcome="reset"),
                up(1, "A", 103),
                up(2, "A", -5, outcome="reset"),
                up(2, "C", 201),
            ],
        },
    )
    assert rows(
        con,
        "SELECT tag, failed_over, providers, retries_same_provider, served_by"
        " FROM requests_x ORDER BY tag",
    ) == [
        ("bt-0-0", True, 2, 1, "A"),
        ("bt-0-1", False, 2, 1, "A"),
        ("bt-0-2", True, 2, 0, "C"),
    ]
    assert value(con, "failovers") == 2


def test_a_router_that_strips_tags_falls_back_to_time_window_attribution(tmp_path):
    # Requests 100 ms apart, each answered in 20 ms; the router dropped the tags. Request
    # 2 failed on A and went on to B; one exchange came between requests (a probe).
    reqs = [req(i, i * 100, latency_ms=20) for i in range(4)]
    ups = [up(None, "A", i * 100 + 1, flow=f"f{i}") for i in (0, 1, 3)]
    ups += [
        up(None, "A", 201, outcome="reset", flow="f2a"),
        up(None, "B", 205, flow="f2b"),
        up(None, "B", 50, flow="probe"),
    ]
    con = db(tmp_path, {"requests": reqs, "upstream": ups})
    j = judge_database(con, tmp_path / "run", [])
    assert j.correlation["mode"] == "time_window" and j.correlation["coverage"] == 0
    assert "strips correlation tags" in j.correlation["note"]
    assert j.metrics["failovers"] == 1
    assert j.metrics["amplification"] == pytest.approx(5 / 4)  # the probe is nobody's
    assert rows(con, "SELECT tag, served_by FROM request_attempts ORDER BY tag") == [
        ("bt-0-0", "A"),
        ("bt-0-1", "A"),
        ("bt-0-2", "B"),
        ("bt-0-3", "A"),
    ]
    tagged = db(tmp_path, {"requests": [req(0, 0)], "upstream": [up(0, "A", 1)]}, name="t")
    assert judge_database(tagged, tmp_path / "t", []).correlation == {
        "coverage": 1,
        "mode": "tag",
        "note": "",
    }


# --- breaker, traffic return, impact --------------------------------------------------


def _traffic(stop_after_ms: float | None):
    """Requests every 100 ms for 10 s, alternating A and B; A is down from 2 s to 5 s.
    The router stops sending to A `stop_after_ms` after the fault starts (never: None),
    probes it once at 4 s, and goes back to it at 5.2 s."""
    reqs, ups = [], []
    for i in range(100):
        t = i * 100
        in_fault = 2000 <= t < 5000
        stopped_now = stop_after_ms is not None and 2000 + stop_after_ms < t < 5200
        provider = "A" if i % 2 == 0 and not stopped_now else "B"
        failed = provider == "A" and in_fault
        reqs.append(req(i, t, outcome="ok"))
        ups.append(
            up(
                i,
                provider,
                t + 1,
                outcome="reset" if failed else "ok",
                fault="a-down" if failed else None,
            )
        )
        if failed:
            ups.append(up(i, "B", t + 2))
    if stop_after_ms is not None:
        ups.append(up(None, "A", 4000, outcome="reset", fault="a-down", flow="probe"))
    return {
        "requests": reqs,
        "upstream": ups,
        "fault_events": fault("a-down", "A", 2, 5),
        "lifecycle": [stopped(0, 100)],
    }


def test_a_breaker_that_opens_is_timed_with_wasted_attempts_probes_and_return(tmp_path):
    con = db(tmp_path, _traffic(stop_after_ms=500))
    ((fault_id, stop_ms, wasted, probes, return_ms),) = rows(
        con, "SELECT fault_id, stop_ms, wasted_attempts, probes, return_ms FROM breaker"
    )
    # Fault applied at 2.001 s; A got its last client call at 2.401 s, then only the
    # router's own health probe (no client call is attributed to it): not a client
    # exchange, so it is reported apart and never counted as traffic sent for clients.
    assert fault_id == "a-down" and stop_ms == pytest.approx(400)
    assert wasted == 3 and probes == 0
    assert rows(con, "SELECT provider, exchanges FROM own_traffic") == [("A", 1)]
    # Fault ended at 5.001 s; A's next request was at 5.201 s and succeeded.
    assert return_ms == pytest.approx(200)


def test_a_router_without_breaker_never_stops_and_wastes_every_attempt(tmp_path):
    con = db(tmp_path, _traffic(stop_after_ms=None))
    ((stop_ms, wasted, probes),) = rows(con, "SELECT stop_ms, wasted_attempts, probes FROM breaker")
    assert stop_ms is None and wasted == 15 and probes == 0
    assert value(con, "breaker_stop_max_ms") is None


def test_client_impact_lasts_until_one_second_windows_are_back_at_the_target(tmp_path):
    reqs = [req(i, i * 100, outcome="timeout" if 20 <= i < 35 else "ok") for i in range(100)]
    con = db(tmp_path, {"requests": reqs, "upstream": [], "fault_events": fault("x", "A", 2, 3)})
    # Failures until 3.4 s: the second [3, 4) is the last below 99%; fault started 2.001 s.
    assert rows(con, "SELECT impact_ms, bad_seconds FROM impact") == [(pytest.approx(1999), 2)]
    calm = db(
        tmp_path,
        {
            "requests": [req(i, i * 100) for i in range(100)],
            "upstream": [],
            "fault_events": fault("x", "A", 2, 3),
        },
        name="calm",
    )
    assert rows(calm, "SELECT impact_ms FROM impact") == [(0,)]


# --- WebSocket ------------------------------------------------------------------------


def note(block: int, at_ms: float, *, parent: str | None = None, sub: str = "s1", h: str = ""):
    return {
        "worker": 0,
        "connection": "c1",
        "subscription": sub,
        "kind": "newHeads",
        "block_number": block,
        "block_hash": h or f"h{block}",
        "parent_hash": parent if parent is not None else f"h{block - 1}",
        "t_received": T0 + int(at_ms * MS),
    }


GENESIS = {"genesis_ns": T0, "block_time_ms": 1000}


def test_a_clean_subscription_has_no_gaps_duplicates_or_breaks(tmp_path):
    con = db(tmp_path, {"ws_notifications": [note(n, n * 1000 + 50) for n in range(1, 6)]}, GENESIS)
    assert [
        value(con, m)
        for m in ("ws_gap_blocks", "ws_duplicates", "ws_out_of_order", "ws_parent_breaks")
    ] == [0, 0, 0, 0]
    assert value(con, "ws_delay_p95_ms") == pytest.approx(50)


def test_gaps_duplicates_reordering_and_parent_breaks_are_each_counted(tmp_path):
    con = db(
        tmp_path,
        {
            "ws_notifications": [
                note(1, 1000),
                note(2, 2000),
                note(5, 5000),  # 3 and 4 skipped
                note(5, 5100),  # duplicate
                note(4, 5200),  # out of order
                note(6, 6000, parent="bogus"),  # parent break (5 -> 6 is not a break after 4)
                note(7, 7300),
            ]
        },
        GENESIS,
    )
    assert value(con, "ws_gap_blocks") == 2
    assert value(con, "ws_duplicates") == 1
    assert value(con, "ws_out_of_order") == 1
    assert rows(con, "SELECT block_number FROM ws_checks WHERE parent_break") == []
    con2 = db(
        tmp_path,
        {"ws_notifications": [note(1, 1000), note(2, 2000, parent="bogus")]},
        GENESIS,
        name="r2",
    )
    assert value(con2, "ws_parent_breaks") == 1
    # Delivery delay against the chain's schedule: block 7 produced at 7 s, seen 7.3 s.
    assert rows(con, "SELECT delay_ms FROM ws_checks WHERE block_number = 7") == [(300,)]


def test_time_to_resubscribe_is_measured_from_each_disconnect(tmp_path):
    sessions = [
        {"worker": 0, "connection": "c1", "event": "subscribe", "t": T0},
        {
            "worker": 0,
            "connection": "c1",
            "event": "disconnect",
            "t": T0 + 2 * S,
            "reason": "reset",
            "close_code": 1006,
        },
        {"worker": 0, "connection": "c2", "event": "connect", "t": T0 + 2 * S + 100 * MS},
        {"worker": 0, "connection": "c2", "event": "subscribe", "t": T0 + 2 * S + 250 * MS},
        {"worker": 1, "connection": "c3", "event": "disconnect", "t": T0 + 3 * S},
    ]
    con = db(tmp_path, {"ws_sessions": sessions, "requests": [req(0, 0), req(1, 5000)]})
    assert rows(con, "SELECT worker, resubscribe_ms FROM ws_resubscribes ORDER BY worker") == [
        (0, 250),
        (1, None),
    ]


def _subscribed_at(ms: float) -> dict:
    return {"worker": 0, "connection": "c1", "event": "subscribe", "t": T0 + int(ms * MS)}


def _silence_run(notes: list[dict]) -> dict:
    # The load runs 10 s (its last intended send); the client subscribes at 0.5 s.
    return {"ws_notifications": notes, "ws_sessions": [_subscribed_at(500)],
            "requests": [req(0, 0), req(1, 10_000)]}  # fmt: skip


def test_a_live_feeds_only_silence_is_its_delivery_delay(tmp_path):
    con = db(tmp_path, _silence_run([note(n, n * 1000 + 50) for n in range(1, 10)]), GENESIS)
    # Each block reached the client 50 ms after it was produced, the first too (block 1
    # at 1 s, after the subscribe at 0.5 s); block 10 is produced as the load ends.
    assert value(con, "ws_silence_max_s") == pytest.approx(0.05)


def test_a_silent_upstream_is_timed_from_the_first_block_the_client_lacked(tmp_path):
    # Blocks 1-3 on time; then nothing until the router moved and delivered 4-8 at
    # 8.2 s. Duplicates and an old block in between are no news.
    notes = [note(n, n * 1000 + 50) for n in range(1, 4)]
    notes += [note(3, 3500), note(2, 6000)]
    notes += [note(n, 8200 + n) for n in range(4, 9)] + [note(9, 9050)]
    con = db(tmp_path, _silence_run(notes), GENESIS)
    assert value(con, "ws_silence_max_s") == pytest.approx(4.204)  # 4.0 s to block 4
    # worker, connection, from_s, to_s, silence_s, last_block, heard
    top = rows(con, query("ws_silence_max_s.witnesses"))[0]
    assert top == (0, "c1", 4.0, 8.204, 4.204, 3, True)


def test_a_feed_that_never_spoke_again_is_silent_to_the_end_of_the_load(tmp_path):
    notes = [note(n, n * 1000 + 50) for n in range(1, 4)]
    con = db(tmp_path, _silence_run(notes), GENESIS)
    assert value(con, "ws_silence_max_s") == pytest.approx(6.0)  # block 4 at 4 s, to 10 s
    assert rows(con, "SELECT heard FROM ws_silence ORDER BY silence_s DESC LIMIT 1") == [(False,)]


# --- heads ----------------------------------------------------------------------------


def test_head_lag_and_heads_going_backwards(tmp_path):
    reqs = [
        req(0, 1500, result_block=1),  # true head at 1.5 s is 1: fresh
        req(1, 3200, result_block=1),  # head 3: two blocks behind
        req(2, 4100, result_block=4),
        req(3, 4500, result_block=3),  # sent after #2 answered 4: backwards
    ]
    con = db(tmp_path, {"requests": reqs}, GENESIS)
    assert value(con, "head_lag_max_blocks") == 2
    assert value(con, "heads_backwards") == 1
    fresh = db(
        tmp_path,
        {"requests": [req(i, i * 1000 + 100, result_block=i) for i in range(5)]},
        GENESIS,
        name="fresh",
    )
    assert value(fresh, "head_lag_max_blocks") == 0 and value(fresh, "heads_backwards") == 0


def test_a_block_asked_by_number_or_a_receipt_is_no_head_that_goes_backwards(tmp_path):
    reqs = [
        req(0, 4100, result_block=4),
        req(1, 4500, method="eth_getBlockByNumber", result_block=1),  # block 1 by number
        req(2, 4600, method="eth_getTransactionReceipt", result_block=2),
        req(3, 4700, method="eth_getBlockByNumber", result_block=2, block_tag="safe"),
    ]
    con = db(tmp_path, {"requests": reqs}, GENESIS)
    assert value(con, "heads_backwards") == 0 and value(con, "head_lag_max_blocks") == 0


def _tagged(seq: int, at_ms: float, tag: str, block: int) -> dict:
    method = "eth_blockNumber" if tag == "latest" else "eth_getBlockByNumber"
    return req(seq, at_ms, method=method, result_block=block, block_tag=tag)


def test_tags_that_trail_one_another_and_move_forward_are_never_behind(tmp_path):
    reqs = [
        _tagged(0, 1000, "finalized", 10),
        _tagged(1, 1100, "safe", 20),
        _tagged(2, 1200, "latest", 30),
        _tagged(3, 2000, "finalized", 11),
        _tagged(4, 2100, "safe", 20),  # safe may stand still
        _tagged(5, 2200, "latest", 31),
    ]
    con = db(tmp_path, {"requests": reqs})
    assert value(con, "tags_behind") == 0


def test_a_safe_block_below_a_finalized_one_answered_before_is_behind(tmp_path):
    reqs = [_tagged(0, 1000, "finalized", 10), _tagged(1, 1100, "safe", 8)]
    con = db(tmp_path, {"requests": reqs})
    assert value(con, "tags_behind") == 1
    assert rows(con, query("tags_behind.witnesses")) == [(0, 1, "safe", 1.1, 8, "finalized", 10)]


def test_a_tag_going_back_is_behind_and_a_latest_going_back_is_left_to_heads(tmp_path):
    reqs = [
        _tagged(0, 1000, "safe", 20),
        _tagged(1, 1100, "safe", 19),  # safe went back
        _tagged(2, 1200, "latest", 30),
        _tagged(3, 1300, "latest", 29),  # heads_backwards' case
        _tagged(4, 1400, "latest", 18),  # below a safe answered before: behind
    ]
    con = db(tmp_path, {"requests": reqs})
    assert value(con, "tags_behind") == 2
    assert value(con, "heads_backwards") == 2  # seq 3 and seq 4


def test_a_tag_answer_sent_before_a_higher_one_completed_is_not_behind(tmp_path):
    # Two calls in flight at once: neither saw the other's answer when it was sent.
    reqs = [
        req(0, 1000, method="eth_getBlockByNumber", result_block=20, block_tag="safe",
            latency_ms=50),
        req(1, 1010, method="eth_getBlockByNumber", result_block=19, block_tag="safe"),
    ]  # fmt: skip
    con = db(tmp_path, {"requests": reqs})
    assert value(con, "tags_behind") == 0


# --- overhead, memory -----------------------------------------------------------------


def test_router_overhead_is_service_time_minus_upstream_time_for_one_attempt(tmp_path):
    con = db(
        tmp_path,
        {
            "requests": [req(0, 0, latency_ms=5, send_delay_ms=1), req(1, 10, latency_ms=50)],
            "upstream": [
                up(0, "A", 1.5, took_ms=3),
                up(1, "A", 11, outcome="reset"),
                up(1, "B", 20),
            ],
        },
    )
    # Request 0: service 4 ms, upstream 3 ms. Request 1 had two attempts: left out.
    assert value(con, "overhead_p50_ms") == pytest.approx(1)


def test_memory_growth_is_a_fitted_slope(tmp_path):
    leak = [
        {
            "t": T0 + k * 6 * S,
            "pid": 1,
            "role": "sut",
            "cpu": 0.5,
            "rss": 100_000_000 + k * 10_000_000,
        }
        for k in range(10)
    ]
    con = db(tmp_path, {"system": leak})
    assert value(con, "sut_rss_slope_mb_per_min") == pytest.approx(100)  # 10 MB per 6 s
    assert value(con, "sut_rss_fit_r2") == pytest.approx(1)
    assert value(con, "sut_cpu_avg") == pytest.approx(0.5)
    flat = db(tmp_path, {"system": [{**r, "rss": 100_000_000} for r in leak]}, name="flat")
    assert value(flat, "sut_rss_slope_mb_per_min") == pytest.approx(0)


# --- validity -------------------------------------------------------------------------


def failed_validity(con, run) -> list[str]:
    return [r.name for r in judge_database(con, run, []).validity if not r.passed]


def good_run():
    return {
        "requests": [req(i, i * 100) for i in range(10)],
        "upstream": [up(i, "A", i * 100 + 1) for i in range(10)],
        "lifecycle": [stopped(0, 10)],
    }


def test_a_good_run_passes_every_validity_check(tmp_path):
    con = db(tmp_path, good_run())
    assert failed_validity(con, tmp_path / "run") == []


def test_a_planned_fault_that_never_started_makes_the_run_invalid(tmp_path):
    con = db(tmp_path, good_run(), {"faults": [{"fault_id": "a-down", "provider": "A"}]})
    assert failed_validity(con, tmp_path / "run") == ["faults_not_applied"]


def test_a_worker_that_never_finished_makes_the_run_invalid(tmp_path):
    tables = good_run()
    tables["lifecycle"].append(
        {"t": T0, "process": "loadgen-w1", "role": "loadgen", "pid": 9, "event": "spawned"}
    )
    con = db(tmp_path, tables)
    assert failed_validity(con, tmp_path / "run") == ["loadgen_workers_unfinished"]


def test_a_load_generator_that_fell_behind_its_schedule_makes_the_run_invalid(tmp_path):
    tables = good_run()
    # Sends every 100 ms; one of ten went out 150 ms late, past the next scheduled one.
    tables["requests"][4] = req(4, 400, send_delay_ms=150, latency_ms=160)
    con = db(tmp_path, tables)
    assert failed_validity(con, tmp_path / "run") == ["late_sends_share"]


def test_sends_a_few_ms_late_at_a_slow_rate_leave_the_run_valid(tmp_path):
    # 10 req/s on a busy box: 4 of 50 sends 3 ms late, far inside the 100 ms gap; the
    # latency measured from the intended time is what it is either way.
    reqs = [req(i, i * 100, send_delay_ms=3 if i % 12 == 0 else 0) for i in range(50)]
    tables = {
        "requests": reqs,
        "upstream": [up(i, "A", i * 100 + 4) for i in range(50)],
        "lifecycle": [stopped(0, 50, late_sends=5)],
    }
    con = db(tmp_path, tables)
    assert failed_validity(con, tmp_path / "run") == []


def test_a_load_generator_clock_behind_the_proxys_makes_the_run_invalid(tmp_path):
    # The proxy sees each call's exchange 25 ms after its send and 16 ms after the
    # call ended: the worker's clock is 20 ms or so behind the proxy's.
    tables = good_run()
    tables["upstream"] = [up(i, "A", i * 100 + 25) for i in range(10)]
    con = db(tmp_path, tables)
    assert failed_validity(con, tmp_path / "run") == ["clock_skew_ms"]
    assert value(con, "clock_skew_ms") == pytest.approx(16)
    witnesses = con.execute(query("clock_skew_ms.witnesses")).fetchall()
    assert len(witnesses) == 10


def test_hedged_late_attempts_and_cached_answers_are_no_clock_skew(tmp_path):
    tables = good_run()
    # Every call hedged: a second attempt on B answers 40 ms after the call ended.
    tables["upstream"] += [up(i, "B", i * 100 + 5, took_ms=45) for i in range(10)]
    # And ten more calls answered from the router's cache: no exchange at all.
    tables["requests"] += [req(i, i * 100 + 50) for i in range(10, 20)]
    tables["lifecycle"] = [stopped(0, 20)]
    con = db(tmp_path, tables)
    assert value(con, "clock_skew_ms") == 0
    assert failed_validity(con, tmp_path / "run") == []


def test_lost_request_rows_make_the_run_invalid(tmp_path):
    tables = good_run()
    tables["lifecycle"] = [stopped(0, 20)]  # the worker sent 20, 10 are recorded
    con = db(tmp_path, tables)
    assert failed_validity(con, tmp_path / "run") == ["requests_missing_share"]


def test_a_saturated_load_generator_or_proxy_makes_the_run_invalid(tmp_path):
    tables = good_run()
    tables["system"] = [
        {"t": T0 + at * MS, "pid": 5, "role": "loadgen", "cpu": 0.99, "rss": 1} for at in (100, 600)
    ]
    con = db(tmp_path, tables)
    assert failed_validity(con, tmp_path / "run") == ["loadgen_cpu_max"]
    con.execute("DELETE FROM system")
    con.execute(
        "INSERT INTO proxy_health (t, proxy, loop_lag_ns) VALUES (?, 'p0', ?), (?, 'p0', ?)",
        [T0 + 300 * MS, 250 * MS, T0 + 800 * MS, 180 * MS],
    )
    assert failed_validity(con, tmp_path / "run") == ["proxy_loop_lag_max_ms"]


def test_a_proxy_that_used_a_whole_core_makes_the_run_invalid(tmp_path):
    con = db(tmp_path, good_run())
    for at in (100, 600):
        con.execute(
            "INSERT INTO proxy_health (t, proxy, loop_lag_ns, cpu) VALUES (?, 'p0', 0, 1.0)",
            [T0 + at * MS],
        )
    assert failed_validity(con, tmp_path / "run") == ["proxy_cpu_max"]


def test_one_busy_second_one_stall_or_lag_outside_the_load_is_no_saturation(tmp_path):
    tables = good_run()
    tables["system"] = [
        {"t": T0 + at * MS, "pid": 5, "role": "loadgen", "cpu": cpu, "rss": 1}
        for at, cpu in ((100, 0.99), (600, 0.2))
    ]
    con = db(tmp_path, tables)
    con.execute(
        "INSERT INTO proxy_health (t, proxy, loop_lag_ns, cpu) VALUES"
        " (?, 'p0', ?, 1.0), (?, 'p0', 0, 0.3), (?, 'p0', ?, 0.1)",
        [T0 + 100 * MS, 300 * MS, T0 + 600 * MS, T0 + 5_000 * MS, 900 * MS],
    )
    assert failed_validity(con, tmp_path / "run") == []


def _windows(*ids):
    events = []
    for k, fault_id in enumerate(ids):
        for e in fault(fault_id, "A", k, k + 0.5):
            events.append({**e, "spec_id": "a-flap"})
    return events


def test_every_window_of_a_scheduled_fault_must_touch_the_traffic_it_met(tmp_path):
    plan = {"faults": [{"fault_id": "a-flap", "provider": "A"}]}
    tables = good_run()
    tables["fault_events"] = _windows("a-flap#0", "a-flap#1")
    tables["upstream"].append(up(0, "A", 2, outcome="reset", fault="a-flap#0", flow="x"))
    # The proxy received an exchange for A inside the second window and let it through.
    tables["upstream"].append(up(None, "A", 1200, flow="missed"))
    con = db(tmp_path, tables, plan)
    assert failed_validity(con, tmp_path / "run") == ["faults_not_applied"]
    tables["upstream"].pop()
    # The second window acted on an exchange another fault decided, and on a WS message.
    tables["upstream"].append({**up(1, "A", 102, flow="y"), "fault_ids": "a-other,a-flap#1"})
    con = db(tmp_path, tables, plan, name="both")
    assert failed_validity(con, tmp_path / "both") == []
    tables["upstream"].pop()
    tables["upstream_ws"] = [
        {"provider": "A", "proxy": "p0", "action": "dropped", "fault_id": "a-flap#1", "t": T0 + S}
    ]
    con = db(tmp_path, tables, plan, name="ws")
    assert failed_validity(con, tmp_path / "ws") == []


def _state_lie(mode: str, chain_id_calls_to_a: bool):
    """A's head lie in `mode` from 0.2 s to 0.8 s, while the router sends A only
    eth_blockNumber calls and, where told, eth_chainId calls the proxy let through."""
    tables = good_run()
    tables["fault_events"] = [
        {**e, "kind": "head_lie", "params": json.dumps({"mode": mode})}
        for e in fault("a-lie", "A", 0.2, 0.8)
    ]
    if chain_id_calls_to_a:
        tables["upstream"].append(up(None, "A", 500, method="eth_chainId", flow="chain"))
    return tables


def test_a_head_lie_that_let_a_call_it_lies_about_through_makes_the_run_invalid(tmp_path):
    plan = {"faults": [{"fault_id": "a-lie", "provider": "A"}]}
    con = db(tmp_path, _state_lie("chain_id", chain_id_calls_to_a=True), plan)
    assert failed_validity(con, tmp_path / "run") == ["faults_not_applied"]


def test_a_head_lie_that_met_no_call_it_lies_about_is_no_instrument_failure(tmp_path):
    # A router answering eth_chainId itself sends A only head calls in the window: a
    # chain id lie has nothing to act on, a tag lie neither.
    plan = {"faults": [{"fault_id": "a-lie", "provider": "A"}]}
    for mode in ("chain_id", "syncing", "tags"):
        con = db(tmp_path, _state_lie(mode, chain_id_calls_to_a=False), plan, name=mode)
        assert failed_validity(con, tmp_path / mode) == [], mode
    # A head calls it lies about, met and let through, are the instrument's failure.
    con = db(tmp_path, _state_lie("ahead", chain_id_calls_to_a=False), plan, name="ahead")
    assert failed_validity(con, tmp_path / "ahead") == ["faults_not_applied"]


def test_a_fault_window_the_router_sent_no_traffic_is_evidence_not_an_invalid_run(tmp_path):
    # A breaker that never closes starves the second window of A's flap: the proxy
    # armed it, nothing reached A, so there was nothing to apply it to.
    plan = {"faults": [{"fault_id": "a-flap", "provider": "A"}]}
    tables = good_run()
    tables["upstream"] = [up(i, "A" if i == 0 else "B", i * 100 + 1) for i in range(10)]
    tables["fault_events"] = _windows("a-flap#0", "a-flap#1")
    tables["upstream"].append(up(0, "A", 2, outcome="reset", fault="a-flap#0", flow="x"))
    con = db(tmp_path, tables, plan)
    assert failed_validity(con, tmp_path / "run") == []
    assert value(con, "faults_without_traffic") == 1


def _rate_limit(burst: float, rate_per_s: float, least_cost: float = 1.0) -> list:
    quota = {"burst": burst, "rate_per_s": rate_per_s, "least_cost": least_cost}
    return [
        {**e, "kind": "rate_limit", "params": json.dumps({"quota": quota})}
        for e in fault("a-limit", "A", 0, 0.5)
    ]


def test_a_rate_limit_that_limited_nothing_within_its_quota_is_no_invalid_run(tmp_path):
    # Five exchanges reached A in the half-second window; a bucket of 10 admits them all.
    tables = good_run()
    tables["fault_events"] = _rate_limit(burst=10, rate_per_s=2)
    con = db(tmp_path, tables, {"faults": [{"fault_id": "a-limit", "provider": "A"}]})
    assert failed_validity(con, tmp_path / "run") == []


def test_a_rate_limit_that_limited_nothing_past_its_quota_makes_the_run_invalid(tmp_path):
    # 2 + 2/s x 0.5 s = 3 exchanges admissible; five came and none was limited. Credit
    # costs of 2 units at least halve it.
    plan = {"faults": [{"fault_id": "a-limit", "provider": "A"}]}
    tables = good_run()
    tables["fault_events"] = _rate_limit(burst=2, rate_per_s=2)
    con = db(tmp_path, tables, plan)
    assert failed_validity(con, tmp_path / "run") == ["faults_not_applied"]
    tables["fault_events"] = _rate_limit(burst=6, rate_per_s=2, least_cost=2)
    con = db(tmp_path, tables, plan, name="credits")
    assert failed_validity(con, tmp_path / "credits") == ["faults_not_applied"]


def _every_second_duplicated(*passed_at_s: float) -> dict:
    # A repeats every 2nd notification from 0.2 s to 0.6 s; these went through untouched.
    tables = good_run()
    tables["fault_events"] = [
        {**e, "kind": "ws_duplicate", "params": json.dumps({"every_k": 2})}
        for e in fault("a-dup", "A", 0.2, 0.6)
    ]
    tables["upstream_ws"] = [
        {"provider": "A", "proxy": "p0", "action": "passed", "t": T0 + int(at * S)}
        for at in passed_at_s
    ]
    return tables


def test_a_one_in_k_notification_fault_that_met_fewer_than_k_is_no_invalid_run(tmp_path):
    # A slow chain sent one notification in the window: every 2nd had none to act on.
    plan = {"faults": [{"fault_id": "a-dup", "provider": "A"}]}
    con = db(tmp_path, _every_second_duplicated(0.4), plan)
    assert failed_validity(con, tmp_path / "run") == []
    # Two went through and neither was repeated: the proxy failed to apply it.
    con = db(tmp_path, _every_second_duplicated(0.3, 0.5), plan, name="two")
    assert failed_validity(con, tmp_path / "two") == ["faults_not_applied"]


def test_a_websocket_fault_that_met_only_http_calls_met_no_traffic(tmp_path):
    # B's sockets are closed for a second while the router has no socket to B: the HTTP
    # calls B got meanwhile are nothing a ws_disconnect acts on.
    tables = good_run()
    tables["fault_events"] = [
        {**e, "kind": "ws_disconnect"} for e in fault("b-disconnect", "A", 0.2, 0.6)
    ]
    con = db(tmp_path, tables, {"faults": [{"fault_id": "b-disconnect", "provider": "A"}]})
    assert failed_validity(con, tmp_path / "run") == []


def test_more_providers_than_the_packed_aggregates_hold_is_refused_by_name(tmp_path):
    ups = [up(0, f"P{i}", i) for i in range(65)]
    with pytest.raises(duckdb.Error, match="upstream has more than 64 providers"):
        db(tmp_path, {"requests": [req(0, 0)], "upstream": ups})
    assert db(tmp_path, {"requests": [req(0, 0)], "upstream": ups[:64]}, name="ok")
