"""The http_failover built-in through `battle run`: its fast form passes against the
reference router and fails with failover off, naming the invariant
`no_unrescued_failure` on the console and in its witnesses (no breaker, a breaker that
never closes and the rest are proven on routers Battle did not write:
tests/e2e/matrix.py); SIGTERM stops a run cleanly and marks it interrupted."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from battle_cli import BATTLE, assert_caught, assert_passed, only_run, run_battle, slo

# The invariants and policy figures http_failover judges (others may be added).
JUDGED = {"no_unrescued_failure", "no_wrong_answer", "no_hung_call", "no_retry_storm",
          "no_abandoned_provider", "route_away", "wasted_attempts", "come_back"}  # fmt: skip


def spawned(run: Path) -> list[int]:
    with open(run / "events" / "lifecycle.runner.csv") as f:
        return [int(r["pid"]) for r in csv.DictReader(f) if r["event"] == "spawned"]


def assert_no_process_left(run: Path) -> None:
    pids = spawned(run)
    assert len(pids) == 6  # three providers, the proxy, the router, one load worker
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_the_fast_form_passes_against_the_reference_router(tmp_path):
    result = run_battle(["run", "http_failover", "--runs-dir", str(tmp_path)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("scenario http_failover (fast form)"), "plan printed first"
    run = only_run(tmp_path)
    report = json.loads((run / "report.json").read_text())
    assert_passed(report)
    assert JUDGED <= {s["name"] for s in report["slos"]}
    # A did fail and the router did fail over: the scenario is not passing for want of
    # a fault.
    assert report["metrics"]["failovers"] >= 1
    assert json.loads((run / "scenario.json").read_text())["form"] == "fast"
    assert_no_process_left(run)


def test_without_failover_clients_get_the_failures_a_retry_would_rescue(tmp_path):
    # The breaker still routes away within a few calls; the calls that met A before it
    # opened are returned as failures while B and C were up and never tried.
    off = ["--set", "sut.options.failover=false"]
    result = run_battle(["run", "http_failover", *off, "--runs-dir", str(tmp_path)])
    assert result.returncode == 1, result.stdout + result.stderr
    run = only_run(tmp_path)
    report = json.loads((run / "report.json").read_text())
    assert_caught(report, {"no_unrescued_failure"})
    witness = slo(report, "no_unrescued_failure")["witnesses"][0]
    assert witness["last_provider"] == "A" and witness["untried"], witness
    assert f"FAIL SLO {slo(report, 'no_unrescued_failure')['expression']}" in result.stdout
    assert_no_process_left(run)


def test_a_bad_override_is_one_line_and_exit_2_before_anything_starts(tmp_path):
    result = run_battle(["run", "http_failover", "--set", "workloads.0.rate=-1",
                         "--runs-dir", str(tmp_path)], timeout=30)  # fmt: skip
    assert result.returncode == 2
    assert result.stderr == "battle: error: workloads[0].rate must be > 0, got -1\n"
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_sigterm_stops_every_child_and_marks_the_run_interrupted(tmp_path):
    proc = subprocess.Popen([*BATTLE, "run", "http_failover", "--runs-dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        run = None
        while time.monotonic() < deadline and run is None:
            runs = [p for p in tmp_path.iterdir() if p.is_dir()] if tmp_path.exists() else []
            shard = runs[0] / "client" / "requests.w0.csv" if runs else None
            if shard is not None and shard.exists() and shard.stat().st_size > 5_000:
                run = runs[0]
            time.sleep(0.2)
        assert run is not None, "the load never started"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert "interrupted" in err
        assert json.loads((run / "scenario.json").read_text())["interrupted"] is True
        events = (run / "events" / "lifecycle.runner.csv").read_text()
        assert ",interrupted," in events and ",stopped," in events
        assert_no_process_left(run)
        report = run_battle(["report", str(run)], timeout=120)
        assert report.returncode in (0, 1, 3), report.stderr
        assert (run / "report.md").exists()
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
