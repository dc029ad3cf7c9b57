"""Child processes of a run: started with their logs captured, stopped for certain.

Every child gets `PR_SET_PDEATHSIG`, so it is sent SIGTERM if the runner dies, even by
SIGKILL; `ProcessGroup.stop_all` sends SIGTERM (children flush their shards on it),
waits, then SIGKILLs whatever is left.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Child", "ProcessGroup", "free_ports", "wait_until"]

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _own_session_dying_with_parent() -> None:
    # A session of its own, so that the child's whole process tree (nginx's workers,
    # say) can be killed as one group whatever the child does with its children.
    os.setsid()
    _die_with_parent()


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports that were free a moment ago."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def wait_until(probe: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Polls `probe` until it returns True; raises TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        if probe():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready within {timeout:g} s")
        time.sleep(0.05)


@dataclass
class Child:
    name: str
    role: str
    popen: subprocess.Popen
    log: Path
    # Started in a session of its own: stopping it also kills its process group.
    own_session: bool = False

    @property
    def pid(self) -> int:
        return self.popen.pid

    def exited(self) -> int | None:
        return self.popen.poll()

    def log_tail(self, lines: int = 5) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class ProcessGroup:
    """The children of one run, stopped in reverse order of start."""

    log_dir: Path
    on_start: Callable[[Child], None] | None = None
    children: list[Child] = field(default_factory=list)

    def start(
        self,
        name: str,
        role: str,
        argv: Sequence[str],
        *,
        python: bool = True,
        own_session: bool = False,
    ) -> Child:
        """Starts `argv` (after this Python interpreter unless `python` is false) with
        its output in `logs/<name>.log`.

        Raises:
            OSError: the executable cannot be started.
        """
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        with open(log, "ab") as out:
            popen = subprocess.Popen(
                [sys.executable, *argv] if python else list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_own_session_dying_with_parent if own_session else _die_with_parent,
            )
        child = Child(name, role, popen, log, own_session)
        self.children.append(child)
        if self.on_start is not None:
            self.on_start(child)
        return child

    def dead(self) -> list[Child]:
        """Children that have exited."""
        return [c for c in self.children if c.exited() is not None]

    def stop(self, child: Child, *, grace: float = 5.0) -> int:
        """SIGTERM, then SIGKILL after `grace` seconds; a child in its own session has
        its whole process group killed at the end, so no grandchild outlives it."""
        if child.exited() is None:
            child.popen.send_signal(signal.SIGTERM)
            try:
                child.popen.wait(grace)
            except subprocess.TimeoutExpired:
                child.popen.kill()
                child.popen.wait()
        if child.own_session:
            try:
                os.killpg(child.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass  # the group is already empty
        return child.popen.returncode

    def stop_all(self, *, grace: float = 5.0) -> None:
        for child in reversed(self.children):
            self.stop(child, grace=grace)
