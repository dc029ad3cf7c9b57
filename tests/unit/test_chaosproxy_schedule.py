"""The fault timeline on a fake clock: which faults are active when."""

from __future__ import annotations

import pytest

from chaosproxy.faults import parse_faults
from chaosproxy.schedule import Timeline

S = 1_000_000_000
T0 = 1_700_000_000 * S


def timeline(*specs):
    data = [
        {"fault_id": fid, "provider": p, "kind": "reset", "start_s": s, "duration_s": d}
        for fid, p, s, d in specs
    ]
    return Timeline(parse_faults(data, ("A", "B")))


def active_ids(tl, provider):
    return [rt.spec.fault_id for rt in tl.active.get(provider, ())]


def planned_ids(tl, t_ns):
    """The windows the plan makes active at `t_ns`, read from the plan itself."""
    return sorted(
        rt.spec.fault_id
        for rt in tl.faults
        if rt.planned_start is not None and rt.planned_start <= t_ns < rt.planned_end
    )


def test_nothing_is_active_before_start():
    tl = timeline(("a", "A", 0, 1))
    assert tl.next_transition() is None
    assert tl.advance(T0 + 10 * S) == []
    assert active_ids(tl, "A") == []
    assert planned_ids(tl, T0) == []
    assert [rt.state for rt in tl.faults] == ["pending"]


def test_fault_is_active_in_half_open_interval():
    tl = timeline(("a", "A", 0.5, 1))
    tl.start(T0)
    tl.advance(T0 + S // 2 - 1)
    assert active_ids(tl, "A") == []
    tl.advance(T0 + S // 2)
    assert active_ids(tl, "A")[0] == "a"
    assert active_ids(tl, "B") == []
    tl.advance(T0 + 3 * S // 2 - 1)
    assert active_ids(tl, "A") == ["a"]
    tl.advance(T0 + 3 * S // 2)
    assert active_ids(tl, "A") == []
    rt = tl.faults[0]
    assert (rt.state, rt.actual_start, rt.actual_end) == ("ended", T0 + S // 2, T0 + 3 * S // 2)


@pytest.mark.parametrize(
    ("t", "expected"),
    [
        (0, []),
        (1, ["a1"]),
        (2.5, ["a1", "b"]),
        (3, ["a2", "b"]),  # a1 ends as a2 starts: never both
        (4.999, ["a2", "b"]),
        (5, ["a2"]),
        (6, []),
    ],
)
def test_planned_and_applied_active_sets_agree(t, expected):
    tl = timeline(("a1", "A", 1, 2), ("a2", "A", 3, 3), ("b", "B", 2, 3))
    tl.start(T0)
    now = T0 + round(t * S)
    tl.advance(now)
    assert planned_ids(tl, now) == expected
    assert sorted(active_ids(tl, "A") + active_ids(tl, "B")) == expected


def test_ends_go_before_starts_at_the_same_instant():
    tl = timeline(("a2", "A", 3, 1), ("a1", "A", 1, 2))
    tl.start(T0)
    order = []
    while (tr := tl.next_transition()) is not None:
        order.append((tr.t_ns - T0, tr.event, tr.fault.spec.fault_id))
        tl.apply(tr, tr.t_ns)
    assert order == [
        (S, "start", "a1"),
        (3 * S, "end", "a1"),
        (3 * S, "start", "a2"),
        (4 * S, "end", "a2"),
    ]


def test_overlapping_faults_on_one_provider_match_in_file_order():
    tl = timeline(("first", "A", 2, 5), ("second", "A", 1, 5))
    tl.start(T0)
    tl.advance(T0 + S)
    assert active_ids(tl, "A")[0] == "second"
    tl.advance(T0 + 2 * S)
    assert active_ids(tl, "A") == ["first", "second"]
    assert active_ids(tl, "A")[0] == "first"


def test_late_application_records_the_actual_time():
    tl = timeline(("a", "A", 1, 1))
    tl.start(T0)
    tr = tl.next_transition()
    tl.apply(tr, T0 + S + 1234)
    assert tl.faults[0].planned_start == T0 + S
    assert tl.faults[0].actual_start == T0 + S + 1234


def test_transitions_must_be_applied_in_order():
    tl = timeline(("a", "A", 1, 1), ("b", "B", 2, 1))
    tl.start(T0)
    first = tl.next_transition()
    tl.apply(first, T0 + S)
    with pytest.raises(ValueError, match="in order"):
        tl.apply(first, T0 + S)


def test_second_start_is_refused():
    tl = timeline(("a", "A", 1, 1))
    tl.start(T0)
    with pytest.raises(Timeline.AlreadyStarted, match=f"already started with t0_ns={T0}"):
        tl.start(T0 + 1)


def test_fractional_offsets_round_to_the_nanosecond():
    tl = timeline(("a", "A", 0.1, 0.2))
    tl.start(T0)
    assert tl.faults[0].planned_start == T0 + 100_000_000
    assert tl.faults[0].planned_end == T0 + 300_000_000
