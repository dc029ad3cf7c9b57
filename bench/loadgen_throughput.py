"""How fast one load worker process goes, against one fast upstream, in one run.

Method (all on 127.0.0.1; the upstream is one `python -m providers.mock` process, or
anvil with --anvil):

1. Highest sustained open-model rate of one worker process (`python -m scenarios.worker`,
   answers validated against the mock chain's truth): constant-rate trials of
   --trial-s seconds at rising rates; a trial passes when the worker exits 0, every
   planned call has a row in the shard, none was left unsent, every answer is `ok`, and
   the p99 of send lateness (t_sent - t_intended) is under 1 ms. The figure is the
   highest passing rate (best of --attempts tries each, after a 1 s warm-up); the
   first failing rate says what gave out. Also reported: the highest rate passing
   with the p99 criterion relaxed to p50 < 1 ms (the worker keeps pace; a shared
   machine's preemptions break the p99 first). Each trial also prints the worker's
   CPU time per call during the load (its summary's `cpu_us_per_call`: the process's
   CPU, every thread, from t0 to the end of the drain, over the calls sent), the figure
   to compare across runs when other work on the machine makes lateness noisy. The
   open model runs on the worker's reactor (`loadgen/reactor.py`); the closed loop on
   its engine of trio tasks.
2. The same worker in a closed loop (8 clients): its raw throughput.
3. Plain httpx on trio, 8 tasks in a closed loop: the baseline the lean client replaces.
4. wrk (Debian's /usr/bin/wrk, C), 1 thread, 8 connections, closed loop: the native
   reference, and a measure of what the upstream itself can serve.
5. Schedule accuracy at 5,000 req/s: p99 and max of |t_sent - t_intended|.

On a machine with 2+ cores the upstream is pinned to CPU 1 and every client to CPU 0
(`sched_setaffinity`), so each side has one core and the figures compare clients, not
schedulers. Other processes on the machine still add noise: run it on a quiet machine.
How quiet it was is printed at the start and the end: a loop pinned to the client CPU
sleeps 0.5 ms at a time and counts wake-ups more than 1 ms late (next to none on an idle core);
each is a preemption that makes the worker's sends late too, whatever its code.

    .venv/bin/python bench/loadgen_throughput.py [--anvil] [--trial-s 3]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import trio

ROOT = Path(__file__).resolve().parents[1]
SEED = 7
BLOCK_MS = 1000
BODY = b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'
RATES = (1_000, 2_000, 5_000, 10_000, 15_000, 20_000, 25_000, 30_000, 40_000)
WRK_LUA = """wrk.method = "POST"
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'
wrk.headers["Content-Type"] = "application/json"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pin(cpu: int | None):
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def start_upstream(anvil: bool, cpu: int | None) -> tuple[subprocess.Popen, str, int]:
    port = free_port()
    genesis = time.time_ns() - 100 * BLOCK_MS * 1_000_000
    if anvil:
        exe = shutil.which("anvil")
        if not exe:
            sys.exit("anvil is not installed")
        cmd = [exe, "--port", str(port), "--silent"]
    else:
        cmd = [
            sys.executable,
            "-m",
            "providers.mock",
            "--port",
            str(port),
            "--seed",
            str(SEED),
            "--genesis-ns",
            str(genesis),
            "--block-time-ms",
            str(BLOCK_MS),
        ]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=pin(cpu)
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.post(url, content=BODY, headers={"content-type": "application/json"}, timeout=1)
            return proc, url, genesis
        except httpx.TransportError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                sys.exit("the upstream did not start")
            time.sleep(0.1)


def run_worker(
    url: str, genesis: int, arrival: str, seconds: float, cpu: int | None, anvil: bool
) -> tuple[dict, list[dict], int]:
    run_dir = Path(tempfile.mkdtemp(prefix="lg-bench-"))
    try:
        # Past the worker's start-up (0.6 s idle; 1.5 s was not enough at load 2.5, and
        # the first calls of the trial were then sent late, honestly, and failed it).
        t0 = time.time_ns() + 3_000_000_000
        common = [
            "--target",
            url,
            "--run-dir",
            str(run_dir),
            "--t0-ns",
            str(t0),
            "--duration",
            str(seconds),
            "--arrival",
            arrival,
            "--mix",
            "eth_blockNumber=1",
            "--max-in-flight",
            "1000",
            "--timeout",
            "5",
        ]
        if anvil:  # anvil's chain is not the mock's: shape checks only
            cmd = [sys.executable, "-m", "loadgen", *common]
        else:
            cmd = [
                sys.executable,
                "-m",
                "scenarios.worker",
                *common,
                "--chain-seed",
                str(SEED),
                "--genesis-ns",
                str(genesis),
                "--block-time-ms",
                str(BLOCK_MS),
            ]
        done = subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, timeout=seconds + 60, preexec_fn=pin(cpu)
        )
        summary = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout else {}
        with (run_dir / "client" / "requests.w0.csv").open() as f:
            rows = list(csv.DictReader(f))
        return summary, rows, done.returncode
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def judge_trial(summary: dict, rows: list[dict], code: int, *, lateness: bool = True) -> str | None:
    """Why a trial fails, or None when it passes (`lateness=False`: the p99 of send
    lateness may exceed 1 ms, which a shared machine's preemptions cause first, but its
    p50 may not: the worker keeps pace)."""
    if code != 0:
        return f"worker exited {code}"
    if summary.get("interrupted_by"):
        return f"worker interrupted by {summary['interrupted_by']} (not by this bench)"
    if summary["not_sent"]:
        return f"{summary['not_sent']} calls not sent (in-flight cap reached)"
    if len(rows) != summary["planned"]:
        return f"{summary['planned'] - len(rows)} sent calls have no row"
    bad = {k: v for k, v in summary["outcomes"].items() if k != "ok"}
    if bad:
        return f"answers not ok: {bad}"
    p50, p99 = summary["send_lateness_ms"]["p50"], summary["send_lateness_ms"]["p99"]
    if lateness and p99 >= 1.0:
        return f"send lateness p99 {p99:.3f} ms >= 1 ms"
    if p50 >= 1.0:
        return f"send lateness p50 {p50:.3f} ms >= 1 ms (the worker falls behind)"
    return None


def httpx_closed_loop(url: str, seconds: float, tasks: int = 8) -> float:
    count = 0

    async def main() -> None:
        nonlocal count
        async with httpx.AsyncClient(timeout=5) as client:
            end = trio.current_time() + seconds

            async def one() -> None:
                nonlocal count
                while trio.current_time() < end:
                    r = await client.post(
                        url, content=BODY, headers={"content-type": "application/json"}
                    )
                    r.raise_for_status()
                    count += 1

            async with trio.open_nursery() as nursery:
                for _ in range(tasks):
                    nursery.start_soon(one)

    trio.run(main)
    return count / seconds


def wrk(url: str, seconds: float, connections: int, cpu: int | None) -> float | None:
    exe = shutil.which("wrk")
    if not exe:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_LUA)
    try:
        out = subprocess.run(
            [exe, "-t1", f"-c{connections}", f"-d{int(seconds)}s", "-s", f.name, url],
            capture_output=True,
            text=True,
            timeout=seconds + 30,
            preexec_fn=pin(cpu),
        ).stdout
    finally:
        os.unlink(f.name)
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    return None


def hiccups(cpu: int | None, seconds: float = 2.0) -> dict:
    """How quiet the client CPU is: a loop pinned to it sleeps 0.5 ms at a time and
    counts the wake-ups more than 1 ms late. An idle core has next to none; each one
    is a preemption by other work that would also make the worker's sends late, which
    no code in the worker can prevent."""
    cpus = os.sched_getaffinity(0)
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    try:
        gaps = []
        end = time.perf_counter() + seconds
        last = time.perf_counter()
        while (now := time.perf_counter()) < end:
            if now - last > 0.0015:  # the 0.5 ms sleep plus 1 ms
                gaps.append(now - last - 0.0005)
            last = now
            time.sleep(0.0005)
    finally:
        os.sched_setaffinity(0, cpus)
    return {
        "late_wakeups_per_s": round(len(gaps) / seconds, 1),
        "max_ms": round(max(gaps, default=0) * 1e3, 1),
    }


def pctl(values: list[int], q: float) -> int:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--anvil", action="store_true", help="anvil as the upstream")
    p.add_argument("--trial-s", type=float, default=3.0)
    p.add_argument("--no-pin", action="store_true", help="let the scheduler place processes")
    p.add_argument(
        "--attempts", type=int, default=1, help="tries per rate (a shared machine preempts)"
    )
    args = p.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    pin_cpus = len(cpus) >= 2 and not args.no_pin
    server_cpu, client_cpu = (cpus[1], cpus[0]) if pin_cpus else (None, None)
    proc, url, genesis = start_upstream(args.anvil, server_cpu)
    upstream = "anvil" if args.anvil else "providers.mock"
    report: dict = {
        "upstream": upstream,
        "pinned": server_cpu is not None,
        "load_avg_at_start": os.getloadavg()[0],
        "client_cpu_hiccups_at_start": hiccups(client_cpu),
    }
    try:
        print(
            f"upstream: {upstream} at {url}; pinned: upstream cpu {server_cpu},"
            f" clients cpu {client_cpu}; load average {os.getloadavg()[0]:.2f};"
            f" client cpu hiccups (a sleeping loop woken > 1 ms late):"
            f" {report['client_cpu_hiccups_at_start']}"
        )
        # 1. highest sustained open-model rate
        best, failure = 0, None
        # A warm-up trial (not judged): first connections, the upstream's caches.
        run_worker(url, genesis, "constant:1000", 1.0, client_cpu, args.anvil)
        loose, loose_failure = 0, None
        cpu_per_call: dict[int, float | None] = {}
        for rate in RATES:
            for attempt in range(1, args.attempts + 1):
                r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                summary, rows, code = run_worker(
                    url, genesis, f"constant:{rate}", args.trial_s, client_cpu, args.anvil
                )
                r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
                why = judge_trial(summary, rows, code)
                why_loose = judge_trial(summary, rows, code, lateness=False)
                lat = summary.get("send_lateness_ms", {})
                print(
                    f"  open model {rate:>6,}/s try {attempt}:"
                    f" {'PASS' if why is None else 'FAIL: ' + why}"
                    f"  (send lateness p50 {lat.get('p50', float('nan')):.3f} ms,"
                    f" latency p99 {summary.get('latency_ms', {}).get('p99', float('nan')):.2f} ms,"
                    f" worker CPU {summary.get('cpu_us_per_call') or float('nan'):.1f} µs/call"
                    f" during the load, {cpu:.2f} s for {len(rows):,} calls incl. start-up)"
                )
                cpu_per_call[rate] = summary.get("cpu_us_per_call")
                if why is None:
                    break
            # The highest passing rate counts, even above a failed one: on a shared
            # machine a preemption can fail one trial and spare the next.
            if why is None:
                best = rate
            elif failure is None:
                failure = f"{rate}/s: {why}"
            if why_loose is not None:
                loose_failure = f"{rate}/s: {why_loose}"
                break
            loose = rate
        report["max_rate_all_sent_recorded_ok"] = loose
        report["first_failure_lateness_ignored"] = loose_failure
        report["max_sustained_rate"] = best
        report["first_failure"] = failure
        report["worker_cpu_us_per_call"] = cpu_per_call
        # 2. the worker's closed loop
        summary, rows, code = run_worker(
            url, genesis, "closed:8", args.trial_s, client_cpu, args.anvil
        )
        report["worker_closed_loop_8"] = round(len(rows) / args.trial_s)
        print(
            f"  worker closed loop, 8 clients: {report['worker_closed_loop_8']:,} req/s"
            f" (outcomes {summary.get('outcomes')}, {summary.get('cpu_us_per_call')} µs CPU/call)"
        )
        # 3. plain httpx
        if client_cpu is not None:
            os.sched_setaffinity(0, {client_cpu})
        report["httpx_closed_loop_8"] = round(httpx_closed_loop(url, args.trial_s))
        os.sched_setaffinity(0, set(cpus))
        print(f"  plain httpx on trio, 8 tasks: {report['httpx_closed_loop_8']:,} req/s")
        # 4. wrk
        report["wrk_c8"] = wrk(url, args.trial_s, 8, client_cpu)
        print(f"  wrk -t1 -c8: {report['wrk_c8'] or 0:,.0f} req/s")
        # 5. schedule accuracy at 5,000 req/s
        summary, rows, code = run_worker(url, genesis, "constant:5000", 5.0, client_cpu, args.anvil)
        errors = [abs(int(r["t_sent"]) - int(r["t_intended"])) for r in rows]
        report["schedule_5000"] = {
            "p50_us": pctl(errors, 0.50) / 1000,
            "p99_us": pctl(errors, 0.99) / 1000,
            "max_us": max(errors) / 1000,
            "calls": len(errors),
            "outcomes": summary.get("outcomes"),
        }
        s = report["schedule_5000"]
        print(
            f"  schedule accuracy at 5,000/s: |sent - intended| p50 {s['p50_us']:.0f} µs,"
            f" p99 {s['p99_us']:.0f} µs, max {s['max_us']:.0f} µs over {s['calls']:,} calls"
        )
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    report["load_avg_at_end"] = os.getloadavg()[0]
    report["client_cpu_hiccups_at_end"] = hiccups(client_cpu)
    print(f"client cpu hiccups at the end: {report['client_cpu_hiccups_at_end']}")
    limit = "the load generator"
    if report["wrk_c8"] and loose and report["wrk_c8"] < loose * 1.25:
        limit = "the upstream (wrk, a C client, gets little more from it)"
    print(
        f"max sustained rate of one worker: {best:,} req/s (p99 send lateness < 1 ms);"
        f" {loose:,} req/s keeping pace (p50 < 1 ms), every call sent, recorded and ok;"
        f" limited by {limit}"
    )
    print(json.dumps(report))


if __name__ == "__main__":
    main()
