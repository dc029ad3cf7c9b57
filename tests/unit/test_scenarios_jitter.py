"""The host-jitter probe: one row per wall-clock second of how late its sleeps woke up."""

from __future__ import annotations

import itertools
import time

from analysis.shards import SCHEMAS
from scenarios.jitter import INTERVAL_NS, JitterProbe, JitterSummary

S = 1_000_000_000


def test_each_second_becomes_one_row_of_percentiles_when_the_next_one_starts():
    summary = JitterSummary(INTERVAL_NS)
    # 100 samples in second 5: oversleeps 1..100 µs.
    rows = [summary.add(5 * S + i * 10_000_000, (i + 1) * 1000) for i in range(100)]
    assert rows == [None] * 100, "no row until the second is over"
    row = summary.add(6 * S + 1, 7)
    assert row == (6 * S, INTERVAL_NS, 100, 50_000, 99_000, 100_000)
    assert len(row) == len(SCHEMAS["host_jitter"])
    # Second 6 holds one sample; flush gives it (the run's last, partial second).
    assert summary.flush() == (7 * S, INTERVAL_NS, 1, 7, 7, 7)
    assert summary.flush() is None


def test_a_skipped_second_gives_no_row_and_a_negative_oversleep_counts_as_none():
    summary = JitterSummary(INTERVAL_NS)
    summary.add(1 * S, -50)  # a clock that woke early is not preempted
    assert summary.add(4 * S, 3_000_000) == (2 * S, INTERVAL_NS, 1, 0, 0, 0)
    assert summary.flush() == (5 * S, INTERVAL_NS, 1, 3_000_000, 3_000_000, 3_000_000)


def test_the_probe_thread_measures_oversleep_against_the_monotonic_clock():
    rows: list[tuple] = []
    # Each sleep is seen to take 12 ms (2 ms late); the wall clock moves 0.25 s per
    # sample, so every fourth sample starts a new second.
    mono = itertools.count(0, 12_000_000)
    wall = itertools.count(10 * S, S // 4)
    probe = JitterProbe(rows, monotonic_ns=lambda: next(mono), wall_ns=lambda: next(wall))
    probe.start()
    deadline = time.monotonic() + 10
    while len(rows) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    probe.stop()
    assert rows[0] == (11 * S, INTERVAL_NS, 4, 2_000_000, 2_000_000, 2_000_000)
    assert all(r[0] % S == 0 and r[2] >= 1 for r in rows)
