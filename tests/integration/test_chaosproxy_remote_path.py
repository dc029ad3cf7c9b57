"""A remote-style upstream with its key in the path (``/v3/KEY``): the listener forwards
HTTP calls and WebSocket handshakes to the upstream's paths, and the key appears in no
file the proxy writes. The upstream is local (http and ws on 127.0.0.1)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from shard_poll import wait_for_rows
from websockets.sync.client import connect as ws_connect
from websockets.sync.server import serve as ws_serve

from scenarios.processes import free_ports

ROOT = Path(__file__).resolve().parents[2]
KEY = "a1b2c3d4e5f60718293a4b5c6d7e8f90"


class _Keyed(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    paths: list[str] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        _Keyed.paths.append(self.path)
        ok = self.path == f"/v3/{KEY}"
        out = (
            json.dumps({"jsonrpc": "2.0", "id": json.loads(body)["id"], "result": "0x1"})
            if ok
            else "unknown project"
        ).encode()
        self.send_response(200 if ok else 401)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args: object) -> None:
        pass


def _ws(conn) -> None:
    if conn.request.path != f"/ws/v3/{KEY}":
        conn.close(4001, "wrong path")
        return
    for msg in conn:
        req = json.loads(msg)
        conn.send(json.dumps({"jsonrpc": "2.0", "id": req["id"], "result": "0x2"}))


def test_listener_forwards_to_the_upstream_paths_and_never_writes_the_key(tmp_path):
    http_server = ThreadingHTTPServer(("127.0.0.1", 0), _Keyed)
    threading.Thread(target=http_server.serve_forever, daemon=True).start()
    ws_server = ws_serve(_ws, "127.0.0.1", 0)
    threading.Thread(target=ws_server.serve_forever, daemon=True).start()
    http_port = http_server.server_address[1]
    ws_port = ws_server.socket.getsockname()[1]
    a, w, control = free_ports(3)
    run = tmp_path / "run"
    args = [sys.executable, "-m", "chaosproxy", "--proxy-id", "P0", "--run-dir", str(run)]
    args += ["--control-port", str(control), "--start-now"]
    args += ["--listen", f"A={a}=http://127.0.0.1:{http_port}/v3/{KEY}"]
    args += ["--listen", f"W={w}=http://127.0.0.1:{ws_port}/v3/{KEY}"]
    args += ["--listen-ws", f"W=ws://127.0.0.1:{ws_port}/ws/v3/{KEY}"]
    stderr = tmp_path / "proxy.stderr"
    with open(stderr, "w") as log:
        proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        assert proc.stdout.readline().startswith("ready"), stderr.read_text()
        r = httpx.post(f"http://127.0.0.1:{a}/", json={"id": 1, "method": "eth_chainId"})
        assert r.status_code == 200 and r.json()["result"] == "0x1"
        assert _Keyed.paths == [f"/v3/{KEY}"]
        with ws_connect(f"ws://127.0.0.1:{w}/", open_timeout=5) as ws:
            ws.send(json.dumps({"jsonrpc": "2.0", "id": 3, "method": "eth_blockNumber"}))
            assert json.loads(ws.recv(timeout=5))["result"] == "0x2"
        # Recorded while running (not only in the flush at exit), polled with a deadline.
        calls = wait_for_rows(
            run / "upstream" / "upstream.P0.csv",
            lambda r: r["method"] in ("eth_chainId", "eth_blockNumber"),
            count=2,
        )
        assert {r["method"] for r in calls} == {"eth_chainId", "eth_blockNumber"}
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
    written = [p for p in run.rglob("*") if p.is_file()] + [stderr]
    assert len(written) >= 5
    for path in written:
        assert KEY not in path.read_text(errors="replace"), path
    started = (run / "events" / "lifecycle.P0.csv").read_text()
    assert f"http://127.0.0.1:{http_port}/***" in started
    upstream = (run / "upstream" / "upstream.P0.csv").read_text()
    assert "eth_chainId" in upstream and "eth_blockNumber" in upstream
