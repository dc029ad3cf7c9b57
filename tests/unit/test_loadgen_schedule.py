"""Arrival models: exact intended times, counts, and the split between workers."""

from __future__ import annotations

from itertools import pairwise

import pytest

from loadgen.schedule import (
    Bursts,
    ClosedLoop,
    ConstantRate,
    LinearRamp,
    Poisson,
    Share,
    Steps,
    parse_arrival,
)

SEC = 1_000_000_000


def test_constant_rate_spaces_sends_evenly():
    assert list(ConstantRate(4, 1).offsets_ns()) == [0, SEC // 4, SEC // 2, 3 * SEC // 4]


def test_a_linear_ramp_sends_as_many_calls_as_the_area_under_its_rate():
    ramp = LinearRamp(0, 100, 10)
    offsets = list(ramp.offsets_ns())
    assert ramp.count == len(offsets) == 500
    assert offsets == sorted(offsets) and offsets[-1] < 10 * SEC
    # The rate grows: the first second holds few calls, the last one many.
    first = sum(1 for o in offsets if o < SEC)
    last = sum(1 for o in offsets if o >= 9 * SEC)
    assert first == 5 and last == 95


def test_a_flat_ramp_is_a_constant_rate():
    assert list(LinearRamp(20, 20, 2).offsets_ns()) == list(ConstantRate(20, 2).offsets_ns())


def test_steps_run_one_rate_after_another():
    offsets = list(Steps(((2, 1), (0, 1), (4, 0.5))).offsets_ns())
    assert offsets == [0, SEC // 2, 2 * SEC, 2 * SEC + SEC // 4]


def test_bursts_raise_the_rate_at_the_start_of_every_period():
    b = Bursts(base_rate=10, burst_rate=100, every_s=1, burst_s=0.1, duration_s=3)
    offsets = list(b.offsets_ns())
    assert b.count == len(offsets) == 3 * (10 + 9)
    in_bursts = [o for o in offsets if o % SEC < SEC // 10]
    assert len(in_bursts) == 30


def test_poisson_arrivals_are_reproducible_from_the_seed_and_near_the_rate():
    a = list(Poisson(1000, 5, seed=3).offsets_ns())
    assert a == list(Poisson(1000, 5, seed=3).offsets_ns())
    assert a != list(Poisson(1000, 5, seed=4).offsets_ns())
    assert 4800 < len(a) < 5200 and Poisson(1000, 5, seed=3).count == len(a)
    gaps = [y - x for x, y in pairwise(a)]
    # Exponential gaps: about 63% are shorter than the mean.
    assert 0.6 < sum(1 for g in gaps if g < SEC // 1000) / len(gaps) < 0.66


def test_workers_sharing_a_schedule_send_every_call_once_between_them():
    whole = ConstantRate(100, 1)
    parts = [Share(whole, i, 3) for i in range(3)]
    merged = sorted(o for p in parts for o in p.offsets_ns())
    assert merged == list(whole.offsets_ns())
    assert [p.count for p in parts] == [34, 33, 33]


@pytest.mark.parametrize(
    "spec,expected",
    [
        ("constant:10", ConstantRate(10, 2)),
        ("ramp:1,9", LinearRamp(1, 9, 2)),
        ("steps:5@1,10@1", Steps(((5, 1), (10, 1)))),
        ("poisson:50", Poisson(50, 2, 7)),
        ("bursts:1,10,1,0.5", Bursts(1, 10, 1, 0.5, 2)),
        ("closed:8,20", ClosedLoop(8, 2, 0.02)),
        ("closed:8", ClosedLoop(8, 2, 0.0)),
    ],
)
def test_parse_arrival_reads_every_model(spec, expected):
    assert parse_arrival(spec, 2, seed=7) == expected


@pytest.mark.parametrize(
    "spec,message",
    [
        ("zigzag:1", "arrival must be one of"),
        ("constant:x", "not a number"),
        ("ramp:1", "needs 2 comma-separated numbers"),
        ("steps:5", "each step is RATE@SECONDS"),
        ("constant:0", "rate must be > 0, got 0.0"),
        ("ramp:-1,5", "ramp rates must be >= 0"),
        ("bursts:1,10,1,2", "burst_s must be in (0, every_s)"),
        ("closed:0", "clients must be >= 1"),
        ("closed:x", "closed:CLIENTS"),
    ],
)
def test_parse_arrival_names_the_bad_value(spec, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_arrival(spec, 2)
