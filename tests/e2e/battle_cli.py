"""Helpers for the built-in scenarios' end-to-end tests: `battle` in a session of its own
(killed afterwards, so nothing it started outlives a failing test), the run's report."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

BATTLE = [sys.executable, "-c", "from scenarios.cli import main; main()"]


def run_battle(
    args: list[str], timeout: float = 150, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Runs `battle ARGS` (in `env`, default this process's); kills its whole session
    afterwards, whatever happened."""
    proc = subprocess.Popen([*BATTLE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, env=env)  # fmt: skip
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def only_run(runs_dir: Path) -> Path:
    (run,) = [p for p in runs_dir.iterdir() if p.is_dir()]
    return run


def report_of(runs_dir: Path) -> dict[str, Any]:
    return json.loads((only_run(runs_dir) / "report.json").read_text())


def failing(report: dict[str, Any]) -> set[str]:
    return {s["name"] for s in report["slos"] if not s["passed"]}


def slo(report: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [s for s in report["slos"] if s["name"] == name]
    return found


def assert_valid(report: dict[str, Any]) -> None:
    bad = [v["expression"] for v in report["validity"] if not v["passed"]]
    assert not bad, f"the run itself is invalid: {bad}"


def assert_passed(report: dict[str, Any]) -> None:
    """The run is valid and every SLO held."""
    assert_valid(report)
    assert report["verdict"] == "passed", failing(report)
    assert not failing(report), failing(report)


def assert_caught(
    report: dict[str, Any], names: set[str], *, unwitnessed: frozenset[str] = frozenset()
) -> None:
    """The run is valid (a router's defect must never come out as an invalid run), the
    verdict is failed, and each SLO of `names` failed (others may fail too: `names` is
    what must catch the defect, not the exact set) with its evidence in the report: at
    least one witness row, their count and the query that lists them all. `unwitnessed`:
    those of `names` whose SLO declares no witness query (a scenario's own SQL SLO), so
    must fail but cannot list witnesses."""
    assert_valid(report)
    assert report["verdict"] == "failed"
    assert names <= failing(report), failing(report)
    for name in names - unwitnessed:
        found = slo(report, name)
        assert found["witnesses"], f"{name} failed without a witness: {found}"
        assert found["witness_count"] >= len(found["witnesses"]), found
        assert found["witness_query"], found


def assert_no_process_left(run: Path) -> None:
    with open(run / "events" / "lifecycle.runner.csv") as f:
        pids = [int(r["pid"]) for r in csv.DictReader(f) if r["event"] == "spawned"]
    assert pids
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        raise AssertionError(f"process {pid} of the run is still alive")
