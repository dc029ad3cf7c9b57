"""Pins the anvil wrapper's mining: anvil never mines by its own timer (``--no-mining``);
block n is due at, and stamped, genesis + n * block time, so every node of a fleet mines
the same blocks however late it runs."""

from __future__ import annotations

import pytest

from providers.anvil import anvil_argv, due_blocks

T = 1_700_000_000


def test_anvil_is_started_without_a_mining_timer_of_its_own():
    argv = anvil_argv("anvil", 8545, timestamp=T, block_time_ms=2000)
    assert "--no-mining" in argv and "--block-time" not in argv
    assert argv[argv.index("--timestamp") + 1] == str(T)


def test_a_block_is_due_at_its_own_time_and_not_before():
    assert due_blocks(T + 0.999, T, 1, 0) == []
    assert due_blocks(T + 1.0, T, 1, 0) == [T + 1]
    assert due_blocks(T + 5.5, T, 2, 1) == [T + 4]


def test_a_late_node_catches_up_with_the_same_timestamps_as_a_punctual_one():
    punctual = [s for k in range(1, 5) for s in due_blocks(T + k + 0.01, T, 1, k - 1)]
    late = due_blocks(T + 4.9, T, 1, 0)  # starved for almost 4 s
    assert punctual == late == [T + 1, T + 2, T + 3, T + 4]


def test_nothing_is_due_again_once_mined_nor_before_genesis():
    assert due_blocks(T + 3.2, T, 1, 3) == []
    assert due_blocks(T - 10, T, 1, 0) == []


@pytest.mark.parametrize("block_time_ms", [500, 1500, 0])
def test_a_block_time_that_is_not_whole_seconds_is_refused(block_time_ms):
    with pytest.raises(ValueError, match="multiple of 1000"):
        anvil_argv("anvil", 8545, timestamp=T, block_time_ms=block_time_ms)
