"""The SLO engine: k6's grammar over metrics, phases, rolling windows, raw SQL."""

from __future__ import annotations

import duckdb
import pytest
from analysis_rows import fault, make_run, req, stopped, up

from analysis.database import ingest
from analysis.slo import Check, SqlCheck, evaluate, parse_slo, slo_from_json


def judge(con, text: str):
    return evaluate(con, [parse_slo(text)])[0]


@pytest.fixture
def outage(tmp_path):
    """100 requests 100 ms apart on providers A and B alternately; A is down from 3 s
    to 4 s and the five requests it got then failed; eth_getBalance is slow."""
    reqs, ups = [], []
    for i in range(100):
        down = i % 2 == 0 and 31 <= i <= 40
        method = "eth_getBalance" if i % 10 == 5 else "eth_blockNumber"
        latency = 400 if method == "eth_getBalance" else 10
        reqs.append(
            req(
                i,
                i * 100,
                outcome="conn_error" if down else "ok",
                latency_ms=latency,
                method=method,
            )
        )
        ups.append(
            up(
                i,
                "AB"[i % 2],
                i * 100 + 1,
                outcome="reset" if down else "ok",
                fault="a-down" if down else None,
                method=method,
            )
        )
    run = make_run(
        tmp_path,
        {
            "requests": reqs,
            "upstream": ups,
            "fault_events": fault("a-down", "A", 3, 4),
            "lifecycle": [stopped(0, 100)],
        },
        scenario={
            "faults": [{"fault_id": "a-down", "provider": "A"}],
            "analysis": {"recovery_window_s": 2},
        },
    )
    con = duckdb.connect(str(ingest(run)))
    yield con
    con.close()


def test_a_rate_threshold_fires_on_failures_and_holds_without_them(outage):
    r = judge(outage, "success: rate > 0.99")
    assert not r.passed and r.observed == pytest.approx(0.95)
    assert judge(outage, "success{phase:before_faults}: rate > 0.99").passed


def test_percentiles_filter_by_method(outage):
    assert not judge(outage, "latency: p(95) < 300").passed
    r = judge(outage, "latency{method:eth_blockNumber}: p(95) < 300")
    assert r.passed and r.observed == pytest.approx(10) and r.unit == "ms"
    assert judge(outage, "latency{method:eth_getBalance}: min >= 400").passed


def test_provider_filter_on_client_metrics_means_the_provider_that_served(outage):
    assert judge(outage, "success{provider:B}: rate == 1").passed
    assert not judge(outage, "success{provider:A}: rate == 1").passed
    assert judge(outage, "upstream_errors{provider:A}: count == 5").passed


def test_phases_come_from_the_applied_chaos_timeline(outage):
    # The fault applied from 3.001 s to 4.001 s (planned + 1 ms); recovery lasts 2 s.
    assert judge(outage, "errors{phase:during:a-down}: count == 5").passed
    assert judge(outage, "errors{phase:recovery:a-down}: count == 0").passed
    assert judge(outage, "errors{phase:steady}: count == 0").passed
    assert not judge(outage, "errors: count == 0").passed
    assert judge(outage, "requests{phase:steady}: count == 70").passed  # 0-3.001, 6.001-9.9


def test_the_worst_rolling_window_must_hold_and_is_the_evidence(outage):
    whole = judge(outage, "success: rate >= 0.9")
    assert whole.passed
    r = judge(outage, "success{window:2s}: rate >= 0.9")
    assert not r.passed and r.observed == pytest.approx(0.75)
    assert (r.window["from_s"], r.window["to_s"]) == (3.0, 5.0)
    assert r.window["failing_windows"] == 2 and r.window["windows"] == 8
    # The evidence's query runs as it stands and lists every window.
    assert len(outage.execute(r.query).fetchall()) == 8


def test_windows_cover_each_interval_of_a_split_phase_and_short_scopes_whole(outage):
    # steady is 0-3.001 s and 6.001-9.9 s: 2 s windows in each, none across the gap,
    # the last of each running to its end (1-3.001 s: 21 requests; 7.001-9.9 s: 29).
    r = judge(outage, "requests{phase:steady,window:2s}: count >= 20")
    assert r.passed and r.window["windows"] == 2 + 2 and r.observed == 20
    assert not judge(outage, "requests{phase:steady,window:2s}: count > 20").passed
    # The fault lasted 1 s: one window, the whole fault, shorter than asked.
    r = judge(outage, "errors{phase:during:a-down,window:10s}: count == 0")
    assert not r.passed and r.observed == 5 and r.window["windows"] == 1
    assert (r.window["from_s"], r.window["to_s"]) == (3.001, 4.001)


def test_a_counter_rate_is_per_second(outage):
    assert judge(outage, "requests{window:1s}: rate >= 10").passed
    assert not judge(outage, "requests{window:1s}: rate > 10").passed


def test_raw_sql_slos_fire_and_stay_quiet(outage):
    sql = "SELECT count(*) FROM upstream WHERE provider = 'A' AND outcome <> 'ok'"
    quiet, fires = evaluate(
        outage, [SqlCheck("a-fails", sql, "<=", 5), SqlCheck("a-fails", sql, "<", 5)]
    )
    assert quiet.passed and not fires.passed and fires.observed == 5 and fires.query == sql
    broken = SqlCheck("bad", "SELECT nope FROM nowhere", "<", 1).judge(outage)
    assert not broken.passed and broken.note.startswith("query failed")


def test_an_slo_over_a_phase_the_run_lacks_fails_and_says_why(outage):
    r = judge(outage, "success{phase:during:b-down}: rate > 0.9")
    assert not r.passed and "phase 'during:b-down' is not in this run" in r.note


def test_no_data_fails_rather_than_passes(outage):
    r = judge(outage, "ws_delay: p(99) < 1000")
    assert not r.passed and r.observed is None and r.note == "no data"


def test_named_queries_keep_working_as_checks(outage):
    (r,) = evaluate(outage, [Check("success_rate", ">=", 0.99, "clients succeeded")])
    assert not r.passed and r.observed == pytest.approx(0.95)
    assert isinstance(parse_slo("success_rate >= 0.99"), Check)


@pytest.mark.parametrize(
    "text",
    [
        "latency: p(95) < 300",
        "latency{method:eth_call,phase:steady,window:10s}: p(99.9) <= 250",
        "success{transport:ws}: rate > 0.999",
        "errors{phase:during:a-down}: count == 0",
        "rss_mb: max < 500",
    ],
)
def test_expressions_round_trip(text):
    assert parse_slo(text).expression == text
    assert slo_from_json({"slo": text}).expression == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("latncy: p(95) < 3", "metric must be one of"),
        ("success: p(95) < 3", "aggregation of a rate metric must be one of rate"),
        ("latency: rate < 3", "aggregation of a trend metric must be one of avg"),
        ("ws_delay{provider:A}: max < 3", "filter 'provider' is not a dimension of ws_delay"),
        ("latency{window:10}: max < 3", "window must be a duration like 10s"),
        ("latency{window:1500ms}: max < 3", "window must be a whole number of seconds"),
        ("latency{method}: max < 3", "filter 'method' must read key:value"),
        ("latency: p(101) < 3", "p(N) needs 0 <= N <= 100"),
        ("latency p95 < 3", "must read `metric{filter:value,...}: agg op number`"),
    ],
)
def test_bad_slos_name_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_slo(text)


def test_raw_sql_slos_in_scenario_files_need_an_expectation():
    slo = slo_from_json({"name": "x", "sql": "SELECT 1", "expect": "== 1"})
    assert isinstance(slo, SqlCheck) and slo.threshold == 1
    with pytest.raises(ValueError, match="expect must read `op number`"):
        slo_from_json({"name": "x", "sql": "SELECT 1", "expect": "one"})
