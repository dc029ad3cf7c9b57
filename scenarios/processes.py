"""Child processes of a run: started with their logs captured, stopped for certain.

Every child gets `PR_SET_PDEATHSIG`, so it is sent SIGTERM if the runner dies, even by
SIGKILL; `ProcessGroup.stop_all` sends SIGTERM (children flush their shards on it),
waits, then SIGKILLs whatever is left.

The death signal is set by a few lines of Python that the child runs first and that
then exec the real program (`dying_with_parent`), not by a `preexec_fn`: the runner has
threads (collectors, samplers), and Python code run between fork and exec in a
threaded parent can deadlock on a lock another thread held at the fork.
"""

from __future__ import annotations

import errno
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "START_MARGIN_NS",
    "Child",
    "ProcessGroup",
    "StartGate",
    "dying_with_parent",
    "free_ports",
    "wait_until",
]

# The load starts this long after the last load worker said it was set up (StartGate):
# what is left for a worker to do then is to read the start, open its warm connections
# and enter its schedule, tens of ms on a quiet machine. Start-up itself (Python,
# imports, the mock chain: 0.3 s quiet, over 2 s beside a CPU hog, when the first sends
# of a fixed 2 s margin went out up to 135 ms late) is behind the gate.
START_MARGIN_NS = 1_000_000_000

# Run by the child's own interpreter (isolated, without site: only the standard
# library) before it execs the program: PR_SET_PDEATHSIG (1) asks the kernel for
# SIGTERM when the parent dies, and it survives the exec. A parent that died before
# the prctl would never send it, hence the check of who the parent is now.
_EXEC_DYING_WITH_PARENT = """\
import ctypes, os, signal, sys
if ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM) != 0:
    sys.exit("prctl(PR_SET_PDEATHSIG): " + os.strerror(ctypes.get_errno()))
if os.getppid() != int(sys.argv[1]):
    sys.exit("parent gone before the death signal was set")
os.execv(sys.argv[2], sys.argv[3:])
"""


def dying_with_parent(argv: Sequence[str]) -> list[str]:
    """`argv` made to get SIGTERM when this process dies (even by SIGKILL): start the
    returned command instead, with no `preexec_fn`. The program runs under the pid
    Popen returns, with `argv` exactly as given.

    The death signal comes when the thread that started the child ends, as with
    prctl itself: start children from a thread that lives as long as they should.

    Raises:
        FileNotFoundError: `argv[0]` is not found (on PATH unless it has a slash).
        PermissionError: `argv[0]` is found but is not executable.
    """
    if not argv:
        raise ValueError("an empty command")
    program = shutil.which(argv[0])
    if program is None:
        # What Popen would raise: resolving here keeps a missing program an error of
        # the start, not an exit status of the child found later.
        if os.sep in argv[0] and os.path.exists(argv[0]):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), argv[0])
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), argv[0])
    return [
        sys.executable,
        "-I",
        "-S",
        "-c",
        _EXEC_DYING_WITH_PARENT,
        str(os.getpid()),
        os.path.abspath(program),
        *argv,
    ]


def _reserve_port() -> int:
    """A loopback port the kernel will not hand out again for about a minute.

    Binds port 0, connects to it and closes the accepted end first: that end (local
    port P) goes to TIME_WAIT, which keeps P out of every later `bind(port 0)` and
    outgoing connection's choice, while a server that binds P explicitly with
    SO_REUSEADDR (asyncio, aiohttp, trio, mitmproxy, Rust's std, nginx, HAProxy all do)
    still can. Closing a port-0 socket instead frees P at once, for anyone to take
    between then and the child's bind.
    """
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        address = listener.getsockname()
        with socket.socket() as client:
            client.connect(address)
            accepted, _ = listener.accept()
            accepted.close()  # the server side closes first: TIME_WAIT on port P
        return address[1]


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports reserved for the caller's children to bind.

    Each is held in TIME_WAIT (`_reserve_port`), so no other process's port-0 bind or
    outgoing connection takes it before the child binds it (with SO_REUSEADDR) within
    the next minute. A port-0 bind that was closed again would be free for anyone.
    """
    ports: list[int] = []
    while len(ports) < count:
        port = _reserve_port()
        if port not in ports:
            ports.append(port)
    return ports


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
        ready_fd: int | None = None,
    ) -> Child:
        """Starts `argv` (after this Python interpreter unless `python` is false) with
        its output in `logs/<name>.log`. With `ready_fd` (see `StartGate`), the child
        inherits that descriptor and gets a pipe on stdin.

        Raises:
            OSError: the executable cannot be started.
        """
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        with open(log, "ab") as out:
            popen = subprocess.Popen(
                dying_with_parent([sys.executable, *argv] if python else argv),
                stdin=subprocess.DEVNULL if ready_fd is None else subprocess.PIPE,
                stdout=out,
                pass_fds=() if ready_fd is None else (ready_fd,),
                stderr=subprocess.STDOUT,
                # A session of its own, so that the child's whole process tree (nginx's
                # workers, say) can be killed as one group whatever the child does with
                # its children; setsid() is done by Popen's C code, not in Python.
                start_new_session=own_session,
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


class StartGate:
    """Children held at one start line: load workers that must all begin on one schedule,
    however long each takes to start.

    Each is started through `start`, with `--ready-fd N` added to its command line and a
    pipe on its stdin: when set up, it writes a line on descriptor N, then reads the
    start (epoch ns) as one line from stdin. `wait` returns once every child has said it
    is ready; `release` gives all of them one start.
    """

    def __init__(self) -> None:
        self._held: list[tuple[Child, int]] = []  # each child with its ready pipe's end

    def start(self, start: Callable[..., Child], name: str, role: str, argv: list[str]) -> Child:
        """Starts a held child with `start` (`ProcessGroup.start`'s signature)."""
        r, w = os.pipe()
        try:
            child = start(name, role, [*argv, "--ready-fd", str(w)], ready_fd=w)
        except BaseException:
            os.close(r)
            raise
        finally:
            # The child has its copy: once it exits, reading gives EOF.
            os.close(w)
        self._held.append((child, r))
        return child

    def wait(self, timeout: float) -> None:
        """Returns when every held child is ready.

        Raises:
            ChildProcessError: a child exited before it was ready (named, with its log's
                last lines).
            TimeoutError: some were not ready within `timeout` seconds (named).
        """
        pending = {r: child for child, r in self._held}
        deadline = time.monotonic() + timeout
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                names = ", ".join(c.name for c in pending.values())
                raise TimeoutError(f"{names} not ready within {timeout:g} s")
            readable, _, _ = select.select(list(pending), [], [], left)
            for r in readable:
                child = pending.pop(r)
                if not os.read(r, 64):
                    try:
                        child.popen.wait(5)  # its log is complete once it has exited
                    except subprocess.TimeoutExpired:
                        pass
                    raise ChildProcessError(
                        f"{child.name} exited before it was ready: {child.log_tail(2)}"
                    )

    def release(self, t0_ns: int) -> None:
        """Gives every held child the start `t0_ns`; a child that died meanwhile is left
        to its group (it shows as exited)."""
        line = f"{t0_ns}\n".encode()
        for child, _ in self._held:
            stdin = child.popen.stdin
            assert stdin is not None
            try:
                stdin.write(line)
                stdin.close()
            except BrokenPipeError:
                pass
        self.close()

    def close(self) -> None:
        """Lets go of the ready pipes (after `release`, or when the run is abandoned)."""
        for _, r in self._held:
            os.close(r)
        self._held.clear()
