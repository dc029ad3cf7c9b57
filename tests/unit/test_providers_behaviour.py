"""Pins providers.behaviour and its effect on MockNode: latency distributions, injected
errors, head lag, rate limits, unsupported methods, archive depth and forks, each
deterministic under a seed, on a fake clock."""

from __future__ import annotations

import json
import statistics
from typing import Any

import pytest

from providers import Chain, MockNode
from providers.behaviour import BehaviourState, Fork, parse_behaviour
from providers.errors import PRESETS

G = 1_700_000_000_000_000_000
S = 10**9
ADDR = "0x" + "12" * 20


class FakeClock:
    def __init__(self, now_ns: int) -> None:
        self.now_ns = now_ns

    def __call__(self) -> int:
        return self.now_ns


def node_with(spec: dict[str, Any], clock: FakeClock | None = None, seed: int = 1) -> MockNode:
    clock = clock or FakeClock(G + 1000 * S + 1)  # chain head 1000
    return MockNode(Chain(seed, G), clock, name="P", behaviour=parse_behaviour(spec))


def call(node: MockNode, method: str, params: Any = None, rid: Any = 1) -> dict[str, Any]:
    msg = {"jsonrpc": "2.0", "id": rid, "method": method, "params": params or []}
    return json.loads(node.respond(json.dumps(msg).encode()).body)


# ------------------------------------------------------------------ parsing


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"error_rate": 2}, "behaviour.error_rate must be <= 1, got 2"),
        ({"error_rate": "x"}, "behaviour.error_rate must be a number"),
        ({"latency": {"dist": "pareto"}}, "behaviour.latency.dist must be one of"),
        ({"latency": {"dist": "fixed"}}, "behaviour.latency.ms must be a number"),
        ({"latency": {"dist": "uniform", "low_ms": 5, "high_ms": 1}}, "high_ms must be >= low_ms"),
        ({"head_lag": -1}, "behaviour.head_lag must be >= 0, got -1"),
        ({"rate_limit": {"rps": 0}}, "behaviour.rate_limit.rps must be > 0"),
        ({"rate_limit": {"rps": 5, "mode": "x"}}, "behaviour.rate_limit.mode must be"),
        ({"error": "nope"}, "behaviour.error must be a preset"),
        ({"error": {"code": 1}}, "behaviour.error.message must be a string"),
        ({"fork": {"start": 10}}, "behaviour.fork.length must be an integer"),
        ({"fork": {"start": 10, "length": 5, "every": 3}}, "behaviour.fork.every must be > length"),
        ({"unsupported": "eth_call"}, "behaviour.unsupported must be a list"),
        ({"colour": 1}, "behaviour.colour is not a known key"),
    ],
)
def test_bad_specs_are_refused_naming_the_field(spec, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        parse_behaviour(spec)


# ------------------------------------------------------------------ latency


@pytest.mark.parametrize(
    "latency",
    [
        {"dist": "fixed", "ms": 5},
        {"dist": "uniform", "low_ms": 1, "high_ms": 9},
        {"dist": "normal", "mean_ms": 5, "stdev_ms": 1},
        {"dist": "lognormal", "median_ms": 5, "sigma": 0.5},
    ],
)
def test_latencies_follow_their_distribution_and_repeat_under_a_seed(latency):
    b = parse_behaviour({"seed": 3, "latency": latency})
    one, two = BehaviourState(b), BehaviourState(b)
    a = [one.delay_ns() / 1e6 for _ in range(2000)]
    assert a == [two.delay_ns() / 1e6 for _ in range(2000)]
    other = BehaviourState(parse_behaviour({"seed": 4, "latency": latency}))
    if latency["dist"] != "fixed":
        assert a != [other.delay_ns() / 1e6 for _ in range(2000)]
    assert all(x >= 0 for x in a)
    assert abs(statistics.median(a) - 5) < 0.5


def test_the_node_reports_each_replys_latency():
    node = node_with({"latency": {"dist": "fixed", "ms": 12}})
    reply = node.respond(b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber"}')
    assert reply.delay_ns == 12_000_000


# ------------------------------------------------------------------ errors


def test_errors_come_at_the_chosen_rate_with_the_chosen_error_and_repeat_under_a_seed():
    spec = {"seed": 5, "error_rate": 0.2, "error": "geth_header_not_found"}
    runs = []
    for _ in range(2):
        node = node_with(spec)
        runs.append(["error" in call(node, "eth_blockNumber") for _ in range(1000)])
    assert runs[0] == runs[1]
    assert 150 < sum(runs[0]) < 250
    err = call(node_with({"error_rate": 1, "error": "geth_header_not_found"}), "eth_chainId")
    assert err["error"] == {"code": -32000, "message": "header not found"}


def test_an_error_with_an_http_status_travels_with_it():
    node = node_with({"error_rate": 1, "error": "proxyd_over_rate_limit"})
    reply = node.respond(b'{"jsonrpc":"2.0","id":"t","method":"eth_blockNumber"}')
    assert reply.status == 429
    assert json.loads(reply.body)["error"]["code"] == -32016
    # the next, error-free reply is 200 again
    assert node_with({}).respond(b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}').status == 200


def test_without_behaviours_no_call_fails():
    node = node_with({})
    assert all("result" in call(node, "eth_blockNumber") for _ in range(200))


# ------------------------------------------------------------------ head lag


def test_head_lag_holds_the_provider_k_blocks_behind():
    assert call(node_with({"head_lag": 3}), "eth_blockNumber")["result"] == hex(997)
    assert call(node_with({}), "eth_blockNumber")["result"] == hex(1000)
    lagging = node_with({"head_lag": 3})
    assert call(lagging, "eth_getBlockByNumber", [hex(999), False])["result"] is None
    assert call(lagging, "eth_getBalance", [ADDR, hex(999)])["error"]["message"] == (
        "header not found"
    )


# ------------------------------------------------------------------ rate limit


def test_the_rate_limit_answers_429_with_retry_after_over_the_limit():
    clock = FakeClock(G + 1000 * S)
    node = node_with({"rate_limit": {"rps": 10, "burst": 2, "retry_after_s": 3}}, clock)
    body = b'{"jsonrpc":"2.0","id":9,"method":"eth_blockNumber"}'
    statuses = [node.respond(body).status for _ in range(4)]
    assert statuses == [200, 200, 429, 429]
    limited = node.respond(body)
    assert ("Retry-After", "3") in limited.headers
    err = json.loads(limited.body)
    assert err["id"] == 9 and err["error"]["code"] == -32005
    clock.now_ns += S // 10  # one token back after 100 ms at 10/s
    assert node.respond(body).status == 200
    assert node.respond(body).status == 429


def test_the_rate_limit_in_rpc_mode_answers_minus_32005_per_call_of_a_batch():
    clock = FakeClock(G + 1000 * S)
    node = node_with({"rate_limit": {"rps": 1, "burst": 1, "mode": "rpc"}}, clock)
    batch = json.dumps([{"jsonrpc": "2.0", "id": i, "method": "eth_chainId"} for i in range(3)])
    assert node.respond(batch.encode()).status == 200
    reply = node.respond(batch.encode())
    assert reply.status == 200
    out = json.loads(reply.body)
    assert [r["id"] for r in out] == [0, 1, 2]
    assert all(r["error"]["code"] == -32005 for r in out)


# ------------------------------------------------------------------ unsupported, archive


def test_unsupported_methods_answer_method_not_found():
    node = node_with({"unsupported": ["eth_getLogs"]})
    err = call(node, "eth_getLogs", [{}])["error"]
    assert err == {
        "code": -32601,
        "message": "the method eth_getLogs does not exist/is not available",
    }
    assert "result" in call(node, "eth_blockNumber")


def test_state_older_than_the_archive_depth_is_a_missing_trie_node():
    node = node_with({"archive_depth": 128})
    assert "result" in call(node, "eth_getBalance", [ADDR, hex(1000 - 128)])
    for method, params in [
        ("eth_getBalance", [ADDR, hex(1000 - 129)]),
        ("eth_getTransactionCount", [ADDR, "0x1"]),
        ("eth_getCode", [ADDR, "earliest"]),
        ("eth_call", [{"to": ADDR}, "0x5"]),
    ]:
        err = call(node, method, params)["error"]
        assert err["code"] == -32000 and err["message"].startswith("missing trie node"), method
    # blocks themselves are still served, as by a pruned geth
    assert call(node, "eth_getBlockByNumber", ["0x1", False])["result"]["number"] == "0x1"
    assert "result" in call(node_with({}), "eth_getBalance", [ADDR, "0x1"])


# ------------------------------------------------------------------ forks


def test_a_fork_window_repeats_every_period():
    f = Fork(start=100, length=3, every=50)
    assert f.window(99) is None
    assert f.window(100) == (100, 100)
    assert f.window(102) == (100, 102)
    assert f.window(103) is None
    assert f.window(151) == (150, 151)


def test_a_forked_provider_serves_another_branch_then_reorgs_back():
    clock = FakeClock(G + 1001 * S + 1)  # head 1001
    forked = node_with({"fork": {"start": 1000, "length": 3}}, clock)
    honest = node_with({}, clock)

    def block(node: MockNode, n: int) -> dict[str, Any]:
        return call(node, "eth_getBlockByNumber", [hex(n), False])["result"]

    # inside the window: blocks 1000 and 1001 differ, 999 is shared, the branch links up
    assert block(forked, 999) == block(honest, 999)
    assert block(forked, 1000)["hash"] != block(honest, 1000)["hash"]
    assert block(forked, 1000)["parentHash"] == block(honest, 999)["hash"]
    assert block(forked, 1001)["parentHash"] == block(forked, 1000)["hash"]
    fork_hash = block(forked, 1001)["hash"]
    assert call(forked, "eth_getBlockByHash", [fork_hash, False])["result"]["number"] == "0x3e9"
    assert call(honest, "eth_getBlockByHash", [fork_hash, False])["result"] is None
    # after the window: back on the canonical chain, the fork's blocks are gone
    clock.now_ns = G + 1003 * S + 1
    assert block(forked, 1001) == block(honest, 1001)
    assert call(forked, "eth_getBlockByHash", [fork_hash, False])["result"] is None


# ------------------------------------------------------------------ determinism


def test_two_fleets_with_the_same_seed_and_genesis_return_identical_answers():
    def answers(seed: int) -> list[Any]:
        clock = FakeClock(G + 500 * S + 7)
        node = MockNode(Chain(seed, G), clock, name="A")
        out = []
        for n in range(0, 500, 7):
            out.append(call(node, "eth_getBlockByNumber", [hex(n), True]))
            out.append(call(node, "eth_getLogs", [{"fromBlock": hex(n), "toBlock": hex(n)}]))
        return out

    assert answers(42) == answers(42)
    assert answers(42) != answers(43)


def test_behaviours_with_a_seed_give_identical_sequences_of_latencies_and_errors():
    spec = {
        "seed": 11,
        "latency": {"dist": "lognormal", "median_ms": 20, "sigma": 0.8},
        "error_rate": 0.1,
    }

    def trace() -> list[tuple[int, int]]:
        node = node_with(spec)
        body = b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber"}'
        out = []
        for _ in range(300):
            r = node.respond(body)
            out.append((r.delay_ns, json.loads(r.body).get("error", {}).get("code", 0)))
        return out

    a = trace()
    assert a == trace()
    assert len({d for d, _ in a}) > 250 and any(code for _, code in a)


def test_the_mocks_presets_match_the_provider_error_catalogue():
    from pathlib import Path

    # Kept in the repository, beside the chaos proxy's presets generated from it.
    path = Path(__file__).resolve().parents[2] / "chaosproxy" / "provider-errors.json"
    catalogue = {e["id"]: e for e in json.loads(path.read_text())}
    for name, shape in PRESETS.items():
        entry = catalogue[name]
        assert (shape.code, shape.message, shape.data) == (
            entry["rpc_code"],
            entry["message"],
            entry["data"],
        ), name
        assert shape.http_status == (entry["http_status"] or 200), name
