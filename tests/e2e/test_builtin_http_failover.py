"""The http_failover built-in through `battle run`: its fast form passes against the
reference router and fails, naming the SLOs, with the router's failover switched off;
SIGTERM stops a run cleanly and marks it interrupted."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from battle_cli import BATTLE, only_run, run_battle


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
    assert report["verdict"] == "passed"
    assert {s["name"] for s in report["slos"]} == {
        "success", "latency", "amplification", "route_away", "wasted_attempts", "come_back"
    }  # fmt: skip
    assert report["metrics"]["failovers"] >= 1
    assert json.loads((run / "scenario.json").read_text())["form"] == "fast"
    assert_no_process_left(run)


def test_the_fast_form_fails_with_failover_off_and_names_the_slos(tmp_path):
    off = ["--set", "sut.options.failover=false", "--set", "sut.options.circuit_breaker=false"]
    result = run_battle(["run", "http_failover", *off, "--runs-dir", str(tmp_path)])
    assert result.returncode == 1, result.stdout + result.stderr
    run = only_run(tmp_path)
    report = json.loads((run / "report.json").read_text())
    assert all(v["passed"] for v in report["validity"]), "the run itself is valid"
    failing = {s["name"] for s in report["slos"] if not s["passed"]}
    assert {"success", "route_away", "wasted_attempts"} <= failing
    assert "FAIL SLO success: rate >= 0.99" in result.stdout
    assert_no_process_left(run)


def test_a_router_that_never_returns_to_the_primary_fails_come_back(tmp_path):
    # One outage (a second would find the breaker still open: no exchange, so the run
    # would be invalid), after which the breaker stays open for 30 s: past the run's end.
    slow = [
        "--set", "sut.options.circuit_breaker={recovery_s = 30, max_recovery_s = 30}",
        "--set", "faults.0.schedule.flap.count=1",
        "--set", "faults.0.duration_s=3",
    ]  # fmt: skip
    result = run_battle(["run", "http_failover", *slow, "--runs-dir", str(tmp_path)])
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads((only_run(tmp_path) / "report.json").read_text())
    assert {s["name"] for s in report["slos"] if not s["passed"]} == {"come_back"}


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
