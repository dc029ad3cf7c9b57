"""scenarios.processes.StartGate: load workers held until every one is set up, then
given one start, however long each took to start."""

from __future__ import annotations

import textwrap
import time

import pytest

from scenarios.processes import ProcessGroup, StartGate

pytestmark = pytest.mark.timeout(60)

# A held worker stand-in: set-up takes `delay` seconds; it then writes when it was ready
# and says so on --ready-fd, reads its start from stdin and writes what it got.
HELD = textwrap.dedent(
    """
    import os, sys, time
    out, delay = sys.argv[1], float(sys.argv[2])
    fd = int(sys.argv[sys.argv.index("--ready-fd") + 1])
    time.sleep(delay)
    ready_at = time.time_ns()
    os.write(fd, b"ready\\n")
    os.close(fd)
    start = sys.stdin.readline().strip()
    open(out, "w").write(f"{ready_at} {start}")
    """
)


@pytest.fixture
def group(tmp_path):
    group = ProcessGroup(tmp_path / "logs")
    try:
        yield group
    finally:
        group.stop_all(grace=1)


def test_held_children_all_get_one_start_once_the_slowest_is_ready(group, tmp_path):
    gate = StartGate()
    outs = [tmp_path / "fast", tmp_path / "slow"]
    for out, delay in zip(outs, ("0", "1.5"), strict=True):
        gate.start(group.start, out.name, "test", ["-c", HELD, str(out), delay])
    gate.wait(30)
    waited_until = time.time_ns()
    gate.release(12345)
    for child in group.children:
        assert child.popen.wait(30) == 0, child.log_tail()
    got = [out.read_text().split() for out in outs]
    assert [start for _, start in got] == ["12345", "12345"]
    # The slow one was ready before wait returned: wait held out for it.
    assert all(int(ready_at) <= waited_until for ready_at, _ in got)


def test_a_child_that_exits_before_it_is_ready_is_named_with_its_last_words(group):
    gate = StartGate()
    gate.start(group.start, "fast", "test", ["-c", HELD, "/dev/null", "0"])
    gate.start(group.start, "broken", "test", ["-c", "import sys; sys.exit('bad mix')"])
    with pytest.raises(ChildProcessError, match="broken exited before it was ready: bad mix"):
        gate.wait(30)
    gate.close()


def test_a_child_never_ready_is_named_when_the_wait_runs_out(group):
    gate = StartGate()
    gate.start(group.start, "stuck", "test", ["-c", HELD, "/dev/null", "600"])
    with pytest.raises(TimeoutError, match=r"stuck not ready within 0\.5 s"):
        gate.wait(0.5)
    gate.close()


def test_a_child_that_died_after_it_was_ready_does_not_stop_the_others_start(group, tmp_path):
    gate = StartGate()
    gate.start(group.start, "gone", "test", ["-c", HELD, str(tmp_path / "gone"), "0"])
    gate.start(group.start, "kept", "test", ["-c", HELD, str(tmp_path / "kept"), "0"])
    gate.wait(30)
    gone = group.children[0]
    gone.popen.kill()
    gone.popen.wait()
    gate.release(7)
    assert group.children[1].popen.wait(30) == 0
    assert (tmp_path / "kept").read_text().split()[1] == "7"
