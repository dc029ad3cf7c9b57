"""Chaos proxy capacity: the paced rate a fleet of N proxy processes carries before it
distorts latency, and what its `proxy_health` self-report says at each step.

Method: one mock provider; a fleet of N chaos proxy processes (N = 1 and 2 by default),
each with one listener in front of the provider, faults matched on every exchange but
not firing, recording on. A paced client of our own (asyncio, 16 keep-alive
connections spread over the fleet, send times fixed in advance, latency from the
intended send time; wrk2 is not available) steps through a rate ladder, <S> s per step,
first against the provider alone (the baseline at that rate), then against the fleet.
Per step it prints the added p50 and p99 and the fleet's worst `proxy_health` second
(event-loop lag, CPU). "Carries" = added p50 under 2 ms and no second with a loop lag of
100 ms or more (the saturation rule analysis applies); p99 is printed too, but on a
shared machine it mostly measures the other tenants.

    .venv/bin/python bench/chaosproxy_capacity.py [--step-s 4] [--rates 100,300,...] [--fleets 1,2]

Bounded: len(rates) x (1 + len(fleets)) steps of <S> s; every process is stopped.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chaosproxy_throughput import MATCHED_NOT_FIRING, _ok, paced

from scenarios.processes import ProcessGroup, free_ports, wait_until

CARRIES_P50_MS = 2.0
SATURATED_LAG_MS = 100.0


def health_between(run: Path, n: int, t0: int, t1: int) -> tuple[float, float]:
    """The worst loop lag (ms) and the highest CPU of any proxy in [t0, t1]."""
    lag, cpu = 0.0, 0.0
    for i in range(n):
        path = run / "events" / f"proxy_health.p{i}.csv"
        if not path.exists():
            continue
        with open(path) as f:
            for row in csv.DictReader(f):
                if t0 + 1_000_000_000 <= int(row["t"]) <= t1:
                    lag = max(lag, int(row["loop_lag_ns"]) / 1e6)
                    cpu = max(cpu, float(row["cpu"]))
    return lag, cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--step-s", type=float, default=4.0)
    ap.add_argument("--rates", default="100,300,600,900,1200,1500")
    ap.add_argument("--fleets", default="1,2")
    a = ap.parse_args()
    rates = [float(x) for x in a.rates.split(",")]
    fleets = [int(x) for x in a.fleets.split(",")]
    with tempfile.TemporaryDirectory(prefix="battle-bench-") as tmp:
        run = Path(tmp)
        (run / "faults.json").write_text(json.dumps(MATCHED_NOT_FIRING))
        group = ProcessGroup(run / "logs")
        try:
            (provider,) = free_ports(1)
            group.start("provider", "provider", ["-m", "providers.mock", "--port", str(provider)])
            wait_until(
                lambda: _ok(f"http://127.0.0.1:{provider}/health"), timeout=30, what="provider"
            )
            base = {r: paced(provider, r, a.step_s, conns=16) for r in rates}
            print(
                f"capacity: paced client, 16 connections, {a.step_s:g} s per step; "
                f"'carries' = added p50 < {CARRIES_P50_MS:g} ms, loop lag < {SATURATED_LAG_MS:g} ms"
            )
            print(
                f"{'fleet':>5}{'req/s':>8}{'added p50':>11}{'added p99':>11}"
                f"{'worst lag':>11}{'max cpu':>9}  carries"
            )
            for n in fleets:
                ports = free_ports(2 * n)
                listen, control = ports[:n], ports[n:]
                children = []
                for i in range(n):
                    children.append(
                        group.start(
                            f"proxy{i}",
                            "proxy",
                            [
                                "-m",
                                "chaosproxy",
                                "--proxy-id",
                                f"p{i}",
                                "--run-dir",
                                str(run),
                                "--control-port",
                                str(control[i]),
                                "--faults",
                                str(run / "faults.json"),
                                f"--listen=A={listen[i]}=http://127.0.0.1:{provider}",
                            ],
                        )
                    )
                for c in control:
                    wait_until(
                        lambda c=c: _ok(f"http://127.0.0.1:{c}/health"),
                        timeout=30,
                        what=f"control {c}",
                    )
                    httpx.post(f"http://127.0.0.1:{c}/start", json={"t0_ns": time.time_ns()})
                paced(listen, 100, 1.0, conns=16)  # warm up
                for r in rates:
                    t0 = time.time_ns()
                    got = paced(listen, r, a.step_s, conns=16)
                    time.sleep(1.2)  # let the last health second be written
                    lag, cpu = health_between(run, n, t0, time.time_ns())
                    d50 = got["p50_ms"] - base[r]["p50_ms"]
                    d99 = got["p99_ms"] - base[r]["p99_ms"]
                    ok = "yes" if d50 < CARRIES_P50_MS and lag < SATURATED_LAG_MS else "no"
                    print(
                        f"{n:>5}{r:>8.0f}{d50:>9.2f}ms{d99:>9.2f}ms{lag:>9.1f}ms{cpu:>9.2f}  {ok}"
                    )
                for c in children:
                    group.stop(c)
        finally:
            group.stop_all()


if __name__ == "__main__":
    main()
