"""Throughput and latency of one mock provider process, with anvil beside it.

Method:
1. Throughput: `wrk -t1 -c8 -d5s -s post.lua URL` (wrk from Debian, /usr/bin/wrk; the
   Lua script POSTs `{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}`
   on 8 keep-alive connections). On a machine with 2+ cores the server is pinned to
   CPU 1 and wrk to CPU 0 with `taskset`, so "one core" is literal. Each target gets a
   1 s warm-up, then ROUNDS runs; the best and the median are printed (the best is the
   least disturbed by other load on a shared machine). Targets: a bare asyncio server
   (one fixed response per read, no parsing: the floor of a Python server here), the
   mock on the standard asyncio loop, the mock on uvloop (its default when installed),
   anvil. The server's CPU time (/proc/PID/stat, all threads) per request is printed
   too: on a shared machine it is the steadier figure, and 1e6 / it is what one
   dedicated core sustains.
2. Latency at 1,000 req/s: an open-loop client (one keep-alive connection, blocking
   socket, requests due every 1 ms) sends 5,000 calls; latency is `t_done -
   t_intended` (coordinated-omission-correct), so it includes the client's own cost.
   p50/p99/max for the bare server (the machine's noise floor), the mock (default
   loop) and anvil.

Bounded: about 70 s in all; every process is stopped at the end.

    .venv/bin/python bench/providers_throughput.py [ROUNDS]
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from providers.anvil import anvil_argv, find_anvil
from scenarios.processes import free_ports, wait_until

BODY = b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'
LUA = """wrk.method = "POST"
wrk.body   = '{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'
wrk.headers["Content-Type"] = "application/json"
"""
# The floor: an asyncio server answering every read with one fixed response, no parsing.
BARE = """
import asyncio, sys
R = (b'HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\nContent-Length: 39\\r\\n\\r\\n'
     b'{"jsonrpc":"2.0","id":1,"result":"0x1"}')
class P(asyncio.Protocol):
    def connection_made(self, t): self.t = t
    def data_received(self, d): self.t.write(R)
async def main():
    await asyncio.get_running_loop().create_server(P, "127.0.0.1", int(sys.argv[1]))
    await asyncio.Event().wait()
asyncio.run(main())
"""
WRK_SECONDS = 5
PACED_RATE = 1000
PACED_CALLS = 5000


def _pin(cpu: int) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", str(cpu)]
    return []


def _answers(port: int) -> bool:
    try:
        status, _ = _call(socket.create_connection(("127.0.0.1", port), timeout=1))
        return status == 200
    except OSError:
        return False


def _call(sock: socket.socket) -> tuple[int, bytes]:
    req = (
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
    )
    sock.sendall(req)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise OSError("connection closed")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
    while len(body) < length:
        body += sock.recv(65536)
    return int(head.split(b" ", 2)[1]), body


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(wrk_bin: str, url: str, script: Path, seconds: int) -> tuple[float, int]:
    """(requests per second, requests completed)."""
    out = subprocess.run(
        [*_pin(0), wrk_bin, "-t1", "-c8", f"-d{seconds}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
    ).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    n = re.search(r"(\d+) requests in", out)
    if not m or not n or "Non-2xx" in out:
        raise RuntimeError(f"wrk failed against {url}:\n{out}")
    return float(m.group(1)), int(n.group(1))


def paced(port: int) -> dict[str, float]:
    """Open loop at PACED_RATE on one connection; latencies from the intended send time."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(200):
            _call(sock)
        lat = []
        start = time.perf_counter() + 0.01
        for i in range(PACED_CALLS):
            due = start + i / PACED_RATE
            while (now := time.perf_counter()) < due:
                if due - now > 0.0005:
                    time.sleep(due - now - 0.0003)
            status, _ = _call(sock)
            assert status == 200
            lat.append((time.perf_counter() - due) * 1000)
    lat.sort()
    return {
        "p50_ms": lat[len(lat) // 2],
        "p99_ms": lat[int(len(lat) * 0.99)],
        "max_ms": lat[-1],
    }


def start(argv: list[str], port: int, env: dict[str, str] | None = None) -> subprocess.Popen:
    proc = subprocess.Popen(
        [*_pin(1), *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        wait_until(lambda: _answers(port), timeout=20, what=" ".join(argv[:3]))
    except TimeoutError:
        proc.kill()
        raise
    return proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    wrk_bin = shutil.which("wrk")
    if wrk_bin is None:
        print("wrk not found: install Debian's wrk (apt-get install wrk)", file=sys.stderr)
        return 2
    try:
        import uvloop  # noqa: F401

        loops = ["asyncio", "uvloop"]
    except ImportError:
        loops = ["asyncio"]
    anvil = find_anvil()
    tmp = Path(tempfile.mkdtemp(prefix="battle-bench-"))
    script = tmp / "post.lua"
    script.write_text(LUA)
    genesis = time.time_ns() - 10**12
    targets: list[tuple[str, list[str], dict[str, str] | None]] = [("bare asyncio", [], None)]
    for loop in loops:
        targets.append((f"mock ({loop})", ["--loop", loop], None))
    if anvil is not None:
        targets.append(("anvil", [], {**os.environ, "HOME": str(tmp)}))
    print(
        f"wrk -t1 -c8 -d{WRK_SECONDS}s -s post.lua (eth_blockNumber), {rounds} rounds; "
        f"server pinned {'to CPU 1, wrk to CPU 0' if _pin(0) else '(no taskset: unpinned)'}; "
        f"load average now {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )
    results: dict[str, dict[str, float]] = {}
    try:
        for name, extra, env in targets:
            (port,) = free_ports(1)
            if name == "anvil":
                argv = anvil_argv(anvil, port, timestamp=genesis // 10**9)
            elif name == "bare asyncio":
                argv = [sys.executable, "-c", BARE, str(port)]
            else:
                argv = [sys.executable, "-m", "providers.mock", "--port", str(port),
                        "--genesis-ns", str(genesis), *extra]  # fmt: skip
            proc = start(argv, port, env)
            try:
                url = f"http://127.0.0.1:{port}/"
                wrk(wrk_bin, url, script, 1)
                cpu0 = cpu_seconds(proc.pid)
                done = [wrk(wrk_bin, url, script, WRK_SECONDS) for _ in range(rounds)]
                cpu_us = (cpu_seconds(proc.pid) - cpu0) * 1e6 / sum(n for _, n in done)
                runs = [r for r, _ in done]
                results[name] = {"best": max(runs), "median": statistics.median(runs)}
                each = ", ".join(f"{r:,.0f}" for r in runs)
                print(
                    f"  {name:<16} best {max(runs):>9,.0f} req/s   median "
                    f"{statistics.median(runs):>9,.0f}   runs {each}",
                    flush=True,
                )
                # CPU time per request barely depends on other load: 1e6 / it is the
                # rate one dedicated core sustains (an upper bound: syscall costs grow
                # when the peer is idle, and wrk may saturate first).
                print(
                    f"  {name:<16} server CPU {cpu_us:.1f} us/request -> "
                    f"{1e6 / cpu_us:,.0f} req/s on one dedicated core",
                    flush=True,
                )
                default_mock = "mock (uvloop)" if "uvloop" in loops else "mock (asyncio)"
                if name in (default_mock, "anvil", "bare asyncio"):
                    p = paced(port)
                    results[name].update(p)
                    print(
                        f"  {name:<16} at {PACED_RATE:,} req/s open loop, {PACED_CALLS:,} calls: "
                        f"p50 {p['p50_ms']:.2f} ms  p99 {p['p99_ms']:.2f} ms  "
                        f"max {p['max_ms']:.2f} ms",
                        flush=True,
                    )
            finally:
                stop(proc)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if anvil is None:
        print("  anvil            not installed (make installs it from npm)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
