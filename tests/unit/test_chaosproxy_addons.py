"""Fault addons apply their fault; the recorder's row proves it. Control API routing."""

from __future__ import annotations

import asyncio
import csv
import json
import time

import pytest
from mitmproxy import http
from mitmproxy.test import tflow

from analysis.shards import SCHEMAS, ShardWriter
from chaosproxy.addons import HttpFaults, Providers, Recorder, Scheduler
from chaosproxy.addons.control import ControlApi, HttpError
from chaosproxy.faults import parse_faults
from chaosproxy.schedule import Timeline

S = 1_000_000_000
T0 = 1_700_000_000 * S
PORTS = {18001: "A", 18002: "B"}


@pytest.fixture
def rig(tmp_path):
    faults = parse_faults(
        [
            {
                "fault_id": "a-reset",
                "provider": "A",
                "kind": "reset",
                "start_s": 0,
                "duration_s": 1,
            },
            {
                "fault_id": "b-err",
                "provider": "B",
                "kind": "http_error",
                "start_s": 0,
                "duration_s": 1,
                "params": {"status": 429, "headers": {"Retry-After": "2"}},
            },
        ],
        PORTS.values(),
    )
    timeline = Timeline(faults)
    providers = Providers(PORTS)
    upstream = ShardWriter(tmp_path / "upstream.P0.csv", "upstream")
    events = ShardWriter(tmp_path / "fault_events.P0.csv", "fault_events")
    scheduler = Scheduler(timeline, providers, events)
    chain = [scheduler, HttpFaults(), Recorder("P0", providers, upstream)]

    def rows():
        upstream.close()
        with open(tmp_path / "upstream.P0.csv") as f:
            return list(csv.DictReader(f))

    yield timeline, chain, rows
    upstream.close()
    events.close()


def make_flow(port, body=b'{"jsonrpc":"2.0","id":"bt-0-1","method":"eth_blockNumber"}', tag=None):
    f = tflow.tflow()
    f.client_conn.sockname = ("127.0.0.1", port)
    f.request.content = body
    if tag:
        f.request.headers["X-Battle-Tag"] = tag
    return f


def run_request(chain, flow):
    for addon in chain:
        addon.request(flow)


def finish(chain, flow):
    hook = "response" if flow.response else "error"
    for addon in chain:
        if hasattr(addon, hook):
            getattr(addon, hook)(flow)


def test_reset_fault_kills_matching_flow_and_row_carries_fault_id(rig):
    timeline, chain, rows = rig
    timeline.start(T0)
    timeline.advance(T0)
    f = make_flow(18001, tag="bt-7-7")
    run_request(chain, f)
    assert f.error is not None and f.error.msg == "Connection killed."
    assert not f.live
    finish(chain, f)
    (row,) = rows()
    assert row["provider"] == "A"
    assert list(row) == list(SCHEMAS["upstream"])
    assert (row["fault_id"], row["fault_kind"], row["outcome"]) == ("a-reset", "reset", "reset")
    assert (row["tag"], row["rpc_id"], row["method"]) == ("bt-7-7", "bt-0-1", "eth_blockNumber")
    assert row["t_upstream_sent"] == row["t_upstream_done"] == row["http_status"] == ""
    assert timeline.faults[0].applied == 1


def test_http_error_fault_answers_from_proxy_with_params(rig):
    timeline, chain, rows = rig
    timeline.start(T0)
    timeline.advance(T0)
    f = make_flow(18002, body=b'{"jsonrpc":"2.0","id":42,"method":"eth_call"}')
    run_request(chain, f)
    assert f.response.status_code == 429
    assert f.response.headers["Retry-After"] == "2"
    assert f.response.headers["Content-Type"] == "application/json"
    assert json.loads(f.response.content)["id"] == 42
    finish(chain, f)
    (row,) = rows()
    assert (row["provider"], row["fault_id"], row["outcome"], row["http_status"]) == (
        "B",
        "b-err",
        "http_error",
        "429",
    )
    assert row["rpc_code"] == "-32603"
    assert row["tag"] == ""  # numeric id, no header
    assert row["t_upstream_sent"] == ""
    assert int(row["bytes_out"]) == len(f.response.raw_content)


def test_no_fault_before_start_and_flow_is_recorded_ok(rig):
    timeline, chain, rows = rig
    f = make_flow(18001)
    run_request(chain, f)
    assert f.error is None and f.response is None
    f.response = http.Response.make(200, b'{"jsonrpc":"2.0","id":"bt-0-1","result":"0x1"}')
    finish(chain, f)
    (row,) = rows()
    assert (row["fault_id"], row["outcome"], row["http_status"], row["tag"]) == (
        "",
        "ok",
        "200",
        "bt-0-1",
    )
    assert row["t_upstream_sent"] != "" and row["t_upstream_done"] != ""
    assert timeline.faults[0].applied == 0


def test_fault_on_other_provider_does_not_touch_flow(rig):
    timeline, chain, _rows = rig
    timeline.start(T0)
    timeline.advance(T0)
    timeline.advance(T0 + S)  # both ended
    f = make_flow(18002)
    run_request(chain, f)
    assert f.response is None and f.error is None


def test_flow_is_recorded_once(rig):
    _timeline, chain, rows = rig
    f = make_flow(18001)
    run_request(chain, f)
    f.response = http.Response.make(200, b"{}")
    finish(chain, f)
    finish(chain, f)
    assert len(rows()) == 1


def test_upstream_connect_failure_is_conn_error(rig):
    _timeline, chain, rows = rig
    f = make_flow(18001)
    f.server_conn.timestamp_tcp_setup = None
    f.server_conn.timestamp_tls_setup = None
    run_request(chain, f)
    f.error = tflow.flow.Error("Connect call failed")
    finish(chain, f)
    (row,) = rows()
    assert (row["outcome"], row["fault_id"], row["t_upstream_sent"]) == ("conn_error", "", "")


def _upgrade_flow(port):
    f = make_flow(port, body=b"")
    f.request.method = "GET"
    f.request.headers["Connection"] = "Upgrade"
    f.request.headers["Upgrade"] = "websocket"
    return f


@pytest.mark.parametrize("fault_active", [False, True])
def test_a_websocket_handshake_is_recorded_as_transport_ws_with_or_without_a_fault(
    rig, fault_active
):
    timeline, chain, rows = rig
    if fault_active:
        timeline.start(T0)
        timeline.advance(T0)
    f = _upgrade_flow(18001)
    run_request(chain, f)
    assert f.error is None  # the reset fault is an HTTP fault: the handshake passes
    f.response = http.Response.make(101, b"", {"Upgrade": "websocket"})
    finish(chain, f)
    (row,) = rows()
    assert (row["transport"], row["provider"], row["fault_id"]) == ("ws", "A", "")


def test_a_refused_websocket_handshake_is_still_transport_ws(rig):
    _timeline, chain, rows = rig
    f = _upgrade_flow(18002)
    f.server_conn.timestamp_tcp_setup = None
    f.server_conn.timestamp_tls_setup = None
    run_request(chain, f)
    f.error = tflow.flow.Error("Connect call failed")
    finish(chain, f)
    (row,) = rows()
    assert (row["transport"], row["outcome"]) == ("ws", "conn_error")


# -- control API routing ---------------------------------------------------------------


@pytest.fixture
def control(rig):
    timeline, chain, _ = rig
    return ControlApi(chain[0], 18000), timeline


def test_control_health(control):
    api, _ = control
    assert api.handle("GET", "/health", b"") == (200, {"ok": True})


def test_control_start_drives_the_schedule_and_second_start_conflicts(control, tmp_path):
    api, timeline = control

    async def scenario():
        t0 = time.time_ns()
        status, doc = api.handle("POST", "/start", json.dumps({"t0_ns": t0}).encode())
        assert (status, doc) == (200, {"ok": True, "t0_ns": t0})
        with pytest.raises(HttpError) as info:
            api.handle("POST", "/start", json.dumps({"t0_ns": t0}).encode())
        assert info.value.status == 409
        assert f"already started with t0_ns={t0}" in str(info.value)
        await asyncio.sleep(0.05)
        seen = time.time_ns()
        assert [rt.spec.fault_id for rt in timeline.active["A"]] == ["a-reset"]
        await api.scheduler.done()
        return t0, seen

    t0, seen = asyncio.run(scenario())
    assert timeline.t0_ns == t0
    assert [rt.state for rt in timeline.faults] == ["active", "active"]
    # Started at their plan (t0) or after, and before we looked: ordering, not a bound
    # on how soon a busy machine's scheduler ran the task.
    assert all(t0 <= rt.actual_start <= seen for rt in timeline.faults)
    api.scheduler.events.close()
    with open(tmp_path / "fault_events.P0.csv") as f:
        events = list(csv.DictReader(f))
    assert [(e["fault_id"], e["event"]) for e in events] == [
        ("a-reset", "start"),
        ("b-err", "start"),
    ]
    # The params as written, and the answer the fault sends (what analysis reads).
    recorded = json.loads(events[1]["params"])
    assert recorded["headers"] == {"Retry-After": "2"} and recorded["status"] == 429
    assert recorded["answer"] == {
        "status": 429, "headers": {"Retry-After": "2"}, "body": None, "code": -32603,
        "message": "chaosproxy: injected HTTP 429", "data": None,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "text"),
    [
        ("POST", "/start", b"nope", 400, "body must be JSON"),
        ("POST", "/start", b"[]", 400, "body must be an object with t0_ns"),
        ("POST", "/start", b'{"t0_ns": "1"}', 400, "t0_ns must be a positive integer"),
        ("POST", "/start", b'{"t0_ns": 1.5}', 400, "t0_ns must be a positive integer"),
        ("GET", "/start", b"", 405, "/start takes POST, got GET"),
        ("GET", "/nope", b"", 404, "unknown path '/nope'"),
    ],
)
def test_control_bad_requests(control, method, path, body, status, text):
    api, timeline = control
    with pytest.raises(HttpError) as info:
        api.handle(method, path, body)
    assert info.value.status == status
    assert text in str(info.value)
    assert timeline.t0_ns is None


def test_control_faults_lists_state_and_counts(control):
    api, _timeline = control
    status, doc = api.handle("GET", "/faults", b"")
    assert status == 200
    assert [(d["fault_id"], d["state"], d["planned_start"], d["applied"]) for d in doc] == [
        ("a-reset", "pending", None, 0),
        ("b-err", "pending", None, 0),
    ]
    assert doc[1]["params"]["status"] == 429
