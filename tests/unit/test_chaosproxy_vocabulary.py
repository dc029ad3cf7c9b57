"""The fault vocabulary, matchers and schedules: parsing, selection and composition."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pytest

from chaosproxy.errors import ConfigError
from chaosproxy.faults import (
    HttpErrorParams,
    LatencyParams,
    RateLimitParams,
    WsDisconnectParams,
    WsEveryParams,
    answer_record,
    parse_faults,
)
from chaosproxy.matching import Matcher, TokenBucket
from chaosproxy.presets import PRESETS_PATH, convert, load_presets
from chaosproxy.schedule import Timeline, windows

# The provider error catalogue presets.json is generated from, kept in the repository.
CATALOGUE = Path(__file__).resolve().parents[2] / "chaosproxy" / "provider-errors.json"
S = 1_000_000_000
T0 = 1_700_000_000 * S


def fault(**kw):
    base = {"fault_id": "f", "provider": "A", "kind": "reset", "start_s": 0, "duration_s": 10}
    base.update(kw)
    return base


def one(**kw):
    return parse_faults([fault(**kw)], ("A", "B"))[0]


def no_header(name: str) -> None:
    return None


BAD = [
    (fault(kind="latency"), "faults[0].params.ms is required for kind 'latency'"),
    (fault(kind="latency", params={"ms": -1}), "faults[0].params.ms must be >= 0, got -1"),
    (
        fault(kind="latency", params={"ms": 1, "jitter": "pareto"}),
        "faults[0].params.jitter must be one of",
    ),
    (fault(kind="latency", params={"ms": 1, "where": "x"}), "faults[0].params.where must be"),
    (fault(kind="rate_limit"), "faults[0].params needs exactly one of rate_per_s or"),
    (
        fault(kind="rate_limit", params={"rate_per_s": 1, "rate_per_min": 60}),
        "faults[0].params needs exactly one of rate_per_s or rate_per_min for kind 'rate_limit',"
        " got both",
    ),
    (
        fault(kind="rate_limit", params={"rate_per_s": 1, "costs": {"eth_call": 0}}),
        "faults[0].params.costs.eth_call must be > 0",
    ),
    (
        fault(kind="rate_limit", params={"rate_per_s": 1, "costs": []}),
        "faults[0].params.costs must be a non-empty object of method to units",
    ),
    (fault(kind="rate_limit", params={"rate_per_s": 0}), "faults[0].params.rate_per_s must be > 0"),
    (
        fault(kind="http_error", params={"preset": "nope"}),
        "faults[0].params.preset must name a preset",
    ),
    (
        fault(kind="http_error", params={"preset": "geth_header_not_found"}),
        "faults[0].params.preset 'geth_header_not_found' is a 'rpc_error_200' preset",
    ),
    (
        fault(kind="rpc_error", params={"preset": "alchemy_app_inactive"}),
        "faults[0].params.preset 'alchemy_app_inactive' carries no JSON-RPC error code",
    ),
    (fault(kind="corrupt", params={"mode": "x"}), "faults[0].params.mode must be one of"),
    (fault(kind="stale"), "faults[0].params.lag_blocks is required"),
    (fault(kind="stale", params={"lag_blocks": 0}), "faults[0].params.lag_blocks must be >= 1"),
    (
        fault(kind="head_lie"),
        "faults[0].params.mode must be one of ['ahead', 'zero', 'tags', 'chain_id', 'syncing']",
    ),
    (
        fault(kind="head_lie", params={"mode": "ahead", "chain_id": 1}),
        "faults[0].params.chain_id applies to mode 'chain_id' only",
    ),
    (
        fault(kind="head_lie", params={"mode": "chain_id", "chain_id": 0}),
        "faults[0].params.chain_id must be >= 1",
    ),
    (
        fault(kind="head_lie", params={"mode": "chain_id", "blocks": 3}),
        "faults[0].params.blocks does not apply to mode 'chain_id'",
    ),
    (
        fault(kind="head_lie", params={"mode": "zero", "blocks": 3}),
        "faults[0].params.blocks does not apply to mode 'zero'",
    ),
    (
        fault(kind="head_lie", params={"mode": "ahead", "blocks": 0}),
        "faults[0].params.blocks must be >= 1",
    ),
    (
        fault(kind="head_lie", params={"mode": "tags"}, match={"transport": "ws"}),
        "faults[0].match.transport 'ws' does not apply to kind 'head_lie'",
    ),
    (
        fault(kind="ws_disconnect", params={"code": 1006}),
        "faults[0].params.code must be a sendable",
    ),
    (
        fault(kind="ws_drop", params={"probability": 2}),
        "faults[0].params.probability must be in [0, 1]",
    ),
    (
        fault(kind="ws_drop", params={"probability": 0.5, "every_k": 2}),
        "faults[0].params: give probability or every_k, not both",
    ),
    (fault(kind="ws_delay"), "faults[0].params.ms is required for kind 'ws_delay'"),
    (fault(kind="hang", params={"close_after_s": 0}), "faults[0].params.close_after_s must be > 0"),
    (fault(match=[]), "faults[0].match must be an object, got a list"),
    (fault(match={"colour": 1}), "faults[0].match.colour is not a match field"),
    (fault(match={"methods": []}), "faults[0].match.methods must be a non-empty list"),
    (fault(match={"probability": 1.5}), "faults[0].match.probability must be in [0, 1]"),
    (fault(match={"per": "socket"}), "faults[0].match.per must be 'request' or 'connection'"),
    (fault(match={"first_n": 0}), "faults[0].match.first_n must be >= 1"),
    (fault(match={"header": "a b: c"}), "faults[0].match.header has an invalid header name"),
    (
        fault(kind="refuse", match={"first_n": 1}),
        "faults[0].match.first_n: kind 'refuse' takes no match",
    ),
    (fault(match={"transport": "udp"}), "faults[0].match.transport must be 'http' or 'ws'"),
    (
        fault(kind="http_error", match={"transport": "ws"}),
        "faults[0].match.transport 'ws' does not apply to kind 'http_error'",
    ),
    (
        fault(kind="ws_drop", match={"methods": ["eth_call"]}),
        "faults[0].match.methods does not apply to kind 'ws_drop'",
    ),
    (
        fault(kind="ws_stall", match={"subscriptions": ["newHeads"]}),
        "faults[0].match.subscriptions does not apply to kind 'ws_stall'",
    ),
    (
        fault(kind="ws_drop", match={"subscriptions": ["heads"]}),
        "faults[0].match.subscriptions must be a non-empty list of ['newHeads', 'logs'",
    ),
    (
        fault(kind="latency", params={"ms": 1}, match={"subscriptions": ["logs"]}),
        "faults[0].match.subscriptions does not apply to kind 'latency'",
    ),
    (fault(schedule={"wave": {}}), "faults[0].schedule must be"),
    (
        fault(schedule={"flap": {"down_s": 1, "up_s": 1}}),
        "faults[0].schedule.flap.count is required",
    ),
    (
        fault(schedule={"flap": {"down_s": 4, "up_s": 1, "count": 3}}),
        "faults[0].schedule.flap: 3 x down_s 4 + up_s gaps need 14 s, more than duration_s 10",
    ),
    (fault(schedule={"random": {"down_s": 1}}), "faults[0].schedule.random.mtbf_s is required"),
    (fault(fault_id="a#1"), "faults[0].fault_id must be a non-empty string without '#'"),
]


@pytest.mark.parametrize(("item", "message"), BAD)
def test_bad_vocabulary_names_the_field(item, message):
    with pytest.raises(ConfigError) as info:
        parse_faults([item], ("A", "B"))
    assert str(info.value).startswith(message), str(info.value)


def test_presets_fill_http_error_and_explicit_params_override_them():
    f = one(kind="http_error", params={"preset": "llamarpc_cloudflare_1015"})
    assert f.params.status == 429 and ("Retry-After", "30") in f.params.headers
    assert f.params.body is not None  # no JSON-RPC code: the message is sent as text
    g = one(kind="http_error", params={"preset": "proxyd_over_rate_limit", "status": 503})
    assert g.params == HttpErrorParams(503, None, g.params.headers, -32016, g.params.message, None)


def test_rpc_error_preset_takes_code_message_and_data():
    f = one(kind="rpc_error", params={"preset": "geth_header_not_found"})
    assert f.params.code == -32000 and f.params.message == "header not found"


def test_rate_limit_answers_like_infura_by_default():
    f = one(kind="rate_limit", params={"rate_per_s": 5})
    assert isinstance(f.params, RateLimitParams)
    assert (f.params.burst, f.params.answer.status, f.params.answer.code) == (5.0, 429, -32005)


def test_a_per_minute_quota_refills_by_the_minute_and_holds_a_minutes_calls():
    p = one(kind="rate_limit", params={"rate_per_min": 120}).params
    assert (p.rate_per_s, p.burst) == (2.0, 120.0)


def test_an_exchange_costs_one_token_unless_the_quota_counts_credit_units():
    plain = one(kind="rate_limit", params={"rate_per_s": 5}).params
    assert plain.cost_of(["eth_call", "eth_getLogs"]) == 1.0
    credits = one(
        kind="rate_limit",
        params={
            "rate_per_s": 500,
            "costs": {"eth_call": 26, "eth_getLogs": 75},
            "default_cost": 10,
        },
    ).params
    # A batch costs the sum of its calls; a method not named costs default_cost.
    assert credits.cost_of(["eth_call", "eth_getLogs", "eth_blockNumber", None]) == 121.0
    # What analysis reads to tell a quota kept from a limit the proxy failed to apply.
    assert plain.quota_record() == {"rate_per_s": 5.0, "burst": 5.0, "least_cost": 1.0}
    assert credits.quota_record()["least_cost"] == 10.0


def test_the_recorded_answer_resolves_a_preset_and_keeps_a_text_body_as_text():
    text = one(kind="rate_limit", params={"rate_per_s": 1, "preset": "llamarpc_cloudflare_1015"})
    assert answer_record(text.params.answer) == {
        "status": 429, "headers": {"Retry-After": "30"}, "body": "error code: 1015",
        "code": None, "message": None, "data": None,
    }  # fmt: skip
    infura = answer_record(one(kind="rate_limit", params={"rate_per_s": 1}).params.answer)
    assert (infura["status"], infura["code"], infura["body"]) == (429, -32005, None)
    assert infura["data"]["rate"]["backoff_seconds"] == 0


def test_ws_presets_map_1006_to_an_abnormal_close():
    assert one(kind="ws_disconnect", params={"preset": "infura_ws_dropped"}).params == (
        WsDisconnectParams(None, "")
    )
    big = one(kind="ws_disconnect", params={"preset": "chainstack_ws_message_too_big"}).params
    assert big.code == 1009


def test_a_head_lie_defaults_to_a_chain_far_ahead_and_to_tags_below_finalized():
    assert (one(kind="head_lie", params={"mode": "ahead"}).params.blocks) == 1000
    assert (one(kind="head_lie", params={"mode": "tags"}).params.blocks) == 100
    assert (one(kind="head_lie", params={"mode": "syncing"}).params.blocks) == 100
    assert (one(kind="head_lie", params={"mode": "chain_id"}).params.chain_id) is None


def test_ws_reorder_defaults_to_swapping_neighbours():
    assert one(kind="ws_reorder").params == WsEveryParams(None, 2)


def test_the_presets_file_is_the_catalogue_converted_with_all_80_entries():
    presets = load_presets()
    assert len(presets) == 80
    assert convert(json.loads(CATALOGUE.read_text())) == json.loads(PRESETS_PATH.read_text())


# -- latency ------------------------------------------------------------------------------


def test_latency_ramps_linearly_across_the_window():
    p = LatencyParams(ms=100, ramp_to_ms=300)
    rng = random.Random(0)
    assert [p.sample_ns(rng, x) for x in (0, 0.5, 1, 2)] == [
        100_000_000,
        200_000_000,
        300_000_000,
        300_000_000,
    ]


@pytest.mark.parametrize("jitter", ["uniform", "exponential", "normal"])
def test_latency_jitter_only_adds_and_averages_near_its_scale(jitter):
    p = LatencyParams(ms=10, jitter_ms=4, jitter=jitter)
    rng = random.Random(1)
    xs = [p.sample_ns(rng, 0) / 1e6 - 10 for _ in range(4000)]
    assert min(xs) >= 0
    expected = {"uniform": 2.0, "exponential": 4.0, "normal": 4 * (2 / 3.14159) ** 0.5}[jitter]
    assert abs(sum(xs) / len(xs) - expected) < 0.3


# -- matchers -----------------------------------------------------------------------------


def matcher(**match):
    return Matcher(one(match=match).match)


def test_method_matcher_looks_inside_batches():
    m = matcher(methods=["eth_call"])
    assert m.accepts(["eth_blockNumber", "eth_call"], no_header, "c")
    assert not m.accepts(["eth_blockNumber"], no_header, "c")


def test_header_matcher_needs_the_header_and_its_value_when_given():
    m = matcher(header="X-Chaos: on")
    assert m.accepts(["m"], {"X-Chaos": "on"}.get, "c")
    assert not m.accepts(["m"], {"X-Chaos": "off"}.get, "c")
    assert matcher(header="X-Chaos").accepts(["m"], {"X-Chaos": "off"}.get, "c")
    assert not matcher(header="X-Chaos").accepts(["m"], no_header, "c")


def test_first_n_and_after_n_count_only_exchanges_that_passed_the_filters():
    first = matcher(methods=["a"], first_n=2)
    got = [first.accepts([m], no_header, "c") for m in ["b", "a", "b", "a", "a"]]
    assert got == [False, True, False, True, False]
    after = matcher(after_n=2)
    assert [after.accepts(["m"], no_header, "c") for _ in range(4)] == [False, False, True, True]


def test_probability_per_request_is_seeded_and_near_its_rate():
    a, b = matcher(probability=0.3, seed=7), matcher(probability=0.3, seed=7)
    xs = [a.accepts(["m"], no_header, "c") for _ in range(5000)]
    assert xs == [b.accepts(["m"], no_header, "c") for _ in range(5000)]
    assert abs(sum(xs) / 5000 - 0.3) < 0.03


def test_probability_per_connection_is_decided_once_per_connection():
    m = matcher(probability=0.5, per="connection", seed=3)
    per_conn = {
        c: {m.accepts(["m"], no_header, c) for _ in range(20)} for c in map(str, range(200))
    }
    assert all(len(v) == 1 for v in per_conn.values())
    hit = sum(v == {True} for v in per_conn.values())
    assert 70 < hit < 130


def test_per_connection_draws_forget_only_the_least_recently_used_connection(monkeypatch):
    monkeypatch.setattr("chaosproxy.matching.MAX_CONNECTIONS_REMEMBERED", 3)
    m = matcher(probability=0.5, per="connection", seed=3)
    first = {c: m.accepts(["m"], no_header, c) for c in ("a", "b", "c")}
    m.accepts(["m"], no_header, "a")  # a is used again, so b is now the oldest
    m.accepts(["m"], no_header, "d")
    assert list(m.conns) == ["c", "a", "d"]
    assert m.conns["a"] == first["a"] and m.conns["c"] == first["c"]


def test_token_bucket_allows_burst_then_refills_at_rate():
    b = TokenBucket(rate_per_s=10, burst=3, now_ns=0)
    assert [b.take(0) for _ in range(4)] == [True, True, True, False]
    assert b.take(S // 10) and not b.take(S // 10)
    assert [b.take(10 * S) for _ in range(4)] == [True, True, True, False]


# -- schedules ----------------------------------------------------------------------------


def test_flap_windows_alternate_down_and_up():
    f = one(start_s=5, duration_s=20, schedule={"flap": {"down_s": 2, "up_s": 3, "count": 3}})
    assert windows(f.start_s, f.duration_s, f.schedule) == [(5, 7), (10, 12), (15, 17)]


def test_random_windows_are_seeded_inside_the_span_and_near_their_mean_gap():
    f = one(
        start_s=0, duration_s=10_000, schedule={"random": {"mtbf_s": 20, "down_s": 1, "seed": 4}}
    )
    ws = windows(f.start_s, f.duration_s, f.schedule)
    assert ws == windows(f.start_s, f.duration_s, f.schedule)
    assert all(0 <= s < e <= 10_000 for s, e in ws)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(ws))
    gaps = [b[0] - a[1] for a, b in itertools.pairwise(ws)]
    assert abs(sum(gaps) / len(gaps) - 20) < 2.5


def test_each_flap_window_is_its_own_fault_event_id():
    tl = Timeline([one(fault_id="fl", schedule={"flap": {"down_s": 1, "up_s": 1, "count": 2}})])
    tl.start(T0)
    applied = tl.advance(T0 + 10 * S)
    assert [(t.event, t.fault.window_id, t.t_ns - T0) for t in applied] == [
        ("start", "fl#0", 0),
        ("end", "fl#0", S),
        ("start", "fl#1", 2 * S),
        ("end", "fl#1", 3 * S),
    ]


# -- composition --------------------------------------------------------------------------


def started(*faults):
    tl = Timeline(parse_faults(list(faults), ("A", "B")))
    tl.start(T0)
    tl.advance(T0)
    return tl


def test_delays_stack_and_the_first_outcome_in_plan_order_wins():
    tl = started(
        fault(fault_id="l1", kind="latency", params={"ms": 10}),
        fault(fault_id="e1", kind="http_error"),
        fault(fault_id="l2", kind="latency", params={"ms": 5}),
        fault(fault_id="r1", kind="reset"),
        fault(fault_id="c1", kind="corrupt", params={"mode": "wrong_id"}),
    )
    sel = tl.select("A", "http", ["m"], no_header, "c", T0)
    assert [d.window_id for d in sel.delays] == ["l1", "l2"]
    assert sel.outcome.window_id == "e1"
    assert sel.modify.window_id == "c1"


def test_an_outcome_that_does_not_match_lets_the_next_one_apply():
    tl = started(
        fault(fault_id="e1", kind="http_error", match={"methods": ["eth_call"]}),
        fault(fault_id="r1", kind="reset"),
    )
    assert tl.select("A", "http", ["eth_call"], no_header, "c", T0).outcome.window_id == "e1"
    assert tl.select("A", "http", ["eth_chainId"], no_header, "c", T0).outcome.window_id == "r1"


def test_rate_limit_selects_only_when_its_bucket_is_empty():
    tl = started(fault(fault_id="rl", kind="rate_limit", params={"rate_per_s": 2, "burst": 2}))
    got = [tl.select("A", "http", ["m"], no_header, "c", T0) for _ in range(3)]
    assert got[:2] == [None, None] and got[2].outcome.window_id == "rl"
    assert tl.select("A", "http", ["m"], no_header, "c", T0 + S) is None


def test_a_credit_unit_quota_limits_the_costly_call_and_lets_a_cheap_one_through():
    tl = started(fault(fault_id="cu", kind="rate_limit", params={
        "rate_per_s": 1, "burst": 30, "costs": {"eth_getLogs": 75, "eth_call": 26}}))  # fmt: skip
    assert tl.select("A", "http", ["eth_getLogs"], no_header, "c", T0).outcome.window_id == "cu"
    assert tl.select("A", "http", ["eth_call"], no_header, "c", T0) is None  # 4 left
    assert tl.select("A", "http", ["eth_blockNumber"], no_header, "c", T0) is None  # 3 left
    # A limited exchange takes nothing: 3 units refill to 29 after 26 s.
    assert tl.select("A", "http", ["eth_call"], no_header, "c", T0 + 26 * S) is None


def test_nothing_is_selected_on_another_provider_or_for_listener_and_ws_faults():
    tl = started(fault(kind="refuse"), fault(fault_id="w", kind="ws_stall"))
    assert tl.select("A", "http", ["m"], no_header, "c", T0) is None
    assert tl.select("B", "http", ["m"], no_header, "c", T0) is None


def test_a_transport_match_selects_only_that_transport():
    tl = started(
        fault(fault_id="lw", kind="latency", params={"ms": 5}, match={"transport": "ws"}),
        fault(fault_id="lh", kind="latency", params={"ms": 7}, match={"transport": "http"}),
        fault(fault_id="l", kind="latency", params={"ms": 1}),
    )
    assert [d.window_id for d in tl.select("A", "ws", ["m"], no_header, "c", T0).delays] == [
        "lw",
        "l",
    ]
    assert [d.window_id for d in tl.select("A", "http", ["m"], no_header, "c", T0).delays] == [
        "lh",
        "l",
    ]


def test_a_websocket_call_skips_http_error_and_takes_the_next_outcome():
    tl = started(fault(fault_id="e", kind="http_error"), fault(fault_id="r", kind="rpc_error"))
    assert tl.select("A", "ws", ["m"], no_header, "c", T0).outcome.window_id == "r"
    assert tl.select("A", "http", ["m"], no_header, "c", T0).outcome.window_id == "e"


def test_subscription_matcher_takes_only_the_named_kinds():
    m = Matcher(
        parse_faults([fault(kind="ws_drop", match={"subscriptions": ["logs"]})], ("A",))[0].match
    )
    assert m.accepts((None,), no_header, "c", "logs")
    assert not m.accepts((None,), no_header, "c", "newHeads")
    assert not m.accepts((None,), no_header, "c", None)


# -- run-time changes ---------------------------------------------------------------------


def test_adding_the_same_fault_twice_is_a_no_op_and_a_different_one_conflicts():
    tl = started()
    f = one(kind="http_error", start_s=1)
    assert tl.add(f) is True
    assert tl.add(one(kind="http_error", start_s=1)) is False
    with pytest.raises(Timeline.Conflict):
        tl.add(one(kind="reset", start_s=1))
    assert [t.event for t in tl.advance(T0 + 2 * S)] == ["start"]


def test_clear_ends_active_windows_now_and_cancels_pending_ones():
    tl = started(
        fault(fault_id="fl", duration_s=20, schedule={"flap": {"down_s": 1, "up_s": 1, "count": 5}})
    )
    tl.advance(T0 + S // 2)
    ended = tl.clear(["fl"], T0 + S // 2 + 7)
    assert [(t.fault.window_id, t.t_ns) for t in ended] == [("fl#0", T0 + S // 2 + 7)]
    assert tl.active == {} and tl.next_transition() is None
    assert [rt.state for rt in tl.faults] == ["ended"] + ["cancelled"] * 4
    with pytest.raises(KeyError):
        tl.clear(["fl"], T0)
