"""The order in which one request tries the upstreams: a pure object, no I/O."""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["STRATEGIES", "Strategy", "UpstreamSelector"]

type Strategy = Literal["round_robin", "priority"]
STRATEGIES: tuple[str, ...] = get_args(Strategy.__value__)


class UpstreamSelector:
    """Plans each request's attempt order over ``count`` upstreams (indices in config order).

    ``round_robin`` starts each request one upstream further than the last and goes on
    in config order, wrapping around; ``priority`` always starts at the first. Either way a
    plan names every upstream once, so failover tries each at most once per request.
    """

    __slots__ = ("_next", "_plans")

    def __init__(self, count: int, strategy: Strategy) -> None:
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
        base = tuple(range(count))
        if strategy == "priority":
            self._plans: tuple[tuple[int, ...], ...] = (base,)
        else:
            self._plans = tuple(base[i:] + base[:i] for i in range(count))
        self._next = 0

    def plan(self) -> tuple[int, ...]:
        """The attempt order for the next request; advances the rotation."""
        plans = self._plans
        plan = plans[self._next]
        self._next = (self._next + 1) % len(plans)
        return plan
