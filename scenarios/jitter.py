"""The host-jitter probe: how late the runner's own sleeps wake up, each second.

A thread sleeps a fixed interval (10 ms) again and again and records how much longer
each sleep took than asked. On a quiet host that is tens of microseconds; when the
host is preempted (other tenants, a noisy neighbour, CPU throttling) it grows, and so
do the load's send delays and the router's latency, with no fault of the router's.
Analysis reads it (`host_jitter`) to tell a slow router from a slow host.

`JitterSummary` is the pure part (one row per wall-clock second from the samples fed
to it); `JitterProbe` is the thread that feeds it and appends the rows to a shard.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["INTERVAL_NS", "JitterProbe", "JitterSummary"]

# 10 ms: short enough to see a preemption of a few ms, long enough that 100 wake-ups a
# second cost the runner next to nothing.
INTERVAL_NS = 10_000_000
_SECOND_NS = 1_000_000_000


def _rank(ordered: list[int], q: float) -> int:
    """The nearest-rank q-quantile of a sorted, non-empty list."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


class JitterSummary:
    """Collects oversleeps and gives one `host_jitter` row per wall-clock second:
    (t: the second's end in ns, interval_ns, samples, oversleep p50, p99, max)."""

    def __init__(self, interval_ns: int = INTERVAL_NS) -> None:
        self.interval_ns = interval_ns
        self._second: int | None = None
        self._samples: list[int] = []

    def add(self, t_ns: int, oversleep_ns: int) -> tuple | None:
        """Records a sample taken at wall time `t_ns`; returns the previous second's
        row when this sample is the first of a new second, else None."""
        second = t_ns // _SECOND_NS
        row = None
        if self._second is not None and second != self._second:
            row = self.flush()
        self._second = second
        self._samples.append(max(0, oversleep_ns))
        return row

    def flush(self) -> tuple | None:
        """The row of the second being collected (None if it has no sample)."""
        if self._second is None or not self._samples:
            return None
        ordered = sorted(self._samples)
        row = (
            (self._second + 1) * _SECOND_NS,
            self.interval_ns,
            len(ordered),
            _rank(ordered, 0.50),
            _rank(ordered, 0.99),
            ordered[-1],
        )
        self._second, self._samples = None, []
        return row


class Sink(Protocol):
    def append(self, row: tuple) -> None: ...


class JitterProbe:
    """A daemon thread sleeping `interval_ns` in a loop until `stop()`, one row per
    second into `sink`. The clocks are injectable for tests."""

    def __init__(
        self,
        sink: Sink,
        *,
        interval_ns: int = INTERVAL_NS,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
        wall_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self._sink = sink
        self._summary = JitterSummary(interval_ns)
        self._interval_ns = interval_ns
        self._monotonic_ns = monotonic_ns
        self._wall_ns = wall_ns
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="host-jitter", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stops the thread and writes the last (partial) second's row."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if (row := self._summary.flush()) is not None:
            self._sink.append(row)

    def _run(self) -> None:
        interval_s = self._interval_ns / 1e9
        while True:
            before = self._monotonic_ns()
            # Event.wait sleeps like time.sleep (a timed lock wait) but ends at once on
            # stop(); a wake-up by stop() is not a sample.
            if self._stop.wait(interval_s):
                return
            oversleep = self._monotonic_ns() - before - self._interval_ns
            if (row := self._summary.add(self._wall_ns(), oversleep)) is not None:
                self._sink.append(row)
