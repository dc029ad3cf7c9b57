"""Refuse addon: a `refuse` window takes the provider's listener down (new connections
are refused by the kernel: nothing listens) and aborts its open client connections
with a TCP RST, like a dead host; at the window's end the listener comes back.

Each transition is one `lifecycle` row (event ``listener_down`` / ``listener_up``,
detail JSON with the window, the provider, ``took_ns``, the time from the planned
transition until the listener was actually down or up again, ``ok`` (the listener
change succeeded) and, for ``listener_down``, ``aborted``: the client connections it
reset). A connection refused while the listener is down never reaches the proxy, so it
leaves no `upstream` row: the ``listener_down`` row with ``ok`` true is the window's
proof of application (`applied` counts it once).
"""

from __future__ import annotations

import asyncio
import json
import time

from mitmproxy import ctx

from chaosproxy import mitm_internals
from chaosproxy.recording import Shards
from chaosproxy.schedule import Transition

__all__ = ["RefuseListeners"]


class RefuseListeners:
    def __init__(self, modes: dict[str, str], ports: dict[str, int], shards: Shards) -> None:
        # provider -> mitmproxy mode spec / listen port
        self.modes = modes
        self.ports = ports
        self.shards = shards
        # provider -> number of refuse windows holding it down (windows may overlap)
        self.down: dict[str, int] = {}
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task] = set()

    def on_transition(self, tr: Transition) -> None:
        """Scheduler listener."""
        rt = tr.fault
        if rt.spec.kind != "refuse":
            return
        provider = rt.spec.provider
        before = self.down.get(provider, 0) > 0
        self.down[provider] = self.down.get(provider, 0) + (1 if tr.event == "start" else -1)
        after = self.down[provider] > 0
        if before == after:
            return
        aborted = self._abort_open(provider) if after else 0
        task = asyncio.get_running_loop().create_task(self._update(tr, after, aborted))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _abort_open(self, provider: str) -> int:
        """Resets the provider's open client connections; returns how many."""
        port = self.ports[provider]
        proxyserver = ctx.master.addons.get("proxyserver")
        aborted = 0
        for client_id, handler in list(proxyserver.connections.items()):
            sockname = handler.client.sockname
            if sockname and sockname[1] == port:
                aborted += mitm_internals.abort_client(client_id)
        return aborted

    async def _update(self, tr: Transition, down: bool, aborted: int) -> None:
        async with self._lock:
            modes = [m for p, m in self.modes.items() if self.down.get(p, 0) <= 0]
            ok = await mitm_internals.set_listeners(modes)
        if down:
            # A connection accepted between the abort and the listener closing.
            aborted += self._abort_open(tr.fault.spec.provider)
        t = time.time_ns()
        if down and ok:
            # The listener itself is what a refuse window acts on: counted once.
            tr.fault.applied += 1
        detail = {
            "window": tr.fault.window_id,
            "provider": tr.fault.spec.provider,
            "took_ns": t - tr.t_ns,
            "ok": ok,
        }
        if down:
            detail["aborted"] = aborted
        self.shards.lifecycle_event(
            "listener_down" if down else "listener_up",
            json.dumps(detail, separators=(",", ":")),
        )
