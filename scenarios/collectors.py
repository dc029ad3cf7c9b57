"""The system collector: CPU, RSS, open files and threads of every child, each second.

Parsing `/proc/<pid>/stat` is pure (`parse_stat`); `SystemCollector` is a thread that
samples the process tree of each role's processes and appends rows to the `system`
shard. CPU is the share of one core used since the previous sample.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

__all__ = ["ProcStat", "SystemCollector", "parse_stat"]

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True)
class ProcStat:
    pid: int
    ppid: int
    cpu_ticks: int
    threads: int
    rss_bytes: int


def parse_stat(text: str) -> ProcStat:
    """Parses one `/proc/<pid>/stat` line (proc(5)); the command name may hold spaces
    and parentheses, so fields are counted from the last ')'."""
    head, _, rest = text.rpartition(")")
    pid = int(head.split("(", 1)[0])
    fields = rest.split()
    # rest starts at field 3 (state): ppid is field 4, utime 14, stime 15,
    # num_threads 20, rss (pages) 24.
    return ProcStat(
        pid=pid,
        ppid=int(fields[1]),
        cpu_ticks=int(fields[11]) + int(fields[12]),
        threads=int(fields[17]),
        rss_bytes=int(fields[21]) * _PAGE,
    )


class Sink(Protocol):
    def append(self, row: tuple) -> None: ...


def _read_stat(pid: int) -> ProcStat | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return parse_stat(f.read())
    except (OSError, ValueError, IndexError):
        return None  # the process ended between listing and reading


def _open_files(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def _descendants(roots: Iterable[int], stats: dict[int, ProcStat]) -> set[int]:
    children: dict[int, list[int]] = {}
    for s in stats.values():
        children.setdefault(s.ppid, []).append(s.pid)
    found: set[int] = set()
    stack = [r for r in roots if r in stats]
    while stack:
        pid = stack.pop()
        if pid not in found:
            found.add(pid)
            stack.extend(children.get(pid, ()))
    return found


class SystemCollector:
    """Samples, every `interval` seconds, each root process given by `roots()` (a
    mapping of pid to role) and all of its descendants, until `stop()`."""

    def __init__(
        self,
        roots: Callable[[], dict[int, str]],
        sink: Sink,
        *,
        interval: float = 1.0,
    ) -> None:
        self._roots = roots
        self._sink = sink
        self._interval = interval
        self._previous: dict[int, tuple[int, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="system-collector", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def sample(self) -> None:
        """Takes one sample of every tracked process."""
        roots = self._roots()
        if not roots:
            return
        stats = {}
        for name in os.listdir("/proc"):
            if name.isdigit() and (s := _read_stat(int(name))) is not None:
                stats[s.pid] = s
        now_ns = time.time_ns()
        now = time.monotonic()
        for root, role in roots.items():
            for pid in _descendants([root], stats):
                s = stats[pid]
                before = self._previous.get(pid)
                self._previous[pid] = (s.cpu_ticks, now)
                cpu = None
                if before is not None and now > before[1]:
                    cpu = (s.cpu_ticks - before[0]) / _CLOCK_TICKS / (now - before[1])
                self._sink.append(
                    (now_ns, pid, role, cpu, s.rss_bytes, _open_files(pid), s.threads)
                )

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.sample()
