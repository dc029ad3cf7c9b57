"""Router: breakers, rate-limit demotion, head tracking and metrics, over
httpx.MockTransport with the router's clock in the test's hands."""

from __future__ import annotations

import json

import httpx
import trio

from examples.reference_router import HeadSettings, Router, RouterConfig, UpstreamConfig
from examples.reference_router._breaker import BreakerSettings

NAMES = ("A", "B", "C")
BODY = b'{"jsonrpc":"2.0","id":"bt-0-7","method":"eth_getBalance","params":["0x1","latest"]}'
BLOCK_NUMBER = b'{"jsonrpc":"2.0","id":"bt-0-8","method":"eth_blockNumber","params":[]}'
BREAKER = BreakerSettings(failure_threshold=3, timeout_threshold=2, recovery_s=10.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Fleet:
    """Upstreams by host name: each answers with its current behaviour; calls are kept."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.requests: list[httpx.Request] = []
        self.behaviour: dict[str, object] = {}
        self.block: dict[str, int] = {n: 0x10 for n in NAMES}
        self.safe: dict[str, int] = {n: 0x08 for n in NAMES}
        self.chain_id: dict[str, int] = {n: 0x7A69 for n in NAMES}
        self.syncing: dict[str, object] = {n: False for n in NAMES}

    def handle(self, request: httpx.Request) -> httpx.Response:
        name = request.url.host.split(".")[0].upper()
        self.calls.append(name)
        self.requests.append(request)
        kind = self.behaviour.get(name, "ok")
        if kind == "refused":
            raise httpx.ConnectError("refused", request=request)
        if kind == "timeout":
            self.clock.now += 2.0  # the attempt took its whole timeout, on the router's clock
            raise httpx.ReadTimeout("timed out", request=request)
        if isinstance(kind, httpx.Response):
            return kind
        rpc = json.loads(request.content)
        result: object = hex(self.block[name]) if rpc["method"] == "eth_blockNumber" else "0x0"
        if rpc["method"] == "eth_getBlockByNumber":
            n = self.safe[name] if rpc["params"][0] == "safe" else self.block[name]
            result = {"number": hex(n), "hash": "0x" + "ab" * 32}
        elif rpc["method"] == "eth_chainId":
            result = hex(self.chain_id[name])
        elif rpc["method"] == "eth_syncing":
            result = self.syncing[name]
        body = json.dumps({"jsonrpc": "2.0", "id": rpc["id"], "result": result})
        return httpx.Response(200, content=body.encode())

    def router(self, clock: Clock, **overrides: object) -> Router:
        self.clock = clock
        values: dict[str, object] = {
            "host": "127.0.0.1",
            "port": 0,
            "upstreams": tuple(UpstreamConfig(n, f"http://{n.lower()}.test/") for n in NAMES),
            "strategy": "priority",
            "circuit_breaker": BREAKER,
        }
        values.update(overrides)
        client = httpx.AsyncClient(transport=httpx.MockTransport(self.handle))
        return Router(RouterConfig(**values), client, clock=clock)  # type: ignore[arg-type]


RATE_LIMITED = httpx.Response(429, headers={"retry-after": "30"}, content=b"slow down")


# ---------------------------------------------------------------------------------------
# Circuit breaker


async def test_an_open_breaker_takes_the_upstream_out_of_the_rotation():
    fleet, clock = Fleet(), Clock()
    fleet.behaviour["A"] = "refused"
    router = fleet.router(clock)
    for _ in range(6):
        assert (await router.forward(BODY)).status == 200
    assert fleet.calls == ["A", "B"] * 3 + ["B"] * 3
    assert router.breakers is not None and router.breakers[0].state == "open"


async def test_after_the_recovery_time_one_probe_goes_to_the_upstream():
    fleet, clock = Fleet(), Clock()
    fleet.behaviour["A"] = "refused"
    router = fleet.router(clock)
    for _ in range(3):
        await router.forward(BODY)
    fleet.calls.clear()
    clock.now += 10.0
    del fleet.behaviour["A"]  # A is back
    await router.forward(BODY)
    await router.forward(BODY)
    assert fleet.calls == ["A", "A"]
    assert router.breakers is not None and router.breakers[0].state == "closed"


async def test_without_a_breaker_a_dead_upstream_is_tried_every_time():
    fleet, clock = Fleet(), Clock()
    fleet.behaviour["A"] = "refused"
    router = fleet.router(clock, circuit_breaker=None)
    for _ in range(6):
        await router.forward(BODY)
    assert fleet.calls == ["A", "B"] * 6


async def test_when_every_breaker_is_open_the_client_gets_a_503_at_once():
    fleet, clock = Fleet(), Clock()
    for name in NAMES:
        fleet.behaviour[name] = "refused"
    router = fleet.router(clock)
    for _ in range(3):
        await router.forward(BODY)
    fleet.calls.clear()
    reply = await router.forward(BODY)
    assert reply.status == 503 and fleet.calls == []
    assert "every circuit breaker is open" in json.loads(reply.body)["error"]["message"]


# ---------------------------------------------------------------------------------------
# Rate limits


async def test_a_rate_limited_upstream_is_demoted_until_retry_after_without_tripping():
    fleet, clock = Fleet(), Clock()
    fleet.behaviour["A"] = RATE_LIMITED
    router = fleet.router(clock)
    assert (await router.forward(BODY)).status == 200
    assert fleet.calls == ["A", "B"]
    for _ in range(5):
        await router.forward(BODY)
    assert fleet.calls == ["A", "B"] + ["B"] * 5  # demoted, so not tried first
    assert router.breakers is not None and router.breakers[0].state == "closed"
    clock.now += 30.0
    del fleet.behaviour["A"]
    fleet.calls.clear()
    await router.forward(BODY)
    assert fleet.calls == ["A"]


async def test_a_demoted_upstream_is_still_a_last_resort():
    fleet, clock = Fleet(), Clock()
    fleet.behaviour["A"] = RATE_LIMITED
    router = fleet.router(clock)
    await router.forward(BODY)
    fleet.behaviour["A"] = "ok"
    fleet.behaviour["B"] = fleet.behaviour["C"] = "refused"
    fleet.calls.clear()
    assert (await router.forward(BODY)).status == 200
    assert fleet.calls == ["B", "C", "A"]


async def test_without_rate_limit_handling_429s_trip_the_breaker():
    fleet, clock = Fleet(), Clock()
    fleet.behaviour["A"] = RATE_LIMITED
    router = fleet.router(clock, rate_limit=None)
    for _ in range(3):
        await router.forward(BODY)
    assert router.breakers is not None and router.breakers[0].state == "open"


async def test_without_rate_limit_handling_or_breaker_the_limited_upstream_stays_first():
    fleet, clock = Fleet(), Clock()
    fleet.behaviour["A"] = RATE_LIMITED
    router = fleet.router(clock, rate_limit=None, circuit_breaker=None)
    for _ in range(4):
        await router.forward(BODY)
    assert fleet.calls == ["A", "B"] * 4


# ---------------------------------------------------------------------------------------
# Head tracking


async def test_eth_block_number_never_goes_backwards():
    fleet, clock = Fleet(), Clock()
    router = fleet.router(clock, strategy="round_robin")
    fleet.block.update(A=0x20, B=0x1E, C=0x21)
    answers = [json.loads((await router.forward(BLOCK_NUMBER)).body) for _ in range(3)]
    assert [a["result"] for a in answers] == ["0x20", "0x20", "0x21"]
    assert all(a["id"] == "bt-0-8" for a in answers)


async def test_without_head_tracking_a_lower_block_number_goes_back_as_is():
    fleet, clock = Fleet(), Clock()
    router = fleet.router(clock, strategy="round_robin", head_tracking=None)
    fleet.block.update(A=0x20, B=0x1E, C=0x21)
    answers = [json.loads((await router.forward(BLOCK_NUMBER)).body) for _ in range(3)]
    assert [a["result"] for a in answers] == ["0x20", "0x1e", "0x21"]


async def test_a_lagging_upstream_is_routed_around():
    fleet, clock = Fleet(), Clock()
    router = fleet.router(clock)
    fleet.block.update(A=0x10, B=0x20, C=0x20)
    for index in range(3):
        await router._poll_one(index)
    assert router.heads is not None and router.heads.lagging(0, clock())
    fleet.calls.clear()
    await router.forward(BODY)
    assert fleet.calls == ["B"]
    assert router.plan(clock()) == [1, 2, 0]


def _get_block(tag: str) -> bytes:
    return json.dumps(
        {"jsonrpc": "2.0", "id": "bt-0-9", "method": "eth_getBlockByNumber", "params": [tag, False]}
    ).encode()


async def _polled(router: Router) -> None:
    for index in range(3):
        await router._poll_one(index)


async def test_a_head_far_ahead_of_the_others_is_not_served_and_the_call_fails_over():
    fleet, clock = Fleet(), Clock()
    router = fleet.router(clock)
    await _polled(router)
    fleet.block["A"] = 0x10 + 1000  # A now reports another chain's head
    fleet.calls.clear()
    answer = json.loads((await router.forward(BLOCK_NUMBER)).body)
    assert (answer["result"], fleet.calls) == ("0x10", ["A", "B"])
    block = json.loads((await router.forward(_get_block("latest"))).body)["result"]
    assert block["number"] == "0x10" and router.plan(clock()) == [1, 2, 0]


async def test_without_consensus_a_head_far_ahead_wins_and_is_served():
    fleet, clock = Fleet(), Clock()
    router = fleet.router(clock, head_tracking=HeadSettings(consensus=False))
    await _polled(router)
    fleet.block["A"] = 0x10 + 1000
    answer = json.loads((await router.forward(BLOCK_NUMBER)).body)
    assert answer["result"] == hex(0x10 + 1000) and router.plan(clock())[0] == 0


def _call(method: str) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": "bt-0-9", "method": method, "params": []}).encode()


async def test_another_chains_id_and_a_sync_in_progress_are_not_served_and_fail_over():
    fleet, clock = Fleet(), Clock()
    router = fleet.router(clock)
    await run_one_poll_round(router)
    fleet.chain_id["A"] = 0x1  # A now answers as a mainnet node
    fleet.syncing["A"] = {"currentBlock": "0x1", "highestBlock": "0x10"}
    fleet.calls.clear()
    answer = json.loads((await router.forward(_call("eth_chainId"))).body)
    assert (answer["result"], fleet.calls) == ("0x7a69", ["A", "B"])
    fleet.calls.clear()
    answer = json.loads((await router.forward(_call("eth_syncing"))).body)
    assert (answer["result"], fleet.calls) == (False, ["A", "B"])


async def test_without_state_checks_another_chains_id_and_a_sync_are_served():
    fleet, clock = Fleet(), Clock()
    router = fleet.router(clock, head_tracking=HeadSettings(state=False))
    await run_one_poll_round(router)
    assert router.chain_id is None  # never asked
    fleet.chain_id["A"], fleet.syncing["A"] = 0x1, {"currentBlock": "0x1"}
    assert json.loads((await router.forward(_call("eth_chainId"))).body)["result"] == "0x1"
    syncing = json.loads((await router.forward(_call("eth_syncing"))).body)["result"]
    assert syncing == {"currentBlock": "0x1"}


async def test_a_safe_block_below_one_already_answered_fails_over():
    fleet, clock = Fleet(), Clock()
    router = fleet.router(clock)
    assert json.loads((await router.forward(_get_block("safe"))).body)["result"]["number"] == "0x8"
    fleet.safe["A"] = 0x02  # A's safe block went back
    fleet.calls.clear()
    answer = json.loads((await router.forward(_get_block("safe"))).body)
    assert (answer["result"]["number"], fleet.calls) == ("0x8", ["A", "B"])


async def test_without_tag_floors_a_safe_block_going_back_is_served():
    fleet, clock = Fleet(), Clock()
    router = fleet.router(clock, head_tracking=HeadSettings(tags=False))
    await router.forward(_get_block("safe"))
    fleet.safe["A"] = 0x02
    assert json.loads((await router.forward(_get_block("safe"))).body)["result"]["number"] == "0x2"


async def test_a_latest_block_below_the_head_already_answered_fails_over():
    fleet, clock = Fleet(), Clock()
    router = fleet.router(clock)
    await router.forward(BLOCK_NUMBER)
    fleet.block["A"] = 0x00  # A answers the genesis block as its head
    fleet.calls.clear()
    block = json.loads((await router.forward(_get_block("latest"))).body)["result"]
    assert (block["number"], fleet.calls) == ("0x10", ["A", "B"])


async def test_fastest_learns_latency_from_answers():
    fleet, clock = Fleet(), Clock()
    router = fleet.router(clock, strategy="fastest")
    router.latency.values[:] = [0.3, 0.2, 0.1]
    await router.forward(BODY)
    assert fleet.calls == ["C"]


async def test_fastest_moves_off_an_upstream_that_times_out():
    fleet, clock = Fleet(), Clock()
    fleet.behaviour["A"] = "timeout"
    router = fleet.router(clock, strategy="fastest", circuit_breaker=None)
    router.latency.values[:] = [0.001, 0.002, 0.003]
    await router.forward(BODY)
    assert fleet.calls == ["A", "B"]
    fleet.calls.clear()
    await router.forward(BODY)
    assert fleet.calls == ["B"]
    assert router.latency.values[0] is not None and router.latency.values[0] > 0.5


async def run_one_poll_round(router: Router) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(router.poll_heads)
        await trio.sleep(0.05)  # one round; the next is poll_interval_s (1 s) away
        nursery.cancel_scope.cancel()


async def test_polls_ask_every_upstream_for_its_head_with_a_router_tag():
    fleet, clock = Fleet(), Clock()
    fleet.block.update(A=0x10, B=0x11, C=0x12)
    router = fleet.router(clock)
    await run_one_poll_round(router)
    methods = sorted((r.url.host[0], json.loads(r.content)["method"]) for r in fleet.requests)
    # Its first poll asks each upstream its chain id too (the state checks).
    assert methods == [(h, m) for h in "abc" for m in ("eth_blockNumber", "eth_chainId")]
    assert router.heads is not None and router.heads.heads == [0x10, 0x11, 0x12]
    assert router.chain_id == 0x7A69
    tags = [r.headers["x-battle-tag"] for r in fleet.requests]
    assert all(t.startswith("router-poll-") for t in tags)
    fleet.requests.clear()
    clock.now += 1.0
    await run_one_poll_round(router)
    assert {json.loads(r.content)["method"] for r in fleet.requests} == {"eth_blockNumber"}


async def test_polls_skip_open_breakers_rate_limited_and_recently_heard_upstreams():
    fleet, clock = Fleet(), Clock()
    router = fleet.router(clock, strategy="round_robin")
    fleet.behaviour["A"] = "refused"
    for _ in range(9):
        await router.forward(BODY)  # A's breaker opens
    fleet.behaviour["B"] = RATE_LIMITED
    await router.forward(BODY)  # B is demoted for 30 s
    del fleet.behaviour["B"]
    await router.forward(BLOCK_NUMBER)  # C answers an eth_blockNumber: its head is known
    assert fleet.calls[-1] == "C"
    fleet.calls.clear()
    await run_one_poll_round(router)
    assert fleet.calls == []


async def test_without_head_tracking_nothing_is_polled():
    fleet, clock = Fleet(), Clock()
    router = fleet.router(clock, head_tracking=None)
    await run_one_poll_round(router)
    assert fleet.calls == []


# ---------------------------------------------------------------------------------------
# Metrics


async def test_metrics_count_requests_attempts_and_show_breaker_state():
    fleet, clock = Fleet(), Clock()
    fleet.behaviour["A"] = "refused"
    router = fleet.router(clock)
    for _ in range(4):
        await router.forward(BODY)
    text = router.metrics.render().decode()
    assert 'router_requests_total{outcome="ok"} 4\n' in text
    assert 'router_upstream_attempts_total{upstream="A",result="conn_error"} 3\n' in text
    assert 'router_upstream_attempts_total{upstream="B",result="ok"} 4\n' in text
    assert 'router_breaker_state{upstream="A"} 2\n' in text
    assert 'router_breaker_state{upstream="B"} 0\n' in text
    assert 'router_breaker_opens_total{upstream="A"} 1\n' in text
    assert "# TYPE router_breaker_state gauge\n" in text


async def test_metrics_show_rate_limit_demotion():
    fleet, clock = Fleet(), Clock()
    fleet.behaviour["A"] = RATE_LIMITED
    router = fleet.router(clock)
    await router.forward(BODY)
    text = router.metrics.render().decode()
    assert 'router_upstream_rate_limited{upstream="A"} 1\n' in text
    assert 'router_upstream_attempts_total{upstream="A",result="rate_limited"} 1\n' in text
    clock.now += 31
    assert 'router_upstream_rate_limited{upstream="A"} 0\n' in router.metrics.render().decode()
