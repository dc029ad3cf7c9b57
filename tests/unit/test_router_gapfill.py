"""HeadSequencer: every block once, in order, across drops, repeats and gaps."""

from __future__ import annotations

import pytest

from examples.reference_router._gapfill import HeadSequencer


def head(n: int, fork: str = "") -> dict[str, str]:
    return {"number": hex(n), "hash": f"0x{fork}{n:064x}"[:66], "parentHash": f"0x{n - 1:064x}"}


def numbers(headers: list[dict[str, str]]) -> list[int]:
    return [int(h["number"], 16) for h in headers]


def test_consecutive_heads_go_straight_out():
    seq = HeadSequencer(backfill_limit=8)
    out = []
    for n in (5, 6, 7):
        assert seq.offer(head(n)) == []
        out += seq.ready()
    assert numbers(out) == [5, 6, 7]


def test_a_repeated_head_is_dropped_as_a_duplicate():
    seq = HeadSequencer(backfill_limit=8)
    out = []
    for n in (5, 6, 6, 7, 7, 5):
        seq.offer(head(n))
        out += seq.ready()
    assert numbers(out) == [5, 6, 7] and seq.duplicates == 3


def test_a_gap_asks_for_the_missing_blocks_and_delivers_in_order():
    seq = HeadSequencer(backfill_limit=8)
    seq.offer(head(10))
    assert numbers(seq.ready()) == [10]
    assert seq.offer(head(14)) == [11, 12, 13]
    assert seq.ready() == []  # 14 waits for the gap to be filled
    seq.fetched(12, head(12))
    seq.fetched(11, head(11))
    assert numbers(seq.ready()) == [11, 12]
    seq.fetched(13, head(13))
    assert numbers(seq.ready()) == [13, 14]
    assert seq.backfilled == 3 and seq.skipped == 0


def test_a_gap_over_the_limit_fetches_only_the_newest_blocks():
    seq = HeadSequencer(backfill_limit=2)
    seq.offer(head(1))
    seq.ready()
    assert seq.offer(head(10)) == [8, 9]
    for n in (8, 9):
        seq.fetched(n, head(n))
    assert numbers(seq.ready()) == [8, 9, 10]
    assert seq.skipped == 6


def test_without_backfill_a_gap_passes_through():
    seq = HeadSequencer(backfill_limit=0)
    seq.offer(head(1))
    assert seq.offer(head(4)) == []
    assert numbers(seq.ready()) == [1, 4] and seq.skipped == 2


def test_a_failed_fetch_is_given_up_so_later_blocks_still_flow():
    seq = HeadSequencer(backfill_limit=8)
    seq.offer(head(1))
    assert seq.offer(head(3)) == [2]
    seq.fetched(2, None)
    assert numbers(seq.ready()) == [1, 3] and seq.skipped == 1


def test_a_block_arriving_while_its_fetch_is_in_flight_is_delivered_once():
    seq = HeadSequencer(backfill_limit=8)
    seq.offer(head(1))
    assert seq.offer(head(3)) == [2]
    seq.offer(head(2))  # the new subscription sent it after all
    seq.fetched(2, head(2))
    assert numbers(seq.ready()) == [1, 2, 3]


def test_a_head_below_the_delivered_one_with_another_hash_is_dropped():
    seq = HeadSequencer(backfill_limit=8)
    seq.offer(head(5))
    seq.offer(head(6))
    seq.ready()
    seq.offer(head(6, fork="f"))
    assert seq.ready() == [] and seq.duplicates == 1


def test_without_dedupe_repeats_go_out_again():
    seq = HeadSequencer(backfill_limit=8, dedupe=False)
    out = []
    for n in (5, 6, 6, 7):
        seq.offer(head(n))
        out += seq.ready()
    assert numbers(out) == [5, 6, 6, 7] and seq.duplicates == 0


def test_headers_without_a_number_are_ignored():
    seq = HeadSequencer(backfill_limit=8)
    assert seq.offer({"hash": "0x1"}) == [] and seq.ready() == []


def test_negative_limit_is_refused():
    with pytest.raises(ValueError, match="backfill_limit must be >= 0, got -1"):
        HeadSequencer(backfill_limit=-1)


def test_after_a_restart_the_next_head_starts_a_new_stream():
    seq = HeadSequencer(backfill_limit=8)
    seq.offer(head(1))
    seq.ready()
    seq.restart()
    assert seq.offer(head(50)) == []
    assert numbers(seq.ready()) == [50]
