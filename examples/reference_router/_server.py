"""The HTTP/1.1 front: a thin trio driver around h11, one task per connection.

``GET /health`` answers ``{"ok":true}``; ``POST`` to any path is a JSON-RPC request
(single or batch) handed to :class:`Router`. Keep-alive is h11's: the connection stays
open until the client closes it or asks for ``Connection: close``.
"""

from __future__ import annotations

from http import HTTPStatus

import h11
import trio

from ._config import RouterConfig
from ._router import JSON_CONTENT_TYPE, Reply, Router, open_upstream_client

__all__ = ["MAX_BODY_BYTES", "serve"]

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
    if method == b"GET" and target.split(b"?", 1)[0] == b"/health":
        return _HEALTH
    if method == b"GET":
        return _plain(404, "not found")
    return _plain(405, "method not allowed")


async def _serve_connection(stream: trio.SocketStream, router: Router) -> None:
    conn = h11.Connection(h11.SERVER)
    try:
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
    async with open_upstream_client(config) as client:
        router = Router(config, client)
        listeners = await trio.open_tcp_listeners(config.port, host=config.host)
        host, port = listeners[0].socket.getsockname()[:2]

        async def handler(stream: trio.SocketStream) -> None:
            await _serve_connection(stream, router)

        task_status.started((host, port))
        await trio.serve_listeners(handler, listeners)
