"""Native behaviours through a real provider process: latency held per response with
pipelined order kept, HTTP 429 with Retry-After, head lag, over loopback."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from providers.behaviour import BehaviourState, parse_behaviour

pytestmark = pytest.mark.timeout(60)
LATENCY = '{"seed": 2, "latency": {"dist": "uniform", "low_ms": 20, "high_ms": 120}}'


def call_bytes(rid: int, method: str = "eth_blockNumber") -> bytes:
    body = json.dumps({"jsonrpc": "2.0", "id": rid, "method": method}).encode()
    return (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )


def read_responses(sock: socket.socket, n: int) -> list[tuple[int, dict, bytes]]:
    buf = b""
    out = []
    while len(out) < n:
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            assert chunk, "connection closed early"
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        while len(rest) < length:
            rest += sock.recv(65536)
        out.append((int(head.split(b" ")[1]), json.loads(rest[:length]), head))
        buf = rest[length:]
    return out


@pytest.fixture
def provider(request) -> Iterator[int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "providers.mock", "--port", "0", "--behaviour", request.param],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.startswith("ready "), line
        yield int(line.strip().rsplit(":", 1)[1])
    finally:
        proc.kill()
        proc.wait(10)


@pytest.mark.parametrize(
    "provider",
    [LATENCY],
    indirect=True,
)
def test_pipelined_responses_keep_their_order_and_each_waits_its_latency(provider):
    with socket.create_connection(("127.0.0.1", provider), timeout=10) as sock:
        t0 = time.monotonic()
        sock.sendall(b"".join(call_bytes(i) for i in range(5)))
        got = read_responses(sock, 5)
        elapsed = time.monotonic() - t0
    assert [body["id"] for _, body, _ in got] == [0, 1, 2, 3, 4]
    # The seeded draws are known; a response waits for its own draw and for the one
    # before it, so the last arrives after the largest draw.
    state = BehaviourState(parse_behaviour(json.loads(LATENCY)))
    slowest = max(state.delay_ns() for _ in range(5)) / 1e9
    assert slowest <= elapsed < slowest + 1.0


@pytest.mark.parametrize(
    "provider", ['{"rate_limit": {"rps": 1, "burst": 2, "retry_after_s": 7}}'], indirect=True
)
def test_over_the_rate_limit_the_process_answers_429_with_retry_after(provider):
    with socket.create_connection(("127.0.0.1", provider), timeout=10) as sock:
        sock.sendall(b"".join(call_bytes(i) for i in range(3)))
        got = read_responses(sock, 3)
    assert [status for status, _, _ in got] == [200, 200, 429]
    assert b"Retry-After: 7" in got[2][2]
    assert got[2][1]["error"]["code"] == -32005 and got[2][1]["id"] == 2
