"""python -m providers.mock as a real process on loopback."""

import json
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

READY_TIMEOUT_S = 15
GENESIS_NS = 1_700_000_000_000_000_000


def read_line(proc: subprocess.Popen[bytes], timeout_s: float) -> str:
    """One stdout line, or fail after ``timeout_s`` (a hung child must not hang the test)."""
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout_s
    buf = b""
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not sel.select(left):
            pytest.fail(f"no ready line within {timeout_s}s (got {buf!r})")
        chunk = proc.stdout.read1(4096)  # type: ignore[attr-defined]
        if not chunk:
            pytest.fail(f"process exited before its ready line (got {buf!r})")
        buf += chunk
    return buf.decode().strip()


def start(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "providers.mock", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


@pytest.fixture
def provider() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    proc = start("--name", "A", "--port", "0", "--seed", "5", "--genesis-ns", str(GENESIS_NS))
    try:
        line = read_line(proc, READY_TIMEOUT_S)
        assert line.startswith("ready http://127.0.0.1:"), line
        url = line.split(" ", 1)[1]
        assert int(url.rsplit(":", 1)[1]) > 0
        yield proc, url
    finally:
        stop(proc)


def rpc(client: httpx.Client, url: str, method: str, params: list | None = None, rid=1):
    r = client.post(
        url + "/", json={"jsonrpc": "2.0", "id": rid, "method": method, "params": params or []}
    )
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    return r.json()


def test_the_mock_provider_answers_jsonrpc_over_http_and_stops_cleanly(provider):
    proc, url = provider
    with httpx.Client(timeout=5) as client:
        assert client.get(url + "/health").json()["name"] == "A"

        head = int(rpc(client, url, "eth_blockNumber")["result"], 16)
        expected = (time.time_ns() - GENESIS_NS) // 10**9
        assert abs(head - expected) <= 2

        assert rpc(client, url, "eth_chainId", rid="bt-0-1") == {
            "jsonrpc": "2.0",
            "id": "bt-0-1",
            "result": "0x7a69",
        }
        block = rpc(client, url, "eth_getBlockByNumber", ["0x5", False])["result"]
        parent = rpc(client, url, "eth_getBlockByNumber", ["0x4", False])["result"]
        assert block["parentHash"] == parent["hash"]
        bal = rpc(client, url, "eth_getBalance", ["0x" + "11" * 20, "0x5"])["result"]
        assert bal.startswith("0x")
        assert rpc(client, url, "eth_nope")["error"]["code"] == -32601

        batch = client.post(
            url,
            content=json.dumps(
                [{"jsonrpc": "2.0", "id": i, "method": "eth_chainId"} for i in range(3)]
            ),
        )
        assert [m["id"] for m in batch.json()] == [0, 1, 2]

        # many requests on one keep-alive connection
        for i in range(200):
            assert rpc(client, url, "net_version", rid=i)["id"] == i

        bad = client.post(url, content=b"{", headers={"content-type": "application/json"})
        assert bad.json()["error"]["code"] == -32700

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0


def test_two_providers_with_the_same_seed_serve_the_same_chain():
    procs = [
        start("--name", n, "--port", "0", "--seed", "9", "--genesis-ns", str(GENESIS_NS))
        for n in ("A", "B")
    ]
    try:
        urls = [read_line(p, READY_TIMEOUT_S).split(" ", 1)[1] for p in procs]
        calls = [
            ("eth_getBlockByNumber", ["0x10", True]),
            ("eth_getLogs", [{"fromBlock": "0x1", "toBlock": "0x40"}]),
            ("eth_getBalance", ["0x" + "ab" * 20, "0x20"]),
        ]
        with httpx.Client(timeout=5) as client:
            answers = [[rpc(client, u, m, params)["result"] for m, params in calls] for u in urls]
        assert answers[0] == answers[1]
        assert answers[0][0]["transactions"] and answers[0][1]  # not trivially equal
    finally:
        for p in procs:
            stop(p)


def test_sigint_also_exits_0():
    proc = start("--port", "0")
    try:
        read_line(proc, READY_TIMEOUT_S)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        stop(proc)


def test_bad_arguments_exit_2_with_one_stderr_line():
    proc = start("--port", "-3")
    try:
        _, err = proc.communicate(timeout=15)
        assert proc.returncode == 2
        assert err.decode().count("\n") == 1 and "--port" in err.decode()
    finally:
        stop(proc)


def test_a_port_in_use_exits_1_with_one_stderr_line(provider):
    _, url = provider
    port = url.rsplit(":", 1)[1]
    proc = start("--port", port)
    try:
        _, err = proc.communicate(timeout=15)
        assert proc.returncode == 1
        assert f"cannot listen on 127.0.0.1:{port}" in err.decode()
    finally:
        stop(proc)
