"""Recorder addon: one `upstream` row per exchange, written when the exchange ends.

It must come after every fault addon in the chain: its `request` hook stamps the time
the request hooks finished, the earliest moment mitmproxy can send the request upstream.
mitmproxy fires exactly one of `response` and `error` per flow (a killed flow fires
`error`); `FlowState.recorded` guards against a second row anyway.
"""

from __future__ import annotations

import time

from mitmproxy import http

from analysis.shards import ShardWriter
from chaosproxy.addons.state import Providers, state_of
from chaosproxy.exchange import (
    TAG_HEADER,
    classify_error,
    classify_response,
    extract_tag,
    rpc_id_text,
)

__all__ = ["Recorder"]


def _ns(t: float | None) -> int | None:
    return None if t is None else int(t * 1e9)


class Recorder:
    def __init__(self, proxy_id: str, providers: Providers, upstream: ShardWriter) -> None:
        self.proxy_id = proxy_id
        self.providers = providers
        self.upstream = upstream
        # Exchanges whose request hooks ran and that are not recorded yet.
        self.in_flight = 0

    def request(self, flow: http.HTTPFlow) -> None:
        self.in_flight += 1
        state_of(flow, self.providers).t_hooks_done = time.time_ns()

    def response(self, flow: http.HTTPFlow) -> None:
        self._record(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._record(flow)

    def _record(self, flow: http.HTTPFlow) -> None:
        t_response = time.time_ns()
        st = state_of(flow, self.providers)
        if st.recorded:
            return
        st.recorded = True
        if st.t_hooks_done is not None:
            self.in_flight -= 1
        request = flow.request
        info = st.info(flow)
        fault = st.fault
        for rt in st.applied_faults:
            rt.applied += 1

        t_sent: int | None = None
        t_done: int | None = None
        if not st.local:
            server = flow.server_conn
            ready = server.timestamp_tls_setup or server.timestamp_tcp_setup
            if ready is not None:
                # mitmproxy has no "request sent" hook; the request goes out as soon as
                # both the hooks are done and the connection is up.
                t_sent = max(st.t_hooks_done or 0, _ns(ready) or 0) or None
        # A withheld answer (hang) reached the proxy but never the client.
        response = flow.response if st.outcome is None else None
        if response is not None:
            status = response.status_code
            outcome, rpc_code = classify_response(status, response.get_content(strict=False) or b"")
            bytes_out = len(response.raw_content or b"")
            if not st.local:
                t_done = _ns(response.timestamp_end)
        else:
            status = None
            rpc_code = None
            bytes_out = None
            server = flow.server_conn
            outcome = st.outcome or classify_error(
                flow.error.msg if flow.error else "",
                killed_by_fault=fault is not None and fault.spec.kind == "reset",
                upstream_connected=server.timestamp_tcp_setup is not None,
            )
        self.upstream.append(
            (
                st.provider,
                self.proxy_id,
                flow.id,
                flow.client_conn.id,
                "ws" if st.upgrade else "http",
                info.method,
                info.batch_size,
                rpc_id_text(info.rpc_id),
                extract_tag(request.headers.get(TAG_HEADER), info),
                _ns(request.timestamp_start),
                t_sent,
                t_done,
                t_response,
                fault.window_id if fault else None,
                fault.spec.kind if fault else None,
                st.delay_ns,
                outcome,
                status,
                rpc_code,
                len(request.raw_content or b""),
                bytes_out,
                ",".join(rt.window_id for rt in st.applied_faults) or None,
            )
        )
