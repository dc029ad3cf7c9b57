"""Upstream HTTP clients: how one attempt's bytes reach a provider and come back.

:class:`LeanUpstream` is the router's default for ``http://`` upstreams: h11 over trio
TCP streams with a keep-alive pool per origin, doing only what a JSON-RPC POST needs.
:class:`HttpxUpstream` wraps an ``httpx.AsyncClient``; the router uses it for
``https://`` upstreams (TLS), and tests use it with ``httpx.MockTransport``.

Why two: measured with ``bench/router_throughput.py`` (one mock provider, wrk -c16), the
router did about 1,050 req/s with httpx, ~80% of its CPU in httpx and httpcore (cProfile);
with the lean client, about 4,000 req/s, and 0.45 ms added at p50 instead of 0.83 ms.

Both return an :data:`AttemptResult` and never raise for a transport failure; the
caller bounds the attempt with a trio cancel scope.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Protocol
from urllib.parse import urlsplit

import h11
import httpx
import trio

from ._policy import AttemptResult, UpstreamFailure, UpstreamResponse

__all__ = ["HttpxUpstream", "LeanUpstream", "UpstreamClient"]

RECEIVE_BYTES = 64 * 1024
# Idle keep-alive connections kept per origin: more than the concurrent requests one
# worker's load puts on one provider, so steady load never opens new connections.
MAX_IDLE_PER_ORIGIN = 64
# An answer larger than this is refused (h11's own default head limit is 16 KiB).
MAX_RESPONSE_BYTES = 64 * 1024 * 1024


class UpstreamClient(Protocol):
    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> AttemptResult: ...

    async def aclose(self) -> None: ...


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class HttpxUpstream:
    """Attempts over a shared ``httpx.AsyncClient``."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> AttemptResult:
        try:
            response = await self._client.post(url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            return UpstreamFailure("timeout", _describe(exc))
        except httpx.RequestError as exc:
            return UpstreamFailure("conn_error", _describe(exc))
        return UpstreamResponse(
            response.status_code,
            response.headers.get("content-type"),
            response.content,
            response.headers.get("retry-after"),
        )

    async def aclose(self) -> None:
        await self._client.aclose()


class _Closed(Exception):
    """The server closed the connection before answering."""


class LeanUpstream:
    """Attempts over plain HTTP/1.1 keep-alive connections (``http://`` URLs only)."""

    def __init__(self) -> None:
        self._idle: defaultdict[tuple[str, int], list[tuple[trio.SocketStream, h11.Connection]]]
        self._idle = defaultdict(list)

    async def _connection(
        self, origin: tuple[str, int]
    ) -> tuple[trio.SocketStream, h11.Connection]:
        idle = self._idle[origin]
        while idle:
            stream, conn = idle.pop()
            # A readable idle connection was closed by the server (or sent junk): drop it.
            if not stream.socket.is_readable():
                conn.start_next_cycle()
                return stream, conn
            await trio.aclose_forcefully(stream)
        stream = await trio.open_tcp_stream(*origin)
        return stream, h11.Connection(h11.CLIENT)

    async def _exchange(
        self, stream: trio.SocketStream, conn: h11.Connection, request: bytes
    ) -> UpstreamResponse:
        await stream.send_all(request)
        status, content_type, retry_after = 0, None, None
        chunks: list[bytes] = []
        size = 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(RECEIVE_BYTES)
                conn.receive_data(data)
                if not data and status == 0:
                    raise _Closed("server closed the connection without a response")
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
                for name, value in event.headers:
                    if name == b"content-type":
                        content_type = value.decode("latin-1")
                    elif name == b"retry-after":
                        retry_after = value.decode("latin-1")
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size > MAX_RESPONSE_BYTES:
                    raise h11.RemoteProtocolError("response body too large")
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return UpstreamResponse(status, content_type, b"".join(chunks), retry_after)
            elif isinstance(event, h11.ConnectionClosed):
                raise _Closed("server closed the connection mid-response")

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> AttemptResult:
        parts = urlsplit(url)
        origin = (parts.hostname or "127.0.0.1", parts.port or 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            stream, conn = await self._connection(origin)
        except OSError as exc:
            return UpstreamFailure("conn_error", _describe(exc))
        keep = False
        try:
            head = [("host", parts.netloc), ("content-length", str(len(body)))]
            head += list(headers.items())
            request = conn.send(h11.Request(method="POST", target=target, headers=head))
            request += conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())
            # No silent retry on a new connection when this one fails: the upstream may
            # have seen the request, and a retry is the router's decision (failover),
            # visible as such in the recorded exchanges.
            response = await self._exchange(stream, conn, request)
        except _Closed as exc:
            return UpstreamFailure("conn_error", str(exc))
        except (OSError, h11.ProtocolError, trio.BrokenResourceError) as exc:
            return UpstreamFailure("conn_error", _describe(exc))
        else:
            keep = conn.our_state is h11.DONE and conn.their_state is h11.DONE
            return response
        finally:
            idle = self._idle[origin]
            if keep and len(idle) < MAX_IDLE_PER_ORIGIN:
                idle.append((stream, conn))
            else:
                # Also on cancellation (attempt timeout): a half-used connection is
                # never reused.
                await trio.aclose_forcefully(stream)

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for stream, _ in idle:
                await trio.aclose_forcefully(stream)
        self._idle.clear()
