"""Per-exchange fault selection. Pure: the caller passes the exchange's facts and times.

`Matcher` holds one fault's match state (counts, seeded draws, per-connection
decisions); `TokenBucket` is `rate_limit`'s bucket; `select` applies the composition
rules of docs/ARCHITECTURE.md ("Fault file") to a provider's active faults.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from chaosproxy.faults import MatchSpec

__all__ = ["Matcher", "Selection", "TokenBucket"]


# Per-connection draws kept at most (least recently used dropped first): a router
# that opens a connection per request would otherwise grow this without bound over a
# soak; a connection forgotten and seen again gets a fresh draw.
MAX_CONNECTIONS_REMEMBERED = 65_536


class Matcher:
    """Decides whether one fault applies to an exchange.

    Filters run in this order: methods, subscription kind, header, then the count
    (`first_n` / `after_n` count only exchanges that passed the filters before), then
    the probability. A
    per-connection probability is drawn once, on the connection's first exchange that
    reaches the draw, and kept for the connection's life.
    """

    __slots__ = ("conns", "rng", "seen", "spec")

    def __init__(self, spec: MatchSpec) -> None:
        self.spec = spec
        self.seen = 0
        self.rng = random.Random(spec.seed)
        self.conns: dict[str, bool] = {}

    def accepts(
        self,
        methods: Sequence[str | None],
        header: Callable[[str], str | None],
        conn_id: str,
        subscription: str | None = None,
    ) -> bool:
        """`methods`: the request's method(s), one per batch element; `header(name)`:
        the request's header value or None; `conn_id`: the client connection;
        `subscription`: a notification's subscription kind (``newHeads``, ...)."""
        spec = self.spec
        if spec.methods is not None and not any(m in spec.methods for m in methods):
            return False
        if spec.subscriptions is not None and subscription not in spec.subscriptions:
            return False
        if spec.header is not None:
            value = header(spec.header)
            if value is None or (spec.header_value is not None and value != spec.header_value):
                return False
        if spec.first_n is not None or spec.after_n is not None:
            self.seen += 1
            if spec.first_n is not None and self.seen > spec.first_n:
                return False
            if spec.after_n is not None and self.seen <= spec.after_n:
                return False
        if spec.probability >= 1.0:
            return True
        if spec.per == "connection":
            conns = self.conns
            decided = conns.pop(conn_id, None)
            if decided is None:
                decided = self.rng.random() < spec.probability
                if len(conns) >= MAX_CONNECTIONS_REMEMBERED:
                    del conns[next(iter(conns))]
            # Re-inserted on every use, so the dict's order is least recently used
            # first and only a connection idle behind this many newer ones is forgotten.
            conns[conn_id] = decided
            return decided
        return self.rng.random() < spec.probability


class TokenBucket:
    """`rate_per_s` tokens a second, at most `burst`; starts full."""

    __slots__ = ("burst", "rate", "t_ns", "tokens")

    def __init__(self, rate_per_s: float, burst: float, now_ns: int) -> None:
        self.rate = rate_per_s
        self.burst = burst
        self.tokens = burst
        self.t_ns = now_ns

    def take(self, now_ns: int, cost: float = 1.0) -> bool:
        """Takes `cost` tokens; False when fewer are left (the exchange is limited, and
        takes none)."""
        if now_ns > self.t_ns:
            self.tokens = min(self.burst, self.tokens + (now_ns - self.t_ns) * self.rate / 1e9)
            self.t_ns = now_ns
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False


@dataclass(slots=True)
class Selection:
    """The faults one exchange gets: every matching delay, at most one outcome and at
    most one modifier (see `chaosproxy.schedule.Timeline.select`)."""

    delays: list = field(default_factory=list)
    outcome: object | None = None
    modify: object | None = None

    def __bool__(self) -> bool:
        return bool(self.delays) or self.outcome is not None or self.modify is not None
