"""Fidelity: each fault against a real upstream, asserting what a client observes.

One proxy process serves the whole module. HTTP faults are applied through the control
API with a `match.header` naming the test, so tests never see each other's faults (the
per-request override the issue asks for); listener and WebSocket faults get a provider
of their own. Timing tolerances are stated per test.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import httpx
import pytest
from shard_poll import wait_for_rows
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect
from websockets.sync.server import serve as ws_serve

from analysis.database import ingest
from scenarios.processes import free_ports

ROOT = Path(__file__).resolve().parents[2]
HEAD = 100  # the upstream's eth_blockNumber
CHAIN_ID = 0x7A69  # its eth_chainId
# What the upstream answers these methods; any other call is echoed back as its params.
STATE = {"eth_blockNumber": hex(HEAD), "eth_chainId": hex(CHAIN_ID), "eth_syncing": False}
WS_PROVIDERS = ("W0", "W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8", "W9")


def free_port() -> int:
    # Reserved (TIME_WAIT), not just seen free: no other test's port-0 bind takes it
    # before the child binds it.
    return free_ports(1)[0]


class _Upstream(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Buffered: head and body leave in one segment (no Nagle / delayed-ACK stall).
    wbufsize = 65536
    seen: list[bytes] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        _Upstream.seen.append(body)
        req = json.loads(body)

        def answer(r: dict) -> dict:
            result = STATE.get(r.get("method"), {"params": r.get("params")})
            return {"jsonrpc": "2.0", "id": r.get("id"), "result": result}

        doc = [answer(r) for r in req] if isinstance(req, list) else answer(req)
        out = json.dumps(doc).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args: object) -> None:
        pass


def _ws_handler(conn) -> None:
    """Answers eth_subscribe, then sends newHeads 1, 2, 3 ... every 20 ms (at most 400);
    a call in between is answered with the head (`HEAD`)."""
    try:
        req = json.loads(conn.recv(timeout=5))
        conn.send(json.dumps({"jsonrpc": "2.0", "id": req["id"], "result": "0xs1"}))
        for n in range(1, 401):
            note = {
                "jsonrpc": "2.0",
                "method": "eth_subscription",
                "params": {"subscription": "0xs1", "result": {"number": hex(n)}},
            }
            conn.send(json.dumps(note))
            pause_until = time.monotonic() + 0.02
            while (left := pause_until - time.monotonic()) > 0:
                try:
                    call = json.loads(conn.recv(timeout=left))
                except TimeoutError:
                    break
                conn.send(json.dumps({"jsonrpc": "2.0", "id": call["id"], "result": hex(HEAD)}))
    except (ConnectionClosed, TimeoutError, OSError):
        pass


class Proxy:
    def __init__(self, run_dir: Path, control: int, ports: dict[str, int]) -> None:
        self.run_dir = run_dir
        self.control = f"http://127.0.0.1:{control}"
        self.ports = ports
        self.t0 = 0

    def url(self, provider: str) -> str:
        return f"http://127.0.0.1:{self.ports[provider]}"

    def apply(self, *faults: dict, wait: bool = True) -> dict:
        r = httpx.post(f"{self.control}/faults", json=list(faults), timeout=5)
        assert r.status_code == 200, r.text
        if not wait:
            return r.json()
        ids = {f["fault_id"] for f in faults}
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            states = {
                f["spec_id"]: f["state"]
                for f in httpx.get(f"{self.control}/faults", timeout=5).json()
                if f["spec_id"] in ids
            }
            if states and all(s != "pending" for s in states.values()):
                return r.json()
            time.sleep(0.01)
        raise AssertionError(f"faults {ids} never became active")

    def clear(self, *ids: str) -> None:
        r = httpx.post(f"{self.control}/clear", json={"fault_ids": list(ids)}, timeout=5)
        assert r.status_code == 200, r.text

    def rows(
        self, table: str, folder: str = "upstream", *, count: int = 1, **equal: str
    ) -> list[dict[str, str]]:
        """The shard's rows whose columns equal `equal`, once at least `count` of them
        were flushed (polled with a deadline: no guess at the flush's timing)."""

        def where(row: dict[str, str]) -> bool:
            return all(row[k] == v for k, v in equal.items())

        return wait_for_rows(self.run_dir / folder / f"{table}.P0.csv", where, count=count)


@pytest.fixture(scope="module")
def proxy(tmp_path_factory) -> Iterator[Proxy]:
    tmp = tmp_path_factory.mktemp("fidelity")
    http_server = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    threading.Thread(target=http_server.serve_forever, daemon=True).start()
    ws_server = ws_serve(_ws_handler, "127.0.0.1", 0)
    threading.Thread(target=ws_server.serve_forever, daemon=True).start()
    http_up = f"http://127.0.0.1:{http_server.server_address[1]}"
    ws_up = f"http://127.0.0.1:{ws_server.socket.getsockname()[1]}"
    ports = {name: free_port() for name in ("A", "R", *WS_PROVIDERS)}
    control = free_port()
    args = [sys.executable, "-m", "chaosproxy", "--proxy-id", "P0", "--run-dir", str(tmp)]
    args += ["--control-port", str(control)]
    for name, port in ports.items():
        args += ["--listen", f"{name}={port}={ws_up if name.startswith('W') else http_up}"]
    with open(tmp / "proxy.stderr", "w") as log:
        proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("ready"), (tmp / "proxy.stderr").read_text()
        p = Proxy(tmp, control, ports)
        p.t0 = time.time_ns()
        r = httpx.post(f"{p.control}/start", json={"t0_ns": p.t0}, timeout=5)
        assert r.status_code == 200
        yield p
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        http_server.shutdown()
        http_server.server_close()
        ws_server.shutdown()


def fault(fid: str, kind: str, provider: str = "A", **kw) -> dict:
    f = {"fault_id": fid, "provider": provider, "kind": kind, "duration_s": 600}
    if provider == "A":
        f["match"] = {"header": f"X-Test: {fid}"}
    f.update(kw)
    return f


def call(p: Proxy, fid: str, body: object = None, timeout: float = 5.0) -> httpx.Response:
    if body is None:
        body = {"jsonrpc": "2.0", "id": 7, "method": "eth_blockNumber", "params": []}
    with httpx.Client(timeout=timeout) as c:
        return c.post(p.url("A"), json=body, headers={"X-Test": fid})


# -- HTTP ---------------------------------------------------------------------------------


def test_latency_delays_every_call_by_at_least_its_time_and_the_p50_by_about_it(proxy):
    def p50(fid: str) -> float:
        with httpx.Client(timeout=5) as c:
            xs = []
            for i in range(21):
                t = time.perf_counter()
                c.post(
                    proxy.url("A"),
                    json={"jsonrpc": "2.0", "id": i, "method": "m"},
                    headers={"X-Test": fid},
                )
                xs.append(time.perf_counter() - t)
        return xs

    base = p50("none")
    proxy.apply(fault("lat", "latency", params={"ms": 100}))
    delayed = p50("lat")
    # The delay is never short (a lower bound the proxy guarantees); how late it is
    # depends on the machine's scheduler, so the upper bound is loose: it catches a
    # delay applied twice (+200 ms), not a busy CI box's lateness.
    assert min(delayed) >= 0.1, min(delayed)
    added = (statistics.median(delayed) - statistics.median(base)) * 1000
    assert 90 <= added < 150, added
    rows = proxy.rows("upstream", count=21, fault_id="lat")
    assert len(rows) == 21 and all(int(r["injected_delay"]) == 100_000_000 for r in rows)
    assert all(int(r["t_upstream_sent"]) - int(r["t_request"]) >= 100_000_000 for r in rows)


def test_response_side_latency_delays_the_answer_after_the_upstream_answered(proxy):
    proxy.apply(fault("lat-resp", "latency", params={"ms": 80, "where": "response"}))
    t = time.perf_counter()
    r = call(proxy, "lat-resp")
    assert r.status_code == 200 and (time.perf_counter() - t) >= 0.08
    (row,) = proxy.rows("upstream", fault_id="lat-resp")
    assert int(row["t_response"]) - int(row["t_upstream_done"]) >= 80_000_000


def test_http_error_preset_is_replayed_with_the_request_id(proxy):
    proxy.apply(fault("e429", "http_error", params={"preset": "infura_project_rate_exceeded"}))
    r = call(proxy, "e429")
    assert r.status_code == 429
    assert r.json()["id"] == 7 and r.json()["error"]["code"] == -32005
    assert r.json()["error"]["message"] == "project ID request rate exceeded"


def test_http_error_text_preset_keeps_its_headers(proxy):
    proxy.apply(fault("cf", "http_error", params={"preset": "llamarpc_cloudflare_1015"}))
    r = call(proxy, "cf")
    assert r.status_code == 429 and r.headers["retry-after"] == "30"
    with pytest.raises(ValueError):
        r.json()


def test_rpc_error_hits_only_the_matched_elements_of_a_batch(proxy):
    proxy.apply(
        fault(
            "rpc",
            "rpc_error",
            params={"preset": "geth_header_not_found"},
            match={"header": "X-Test: rpc", "methods": ["eth_getBalance"]},
        )
    )
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber"},
        {"jsonrpc": "2.0", "id": 2, "method": "eth_getBalance", "params": ["0x0", "latest"]},
    ]
    r = call(proxy, "rpc", batch)
    assert r.status_code == 200
    by_id = {e["id"]: e for e in r.json()}
    assert by_id[1]["result"] == hex(HEAD)
    assert by_id[2]["error"] == {"code": -32000, "message": "header not found"}
    single = call(proxy, "rpc", batch[1])
    assert single.status_code == 200 and single.json()["error"]["code"] == -32000


def test_rate_limit_lets_the_burst_through_then_answers_429(proxy):
    proxy.apply(fault("rl", "rate_limit", params={"rate_per_s": 0.5, "burst": 3}))
    statuses = [call(proxy, "rl").status_code for _ in range(6)]
    assert statuses == [200, 200, 200, 429, 429, 429]


def test_reset_closes_the_connection_without_a_response(proxy):
    proxy.apply(fault("rst", "reset"))
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        call(proxy, "rst")
    (row,) = proxy.rows("upstream", fault_id="rst")
    assert row["outcome"] == "reset"


def test_hang_withholds_the_answer_until_the_client_gives_up(proxy):
    proxy.apply(fault("hang", "hang"))
    before = len(_Upstream.seen)
    t = time.perf_counter()
    with pytest.raises(httpx.ReadTimeout):
        call(proxy, "hang", timeout=0.3)
    # The client's own timeout ended it (a lower bound); the hang's cap is an hour.
    assert time.perf_counter() - t >= 0.3
    assert len(_Upstream.seen) == before + 1  # hang: the upstream did get the request
    (row,) = proxy.rows("upstream", fault_id="hang")
    assert row["outcome"] == "timeout"


def test_blackhole_never_reaches_upstream_and_closes_after_its_time(proxy):
    proxy.apply(fault("bh", "blackhole", params={"close_after_s": 0.4}))
    before = len(_Upstream.seen)
    t = time.perf_counter()
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        call(proxy, "bh")
    # Closed by the proxy after its 0.4 s, never before; well before the client's own
    # 5 s timeout (the upper bound is the scheduler's, so it is loose).
    assert 0.4 <= time.perf_counter() - t < 2.0
    assert len(_Upstream.seen) == before
    (row,) = proxy.rows("upstream", fault_id="bh")
    assert row["outcome"] == "reset"


def _is_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize(
    ("mode", "check"),
    [
        ("truncate", lambda r: len(r.content) < 30),
        ("invalid_json", lambda r: not _is_json(r.content)),
        ("wrong_id", lambda r: r.json()["id"] == 1_000_007),
        ("null_result", lambda r: r.json()["result"] is None),
    ],
)
def test_corrupt_damages_the_upstream_answer(proxy, mode, check):
    proxy.apply(fault(f"cor-{mode}", "corrupt", params={"mode": mode}))
    r = call(proxy, f"cor-{mode}")
    assert r.status_code == 200 and check(r)


def test_stale_lowers_the_head_and_rewrites_latest_to_it(proxy):
    proxy.apply(fault("stale", "stale", params={"lag_blocks": 5}))
    assert call(proxy, "stale").json()["result"] == hex(HEAD - 5)
    body = {"jsonrpc": "2.0", "id": 3, "method": "eth_getBalance", "params": ["0x1", "latest"]}
    assert call(proxy, "stale", body).json()["result"]["params"] == ["0x1", hex(HEAD - 5)]


def _block(tag: str) -> dict:
    return {"jsonrpc": "2.0", "id": 4, "method": "eth_getBlockByNumber", "params": [tag, False]}


def test_head_lie_ahead_reports_a_head_far_past_the_upstreams(proxy):
    proxy.apply(fault("lie-ahead", "head_lie", params={"mode": "ahead", "blocks": 1000}))
    assert call(proxy, "lie-ahead").json()["result"] == hex(HEAD + 1000)


def test_head_lie_zero_answers_head_zero_and_asks_the_genesis_block_for_latest(proxy):
    proxy.apply(fault("lie-zero", "head_lie", params={"mode": "zero"}))
    assert call(proxy, "lie-zero").json()["result"] == "0x0"
    assert call(proxy, "lie-zero", _block("latest")).json()["result"]["params"] == ["0x0", False]


def test_head_lie_chain_id_and_syncing_misreport_the_providers_state(proxy):
    proxy.apply(fault("lie-chain", "head_lie", params={"mode": "chain_id"}))
    chain = {"jsonrpc": "2.0", "id": 5, "method": "eth_chainId", "params": []}
    assert call(proxy, "lie-chain", chain).json()["result"] == "0x1"
    assert call(proxy, "lie-chain").json()["result"] == hex(HEAD)  # heads told truly
    proxy.apply(fault("lie-sync", "head_lie", params={"mode": "syncing", "blocks": 10}))
    assert call(proxy, "lie-sync").json()["result"] == hex(HEAD)  # the head it learns
    syncing = {"jsonrpc": "2.0", "id": 6, "method": "eth_syncing", "params": []}
    assert call(proxy, "lie-sync", syncing).json()["result"] == {
        "startingBlock": "0x0",
        "currentBlock": hex(HEAD - 10),
        "highestBlock": hex(HEAD),
    }


def test_head_lie_tags_asks_safe_and_finalized_blocks_below_the_head_seen(proxy):
    proxy.apply(fault("lie-tags", "head_lie", params={"mode": "tags", "blocks": 100}))
    # Before any head went by the fault has none to lie from: the tag passes as it is.
    assert call(proxy, "lie-tags", _block("safe")).json()["result"]["params"] == ["safe", False]
    assert call(proxy, "lie-tags").json()["result"] == hex(HEAD)  # the head, told truly
    for tag in ("safe", "finalized"):
        answer = call(proxy, "lie-tags", _block(tag)).json()
        assert answer["result"]["params"] == [hex(HEAD - 100), False]


def test_a_cleared_fault_stops_at_once(proxy):
    proxy.apply(fault("gone", "http_error"))
    assert call(proxy, "gone").status_code == 503
    proxy.clear("gone")
    assert call(proxy, "gone").status_code == 200


def test_flap_transitions_reach_the_client_after_their_plan_never_before(proxy):
    now_s = (time.time_ns() - proxy_t0(proxy)) / 1e9
    proxy.apply(
        fault(
            "flap",
            "http_error",
            start_s=round(now_s + 0.5, 3),
            duration_s=1.5,
            schedule={"flap": {"down_s": 0.3, "up_s": 0.3, "count": 3}},
        ),
        wait=False,
    )
    probes: list[tuple[int, int, int]] = []  # (t sent, t answered, status)
    deadline = time.monotonic() + 3
    with httpx.Client(timeout=2) as c:
        while time.monotonic() < deadline:
            t = time.time_ns()
            status = c.post(
                proxy.url("A"), json={"id": 1, "method": "m"}, headers={"X-Test": "flap"}
            ).status_code
            probes.append((t, time.time_ns(), status))
    windows = [w for w in httpx.get(f"{proxy.control}/faults").json() if w["spec_id"] == "flap"]
    assert len(windows) == 3
    edges = sorted([w["planned_start"] for w in windows] + [w["planned_end"] for w in windows])

    def planned(t: int) -> int:
        return 503 if any(w["planned_start"] <= t < w["planned_end"] for w in windows) else 200

    # Tolerance 100 ms (a third of a 300 ms phase): a probe whose whole flight lies
    # outside every [plan, plan + 100 ms] band must see the planned status; probes
    # overlapping a band may see either. How late a transition is depends on the
    # machine's scheduler; that it is never early does not.
    tol = 100_000_000
    judged = [
        (t_sent, status)
        for t_sent, t_answered, status in probes
        if not any(t_sent < e + tol and t_answered > e for e in edges)
    ]
    wrong = [(t - edges[0]) / 1e6 for t, status in judged if status != planned(t)]
    assert not wrong, f"ms after the first edge: {wrong}"
    phases = {sum(t >= e for e in edges) for t, _ in judged}
    assert phases == set(range(7)), phases  # every phase was observed
    # Proxy side: every transition applied after its plan, never before, and in order.
    for w in windows:
        assert 0 <= w["actual_start"] - w["planned_start"] < tol
        assert 0 <= w["actual_end"] - w["planned_end"] < tol
        assert w["actual_start"] < w["actual_end"]


def proxy_t0(proxy: Proxy) -> int:
    return proxy.t0


# -- refuse -------------------------------------------------------------------------------


def test_refuse_takes_the_listener_down_and_closes_open_connections(proxy):
    keep = httpx.Client(timeout=2)
    try:
        assert keep.post(proxy.url("R"), json={"id": 1, "method": "m"}).status_code == 200
        proxy.apply(fault("down", "refuse", provider="R", duration_s=1.0))
        t_start = time.monotonic()
        with pytest.raises(httpx.ConnectError):
            httpx.post(proxy.url("R"), json={"id": 1, "method": "m"}, timeout=1)
        # The open keep-alive connection was aborted: reusing it fails.
        with pytest.raises(httpx.TransportError):
            keep.post(proxy.url("R"), json={"id": 2, "method": "m"})
        while time.monotonic() - t_start < 3:
            try:
                r = httpx.post(proxy.url("R"), json={"id": 1, "method": "m"}, timeout=1)
                break
            except httpx.ConnectError:
                time.sleep(0.005)
        assert r.status_code == 200
    finally:
        keep.close()
    rows = proxy.rows("lifecycle", "events", count=1, event="listener_down")
    rows += proxy.rows("lifecycle", "events", count=1, event="listener_up")
    events = [json.loads(r["detail"]) for r in rows]
    assert [e["window"] for e in events] == ["down", "down"]
    # Each listener change completed after its plan and well inside the 1 s window
    # (how soon after is the scheduler's: the bound is loose).
    assert all(e["ok"] and 0 <= e["took_ns"] < 500_000_000 for e in events), events
    assert events[0]["aborted"] >= 1  # the idle keep-alive connection was reset
    # A refused connection leaves no exchange row (the kernel refuses it: nothing
    # listens); the listener's proof of application is the `listener_down` row, in the
    # run database as lifecycle(role 'proxy', event, detail.window = the fault's id).
    con = duckdb.connect(str(ingest(proxy.run_dir)), read_only=True)
    try:
        proof = con.execute(
            "SELECT process, json_extract(detail, '$.ok')::BOOLEAN FROM lifecycle"
            " WHERE role = 'proxy' AND event = 'listener_down'"
            " AND json_extract_string(detail, '$.window') = 'down'"
        ).fetchall()
        refused_rows = con.execute(
            "SELECT count(*) FROM upstream WHERE fault_id = 'down'"
        ).fetchone()[0]
    finally:
        con.close()
    assert proof == [("P0", True)] and refused_rows == 0
    window = next(f for f in httpx.get(f"{proxy.control}/faults").json() if f["fault_id"] == "down")
    assert window["applied"] == 1  # counted once, by the listener


# -- WebSocket ----------------------------------------------------------------------------


@contextmanager
def subscribe(proxy: Proxy, provider: str) -> Iterator:
    with ws_connect(f"ws://127.0.0.1:{proxy.ports[provider]}/", open_timeout=5) as ws:
        ws.send(
            json.dumps(
                {"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]}
            )
        )
        assert json.loads(ws.recv(timeout=5))["result"] == "0xs1"
        yield ws


def heads(ws, n: int, timeout: float = 5.0) -> list[int]:
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        msg = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
        out.append(int(msg["params"]["result"]["number"], 16))
    return out


def test_ws_notifications_pass_untouched_without_faults(proxy):
    with subscribe(proxy, "W0") as ws:
        got = heads(ws, 10)
    assert got == list(range(got[0], got[0] + 10))
    # The handshake is recorded as transport ws although no fault is active on W0.
    (handshake,) = proxy.rows("upstream", provider="W0", method="")
    assert (handshake["transport"], handshake["http_status"]) == ("ws", "101")


def test_ws_drop_every_second_notification(proxy):
    proxy.apply(fault("wdrop", "ws_drop", provider="W1", params={"every_k": 2}))
    with subscribe(proxy, "W1") as ws:
        got = heads(ws, 6)
    assert got == [1, 3, 5, 7, 9, 11]
    dropped = proxy.rows("upstream_ws", count=5, fault_id="wdrop", action="dropped")
    assert len(dropped) >= 5  # 2, 4, ..., 10


def test_ws_delay_holds_each_notification_for_its_time(proxy):
    proxy.apply(fault("wdelay", "ws_delay", provider="W2", params={"ms": 150}))
    with subscribe(proxy, "W2") as ws:
        t = time.monotonic()
        got = heads(ws, 3)
        first_after = time.monotonic() - t
    assert got == [1, 2, 3] and first_after >= 0.15
    rows = proxy.rows("upstream_ws", count=3, fault_id="wdelay", action="delayed")
    delays = [int(r["delay_ns"]) for r in rows]
    # Never released early; released once (not held twice): the upper bound is loose,
    # how late a timer fires being the scheduler's.
    assert all(150_000_000 <= d < 300_000_000 for d in delays), delays


def test_ws_duplicate_sends_every_notification_twice(proxy):
    proxy.apply(fault("wdup", "ws_duplicate", provider="W3"))
    with subscribe(proxy, "W3") as ws:
        assert heads(ws, 6) == [1, 1, 2, 2, 3, 3]


def test_ws_reorder_swaps_neighbours(proxy):
    proxy.apply(fault("wre", "ws_reorder", provider="W4"))
    with subscribe(proxy, "W4") as ws:
        # Every 2nd notification is held and sent right after its successor.
        assert heads(ws, 7) == [1, 3, 2, 5, 4, 7, 6]


def test_ws_stall_keeps_the_socket_open_and_forwards_nothing(proxy):
    proxy.apply(fault("wstall", "ws_stall", provider="W5"))
    with ws_connect(f"ws://127.0.0.1:{proxy.ports['W5']}/", open_timeout=5) as ws:
        ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe"}))
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.4)
        assert ws.ping().wait(2)  # the socket is alive: control frames still pass


def test_ws_silence_answers_calls_and_pings_and_withholds_every_notification(proxy):
    with subscribe(proxy, "W9") as ws:
        heads(ws, 2)
        proxy.apply(fault("wsilence", "ws_silence", provider="W9"))
        # Notifications already on their way may still arrive; none after the call.
        ws.send(json.dumps({"jsonrpc": "2.0", "id": 7, "method": "eth_blockNumber"}))
        while (msg := json.loads(ws.recv(timeout=5))).get("id") != 7:
            assert msg["method"] == "eth_subscription"
        assert msg["result"] == hex(HEAD)  # the call went through and was answered
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.4)  # the upstream sends one every 20 ms; none comes
        assert ws.ping().wait(2)  # control frames pass too: the zombie socket
    rows = proxy.rows("upstream_ws", count=5, fault_id="wsilence")
    assert {r["action"] for r in rows} == {"silenced"}


@pytest.mark.parametrize(("provider", "code", "expected"), [("W6", 4000, 4000), ("W7", None, 1006)])
def test_ws_disconnect_closes_open_sockets_with_the_code(proxy, provider, code, expected):
    with subscribe(proxy, provider) as ws:
        heads(ws, 2)
        params = {} if code is None else {"code": code, "reason": "chaos"}
        proxy.apply(fault(f"wdis-{provider}", "ws_disconnect", provider=provider, params=params))
        with pytest.raises(ConnectionClosed) as info:
            heads(ws, 100)
    rcvd = info.value.rcvd
    assert (rcvd.code if rcvd is not None else 1006) == expected
    # A socket opened while the fault is active is closed the same way at once.
    with pytest.raises(ConnectionClosed) as info:
        with ws_connect(f"ws://127.0.0.1:{proxy.ports[provider]}/", open_timeout=5) as ws:
            ws.recv(timeout=5)
    rcvd = info.value.rcvd
    assert (rcvd.code if rcvd is not None else 1006) == expected
    rows = proxy.rows("upstream_ws", count=2, fault_id=f"wdis-{provider}")
    assert [r["action"] for r in rows] == ["disconnected", "disconnected"]


def test_ws_stale_sends_heads_k_blocks_late(proxy):
    proxy.apply(fault("wstale", "stale", provider="W8", params={"lag_blocks": 3}))
    with subscribe(proxy, "W8") as ws:
        t = time.monotonic()
        got = heads(ws, 3)
    assert got == [1, 2, 3]
    # The first arrives only when block 4 was produced (3 x 20 ms later).
    assert time.monotonic() - t >= 0.06
