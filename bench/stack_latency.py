"""What each hop of the demo stack adds to latency, measured on loopback.

Method: one mock provider, one chaos-proxy listener in front of it (a fault scheduled
on another provider, so faults are matched but never fire, and every exchange is
recorded), and the reference router in front of the proxy. One closed-loop client
(httpx, one keep-alive connection) sends N `eth_blockNumber` calls to each of
(1) the provider, (2) the proxy, (3) the router, after 200 warm-up calls, and prints
the p50, p99 and rate of each; the differences are what each hop adds. Bounded: N
calls per target (default 3000), every process stopped at the end.

    .venv/bin/python bench/stack_latency.py [N]
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from examples.reference_router import render_config
from scenarios.processes import ProcessGroup, free_ports, wait_until

BODY = b'{"jsonrpc":"2.0","id":"bt-0-1","method":"eth_blockNumber","params":[]}'


def measure(url: str, n: int) -> dict:
    with httpx.Client(timeout=5.0) as client:
        for _ in range(200):
            client.post(url, content=BODY, headers={"content-type": "application/json"})
        samples = []
        start = time.perf_counter()
        for i in range(n):
            t = time.perf_counter()
            r = client.post(
                url,
                content=BODY,
                headers={"content-type": "application/json", "x-battle-tag": f"bt-0-{i}"},
            )
            samples.append(time.perf_counter() - t)
            if r.status_code != 200:
                raise SystemExit(f"{url} answered {r.status_code}: {r.text[:200]}")
        elapsed = time.perf_counter() - start
    samples.sort()
    return {
        "p50_ms": statistics.median(samples) * 1e3,
        "p99_ms": samples[int(0.99 * (len(samples) - 1))] * 1e3,
        "rate": n / elapsed,
    }


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    provider, listen, idle_listen, control, router = free_ports(5)
    with tempfile.TemporaryDirectory(prefix="battle-bench-") as tmp:
        run = Path(tmp)
        faults = [
            {
                "fault_id": "never",
                "provider": "Z",
                "kind": "reset",
                "start_s": 0,
                "duration_s": 3600,
                "params": {},
            }
        ]
        (run / "faults.json").write_text(json.dumps(faults))
        (run / "router.toml").write_text(
            render_config(
                listen=f"127.0.0.1:{router}",
                upstreams=[{"name": "A", "url": f"http://127.0.0.1:{listen}"}],
                strategy="priority",
                failover=True,
                request_timeout_s=5.0,
                attempt_timeout_s=2.0,
                max_attempts=1,
            )
        )
        group = ProcessGroup(run / "logs")
        try:
            group.start("provider", "provider", ["-m", "providers.mock", "--port", str(provider)])
            group.start(
                "proxy",
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
                    f"--listen=A={listen}=http://127.0.0.1:{provider}",
                    f"--listen=Z={idle_listen}=http://127.0.0.1:{provider}",
                ],
            )
            group.start(
                "router",
                "sut",
                ["-m", "examples.reference_router", "--config", str(run / "router.toml")],
            )
            for port, path in ((provider, "/health"), (control, "/health"), (router, "/health")):
                wait_until(
                    lambda p=port, q=path: _ok(f"http://127.0.0.1:{p}{q}"),
                    timeout=30,
                    what=f"port {port}",
                )
            httpx.post(f"http://127.0.0.1:{control}/start", json={"t0_ns": time.time_ns()})
            results = {
                "provider": measure(f"http://127.0.0.1:{provider}/", n),
                "proxy -> provider": measure(f"http://127.0.0.1:{listen}/", n),
                "router -> proxy -> provider": measure(f"http://127.0.0.1:{router}/", n),
            }
        finally:
            group.stop_all()
    print(f"stack latency, {n} closed-loop eth_blockNumber calls per target, one connection")
    print(f"{'target':<30}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>9}")
    for name, r in results.items():
        print(f"{name:<30}{r['p50_ms']:>9.3f}{r['p99_ms']:>9.3f}{r['rate']:>9.0f}")
    base = results["provider"]["p50_ms"]
    proxy = results["proxy -> provider"]["p50_ms"]
    print(
        f"added p50: chaos proxy {proxy - base:.3f} ms, "
        f"router {results['router -> proxy -> provider']['p50_ms'] - proxy:.3f} ms"
    )


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.TransportError:
        return False


if __name__ == "__main__":
    main()
