"""JSON-RPC calls over a WebSocket and the WebSocket faults' matchers, driven through
`WsFaults.websocket_message` with mitmproxy's test flows: no socket, no process."""

from __future__ import annotations

import asyncio
import csv
import json

import pytest
from mitmproxy.test import tflow
from mitmproxy.websocket import WebSocketMessage
from wsproto.frame_protocol import Opcode

from analysis.shards import ShardWriter
from chaosproxy.addons import Providers, WsFaults
from chaosproxy.faults import parse_faults
from chaosproxy.schedule import Timeline

S = 1_000_000_000
PORT = 18001


class Rig:
    def __init__(self, tmp_path, faults: list[dict]) -> None:
        self.tmp = tmp_path
        self.timeline = Timeline(parse_faults(faults, ("A",)))
        self.upstream = ShardWriter(tmp_path / "upstream.P0.csv", "upstream")
        self.ws_rows = ShardWriter(tmp_path / "upstream_ws.P0.csv", "upstream_ws")
        self.addon = WsFaults(
            "P0", Providers({PORT: "A"}), self.timeline, self.ws_rows, self.upstream
        )
        self.sent: list[tuple[bool, dict]] = []  # (to_client, message) the proxy injected
        self.addon.calls.inject = lambda flow, to_client, content, is_text: self.sent.append(
            (to_client, json.loads(content))
        )

    def start(self) -> None:
        self.timeline.start(0)
        self.timeline.advance(0)

    def flow(self, headers: dict[str, str] | None = None):
        f = tflow.twebsocketflow()
        f.websocket.messages.clear()
        f.client_conn.sockname = ("127.0.0.1", PORT)
        for k, v in (headers or {}).items():
            f.request.headers[k] = v
        return f

    def message(self, flow, doc: object, *, from_client: bool) -> WebSocketMessage:
        msg = WebSocketMessage(Opcode.TEXT, from_client, json.dumps(doc).encode())
        flow.websocket.messages.append(msg)
        self.addon.websocket_message(flow)
        return msg

    def rows(self, table: str = "upstream") -> list[dict[str, str]]:
        self.upstream.close()
        self.ws_rows.close()
        with open(self.tmp / f"{table}.P0.csv") as f:
            return list(csv.DictReader(f))


def fault(kind: str, **kw) -> dict:
    return {"fault_id": kind, "provider": "A", "kind": kind, "start_s": 0, "duration_s": 9, **kw}


def call(method: str, rpc_id: object = 1, params: list | None = None) -> dict:
    return {"jsonrpc": "2.0", "id": rpc_id, "method": method, "params": params or []}


def note(sub: str, number: int) -> dict:
    return {
        "jsonrpc": "2.0",
        "method": "eth_subscription",
        "params": {"subscription": sub, "result": {"number": hex(number)}},
    }


def run(body) -> None:
    async def main() -> None:
        body()
        await asyncio.sleep(0.01)  # proxy-made answers go out on the next loop turn

    asyncio.run(main())


def test_a_call_without_faults_passes_and_is_recorded_with_ordered_times(tmp_path):
    rig = Rig(tmp_path, [])
    flow = rig.flow()

    def body() -> None:
        assert not rig.message(flow, call("eth_chainId", "bt-1"), from_client=True).dropped
        answer = {"jsonrpc": "2.0", "id": "bt-1", "result": "0x1"}
        assert not rig.message(flow, answer, from_client=False).dropped

    run(body)
    (row,) = rig.rows()
    assert (row["transport"], row["method"], row["tag"], row["outcome"]) == (
        "ws",
        "eth_chainId",
        "bt-1",
        "ok",
    )
    t = [int(row[k]) for k in ("t_request", "t_upstream_sent", "t_upstream_done", "t_response")]
    assert t == sorted(t)


def test_rpc_error_answers_from_the_proxy_and_never_forwards_the_call(tmp_path):
    rig = Rig(tmp_path, [fault("rpc_error", match={"transport": "ws"})])
    rig.start()
    flow = rig.flow()

    def body() -> None:
        assert rig.message(flow, call("eth_blockNumber", 9), from_client=True).dropped

    run(body)
    assert rig.sent == [
        (
            True,
            {"jsonrpc": "2.0", "id": 9, "error": {"code": -32005, "message": "limit exceeded"}},
        )
    ]
    (row,) = rig.rows()
    assert (row["fault_id"], row["outcome"], row["rpc_code"], row["t_upstream_sent"]) == (
        "rpc_error",
        "rpc_error",
        "-32005",
        "",
    )
    assert rig.timeline.faults[0].applied == 1


def test_hang_withholds_the_answer_and_records_a_timeout(tmp_path):
    rig = Rig(tmp_path, [fault("hang")])
    rig.start()
    flow = rig.flow()

    def body() -> None:
        assert not rig.message(flow, call("eth_call", 2), from_client=True).dropped
        answer = {"jsonrpc": "2.0", "id": 2, "result": "0x"}
        assert rig.message(flow, answer, from_client=False).dropped

    run(body)
    (row,) = rig.rows()
    assert (row["outcome"], row["fault_kind"], row["t_response"]) == ("timeout", "hang", "")


def test_calls_open_when_the_socket_closes_are_recorded_as_reset(tmp_path):
    rig = Rig(tmp_path, [])
    flow = rig.flow()
    rig.addon.websocket_start(flow)
    rig.message(flow, call("eth_call", 3), from_client=True)
    rig.addon.websocket_end(flow)
    assert [(r["method"], r["outcome"]) for r in rig.rows()] == [("eth_call", "reset")]


@pytest.mark.parametrize(
    ("kinds", "dropped"), [(["logs"], {"0xlogs"}), (["newHeads"], {"0xheads"})]
)
def test_ws_drop_with_subscriptions_drops_only_notifications_of_those_kinds(
    tmp_path, kinds, dropped
):
    rig = Rig(tmp_path, [fault("ws_drop", match={"subscriptions": kinds})])
    rig.start()
    flow = rig.flow()
    for i, (kind, sub) in enumerate((("newHeads", "0xheads"), ("logs", "0xlogs"))):
        rig.message(flow, call("eth_subscribe", i, [kind]), from_client=True)
        rig.message(flow, {"jsonrpc": "2.0", "id": i, "result": sub}, from_client=False)
    got = {
        sub: rig.message(flow, note(sub, 5), from_client=False).dropped
        for sub in ("0xheads", "0xlogs", "0xunknown")
    }
    assert {sub for sub, d in got.items() if d} == dropped


def test_a_socket_level_fault_matches_on_the_handshake_header_once_per_socket(tmp_path):
    rig = Rig(tmp_path, [fault("ws_stall", match={"header": "X-Test: stall"})])
    rig.start()
    hit, spared = rig.flow({"X-Test": "stall"}), rig.flow()
    assert rig.message(hit, note("0xs", 1), from_client=False).dropped
    assert not rig.message(spared, note("0xs", 1), from_client=False).dropped
    assert [r["action"] for r in rig.rows("upstream_ws")] == ["stalled", "passed"]


def test_every_k_counts_only_the_notifications_the_match_took(tmp_path):
    rig = Rig(
        tmp_path,
        [fault("ws_drop", params={"every_k": 2}, match={"header": "X-Test: d"})],
    )
    rig.start()
    hit, spared = rig.flow({"X-Test": "d"}), rig.flow()
    got = []
    for n in range(1, 5):
        got.append(rig.message(hit, note("0xs", n), from_client=False).dropped)
        rig.message(spared, note("0xs", n), from_client=False)
    assert got == [False, True, False, True]
