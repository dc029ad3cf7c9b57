"""Fault addons: one class per fault kind, each applying its kind in the `request` hook.

The scheduler has already put the matching fault in `flow.metadata`; a fault addon
acts only when the fault is of its kind, and marks the flow so the recorder's row
proves the fault was applied. A new kind is one parser in `chaosproxy.faults` and one
class here, listed in `FAULT_ADDONS`.
"""

from __future__ import annotations

from mitmproxy import http

from chaosproxy.addons.state import KEY, FlowState
from chaosproxy.exchange import error_body
from chaosproxy.faults import HttpErrorParams

__all__ = ["FAULT_ADDONS", "HttpErrorFault", "ResetFault"]


def _pending(flow: http.HTTPFlow, kind: str) -> FlowState | None:
    st: FlowState | None = flow.metadata.get(KEY)
    if st is None or st.fault is None or st.applied or st.fault.spec.kind != kind:
        return None
    if flow.response or flow.error or not flow.live:
        return None
    return st


class ResetFault:
    """`reset`: kill the flow, so the client connection closes without a response."""

    kind = "reset"

    def request(self, flow: http.HTTPFlow) -> None:
        if (st := _pending(flow, self.kind)) is None:
            return
        st.applied = st.local = True
        # mitmproxy then fires `error` (msg "Connection killed.") and closes the client
        # connection without writing a response.
        flow.kill()


class HttpErrorFault:
    """`http_error`: answer from the proxy with the configured status, body and headers."""

    kind = "http_error"

    def request(self, flow: http.HTTPFlow) -> None:
        if (st := _pending(flow, self.kind)) is None:
            return
        assert st.fault is not None
        params: HttpErrorParams = st.fault.spec.params
        body = params.body
        if body is None:
            body = error_body(st.info(flow), params.status)
        headers = http.Headers(content_type="application/json")
        for name, value in params.headers:
            headers[name] = value  # case-insensitive: replaces the default Content-Type
        st.applied = st.local = True
        flow.response = http.Response.make(params.status, body, headers)


FAULT_ADDONS = (ResetFault, HttpErrorFault)
