"""Router.forward: attempts, failover and deadlines, over httpx.MockTransport and fake time."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
import trio

from examples.reference_router import (
    Router,
    RouterConfig,
    UpstreamConfig,
    failure_body,
)

BODY = b'{"jsonrpc":"2.0","id":"bt-0-7","method":"eth_blockNumber","params":[]}'
OK = b'{"jsonrpc":"2.0","id":"bt-0-7","result":"0x10"}'
NAMES = ("A", "B", "C")

Behaviour = Callable[[httpx.Request], object]


def config(**overrides: object) -> RouterConfig:
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": 0,
        "upstreams": tuple(UpstreamConfig(n, f"http://{n.lower()}.test/") for n in NAMES),
        "strategy": "priority",
    }
    values.update(overrides)
    return RouterConfig(**values)  # type: ignore[arg-type]


class Fleet:
    """Mock upstreams keyed by host; records which upstream saw which request."""

    def __init__(self, **behaviours: Behaviour) -> None:
        self.behaviours = behaviours
        self.calls: list[str] = []
        self.requests: list[httpx.Request] = []

    async def handle(self, request: httpx.Request) -> httpx.Response:
        name = request.url.host.split(".")[0].upper()
        self.calls.append(name)
        self.requests.append(request)
        result = self.behaviours.get(name, ok)(request)
        if hasattr(result, "__await__"):
            result = await result
        assert isinstance(result, httpx.Response)
        return result

    def router(self, **overrides: object) -> Router:
        client = httpx.AsyncClient(transport=httpx.MockTransport(self.handle))
        return Router(config(**overrides), client)


def ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=OK, headers={"content-type": "application/json"})


def refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def status(code: int, body: bytes = b"") -> Behaviour:
    return lambda request: httpx.Response(code, content=body)


def rpc_error(code: int, message: str) -> Behaviour:
    body = json.dumps(
        {"jsonrpc": "2.0", "id": "bt-0-7", "error": {"code": code, "message": message}}
    )
    return lambda request: httpx.Response(200, content=body.encode())


async def hang(request: httpx.Request) -> httpx.Response:
    await trio.sleep_forever()
    raise AssertionError("unreachable")


def error_of(body: bytes) -> dict[str, object]:
    payload = json.loads(body)
    assert payload["jsonrpc"] == "2.0" and payload["error"]["code"] == -32603
    return payload


async def test_failover_skips_a_refusing_first_upstream():
    fleet = Fleet(A=refused)
    reply = await fleet.router().forward(BODY)
    assert (reply.status, reply.content_type, reply.body) == (200, "application/json", OK)
    assert fleet.calls == ["A", "B"]


@pytest.mark.parametrize(
    "behaviour",
    [status(500), status(503), status(429), rpc_error(-32005, "limit exceeded")],
    ids=["500", "503", "429", "-32005"],
)
async def test_failover_retries_retriable_answers(behaviour):
    fleet = Fleet(A=behaviour)
    reply = await fleet.router().forward(BODY)
    assert reply.body == OK and fleet.calls == ["A", "B"]


async def test_without_failover_a_transport_failure_is_a_502_naming_the_upstream():
    fleet = Fleet(A=refused)
    reply = await fleet.router(failover=False).forward(BODY)
    assert reply.status == 502 and fleet.calls == ["A"]
    payload = error_of(reply.body)
    assert payload["id"] == "bt-0-7"
    assert payload["error"]["message"] == "upstream A failed: ConnectError: connection refused"


async def test_without_failover_an_http_error_goes_back_unchanged():
    fleet = Fleet(A=status(503, b"busy"))
    reply = await fleet.router(failover=False).forward(BODY)
    assert (reply.status, reply.body) == (503, b"busy") and fleet.calls == ["A"]


async def test_non_retriable_rpc_error_goes_back_unchanged_without_another_upstream():
    fleet = Fleet(A=rpc_error(-32602, "invalid argument 0"))
    reply = await fleet.router().forward(BODY)
    assert reply.status == 200 and fleet.calls == ["A"]
    assert json.loads(reply.body)["error"] == {"code": -32602, "message": "invalid argument 0"}


async def test_when_every_upstream_fails_the_502_names_the_last_failure():
    fleet = Fleet(A=refused, B=status(503), C=status(429))
    reply = await fleet.router().forward(BODY)
    assert reply.status == 502 and fleet.calls == ["A", "B", "C"]
    assert error_of(reply.body)["error"]["message"] == "upstream C failed: HTTP 429"


async def test_max_attempts_bounds_the_failover():
    fleet = Fleet(A=refused, B=refused)
    reply = await fleet.router(max_attempts=2).forward(BODY)
    assert reply.status == 502 and fleet.calls == ["A", "B"]


async def test_round_robin_starts_each_request_at_the_next_upstream():
    fleet = Fleet()
    router = fleet.router(strategy="round_robin")
    for _ in range(4):
        await router.forward(BODY)
    assert fleet.calls == ["A", "B", "C", "A"]


async def test_round_robin_fails_over_to_the_following_upstreams():
    fleet = Fleet(B=refused, C=refused)
    router = fleet.router(strategy="round_robin")
    await router.forward(BODY)  # starts at A
    await router.forward(BODY)  # starts at B: B, C, then A
    assert fleet.calls == ["A", "B", "C", "A"]


async def test_body_tag_and_content_type_are_forwarded_unchanged():
    fleet = Fleet()
    await fleet.router().forward(BODY, content_type="application/json; charset=utf-8", tag="bt-0-7")
    (request,) = fleet.requests
    assert request.content == BODY
    assert request.headers["x-battle-tag"] == "bt-0-7"
    assert request.headers["content-type"] == "application/json; charset=utf-8"
    assert request.headers["accept-encoding"] == "identity"


async def test_no_tag_header_is_invented():
    fleet = Fleet()
    await fleet.router().forward(BODY)
    assert "x-battle-tag" not in fleet.requests[0].headers
    assert fleet.requests[0].headers["content-type"] == "application/json"


async def test_a_hung_upstream_costs_exactly_one_attempt_timeout(autojump_clock):
    fleet = Fleet(A=hang)
    start = trio.current_time()
    reply = await fleet.router(attempt_timeout_s=2.0).forward(BODY)
    assert reply.body == OK and fleet.calls == ["A", "B"]
    assert trio.current_time() - start == pytest.approx(2.0)


async def test_the_request_deadline_cuts_the_last_attempt_short(autojump_clock):
    fleet = Fleet(A=hang, B=hang, C=hang)
    start = trio.current_time()
    reply = await fleet.router(request_timeout_s=3.0, attempt_timeout_s=2.0).forward(BODY)
    assert trio.current_time() - start == pytest.approx(3.0)
    assert fleet.calls == ["A", "B"]
    assert error_of(reply.body)["error"]["message"] == "upstream B failed: timed out after 1s"


def test_failure_body_answers_each_element_of_a_batch():
    batch = b'[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","id":"x","method":"b"}]'
    payload = json.loads(failure_body(batch, "upstream A failed: HTTP 503"))
    assert [p["id"] for p in payload] == [1, "x"]
    assert {p["error"]["message"] for p in payload} == {"upstream A failed: HTTP 503"}


@pytest.mark.parametrize("body", [b"not json", b"[]", b'"string"', b"{}"])
def test_failure_body_uses_a_null_id_when_there_is_none(body):
    assert json.loads(failure_body(body, "m"))["id"] is None
