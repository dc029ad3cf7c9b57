"""Forwarding with failover: one client request, up to ``max_attempts`` upstream attempts.

The decisions are made by the pure pieces (:class:`UpstreamSelector` picks the order,
:func:`classify` judges each attempt); this module only runs the attempts over a shared
``httpx.AsyncClient`` under trio deadlines. Tests pass a client built on
``httpx.MockTransport`` to drive it without sockets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
import trio

from ._config import RouterConfig
from ._policy import AttemptResult, UpstreamFailure, UpstreamResponse, classify
from ._selector import UpstreamSelector

__all__ = [
    "FAILURE_RPC_CODE",
    "FAILURE_STATUS",
    "Reply",
    "Router",
    "failure_body",
    "open_upstream_client",
]

# What the client gets when no upstream answered usefully: 502 Bad Gateway (RFC 9110
# 15.6.3) carrying a JSON-RPC "internal error" so JSON-RPC clients see an error object.
FAILURE_STATUS = 502
FAILURE_RPC_CODE = -32603

JSON_CONTENT_TYPE = "application/json"

# Pool sizing: a load generator worker keeps tens of connections busy; 256 concurrent
# upstream connections is far more than 2 cores can drive, so the pool never limits us.
POOL_MAX_CONNECTIONS = 256
POOL_MAX_KEEPALIVE = 128
POOL_KEEPALIVE_EXPIRY_S = 30.0


@dataclass(frozen=True, slots=True)
class Reply:
    """The response the router sends back to its client."""

    status: int
    content_type: str
    body: bytes


def open_upstream_client(config: RouterConfig) -> httpx.AsyncClient:
    """The shared upstream client: keep-alive pool, no redirects, no proxy from the env.

    The trio cancel scope in :meth:`Router.forward` bounds each attempt; httpx's own
    timeout is the same value, as a second guard.
    """
    return httpx.AsyncClient(
        limits=httpx.Limits(
            max_connections=POOL_MAX_CONNECTIONS,
            max_keepalive_connections=POOL_MAX_KEEPALIVE,
            keepalive_expiry=POOL_KEEPALIVE_EXPIRY_S,
        ),
        timeout=httpx.Timeout(config.attempt_timeout_s),
        follow_redirects=False,
        trust_env=False,
    )


def _error_object(request_id: Any, message: str) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "error": {"code": FAILURE_RPC_CODE, "message": message},
    }


def failure_body(request_body: bytes, message: str) -> bytes:
    """A JSON-RPC error body answering ``request_body``.

    A single request gets one error object with its ``id`` (null when it has none or
    cannot be parsed); a batch gets one error object per element, in order.
    """
    try:
        request = json.loads(request_body)
    except ValueError:
        request = None
    payload: Any
    if isinstance(request, list) and request:
        payload = [
            _error_object(el.get("id") if isinstance(el, dict) else None, message) for el in request
        ]
    else:
        request_id = request.get("id") if isinstance(request, dict) else None
        payload = _error_object(request_id, message)
    return json.dumps(payload, separators=(",", ":")).encode()


def _describe(exc: Exception) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Router:
    """Forwards request bodies to the configured upstreams with failover.

    Args:
        config: the validated configuration.
        client: the shared upstream client (see :func:`open_upstream_client`).
    """

    def __init__(self, config: RouterConfig, client: httpx.AsyncClient) -> None:
        self._config = config
        self._client = client
        self._selector = UpstreamSelector(len(config.upstreams), config.strategy)
        self._names = tuple(u.name for u in config.upstreams)
        self._urls = tuple(u.url for u in config.upstreams)

    async def _attempt(
        self, url: str, body: bytes, headers: dict[str, str], timeout_s: float
    ) -> AttemptResult:
        with trio.move_on_after(timeout_s):
            try:
                response = await self._client.post(url, content=body, headers=headers)
            except httpx.TimeoutException as exc:
                return UpstreamFailure("timeout", _describe(exc))
            except httpx.RequestError as exc:
                return UpstreamFailure("conn_error", _describe(exc))
            return UpstreamResponse(
                response.status_code, response.headers.get("content-type"), response.content
            )
        return UpstreamFailure("timeout", f"timed out after {timeout_s:.3g}s")

    async def forward(
        self, body: bytes, *, content_type: str | None = None, tag: str | None = None
    ) -> Reply:
        """Forward one client request.

        Args:
            body: the request body, sent upstream unchanged.
            content_type: the client's Content-Type, forwarded (JSON when absent).
            tag: the client's ``X-Battle-Tag``, forwarded when present.

        Returns:
            The first non-retriable upstream response, byte for byte; with failover off,
            the first attempt's response whatever it was; otherwise a 502 JSON-RPC error
            naming the last failed upstream.
        """
        config = self._config
        headers = {
            "content-type": content_type or JSON_CONTENT_TYPE,
            # Identity: the client's bytes come back as the upstream sent them, unzipped.
            "accept-encoding": "identity",
        }
        if tag is not None:
            headers["x-battle-tag"] = tag
        deadline = trio.current_time() + config.request_timeout_s
        plan = self._selector.plan()[: config.max_attempts]
        failure = ""
        for index in plan:
            remaining = deadline - trio.current_time()
            if remaining <= 0:
                break
            timeout_s = min(config.attempt_timeout_s, remaining)
            result = await self._attempt(self._urls[index], body, headers, timeout_s)
            verdict = classify(result)
            if isinstance(result, UpstreamResponse) and (
                not verdict.retriable or not config.failover
            ):
                return Reply(result.status, result.content_type or JSON_CONTENT_TYPE, result.body)
            failure = f"upstream {self._names[index]} failed: {verdict.reason}"
            if not config.failover:
                break
        return Reply(FAILURE_STATUS, JSON_CONTENT_TYPE, failure_body(body, failure))
