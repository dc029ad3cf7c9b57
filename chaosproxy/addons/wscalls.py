"""JSON-RPC calls over a WebSocket: their faults, and one `upstream` row per call.

A router also sends calls over its provider sockets (``eth_subscribe``,
``eth_blockNumber``, ``eth_getBlockByNumber`` ...). `WsCalls` is driven by
`WsFaults.websocket_message` (it is not an addon of its own: both need the same hook,
and a stall must win over a call's faults). A client message that is a JSON-RPC request
with an id opens a call; the server message answering it (any of its ids, for a batch)
closes it. Faults are selected with `Timeline.select(..., "ws", ...)`, so the HTTP
composition rules hold: every matching latency adds up, the first matching outcome
decides, the first matching modifier rewrites what came from upstream. What the client
sees on its socket:

- `latency` ``request``: the call reaches the provider later; ``response``: the answer
  reaches the client later (also a local answer);
- `rpc_error`, `rate_limit` (bucket empty): an error object echoing the id, one per
  batch element (only the targeted elements of a batch: the rest go upstream and the
  answers are merged; `collapse`: one object, id null); `rate_limit` sends its answer's
  `code` / `message` / `data` (a socket carries no HTTP status);
- `reset`: the socket aborted (TCP RST, no close frame: the client sees 1006);
- `hang`: the call goes upstream and its answer is withheld (the socket stays up);
- `blackhole`: the call never goes upstream and is never answered;
- `corrupt`, `stale`: the upstream's answer damaged, or its head lowered (and
  ``"latest"`` tags of the call rewritten to the last head seen minus k).

Rows (transport ``ws``, `flow_id` the socket's flow): `t_request` when the proxy got the
call, `t_upstream_sent` when it went on, `t_upstream_done` when the provider answered,
`t_response` when the answer went to the client; outcome ``ok`` / ``rpc_error`` from the
answer sent, ``timeout`` for a call never answered (hang, blackhole, ws_stall), ``reset``
for a reset fault or a socket that closed before the answer; `http_status` null.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mitmproxy import http
from mitmproxy.websocket import WebSocketMessage

from analysis.shards import ShardWriter
from chaosproxy import mitm_internals
from chaosproxy.exchange import RequestInfo, classify_response, extract_tag, parse_request
from chaosproxy.exchange import rpc_id_text as _rpc_id_text
from chaosproxy.matching import Selection
from chaosproxy.rewrite import (
    corrupt,
    rpc_error_body,
    rpc_error_merge,
    stale_request,
    stale_response,
)
from chaosproxy.schedule import FaultRuntime, Timeline

__all__ = ["WsCall", "WsCalls"]

# inject(flow, to_client, content, is_text): sends a message on the socket.
Inject = Callable[[http.HTTPFlow, bool, bytes, bool], None]


@dataclass(slots=True, eq=False)
class WsCall:
    """One JSON-RPC call (or batch) over a WebSocket, from the client's message on."""

    provider: str
    info: RequestInfo
    t_request: int
    bytes_in: int
    keys: tuple[str, ...]
    selection: Selection | None = None
    applied: list[FaultRuntime] = field(default_factory=list)
    delay_ns: int = 0
    t_sent: int | None = None
    # rpc_error on part of a batch: the ids whose answers are replaced.
    rpc_error_ids: tuple[Any, ...] = ()
    # eth_subscribe's subscription kind, to learn the kind of the id it answers.
    sub_kind: str | None = None


def _key(rpc_id: Any) -> str:
    return json.dumps(rpc_id, separators=(",", ":"))


def _subscription_kind(content: bytes) -> str | None:
    try:
        doc = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return None
    for e in doc if isinstance(doc, list) else [doc]:
        if isinstance(e, dict) and e.get("method") == "eth_subscribe":
            params = e.get("params")
            if isinstance(params, list) and params and isinstance(params[0], str):
                return params[0]
    return None


def _deciding(applied: list[FaultRuntime]) -> FaultRuntime | None:
    """As `FlowState.fault`: the outcome or modifier when one acted, else the first delay."""
    for rt in applied:
        if rt.spec.role != "delay":
            return rt
    return applied[0] if applied else None


class WsCalls:
    def __init__(
        self, proxy_id: str, timeline: Timeline, upstream: ShardWriter, inject: Inject
    ) -> None:
        self.proxy_id = proxy_id
        self.timeline = timeline
        self.upstream = upstream
        self.inject = inject
        # flow id -> id key -> open call (a batch under each of its ids)
        self.pending: dict[str, dict[str, WsCall]] = {}
        # flow id -> subscription id -> kind, learnt from eth_subscribe answers
        self.subs: dict[str, dict[str, str]] = {}

    def subscription_kind(self, flow_id: str, sub_id: str | None) -> str | None:
        """The kind (``newHeads``, ``logs``, ...) of a subscription opened on the socket."""
        subs = self.subs.get(flow_id)
        return subs.get(sub_id) if subs and sub_id is not None else None

    # -- client to provider ------------------------------------------------------------

    def _open(self, provider: str, flow: http.HTTPFlow, content: bytes) -> WsCall | None:
        info = parse_request(content)
        if info.method is None and not info.is_batch:
            return None  # not JSON-RPC: passed on unrecorded, as a ping would be
        keys = tuple(_key(i) for i in info.ids if i is not None)
        if not keys:
            return None  # a JSON-RPC notification: nothing answers it
        call = WsCall(provider, info, time.time_ns(), len(content), keys)
        if "eth_subscribe" in info.methods:
            call.sub_kind = _subscription_kind(content)
        pending = self.pending.setdefault(flow.id, {})
        for k in keys:
            pending[k] = call
        return call

    def client_message(self, provider: str, flow: http.HTTPFlow, msg: WebSocketMessage) -> None:
        """A message from the client: opens a call and applies its request-side faults."""
        content = msg.content
        call = self._open(provider, flow, content)
        if call is None:
            return
        sel = None
        if provider in self.timeline.active:
            sel = self.timeline.select(
                provider,
                "ws",
                call.info.methods,
                flow.request.headers.get,
                flow.client_conn.id,
                call.t_request,
            )
        if sel is None:
            call.t_sent = call.t_request
            return
        call.selection = sel
        delay = self._delays(call, "request")
        if delay > 0:
            msg.drop()
            self._at(call.t_request + delay, self._send_later, flow, call, content, msg.is_text)
            return
        forward, new = self._outcome(flow, call, content, msg.is_text)
        if not forward:
            msg.drop()
            return
        if new is not None:
            msg.content = new
        call.t_sent = time.time_ns()

    def _send_later(self, flow: http.HTTPFlow, call: WsCall, content: bytes, is_text: bool) -> None:
        if call.keys[0] not in self.pending.get(flow.id, {}):
            return  # the socket closed meanwhile; recorded then
        forward, new = self._outcome(flow, call, content, is_text)
        if forward:
            call.t_sent = time.time_ns()
            self.inject(flow, False, content if new is None else new, is_text)

    def _outcome(
        self, flow: http.HTTPFlow, call: WsCall, content: bytes, is_text: bool
    ) -> tuple[bool, bytes | None]:
        """Applies the call's outcome fault; (forward upstream, the call's new content)."""
        sel = call.selection
        assert sel is not None
        rt = sel.outcome
        if rt is None:
            if sel.modify is not None and sel.modify.spec.kind == "stale":
                mod = sel.modify
                new = stale_request(content, mod.extra.get("head"), mod.spec.params.lag_blocks)
                if new is not None:
                    call.applied.append(mod)
                    return True, new
            return True, None
        kind = rt.spec.kind
        p = rt.spec.params
        info = call.info
        call.applied.append(rt)
        if kind == "reset":
            self._close(flow, call, "reset")
            mitm_internals.abort_client(flow.client_conn.id)
            return False, None
        if kind == "blackhole":
            self._close(flow, call, "timeout")
            return False, None
        if kind == "hang":
            return True, None  # the answer is withheld in server_message
        if kind == "rate_limit":
            a = p.answer
            code, message, data, collapse = a.code, a.message or "rate limited", a.data, False
            targeted = list(info.ids)
        else:  # rpc_error
            code, message, data, collapse = p.code, p.message, p.data, p.collapse
            methods = rt.spec.match.methods
            targeted = [
                i
                for i, m in zip(info.ids, info.methods, strict=False)
                if methods is None or m in methods
            ]
        if info.is_batch and len(targeted) < info.batch_size and not collapse:
            call.rpc_error_ids = tuple(targeted)
            return True, None
        body = rpc_error_body(info, code, message, data, collapse)
        self._forget(flow.id, call)
        self._respond(flow, call, body, is_text, None)
        return False, None

    # -- provider to client ------------------------------------------------------------

    def _answered(self, flow_id: str, content: bytes) -> tuple[WsCall, Any] | None:
        pending = self.pending.get(flow_id)
        if not pending:
            return None
        try:
            doc = json.loads(content)
        except (ValueError, UnicodeDecodeError):
            return None
        for e in doc if isinstance(doc, list) else [doc]:
            if isinstance(e, dict) and "method" not in e:
                call = pending.get(_key(e.get("id")))
                if call is not None:
                    return call, doc
        return None

    def server_message(self, flow: http.HTTPFlow, msg: WebSocketMessage) -> None:
        """A message from the provider that is not a notification: closes the call it
        answers and applies the answer's faults."""
        found = self._answered(flow.id, msg.content)
        if found is None:
            return
        call, doc = found
        self._forget(flow.id, call)
        t_done = time.time_ns()
        if call.sub_kind is not None and isinstance(doc, dict):
            sub = doc.get("result")
            if isinstance(sub, str):
                self.subs.setdefault(flow.id, {})[sub] = call.sub_kind
        sel = call.selection
        if sel is None:
            self._row(flow, call, None, t_done, t_done, msg.content)
            return
        if sel.outcome is not None and sel.outcome.spec.kind == "hang":
            msg.drop()
            self._row(flow, call, "timeout", t_done, None, None)
            return
        body = msg.content
        if call.rpc_error_ids:
            rt = sel.outcome
            assert rt is not None
            p = rt.spec.params
            merged = rpc_error_merge(body, call.rpc_error_ids, p.code, p.message, p.data)
            if merged is not None:
                body = merged
        if sel.modify is not None and (sel.outcome is None or call.rpc_error_ids):
            body = self._modify(call, body)
        delay = self._delays(call, "response")
        if delay > 0:
            msg.drop()
            self._at(t_done + delay, self._deliver, flow, call, body, msg.is_text, t_done)
            return
        if body is not msg.content:
            msg.content = body
        self._row(flow, call, None, t_done, time.time_ns(), body)

    def _modify(self, call: WsCall, body: bytes) -> bytes:
        rt = call.selection.modify  # type: ignore[union-attr]
        assert rt is not None
        if rt.spec.kind == "corrupt":
            call.applied.append(rt)
            return corrupt(body, rt.spec.params.mode)
        new, head = stale_response(body, call.info.methods, rt.spec.params.lag_blocks)
        if head is not None:
            rt.extra["head"] = max(head, rt.extra.get("head") or 0)
        if new is None:
            return body
        if rt not in call.applied:
            call.applied.append(rt)
        return new

    # -- answers, timers, rows ---------------------------------------------------------

    def _respond(
        self, flow: http.HTTPFlow, call: WsCall, body: bytes, is_text: bool, t_done: int | None
    ) -> None:
        """Sends a proxy-made answer after the response-side delays."""
        now = time.time_ns()
        delay = self._delays(call, "response")
        # call_soon: mitmproxy must finish the hook of the message being handled first.
        asyncio.get_running_loop().call_soon(
            self._at, now + delay, self._deliver, flow, call, body, is_text, t_done
        )

    def _deliver(
        self, flow: http.HTTPFlow, call: WsCall, body: bytes, is_text: bool, t_done: int | None
    ) -> None:
        if not flow.live:
            self._row(flow, call, "reset", t_done, None, None)
            return
        self.inject(flow, True, body, is_text)
        self._row(flow, call, None, t_done, time.time_ns(), body)

    def _delays(self, call: WsCall, where: str) -> int:
        sel = call.selection
        assert sel is not None
        delay = 0
        now = time.time_ns()
        for rt in sel.delays:
            p = rt.spec.params
            if p.where == where:
                assert rt.shared is not None
                delay += p.sample_ns(rt.shared.matcher.rng, rt.progress(now))
                call.applied.append(rt)
        call.delay_ns += delay
        return delay

    def _at(self, due_ns: int, fn: Callable[..., None], *args: Any) -> None:
        """Calls `fn(*args)` at `due_ns` by the wall clock, never before (uvloop's
        millisecond timers may fire early)."""
        left = due_ns - time.time_ns()
        if left > 0:
            asyncio.get_running_loop().call_later(left / 1e9, self._at, due_ns, fn, *args)
            return
        fn(*args)

    def _forget(self, flow_id: str, call: WsCall) -> None:
        pending = self.pending.get(flow_id)
        if pending:
            for k in call.keys:
                if pending.get(k) is call:
                    del pending[k]

    def _close(self, flow: http.HTTPFlow, call: WsCall, outcome: str) -> None:
        self._forget(flow.id, call)
        self._row(flow, call, outcome, None, None, None)

    def swallow(
        self, provider: str, flow: http.HTTPFlow, msg: WebSocketMessage, rt: FaultRuntime
    ) -> None:
        """A `ws_stall` dropped `msg`: a call in it, or the call it answers, is recorded
        as never answered."""
        if msg.from_client:
            call = self._open(provider, flow, msg.content)
        else:
            found = self._answered(flow.id, msg.content)
            call = found[0] if found else None
        if call is not None:
            call.applied.append(rt)
            self._close(flow, call, "timeout")

    def socket_closed(self, flow: http.HTTPFlow) -> None:
        """Records the calls still open when the socket closed: never answered."""
        pending = self.pending.pop(flow.id, None)
        self.subs.pop(flow.id, None)
        if not pending:
            return
        seen: set[int] = set()
        for call in pending.values():
            if id(call) in seen:
                continue
            seen.add(id(call))
            sel = call.selection
            hang = sel is not None and sel.outcome is not None and sel.outcome.spec.kind == "hang"
            self._row(flow, call, "timeout" if hang else "reset", None, None, None)

    def _row(
        self,
        flow: http.HTTPFlow,
        call: WsCall,
        outcome: str | None,
        t_done: int | None,
        t_response: int | None,
        body: bytes | None,
    ) -> None:
        rpc_code = None
        if outcome is None:
            outcome, rpc_code = classify_response(200, body or b"")
        for rt in call.applied:
            rt.applied += 1
        fault = _deciding(call.applied)
        info = call.info
        self.upstream.append(
            (
                call.provider,
                self.proxy_id,
                flow.id,
                flow.client_conn.id,
                "ws",
                info.method,
                info.batch_size,
                _rpc_id_text(info.rpc_id),
                extract_tag(None, info),
                call.t_request,
                call.t_sent,
                t_done,
                t_response,
                fault.window_id if fault else None,
                fault.spec.kind if fault else None,
                call.delay_ns,
                outcome,
                None,
                rpc_code,
                call.bytes_in,
                None if body is None else len(body),
                ",".join(rt.window_id for rt in call.applied) or None,
            )
        )
