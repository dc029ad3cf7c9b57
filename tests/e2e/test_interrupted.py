"""A runner killed mid-run (SIGKILL) leaves no process behind and readable shards."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from analysis import ingest


def spawned_pids(run: Path) -> list[int]:
    path = run / "events" / "lifecycle.runner.csv"
    if not path.exists():
        return []
    with open(path) as f:
        return [int(r["pid"]) for r in csv.DictReader(f) if r["event"] == "spawned"]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead but not yet reaped by its (re-parented) parent.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rpartition(")")[2].split()[0] != "Z"


def test_a_runner_killed_mid_run_takes_its_children_with_it(tmp_path):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from scenarios.cli import main; main()",
            "demo",
            "--duration",
            "20",
            "--fault-at",
            "2",
            "--fault-for",
            "3",
            "--runs-dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 60
        run = None
        # Wait until the load has been running for a few seconds.
        while time.monotonic() < deadline:
            runs = [p for p in tmp_path.iterdir() if p.is_dir()]
            shard = runs[0] / "client" / "requests.w0.csv" if runs else None
            if shard is not None and shard.exists() and shard.stat().st_size > 10_000:
                run = runs[0]
                break
            time.sleep(0.2)
        assert run is not None, "the load never started"
        pids = spawned_pids(run)
        assert len(pids) == 6
        proc.send_signal(signal.SIGKILL)
        proc.wait()

        deadline = time.monotonic() + 15
        while any(alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [p for p in pids if alive(p)], "every child died with the runner"

        con = duckdb.connect(str(ingest(run)), read_only=True)
        requests, upstream = con.execute(
            "SELECT (SELECT count(*) FROM requests), (SELECT count(*) FROM upstream)"
        ).fetchone()
        assert requests > 50 and upstream > 50
        stopped = con.execute(
            "SELECT count(*) FROM lifecycle WHERE process = 'runner' AND event = 'stopped'"
        ).fetchone()[0]
        assert stopped == 0, "the run shows it never ended cleanly"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
