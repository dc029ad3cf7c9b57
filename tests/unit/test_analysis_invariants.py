"""The router-agnostic invariants and the policy figures, each on literal rows: once on
a run that breaks it (with its witnesses) and once on one that does not."""

from __future__ import annotations

import json

import duckdb
import pytest
from analysis_rows import T0, S, fault, make_run, req, stopped, up

from analysis.database import build, finish, ingest
from analysis.expect import resolve_expect
from analysis.queries import query
from analysis.slo import Check, parse_slo
from analysis.verdict import judge_database

PROVIDERS = [{"name": n, "kind": "mock"} for n in ("A", "B", "C")]


def db(tmp_path, tables, scenario=None, name="run"):
    spec = {"providers": PROVIDERS, **(scenario or {})}
    run = make_run(tmp_path, tables, scenario=spec, name=name)
    return duckdb.connect(str(ingest(run)))


def value(con, name):
    return con.execute(query(name)).fetchall()[0][0]


def judged(con, check):
    return check.judge(con)


# --- unrescued failures ---------------------------------------------------------------


def _outage(*, failover: bool, faulted=("A",)):
    """Calls every 100 ms for 3 s; the faulted providers reset from 1 s to 2 s. The
    router tries A first; with failover it goes on to B when A fails."""
    reqs, ups, events = [], [], []
    for i in range(30):
        t = i * 100
        down = 1000 <= t < 2000
        if down and not failover:
            reqs.append(req(i, t, outcome="http_error"))
            ups.append(up(i, "A", t + 1, outcome="reset", fault="a-down"))
        elif down:
            b_down = "B" in faulted
            reqs.append(req(i, t, outcome="http_error" if b_down else "ok"))
            ups.append(up(i, "A", t + 1, outcome="reset", fault="a-down"))
            ups.append(up(i, "B", t + 2, outcome="reset" if b_down else "ok"))
        else:
            reqs.append(req(i, t))
            ups.append(up(i, "A", t + 1))
    for p in faulted:
        events += fault(f"{p.lower()}-down", p, 1, 2)
    return {"requests": reqs, "upstream": ups, "fault_events": events,
            "lifecycle": [stopped(0, 30)]}  # fmt: skip


def test_a_call_failed_with_a_healthy_provider_untried_is_an_unrescued_failure(tmp_path):
    con = db(tmp_path, _outage(failover=False))
    assert value(con, "unrescued_failures") == 10
    result = judged(con, Check("unrescued_failures", "==", 0))
    assert not result.passed and result.witness_count == 10
    first = result.witnesses[0]
    assert first["tag"] == "bt-0-10" and first["untried"] == ["B", "C"]
    assert first["last_provider"] == "A" and first["at_s"] == pytest.approx(1.0)
    assert "FROM unrescued" in result.witness_query


def test_a_router_that_fails_over_has_no_unrescued_failure(tmp_path):
    con = db(tmp_path, _outage(failover=True))
    assert value(con, "unrescued_failures") == 0
    assert judged(con, Check("unrescued_failures", "==", 0)).witnesses == []


def test_a_call_that_failed_after_trying_every_healthy_provider_is_rescued_as_it_could(
    tmp_path,
):
    # A and B down together; C untried, yet C is healthy: still unrescued. With C down
    # too nothing was left to try.
    tables = _outage(failover=True, faulted=("A", "B"))
    con = db(tmp_path, tables)
    assert value(con, "unrescued_failures") == 10
    tables["fault_events"] += fault("c-down", "C", 1, 2)
    con = db(tmp_path, tables, name="all-down")
    assert value(con, "unrescued_failures") == 0


def test_a_provider_that_failed_within_the_come_back_time_is_not_owed_a_try(tmp_path):
    # B was down until 0.5 s; a call failing at 1.5 s need not try B under the default
    # come-back time (15 s), but must under a declared 0.5 s.
    tables = _outage(failover=False)
    tables["fault_events"] += fault("b-early", "B", 0, 0.5)
    tables["fault_events"] += fault("c-early", "C", 0, 0.5)
    con = db(tmp_path, tables)
    assert value(con, "unrescued_failures") == 0
    con = db(tmp_path, tables, {"expect": {"come_back_s": 0.4}}, name="declared")
    assert value(con, "unrescued_failures") == 10


def test_a_provider_that_misbehaves_by_design_is_not_counted_as_healthy(tmp_path):
    providers = [{"name": "A"}, {"name": "B", "behaviour": {"error_rate": 0.5}},
                 {"name": "C", "behaviour": {"rate_limit": {"rps": 1}}}]  # fmt: skip
    con = db(tmp_path, _outage(failover=False), {"providers": providers})
    assert value(con, "unrescued_failures") == 0


# --- wrong answers, hung calls, retry storms ------------------------------------------


def test_a_wrong_answer_is_counted_apart_from_errors_with_what_was_wrong(tmp_path):
    bad = {**req(1, 100, outcome="invalid"), "error": "null result where the chain has a value"}
    con = db(tmp_path, {"requests": [req(0, 0), bad, req(2, 200, outcome="http_error")],
                        "upstream": [up(0, "A", 1), up(1, "A", 101), up(2, "A", 201)]})  # fmt: skip
    result = judged(con, Check("wrong_answers", "==", 0))
    assert result.observed == 1 and not result.passed
    assert result.witnesses[0]["error"] == "null result where the chain has a value"
    assert value(con, "unrescued_failures") == 1  # the http_error, B and C untried


def test_answers_that_match_the_chain_are_no_wrong_answers(tmp_path):
    con = db(tmp_path, {"requests": [req(0, 0)], "upstream": [up(0, "A", 1)]})
    assert judged(con, Check("wrong_answers", "==", 0)).passed


def test_a_call_answered_past_the_declared_deadline_or_never_is_hung(tmp_path):
    reqs = [req(0, 0, latency_ms=12_500), req(1, 100, outcome="timeout", latency_ms=5_000),
            req(2, 200, latency_ms=9_000)]  # fmt: skip
    con = db(tmp_path, {"requests": reqs, "upstream": []})
    result = judged(con, Check("hung_call_count", "==", 0))
    assert result.observed == 2
    assert [w["tag"] for w in result.witnesses] == ["bt-0-0", "bt-0-1"]
    # A router declaring a 15 s deadline is held to that.
    con = db(tmp_path, {"requests": reqs, "upstream": []}, {"expect": {"request_timeout_s": 15}},
             name="declared")  # fmt: skip
    assert value(con, "hung_call_count") == 1


def test_attempts_in_flight_together_are_no_retries(tmp_path):
    # Four failed exchanges on A overlapping in time (a hedge, or two calls' exchanges
    # attributed to one): none was sent after another had failed.
    ups = [up(0, "A", 1 + k, took_ms=50, outcome="timeout", flow=f"a{k}") for k in range(4)]
    con = db(tmp_path, {"requests": [req(0, 0, latency_ms=80)], "upstream": [*ups, up(0, "B", 60)]})
    assert value(con, "retry_storm_calls") == 0


def test_six_attempts_on_one_failing_provider_for_one_call_are_a_retry_storm(tmp_path):
    ups = [up(0, "A", 1 + k, outcome="reset", flow=f"a{k}") for k in range(6)] + [up(0, "B", 9)]
    con = db(tmp_path, {"requests": [req(0, 0, latency_ms=20)], "upstream": ups})
    result = judged(con, Check("retry_storm_calls", "==", 0))
    assert result.observed == 1
    assert result.witnesses[0]["provider"] == "A" and result.witnesses[0]["attempts"] == 6


RETRY_AFTER_3 = '{"headers": {"Retry-After": "3"}}'


def _answer(status=429, headers=None, body=None, code=-32005, data=None) -> str:
    """A rate_limit fault's params as the proxy records them: as written (a preset),
    and the answer it resolves to."""
    answer = {"status": status, "headers": headers or {}, "body": body,
              "code": None if body else code, "message": None if body else "limited",
              "data": data}  # fmt: skip
    return json.dumps({"rate_per_s": 2, "preset": "p", "answer": answer})


def _limited(next_a_ms: float, params: str = RETRY_AFTER_3) -> dict:
    """A answers call 0 (at 0 ms) with a limit answer (`params`: a 429 and
    `Retry-After: 3` as written); calls 1.. go to B every 100 ms; call 40's attempt goes
    to A at `next_a_ms`."""
    limit = {"fault_id": "a-limit", "provider": "A", "kind": "rate_limit",
             "params": params, "planned_start": T0, "planned_end": T0 + 5 * S}  # fmt: skip
    ups = [up(0, "A", 0, outcome="http_error", fault="a-limit"), up(0, "B", 2)]
    ups += [up(i, "B", i * 100 + 1) for i in range(1, 40)]
    ups.append(up(40, "A", next_a_ms))
    reqs = [req(i, i * 100) for i in range(40)] + [req(40, next_a_ms - 1)]
    events = [{**limit, "event": "start", "t": T0}, {**limit, "event": "end", "t": T0 + 5 * S}]
    return {"requests": reqs, "upstream": ups, "fault_events": events}


def test_a_call_sent_to_a_provider_inside_its_retry_after_is_a_breach(tmp_path):
    con = db(tmp_path, _limited(next_a_ms=1500))
    result = judged(con, Check("retry_after_breach_count", "==", 0))
    assert result.observed == 1
    assert result.witnesses[0]["tag"] == "bt-0-40" and result.witnesses[0]["provider"] == "A"


@pytest.mark.parametrize(
    "next_a_ms", [3001, 2990, 3500], ids=["at-its-end", "10-ms-early", "after"]
)
def test_a_router_that_waits_out_the_retry_after_to_the_millisecond_breaches_nothing(
    tmp_path, next_a_ms
):
    # The 429 left the proxy at 1 ms; a router timing 3 s from when it read it, on a
    # millisecond clock, may send again a few ms before the proxy's clock says 3 s.
    con = db(tmp_path, _limited(next_a_ms=next_a_ms))
    assert value(con, "retry_after_breach_count") == 0


def test_a_retry_after_that_a_preset_sets_is_judged_as_the_router_received_it(tmp_path):
    # LlamaRPC's Cloudflare 1015: a text body and Retry-After 30, named only by preset
    # in the params as written; 5 s later is inside it.
    params = _answer(headers={"Retry-After": "30"}, body="error code: 1015")
    con = db(tmp_path, _limited(next_a_ms=5000, params=params))
    result = judged(con, Check("retry_after_breach_count", "==", 0))
    assert result.observed == 1 and result.witnesses[0]["retry_after_s"] == 30
    shape = con.execute(query("rate_limit_shapes")).fetchall()
    assert [r[2] for r in shape] == ["HTTP 429, text body, Retry-After 30 s"]


def test_a_limit_answer_without_retry_after_owes_no_back_off_unless_one_is_declared(
    tmp_path,
):
    params = _answer(status=200, code=-32007)  # QuickNode's, in an HTTP 200
    quiet = db(tmp_path, _limited(next_a_ms=500, params=params))
    assert value(quiet, "retry_after_breach_count") == 0
    assert value(quiet, "limit_backoff_breach_count") == 0
    declared = db(tmp_path, _limited(next_a_ms=500, params=params),
                  {"expect": {"rate_limit_backoff_s": 1}}, name="declared")  # fmt: skip
    result = judged(declared, Check("limit_backoff_breach_count", "==", 0))
    assert result.observed == 1
    assert result.witnesses[0]["tag"] == "bt-0-40" and result.witnesses[0]["backoff_s"] == 1
    # Waiting out the declared second breaches nothing.
    later = db(tmp_path, _limited(next_a_ms=1200, params=params),
               {"expect": {"rate_limit_backoff_s": 1}}, name="later")  # fmt: skip
    assert value(later, "limit_backoff_breach_count") == 0


def test_the_shapes_table_shows_what_each_answer_asked_and_how_long_the_router_stayed_away(
    tmp_path,
):
    # Infura's -32005 in an HTTP 200, asking 3 s in its body; the router came back at 3.2 s.
    params = _answer(status=200, data={"rate": {"backoff_seconds": 3}})
    con = db(tmp_path, _limited(next_a_ms=3200, params=params))
    cur = con.execute(query("rate_limit_shapes"))
    names = [d[0] for d in cur.description]
    (row,) = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    assert row["shape"] == "HTTP 200, JSON-RPC -32005, back-off 3 s in the body"
    assert (row["asked_s"], row["asked_in"], row["limit_answers"]) == (3.0, "body", 1)
    assert row["away_p50_s"] == pytest.approx(3.2, abs=0.01) and row["never_back"] == 0
    assert (row["attempts"], row["in_backoff"]) == (2, 0)
    # A back-off asked in the body is shown, not judged as a Retry-After.
    assert value(con, "retry_after_breach_count") == 0


def test_successful_attempts_on_one_provider_are_no_retry_storm(tmp_path):
    # A router that splits a batch of five into single calls to A: five answers, none
    # failed.
    ups = [up(0, "A", 1 + k, flow=f"a{k}") for k in range(5)]
    con = db(tmp_path, {"requests": [req(0, 0, latency_ms=20)], "upstream": ups})
    assert value(con, "retry_storm_calls") == 0


def test_three_attempts_on_one_provider_are_within_a_routers_retries(tmp_path):
    ups = [up(0, "A", 1 + k, outcome="reset", flow=f"a{k}") for k in range(3)] + [up(0, "B", 9)]
    con = db(tmp_path, {"requests": [req(0, 0, latency_ms=20)], "upstream": ups})
    assert value(con, "retry_storm_calls") == 0


# --- abandoned providers, come-back, route-away ---------------------------------------


def _breaker(*, returns: bool, tail_s: float = 20, backup_faulted: bool = False):
    """A priority router: A serves, B takes over while A is down (2-4 s); after A's
    fault it goes back to A (or never). Calls every 100 ms."""
    reqs, ups = [], []
    end_ms = int((4 + tail_s) * 1000)
    for i, t in enumerate(range(0, end_ms, 100)):
        reqs.append(req(i, t))
        on_a = t < 2000 or (returns and t >= 5000)
        ups.append(up(i, "A" if on_a else "B", t + 1))
    events = fault("a-down", "A", 2, 4)
    if backup_faulted:
        events += fault("c-down", "C", 6, 7)
    return {"requests": reqs, "upstream": ups, "fault_events": events,
            "lifecycle": [stopped(0, len(reqs))]}  # fmt: skip


def test_a_provider_never_used_again_after_its_fault_is_abandoned(tmp_path):
    con = db(tmp_path, _breaker(returns=False))
    result = judged(con, Check("abandoned_providers", "==", 0))
    assert result.observed == 1 and result.witnesses[0]["provider"] == "A"
    assert value(con, "come_back_max_s") == pytest.approx(20, abs=0.2)


def test_a_provider_that_came_back_is_not_abandoned_and_its_come_back_is_timed(tmp_path):
    con = db(tmp_path, _breaker(returns=True))
    assert value(con, "abandoned_providers") == 0
    # A is back at 5.0 s (the fault ended at 4.001 s); its third call, at 5.2 s, marks it
    # as serving again.
    assert value(con, "come_back_max_s") == pytest.approx(1.2, abs=0.01)


def test_a_stray_call_attributed_to_an_abandoned_provider_is_no_return(tmp_path):
    # After the fault one exchange on A (a health probe that attribution by time gave to
    # a call) and nothing else: still abandoned.
    tables = _breaker(returns=False)
    tables["upstream"].append(up(100, "A", 10_000.5, flow="stray"))
    con = db(tmp_path, tables)
    assert value(con, "abandoned_providers") == 1


def test_an_idle_backup_of_a_priority_router_is_never_judged_on_coming_back(tmp_path):
    con = db(tmp_path, _breaker(returns=True, backup_faulted=True))
    assert value(con, "abandoned_providers") == 0
    assert con.execute("SELECT provider, judged FROM provider_return ORDER BY 1").fetchall() == [
        ("A", True),
        ("C", False),
    ]


def test_a_backup_used_only_while_the_first_was_out_owes_no_return(tmp_path):
    # B served from A's fault (2 s) until A was back (5 s, the breaker held it out a
    # second past its window); then B's own fault, after which the router, back on A,
    # never needs B: a priority router's stand-in, not an abandoned provider.
    tables = _breaker(returns=True)
    tables["fault_events"] += fault("b-limited", "B", 6, 7)
    con = db(tmp_path, tables)
    assert value(con, "abandoned_providers") == 0
    assert con.execute("SELECT provider, before_fault, judged FROM provider_return"
                       " ORDER BY 1").fetchall() == [("A", 20, True), ("B", 0, False)]  # fmt: skip


def test_a_run_too_short_after_the_fault_to_see_the_come_back_abandons_nobody(tmp_path):
    con = db(tmp_path, _breaker(returns=False, tail_s=10))
    assert value(con, "abandoned_providers") == 0  # 10 s of load after: under 15 s


def test_a_routers_own_health_probes_are_not_traffic_it_failed_to_stop(tmp_path):
    # Clients leave A at once (2.0 s); its health check probes A every 500 ms meanwhile.
    tables = _breaker(returns=True)
    for k in range(4):
        t = 2000 + 50 + k * 500
        tables["upstream"].append(
            up(None, "A", t, outcome="reset", fault="a-down", flow=f"probe{k}")
        )
    con = db(tmp_path, tables)
    assert value(con, "route_away_max_s") == pytest.approx(0, abs=0.01)
    assert value(con, "own_exchanges") == 4
    assert con.execute("SELECT wasted_attempts FROM breaker").fetchone()[0] == 0


# --- the honest majority while a provider lies its head ahead -------------------------


def _head_ahead(*, follows_highest: bool, serving=("A", "B", "C"), liars=("A",)):
    """Calls every 50 ms for 6 s, round robin over `serving`; the liars report a head
    1,000 blocks ahead from 2 s to 4 s. A router that follows the highest head sends
    every call to the first liar from 2.3 s (its next head poll) to 4.3 s; a correct one
    keeps round robin over the honest ones meanwhile."""
    reqs, ups = [], []
    honest = [p for p in serving if p not in liars] or list(serving)
    for i, t in enumerate(range(0, 6000, 50)):
        reqs.append(req(i, t))
        if 2300 <= t < 4300 and follows_highest:
            provider = liars[0]
        elif 2000 <= t < 4000:
            provider = honest[i % len(honest)]
        else:
            provider = serving[i % len(serving)]
        ups.append(up(i, provider, t + 1))
    events = []
    for p in liars:
        for row in fault(f"{p.lower()}-ahead", p, 2, 4):
            events.append({**row, "kind": "head_lie",
                           "params": json.dumps({"mode": "ahead", "blocks": 1000})})  # fmt: skip
    return {"requests": reqs, "upstream": ups, "fault_events": events,
            "lifecycle": [stopped(0, len(reqs))]}  # fmt: skip


def test_a_router_following_a_head_lied_far_ahead_drops_the_honest_majority(tmp_path):
    con = db(tmp_path, _head_ahead(follows_highest=True))
    result = judged(con, Check("majority_dropped", "==", 0))
    assert result.observed == 2 and not result.passed
    assert [(w["liar"], w["provider"], w["kept"]) for w in result.witnesses] == [
        ("A", "B", 0),
        ("A", "C", 0),
    ]
    # B carried 13 of the 40 calls before the lie (2 s); its second half (1 s) owes 6.5.
    assert result.witnesses[0]["owed"] == pytest.approx(6.5, abs=0.05)
    assert result.witnesses[0]["from_s"] == pytest.approx(3.0, abs=0.01)


def test_a_router_routing_away_from_the_liar_keeps_the_majoritys_traffic(tmp_path):
    con = db(tmp_path, _head_ahead(follows_highest=False))
    assert value(con, "majority_dropped") == 0
    kept = con.execute("SELECT provider, kept FROM majority_traffic ORDER BY 1").fetchall()
    assert kept == [("B", 10), ("C", 10)]


def test_providers_a_priority_router_never_used_are_owed_nothing_when_its_first_lies(
    tmp_path,
):
    con = db(tmp_path, _head_ahead(follows_highest=True, serving=("A",)))
    assert value(con, "majority_dropped") == 0
    assert con.execute("SELECT max(owed) FROM majority_traffic").fetchone()[0] == 0


def test_a_lie_told_by_as_many_providers_as_tell_the_truth_has_no_majority_to_judge(
    tmp_path,
):
    tables = _head_ahead(follows_highest=True, serving=("A", "B"), liars=("A",))
    con = db(tmp_path, tables, {"providers": [{"name": "A"}, {"name": "B"}]})
    assert value(con, "majority_dropped") == 0
    assert con.execute("SELECT count(*) FROM majority_traffic").fetchone()[0] == 0


# --- correlation by time (a router that rewrites ids) ---------------------------------


def _breaker_by_time(*, returns: bool, mix=("eth_blockNumber", "eth_call")):
    """_breaker's priority router, with ids rewritten (no exchange carries a tag) and a
    head poll of eth_blockNumber to every provider each second, twice: at 5 ms past the
    second, inside a client eth_blockNumber call (attribution by time gives it that
    call), and at 50 ms, between calls (the router's own traffic)."""
    reqs, ups = [], []
    for i, t in enumerate(range(0, 24_000, 100)):
        method = mix[i % len(mix)]
        reqs.append(req(i, t, method=method))
        on_a = t < 2000 or (returns and t >= 5000)
        ups.append(up(None, "A" if on_a else "B", t + 1, method=method, flow=f"c{i}"))
    for k in range(24):
        for p in ("A", "B"):
            for dt in (5, 50):
                ups.append(up(None, p, k * 1000 + dt, flow=f"poll-{p}-{k}-{dt}"))
    return {"requests": reqs, "upstream": ups, "fault_events": fault("a-down", "A", 2, 4),
            "lifecycle": [stopped(0, len(reqs))]}  # fmt: skip


def test_head_polls_matched_by_time_to_client_calls_are_no_return(tmp_path):
    con = db(tmp_path, _breaker_by_time(returns=False))
    assert con.execute("SELECT mode FROM correlation").fetchone()[0] == "time_window"
    result = judged(con, Check("abandoned_providers", "==", 0))
    assert result.observed == 1 and result.witnesses[0]["provider"] == "A"


def test_a_provider_back_on_client_calls_comes_back_when_matched_by_time(tmp_path):
    con = db(tmp_path, _breaker_by_time(returns=True))
    assert value(con, "abandoned_providers") == 0
    # Counting eth_call only: A's third, at 5.5 s, from the fault's end at 4.001 s.
    assert value(con, "come_back_max_s") == pytest.approx(1.5, abs=0.01)


def test_a_router_sending_every_method_of_the_mix_on_its_own_is_judged_on_all_of_them(
    tmp_path,
):
    # The mix is eth_blockNumber alone, which the router also polls: no method tells its
    # own exchanges apart, so every matched exchange counts again.
    con = db(tmp_path, _breaker_by_time(returns=True, mix=("eth_blockNumber",)))
    assert value(con, "abandoned_providers") == 0
    assert value(con, "come_back_max_s") == pytest.approx(1.0, abs=0.01)


def test_attempt_figures_hold_on_the_judging_connection_when_the_router_rewrites_ids(
    tmp_path,
):
    # No exchange carries a client's tag: every attempt is attributed by time. Call 3
    # was retried five times on A before B answered.
    reqs = [req(i, i * 100, latency_ms=20) for i in range(10)]
    ups = [up(None, "A", i * 100 + 1, took_ms=5, flow=f"a{i}") for i in range(10) if i != 3]
    ups += [up(None, "A", 301 + 2 * k, took_ms=1, outcome="reset", flow=f"r{k}") for k in range(5)]
    ups += [up(None, "B", 312, took_ms=2, flow="b3")]
    run = make_run(tmp_path, {"requests": reqs, "upstream": ups},
                   scenario={"providers": PROVIDERS})  # fmt: skip
    con, building = build(run)
    try:
        assert con.execute("SELECT mode FROM correlation").fetchone()[0] == "time_window"
        assert value(con, "amplification") == pytest.approx(1.5)
        assert value(con, "retry_storm_calls") == 1
        assert value(con, "overhead_p50_ms") is not None
    finally:
        path = finish(con, building)
    fresh = duckdb.connect(str(path))
    assert value(fresh, "amplification") == pytest.approx(1.5)


# --- memory per call ------------------------------------------------------------------


def _memory(kb_per_call: float, noise_kb: float):
    """30 calls a second for 60 s; the SUT's RSS sampled each second: 50 MB plus
    `kb_per_call` per call served, plus an alternating `noise_kb`."""
    reqs = [req(i, i * 1000 / 30) for i in range(1800)]
    system = []
    for sec in range(1, 61):
        served = sec * 30
        rss = 50e6 + kb_per_call * 1e3 * served + (noise_kb * 1e3 if sec % 2 else 0)
        system.append({"t": T0 + sec * S, "pid": 7, "role": "sut", "cpu": 0.1, "rss": int(rss)})
    return {"requests": reqs, "upstream": [], "system": system}


def test_a_leak_of_one_kb_per_call_shows_with_confidence(tmp_path):
    con = db(tmp_path, _memory(1.0, 300))
    assert value(con, "rss_kb_per_call") == pytest.approx(1.0, abs=0.05)
    assert value(con, "rss_kb_per_call_low95") > 0.5


def test_allocator_noise_without_a_leak_stays_under_the_leak_limit(tmp_path):
    con = db(tmp_path, _memory(0.0, 800))
    assert value(con, "rss_kb_per_call_low95") < 0.5


# --- witnesses of a threshold SLO, and load noise -------------------------------------


def test_a_failed_threshold_lists_the_calls_that_broke_it_worst_first(tmp_path):
    reqs = [req(i, i * 100, latency_ms=400 + i if i in (3, 7) else 10) for i in range(10)]
    con = db(tmp_path, {"requests": reqs, "upstream": []})
    result = parse_slo("latency: p(95) < 300").judge(con)
    assert not result.passed
    assert [w["tag"] for w in result.witnesses] == ["bt-0-7", "bt-0-3"]
    assert result.witness_count == 2
    assert parse_slo("latency: p(50) < 300").judge(con).witnesses == []


def test_a_latency_slo_failed_only_by_late_sends_makes_the_run_invalid(tmp_path):
    # Every call sent 400 ms late and answered 10 ms later: from the intended time they
    # fail a 300 ms SLO, from the actual send they pass.
    reqs = [req(i, i * 1000, send_delay_ms=400, latency_ms=410) for i in range(5)]
    tables = {"requests": reqs, "upstream": [up(i, "A", i * 1000 + 401) for i in range(5)],
              "lifecycle": [stopped(0, 5)]}  # fmt: skip
    con = db(tmp_path, tables)
    slo = parse_slo("latency: p(95) < 300", name="latency")
    j = judge_database(con, tmp_path / "run", [slo])
    noise = [r for r in j.validity if r.name == "load_noise:latency"]
    assert noise and not noise[0].passed and j.verdict == "invalid"


def test_a_latency_slo_the_router_failed_is_a_failure_not_load_noise(tmp_path):
    reqs = [req(i, i * 1000, latency_ms=410) for i in range(5)]
    tables = {"requests": reqs, "upstream": [up(i, "A", i * 1000 + 1, took_ms=400)
                                             for i in range(5)],
              "lifecycle": [stopped(0, 5)]}  # fmt: skip
    con = db(tmp_path, tables)
    j = judge_database(con, tmp_path / "run", [parse_slo("latency: p(95) < 300", name="l")])
    assert j.verdict == "failed"
    assert all(r.passed for r in j.validity if r.name.startswith("load_noise"))


def test_the_router_profile_records_which_expectations_were_declared(tmp_path):
    con = db(tmp_path, {"requests": [req(0, 0)], "upstream": []},
             {"expect": {"come_back_s": 30}})  # fmt: skip
    rows = dict(con.execute("SELECT name, declared FROM expect").fetchall())
    assert rows["come_back_s"] is True and rows["route_away_s"] is False


def test_zero_is_a_declarable_back_off_and_not_a_declarable_deadline():
    assert resolve_expect({"rate_limit_backoff_s": 0})["rate_limit_backoff_s"] == 0
    with pytest.raises(ValueError, match=r"expect\.come_back_s must be a number > 0, got 0"):
        resolve_expect({"come_back_s": 0})
