"""Chaos proxy throughput and added latency, one process, against bare `mitmdump`.

Method, all in one run on loopback, same upstream and same clients for every target:

- upstream: one mock provider (`python -m providers.mock`);
- targets: the provider itself (the ceiling), bare `mitmdump --mode reverse:... --set
  connection_strategy=lazy` (all its default addons; its per-flow output goes to a log
  file), and our chaos proxy with three
  faults active on the listener that are matched on every exchange but never fire (a
  rate_limit whose bucket never empties, an http_error matching a method never sent, a
  0 ms latency with probability 0: so the matcher, the bucket and a seeded draw run per
  exchange) and every exchange recorded in the shards;
- throughput: `wrk -t1 -c8 -d<D>s --latency -s post.lua` POSTing an eth_blockNumber
  JSON-RPC body; bare and ours alternate `--rounds` times (default 2) and the better of
  each is reported;
- CPU per exchange: the proxy process's user + system CPU time (/proc/PID/stat) across
  each wrk run divided by the requests wrk completed; the lowest of the runs is
  reported. It is the steady figure on a shared machine: other load lowers req/s but
  barely changes the CPU one exchange costs;
  while wrk loads ours, a thread calls the control API's GET /counters every 100 ms
  (its p50 / max latency is "control API under full traffic");
- added p50 at 100 req/s: wrk2 is not available, so a paced client of our own (asyncio,
  4 keep-alive connections, send times fixed in advance, latency measured from the
  intended send time so a stall is not hidden) sends 100 req/s for <P> s to each target;
  added = target p50 - provider p50;
- saturation self-report: the proxy's `proxy_health` rows during its wrk runs (worst
  event-loop lag, CPU).

    .venv/bin/python bench/chaosproxy_throughput.py [--wrk-s 8] [--paced-s 8]

Bounded: every wrk run and paced run has a fixed duration; every process is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import re
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import httpx

from scenarios.processes import ProcessGroup, free_ports, wait_until

BODY = b'{"jsonrpc":"2.0","id":"bt-0-1","method":"eth_blockNumber","params":[]}'
LUA = (
    'wrk.method = "POST"\n'
    f"wrk.body = '{BODY.decode()}'\n"
    'wrk.headers["Content-Type"] = "application/json"\n'
)

MATCHED_NOT_FIRING = [
    {
        "fault_id": "rl",
        "provider": "A",
        "kind": "rate_limit",
        "start_s": 0,
        "duration_s": 3600,
        "params": {"rate_per_s": 1e9, "burst": 1e9},
    },
    {
        "fault_id": "never",
        "provider": "A",
        "kind": "http_error",
        "start_s": 0,
        "duration_s": 3600,
        "match": {"methods": ["eth_never"]},
    },
    {
        "fault_id": "lat0",
        "provider": "A",
        "kind": "latency",
        "start_s": 0,
        "duration_s": 3600,
        "params": {"ms": 0},
        "match": {"probability": 0.0, "seed": 1},
    },
]


def wrk(url: str, seconds: float, script: Path) -> dict:
    out = subprocess.run(
        ["wrk", "-t1", "-c8", f"-d{seconds:g}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    done = int(re.search(r"(\d+) requests in", out).group(1))
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[p50.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps,
        "requests": done,
        "p50_ms": float(p50.group(1)) * scale,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "errors": errors.group(1) if errors else "",
    }


async def _paced(ports: list[int], rate: float, seconds: float, conns: int = 4) -> list[float]:
    request = (
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
    )
    conns = max(conns, len(ports))
    pool = [await asyncio.open_connection("127.0.0.1", ports[i % len(ports)]) for i in range(conns)]
    locks = [asyncio.Lock() for _ in range(conns)]
    loop = asyncio.get_running_loop()
    lat: list[float] = []

    async def one(i: int, intended: float) -> None:
        reader, writer = pool[i % conns]
        async with locks[i % conns]:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
            await reader.readexactly(length)
        lat.append(loop.time() - intended)

    n = int(rate * seconds)
    start = loop.time() + 0.1
    tasks = []
    for i in range(n):
        intended = start + i / rate
        delay = intended - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, intended)))
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
    for _, w in pool:
        w.close()
    return lat


def paced(port: int | list[int], rate: float, seconds: float, conns: int = 4) -> dict:
    """Paced load at `rate` req/s spread over `conns` keep-alive connections (round robin
    over `port` when it is a list); latency percentiles from the intended send time."""
    ports = port if isinstance(port, list) else [port]
    lat = sorted(asyncio.run(_paced(ports, rate, seconds, conns)))
    return {"p50_ms": statistics.median(lat) * 1e3, "p99_ms": lat[int(0.99 * (len(lat) - 1))] * 1e3}


class ControlProbe(threading.Thread):
    """GET /counters every 100 ms while the proxy is under full load."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.stop = threading.Event()
        self.samples: list[tuple[int, float]] = []  # (t_ns, seconds)

    def run(self) -> None:
        with httpx.Client(timeout=5) as c:
            while not self.stop.wait(0.1):
                t = time.perf_counter()
                c.get(self.url).raise_for_status()
                self.samples.append((time.time_ns(), time.perf_counter() - t))


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def measured(pid: int, url: str, seconds: float, script: Path) -> dict:
    """A wrk run plus the target process's CPU µs per completed request."""
    before = cpu_s(pid)
    r = wrk(url, seconds, script)
    r["cpu_us"] = (cpu_s(pid) - before) / max(1, r["requests"]) * 1e6
    return r


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code in (200, 404, 405, 502)
    except httpx.TransportError:
        return False


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--wrk-s", type=float, default=8.0)
    ap.add_argument("--paced-s", type=float, default=8.0)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    provider, bare, ours, control = free_ports(4)
    with tempfile.TemporaryDirectory(prefix="battle-bench-") as tmp:
        run = Path(tmp)
        script = run / "post.lua"
        script.write_text(LUA)
        (run / "faults.json").write_text(json.dumps(MATCHED_NOT_FIRING))
        group = ProcessGroup(run / "logs")
        try:
            group.start("provider", "provider", ["-m", "providers.mock", "--port", str(provider)])
            bare_proc = group.start(
                "mitmdump",
                "proxy",
                [
                    "-c",
                    "from mitmproxy.tools.main import mitmdump; mitmdump()",
                    "--mode",
                    f"reverse:http://127.0.0.1:{provider}@127.0.0.1:{bare}",
                    "--set",
                    "connection_strategy=lazy",
                ],
            )
            ours_proc = group.start(
                "chaosproxy",
                "proxy",
                [
                    "-m",
                    "chaosproxy",
                    "--proxy-id",
                    "p0",
                    "--run-dir",
                    str(run),
                    "--control-port",
                    str(control),
                    "--faults",
                    str(run / "faults.json"),
                    f"--listen=A={ours}=http://127.0.0.1:{provider}",
                ],
            )
            for port in (provider, bare, ours, control):
                wait_until(
                    lambda p=port: _ok(f"http://127.0.0.1:{p}/health"),
                    timeout=30,
                    what=f"port {port}",
                )
            httpx.post(f"http://127.0.0.1:{control}/start", json={"t0_ns": time.time_ns()})
            url = "http://127.0.0.1:{}/"
            for port in (provider, bare, ours):  # warm up every path
                wrk(url.format(port), 1, script)
            results: dict[str, list[dict]] = {"provider": [], "mitmdump": [], "chaosproxy": []}
            windows = []
            results["provider"].append(wrk(url.format(provider), a.wrk_s, script))
            probe = ControlProbe(f"http://127.0.0.1:{control}/counters")
            probe.start()
            for _ in range(a.rounds):
                results["mitmdump"].append(
                    measured(bare_proc.pid, url.format(bare), a.wrk_s, script)
                )
                t_start = time.time_ns()
                results["chaosproxy"].append(
                    measured(ours_proc.pid, url.format(ours), a.wrk_s, script)
                )
                windows.append((t_start, time.time_ns()))
            probe.stop.set()
            probe.join()
            counters = httpx.get(f"http://127.0.0.1:{control}/counters").json()
            pacing = {
                name: paced(port, a.rate, a.paced_s)
                for name, port in (("provider", provider), ("mitmdump", bare), ("chaosproxy", ours))
            }
        finally:
            group.stop_all()
        health = []
        with open(run / "events" / "proxy_health.p0.csv") as f:
            for row in csv.DictReader(f):
                t = int(row["t"])
                if any(s + 1_500_000_000 <= t <= e for s, e in windows):
                    health.append(row)
        upstream_rows = sum(1 for _ in open(run / "upstream" / "upstream.p0.csv")) - 1

    best = {k: max(v, key=lambda r: r["rps"]) for k, v in results.items()}
    print(
        f"chaos proxy throughput: wrk -t1 -c8 -d{a.wrk_s:g}s POST eth_blockNumber, "
        f"mock provider upstream, one process each, best of {a.rounds} alternating runs"
    )
    print(f"{'target':<14}{'req/s':>10}{'wrk p50 ms':>12}  runs (req/s)")
    for name, r in best.items():
        runs = ", ".join(f"{x['rps']:.0f}" for x in results[name])
        bad = f"  non-2xx {r['non2xx']} {r['errors']}" if r["non2xx"] or r["errors"] else ""
        print(f"{name:<14}{r['rps']:>10.0f}{r['p50_ms']:>12.3f}  {runs}{bad}")
    ratio = best["chaosproxy"]["rps"] / best["mitmdump"]["rps"]
    print(
        f"ours / bare mitmdump: {ratio:.2f}x (goal >= 2x); faults matched, not firing; "
        f"{upstream_rows} exchanges recorded; counters {counters['applied']}"
    )
    cpu = {k: min(r["cpu_us"] for r in results[k]) for k in ("mitmdump", "chaosproxy")}
    print(
        f"proxy CPU per exchange (lowest run): mitmdump {cpu['mitmdump']:.0f} us, "
        f"chaosproxy {cpu['chaosproxy']:.0f} us -> {cpu['mitmdump'] / cpu['chaosproxy']:.2f}x"
    )
    print(
        f"paced client, {a.rate:g} req/s for {a.paced_s:g} s, 4 keep-alive connections, "
        "latency from intended send time:"
    )
    base = pacing["provider"]["p50_ms"]
    for name, r in pacing.items():
        added = "" if name == "provider" else f"  added p50 {r['p50_ms'] - base:.3f} ms"
        print(f"  {name:<12} p50 {r['p50_ms']:.3f} ms  p99 {r['p99_ms']:.3f} ms{added}")
    lat = sorted(x for t, x in probe.samples if any(s <= t <= e for s, e in windows))
    if lat:
        print(
            f"control API GET /counters under full wrk load: n={len(lat)} "
            f"p50 {statistics.median(lat) * 1e3:.1f} ms  max {lat[-1] * 1e3:.1f} ms"
        )
    if health:
        lags = [int(r["loop_lag_ns"]) / 1e6 for r in health]
        cpus = [float(r["cpu"]) for r in health]
        print(
            "proxy_health during wrk (saturated): loop lag max/s median "
            f"{statistics.median(lags):.1f} ms"
            f" (max {max(lags):.1f}), cpu median {statistics.median(cpus):.2f}, "
            f"in_flight max {max(int(r['in_flight']) for r in health)}"
        )


if __name__ == "__main__":
    main()
