"""HTTP fault addon: applies the faults the scheduler selected for an exchange.

Hooks return None on the common path and an awaitable only when a fault must wait
(latency, hang, blackhole); mitmproxy awaits what a hook returns, so exchanges without
a delay never pay for a coroutine. Order on one exchange (the composition rules):
request-side delays, then the outcome (answer locally, kill, or withhold), then on the
upstream's answer the modifier, then response-side delays.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable

from mitmproxy import http
from mitmproxy.connection import ConnectionState

from chaosproxy.addons.state import KEY, FlowState
from chaosproxy.faults import HttpErrorParams
from chaosproxy.rewrite import (
    corrupt,
    error_object,
    head_lie_response,
    rpc_error_body,
    rpc_error_merge,
    stale_request,
    stale_response,
    tag_request,
)
from chaosproxy.schedule import FaultRuntime

__all__ = ["HttpFaults", "http_error_response"]

# How often a withheld exchange checks whether its client gave up; bounds how late a
# hang notices the router's timeout.
HANG_POLL_S = 0.02
# A hang without close_after_s still ends eventually, so no task outlives a run.
HANG_CAP_S = 3600.0


def http_error_response(
    params: HttpErrorParams, st: FlowState, flow: http.HTTPFlow
) -> http.Response:
    """The response of an `http_error` (or a limited `rate_limit`) exchange."""
    body = params.body
    if body is None:
        info = st.info(flow)
        message = params.message or f"chaosproxy: injected HTTP {params.status}"
        if info.is_batch:
            doc = [error_object(i, params.code, message, params.data) for i in info.ids]
        else:
            doc = error_object(info.rpc_id, params.code, message, params.data)
        body = json.dumps(doc, separators=(",", ":")).encode()
        headers = http.Headers(content_type="application/json")
    else:
        headers = http.Headers(content_type="text/plain; charset=utf-8")
    for name, value in params.headers:
        headers[name] = value  # case-insensitive: replaces the default Content-Type
    return http.Response.make(params.status, body, headers)


async def sleep_ns(delay_ns: int) -> None:
    """Sleeps at least `delay_ns` by the wall clock: uvloop's millisecond timers may
    fire up to a millisecond early, and an injected delay must never be short."""
    deadline = time.time_ns() + delay_ns
    while (left := deadline - time.time_ns()) > 0:
        await asyncio.sleep(left / 1e9)


def _gone(flow: http.HTTPFlow) -> bool:
    return flow.response is not None or flow.error is not None or not flow.live


async def _withhold(flow: http.HTTPFlow, st: FlowState, close_after_s: float | None) -> None:
    """Keeps the exchange unanswered until the client gives up or `close_after_s`."""
    limit = HANG_CAP_S if close_after_s is None else close_after_s
    deadline = time.monotonic() + limit
    client = flow.client_conn
    while True:
        if not client.state & ConnectionState.CAN_READ:
            st.outcome = "timeout"  # the router gave up and closed
            break
        left = deadline - time.monotonic()
        if left <= 0:
            st.outcome = "reset"  # the proxy closed without an answer
            break
        await asyncio.sleep(min(HANG_POLL_S, left))
    if flow.live and flow.error is None:
        flow.kill()


class HttpFaults:
    """Applies `latency`, `http_error`, `rpc_error`, `rate_limit`, `reset`, `hang`,
    `blackhole`, `corrupt`, `stale` and `head_lie` to HTTP exchanges."""

    def request(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        st: FlowState | None = flow.metadata.get(KEY)
        if st is None or st.selection is None:
            return None
        delay = 0
        now = time.time_ns()
        for rt in st.selection.delays:
            p = rt.spec.params
            if p.where == "request":
                assert rt.shared is not None
                delay += p.sample_ns(rt.shared.matcher.rng, rt.progress(now))
                st.applied_faults.append(rt)
        if delay > 0:
            st.delay_ns += delay
            return self._delayed_request(flow, st, delay)
        return self._outcome(flow, st)

    async def _delayed_request(self, flow: http.HTTPFlow, st: FlowState, delay_ns: int) -> None:
        await sleep_ns(delay_ns)
        if _gone(flow):
            return
        pending = self._outcome(flow, st)
        if pending is not None:
            await pending

    def _outcome(self, flow: http.HTTPFlow, st: FlowState) -> Awaitable[None] | None:
        sel = st.selection
        assert sel is not None
        rt = sel.outcome
        if rt is None:
            if sel.modify is not None and sel.modify.spec.kind in ("stale", "head_lie"):
                self._tag_request(flow, st, sel.modify)
            return None
        kind = rt.spec.kind
        p = rt.spec.params
        if kind == "reset":
            st.applied_faults.append(rt)
            st.local = True
            # mitmproxy then fires `error` and closes the client connection unanswered.
            flow.kill()
        elif kind == "http_error":
            st.applied_faults.append(rt)
            st.local = True
            flow.response = http_error_response(p, st, flow)
        elif kind == "rate_limit":
            st.applied_faults.append(rt)
            st.local = True
            flow.response = http_error_response(p.answer, st, flow)
        elif kind == "rpc_error":
            info = st.info(flow)
            methods = rt.spec.match.methods
            targeted = [
                i
                for i, m in zip(info.ids, info.methods, strict=False)
                if methods is None or m in methods
            ]
            st.applied_faults.append(rt)
            if not info.is_batch or len(targeted) == info.batch_size or p.collapse:
                st.local = True
                flow.response = http.Response.make(
                    200,
                    rpc_error_body(info, p.code, p.message, p.data, p.collapse),
                    {"content-type": "application/json"},
                )
            else:
                # Part of a batch: the rest goes upstream; the response hook merges.
                st.rpc_error_ids = tuple(targeted)
        elif kind == "blackhole":
            st.applied_faults.append(rt)
            st.local = True
            return _withhold(flow, st, p.close_after_s)
        elif kind == "hang":
            st.applied_faults.append(rt)  # withheld in the response hook
        return None

    def _tag_request(self, flow: http.HTTPFlow, st: FlowState, rt: FaultRuntime) -> None:
        """The request's block tags rewritten by a `stale` or `head_lie` fault."""
        raw, p, head = flow.request.raw_content or b"", rt.spec.params, rt.extra.get("head")
        if rt.spec.kind == "stale":
            body = stale_request(raw, head, p.lag_blocks)
        elif p.mode == "zero":
            body = tag_request(raw, {"latest": "0x0", "pending": "0x0"})
        elif p.mode == "tags" and head is not None:
            lowered = hex(max(0, head - p.blocks))
            body = tag_request(raw, {"safe": lowered, "finalized": lowered})
        else:
            body = None
        if body is not None:
            flow.request.content = body
            st.applied_faults.append(rt)

    def response(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        st: FlowState | None = flow.metadata.get(KEY)
        if st is None or st.selection is None:
            return None
        sel = st.selection
        response = flow.response
        assert response is not None
        if not st.local:
            if st.rpc_error_ids:
                rt = sel.outcome
                assert rt is not None
                p = rt.spec.params
                merged = rpc_error_merge(
                    response.content or b"", st.rpc_error_ids, p.code, p.message, p.data
                )
                if merged is not None:
                    response.content = merged
            elif sel.outcome is not None and sel.outcome.spec.kind == "hang":
                return _withhold(flow, st, sel.outcome.spec.params.close_after_s)
            if sel.modify is not None and (sel.outcome is None or st.rpc_error_ids):
                self._modify(flow, st, sel.modify)
        delay = 0
        now = time.time_ns()
        for rt in sel.delays:
            p = rt.spec.params
            if p.where == "response":
                assert rt.shared is not None
                delay += p.sample_ns(rt.shared.matcher.rng, rt.progress(now))
                st.applied_faults.append(rt)
        if delay > 0:
            st.delay_ns += delay
            return sleep_ns(delay)
        return None

    def _modify(self, flow: http.HTTPFlow, st: FlowState, rt: FaultRuntime) -> None:
        response = flow.response
        assert response is not None
        body = response.content or b""
        if rt.spec.kind == "corrupt":
            response.content = corrupt(body, rt.spec.params.mode)
            st.applied_faults.append(rt)
            return
        p = rt.spec.params
        if rt.spec.kind == "stale":
            new, head = stale_response(body, st.info(flow).methods, p.lag_blocks)
        else:
            new, head = head_lie_response(
                flow.request.raw_content or b"", body, p.mode, p.blocks,
                chain_id=p.chain_id, known_head=rt.extra.get("head"),
            )  # fmt: skip
        if head is not None:
            rt.extra["head"] = max(head, rt.extra.get("head") or 0)
        if new is not None:
            response.content = new
            if rt not in st.applied_faults:
                st.applied_faults.append(rt)
