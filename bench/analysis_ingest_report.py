"""Bench: ingest, full analysis and every report of a large synthetic run.

The run: 10 million client requests (4 workers, 10,000 req/s for 1,000 s) and 30
million upstream exchanges (half the requests take one attempt, the other half five:
four failures on rotating providers, then a success), three faults, system samples and
WebSocket heads. The shards are CSV files written by DuckDB's COPY in the exact format
of `analysis.shards` (header, empty field for NULL), generated once and cached in
--data (about 6.3 GB).

What a real run does, in two parts:

1. During the run, the scenario runner's `analysis.columnar.Converter` turns what the
   shards gained into Parquet parts every few seconds, once a shard has gained
   `DURING_RUN_MIN_BYTES`. Simulated here by `convert(min_bytes=max_bytes=
   DURING_RUN_MIN_BYTES)`, which leaves each shard's last < 16 MB unconverted, as the
   converter does. Its CPU time is reported (it is spent while the load runs, on one
   DuckDB thread), not counted in the figure. Cached with the data after the first time.
2. After the run (the figure): convert the shards' tails, build run.duckdb, judge seven
   SLOs (two over rolling 10 s windows, two over phases) plus every key figure, table
   and series, write report.json/md/html and junit.xml with charts. In a child
   process; per stage its wall time and CPU time (the child's, all threads:
   `time.process_time`), and its peak resident memory (getrusage RUSAGE_CHILDREN
   ru_maxrss). The tails' parts are deleted afterwards, so every run measures the same.

Goal: under 30 s for the child. The machine is shared: the load average before and
after is printed; CPU time is the steadier figure when others use the cores.

    .venv/bin/python bench/analysis_ingest_report.py [--data DIR] [--requests N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

T0 = 1_700_000_000_000_000_000
RATE = 10_000  # requests per second over all workers
WORKERS = 4
FAULTS = [("a-down", "A", 200, 260), ("b-slow", "B", 500, 530), ("c-down", "C", 800, 830)]
SLOS = [
    "success: rate > 0.9",
    "success_rate >= 0.9",
    "latency{phase:steady}: p(95) < 100",
    "latency{window:10s}: p(99) < 1000",
    "errors{phase:during:a-down,window:10s}: count < 1000000",
    "upstream_success{provider:A}: rate > 0.1",
    "failovers: count > 0",
]


def _csv(con, sql: str, path: Path) -> None:
    con.execute(f"COPY ({sql}) TO '{path}' (HEADER, DELIMITER ',', QUOTE '\"', NULL '')")


def generate(run: Path, n_requests: int) -> None:
    import duckdb

    from analysis.shards import SCHEMAS

    for d in ("client", "upstream", "events", "system"):
        (run / d).mkdir(parents=True, exist_ok=True)
    duration_s = n_requests // RATE
    step = 1_000_000_000 // RATE
    con = duckdb.connect()
    faulted = " ".join(
        f"WHEN provider = '{p}' AND t_request >= {T0 + a * 10**9}"
        f" AND t_request < {T0 + b * 10**9} THEN '{f}'"
        for f, p, a, b in FAULTS
    )
    req_cols = ", ".join(SCHEMAS["requests"])
    for w in range(WORKERS):
        _csv(
            con,
            f"""
            SELECT {req_cols} FROM (
              SELECT {w} AS worker, i // {WORKERS} AS seq,
                     'bt-{w}-' || (i // {WORKERS}) AS tag, 'http' AS transport,
                     CASE WHEN i % 2 = 0 THEN 'eth_blockNumber' ELSE 'eth_getBalance' END
                       AS method, 1 AS batch_size,
                     {T0} + i * {step} AS t_intended, {T0} + i * {step} + 20000 AS t_sent,
                     {T0} + i * {step} + 1000000 + (hash(i) % 5000000)::BIGINT
                       + CASE WHEN i % 10 >= 5 THEN 4000000 ELSE 0 END AS t_done,
                     CASE WHEN hash(i) % 1000 = 0 THEN 'timeout' ELSE 'ok' END AS outcome,
                     200 AS http_status, NULL AS rpc_code, NULL AS error,
                     60 AS bytes_out, 40 AS bytes_in,
                     CASE WHEN i % 2 = 0 THEN (i * {step}) // 1000000000 + 1000 END
                       AS result_block,
                     CASE WHEN i % 2 = 0 THEN 'latest' END AS block_tag
              FROM range({w}, {n_requests}, {WORKERS}) r(i))
        """,
            run / "client" / f"requests.w{w}.csv",
        )
    up_cols = ", ".join(SCHEMAS["upstream"])
    # Half the requests: one attempt. The other half: five, the first four failing.
    for part, (lo, hi) in enumerate(((0, 3), (3, 5))):
        _csv(
            con,
            f"""
            SELECT {up_cols} FROM (
              SELECT ['A', 'B', 'C'][1 + ((i + a) % 3)] AS provider, 'p0' AS proxy,
                     'f' || i || '-' || a AS flow_id, 'c' || (i % 64) AS conn_id,
                     'http' AS transport, 'eth_blockNumber' AS method, 1 AS batch_size,
                     'bt-' || (i % {WORKERS}) || '-' || (i // {WORKERS}) AS rpc_id,
                     rpc_id AS tag,
                     {T0} + i * {step} + 30000 + a * 800000 AS t_request,
                     t_request + 10000 AS t_upstream_sent, t_request + 700000 AS t_upstream_done,
                     t_request + 710000 AS t_response,
                     CASE {faulted} END AS fault_id,
                     CASE WHEN fault_id IS NOT NULL THEN 'reset' END AS fault_kind,
                     0 AS injected_delay,
                     CASE WHEN fault_id IS NOT NULL THEN 'reset'
                          WHEN i % 10 >= 5 AND a < 4 THEN 'timeout' ELSE 'ok' END AS outcome,
                     200 AS http_status, NULL AS rpc_code, 40 AS bytes_in, 60 AS bytes_out,
                     NULL AS fault_ids
              FROM range({n_requests}) r(i), range({lo}, {hi}) x(a)
              WHERE a = 0 OR i % 10 >= 5)
        """,
            run / "upstream" / f"upstream.p{part}.csv",
        )
    fe_cols = ", ".join(SCHEMAS["fault_events"])
    rows = []
    for fid, provider, a, b in FAULTS:
        for event, t in (("start", a), ("end", b)):
            rows.append(
                f"('{fid}', '{provider}', 'reset', '{{}}', {T0 + a * 10**9}, {T0 + b * 10**9},"
                f" '{event}', {T0 + t * 10**9 + 1_000_000}, NULL, '{fid}')"
            )
    _csv(
        con,
        f"SELECT * FROM (VALUES {', '.join(rows)}) v({fe_cols})",
        run / "events" / "fault_events.p0.csv",
    )
    per_worker = n_requests // WORKERS
    stopped = ", ".join(
        f"({T0 + duration_s * 10**9}, 'loadgen-w{w}', 'loadgen', {100 + w}, 'stopped',"
        f" '{json.dumps({'planned': per_worker, 'not_sent': 0, 'late_sends': 0})}')"
        for w in range(WORKERS)
    )
    _csv(
        con,
        f"SELECT * FROM (VALUES {stopped}) v({', '.join(SCHEMAS['lifecycle'])})",
        run / "events" / "lifecycle.runner.csv",
    )
    _csv(
        con,
        f"""
        SELECT {T0} + s * 1000000000 AS t, 42 AS pid, 'sut' AS role, 0.4 AS cpu,
               100000000 + s * 10000 AS rss, 50 AS fds, 8 AS threads
        FROM range({duration_s}) r(s)""",
        run / "system" / "system.collector.csv",
    )
    ws_cols = ", ".join(SCHEMAS["ws_notifications"])
    _csv(
        con,
        f"""
        SELECT {ws_cols} FROM (
          SELECT w AS worker, 'c' || w AS connection, 's' || w AS subscription,
                 'newHeads' AS kind, n AS block_number, 'h' || n AS block_hash,
                 'h' || (n - 1) AS parent_hash, NULL AS log_index,
                 {T0} + n * 1000000000 + 3000000 AS t_received, NULL AS t_produced
          FROM range({WORKERS}) a(w), range({duration_s}) b(n))
    """,
        run / "client" / "ws_notifications.w0.csv",
    )
    spec = {
        "name": "bench",
        "t0_ns": T0,
        "genesis_ns": T0 - 1000 * 10**9,
        "block_time_ms": 1000,
        "faults": [
            {"fault_id": f, "provider": p, "kind": "reset", "start_s": a, "duration_s": b - a}
            for f, p, a, b in FAULTS
        ],
        "slos": SLOS,
    }
    (run / "scenario.json").write_text(json.dumps(spec))
    con.close()


CHILD = r"""
import sys, time, json
from pathlib import Path
from analysis import slo_from_json, write_reports
from analysis.columnar import convert
from analysis.database import build, finish
from analysis.verdict import judge_database
run = Path(sys.argv[1])
spec = json.loads((run / "scenario.json").read_text())
stages = {}
def timed(name, fn):
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    stages[name] = (time.perf_counter() - t, time.process_time() - c)
    return out
# What judge_run(run, slos) does, stage by stage.
timed("convert the shards' tails", lambda: convert(run))
con, building = timed("build run.duckdb", lambda: build(run))
slos = [slo_from_json(s) for s in spec["slos"]]
j = timed("judge", lambda: judge_database(con, run, slos))
timed("close run.duckdb", lambda: finish(con, building))
timed("reports", lambda: write_reports(j))
print(json.dumps({"stages": stages, "verdict": j.verdict,
                  "slos": {r.expression: r.observed for r in j.slos},
                  "requests": j.metrics["requests_total"],
                  "upstream": j.metrics["upstream_exchanges"]}))
"""


def during_run(run: Path) -> None:
    """Converts the shards as the runner's converter would have during the run."""
    from analysis.columnar import COLUMNAR_DIR, DURING_RUN_MIN_BYTES, convert

    stamp = run / COLUMNAR_DIR / "during-run.json"
    if stamp.exists():
        done = json.loads(stamp.read_text())
        # Parts made after the run (by an earlier measurement or by hand) go: each
        # measurement converts the same tails.
        for part in (run / COLUMNAR_DIR).glob("*/*.parquet"):
            if part.name not in done["parts"]:
                part.unlink()
        print(f"during the run: {done['summary']} (cached)")
        return
    t, c = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    parts = convert(run, min_bytes=DURING_RUN_MIN_BYTES, max_bytes=DURING_RUN_MIN_BYTES, threads=1)
    r = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r.ru_utime - c.ru_utime) + (r.ru_stime - c.ru_stime)
    size = sum(p.stat().st_size for p in run.glob("*/*.csv")) / 1e6
    text = (
        f"{parts} parts converted from {size:,.0f} MB of CSV in {cpu:.1f} s CPU"
        f" ({time.perf_counter() - t:.1f} s wall, one DuckDB thread), spread over the run"
    )
    names = sorted(p.name for p in (run / COLUMNAR_DIR).glob("*/*.parquet"))
    stamp.write_text(json.dumps({"summary": text, "parts": names}))
    print(f"during the run: {text}")


def main() -> None:
    from analysis.columnar import COLUMNAR_DIR

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/tmp/battle-bench-analysis"))
    parser.add_argument("--requests", type=int, default=10_000_000)
    parser.add_argument("--regenerate", action="store_true")
    args = parser.parse_args()
    run = args.data / f"run-{args.requests}"
    stamp = run / "generated"
    if args.regenerate or not stamp.exists():
        shutil.rmtree(run / COLUMNAR_DIR, ignore_errors=True)
        t = time.perf_counter()
        generate(run, args.requests)
        stamp.touch()
        print(f"generated {run} in {time.perf_counter() - t:.1f} s (not part of the figure)")
    size = sum(p.stat().st_size for p in run.glob("*/*.csv"))
    print(f"shards: {size / 1e9:.2f} GB CSV")
    during_run(run)
    load_before = os.getloadavg()
    t = time.perf_counter()
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(run)], capture_output=True, text=True, timeout=600
    )
    wall = time.perf_counter() - t
    load_after = os.getloadavg()
    if child.returncode != 0:
        sys.exit(f"analysis failed:\n{child.stderr}")
    result = json.loads(child.stdout.strip().splitlines()[-1])
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"rows: {result['requests']:,.0f} requests, {result['upstream']:,.0f} upstream")
    for stage, (seconds, cpu) in result["stages"].items():
        print(f"  {stage:26s} {seconds:6.1f} s wall {cpu:6.1f} s CPU")
    print(
        f"after the run: {wall:.1f} s wall (child process incl. start-up),"
        f" peak RSS {peak_mb:,.0f} MB, on {os.cpu_count()} cores; goal < 30 s"
    )
    print(
        "load average (1, 5, 15 min) before "
        + " ".join(f"{x:.2f}" for x in load_before)
        + ", after "
        + " ".join(f"{x:.2f}" for x in load_after)
    )
    print(f"verdict {result['verdict']}; SLOs observed: {result['slos']}")


if __name__ == "__main__":
    main()
