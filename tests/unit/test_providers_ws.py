"""Pins WebSocket JSON-RPC: the upgrade on the HTTP port, RFC 6455 framing (checked with
wsproto's client side), subscriptions and their notifications at each block, reorgs."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Message,
    Ping,
    Pong,
    Request,
    TextMessage,
)

from providers import Chain, MockNode
from providers.behaviour import parse_behaviour
from providers.chain import TRANSFER_TOPIC
from providers.server import RequestParser
from providers.websocket import WsConnection, handshake, is_upgrade

G = 1_700_000_000_000_000_000
S = 10**9


class FakeClock:
    def __init__(self, now_ns: int) -> None:
        self.now_ns = now_ns

    def __call__(self) -> int:
        return self.now_ns


def sub(session, params: list[Any], rid: int = 1) -> str:
    msg = {"jsonrpc": "2.0", "id": rid, "method": "eth_subscribe", "params": params}
    return json.loads(session.message(json.dumps(msg).encode()).body)["result"]


def notes(session, now_ns: int) -> list[dict[str, Any]]:
    return [json.loads(m)["params"] for m in session.poll(now_ns)]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(G + 100 * S + 1)


@pytest.fixture
def node(clock) -> MockNode:
    return MockNode(Chain(3, G), clock, name="A")


# ------------------------------------------------------------------ handshake


UPGRADE = (
    b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def test_the_handshake_answers_with_rfc_6455s_accept_value():
    (req,) = RequestParser().feed(UPGRADE)
    assert is_upgrade(req.method, req.headers)
    status, head = handshake(req.headers)
    assert status == 101
    # the example of RFC 6455 section 1.3
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in head


def test_the_parser_stops_at_an_upgrade_and_keeps_the_first_frames():
    p = RequestParser()
    reqs = p.feed(UPGRADE + b"\x81\x05hello")
    assert len(reqs) == 1 and p.upgraded
    assert p.trailing() == b"\x81\x05hello"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ([("sec-websocket-key", "short"), ("sec-websocket-version", "13")], 400),
        ([("sec-websocket-key", base64.b64encode(b"k" * 16).decode())], 426),
    ],
)
def test_a_bad_handshake_is_refused(headers, status):
    assert handshake(headers)[0] == status


def test_a_post_with_upgrade_headers_is_not_an_upgrade():
    assert not is_upgrade("POST", [("upgrade", "websocket"), ("connection", "upgrade")])


# ------------------------------------------------------------------ framing


def client_and_server(node: MockNode) -> tuple[WSConnection, WsConnection]:
    client = WSConnection(ConnectionType.CLIENT)
    request = client.send(Request(host="x", target="/"))
    (req,) = RequestParser().feed(request)
    status, head = handshake(req.headers)
    assert status == 101
    client.receive_data(head)
    assert isinstance(next(client.events()), AcceptConnection)
    return client, WsConnection(node.open_session())


def exchange(client: WSConnection, server: WsConnection, event) -> list[Any]:
    out = server.receive(client.send(event))
    data = bytes(out.now) + b"".join(frame for _, frame in out.replies)
    client.receive_data(data)
    return list(client.events())


def test_requests_over_websocket_are_answered_in_text_frames(node):
    client, server = client_and_server(node)
    body = json.dumps({"jsonrpc": "2.0", "id": "a", "method": "eth_blockNumber"})
    (ev,) = exchange(client, server, Message(data=body))
    assert isinstance(ev, TextMessage)
    assert json.loads(ev.data) == {"jsonrpc": "2.0", "id": "a", "result": "0x64"}
    # binary frames carry JSON too (web3.py sends them), answered in text
    (ev,) = exchange(client, server, Message(data=body.encode()))
    assert isinstance(ev, TextMessage) and json.loads(ev.data)["result"] == "0x64"


def test_pings_get_pongs_and_a_close_is_answered(node):
    client, server = client_and_server(node)
    (ev,) = exchange(client, server, Ping(payload=b"hi"))
    assert isinstance(ev, Pong) and ev.payload == b"hi"
    out = server.receive(client.send(CloseConnection(code=1000)))
    assert out.close and server.closed


def test_garbage_after_the_handshake_closes_with_a_protocol_error(node):
    _, server = client_and_server(node)
    out = server.receive(b"\x8f\x80\x00\x00\x00\x00")  # unknown opcode 0xf, masked
    assert out.close
    assert out.now[:2] == b"\x88\x11" or out.now[0] == 0x88  # a close frame


def test_notifications_are_framed_for_the_client(node, clock):
    client, server = client_and_server(node)
    msg = {"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]}
    (ev,) = exchange(client, server, Message(data=json.dumps(msg)))
    sub_id = json.loads(ev.data)["result"]
    clock.now_ns += S
    client.receive_data(server.notifications(clock.now_ns))
    (ev,) = list(client.events())
    note = json.loads(ev.data)
    assert note["method"] == "eth_subscription"
    assert note["params"]["subscription"] == sub_id
    assert note["params"]["result"]["number"] == "0x65"
    assert server.going_away()[:1] == b"\x88"


# ------------------------------------------------------------------ subscriptions


def test_new_heads_notifies_each_block_once_in_order(node, clock):
    s = node.open_session()
    sid = sub(s, ["newHeads"])
    assert sid.startswith("0x") and len(sid) == 34
    assert notes(s, clock.now_ns) == []  # nothing new yet
    clock.now_ns += 3 * S  # three blocks, e.g. after a stalled timer
    got = notes(s, clock.now_ns)
    assert [n["result"]["number"] for n in got] == ["0x65", "0x66", "0x67"]
    assert all(n["subscription"] == sid for n in got)
    header = got[0]["result"]
    assert header == node.chain.block(101)  # as eth_getBlockByNumber(n, false), as anvil
    assert header["parentHash"] == node.chain.block_hash(100)
    assert notes(s, clock.now_ns) == []


def test_logs_subscriptions_apply_their_filter(node, clock):
    s = node.open_session()
    addr = node.chain.token_contracts[0]
    all_id = sub(s, ["logs", {}], 1)
    one_id = sub(s, ["logs", {"address": addr, "topics": [TRANSFER_TOPIC]}], 2)
    none_id = sub(s, ["logs", {"topics": ["0x" + "00" * 32]}], 3)
    clock.now_ns += 40 * S
    got = notes(s, clock.now_ns)
    every = [n["result"] for n in got if n["subscription"] == all_id]
    mine = [n["result"] for n in got if n["subscription"] == one_id]
    assert every and mine and len(mine) < len(every)
    assert all(log["address"] == addr for log in mine)
    assert mine == [log for log in every if log["address"] == addr]
    assert not [n for n in got if n["subscription"] == none_id]
    want = [log for n in range(101, 141) for log in node.chain.logs(n)]
    assert every == want


def test_unsubscribe_stops_notifications(node, clock):
    s = node.open_session()
    sid = sub(s, ["newHeads"])
    msg = {"jsonrpc": "2.0", "id": 2, "method": "eth_unsubscribe", "params": [sid]}
    assert json.loads(s.message(json.dumps(msg).encode()).body)["result"] is True
    assert json.loads(s.message(json.dumps(msg).encode()).body)["result"] is False
    clock.now_ns += 2 * S
    assert s.poll(clock.now_ns) == []


@pytest.mark.parametrize(
    ("params", "code"),
    [([], -32602), (["pendingTransactions"], -32601), (["newHeads", {}], -32602)],
)
def test_bad_subscriptions_are_refused(node, params, code):
    s = node.open_session()
    msg = {"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": params}
    assert json.loads(s.message(json.dumps(msg).encode()).body)["error"]["code"] == code


def test_subscribing_over_http_is_refused_as_geth_does(node):
    r = node.handle(b'{"jsonrpc":"2.0","id":1,"method":"eth_subscribe","params":["newHeads"]}')
    assert json.loads(r)["error"] == {"code": -32601, "message": "notifications not supported"}


def test_a_reorg_renotifies_the_new_branch_and_removes_the_old_logs():
    clock = FakeClock(G + 999 * S + 1)
    node = MockNode(
        Chain(3, G), clock, behaviour=parse_behaviour({"fork": {"start": 1000, "length": 3}})
    )
    s = node.open_session()
    heads = sub(s, ["newHeads"], 1)
    logs = sub(s, ["logs", {}], 2)
    clock.now_ns += 2 * S  # head 1001, blocks 1000 and 1001 on the fork branch
    first = notes(s, clock.now_ns)
    fork_heads = [n["result"] for n in first if n["subscription"] == heads]
    assert [h["number"] for h in fork_heads] == ["0x3e8", "0x3e9"]
    assert fork_heads[0]["hash"] == node.chain.block_hash(1000, 1)
    fork_logs = [n["result"] for n in first if n["subscription"] == logs]
    clock.now_ns += 2 * S  # head 1003: reorged back onto the canonical chain
    second = notes(s, clock.now_ns)
    new_heads = [n["result"] for n in second if n["subscription"] == heads]
    assert [h["number"] for h in new_heads] == ["0x3e8", "0x3e9", "0x3ea", "0x3eb"]
    assert new_heads[0]["hash"] == node.chain.block_hash(1000)
    assert new_heads[0]["parentHash"] == node.chain.block_hash(999)
    log_notes = [n["result"] for n in second if n["subscription"] == logs]
    removed = [x for x in log_notes if x["removed"]]
    assert removed == [{**x, "removed": True} for x in fork_logs]
    added = [x for x in log_notes if not x["removed"]]
    assert added == [log for n in range(1000, 1004) for log in node.chain.logs(n)]
