"""UpstreamSelector: the order each request tries the upstreams in."""

from __future__ import annotations

import pytest

from examples.reference_router import UpstreamSelector
from examples.reference_router._selector import LatencyTracker


def test_round_robin_rotates_the_starting_upstream_per_request():
    selector = UpstreamSelector(3, "round_robin")
    assert [selector.plan()[0] for _ in range(7)] == [0, 1, 2, 0, 1, 2, 0]


def test_round_robin_fails_over_in_config_order_wrapping_around():
    selector = UpstreamSelector(3, "round_robin")
    assert [selector.plan() for _ in range(3)] == [(0, 1, 2), (1, 2, 0), (2, 0, 1)]


def test_priority_always_starts_at_the_first_upstream():
    selector = UpstreamSelector(3, "priority")
    assert {selector.plan() for _ in range(5)} == {(0, 1, 2)}


@pytest.mark.parametrize("strategy", ["round_robin", "priority"])
def test_every_plan_names_each_upstream_once(strategy):
    selector = UpstreamSelector(4, strategy)
    for _ in range(9):
        assert sorted(selector.plan()) == [0, 1, 2, 3]


def test_single_upstream_plan():
    assert UpstreamSelector(1, "round_robin").plan() == (0,)


@pytest.mark.parametrize(
    ("count", "strategy", "message"),
    [(0, "priority", "count must be >= 1"), (2, "random", "strategy must be one of")],
)
def test_selector_rejects_misuse(count, strategy, message):
    with pytest.raises(ValueError, match=message):
        UpstreamSelector(count, strategy)


def test_fastest_orders_by_recent_latency_unmeasured_first():
    selector = UpstreamSelector(3, "fastest")
    assert selector.plan([0.05, None, 0.01]) == (1, 2, 0)
    assert selector.plan([0.05, 0.02, 0.01]) == (2, 1, 0)


def test_fastest_breaks_ties_in_config_order():
    assert UpstreamSelector(3, "fastest").plan([0.01, 0.01, 0.01]) == (0, 1, 2)


def test_latency_average_follows_recent_samples():
    tracker = LatencyTracker(1, alpha=0.5)
    tracker.observe(0, 0.1)
    assert tracker.values[0] == 0.1
    tracker.observe(0, 0.3)
    assert tracker.values[0] == pytest.approx(0.2)
    for _ in range(20):
        tracker.observe(0, 0.01)
    assert tracker.values[0] == pytest.approx(0.01, abs=1e-5)
