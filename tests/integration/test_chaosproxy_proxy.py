"""The chaos proxy as a real process on loopback: faults applied on schedule, every
exchange and transition recorded, clean exit on SIGTERM."""

from __future__ import annotations

import csv
import json
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from analysis.shards import SCHEMAS
from scenarios.processes import free_ports

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 30.0  # the first run on a host also generates mitmproxy's CA


def free_port() -> int:
    # Reserved (TIME_WAIT), not just seen free: no other test's port-0 bind takes it
    # before the child binds it.
    return free_ports(1)[0]


class _Upstream(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        req = json.loads(body)
        out = json.dumps({"jsonrpc": "2.0", "id": req.get("id"), "result": "0x1"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def read_line(proc: subprocess.Popen, timeout: float) -> str:
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        if not sel.select(timeout):
            raise TimeoutError(f"no line from the proxy within {timeout} s")
        return proc.stdout.readline()
    finally:
        sel.close()


def start_proxy(tmp_path: Path, args: list[str]) -> subprocess.Popen:
    # The child keeps its own copy of the log's descriptor; ours can close at once.
    with open(tmp_path / "proxy.stderr", "w") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "chaosproxy", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(5)


def sleep_until(t_ns: int) -> None:
    delay = (t_ns - time.time_ns()) / 1e9
    if delay > 0:
        time.sleep(delay)


def rpc(url: str, tag: str) -> httpx.Response:
    body = {"jsonrpc": "2.0", "id": tag, "method": "eth_blockNumber", "params": []}
    # A fresh client per call: a reset must not leave a dead pooled connection behind.
    with httpx.Client(timeout=5.0) as client:
        return client.post(url, json=body, headers={"X-Battle-Tag": tag})


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_faults_apply_on_schedule_and_are_recorded(tmp_path, upstream):
    control_port, port_a, port_b = free_port(), free_port(), free_port()
    run_dir = tmp_path / "run"
    faults = tmp_path / "faults.json"
    faults.write_text(
        json.dumps(
            [
                {
                    "fault_id": "a-reset",
                    "provider": "A",
                    "kind": "reset",
                    # Seconds apart, not tenths: each call below must land in its window
                    # however slow a busy box makes the calls before it.
                    "start_s": 3.0,
                    "duration_s": 3.0,
                    "params": {},
                },
                {
                    "fault_id": "b-429",
                    "provider": "B",
                    "kind": "http_error",
                    "start_s": 0.0,
                    "duration_s": 30.0,
                    "params": {"status": 429},
                },
            ]
        )
    )
    proc = start_proxy(
        tmp_path,
        [
            "--proxy-id", "P0", "--run-dir", str(run_dir),
            "--control-port", str(control_port),
            "--listen", f"A={port_a}={upstream}",
            "--listen", f"B={port_b}={upstream}",
            "--faults", str(faults),
        ],
    )  # fmt: skip
    try:
        line = read_line(proc, READY_TIMEOUT_S)
        assert line.startswith(f"ready control=http://127.0.0.1:{control_port}"), line
        control = f"http://127.0.0.1:{control_port}"
        url_a, url_b = f"http://127.0.0.1:{port_a}/", f"http://127.0.0.1:{port_b}/"

        assert httpx.get(f"{control}/health").json() == {"ok": True}
        # Before /start nothing is active, not even the fault planned at 0 s.
        assert rpc(url_b, "bt-0-0").status_code == 200

        t0 = time.time_ns()
        r = httpx.post(f"{control}/start", json={"t0_ns": t0})
        assert r.status_code == 200, r.text
        again = httpx.post(f"{control}/start", json={"t0_ns": t0})
        assert again.status_code == 409
        assert "already started" in again.json()["error"]
        assert httpx.post(f"{control}/start", content=b"{").status_code == 400

        sleep_until(t0 + 100_000_000)
        before = rpc(url_a, "bt-0-1")
        assert before.status_code == 200
        assert before.json() == {"jsonrpc": "2.0", "id": "bt-0-1", "result": "0x1"}

        sleep_until(t0 + 3_500_000_000)
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            rpc(url_a, "bt-0-2")
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            rpc(url_a, "bt-0-3")

        other = rpc(url_b, "bt-0-4")
        assert other.status_code == 429
        assert other.json()["id"] == "bt-0-4"

        sleep_until(t0 + 6_500_000_000)
        after = rpc(url_a, "bt-0-5")
        assert after.status_code == 200

        state = {f["fault_id"]: f for f in httpx.get(f"{control}/faults").json()}
        assert state["a-reset"]["state"] == "ended"
        assert state["a-reset"]["applied"] == 2
        assert state["b-429"]["state"] == "active"
        assert state["b-429"]["applied"] == 1

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        stop(proc)

    rows = read_csv(run_dir / "upstream" / "upstream.P0.csv")
    assert list(rows[0]) == list(SCHEMAS["upstream"])
    by_tag = {r["tag"]: r for r in rows}
    assert sorted(by_tag) == ["bt-0-0", "bt-0-1", "bt-0-2", "bt-0-3", "bt-0-4", "bt-0-5"]
    assert len(rows) == 6
    for tag in ("bt-0-2", "bt-0-3"):
        r = by_tag[tag]
        assert (r["provider"], r["fault_id"], r["fault_kind"], r["outcome"]) == (
            "A",
            "a-reset",
            "reset",
            "reset",
        )
        assert r["t_upstream_sent"] == "" and r["http_status"] == ""
    r = by_tag["bt-0-4"]
    assert (r["provider"], r["fault_id"], r["outcome"], r["http_status"]) == (
        "B",
        "b-429",
        "http_error",
        "429",
    )
    for tag in ("bt-0-0", "bt-0-1", "bt-0-5"):
        r = by_tag[tag]
        assert (r["fault_id"], r["outcome"], r["http_status"], r["method"]) == (
            "",
            "ok",
            "200",
            "eth_blockNumber",
        )
        t = [int(r[k]) for k in ("t_request", "t_upstream_sent", "t_upstream_done", "t_response")]
        assert t == sorted(t), r
    assert by_tag["bt-0-0"]["provider"] == "B"

    events = read_csv(run_dir / "events" / "fault_events.P0.csv")
    seen = {(e["fault_id"], e["event"]): e for e in events}
    assert set(seen) == {("a-reset", "start"), ("a-reset", "end"), ("b-429", "start")}
    for (_fid, event), e in seen.items():
        planned = int(e["planned_start"] if event == "start" else e["planned_end"])
        # Never before its plan; how late is the scheduler's (a loose bound: a busy box
        # delays the proxy's loop).
        assert 0 <= int(e["t"]) - planned < 1_000_000_000, e
    assert int(seen[("a-reset", "start")]["planned_start"]) == t0 + 3_000_000_000

    life = [r["event"] for r in read_csv(run_dir / "events" / "lifecycle.P0.csv")]
    assert life == ["started", "ready", "stopped"]


def test_bad_fault_file_exits_2_with_one_line(tmp_path):
    faults = tmp_path / "faults.json"
    faults.write_text(
        json.dumps(
            [{"fault_id": "x", "provider": "A", "kind": "reset", "start_s": 0, "duration_s": -1}]
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "chaosproxy", "--proxy-id", "P0", "--run-dir",
         str(tmp_path / "run"), "--control-port", str(free_port()),
         "--listen", f"A={free_port()}=http://127.0.0.1:9", "--faults", str(faults)],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr == "chaosproxy: faults[0].duration_s must be > 0, got -1\n"


def test_upstream_down_is_recorded_as_conn_error(tmp_path):
    control_port, port_a, dead = free_port(), free_port(), free_port()
    run_dir = tmp_path / "run"
    proc = start_proxy(
        tmp_path,
        ["--proxy-id", "P1", "--run-dir", str(run_dir), "--control-port", str(control_port),
         "--listen", f"A={port_a}=http://127.0.0.1:{dead}"],
    )  # fmt: skip
    try:
        assert read_line(proc, READY_TIMEOUT_S).startswith("ready ")
        r = rpc(f"http://127.0.0.1:{port_a}/", "bt-1-1")
        assert r.status_code == 502  # mitmproxy answers a failed connect with 502
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 0
    finally:
        stop(proc)
    (row,) = read_csv(run_dir / "upstream" / "upstream.P1.csv")
    assert (row["tag"], row["outcome"], row["fault_id"], row["t_upstream_sent"]) == (
        "bt-1-1",
        "conn_error",
        "",
        "",
    )
