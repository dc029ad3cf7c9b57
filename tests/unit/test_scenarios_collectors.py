"""The system collector reads /proc correctly and follows process trees."""

from __future__ import annotations

import os
import subprocess
import sys

from scenarios.collectors import SystemCollector, parse_stat


def test_parse_stat_counts_fields_from_the_last_parenthesis():
    line = (
        "4242 (my (odd) name) S 17 4242 4242 0 -1 4194560 100 0 0 0 "
        "250 50 0 0 20 0 7 0 1000 123456789 300 18446744073709551615 0 0 0 0 0 0 0 0 0 0"
    )
    s = parse_stat(line)
    assert (s.pid, s.ppid, s.cpu_ticks, s.threads) == (4242, 17, 300, 7)
    assert s.rss_bytes == 300 * os.sysconf("SC_PAGE_SIZE")


def test_the_collector_samples_a_child_and_its_descendants():
    # The parent names the grandchild only once the grandchild says it is running:
    # sampled between fork and exec, a process has no interpreter, threads or files yet.
    code = (
        "import subprocess, sys, time; "
        "p = subprocess.Popen([sys.executable, '-c', "
        "'import time; print(1, flush=True); time.sleep(30)'], stdout=subprocess.PIPE); "
        "p.stdout.readline(); print(p.pid, flush=True); time.sleep(30)"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    grandchild = None
    try:
        grandchild = int(parent.stdout.readline())
        rows: list[tuple] = []
        collector = SystemCollector(lambda: {parent.pid: "sut"}, rows)
        collector.sample()
        collector.sample()
        pids = {r[1] for r in rows}
        assert pids == {parent.pid, grandchild}
        assert {r[2] for r in rows} == {"sut"}
        assert all(r[3] is not None and r[3] >= 0 for r in rows[2:]), "cpu after two samples"
        assert all(r[4] > 0 and r[5] >= 3 and r[6] >= 1 for r in rows)
    finally:
        if grandchild:
            try:
                os.kill(grandchild, 9)
            except ProcessLookupError:
                pass
        parent.kill()
        parent.wait()


def test_the_collector_ignores_roots_that_have_exited():
    rows: list[tuple] = []
    SystemCollector(lambda: {999_999_999: "sut"}, rows).sample()
    assert rows == []
