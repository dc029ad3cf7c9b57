"""The router's WebSocket side against fake upstreams on loopback: one upstream
subscription shared by every client, moved on a drop or stall, gaps backfilled over
HTTP, duplicates dropped, so the client sees every block once, in order."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import h11
import httpx
import pytest
import trio
import trio_websocket

from examples.reference_router import RouterConfig, UpstreamConfig, serve
from examples.reference_router._config import WebSocketSettings


def header(n: int) -> dict[str, str]:
    return {"number": hex(n), "hash": f"0x{n:064x}", "parentHash": f"0x{n - 1:064x}"}


@dataclass
class FakeProvider:
    """HTTP JSON-RPC (blocks, logs) on one port, WebSocket newHeads on another."""

    name: str
    http_url: str = ""
    ws_url: str = ""
    subscribes: int = 0
    http_methods: list[str] = field(default_factory=list)
    _subscribers: list[trio_websocket.WebSocketConnection] = field(default_factory=list)

    def answer(self, request: dict[str, Any]) -> Any:
        method, params = request["method"], request.get("params") or []
        self.http_methods.append(method)
        if method == "eth_getBlockByNumber":
            return {**header(int(params[0], 16)), "transactions": []}
        if method == "eth_getLogs":
            n = int(params[0]["blockHash"], 16)
            return [{"blockHash": params[0]["blockHash"], "blockNumber": hex(n), "logIndex": "0x0"}]
        if method == "eth_blockNumber":
            return "0x1"
        return None

    async def _http(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                chunks = []
                while True:
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        conn.receive_data(await stream.receive_some(65536))
                    elif isinstance(event, h11.Data):
                        chunks.append(event.data)
                    elif isinstance(event, h11.EndOfMessage):
                        break
                    elif isinstance(event, h11.ConnectionClosed):
                        return
                request = json.loads(b"".join(chunks))
                body = json.dumps(
                    {"jsonrpc": "2.0", "id": request["id"], "result": self.answer(request)}
                ).encode()
                headers = [("content-type", "application/json"), ("content-length", str(len(body)))]
                await stream.send_all(
                    conn.send(h11.Response(status_code=200, headers=headers))
                    + conn.send(h11.Data(data=body))
                    + conn.send(h11.EndOfMessage())
                )
                conn.start_next_cycle()
        except (trio.BrokenResourceError, h11.ProtocolError):
            return

    async def _ws(self, request: trio_websocket.WebSocketRequest) -> None:
        ws = await request.accept()
        try:
            while True:
                message = json.loads(await ws.get_message())
                if message.get("method") == "eth_subscribe":
                    self.subscribes += 1
                    reply = {"jsonrpc": "2.0", "id": message["id"], "result": "0xabc"}
                    await ws.send_message(json.dumps(reply))
                    self._subscribers.append(ws)
        except trio_websocket.ConnectionClosed:
            pass

    async def emit(self, *numbers: int) -> None:
        for n in numbers:
            note = {
                "jsonrpc": "2.0",
                "method": "eth_subscription",
                "params": {"subscription": "0xabc", "result": header(n)},
            }
            for ws in list(self._subscribers):
                try:
                    await ws.send_message(json.dumps(note))
                except trio_websocket.ConnectionClosed:
                    self._subscribers.remove(ws)

    async def drop(self) -> None:
        subscribers, self._subscribers = self._subscribers, []
        for ws in subscribers:
            await ws.aclose(code=1001, reason="going away")

    @property
    def live(self) -> bool:
        return bool(self._subscribers)

    async def start(self, nursery: trio.Nursery) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.http_url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}/"
        nursery.start_soon(trio.serve_listeners, self._http, listeners)
        server = await nursery.start(trio_websocket.serve_websocket, self._ws, "127.0.0.1", 0, None)
        self.ws_url = f"ws://127.0.0.1:{server.port}/"


@pytest.fixture
async def nursery():
    async with trio.open_nursery() as nursery:
        yield nursery
        nursery.cancel_scope.cancel()


async def start(
    nursery: trio.Nursery, count: int = 2, **ws_options: Any
) -> tuple[list[FakeProvider], str]:
    fleet = [FakeProvider(chr(ord("A") + i)) for i in range(count)]
    for provider in fleet:
        await provider.start(nursery)
    config = RouterConfig(
        host="127.0.0.1",
        port=0,
        upstreams=tuple(UpstreamConfig(p.name, p.http_url, p.ws_url) for p in fleet),
        strategy="priority",
        head_tracking=None,
        websocket=WebSocketSettings(**{"stall_timeout_s": 0.5, **ws_options}),
    )
    host, port = await nursery.start(serve, config)
    return fleet, f"ws://{host}:{port}/"


async def subscribe(
    nursery: trio.Nursery, url: str, kind: list[Any] | None = None
) -> trio_websocket.WebSocketConnection:
    ws = await trio_websocket.connect_websocket_url(nursery, url)
    await ws.send_message(
        json.dumps(
            {"jsonrpc": "2.0", "id": 7, "method": "eth_subscribe", "params": kind or ["newHeads"]}
        )
    )
    reply = json.loads(await ws.get_message())
    assert reply["id"] == 7 and isinstance(reply["result"], str)
    return ws


async def until(predicate: Any, timeout: float = 5.0) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.01)


async def received(ws: trio_websocket.WebSocketConnection, count: int) -> list[int]:
    out = []
    with trio.fail_after(5):
        for _ in range(count):
            note = json.loads(await ws.get_message())
            out.append(int(note["params"]["result"]["number"], 16))
    return out


async def nothing_more(ws: trio_websocket.WebSocketConnection, wait: float = 0.3) -> bool:
    with trio.move_on_after(wait):
        await ws.get_message()
        return False
    return True


async def test_blocks_reach_the_client_in_order(nursery):
    (a, _b), url = await start(nursery)
    ws = await subscribe(nursery, url)
    await until(lambda: a.live)
    await a.emit(1, 2, 3)
    assert await received(ws, 3) == [1, 2, 3]


async def test_clients_share_one_upstream_subscription(nursery):
    (a, b), url = await start(nursery)
    first, second = await subscribe(nursery, url), await subscribe(nursery, url)
    await until(lambda: a.live)
    await a.emit(1, 2)
    assert await received(first, 2) == [1, 2] and await received(second, 2) == [1, 2]
    assert a.subscribes == 1 and b.subscribes == 0


async def test_a_drop_moves_the_subscription_backfills_and_drops_duplicates(nursery):
    (a, b), url = await start(nursery)
    ws = await subscribe(nursery, url)
    await until(lambda: a.live)
    await a.emit(1, 2, 3)
    assert await received(ws, 3) == [1, 2, 3]
    await a.drop()
    await until(lambda: b.live)
    await b.emit(3, 6, 6, 7)  # the new upstream repeats 3; 4 and 5 came while no one listened
    assert await received(ws, 4) == [4, 5, 6, 7]
    assert await nothing_more(ws)
    assert (
        b.http_methods.count("eth_getBlockByNumber") + a.http_methods.count("eth_getBlockByNumber")
        == 2
    )


async def test_a_stalled_upstream_is_replaced(nursery):
    (a, b), url = await start(nursery)
    ws = await subscribe(nursery, url)
    await until(lambda: a.live)
    await a.emit(1)
    assert await received(ws, 1) == [1]
    with trio.fail_after(3):  # stall_timeout_s is 0.5
        await until(lambda: b.live)
    await b.emit(3)
    assert await received(ws, 2) == [2, 3]


async def test_without_backfill_the_client_sees_the_gap(nursery):
    (a, b), url = await start(nursery, backfill_limit=0)
    ws = await subscribe(nursery, url)
    await until(lambda: a.live)
    await a.emit(1)
    await a.drop()
    await until(lambda: b.live)
    await b.emit(4)
    assert await received(ws, 2) == [1, 4]


async def test_without_dedupe_the_client_sees_repeats(nursery):
    (a, b), url = await start(nursery, dedupe=False)
    ws = await subscribe(nursery, url)
    await until(lambda: a.live)
    await a.emit(1, 2)
    await a.drop()
    await until(lambda: b.live)
    await b.emit(2, 3)
    assert await received(ws, 4) == [1, 2, 2, 3]


async def test_without_resubscribe_a_drop_ends_the_client_connection(nursery):
    (a, b), url = await start(nursery, resubscribe=False)
    ws = await subscribe(nursery, url)
    await until(lambda: a.live)
    await a.emit(1)
    assert await received(ws, 1) == [1]
    await a.drop()
    with trio.fail_after(3), pytest.raises(trio_websocket.ConnectionClosed):
        await ws.get_message()
    assert b.subscribes == 0


async def test_logs_follow_the_blocks_exactly_once(nursery):
    (a, b), url = await start(nursery)
    ws = await subscribe(nursery, url, ["logs", {"address": "0x1"}])
    await until(lambda: a.live)
    await a.emit(1)
    await a.drop()
    await until(lambda: b.live)
    await b.emit(1, 3)
    logs = []
    with trio.fail_after(5):
        for _ in range(3):
            logs.append(json.loads(await ws.get_message())["params"]["result"]["blockNumber"])
    assert logs == ["0x1", "0x2", "0x3"]


async def test_other_calls_over_websocket_are_forwarded(nursery):
    (_a, _b), url = await start(nursery)
    ws = await trio_websocket.connect_websocket_url(nursery, url)
    await ws.send_message(json.dumps({"jsonrpc": "2.0", "id": 9, "method": "eth_blockNumber"}))
    assert json.loads(await ws.get_message()) == {"jsonrpc": "2.0", "id": 9, "result": "0x1"}
    await ws.aclose()


async def test_http_health_and_metrics_share_the_port(nursery):
    (a, _b), url = await start(nursery)
    ws = await subscribe(nursery, url)
    await until(lambda: a.live)
    await a.emit(1)
    await received(ws, 1)
    base = url.replace("ws://", "http://")
    async with httpx.AsyncClient() as client:
        assert (await client.get(base + "health")).json() == {"ok": True}
        metrics = await client.get(base + "metrics")
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "router_ws_subscriptions 1\n" in metrics.text
    assert 'router_breaker_state{upstream="A"} 0\n' in metrics.text


async def test_clients_that_vanish_leave_the_router_serving(nursery):
    (a, _b), url = await start(nursery)
    for _ in range(3):
        ws = await subscribe(nursery, url)
        await until(lambda: a.live)
        await ws.aclose()
    stream = await trio.open_tcp_stream("127.0.0.1", int(url.rsplit(":", 1)[1].strip("/")))
    await stream.send_all(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n"
    )  # bad handshake
    await stream.aclose()
    async with httpx.AsyncClient() as client:
        health = await client.get(url.replace("ws://", "http://") + "health")
    assert health.json() == {"ok": True}
    ws = await subscribe(nursery, url)
    await a.emit(1)
    assert await received(ws, 1) == [1]


async def test_a_client_subscribing_after_an_idle_spell_starts_at_the_head(nursery):
    (a, _b), url = await start(nursery)
    ws = await subscribe(nursery, url)
    await until(lambda: a.live)
    await a.emit(1)
    assert await received(ws, 1) == [1]
    await ws.aclose()
    await trio.sleep(0.05)
    ws = await subscribe(nursery, url)
    await a.emit(20)  # the feed is still on A (its stall timeout has not run out)
    assert await received(ws, 1) == [20]  # not a backfill of 2..19
    assert await nothing_more(ws)


async def test_unsupported_and_malformed_subscriptions_get_an_error_and_unsubscribe_works(nursery):
    (a, _b), url = await start(nursery)
    ws = await trio_websocket.connect_websocket_url(nursery, url)
    for params in (["newPendingTransactions"], {"not": "a list"}):
        request = {"jsonrpc": "2.0", "id": 3, "method": "eth_subscribe", "params": params}
        await ws.send_message(json.dumps(request))
        reply = json.loads(await ws.get_message())
        assert reply["id"] == 3 and reply["error"]["code"] == -32602
    await ws.aclose()
    ws = await subscribe(nursery, url)
    await until(lambda: a.live)
    await a.emit(1)
    (sid,) = {json.loads(await ws.get_message())["params"]["subscription"]}
    for expected in (True, False):  # a second unsubscribe finds nothing
        request = {"jsonrpc": "2.0", "id": 4, "method": "eth_unsubscribe", "params": [sid]}
        await ws.send_message(json.dumps(request))
        assert json.loads(await ws.get_message()) == {"jsonrpc": "2.0", "id": 4, "result": expected}
    await a.emit(2)
    assert await nothing_more(ws)
