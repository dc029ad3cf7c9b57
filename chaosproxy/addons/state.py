"""Per-flow state shared by the chaos addons, kept in `flow.metadata[KEY]`."""

from __future__ import annotations

from dataclasses import dataclass

from mitmproxy import http

from chaosproxy.exchange import RequestInfo, parse_request
from chaosproxy.schedule import FaultRuntime

__all__ = ["KEY", "FlowState", "Providers", "state_of"]

KEY = "chaosproxy"


class Providers:
    """Maps the listener a flow arrived on to its provider name."""

    def __init__(self, ports: dict[int, str]) -> None:
        self.by_port = dict(ports)
        self.names = tuple(ports.values())

    def of(self, flow: http.HTTPFlow) -> str | None:
        sockname = flow.client_conn.sockname
        return self.by_port.get(sockname[1]) if sockname else None


@dataclass(slots=True, eq=False)
class FlowState:
    """What the chaos addons learned about one exchange."""

    provider: str | None
    # The fault the matcher picked for this exchange; `applied` once a fault addon acted.
    fault: FaultRuntime | None = None
    applied: bool = False
    # Answered or killed by the proxy: never sent upstream.
    local: bool = False
    # When the last request hook finished: the earliest the request can go upstream.
    t_hooks_done: int | None = None
    recorded: bool = False
    _info: RequestInfo | None = None

    def info(self, flow: http.HTTPFlow) -> RequestInfo:
        """The request's JSON-RPC facts, parsed on first use."""
        if self._info is None:
            self._info = parse_request(flow.request.raw_content or b"")
        return self._info


def state_of(flow: http.HTTPFlow, providers: Providers) -> FlowState:
    """The flow's state, created if no request hook made it (e.g. invalid requests)."""
    st = flow.metadata.get(KEY)
    if st is None:
        st = flow.metadata[KEY] = FlowState(providers.of(flow))
    return st
