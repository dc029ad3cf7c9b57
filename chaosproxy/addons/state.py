"""Per-flow state shared by the chaos addons, kept in `flow.metadata[KEY]`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mitmproxy import http

from chaosproxy.exchange import RequestInfo, parse_request
from chaosproxy.matching import Selection
from chaosproxy.schedule import FaultRuntime

__all__ = ["KEY", "FlowState", "Providers", "state_of"]

KEY = "chaosproxy"


class Providers:
    """Maps the listener a flow arrived on to its provider name."""

    def __init__(self, ports: dict[int, str]) -> None:
        self.by_port = dict(ports)
        self.names = tuple(ports.values())
        self.port_of = {name: port for port, name in ports.items()}

    def of(self, flow: http.HTTPFlow) -> str | None:
        sockname = flow.client_conn.sockname
        return self.by_port.get(sockname[1]) if sockname else None


@dataclass(slots=True, eq=False)
class FlowState:
    """What the chaos addons learned about one exchange."""

    provider: str | None
    # What the scheduler selected for this exchange (None: no fault matched).
    selection: Selection | None = None
    # The windows that acted on this exchange, in the order they acted.
    applied_faults: list[FaultRuntime] = field(default_factory=list)
    # Total injected delay, ns.
    delay_ns: int = 0
    # Answered or killed by the proxy: never sent upstream.
    local: bool = False
    # A WebSocket upgrade request.
    upgrade: bool = False
    # rpc_error on part of a batch: the ids whose answers the response hook replaces.
    rpc_error_ids: tuple[Any, ...] = ()
    # When the last request hook finished: the earliest the request can go upstream.
    t_hooks_done: int | None = None
    # The outcome a fault decided for an exchange that ends without a response
    # (hang / blackhole: "timeout" when the client gave up, "reset" when the proxy closed).
    outcome: str | None = None
    recorded: bool = False
    _info: RequestInfo | None = None

    @property
    def fault(self) -> FaultRuntime | None:
        """The fault recorded as the exchange's `fault_id`: the outcome or modifier
        when one acted, else the first delay."""
        faults = self.applied_faults
        if not faults:
            return None
        for rt in faults:
            if rt.spec.role != "delay":
                return rt
        return faults[0]

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
