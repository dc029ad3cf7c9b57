"""The precise timer: a timerfd under trio, on real time (short waits)."""

from __future__ import annotations

import pytest
import trio

from loadgen.timer import PreciseTimer, precise_timer_available

pytestmark = pytest.mark.skipif(not precise_timer_available(), reason="needs Linux timerfd")


async def test_a_precise_sleep_ends_at_its_deadline_not_before():
    timer = PreciseTimer()
    try:
        for delay in (0.0003, 0.0017, 0.004):
            deadline = trio.current_time() + delay
            await timer.sleep_until(deadline)
            # Never early; late by scheduling only (generous bound: the machine is shared).
            assert 0 <= trio.current_time() - deadline < 0.05
    finally:
        timer.close()


async def test_a_deadline_in_the_past_is_a_checkpoint():
    timer = PreciseTimer()
    with trio.CancelScope() as scope:
        scope.cancel()
        await timer.sleep_until(trio.current_time() - 1)
    assert scope.cancelled_caught
    timer.close()


async def test_a_cancelled_sleep_leaves_the_timer_disarmed_and_reusable():
    timer = PreciseTimer()
    try:
        with trio.move_on_after(0.001):
            await timer.sleep_until(trio.current_time() + 10)
        deadline = trio.current_time() + 0.002
        await timer.sleep_until(deadline)
        assert trio.current_time() >= deadline
    finally:
        timer.close()
