"""`battle proxy` runs the chaos proxy standalone with its timeline started."""

from __future__ import annotations

import json
import selectors
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from shard_poll import wait_for_rows

from scenarios.processes import free_ports

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    # Reserved (TIME_WAIT), not just seen free: no other test's port-0 bind takes it
    # before the child binds it.
    return free_ports(1)[0]


def test_battle_proxy_starts_the_timeline_when_ready(tmp_path):
    control, listen = free_port(), free_port()
    faults = tmp_path / "f.json"
    faults.write_text(
        json.dumps(
            [
                {
                    "fault_id": "e",
                    "provider": "A",
                    "kind": "http_error",
                    "start_s": 0,
                    "duration_s": 60,
                }
            ]
        )
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from scenarios.cli import main; main()",
            "proxy",
            "--proxy-id",
            "P0",
            "--run-dir",
            str(tmp_path / "run"),
            "--control-port",
            str(control),
            "--listen",
            f"A={listen}=http://127.0.0.1:9",
            "--faults",
            str(faults),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        assert sel.select(30), "no ready line"
        line = proc.stdout.readline()
        assert line.startswith("ready ") and "t0_ns=" in line
        r = httpx.post(f"http://127.0.0.1:{listen}/", json={"id": 1, "method": "m"}, timeout=5)
        assert r.status_code == 503 and r.json()["id"] == 1
        assert httpx.post(f"http://127.0.0.1:{control}/start", json={"t0_ns": 1}).status_code == 409
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    timeline = json.loads((tmp_path / "run" / "events" / "chaos-timeline.P0.json").read_text())
    assert [(w["fault_id"], w["applied"]) for w in timeline] == [("e", 1)]


def test_battle_proxy_bad_arguments_exit_2_with_one_line(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from scenarios.cli import main; main()",
            "proxy",
            "--proxy-id",
            "P0",
            "--run-dir",
            str(tmp_path),
            "--control-port",
            "x",
            "--listen",
            "A=1=http://h",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "chaosproxy: --control-port must be an integer port, got 'x'"
    ]


def test_rows_survive_the_proxy_being_killed(tmp_path):
    control, listen = free_port(), free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "chaosproxy",
            "--proxy-id",
            "P0",
            "--run-dir",
            str(tmp_path),
            "--control-port",
            str(control),
            "--listen",
            f"A={listen}=http://127.0.0.1:9",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        assert sel.select(30) and proc.stdout.readline().startswith("ready ")
        # The same process (same PID), re-executed under -O: mitmproxy's debug checks off.
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        assert cmdline[1:4] == [b"-O", b"-m", b"chaosproxy"], cmdline
        for i in range(20):
            # Nothing listens upstream: each exchange is a recorded conn_error (502).
            r = httpx.post(f"http://127.0.0.1:{listen}/", json={"id": i, "method": "m"})
            assert r.status_code == 502
        # Flushed while running: polled with a deadline, then killed (no flush at exit).
        wait_for_rows(tmp_path / "upstream" / "upstream.P0.csv", count=20)
    finally:
        proc.kill()  # no chance to flush at exit
        proc.wait(10)
    lines = (tmp_path / "upstream" / "upstream.P0.csv").read_text().splitlines()
    assert len(lines) == 1 + 20
    assert all(",conn_error," in line for line in lines[1:])
