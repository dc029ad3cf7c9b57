"""Health addon: the proxy's per-second self-report, one `proxy_health` row a second.

A ticker sleeps `TICK_S` and measures how late it wakes (event-loop lag: the time a
ready callback waits behind others); each second the worst lag, the exchanges in
flight, open client connections, exchanges started and the CPU used are written. When
the proxy saturates, lag and CPU rise together: analysis marks the run invalid (see
docs/ARCHITECTURE.md, "Capacity").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from mitmproxy import ctx

from analysis.shards import ShardWriter

__all__ = ["Health"]

TICK_S = 0.01


class Health:
    def __init__(
        self,
        proxy_id: str,
        rows: ShardWriter,
        in_flight: Callable[[], int],
        exchanges: Callable[[], int],
        connections: Callable[[], int] | None = None,
    ) -> None:
        self.proxy_id = proxy_id
        self.rows = rows
        self.in_flight = in_flight
        self.exchanges = exchanges
        # Default: mitmproxy's open client connections.
        self.connections = connections or (
            lambda: len(ctx.master.addons.get("proxyserver").connections)
        )
        self._task: asyncio.Task | None = None

    def running(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="chaos-health")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        worst = 0
        second = time.monotonic() + 1.0
        cpu0 = time.process_time()
        ex0 = self.exchanges()
        while True:
            t_sleep = loop.time()
            await asyncio.sleep(TICK_S)
            lag = loop.time() - t_sleep - TICK_S
            worst = max(worst, int(lag * 1e9))
            now = time.monotonic()
            if now >= second:
                cpu1 = time.process_time()
                ex1 = self.exchanges()
                span = now - (second - 1.0)
                self.rows.append(
                    (
                        time.time_ns(),
                        self.proxy_id,
                        worst,
                        self.in_flight(),
                        self.connections(),
                        ex1 - ex0,
                        round((cpu1 - cpu0) / span, 3),
                    )
                )
                worst, cpu0, ex0 = 0, cpu1, ex1
                second = now + 1.0

    async def done(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
