"""The reference JSON-RPC router: the default system under test.

A trio + h11 HTTP/1.1 front forwards each JSON-RPC request (single or batch) to one of
several upstreams over a shared ``httpx.AsyncClient``, failing over on retriable
failures. Layout: ``_policy`` (which failures are retriable, pure), ``_selector`` (the
order upstreams are tried in, pure), ``_config`` (TOML config and its template),
``_router`` (attempts with failover), ``_server`` (the h11 driver), ``__main__`` (CLI).
"""

from ._config import (
    ConfigError,
    RouterConfig,
    UpstreamConfig,
    load_config,
    parse_config,
    render_config,
)
from ._policy import (
    RETRIABLE_RPC_ERRORS,
    AttemptResult,
    UpstreamFailure,
    UpstreamResponse,
    Verdict,
    classify,
)
from ._router import Reply, Router, failure_body, open_upstream_client
from ._selector import Strategy, UpstreamSelector
from ._server import serve

__all__ = (
    "RETRIABLE_RPC_ERRORS",
    "AttemptResult",
    "ConfigError",
    "Reply",
    "Router",
    "RouterConfig",
    "Strategy",
    "UpstreamConfig",
    "UpstreamFailure",
    "UpstreamResponse",
    "UpstreamSelector",
    "Verdict",
    "classify",
    "failure_body",
    "load_config",
    "open_upstream_client",
    "parse_config",
    "render_config",
    "serve",
)
