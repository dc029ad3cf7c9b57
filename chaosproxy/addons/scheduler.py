"""Scheduler addon: drives the fault timeline and matches each request to a fault.

`start(t0_ns)` (called by the control API) plans the timeline and spawns a task that
sleeps until each transition, applies it, and records the actual time in
`fault_events`. The `request` hook only looks up the provider's active faults.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from mitmproxy import http

from analysis.shards import ShardWriter
from chaosproxy.addons.state import KEY, FlowState, Providers
from chaosproxy.schedule import Timeline, Transition

__all__ = ["Scheduler"]

logger = logging.getLogger(__name__)


class Scheduler:
    def __init__(self, timeline: Timeline, providers: Providers, events: ShardWriter) -> None:
        self.timeline = timeline
        self.providers = providers
        self.events = events
        self._task: asyncio.Task | None = None

    def start(self, t0_ns: int) -> None:
        """Fixes t0 and starts applying transitions.

        Raises:
            Timeline.AlreadyStarted: on a second call.
        """
        self.timeline.start(t0_ns)
        self._task = asyncio.get_running_loop().create_task(self._drive(), name="chaos-schedule")

    async def _drive(self) -> None:
        while (tr := self.timeline.next_transition()) is not None:
            # Loop rather than sleep once: the event loop's monotonic clock and the
            # wall clock may disagree by a little, and a transition must never be early.
            while (delay_ns := tr.t_ns - time.time_ns()) > 0:
                await asyncio.sleep(delay_ns / 1e9)
            now = time.time_ns()
            self.timeline.apply(tr, now)
            self._record(tr, now)

    def _record(self, tr: Transition, actual_ns: int) -> None:
        rt = tr.fault
        spec = rt.spec
        self.events.append(
            (
                spec.fault_id,
                spec.provider,
                spec.kind,
                json.dumps(dict(spec.raw_params), separators=(",", ":"), sort_keys=True),
                rt.planned_start,
                rt.planned_end,
                tr.event,
                actual_ns,
            )
        )

    def request(self, flow: http.HTTPFlow) -> None:
        provider = self.providers.of(flow)
        st = flow.metadata[KEY] = FlowState(provider)
        if provider is not None:
            st.fault = self.timeline.match(provider)

    async def done(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
