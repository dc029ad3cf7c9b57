"""The reference router's throughput and added latency against one mock provider, no chaos.

Method: one mock provider on loopback and the reference router in front of it (default
config: breaker, rate limits, head tracking, metrics and WebSocket all on; then the same
with every behaviour off). Two measurements per target, provider alone and router in
front of it:

1. latency: one closed-loop client (httpx, one keep-alive connection), N
   ``eth_blockNumber`` calls after 200 warm-up calls: p50 and p99; the difference
   between the router's and the provider's is what the router adds per request.
2. throughput: ``wrk`` (``/usr/bin/wrk``, one thread, C connections, D seconds, the
   same POST body from a Lua script): requests per second and wrk's latency p50/p99.
   The router and the provider share the machine's cores with wrk, so this is the rate
   the whole loop sustains, limited by whichever process saturates first.

Bounded: N calls per target (default 3000), D seconds of wrk per target (default 5);
every process stopped at the end.

    .venv/bin/python bench/router_throughput.py [N] [D] [C]
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from examples.reference_router import render_config
from scenarios.processes import ProcessGroup, free_ports, wait_until

BODY = '{"jsonrpc":"2.0","id":"bt-0-1","method":"eth_blockNumber","params":[]}'
WRK = "/usr/bin/wrk"
WRK_SCRIPT = f"""
wrk.method = "POST"
wrk.body = '{BODY}'
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  io.write(string.format("BENCH %d %d %d %d %d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), summary.errors.status
    + summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout))
end
"""
OFF = {
    "circuit_breaker": False,
    "rate_limit": False,
    "head_tracking": False,
    "metrics": False,
    "websocket": False,
}


def closed_loop(url: str, n: int) -> dict[str, float]:
    with httpx.Client(timeout=5.0) as client:
        headers = {"content-type": "application/json"}
        for _ in range(200):
            client.post(url, content=BODY, headers=headers)
        samples = []
        for _ in range(n):
            t = time.perf_counter()
            response = client.post(url, content=BODY, headers=headers)
            samples.append(time.perf_counter() - t)
            if response.status_code != 200:
                raise SystemExit(f"{url} answered {response.status_code}: {response.text[:200]}")
    samples.sort()
    return {
        "p50_ms": statistics.median(samples) * 1e3,
        "p99_ms": samples[int(0.99 * (len(samples) - 1))] * 1e3,
    }


def wrk(url: str, seconds: int, connections: int, script: Path) -> dict[str, float]:
    out = subprocess.run(
        [WRK, "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    ).stdout
    match = re.search(r"^BENCH (\d+) (\d+) (\d+) (\d+) (\d+)$", out, re.MULTILINE)
    if not match:
        raise SystemExit(f"wrk printed no summary:\n{out}")
    requests, duration_us, p50_us, p99_us, errors = map(int, match.groups())
    return {
        "rate": requests / (duration_us / 1e6),
        "wrk_p50_ms": p50_us / 1e3,
        "wrk_p99_ms": p99_us / 1e3,
        "errors": errors,
    }


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.TransportError:
        return False


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    seconds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    connections = int(sys.argv[3]) if len(sys.argv) > 3 else 16
    if not shutil.which(WRK):
        raise SystemExit(f"{WRK} not found (apt-get install wrk)")
    provider, router_on, router_off = free_ports(3)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="battle-bench-") as tmp:
        run = Path(tmp)
        script = run / "post.lua"
        script.write_text(WRK_SCRIPT)
        common = {
            "upstreams": [{"name": "A", "url": f"http://127.0.0.1:{provider}"}],
            "strategy": "priority",
            "failover": True,
            "request_timeout_s": 5.0,
            "attempt_timeout_s": 2.0,
            "max_attempts": 1,
        }
        (run / "on.toml").write_text(render_config(listen=f"127.0.0.1:{router_on}", **common))
        (run / "off.toml").write_text(
            render_config(listen=f"127.0.0.1:{router_off}", **common, **OFF)
        )
        group = ProcessGroup(run / "logs")
        try:
            group.start("provider", "provider", ["-m", "providers.mock", "--port", str(provider)])
            for name in ("on", "off"):
                group.start(
                    f"router-{name}",
                    "sut",
                    ["-m", "examples.reference_router", "--config", str(run / f"{name}.toml")],
                )
            for port in (provider, router_on, router_off):
                wait_until(
                    lambda p=port: _ok(f"http://127.0.0.1:{p}/health"),
                    timeout=30,
                    what=f"port {port}",
                )
            targets = {
                "provider": provider,
                "router (all on)": router_on,
                "router (all off)": router_off,
            }
            for name, port in targets.items():
                url = f"http://127.0.0.1:{port}/"
                results[name] = {**closed_loop(url, n), **wrk(url, seconds, connections, script)}
        finally:
            group.stop_all()
    print(
        f"router bench: one mock provider, no chaos; closed loop {n} calls on one connection;"
        f" wrk -t1 -c{connections} -d{seconds}s"
    )
    print(
        f"{'target':<20}{'p50 ms':>9}{'p99 ms':>9}{'wrk req/s':>11}{'wrk p50':>9}{'wrk p99':>9}"
        f"{'errors':>8}"
    )
    for name, r in results.items():
        print(
            f"{name:<20}{r['p50_ms']:>9.3f}{r['p99_ms']:>9.3f}{r['rate']:>11.0f}"
            f"{r['wrk_p50_ms']:>9.2f}{r['wrk_p99_ms']:>9.2f}{r['errors']:>8.0f}"
        )
    base = results["provider"]["p50_ms"]
    for name in ("router (all on)", "router (all off)"):
        print(f"added p50 by {name}: {results[name]['p50_ms'] - base:.3f} ms")


if __name__ == "__main__":
    main()
