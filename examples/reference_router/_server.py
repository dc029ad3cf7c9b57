"""The HTTP/1.1 front: a thin trio driver around h11, one task per connection.

``GET /health`` answers ``{"ok":true}``; ``GET /metrics`` the Prometheus exposition
(when metrics are on); ``POST`` to any path is a JSON-RPC request (single or batch)
handed to :class:`Router`. Keep-alive is h11's: the connection stays open until the
client closes it or asks for ``Connection: close``.

A connection whose first request is ``GET`` with ``Upgrade: websocket`` is handed to
trio-websocket instead (when WebSocket is on), with the bytes already read replayed, so
HTTP and WebSocket share one port as they do on geth and on hosted providers.
"""

from __future__ import annotations

from http import HTTPStatus

import h11
import trio
import trio_websocket

from ._config import RouterConfig
from ._metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from ._router import JSON_CONTENT_TYPE, Reply, Router, open_upstream_client
from ._ws import HeadFeed, serve_websocket

__all__ = ["MAX_BODY_BYTES", "serve"]

# The request head of a WebSocket handshake must fit in this (browsers send ~1 KiB).
MAX_UPGRADE_HEAD_BYTES = 16 * 1024
# Largest WebSocket message accepted from a client: as large as an HTTP body.
MAX_WS_MESSAGE_BYTES = 16 * 1024 * 1024

# Largest request body accepted: generous for JSON-RPC batches (geth's own HTTP limit is
# 5 MiB), small enough that one client cannot make the router buffer without bound.
MAX_BODY_BYTES = 16 * 1024 * 1024
RECEIVE_BYTES = 64 * 1024

_REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}
_HEALTH = Reply(200, JSON_CONTENT_TYPE, b'{"ok":true}')


def _plain(status: int, text: str) -> Reply:
    return Reply(status, "text/plain; charset=utf-8", text.encode() + b"\n")


class _RequestTooLarge(Exception):
    pass


async def _next_event(stream: trio.SocketStream, conn: h11.Connection) -> object:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        if conn.they_are_waiting_for_100_continue:
            await stream.send_all(conn.send(h11.InformationalResponse(status_code=100)))
        conn.receive_data(await stream.receive_some(RECEIVE_BYTES))


async def _read_body(stream: trio.SocketStream, conn: h11.Connection) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        event = await _next_event(stream, conn)
        if isinstance(event, h11.Data):
            size += len(event.data)
            if size > MAX_BODY_BYTES:
                raise _RequestTooLarge
            chunks.append(event.data)
        elif isinstance(event, h11.EndOfMessage):
            return b"".join(chunks)
        else:  # ConnectionClosed mid-body
            raise h11.RemoteProtocolError("connection closed before the request body ended")


async def _send_reply(stream: trio.SocketStream, conn: h11.Connection, reply: Reply) -> None:
    headers = [
        ("content-type", reply.content_type),
        ("content-length", str(len(reply.body))),
    ]
    data = conn.send(
        h11.Response(
            status_code=reply.status, headers=headers, reason=_REASONS.get(reply.status, b"")
        )
    )
    data += conn.send(h11.Data(data=reply.body))
    data += conn.send(h11.EndOfMessage())
    await stream.send_all(data)


async def _handle(stream: trio.SocketStream, conn: h11.Connection, router: Router) -> Reply:
    request = await _next_event(stream, conn)
    if not isinstance(request, h11.Request):
        raise EOFError  # the client closed the connection between requests
    method, target = request.method, request.target
    if method == b"POST":
        body = await _read_body(stream, conn)
        content_type = tag = None
        for name, value in request.headers:
            if name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"x-battle-tag":
                tag = value.decode("latin-1")
        try:
            return await router.forward(body, content_type=content_type, tag=tag)
        except Exception as exc:
            # A bug on one request must not take the whole router down (serve_listeners
            # would re-raise it): answer this request with a 500 and keep serving.
            return _plain(500, f"router error: {type(exc).__name__}: {exc}")
    await _read_body(stream, conn)  # h11 wants the (usually empty) body consumed
    path = target.split(b"?", 1)[0]
    if method == b"GET" and path == b"/health":
        return _HEALTH
    if method == b"GET" and path == b"/metrics" and router.metrics_enabled:
        return Reply(200, METRICS_CONTENT_TYPE, router.metrics.render())
    if method == b"GET":
        return _plain(404, "not found")
    return _plain(405, "method not allowed")


class _ReplayStream(trio.abc.Stream):
    """A stream that first returns bytes already read from ``stream``, then reads on."""

    def __init__(self, stream: trio.abc.Stream, head: bytes) -> None:
        self._stream, self._head = stream, head

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        if self._head:
            head, self._head = self._head, b""
            return head
        return await self._stream.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self._stream.aclose()


async def _peek_upgrade(stream: trio.SocketStream) -> tuple[bytes, bool]:
    """Read the first request's head when it may be a WebSocket upgrade.

    Returns the bytes read and whether they are a ``GET`` asking for ``Upgrade:
    websocket``; anything else is left for h11, which gets the bytes back.
    """
    data = await stream.receive_some(RECEIVE_BYTES)
    if not data.startswith(b"GET "):
        return data, False
    while b"\r\n\r\n" not in data and len(data) < MAX_UPGRADE_HEAD_BYTES:
        more = await stream.receive_some(RECEIVE_BYTES)
        if not more:
            break
        data += more
    head = data.split(b"\r\n\r\n", 1)[0].lower()
    upgrade = any(
        line.startswith(b"upgrade:") and b"websocket" in line for line in head.split(b"\r\n")
    )
    return data, upgrade


async def _serve_connection(
    stream: trio.SocketStream, router: Router, feed: HeadFeed | None = None
) -> None:
    conn = h11.Connection(h11.SERVER)
    try:
        if feed is not None:
            data, upgrade = await _peek_upgrade(stream)
            if upgrade:
                try:
                    await _serve_upgrade(_ReplayStream(stream, data), router, feed)
                except Exception:
                    # A bad handshake or a broken client must not take the router down
                    # (serve_listeners would re-raise it): close this connection only.
                    pass
                return
            conn.receive_data(data)
        while True:
            try:
                reply = await _handle(stream, conn, router)
            except EOFError:
                return
            except _RequestTooLarge:
                reply = _plain(413, f"request body larger than {MAX_BODY_BYTES} bytes")
            except h11.RemoteProtocolError as exc:
                if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    await _send_reply(stream, conn, _plain(exc.error_status_hint, str(exc)))
                return
            await _send_reply(stream, conn, reply)
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return  # close: either side asked to, or the request body was left unread
            conn.start_next_cycle()
    except (trio.BrokenResourceError, trio.ClosedResourceError, h11.LocalProtocolError):
        return
    finally:
        await trio.aclose_forcefully(stream)


async def _serve_upgrade(stream: trio.abc.Stream, router: Router, feed: HeadFeed) -> None:
    async with trio.open_nursery() as nursery:
        request = await trio_websocket.wrap_server_stream(
            nursery, stream, max_message_size=MAX_WS_MESSAGE_BYTES
        )
        ws = await request.accept()
        queue = router.config.websocket.client_queue if router.config.websocket else 1
        await serve_websocket(ws, router, feed, queue)
        await ws.aclose()
        nursery.cancel_scope.cancel()


async def serve(
    config: RouterConfig,
    *,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the router until cancelled.

    Reports ``(host, port)`` through ``task_status`` once listening, so
    ``await nursery.start(serve, config)`` returns the real port when the config says 0.

    Raises:
        OSError: the listen address cannot be bound.
    """
    async with open_upstream_client(config) as client, trio.open_nursery() as nursery:
        router = Router(config, client)
        feed = None
        if config.websocket is not None:
            urls = tuple(u.websocket_url for u in config.upstreams)
            feed = HeadFeed(router, config.websocket, urls)
            nursery.start_soon(feed.run)
        if config.head_tracking is not None:
            nursery.start_soon(router.poll_heads)
        listeners = await trio.open_tcp_listeners(config.port, host=config.host)
        host, port = listeners[0].socket.getsockname()[:2]

        async def handler(stream: trio.SocketStream) -> None:
            await _serve_connection(stream, router, feed)

        task_status.started((host, port))
        await trio.serve_listeners(handler, listeners)
