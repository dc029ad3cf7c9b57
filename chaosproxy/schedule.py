"""The fault timeline: which faults are active when. Pure: time values come in as arguments.

Times are integer nanoseconds since the Unix epoch. A fault is active in
``[t0 + start_s, t0 + start_s + duration_s)``; before `Timeline.start` nothing is active.
A driver (see `chaosproxy.addons.scheduler`) sleeps until `next_transition().t_ns`, then
calls `apply(transition, actual_ns)`; tests call `advance(now_ns)` on a fake clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from chaosproxy.faults import FaultSpec

__all__ = ["FaultRuntime", "Timeline", "Transition", "planned_ns"]

NS_PER_S = 1_000_000_000


def planned_ns(t0_ns: int, offset_s: float) -> int:
    """The epoch-ns time `offset_s` seconds after `t0_ns`, rounded to the nanosecond."""
    return t0_ns + round(offset_s * NS_PER_S)


@dataclass(slots=True, eq=False)
class FaultRuntime:
    """A fault and what happened to it in this run."""

    spec: FaultSpec
    state: Literal["pending", "active", "ended"] = "pending"
    planned_start: int | None = None
    planned_end: int | None = None
    actual_start: int | None = None
    actual_end: int | None = None
    # Exchanges the fault was applied to, counted when the exchange is recorded.
    applied: int = 0


@dataclass(frozen=True, slots=True)
class Transition:
    t_ns: int
    event: Literal["start", "end"]
    fault: FaultRuntime


class AlreadyStartedError(RuntimeError):
    """`Timeline.start` was called a second time."""


class Timeline:
    """The faults of one run, their states, and the active set per provider.

    `active` maps provider -> active faults in file order; it is what the request hook
    reads, so it is rebuilt on each transition rather than computed per request.
    """

    AlreadyStarted = AlreadyStartedError

    def __init__(self, faults: list[FaultSpec]) -> None:
        self.faults = [FaultRuntime(f) for f in faults]
        self.t0_ns: int | None = None
        self.active: dict[str, tuple[FaultRuntime, ...]] = {}
        self._transitions: list[Transition] = []
        self._next = 0

    @property
    def started(self) -> bool:
        return self.t0_ns is not None

    def start(self, t0_ns: int) -> None:
        """Fixes t0 and plans every transition.

        Raises:
            AlreadyStartedError: when already started.
        """
        if self.t0_ns is not None:
            raise AlreadyStartedError(f"already started with t0_ns={self.t0_ns}")
        self.t0_ns = t0_ns
        transitions = []
        for rt in self.faults:
            rt.planned_start = planned_ns(t0_ns, rt.spec.start_s)
            rt.planned_end = planned_ns(t0_ns, rt.spec.end_s)
            transitions.append(Transition(rt.planned_start, "start", rt))
            transitions.append(Transition(rt.planned_end, "end", rt))
        order = {id(rt): i for i, rt in enumerate(self.faults)}
        # At equal times ends go first, so back-to-back faults never overlap.
        transitions.sort(key=lambda t: (t.t_ns, t.event == "start", order[id(t.fault)]))
        self._transitions = transitions
        self._next = 0

    def next_transition(self) -> Transition | None:
        """The next transition to apply, or None when all are applied (or not started)."""
        if self._next < len(self._transitions):
            return self._transitions[self._next]
        return None

    def apply(self, transition: Transition, actual_ns: int) -> None:
        """Applies `transition` (which must be `next_transition()`) at `actual_ns`."""
        if transition is not self.next_transition():
            raise ValueError("transitions must be applied in order")
        self._next += 1
        rt = transition.fault
        if transition.event == "start":
            rt.state = "active"
            rt.actual_start = actual_ns
        else:
            rt.state = "ended"
            rt.actual_end = actual_ns
        self._rebuild_active()

    def advance(self, now_ns: int) -> list[Transition]:
        """Applies every transition due at or before `now_ns`, each at its planned time."""
        applied = []
        while (t := self.next_transition()) is not None and t.t_ns <= now_ns:
            self.apply(t, t.t_ns)
            applied.append(t)
        return applied

    def planned_active_at(self, t_ns: int) -> list[FaultRuntime]:
        """The faults the plan makes active at `t_ns` (empty before `start`)."""
        if self.t0_ns is None:
            return []
        return [
            rt
            for rt in self.faults
            if rt.planned_start is not None
            and rt.planned_end is not None
            and rt.planned_start <= t_ns < rt.planned_end
        ]

    def match(self, provider: str) -> FaultRuntime | None:
        """The fault to apply to an exchange with `provider` now: the first active one."""
        active = self.active.get(provider)
        return active[0] if active else None

    def _rebuild_active(self) -> None:
        active: dict[str, list[FaultRuntime]] = {}
        for rt in self.faults:
            if rt.state == "active":
                active.setdefault(rt.spec.provider, []).append(rt)
        self.active = {p: tuple(v) for p, v in active.items()}
