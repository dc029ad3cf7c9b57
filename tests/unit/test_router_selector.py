"""UpstreamSelector: the order each request tries the upstreams in."""

from __future__ import annotations

import pytest

from examples.reference_router import UpstreamSelector


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
