"""Child processes of a run: started with their logs captured, stopped for certain.

Every child gets `PR_SET_PDEATHSIG`, so it is sent SIGTERM if the runner dies, even by
SIGKILL; `ProcessGroup.stop_all` sends SIGTERM (children flush their shards on it),
waits, then SIGKILLs whatever is left.
"""

from __future__ import annotations

import ctypes
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

    def start(self, name: str, role: str, argv: Sequence[str]) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        with open(log, "ab") as out:
            popen = subprocess.Popen(
                [sys.executable, *argv],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        child = Child(name, role, popen, log)
        self.children.append(child)
        if self.on_start is not None:
            self.on_start(child)
        return child

    def dead(self) -> list[Child]:
        """Children that have exited."""
        return [c for c in self.children if c.exited() is not None]

    def stop(self, child: Child, *, grace: float = 5.0) -> int:
        if child.exited() is None:
            child.popen.send_signal(signal.SIGTERM)
            try:
                child.popen.wait(grace)
            except subprocess.TimeoutExpired:
                child.popen.kill()
                child.popen.wait()
        return child.popen.returncode

    def stop_all(self, *, grace: float = 5.0) -> None:
        for child in reversed(self.children):
            self.stop(child, grace=grace)
