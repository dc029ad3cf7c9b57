"""Lifecycle addon: checks that everything came up, says `ready`, records started /
ready / stopped, and closes the shards when mitmproxy is done.

Last in the chain, so its `running` hook sees the listeners and the control API up,
and its `done` hook runs after every other addon has written its last row.
"""

from __future__ import annotations

import json
import sys
import time

from mitmproxy import ctx

from chaosproxy.addons.control import ControlApi
from chaosproxy.recording import Shards

__all__ = ["Lifecycle"]


class Lifecycle:
    def __init__(
        self,
        listeners: dict[str, int],
        control: ControlApi,
        shards: Shards,
        start_now: bool = False,
    ) -> None:
        self.listeners = listeners
        self.start_now = start_now
        self.control = control
        self.shards = shards
        self.exit_code = 0

    def running(self) -> None:
        problem = self.control.error
        if problem is None:
            proxyserver = ctx.master.addons.get("proxyserver")
            bound = {addr[1] for addr in proxyserver.listen_addrs()}
            missing = [f"{n}={p}" for n, p in self.listeners.items() if p not in bound]
            if missing:
                problem = f"listeners not bound on 127.0.0.1: {', '.join(missing)}"
        if problem is not None:
            print(f"chaosproxy: {problem}", file=sys.stderr, flush=True)
            self.shards.lifecycle_event("failed", problem)
            self.exit_code = 1
            ctx.master.shutdown()
            return
        listeners = ",".join(f"{n}=127.0.0.1:{p}" for n, p in self.listeners.items())
        detail = f"control={self.control.url} listeners={listeners}"
        if self.start_now:
            t0 = time.time_ns()
            self.control.scheduler.start(t0)
            detail += f" t0_ns={t0}"
        self.shards.lifecycle_event("ready", detail)
        print(f"ready {detail}", flush=True)

    def done(self) -> None:
        self._write_timeline()
        self.shards.lifecycle_event("stopped", f"exit={self.exit_code}")
        self.shards.close()

    def _write_timeline(self) -> None:
        """`events/chaos-timeline.<proxy>.json`: every fault window as planned and as
        applied (the control API's GET /faults at shutdown)."""
        try:
            doc = self.control.handle("GET", "/faults", b"")[1]
            path = self.shards.run_dir / "events" / f"chaos-timeline.{self.shards.proxy_id}.json"
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(doc, indent=1) + "\n")
            tmp.replace(path)
        except OSError as e:
            print(f"chaosproxy: cannot write the chaos timeline: {e}", file=sys.stderr, flush=True)
