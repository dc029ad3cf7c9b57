"""Shared by the nginx and HAProxy example tests (tests/integration/test_examples_*.py).

A fleet of mock providers behind one chaos proxy (faults switched on and off through
its control API), a SUT template rendered as the scenario runner renders it (jinja2,
StrictUndefined, the same variables), the SUT started from an argv with `{config}`,
`{port}` and `{run_dir}` placeholders and stopped with SIGTERM, and the client calls
the tests judge with.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jinja2
import pytest
import trio
import trio_websocket

from scenarios.processes import ProcessGroup, dying_with_parent, free_ports, wait_until

ROOT = Path(__file__).resolve().parents[2]
REQUIRE = os.environ.get("BATTLE_REQUIRE_SUTS") == "1"
BLOCK_MS = 200
# Debian installs both binaries in /usr/sbin, which is not on an unprivileged PATH.
_SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


def require_binary(name: str, package: str) -> str:
    """The binary's path; skips the test when it is absent, fails it under
    BATTLE_REQUIRE_SUTS=1 (CI installs the packages)."""
    path = shutil.which(name, path=_SEARCH_PATH)
    if path is None:
        reason = f"{name} not installed (apt-get install --no-install-recommends {package})"
        if REQUIRE:
            pytest.fail(f"{reason}, and BATTLE_REQUIRE_SUTS=1 requires it")
        pytest.skip(f"{reason}; BATTLE_REQUIRE_SUTS=1 turns this into a failure")
    return path


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.TransportError:
        return False


# ---------------------------------------------------------------------------------------
# The fleet: mock providers, one chaos proxy with a listener per provider
# ---------------------------------------------------------------------------------------


@dataclass
class Fleet:
    run_dir: Path
    group: ProcessGroup
    control: str
    upstreams: list[dict[str, Any]]

    def fault(self, provider: str, kind: str, params: Mapping[str, Any] | None = None) -> str:
        """Starts a fault on `provider` now, for a minute (`clear` ends it); its id."""
        fault_id = f"{kind}-{uuid.uuid4().hex[:8]}"
        fault = {
            "fault_id": fault_id,
            "provider": provider,
            "kind": kind,
            "duration_s": 60,
            "params": dict(params or {}),
        }
        response = httpx.post(f"{self.control}/faults", json=fault, timeout=5)
        assert response.status_code == 200, response.text
        return fault_id

    def clear(self) -> None:
        response = httpx.post(f"{self.control}/clear", json={}, timeout=5)
        assert response.status_code == 200, response.text

    def applied(self, fault_id: str) -> int:
        """Exchanges the fault acted on, by the proxy's own count."""
        counters = httpx.get(f"{self.control}/counters", timeout=5).json()
        return sum(n for fid, n in counters["applied"].items() if fid.startswith(fault_id))

    def upstream_rows(self) -> list[dict[str, str]]:
        """The exchanges the chaos proxy has recorded so far (whole lines only)."""
        path = self.run_dir / "upstream" / "upstream.p0.csv"
        if not path.exists():
            return []
        lines = path.read_text().splitlines(keepends=True)
        whole = [line for line in lines if line.endswith("\n")]
        return list(csv.DictReader(whole))


class ChildDied(RuntimeError):
    """A fleet process exited while starting (a port taken meanwhile, say)."""


def start_fleet(run_dir: Path, names: Sequence[str] = ("A", "B", "C")) -> Fleet:
    """Mock providers on one chain (BLOCK_MS blocks), each behind a chaos-proxy
    listener; the fault timeline started. Stop with `fleet.group.stop_all()`.

    Other tests on the machine pick free ports too, so one may be taken between
    `free_ports` and the bind: a fleet whose process died starting is tried once more.
    """
    try:
        return _start_fleet(run_dir, names)
    except ChildDied:
        return _start_fleet(run_dir, names)


def _start_fleet(run_dir: Path, names: Sequence[str]) -> Fleet:
    run_dir.mkdir(parents=True, exist_ok=True)
    genesis_ns = time.time_ns() - 10 * BLOCK_MS * 1_000_000
    ports = free_ports(2 * len(names) + 1)
    providers, listeners, control = ports[: len(names)], ports[len(names) : -1], ports[-1]
    group = ProcessGroup(run_dir / "logs")
    try:
        for name, port in zip(names, providers, strict=True):
            group.start(
                f"provider-{name}",
                "provider",
                [
                    *("-m", "providers.mock", "--name", name, "--port", str(port)),
                    *("--seed", "7", "--genesis-ns", str(genesis_ns)),
                    *("--block-time-ms", str(BLOCK_MS)),
                ],
            )
        listen = [
            f"--listen={name}={lp}=http://127.0.0.1:{pp}"
            for name, lp, pp in zip(names, listeners, providers, strict=True)
        ]
        group.start(
            "proxy",
            "proxy",
            [
                *("-m", "chaosproxy", "--proxy-id", "p0", "--run-dir", str(run_dir)),
                *("--control-port", str(control), *listen),
            ],
        )
        for port in (*providers, control):
            wait_until(
                lambda p=port: bool(group.dead()) or _ok(f"http://127.0.0.1:{p}/health"),
                timeout=30,
                what=f"port {port}",
            )
            if dead := group.dead():
                raise ChildDied(f"{dead[0].name} exited starting: {dead[0].log_tail()}")
        control_url = f"http://127.0.0.1:{control}"
        response = httpx.post(f"{control_url}/start", json={"t0_ns": time.time_ns()}, timeout=5)
        assert response.status_code == 200, response.text
    except BaseException:
        group.stop_all()
        raise
    upstreams = [
        {
            "name": name,
            "url": f"http://127.0.0.1:{port}",
            "ws_url": f"ws://127.0.0.1:{port}",
            "host": "127.0.0.1",
            "port": port,
        }
        for name, port in zip(names, listeners, strict=True)
    ]
    return Fleet(run_dir, group, control_url, upstreams)


def fleet_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    fleet = start_fleet(tmp_path_factory.mktemp("fleet"))
    try:
        yield fleet
    finally:
        fleet.group.stop_all()


class _Recorder(BaseHTTPRequestHandler):
    """Answers every JSON-RPC POST with a result and records the path it came to."""

    protocol_version = "HTTP/1.1"
    server: RecordingUpstream

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        self.server.paths.append(self.path)
        out = json.dumps({"jsonrpc": "2.0", "id": body.get("id"), "result": "0x1"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the test reads `paths`, not a log


class RecordingUpstream(ThreadingHTTPServer):
    """A plain upstream on 127.0.0.1 that records each request's path (and query)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Recorder)
        self.paths: list[str] = []
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()

    def upstream(self, name: str, path: str) -> dict[str, Any]:
        """The template's `upstreams` entry for this server at `path`."""
        return self.entry(name, self.server_address[1], path)

    @staticmethod
    def entry(name: str, port: int, path: str) -> dict[str, Any]:
        """An `upstreams` entry as the runner builds it: `name` at 127.0.0.1:`port`."""
        return {
            "name": name,
            "url": f"http://127.0.0.1:{port}{path}",
            "ws_url": f"ws://127.0.0.1:{port}{path}",
            "host": "127.0.0.1",
            "port": port,
        }

    def close(self) -> None:
        self.shutdown()
        self.server_close()


# ---------------------------------------------------------------------------------------
# The system under test
# ---------------------------------------------------------------------------------------


def render(
    template: Path, *, port: int, upstreams: list[dict[str, Any]], run_dir: Path, **options: Any
) -> str:
    """The template rendered with exactly the variables the scenario runner passes."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return env.from_string(template.read_text()).render(
        listen=f"127.0.0.1:{port}",
        listen_host="127.0.0.1",
        listen_port=port,
        upstreams=upstreams,
        run_dir=str(run_dir),
        **options,
    )


@dataclass
class Sut:
    popen: subprocess.Popen
    port: int
    run_dir: Path
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, *, grace: float = 5.0) -> int:
        """SIGTERM, then SIGKILL after `grace` s, as the runner stops it."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode

    def tree(self) -> set[int]:
        """The SUT's process and all its descendants."""
        return {self.popen.pid, *descendants(self.popen.pid)}


def start_sut(
    command: Sequence[str],
    template: Path,
    upstreams: list[dict[str, Any]],
    run_dir: Path,
    *,
    user: int | None = None,
    **options: Any,
) -> Sut:
    """Renders `template` into run_dir, starts `command` with its placeholders filled
    (as `user`, when given), and waits until `/health` answers 200. A port taken
    between `free_ports` and the bind (other tests pick ports too) gets one retry."""
    run_dir.mkdir(parents=True, exist_ok=True)
    launch = (command, template, upstreams, run_dir, user, options)
    sut = _launch(*launch, last=False) or _launch(*launch, last=True)
    assert sut is not None  # the last attempt raises instead
    return sut


def _launch(
    command: Sequence[str],
    template: Path,
    upstreams: list[dict[str, Any]],
    run_dir: Path,
    user: int | None,
    options: Mapping[str, Any],
    *,
    last: bool,
) -> Sut | None:
    """The started SUT; None when its port was taken (unless `last`)."""
    (port,) = free_ports(1)
    config = run_dir / template.name.removesuffix(".j2")
    config.write_text(render(template, port=port, upstreams=upstreams, run_dir=run_dir, **options))
    argv = [a.format(config=config, port=port, run_dir=run_dir) for a in command]
    log = run_dir / "sut.log"
    if user is None:
        launch, cwd = dying_with_parent(argv), None
    else:
        # Another user may not enter this process's directory (a clone in a 0700
        # directory: HAProxy then fails to chdir back to it after reading its config),
        # nor read a file written under umask 077: it starts in "/" with its config
        # readable. setpriv, not this venv's Python (maybe under a 0700 /root), sets
        # the death signal after Popen's switch of user, which would clear it.
        config.chmod(0o644)
        launch, cwd = ["setpriv", "--pdeathsig", "TERM", "--", *argv], "/"
    with open(log, "ab") as out:
        popen = subprocess.Popen(
            launch,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            user=user,
            group=user,
            extra_groups=[] if user is not None else None,
        )
    sut = Sut(popen, port, run_dir, log)
    try:
        wait_until(
            lambda: popen.poll() is not None or _ok(f"{sut.url}/health"),
            timeout=15,
            what=f"{argv[0]} /health",
        )
    except BaseException:
        sut.stop()
        raise
    if popen.poll() is None:
        return sut
    output = log.read_text()
    if not last and "in use" in output:
        return None
    raise AssertionError(f"{argv[0]} exited {popen.returncode}: {output}")


def descendants(pid: int) -> set[int]:
    """Every live process below `pid`, from /proc (parent links)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name in parentheses may contain spaces: fields follow its ')'.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# ---------------------------------------------------------------------------------------
# Clients
# ---------------------------------------------------------------------------------------

_ids = itertools.count(1)


def rpc(client: httpx.Client, url: str, *, tag: str | None = None) -> tuple[int, dict]:
    """One eth_blockNumber call with an integer id: (HTTP status, decoded body or {})."""
    headers = {"X-Battle-Tag": tag} if tag else {}
    body = {"jsonrpc": "2.0", "id": next(_ids), "method": "eth_blockNumber", "params": []}
    try:
        response = client.post(url, json=body, headers=headers)
    except httpx.TransportError:
        return 0, {}
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, {}


def big_call_statuses(url: str, *, calldata_bytes: int, calls: int) -> list[int]:
    """HTTP statuses of `calls` sequential eth_call requests, each carrying
    `calldata_bytes` of calldata (a body of about twice that)."""
    data = "0x" + "ab" * calldata_bytes
    call = {"to": "0x" + "11" * 20, "data": data}
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_call", "params": [call, "latest"]}
    with httpx.Client(timeout=10) as client:
        return [client.post(url, json=body).status_code for _ in range(calls)]


def successes(url: str, calls: int) -> int:
    """How many of `calls` sequential JSON-RPC calls answered 200 with a result."""
    ok = 0
    with httpx.Client(timeout=10) as client:
        for _ in range(calls):
            status, body = rpc(client, url)
            ok += status == 200 and isinstance(body.get("result"), str)
    return ok


def wait_for_tag(fleet: Fleet, tag: str, *, timeout: float = 5.0) -> list[dict[str, str]]:
    """The proxy's recorded exchanges carrying `tag` (its shards flush within 1 s)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = [r for r in fleet.upstream_rows() if r["tag"] == tag]
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def open_websocket(port: int) -> socket.socket:
    """A raw socket on which the SUT has answered a WebSocket upgrade with 101."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, f"connection closed during the upgrade: {head!r}"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def closed_by_peer(sock: socket.socket, *, timeout: float = 2.0) -> bool:
    """True when the other side closes `sock` (EOF or reset) within `timeout`; whatever
    it sends before (a close frame) is read and dropped."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


async def ws_heads(url: str, count: int) -> list[dict[str, Any]]:
    """Subscribes to newHeads over `url`; the first `count` heads (fewer on timeout)."""
    heads: list[dict[str, Any]] = []
    request = {"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]}
    with trio.move_on_after(count * BLOCK_MS / 1000 + 8):
        async with trio_websocket.open_websocket_url(url) as ws:
            await ws.send_message(json.dumps(request))
            reply = json.loads(await ws.get_message())
            assert isinstance(reply.get("result"), str), reply
            while len(heads) < count:
                message = json.loads(await ws.get_message())
                heads.append(message["params"]["result"])
    return heads
