"""Scheduler addon: drives the fault timeline and selects each exchange's faults.

`start(t0_ns)` (called by the control API) plans the timeline and spawns a task that
sleeps until each transition, applies it, records the actual time in `fault_events`,
and tells the listeners of transitions (refuse, ws_disconnect act on them). `add` and
`clear` change the plan at run time and wake the task. The `request` hook only looks up
the provider's active faults; with none active it costs one dict lookup.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence

from mitmproxy import http

from analysis.shards import ShardWriter
from chaosproxy.addons.state import KEY, FlowState, Providers
from chaosproxy.faults import FaultSpec, HttpErrorParams, RateLimitParams, answer_record
from chaosproxy.schedule import Timeline, Transition

__all__ = ["Scheduler"]

logger = logging.getLogger(__name__)


class Scheduler:
    def __init__(self, timeline: Timeline, providers: Providers, events: ShardWriter) -> None:
        self.timeline = timeline
        self.providers = providers
        self.events = events
        self.on_transition: list[Callable[[Transition], None]] = []
        self._task: asyncio.Task | None = None
        self._wake: asyncio.Event | None = None
        # Exchanges seen, for the control API's counters and the health rows.
        self.exchanges = 0

    def start(self, t0_ns: int) -> None:
        """Fixes t0 and starts applying transitions.

        Raises:
            Timeline.AlreadyStarted: on a second call.
        """
        self.timeline.start(t0_ns)
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._drive(), name="chaos-schedule")

    def add(self, specs: Sequence[FaultSpec]) -> tuple[list[str], list[str]]:
        """Adds faults (all or none); returns (added ids, unchanged ids).

        Raises:
            Timeline.Conflict: an id is taken by a different fault (nothing is added).
        """
        for spec in specs:
            existing = self.timeline.specs.get(spec.fault_id)
            if existing is not None and existing.spec != spec:
                raise Timeline.Conflict(
                    f"fault_id {spec.fault_id!r} is already applied with different content; "
                    "clear it first"
                )
        added, unchanged = [], []
        for spec in specs:
            (added if self.timeline.add(spec) else unchanged).append(spec.fault_id)
        self._poke()
        return added, unchanged

    def clear(self, fault_ids: Sequence[str] | None) -> list[str]:
        """Ends and forgets faults (all when None); returns the window ids ended now.

        Raises:
            KeyError: an unknown fault id (nothing is cleared).
        """
        now = time.time_ns()
        ended = self.timeline.clear(fault_ids, now)
        for tr in ended:
            self._fire(tr, now)
        self._poke()
        return [tr.fault.window_id for tr in ended]

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _drive(self) -> None:
        assert self._wake is not None
        while True:
            tr = self.timeline.next_transition()
            if tr is None:
                await self._wake.wait()
                self._wake.clear()
                continue
            # Loop rather than sleep once: the event loop's monotonic clock and the
            # wall clock may disagree by a little, and a transition must never be early.
            delay_ns = tr.t_ns - time.time_ns()
            if delay_ns > 0:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), delay_ns / 1e9)
                except TimeoutError:
                    pass
                continue
            now = time.time_ns()
            self.timeline.apply(tr, now)
            self._fire(tr, now)

    def _fire(self, tr: Transition, actual_ns: int) -> None:
        rt = tr.fault
        spec = rt.spec
        self.events.append(
            (
                rt.window_id,
                spec.provider,
                spec.kind,
                json.dumps(_recorded_params(spec), separators=(",", ":"), sort_keys=True),
                rt.planned_start,
                rt.planned_end,
                tr.event,
                actual_ns,
                json.dumps(spec.raw.get("match"), separators=(",", ":"), sort_keys=True)
                if spec.raw.get("match") is not None
                else None,
                spec.fault_id,
            )
        )
        for listener in self.on_transition:
            try:
                listener(tr)
            except Exception:  # one broken listener must not stop the schedule
                logger.exception("transition listener failed")

    def request(self, flow: http.HTTPFlow) -> None:
        self.exchanges += 1
        provider = self.providers.of(flow)
        st = flow.metadata[KEY] = FlowState(provider)
        request = flow.request
        # A WebSocket handshake is a GET (RFC 6455); the method's bytes are compared
        # first because a header lookup costs ~2 us and JSON-RPC calls are POSTs.
        if request.data.method == b"GET" and "upgrade" in request.headers:
            # Recorded as transport `ws` whether or not a fault is active; handshakes
            # are for the ws_* faults, not the HTTP ones.
            st.upgrade = True
            return
        if provider is None or provider not in self.timeline.active:
            return
        st.selection = self.timeline.select(
            provider,
            "http",
            st.info(flow).methods,
            request.headers.get,
            flow.client_conn.id,
            time.time_ns(),
        )

    async def done(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass


def _recorded_params(spec: FaultSpec) -> dict:
    """The params as written, and for a fault that answers in the provider's place the
    answer it sends (`answer`): a preset's status, headers and error resolved; for a
    rate limit its bucket (`quota`)."""
    params = dict(spec.raw_params)
    p = spec.params
    if isinstance(p, RateLimitParams):
        params["quota"] = p.quota_record()
    answer = p.answer if isinstance(p, RateLimitParams) else p
    if isinstance(answer, HttpErrorParams):
        params["answer"] = answer_record(answer)
    return params
