"""The reference JSON-RPC router: the default system under test.

A trio + h11 HTTP/1.1 front forwards each JSON-RPC request (single or batch) to one of
several upstreams (a lean HTTP/1.1 client for ``http://``, httpx for ``https://``):
routing strategies, failover within a deadline, a circuit breaker per upstream,
rate-limit demotion, head tracking and state checks, WebSocket subscriptions with gap
filling, Prometheus ``/metrics``; each behaviour can be switched off in the config.

Layout, pure pieces first: ``_policy`` (which failures are retriable), ``_ratelimit``
(rate limits and their back-off hints), ``_breaker`` (the breaker state machine),
``_selector`` (strategies, latency average), ``_heads`` (head tracking),
``_gapfill`` (newHeads sequencing), ``_metrics`` (text exposition); then ``_config``
(TOML config and its template), ``_router`` (attempts, health, polling), ``_ws``
(subscriptions), ``_server`` (the h11 driver), ``__main__`` (CLI).
"""

from ._breaker import BreakerSettings, CircuitBreaker
from ._config import (
    ConfigError,
    HeadSettings,
    RouterConfig,
    UpstreamConfig,
    WebSocketSettings,
    load_config,
    parse_config,
    render_config,
)
from ._gapfill import HeadSequencer
from ._heads import HeadTracker
from ._policy import (
    RETRIABLE_RPC_ERRORS,
    AttemptResult,
    UpstreamFailure,
    UpstreamResponse,
    Verdict,
    classify,
)
from ._ratelimit import RateLimit, RateLimitSettings, rate_limit_of
from ._router import Reply, Router, UpstreamPool, failure_body, open_upstream_client
from ._selector import LatencyTracker, Strategy, UpstreamSelector
from ._server import serve

__all__ = (
    "RETRIABLE_RPC_ERRORS",
    "AttemptResult",
    "BreakerSettings",
    "CircuitBreaker",
    "ConfigError",
    "HeadSequencer",
    "HeadSettings",
    "HeadTracker",
    "LatencyTracker",
    "RateLimit",
    "RateLimitSettings",
    "Reply",
    "Router",
    "RouterConfig",
    "Strategy",
    "UpstreamConfig",
    "UpstreamFailure",
    "UpstreamPool",
    "UpstreamResponse",
    "UpstreamSelector",
    "Verdict",
    "WebSocketSettings",
    "classify",
    "failure_body",
    "load_config",
    "open_upstream_client",
    "parse_config",
    "rate_limit_of",
    "render_config",
    "serve",
)
