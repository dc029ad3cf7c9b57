"""Fidelity of faults on JSON-RPC calls over a WebSocket, and of the WebSocket faults'
matchers, through a real mock provider (`python -m providers.mock`).

One mock provider and one proxy serve the module. Each test opens its sockets with an
``X-Test`` handshake header and its faults match that header, so tests never see each
other's faults. Timing tolerances are stated per test.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from shard_poll import wait_for_rows
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from scenarios.processes import free_ports

ROOT = Path(__file__).resolve().parents[2]
BLOCK_MS = 100


class Rig:
    def __init__(self, run_dir: Path, control: int, port: int, provider: int) -> None:
        self.run_dir = run_dir
        self.control = f"http://127.0.0.1:{control}"
        self.port = port
        self.provider = provider

    def apply(self, *faults: dict) -> None:
        r = httpx.post(f"{self.control}/faults", json=list(faults), timeout=5)
        assert r.status_code == 200, r.text
        ids = {f["fault_id"] for f in faults}
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            states = [
                f["state"]
                for f in httpx.get(f"{self.control}/faults", timeout=5).json()
                if f["spec_id"] in ids
            ]
            if states and all(s == "active" for s in states):
                return
            time.sleep(0.01)
        raise AssertionError(f"faults {ids} never became active")

    def socket(self, test: str):
        return ws_connect(
            f"ws://127.0.0.1:{self.port}/", open_timeout=5, additional_headers={"X-Test": test}
        )

    def rows(
        self, table: str = "upstream", *, count: int = 1, **equal: str
    ) -> list[dict[str, str]]:
        """The shard's rows whose columns equal `equal`, once at least `count` of them
        were flushed (polled with a deadline: no guess at the flush's timing)."""

        def where(row: dict[str, str]) -> bool:
            return all(row[k] == v for k, v in equal.items())

        return wait_for_rows(self.run_dir / "upstream" / f"{table}.P0.csv", where, count=count)


@pytest.fixture(scope="module")
def rig(tmp_path_factory) -> Iterator[Rig]:
    tmp = tmp_path_factory.mktemp("wscalls")
    provider, port, control = free_ports(3)
    # Genesis 1,000 blocks ago: a head far from 0, so a stale head k blocks back is real.
    genesis = time.time_ns() - 1000 * BLOCK_MS * 1_000_000
    procs: list[subprocess.Popen] = []
    try:
        with open(tmp / "provider.log", "w") as log:
            procs.append(
                subprocess.Popen(
                    [
                        *(sys.executable, "-m", "providers.mock", "--port", str(provider)),
                        *("--block-time-ms", str(BLOCK_MS), "--genesis-ns", str(genesis)),
                    ],
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        args = [sys.executable, "-m", "chaosproxy", "--proxy-id", "P0", "--run-dir", str(tmp)]
        args += ["--control-port", str(control)]
        args += ["--listen", f"M={port}=http://127.0.0.1:{provider}"]
        with open(tmp / "proxy.stderr", "w") as log:
            proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True)
        procs.append(proc)
        assert proc.stdout.readline().startswith("ready"), (tmp / "proxy.stderr").read_text()
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.post(f"http://127.0.0.1:{provider}/", json=call("eth_chainId"), timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "mock provider never answered"
                time.sleep(0.05)
        r = httpx.post(f"http://127.0.0.1:{control}/start", json={"t0_ns": time.time_ns()})
        assert r.status_code == 200
        yield Rig(tmp, control, port, provider)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


def fault(fid: str, kind: str, match: dict | None = None, **kw) -> dict:
    return {
        "fault_id": fid,
        "provider": "M",
        "kind": kind,
        "duration_s": 600,
        "match": {"header": f"X-Test: {fid}", **(match or {})},
        **kw,
    }


def call(method: str, params: list | None = None, rpc_id: object = 1) -> dict:
    return {"jsonrpc": "2.0", "id": rpc_id, "method": method, "params": params or []}


def ask(ws, doc: object, timeout: float = 5.0) -> object:
    ws.send(json.dumps(doc))
    return json.loads(ws.recv(timeout=timeout))


def answers(ws, seconds: float) -> list[dict]:
    """Every message received in the next `seconds`."""
    out = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            out.append(json.loads(ws.recv(timeout=left)))
        except TimeoutError:
            break
    return out


def rows_of(rig: Rig, fid: str, count: int = 1) -> list[dict[str, str]]:
    return rig.rows(count=count, fault_id=fid)


# -- per-call faults ----------------------------------------------------------------------


def test_ws_call_latency_delays_every_answer_by_at_least_its_ms_and_the_p50_by_about_it(rig):
    fid = "lat"
    with rig.socket("base") as ws:
        base = []
        for i in range(10):
            t = time.perf_counter()
            ask(ws, call("eth_chainId", rpc_id=i))
            base.append(time.perf_counter() - t)
    rig.apply(fault(fid, "latency", params={"ms": 100}))
    with rig.socket(fid) as ws:
        got = []
        for i in range(10):
            t = time.perf_counter()
            assert ask(ws, call("eth_chainId", rpc_id=i))["id"] == i
            got.append(time.perf_counter() - t)
    # Never short (the proxy's guarantee); the upper bound is loose, how late a timer
    # fires being the machine's scheduler's: it catches a delay applied twice.
    assert min(got) >= 0.1, min(got)
    added = (statistics.median(got) - statistics.median(base)) * 1e3
    assert 90 <= added < 150, added
    rows = rows_of(rig, fid, count=10)
    assert len(rows) == 10
    assert all(r["transport"] == "ws" and r["outcome"] == "ok" for r in rows)
    assert all(int(r["injected_delay"]) >= 100_000_000 for r in rows)
    assert all(int(r["t_upstream_sent"]) - int(r["t_request"]) >= 100_000_000 for r in rows)


def test_ws_rpc_error_echoes_the_id_and_hits_only_matched_batch_elements(rig):
    fid = "rpcerr"
    rig.apply(fault(fid, "rpc_error", match={"methods": ["eth_blockNumber"]}))
    with rig.socket(fid) as ws:
        one = ask(ws, call("eth_blockNumber", rpc_id="bt-7"))
        assert one["id"] == "bt-7" and one["error"]["code"] == -32005
        assert "result" in ask(ws, call("eth_chainId", rpc_id=8))
        batch = ask(ws, [call("eth_chainId", rpc_id=1), call("eth_blockNumber", rpc_id=2)])
    by_id = {e["id"]: e for e in batch}
    assert "result" in by_id[1] and by_id[2]["error"]["code"] == -32005
    rows = rows_of(rig, fid, count=2)
    assert [(r["method"], r["outcome"], r["rpc_code"]) for r in rows] == [
        ("eth_blockNumber", "rpc_error", "-32005"),
        ("eth_chainId", "rpc_error", "-32005"),  # the batch, recorded by its first method
    ]
    assert rows[0]["tag"] == "bt-7" and rows[0]["t_upstream_sent"] == ""


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize(
    ("mode", "check"),
    [
        ("invalid_json", lambda text: not _is_json(text)),
        ("wrong_id", lambda text: json.loads(text)["id"] == 1_000_005),
        ("null_result", lambda text: json.loads(text)["result"] is None),
    ],
)
def test_ws_corrupt_damages_the_providers_answer(rig, mode, check):
    fid = f"corrupt-{mode}"
    rig.apply(fault(fid, "corrupt", params={"mode": mode}))
    with rig.socket(fid) as ws:
        ws.send(json.dumps(call("eth_chainId", rpc_id=5)))
        assert check(ws.recv(timeout=5))
    assert [r["fault_kind"] for r in rows_of(rig, fid)] == ["corrupt"]


def test_ws_stale_lowers_the_head_by_k_blocks(rig):
    fid = "stale"
    rig.apply(fault(fid, "stale", params={"lag_blocks": 5}))
    with rig.socket(fid) as ws:
        before = int(
            httpx.post(f"http://127.0.0.1:{rig.provider}/", json=call("eth_blockNumber")).json()[
                "result"
            ],
            16,
        )
        seen = int(ask(ws, call("eth_blockNumber"))["result"], 16)
        after = int(
            httpx.post(f"http://127.0.0.1:{rig.provider}/", json=call("eth_blockNumber")).json()[
                "result"
            ],
            16,
        )
    # The provider's head moved by at most (after - before) blocks while we asked.
    assert before - 5 <= seen <= after - 5, (before, seen, after)
    assert [r["fault_kind"] for r in rows_of(rig, fid)] == ["stale"]


def test_ws_hang_never_answers_the_call_but_the_socket_stays_up(rig):
    fid = "hang"
    rig.apply(fault(fid, "hang", match={"methods": ["eth_blockNumber"]}))
    with rig.socket(fid) as ws:
        ws.send(json.dumps(call("eth_blockNumber", rpc_id=1)))
        # The next call is answered (however slow the machine); the hung one never is.
        ws.send(json.dumps(call("eth_chainId", rpc_id=2)))
        got = [json.loads(ws.recv(timeout=5)), *answers(ws, 0.3)]
    assert [a["id"] for a in got] == [2]
    rows = rows_of(rig, fid)
    assert [(r["method"], r["outcome"]) for r in rows] == [("eth_blockNumber", "timeout")]
    assert rows[0]["t_upstream_done"] and not rows[0]["t_response"]


def test_ws_blackhole_never_sends_the_call_upstream(rig):
    fid = "bh"
    rig.apply(fault(fid, "blackhole"))
    with rig.socket(fid) as ws:
        ws.send(json.dumps(call("eth_chainId")))
        assert answers(ws, 0.4) == []
    rows = rows_of(rig, fid)
    assert [(r["outcome"], r["t_upstream_sent"]) for r in rows] == [("timeout", "")]


def test_ws_reset_aborts_the_socket_without_a_close_frame(rig):
    fid = "reset"
    rig.apply(fault(fid, "reset", match={"methods": ["eth_blockNumber"]}))
    with rig.socket(fid) as ws:
        assert "result" in ask(ws, call("eth_chainId"))
        ws.send(json.dumps(call("eth_blockNumber", rpc_id=2)))
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=5)
    assert info.value.rcvd is None  # no close frame: the client reports 1006
    assert [r["outcome"] for r in rows_of(rig, fid)] == ["reset"]


def test_ws_first_n_faults_only_the_first_calls_and_http_is_left_alone(rig):
    fid = "first2"
    rig.apply(fault(fid, "rpc_error", match={"transport": "ws", "first_n": 2}))
    # The same header on an HTTP call: transport ws leaves it alone.
    r = httpx.post(
        f"http://127.0.0.1:{rig.port}/", json=call("eth_chainId"), headers={"X-Test": fid}
    )
    assert "result" in r.json()
    with rig.socket(fid) as ws:
        got = [ask(ws, call("eth_chainId", rpc_id=i)) for i in range(4)]
    assert ["error" in g for g in got] == [True, True, False, False]
    assert [r["transport"] for r in rows_of(rig, fid, count=2)] == ["ws", "ws"]


def test_ws_call_without_faults_is_recorded_with_its_times(rig):
    with rig.socket("plain") as ws:
        assert "result" in ask(ws, call("eth_chainId", rpc_id="bt-plain"))
    rows = rig.rows(tag="bt-plain")
    assert len(rows) == 1
    r = rows[0]
    assert (r["transport"], r["method"], r["outcome"], r["fault_id"]) == (
        "ws",
        "eth_chainId",
        "ok",
        "",
    )
    t = [int(r[k]) for k in ("t_request", "t_upstream_sent", "t_upstream_done", "t_response")]
    assert t == sorted(t)


# -- WebSocket kinds with matchers --------------------------------------------------------


def subscribe(ws, kind: str, rpc_id: int) -> str:
    params = [kind] if kind == "newHeads" else [kind, {}]
    answer = ask(ws, call("eth_subscribe", params, rpc_id))
    return answer["result"]


def test_ws_drop_matched_by_subscription_kind_drops_only_that_kind(rig):
    fid = "drop-heads"
    rig.apply(fault(fid, "ws_drop", match={"subscriptions": ["newHeads"]}))
    with rig.socket(fid) as ws, rig.socket("control-heads") as other:
        heads = subscribe(ws, "newHeads", 1)
        logs = subscribe(ws, "logs", 2)
        control = subscribe(other, "newHeads", 1)
        got = answers(ws, 4 * BLOCK_MS / 1000)
        seen_other = answers(other, 0.05)
    subs = {m["params"]["subscription"] for m in got}
    assert heads not in subs and logs in subs
    assert {m["params"]["subscription"] for m in seen_other} == {control}
    dropped = rig.rows("upstream_ws", fault_id=fid)
    assert dropped and {r["action"] for r in dropped} == {"dropped"}
    assert {r["subscription"] for r in dropped} == {heads}


def test_ws_disconnect_matched_by_header_closes_only_the_matching_socket(rig):
    fid = "dis-one"
    with rig.socket(fid) as hit, rig.socket("bystander") as spared:
        subscribe(hit, "newHeads", 1)
        subscribe(spared, "newHeads", 1)
        rig.apply(fault(fid, "ws_disconnect", params={"code": 4001, "reason": "chaos"}))
        with pytest.raises(ConnectionClosed) as info:
            answers(hit, 2)
        assert info.value.rcvd.code == 4001
        assert answers(spared, 3 * BLOCK_MS / 1000)  # still receiving heads


def test_ws_stall_with_per_connection_probability_zero_stalls_nothing(rig):
    fid = "stall-none"
    rig.apply(fault(fid, "ws_stall", match={"probability": 0.0, "per": "connection"}))
    with rig.socket(fid) as ws:
        assert "result" in ask(ws, call("eth_chainId"))


def test_ws_stall_swallows_calls_and_records_them_unanswered(rig):
    fid = "stall-calls"
    rig.apply(fault(fid, "ws_stall"))
    with rig.socket(fid) as ws:
        ws.send(json.dumps(call("eth_chainId")))
        assert answers(ws, 0.4) == []
    rows = rows_of(rig, fid)
    assert [(r["transport"], r["outcome"], r["fault_kind"]) for r in rows] == [
        ("ws", "timeout", "ws_stall")
    ]
