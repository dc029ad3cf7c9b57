"""The fault timeline: which faults are active when. Pure: time values come in as arguments.

Times are integer nanoseconds since the Unix epoch. A fault's span
``[t0 + start_s, t0 + start_s + duration_s)`` is cut into windows by its schedule
(`windows`); each window is one `FaultRuntime`, with id ``fault_id`` for a single
window and ``fault_id#i`` for the i-th of several, so that every window is one row of
`chaos_events`. Before `Timeline.start` nothing is active. A driver (see
`chaosproxy.addons.scheduler`) sleeps until `next_transition().t_ns`, then calls
`apply(transition, actual_ns)`; tests call `advance(now_ns)` on a fake clock. Faults can
be added and cleared at run time (the control API); `clear` and `reset` end active
windows at once and return the transitions they applied, for the driver to record.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from chaosproxy.faults import WS_CALL_KINDS, FaultSpec, ScheduleSpec
from chaosproxy.matching import Matcher, Selection, TokenBucket

__all__ = ["FaultRuntime", "Timeline", "Transition", "planned_ns", "windows"]

NS_PER_S = 1_000_000_000


def planned_ns(t0_ns: int, offset_s: float) -> int:
    """The epoch-ns time `offset_s` seconds after `t0_ns`, rounded to the nanosecond."""
    return t0_ns + round(offset_s * NS_PER_S)


def windows(start_s: float, duration_s: float, schedule: ScheduleSpec) -> list[tuple[float, float]]:
    """The (start_s, end_s) windows of a fault, relative to t0, in time order."""
    end = start_s + duration_s
    if schedule.kind == "once":
        return [(start_s, end)]
    if schedule.kind == "flap":
        out = []
        t = start_s
        for _ in range(schedule.count):
            out.append((t, t + schedule.down_s))
            t += schedule.down_s + schedule.up_s
        return out
    rng = random.Random(schedule.seed)
    out = []
    t = start_s + rng.expovariate(1.0 / schedule.mtbf_s)
    while t < end:
        w_end = min(t + schedule.down_s, end)
        out.append((t, w_end))
        t = w_end + rng.expovariate(1.0 / schedule.mtbf_s)
    return out


@dataclass(slots=True, eq=False)
class FaultState:
    """What all windows of one fault share: its match state and rate-limit bucket."""

    spec: FaultSpec
    matcher: Matcher
    bucket: TokenBucket | None = None
    order: int = 0
    # Notifications a ws fault's match let through, for its `every_k`.
    notifications: int = 0


@dataclass(slots=True, eq=False)
class FaultRuntime:
    """One window of a fault and what happened to it in this run."""

    spec: FaultSpec
    window_id: str = ""
    offset_start_s: float = 0.0
    offset_end_s: float = 0.0
    shared: FaultState | None = None
    state: Literal["pending", "active", "ended", "cancelled"] = "pending"
    planned_start: int | None = None
    planned_end: int | None = None
    actual_start: int | None = None
    actual_end: int | None = None
    # Exchanges (or WebSocket messages) the fault was applied to, counted when recorded.
    applied: int = 0
    # Per-window extras a driver may keep (e.g. open WebSocket handles).
    extra: dict = field(default_factory=dict)

    def progress(self, now_ns: int) -> float:
        """How far through its window `now_ns` is, in [0, 1]."""
        if self.planned_start is None or self.planned_end is None:
            return 0.0
        span = self.planned_end - self.planned_start
        return 0.0 if span <= 0 else min(1.0, max(0.0, (now_ns - self.planned_start) / span))


@dataclass(frozen=True, slots=True)
class Transition:
    t_ns: int
    event: Literal["start", "end"]
    fault: FaultRuntime


class AlreadyStartedError(RuntimeError):
    """`Timeline.start` was called a second time."""


class ConflictError(ValueError):
    """A fault id is applied again with different content."""


def _runtimes(spec: FaultSpec, shared: FaultState) -> list[FaultRuntime]:
    ws = windows(spec.start_s, spec.duration_s, spec.schedule)
    single = spec.schedule.kind == "once"
    return [
        FaultRuntime(spec, spec.fault_id if single else f"{spec.fault_id}#{i}", s, e, shared)
        for i, (s, e) in enumerate(ws)
    ]


class Timeline:
    """The faults of one run, their states, and the active set per provider.

    `active` maps provider -> active windows in plan order (file order, then the order
    the control API added them); it is what the request hook reads, so it is rebuilt on
    each transition rather than computed per request.
    """

    AlreadyStarted = AlreadyStartedError
    Conflict = ConflictError

    def __init__(self, faults: Sequence[FaultSpec]) -> None:
        self.faults: list[FaultRuntime] = []
        self.specs: dict[str, FaultState] = {}
        self.t0_ns: int | None = None
        self.active: dict[str, tuple[FaultRuntime, ...]] = {}
        self._pending: list[Transition] = []
        self._order = 0
        for spec in faults:
            self._add(spec)

    @property
    def started(self) -> bool:
        return self.t0_ns is not None

    def _add(self, spec: FaultSpec) -> list[FaultRuntime]:
        shared = FaultState(spec, Matcher(spec.match), order=self._order)
        self._order += 1
        self.specs[spec.fault_id] = shared
        rts = _runtimes(spec, shared)
        self.faults.extend(rts)
        return rts

    def _plan(self, rts: list[FaultRuntime]) -> None:
        assert self.t0_ns is not None
        for rt in rts:
            rt.planned_start = planned_ns(self.t0_ns, rt.offset_start_s)
            rt.planned_end = planned_ns(self.t0_ns, rt.offset_end_s)
            self._pending.append(Transition(rt.planned_start, "start", rt))
            self._pending.append(Transition(rt.planned_end, "end", rt))
        order = {id(rt): i for i, rt in enumerate(self.faults)}
        # At equal times ends go first, so back-to-back windows never overlap.
        self._pending.sort(key=lambda t: (t.t_ns, t.event == "start", order[id(t.fault)]))

    def start(self, t0_ns: int) -> None:
        """Fixes t0 and plans every transition.

        Raises:
            AlreadyStartedError: when already started.
        """
        if self.t0_ns is not None:
            raise AlreadyStartedError(f"already started with t0_ns={self.t0_ns}")
        self.t0_ns = t0_ns
        self._plan([rt for rt in self.faults if rt.state == "pending"])

    def add(self, spec: FaultSpec) -> bool:
        """Adds a fault at run time; False when the same fault is already there
        (idempotent re-apply).

        Raises:
            ConflictError: the id is taken by a different fault.
        """
        existing = self.specs.get(spec.fault_id)
        if existing is not None:
            if existing.spec == spec:
                return False
            raise ConflictError(
                f"fault_id {spec.fault_id!r} is already applied with different content; "
                "clear it first"
            )
        rts = self._add(spec)
        if self.t0_ns is not None:
            self._plan(rts)
        return True

    def clear(self, fault_ids: Sequence[str] | None, now_ns: int) -> list[Transition]:
        """Ends the active windows of the faults (all when None) at `now_ns`, cancels
        their pending windows and forgets them; returns the end transitions applied.

        Raises:
            KeyError: naming an unknown fault id.
        """
        ids = list(self.specs) if fault_ids is None else list(fault_ids)
        for fid in ids:
            if fid not in self.specs:
                raise KeyError(fid)
        gone = set(ids)
        ended: list[Transition] = []
        for rt in self.faults:
            if rt.spec.fault_id not in gone:
                continue
            if rt.state == "active":
                rt.state = "ended"
                rt.actual_end = now_ns
                ended.append(Transition(now_ns, "end", rt))
            elif rt.state == "pending":
                rt.state = "cancelled"
        self._pending = [t for t in self._pending if t.fault.spec.fault_id not in gone]
        for fid in ids:
            del self.specs[fid]
        self._rebuild_active()
        return ended

    def next_transition(self) -> Transition | None:
        """The next transition to apply, or None when all are applied (or not started)."""
        return self._pending[0] if self._pending else None

    def apply(self, transition: Transition, actual_ns: int) -> None:
        """Applies `transition` (which must be `next_transition()`) at `actual_ns`."""
        if transition is not self.next_transition():
            raise ValueError("transitions must be applied in order")
        self._pending.pop(0)
        rt = transition.fault
        if transition.event == "start":
            rt.state = "active"
            rt.actual_start = actual_ns
            shared = rt.shared
            if shared is not None and rt.spec.kind == "rate_limit" and shared.bucket is None:
                p = rt.spec.params
                shared.bucket = TokenBucket(p.rate_per_s, p.burst, actual_ns)
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

    def select(
        self,
        provider: str,
        transport: str,
        methods: Sequence[str | None],
        header: Callable[[str], str | None],
        conn_id: str,
        now_ns: int,
    ) -> Selection | None:
        """The faults one exchange gets, by the composition rules:

        every matching ``delay`` fault (delays add up); the first matching ``outcome``
        fault in plan order (a ``rate_limit`` matches only when its bucket is empty);
        the first matching ``modify`` fault. ``listener`` and ``ws`` faults are not
        per-exchange and are skipped; so are faults whose `match.transport` names the
        other transport, and on ``ws`` (a JSON-RPC call over a WebSocket) the kinds
        without a meaning there (`http_error`). None when nothing applies.
        """
        active = self.active.get(provider)
        if not active:
            return None
        sel = Selection()
        ws = transport == "ws"
        for rt in active:
            spec = rt.spec
            role = spec.role
            if role in ("listener", "ws"):
                continue
            if role == "outcome" and sel.outcome is not None:
                continue
            if role == "modify" and sel.modify is not None:
                continue
            wanted = spec.match.transport
            if wanted is not None and wanted != transport:
                continue
            if ws and spec.kind not in WS_CALL_KINDS:
                continue
            shared = rt.shared
            assert shared is not None
            if not shared.matcher.accepts(methods, header, conn_id):
                continue
            if role == "delay":
                sel.delays.append(rt)
            elif role == "outcome":
                bucket = shared.bucket
                if bucket is not None and bucket.take(now_ns, spec.params.cost_of(methods)):
                    continue  # a token was left: the exchange is within the rate
                sel.outcome = rt
            else:
                sel.modify = rt
        return sel if sel else None

    def _rebuild_active(self) -> None:
        active: dict[str, list[FaultRuntime]] = {}
        for rt in self.faults:
            if rt.state == "active":
                active.setdefault(rt.spec.provider, []).append(rt)
        for lst in active.values():
            lst.sort(key=lambda rt: rt.shared.order if rt.shared else 0)
        self.active = {p: tuple(v) for p, v in active.items()}
