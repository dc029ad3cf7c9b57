"""scenarios.processes: children die with a killed runner, started without preexec_fn."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from scenarios import processes
from scenarios.processes import ProcessGroup, dying_with_parent

# A runner stand-in: threads alive (as the runner's collectors are) while it starts one
# child of each kind, prints their pids, then waits to be killed. Each child writes
# "TERM" to a file when SIGTERM reaches it, then exits.
RUNNER = textwrap.dedent(
    """
    import sys, threading, time
    from pathlib import Path
    from scenarios.processes import ProcessGroup

    out = Path(sys.argv[1])
    for _ in range(4):
        threading.Thread(target=time.sleep, args=(600,), daemon=True).start()
    child = (
        "import signal, sys, time\\n"
        "def term(*_):\\n"
        "    open(sys.argv[1], 'w').write('TERM')\\n"
        "    sys.exit(0)\\n"
        "signal.signal(signal.SIGTERM, term)\\n"
        "open(sys.argv[1] + '.ready', 'w').close()\\n"
        "time.sleep(600)\\n"
    )
    group = ProcessGroup(out / "logs")
    a = group.start("plain", "test", ["-c", child, str(out / "plain")])
    b = group.start("session", "test", ["-c", child, str(out / "session")], own_session=True)
    print(a.pid, b.pid, flush=True)
    time.sleep(600)
    """
)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            # A zombie is dead but not yet reaped by its (re-parented) parent.
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_for(probe, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_a_sigkilled_runner_takes_its_children_with_it_by_sigterm(tmp_path):
    runner = subprocess.Popen(
        [sys.executable, "-c", RUNNER, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    pids: list[int] = []
    try:
        assert runner.stdout is not None
        pids = [int(p) for p in runner.stdout.readline().split()]
        assert len(pids) == 2, pids
        assert wait_for(
            lambda: all((tmp_path / f"{n}.ready").exists() for n in ("plain", "session"))
        )
        runner.kill()
        runner.wait()
        assert wait_for(lambda: not any(alive(p) for p in pids)), "a child outlived the runner"
        assert (tmp_path / "plain").read_text() == "TERM"
        assert (tmp_path / "session").read_text() == "TERM"
    finally:
        runner.kill()
        runner.wait()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_children_are_started_without_a_preexec_fn(tmp_path, monkeypatch):
    seen: list[dict] = []
    real = subprocess.Popen

    def spy(*args, **kwargs):
        seen.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(processes.subprocess, "Popen", spy)
    group = ProcessGroup(tmp_path)
    try:
        group.start("a", "test", ["-c", "pass"])
        group.start("b", "test", ["true"], python=False, own_session=True)
    finally:
        group.stop_all(grace=2)
    assert [kw.get("preexec_fn") for kw in seen] == [None, None]


def test_the_child_runs_under_the_returned_pid_with_its_argv_unchanged(tmp_path):
    group = ProcessGroup(tmp_path)
    child = group.start("sleeper", "test", ["sleep", "30"], python=False)
    try:
        cmdline = Path(f"/proc/{child.pid}/cmdline")
        # The wrapper execs the program in place: same pid, the program's own argv.
        assert wait_for(lambda: cmdline.read_bytes() == b"sleep\x0030\x00", timeout=5), (
            cmdline.read_bytes()
        )
    finally:
        assert group.stop(child, grace=2) == -signal.SIGTERM


def test_a_child_in_its_own_session_leads_its_process_group(tmp_path):
    group = ProcessGroup(tmp_path)
    child = group.start("leader", "test", ["sleep", "30"], python=False, own_session=True)
    try:
        assert os.getsid(child.pid) == child.pid
        assert os.getpgid(child.pid) == child.pid
    finally:
        group.stop_all(grace=2)


def test_a_missing_program_raises_at_the_start_as_popen_would(tmp_path):
    group = ProcessGroup(tmp_path)
    with pytest.raises(FileNotFoundError):
        group.start("x", "test", ["battle-no-such-program"], python=False)
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\n")
    with pytest.raises(PermissionError):
        dying_with_parent([str(script)])
    assert group.children == []
