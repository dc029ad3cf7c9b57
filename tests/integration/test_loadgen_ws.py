"""WebSocket subscriptions against a small WS JSON-RPC server of the test's own."""

from __future__ import annotations

import json
import time
from functools import partial

import pytest
import trio
from trio_websocket import ConnectionClosed, serve_websocket

from loadgen.worker import Clock
from loadgen.ws import WsConfig, parse_message, parse_subscriptions, run_ws_clients

pytestmark = pytest.mark.timeout(30)

BLOCK_S = 0.05
STALL_S = 1.0


class HeadsServer:
    """Serves eth_subscribe newHeads (a head every 50 ms) and eth_blockNumber.
    The first `drops` sessions are closed with code 1011 after 3 heads."""

    def __init__(self, drops: int = 0, stall_call: int | None = None) -> None:
        self.drops = drops
        self.sessions = 0
        # The eth_blockNumber call of this number (from 1) is answered STALL_S late.
        self.stall_call = stall_call
        self.calls = 0

    async def handler(self, request) -> None:
        ws = await request.accept()
        self.sessions += 1
        drop = self.sessions <= self.drops
        head = 100
        try:
            async with trio.open_nursery() as nursery:
                while True:
                    msg = json.loads(await ws.get_message())
                    if msg["method"] == "eth_subscribe":
                        sub = f"0xs{self.sessions}"
                        await ws.send_message(
                            json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": sub})
                        )

                        async def heads(sub=sub) -> None:
                            nonlocal head
                            for i in range(10_000):
                                await trio.sleep(BLOCK_S)
                                head += 1
                                note = {
                                    "number": hex(head),
                                    "hash": f"0x{head:064x}",
                                    "parentHash": f"0x{head - 1:064x}",
                                }
                                await ws.send_message(
                                    json.dumps(
                                        {
                                            "jsonrpc": "2.0",
                                            "method": "eth_subscription",
                                            "params": {"subscription": sub, "result": note},
                                        }
                                    )
                                )
                                if drop and i == 2:
                                    await ws.aclose(code=1011, reason="upstream gone")
                                    return

                        nursery.start_soon(heads)
                    else:
                        self.calls += 1
                        if self.calls == self.stall_call:
                            await trio.sleep(STALL_S)
                        await ws.send_message(
                            json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": hex(head)})
                        )
        except* ConnectionClosed:
            pass  # the client went away


async def serve(nursery, server: HeadsServer) -> str:
    ws_server = await nursery.start(
        partial(serve_websocket, server.handler, "127.0.0.1", 0, ssl_context=None)
    )
    return f"ws://127.0.0.1:{ws_server.port}/"


async def run(url: str, duration: float, **kw) -> tuple[list, list, list]:
    notes, sessions, requests = [], [], []
    t0 = time.time_ns()
    config = WsConfig(
        worker=2, url=url, t0_ns=t0, duration_s=duration, subscriptions={"newHeads": 1}, **kw
    )
    await run_ws_clients(config, notes, sessions, requests, clock=Clock.from_system())
    return notes, sessions, requests


async def test_every_notification_and_session_event_is_recorded(nursery):
    url = await serve(nursery, HeadsServer())
    notes, sessions, requests = await run(url, 0.6, call_interval_s=0.1)
    assert [s[2] for s in sessions] == ["connect", "subscribe", "close"]
    assert sessions[1][6] == "0xs1" and sessions[2][5] == 1000
    numbers = [n[4] for n in notes]
    assert len(numbers) >= 8 and numbers == list(range(101, 101 + len(numbers)))
    assert {(n[1], n[2], n[3]) for n in notes} == {("w2-newHeads-0", "0xs1", "newHeads")}
    assert notes[0][5] == f"0x{101:064x}" and notes[0][6] == f"0x{100:064x}"
    # JSON-RPC calls over the same socket are requests rows with transport ws.
    assert len(requests) >= 3 and {r[3] for r in requests} == {"ws"}
    assert {r[9] for r in requests} == {"ok"}


async def test_a_one_second_stall_shows_in_the_latency_of_every_probe_it_delayed(nursery):
    url = await serve(nursery, HeadsServer(stall_call=5))
    t0 = time.time_ns()
    config = WsConfig(
        worker=2,
        url=url,
        t0_ns=t0,
        duration_s=2.5,
        subscriptions={"newHeads": 1},
        call_interval_s=0.1,
    )
    requests: list[tuple] = []
    await run_ws_clients(config, [], [], requests, clock=Clock.from_system())
    # Probes are meant for t0 + k * 100 ms, every slot once, whatever the server does.
    # (The first is the slot after the socket opened: 0.1 s unless the machine is slow.)
    slots = [(r[6] - t0) / 100e6 for r in requests]
    first = slots[0]
    assert slots == [first + k for k in range(len(slots))] and len(slots) >= 15
    latency_ms = [(r[8] - r[6]) / 1e6 for r in requests]
    # The 5th probe waited the whole stall; the 9 slots that came while it waited went
    # after it, and their latency counts from their own slot.
    assert latency_ms[4] >= STALL_S * 1000
    delayed = latency_ms[5:14]
    assert all(lat >= (9 - i) * 100 - 0.01 for i, lat in enumerate(delayed)), delayed
    assert all(r[7] - r[6] > 50_000_000 for r in requests[5:14])
    assert {r[9] for r in requests} == {"ok"}


async def test_without_reconnect_a_dropped_subscription_ends_the_client(nursery):
    url = await serve(nursery, HeadsServer(drops=1))
    notes, sessions, _ = await run(url, 0.8, reconnect=False)
    assert [s[2] for s in sessions] == ["connect", "subscribe", "disconnect"]
    assert sessions[2][4] == "upstream gone" and sessions[2][5] == 1011
    assert len(notes) == 3


async def test_with_reconnect_the_client_resubscribes_and_records_the_outage(nursery):
    url = await serve(nursery, HeadsServer(drops=1))
    notes, sessions, _ = await run(url, 1.5, reconnect=True)
    events = [s[2] for s in sessions]
    assert events == ["connect", "subscribe", "disconnect", "reconnect", "subscribe", "close"]
    assert sessions[3][4].startswith("outage ")
    assert {n[2] for n in notes} == {"0xs1", "0xs2"}


async def test_a_refused_connection_is_recorded_as_connect_failed():
    with trio.socket.socket() as s:
        await s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _, sessions, _ = await run(f"ws://127.0.0.1:{port}/", 0.3)
    assert [s[2] for s in sessions] == ["connect_failed"]


def test_messages_are_classified_as_notifications_replies_or_noise():
    head = parse_message(
        json.dumps(
            {
                "method": "eth_subscription",
                "params": {
                    "subscription": "0x1",
                    "result": {"number": "0x10", "hash": "0xh", "parentHash": "0xp"},
                },
            }
        )
    )
    assert (head.block_number, head.block_hash, head.parent_hash, head.log_index) == (
        16,
        "0xh",
        "0xp",
        None,
    )
    log = parse_message(
        json.dumps(
            {
                "method": "eth_subscription",
                "params": {
                    "subscription": "0x2",
                    "result": {"blockNumber": "0x11", "blockHash": "0xb", "logIndex": "0x3"},
                },
            }
        )
    )
    assert (log.block_number, log.block_hash, log.log_index) == (17, "0xb", 3)
    assert parse_message('{"jsonrpc":"2.0","id":"bt-0-ws1","result":"0x1"}').id == "bt-0-ws1"
    assert parse_message("not json") is None and parse_message("[1]") is None


def test_parse_subscriptions_names_the_bad_kind():
    assert parse_subscriptions("newHeads=2,logs=1") == {"newHeads": 2, "logs": 1}
    with pytest.raises(ValueError, match="must be one of"):
        parse_subscriptions("pending=1")
    with pytest.raises(ValueError, match="count >= 1"):
        parse_subscriptions("logs=0")
