"""The order in which one request tries the upstreams: pure objects, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

__all__ = ["STRATEGIES", "LatencyTracker", "Strategy", "UpstreamSelector"]

type Strategy = Literal["round_robin", "priority", "fastest"]
STRATEGIES: tuple[str, ...] = get_args(Strategy.__value__)

# Weight of the newest sample in the moving average: 0.3 forgets a sample's influence
# after about ten more, so "recent" means the last few seconds at demo rates.
LATENCY_ALPHA = 0.3


class LatencyTracker:
    """An exponentially weighted moving average of each upstream's latency, in seconds."""

    __slots__ = ("alpha", "values")

    def __init__(self, count: int, alpha: float = LATENCY_ALPHA) -> None:
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self.alpha = alpha
        self.values: list[float | None] = [None] * count

    def observe(self, index: int, seconds: float) -> None:
        old = self.values[index]
        self.values[index] = seconds if old is None else old + self.alpha * (seconds - old)


class UpstreamSelector:
    """Plans each request's attempt order over ``count`` upstreams (indices in config order).

    ``round_robin`` starts each request one upstream further than the last and goes on
    in config order, wrapping around; ``priority`` always starts at the first; ``fastest``
    orders by recent latency, upstreams never measured first (so each gets measured), ties
    in config order. Every plan names every upstream once, so failover tries each at most
    once per request.
    """

    __slots__ = ("_next", "_plans", "strategy")

    def __init__(self, count: int, strategy: Strategy) -> None:
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
        self.strategy = strategy
        base = tuple(range(count))
        if strategy == "round_robin":
            self._plans: tuple[tuple[int, ...], ...] = tuple(
                base[i:] + base[:i] for i in range(count)
            )
        else:
            self._plans = (base,)
        self._next = 0

    def plan(self, latencies: Sequence[float | None] = ()) -> tuple[int, ...]:
        """The attempt order for the next request; advances the rotation.

        Args:
            latencies: per upstream, its recent latency (``fastest`` only).
        """
        if self.strategy == "fastest":
            base = self._plans[0]
            return tuple(sorted(base, key=lambda i: -1.0 if (v := latencies[i]) is None else v))
        plans = self._plans
        plan = plans[self._next]
        self._next = (self._next + 1) % len(plans)
        return plan
