"""Forwarding with failover: one client request, up to ``max_attempts`` upstream attempts.

The decisions are made by the pure pieces (:class:`UpstreamSelector` orders the
upstreams, :class:`CircuitBreaker` and the rate-limit and head state take unwell ones
out of the way, :func:`classify` judges each attempt); this module only runs the attempts
over the :class:`UpstreamPool` (the lean client for ``http://``, httpx for ``https://``)
under trio deadlines and keeps the counters. Tests pass an ``httpx.AsyncClient`` built on
``httpx.MockTransport`` to drive it without sockets.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from dataclasses import dataclass
from typing import Any

import httpx
import trio

from ._breaker import BREAKER_STATE_VALUES, CircuitBreaker
from ._config import RouterConfig
from ._heads import (
    HeadTracker,
    asked_tag,
    block_of,
    chain_id_of,
    state_lie,
    with_block_number,
)
from ._metrics import Registry
from ._policy import AttemptResult, UpstreamFailure, UpstreamResponse, classify
from ._ratelimit import rate_limit_of
from ._selector import LatencyTracker, UpstreamSelector
from ._upstream import HttpxUpstream, LeanUpstream, UpstreamClient

__all__ = [
    "FAILURE_RPC_CODE",
    "FAILURE_STATUS",
    "NO_UPSTREAM_STATUS",
    "Reply",
    "Router",
    "UpstreamPool",
    "failure_body",
    "open_upstream_client",
]

# What the client gets when no upstream answered usefully: 502 Bad Gateway (RFC 9110
# 15.6.3) carrying a JSON-RPC "internal error" so JSON-RPC clients see an error object.
FAILURE_STATUS = 502
FAILURE_RPC_CODE = -32603
# Every upstream's breaker is open: 503 Service Unavailable, nothing was attempted.
NO_UPSTREAM_STATUS = 503

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


class UpstreamPool:
    """The router's upstream clients: the lean one for ``http://``, httpx for ``https://``."""

    def __init__(self, config: RouterConfig) -> None:
        self.lean = LeanUpstream()
        self.httpx = HttpxUpstream(
            httpx.AsyncClient(
                limits=httpx.Limits(
                    max_connections=POOL_MAX_CONNECTIONS,
                    max_keepalive_connections=POOL_MAX_KEEPALIVE,
                    keepalive_expiry=POOL_KEEPALIVE_EXPIRY_S,
                ),
                timeout=httpx.Timeout(config.attempt_timeout_s),
                follow_redirects=False,
                trust_env=False,
            )
        )

    def for_url(self, url: str) -> UpstreamClient:
        return self.httpx if url.startswith("https://") else self.lean

    async def __aenter__(self) -> UpstreamPool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.lean.aclose()
        await self.httpx.aclose()


def open_upstream_client(config: RouterConfig) -> UpstreamPool:
    """The shared upstream clients, as an async context manager that closes them.

    The trio cancel scope in :meth:`Router.forward` bounds each attempt; httpx's own
    timeout is the same value, as a second guard. No redirects, no proxy from the env.
    """
    return UpstreamPool(config)


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


class Router:
    """Forwards request bodies to the configured upstreams.

    Args:
        config: the validated configuration.
        client: how attempts reach the upstreams: an :class:`UpstreamPool` (see
            :func:`open_upstream_client`), one :class:`UpstreamClient` for all, or an
            ``httpx.AsyncClient`` (tests pass one built on ``httpx.MockTransport``).
        clock: seconds on a monotonic clock (``trio.current_time`` by default); tests pass
            their own to drive breakers and back-offs.
    """

    def __init__(
        self,
        config: RouterConfig,
        client: UpstreamPool | UpstreamClient | httpx.AsyncClient,
        *,
        clock: Any = None,
    ) -> None:
        self._config = self.config = config
        self.metrics_enabled = config.metrics
        if isinstance(client, httpx.AsyncClient):
            client = HttpxUpstream(client)
        self._client = client
        self._clients = tuple(
            client.for_url(u.url) if isinstance(client, UpstreamPool) else client
            for u in config.upstreams
        )
        self._clock = clock or trio.current_time
        n = len(config.upstreams)
        self._selector = UpstreamSelector(n, config.strategy)
        self.names = tuple(u.name for u in config.upstreams)
        self._urls = tuple(u.url for u in config.upstreams)
        self.latency = LatencyTracker(n)
        settings = config.circuit_breaker
        self.breakers = tuple(CircuitBreaker(settings) for _ in range(n)) if settings else None
        self.limited_until = [0.0] * n
        heads = config.head_tracking
        self.heads = (
            HeadTracker(
                n,
                heads.max_lag_blocks,
                max_ahead_blocks=heads.max_ahead_blocks,
                consensus=heads.consensus,
                tags=heads.tags,
                # Three polls missed: the upstream stopped answering, its head has no say.
                fresh_s=3 * heads.poll_interval_s,
            )
            if heads
            else None
        )
        # When each upstream last told us its head in an answer: no poll needed before
        # poll_interval_s has passed since then.
        self._heard = [-math.inf] * n
        # State checks: each upstream's chain id, asked once by its first poll, and the
        # fleet's, the one most of them answered.
        self._check_state = bool(heads and heads.state)
        self._chain_ids: list[int | None] = [None] * n
        self.chain_id: int | None = None
        self._poll_ids = itertools.count()
        self.metrics = registry = Registry()
        self.requests = registry.counter(
            "router_requests_total", "Client JSON-RPC requests by outcome.", ("outcome",)
        )
        self.attempts = registry.counter(
            "router_upstream_attempts_total",
            "Upstream attempts for client requests, by upstream and result.",
            ("upstream", "result"),
        )
        names = self.names
        if self.breakers is not None:
            breakers = self.breakers
            registry.gauge(
                "router_breaker_state",
                "Circuit breaker state per upstream: 0 closed, 1 half-open, 2 open.",
                ("upstream",),
                lambda: (
                    ((nm,), BREAKER_STATE_VALUES[b.state])
                    for nm, b in zip(names, breakers, strict=True)
                ),
            )
            registry.gauge(
                "router_breaker_opens_total",
                "Times the upstream's circuit breaker opened.",
                ("upstream",),
                lambda: (((nm,), b.opens) for nm, b in zip(names, breakers, strict=True)),
                kind="counter",
            )
        registry.gauge(
            "router_upstream_rate_limited",
            "1 while the upstream is demoted for a rate limit.",
            ("upstream",),
            lambda: (
                ((nm,), int(until > self._clock()))
                for nm, until in zip(names, self.limited_until, strict=True)
            ),
        )
        registry.gauge(
            "router_upstream_latency_seconds",
            "Moving average of the upstream's latency.",
            ("upstream",),
            lambda: (((nm,), v) for nm, v in zip(names, self.latency.values, strict=True)),
        )
        if self.heads is not None:
            tracker = self.heads
            registry.gauge(
                "router_upstream_head",
                "Last head block the upstream reported.",
                ("upstream",),
                lambda: (((nm,), h) for nm, h in zip(names, tracker.heads, strict=True)),
            )
            registry.gauge(
                "router_answered_head",
                "Highest eth_blockNumber answered to a client.",
                (),
                lambda: [((), tracker.answered if tracker.answered >= 0 else None)],
            )

    # -----------------------------------------------------------------------------------
    # Planning

    def plan(self, now: float) -> list[int]:
        """The upstreams to try for the next request, in order.

        The strategy's order, minus upstreams whose breaker is open; upstreams demoted for
        a rate limit or lagging behind (or ahead of) the best head go after the others,
        as a last resort.
        """
        order = self._selector.plan(self.latency.values)
        breakers, heads, limited = self.breakers, self.heads, self.limited_until
        first: list[int] = []
        last: list[int] = []
        for index in order:
            if breakers is not None and not breakers[index].available(now):
                continue
            demoted = (self._config.rate_limit is not None and limited[index] > now) or (
                heads is not None and (heads.lagging(index, now) or heads.ahead(index, now))
            )
            (last if demoted else first).append(index)
        return first + last

    # -----------------------------------------------------------------------------------
    # Attempts

    async def _attempt(
        self, index: int, body: bytes, headers: dict[str, str], timeout_s: float
    ) -> AttemptResult:
        with trio.move_on_after(timeout_s):
            return await self._clients[index].post(self._urls[index], body, headers)
        return UpstreamFailure("timeout", f"timed out after {timeout_s:.3g}s")

    def _judge(self, index: int, result: AttemptResult, started: float, now: float) -> bool:
        """Update the upstream's health from one attempt; True when it is worth another."""
        config, name = self._config, self.names[index]
        breaker = self.breakers[index] if self.breakers is not None else None
        # A timeout is a latency sample too (the whole attempt), so `fastest` moves off a
        # provider that hangs; a refused connection says nothing about speed.
        if isinstance(result, UpstreamResponse) or result.kind == "timeout":
            self.latency.observe(index, now - started)
        limit = (
            rate_limit_of(result, config.rate_limit, now_epoch_s=time.time())
            if config.rate_limit is not None
            else None
        )
        if limit is not None:
            # A rate limit says nothing about the provider's health: demote, do not trip.
            self.limited_until[index] = max(self.limited_until[index], now + limit.backoff_s)
            self.attempts.inc(name, "rate_limited")
            if breaker is not None:
                breaker.release()
            return True
        verdict = classify(result)
        if verdict.retriable:
            timeout = isinstance(result, UpstreamFailure) and result.kind == "timeout"
            kind = result.kind if isinstance(result, UpstreamFailure) else "retriable_error"
            self.attempts.inc(name, kind)
            if breaker is not None:
                breaker.record_failure(now, timeout=timeout)
            return True
        self.attempts.inc(name, "ok")
        if breaker is not None:
            breaker.record_success(now)
        return False

    async def forward(
        self, body: bytes, *, content_type: str | None = None, tag: str | None = None
    ) -> Reply:
        """Forward one client request.

        Args:
            body: the request body, sent upstream unchanged.
            content_type: the client's Content-Type, forwarded (JSON when absent).
            tag: the client's ``X-Battle-Tag``, forwarded when present.

        Returns:
            The first non-retriable upstream response, byte for byte (except an
            ``eth_blockNumber`` below one already answered, raised to it); with failover
            off, the first attempt's response whatever it was; a 503 when every breaker
            is open; otherwise a 502 JSON-RPC error naming the last failed upstream.
        """
        config = self._config
        headers = {
            "content-type": content_type or JSON_CONTENT_TYPE,
            # Identity: the client's bytes come back as the upstream sent them, unzipped.
            "accept-encoding": "identity",
        }
        if tag is not None:
            headers["x-battle-tag"] = tag
        clock = self._clock
        start = clock()
        deadline = start + config.request_timeout_s
        plan = self.plan(start)
        if not plan:
            self.requests.inc("no_upstream")
            return Reply(
                NO_UPSTREAM_STATUS,
                JSON_CONTENT_TYPE,
                failure_body(body, "no upstream available: every circuit breaker is open"),
            )
        if not config.failover:
            plan = plan[:1]
        failure = ""
        tried = 0
        for index in plan:
            if tried >= config.max_attempts:
                break
            now = clock()
            remaining = deadline - now
            if remaining <= 0:
                break
            breaker = self.breakers[index] if self.breakers is not None else None
            if breaker is not None and not breaker.allow(now):
                continue  # another request holds the half-open probe
            tried += 1
            timeout_s = min(config.attempt_timeout_s, remaining)
            try:
                result = await self._attempt(index, body, headers, timeout_s)
            except BaseException:
                if breaker is not None:
                    breaker.release()  # cancelled: the probe says nothing
                raise
            retriable = self._judge(index, result, now, clock())
            if isinstance(result, UpstreamResponse) and (not retriable or not config.failover):
                reply, untrue = self._reply(index, body, result)
                if untrue is None or not config.failover:
                    self.requests.inc("ok" if not retriable else "upstream_error")
                    return reply
                self.attempts.inc(self.names[index], "bad_head")
                failure = f"upstream {self.names[index]} failed: {untrue}"
                continue
            reason = classify(result).reason or f"HTTP {getattr(result, 'status', '?')} rate limit"
            failure = f"upstream {self.names[index]} failed: {reason}"
        self.requests.inc("failed")
        if not failure:
            failure = "no upstream available: the half-open probes are taken"
        return Reply(FAILURE_STATUS, JSON_CONTENT_TYPE, failure_body(body, failure))

    def _reply(
        self, index: int, request: bytes, result: UpstreamResponse
    ) -> tuple[Reply, str | None]:
        """The reply to give for an upstream's answer, and why it must not be given
        (None: it may): a head from an upstream ahead of the others, a ``latest``,
        ``safe`` or ``finalized`` block below one already answered, another chain's id,
        a sync in progress (see _heads)."""
        content_type = result.content_type or JSON_CONTENT_TYPE
        plain = Reply(result.status, content_type, result.body)
        if self._check_state and result.status == 200:
            lie = state_lie(request, result.body, self.chain_id)
            if lie is not None:
                return plain, lie
        heads = self.heads
        asked = asked_tag(request) if heads is not None and result.status == 200 else None
        if asked is None:
            return plain, None
        assert heads is not None
        block = block_of(result.body)
        if block is None:
            return plain, None
        method, tag = asked
        if tag != "latest":
            floor = heads.tag_floor(tag)
            if block < floor:
                return plain, f"{tag} block {block} is below {floor}, already answered"
            heads.answer_tag(tag, block)
            return plain, None
        now = self._clock()
        heads.observe(index, block, now)
        self._heard[index] = now
        if heads.ahead(index, now):
            return plain, f"head {block} is ahead of the others' ({heads.best(now)})"
        if method == "eth_blockNumber":
            floor = heads.floor(block)
            body = result.body if floor == block else with_block_number(result.body, floor)
            return Reply(result.status, content_type, body), None
        floor = heads.tag_floor("latest")
        if block < floor:
            return plain, f"latest block {block} is below {floor}, already answered"
        heads.floor(block)
        return plain, None

    # -----------------------------------------------------------------------------------
    # Head polling and internal calls

    async def call(self, method: str, params: list[Any]) -> Any:
        """The router's own JSON-RPC call through :meth:`forward` (failover and all).

        Returns:
            The result, or None when no upstream gave one.
        """
        request_id = f"router-{next(self._poll_ids)}"
        body = json.dumps(
            {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        ).encode()
        reply = await self.forward(body, tag=request_id)
        try:
            answer = json.loads(reply.body)
        except ValueError:
            return None
        return answer.get("result") if isinstance(answer, dict) else None

    async def _own_call(self, index: int, method: str) -> AttemptResult:
        # The router's own requests carry a tag of their own (`router-poll-N`), never a
        # client's, so analysis can tell them from client traffic.
        tag = f"router-poll-{next(self._poll_ids)}"
        body = json.dumps({"jsonrpc": "2.0", "id": tag, "method": method, "params": []}).encode()
        headers = {
            "content-type": JSON_CONTENT_TYPE,
            "accept-encoding": "identity",
            "x-battle-tag": tag,
        }
        return await self._attempt(index, body, headers, self._config.attempt_timeout_s)

    async def _poll_one(self, index: int) -> None:
        if self._check_state and self._chain_ids[index] is None:
            answer = await self._own_call(index, "eth_chainId")
            if isinstance(answer, UpstreamResponse) and answer.status == 200:
                self._chain_ids[index] = block_of(answer.body)  # a hex result, as a head is
                self.chain_id = chain_id_of(self._chain_ids)
        started = self._clock()
        result = await self._own_call(index, "eth_blockNumber")
        if isinstance(result, UpstreamResponse) and result.status == 200:
            block = block_of(result.body)
            if block is not None and self.heads is not None:
                self.heads.observe(index, block, self._clock())
                # A poll is a small request: its latency keeps `fastest` up to date even
                # for upstreams no client request went to lately.
                self.latency.observe(index, self._clock() - started)

    async def poll_heads(self) -> None:
        """Poll every upstream's head until cancelled (head tracking must be on)."""
        settings = self._config.head_tracking
        if settings is None:
            return
        while True:
            now = self._clock()
            async with trio.open_nursery() as nursery:
                for index in range(len(self._urls)):
                    # An open breaker keeps even polls away: its probe is what tests the
                    # upstream again, and a stopped provider should see no traffic.
                    # Likewise a provider that asked us to back off gets nothing until then.
                    if self.breakers is not None and not self.breakers[index].available(now):
                        continue
                    if self._config.rate_limit is not None and self.limited_until[index] > now:
                        continue
                    # Heard from lately through a client's eth_blockNumber: no need to ask.
                    if now - self._heard[index] < settings.poll_interval_s:
                        continue
                    nursery.start_soon(self._poll_one, index)
            await trio.sleep(settings.poll_interval_s)
