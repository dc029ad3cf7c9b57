"""WebSocket fault addon: notifications passed, dropped, delayed, duplicated, reordered,
stalled or made stale, and sockets disconnected; one `upstream_ws` row for each. The
JSON-RPC calls the client sends over the socket go to `WsCalls` (their faults, one
`upstream` row per call).

mitmproxy relays each WebSocket message through the `websocket_message` hook; a fault
drops it (`message.drop()`) and, to delay, duplicate or reorder, re-injects it later
with the public `inject.websocket` command (injected messages come back through the
hook marked `injected`, and are only recorded). Closing a socket has no public API:
`chaosproxy.mitm_internals` does it. The hook also empties `flow.websocket.messages`,
which mitmproxy would otherwise grow for the socket's whole life.

Rows (`upstream_ws.action`): ``open`` and ``close`` per socket; per server-to-client
notification ``passed``, ``dropped``, ``delayed`` (row written when released, with
`delay_ns`), ``duplicated`` (the copy), ``reordered`` (the held one, when released
after its successor), ``stalled``, ``silenced``, ``stale`` (the notification actually
sent, k blocks old); ``disconnected`` when a ws_disconnect closes the socket.

`ws_stall` forwards nothing either way; `ws_silence` (the zombie socket) withholds
every notification and lets calls and their answers through, so a router that judges
the socket alive by a call's answer never notices.

Matching: a socket-level fault (`ws_disconnect`, `ws_stall`, `ws_silence`) decides once
per socket (its match's header is the handshake's; `probability`, `first_n` / `after_n`
count sockets); a notification fault (`ws_drop`, `ws_delay`, `ws_duplicate`, `ws_reorder`)
first applies its match to each notification (`subscriptions`: the kind its
`eth_subscribe` asked for; `first_n` / `after_n` count notifications), then its own
`every_k` (among the matched ones) or `probability`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

from mitmproxy import ctx, http

from analysis.shards import ShardWriter
from chaosproxy import mitm_internals
from chaosproxy.addons.state import Providers
from chaosproxy.addons.wscalls import WsCalls
from chaosproxy.faults import WS_NOTIFICATION_KINDS
from chaosproxy.rewrite import notification_facts
from chaosproxy.schedule import FaultRuntime, Timeline, Transition

__all__ = ["WsFaults"]

# A reordered notification whose successor never comes is released after this long.
REORDER_RELEASE_S = 1.0


class WsFaults:
    def __init__(
        self,
        proxy_id: str,
        providers: Providers,
        timeline: Timeline,
        rows: ShardWriter,
        upstream: ShardWriter,
    ) -> None:
        self.proxy_id = proxy_id
        self.providers = providers
        self.timeline = timeline
        self.rows = rows
        self.calls = WsCalls(proxy_id, timeline, upstream, self._send)
        # flow id -> fault id -> whether a socket-level fault's match took the socket
        self._sockets: dict[str, dict[str, bool]] = {}
        # provider -> flow id -> open WebSocket flow
        self.open: dict[str, dict[str, http.HTTPFlow]] = {}
        # (flow id, content) -> queue of (action, window, t held) for injected messages
        self._injected: dict[tuple[str, bytes], deque] = {}
        # flow id -> (content, is_text, window, t held) held by a reorder
        self._held: dict[str, tuple[bytes, bool, FaultRuntime, int]] = {}
        # (flow id, window id) -> newHeads contents held back by a stale fault
        self._stale: dict[tuple[str, str], deque] = {}

    # -- recording ---------------------------------------------------------------------

    def _row(
        self,
        provider: str,
        flow: http.HTTPFlow,
        action: str,
        rt: FaultRuntime | None,
        sub: str | None = None,
        block: int | None = None,
        delay_ns: int | None = None,
        close_code: int | None = None,
    ) -> None:
        if rt is not None:
            rt.applied += 1
        self.rows.append(
            (
                provider,
                self.proxy_id,
                flow.client_conn.id,
                sub,
                action,
                rt.window_id if rt is not None else None,
                block,
                time.time_ns(),
                flow.id,
                delay_ns,
                close_code,
            )
        )

    # -- sockets -----------------------------------------------------------------------

    def _disconnect(self, provider: str, flow: http.HTTPFlow, rt: FaultRuntime) -> None:
        code = rt.spec.params.code
        if code is None:
            done = mitm_internals.abort_client(flow.client_conn.id)
        else:
            done = mitm_internals.close_client(flow.client_conn.id, code, rt.spec.params.reason)
        if done:
            self._row(provider, flow, "disconnected", rt, close_code=code)

    def _socket_accepts(self, rt: FaultRuntime, flow: http.HTTPFlow) -> bool:
        """Whether a socket-level fault's match takes this socket (decided once)."""
        if rt.spec.match.everything:
            return True
        decided = self._sockets.setdefault(flow.id, {})
        fid = rt.spec.fault_id
        took = decided.get(fid)
        if took is None:
            assert rt.shared is not None
            took = decided[fid] = rt.shared.matcher.accepts(
                (None,), flow.request.headers.get, flow.client_conn.id
            )
        return took

    def on_transition(self, tr: Transition) -> None:
        """Scheduler listener: a ws_disconnect window closes every open socket it matches."""
        rt = tr.fault
        if tr.event != "start" or rt.spec.kind != "ws_disconnect":
            return
        provider = rt.spec.provider
        for flow in list(self.open.get(provider, {}).values()):
            if self._socket_accepts(rt, flow):
                self._disconnect(provider, flow, rt)

    def websocket_start(self, flow: http.HTTPFlow) -> None:
        provider = self.providers.of(flow)
        if provider is None:
            return
        self.open.setdefault(provider, {})[flow.id] = flow
        self._row(provider, flow, "open", None)
        for rt in self.timeline.active.get(provider, ()):
            if rt.spec.kind == "ws_disconnect" and self._socket_accepts(rt, flow):
                self._disconnect(provider, flow, rt)
                return

    def websocket_end(self, flow: http.HTTPFlow) -> None:
        provider = self.providers.of(flow)
        if provider is None:
            return
        self.open.get(provider, {}).pop(flow.id, None)
        self._sockets.pop(flow.id, None)
        self.calls.socket_closed(flow)
        held = self._held.pop(flow.id, None)
        for key in [k for k in self._stale if k[0] == flow.id]:
            del self._stale[key]
        ws = flow.websocket
        code = ws.close_code if ws is not None else None
        self._row(provider, flow, "close", held[2] if held else None, close_code=code)

    # -- messages ----------------------------------------------------------------------

    def _send(self, flow: http.HTTPFlow, to_client: bool, content: bytes, is_text: bool) -> None:
        if flow.live:
            ctx.master.addons.get("proxyserver").inject_websocket(flow, to_client, content, is_text)

    def _inject(
        self,
        flow: http.HTTPFlow,
        content: bytes,
        is_text: bool,
        action: str,
        rt: FaultRuntime,
        t_held: int,
    ) -> None:
        if not flow.live:
            return
        self._injected.setdefault((flow.id, content), deque()).append((action, rt, t_held))
        ctx.master.addons.get("proxyserver").inject_websocket(flow, True, content, is_text)

    def websocket_message(self, flow: http.HTTPFlow) -> None:
        ws = flow.websocket
        assert ws is not None
        msg = ws.messages[-1]
        # mitmproxy keeps every message of a socket; we need none of them afterwards.
        ws.messages.clear()
        provider = self.providers.of(flow)
        if provider is None:
            return
        content = msg.content
        if msg.injected:
            q = self._injected.get((flow.id, content))
            if q:
                action, rt, t_held = q.popleft()
                if not q:
                    del self._injected[(flow.id, content)]
                facts = notification_facts(content) or (None, None)
                self._row(provider, flow, action, rt, facts[0], facts[1], time.time_ns() - t_held)
            return
        active = self.timeline.active.get(provider, ())
        stall = silence = None
        for rt in active:
            kind = rt.spec.kind
            if kind == "ws_stall" and self._socket_accepts(rt, flow):
                stall = rt
                break
            if kind == "ws_silence" and silence is None and self._socket_accepts(rt, flow):
                silence = rt
        facts = None if msg.from_client else notification_facts(content)
        if facts is None:
            # A call from the client, or the provider's answer to one.
            if stall is not None:
                msg.drop()
                self.calls.swallow(provider, flow, msg, stall)
            elif msg.from_client:
                self.calls.client_message(provider, flow, msg)
            else:
                self.calls.server_message(flow, msg)
            return
        if stall is not None:
            msg.drop()
            self._row(provider, flow, "stalled", stall, *facts)
            return
        if silence is not None:
            # The zombie socket: calls and their answers went through above.
            msg.drop()
            self._row(provider, flow, "silenced", silence, *facts)
            return
        for rt in active:
            kind = rt.spec.kind
            if kind == "stale" and facts[1] is not None:
                m = rt.spec.match
                # A stale fault on notifications: its header and probability decide per
                # socket; one naming methods or transport http is for calls only.
                if m.methods is not None or m.transport == "http":
                    continue
                if not self._socket_accepts(rt, flow):
                    continue
                if self._stale_shift(provider, flow, msg, rt, facts):
                    return
                continue
            if kind not in WS_NOTIFICATION_KINDS:
                continue
            if not self._fires(rt, flow, facts[0]):
                continue
            p = rt.spec.params
            now = time.time_ns()
            if kind == "ws_drop":
                msg.drop()
                self._row(provider, flow, "dropped", rt, *facts)
                return
            if kind == "ws_delay":
                msg.drop()
                self._later(now + round(p.ms * 1e6), flow, content, msg.is_text, rt, now)
                return
            if kind == "ws_duplicate":
                self._row(provider, flow, "passed", None, *facts)
                asyncio.get_running_loop().call_soon(
                    self._inject, flow, content, msg.is_text, "duplicated", rt, now
                )
                return
            if kind == "ws_reorder" and flow.id not in self._held:
                msg.drop()
                self._held[flow.id] = (content, msg.is_text, rt, now)
                asyncio.get_running_loop().call_later(REORDER_RELEASE_S, self._release, flow)
                return
        if facts is not None:
            self._row(provider, flow, "passed", None, *facts)
        if flow.id in self._held:
            # The held notification goes out right after its successor.
            asyncio.get_running_loop().call_soon(self._release, flow)

    def _later(
        self,
        due_ns: int,
        flow: http.HTTPFlow,
        content: bytes,
        is_text: bool,
        rt: FaultRuntime,
        t_held: int,
    ) -> None:
        """Injects at `due_ns` by the wall clock, never before (uvloop's millisecond
        timers may fire early)."""
        left = due_ns - time.time_ns()
        if left > 0:
            asyncio.get_running_loop().call_later(
                left / 1e9, self._later, due_ns, flow, content, is_text, rt, t_held
            )
            return
        self._inject(flow, content, is_text, "delayed", rt, t_held)

    def _release(self, flow: http.HTTPFlow) -> None:
        held = self._held.pop(flow.id, None)
        if held is not None:
            content, is_text, rt, t_held = held
            self._inject(flow, content, is_text, "reordered", rt, t_held)

    def _fires(self, rt: FaultRuntime, flow: http.HTTPFlow, sub_id: str | None) -> bool:
        """Whether a notification fault acts on this notification: its match, then its
        `every_k` (counting matched notifications) or `probability`."""
        p = rt.spec.params
        shared = rt.shared
        assert shared is not None
        m = shared.matcher
        if not rt.spec.match.everything and not m.accepts(
            (None,),
            flow.request.headers.get,
            flow.client_conn.id,
            self.calls.subscription_kind(flow.id, sub_id),
        ):
            return False
        shared.notifications += 1
        if p.every_k is not None:
            return shared.notifications % p.every_k == 0
        return p.probability >= 1.0 or m.rng.random() < p.probability

    def _stale_shift(
        self,
        provider: str,
        flow: http.HTTPFlow,
        msg,
        rt: FaultRuntime,
        facts: tuple[str | None, int | None],
    ) -> bool:
        """Sends the notification from `lag_blocks` blocks ago in place of this one;
        True when the message was consumed (held back, nothing old enough to send)."""
        # A newHeads stream tells the head too: "latest" tags of calls lag behind it.
        block = facts[1]
        if block is not None and block > (rt.extra.get("head") or 0):
            rt.extra["head"] = block
        q = self._stale.setdefault((flow.id, rt.window_id), deque())
        q.append((msg.content, facts))
        if len(q) <= rt.spec.params.lag_blocks:
            msg.drop()
            return True
        old_content, old_facts = q.popleft()
        msg.content = old_content
        self._row(provider, flow, "stale", rt, *old_facts)
        return True
