"""HTTP/1.1 for the mock provider: a pure request parser and a thin asyncio driver.

:class:`RequestParser` turns bytes into :class:`Request` objects and knows nothing of
sockets, so pipelining, partial reads and malformed input are tested byte for byte.
:class:`HttpProtocol` is an ``asyncio.Protocol`` that feeds it, asks a handler for each
response and writes it; it is plain asyncio rather than h11 because a provider must
answer tens of thousands of small requests per second from one process.

Supported: keep-alive (HTTP/1.1 default, HTTP/1.0 with ``Connection: keep-alive``),
pipelined requests answered in order, ``Content-Length`` and ``chunked`` request bodies,
``Expect: 100-continue``. Malformed requests get 400 (oversized ones 413 or 431,
unknown transfer codings 501) and the connection is closed.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from http import HTTPStatus

from providers.jsonrpc import MockNode
from providers.websocket import WsConnection, handshake, is_upgrade

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_HEAD_BYTES",
    "HttpError",
    "HttpProtocol",
    "Request",
    "RequestParser",
    "Response",
    "render_response",
    "route",
    "serve",
]

#: geth's default HTTP body limit (rpc/http.go: 5 MiB); larger bodies get 413.
MAX_BODY_BYTES = 5 * 1024 * 1024
#: Request line plus headers; larger heads get 431.
MAX_HEAD_BYTES = 64 * 1024

# RFC 9110 5.6.2 tchar: the characters allowed in methods and header names. A regex
# rather than a per-character loop: header checks were a third of the handler's time.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class HttpError(Exception):
    """The peer sent something we cannot parse; answer ``status`` and close.

    Attributes:
        status: the HTTP status to answer with (400, 411, 413, 431, 501, 505).
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(slots=True)
class Request:
    """One parsed HTTP request.

    ``headers`` keeps order and repeats; names are lower-cased, values stripped.
    """

    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    keep_alive: bool = True

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (lower-case), or None."""
        for k, v in self.headers:
            if k == name:
                return v
        return None


@dataclass(slots=True)
class Response:
    """What the driver writes back."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)
    delay_ns: int = 0  # native latency: the driver writes the response this much later


# ------------------------------------------------------------------ parsing


class RequestParser:
    """Bytes in, complete requests out; no I/O.

    Call :meth:`feed` with whatever arrived; it returns every request completed so far
    (possibly none, possibly several when the client pipelines). After a request that
    ends the connection (``Connection: close``, or HTTP/1.0 without keep-alive) the
    parser stops: later bytes are ignored and :attr:`closed` is True. Malformed input
    sets :attr:`error` (an :class:`HttpError` naming the status to answer) and closes it.
    """

    def __init__(
        self, *, max_head_bytes: int = MAX_HEAD_BYTES, max_body_bytes: int = MAX_BODY_BYTES
    ) -> None:
        self.max_head_bytes = max_head_bytes
        self.max_body_bytes = max_body_bytes
        self.closed = False
        #: Set when a WebSocket upgrade request ended HTTP parsing (see :meth:`trailing`).
        self.upgraded = False
        self.error: HttpError | None = None
        self._buf = bytearray()
        self._pending: Request | None = None  # head parsed, body not complete yet
        self._length: int | None = None  # Content-Length of the pending request
        self._chunked = False
        self._continue_due = False

    def take_continue(self) -> bool:
        """True once per request that sent ``Expect: 100-continue`` and awaits its body."""
        due, self._continue_due = self._continue_due, False
        return due

    def feed(self, data: bytes) -> list[Request]:
        """Add ``data``; return the requests it completed, in order.

        Never raises: on malformed input the requests completed before the bad one are
        returned, :attr:`error` is set and the parser is closed.
        """
        if self.closed:
            return []
        self._buf += data
        out: list[Request] = []
        try:
            while not self.closed:
                req = self._next()
                if req is None:
                    break
                out.append(req)
                if is_upgrade(req.method, req.headers):
                    # The bytes after this request are WebSocket frames, not HTTP.
                    self.upgraded = True
                    self.closed = True
                    break
                if not req.keep_alive:
                    self.closed = True
                    self._buf.clear()
        except HttpError as e:
            self.error = e
            self.closed = True
            self._buf.clear()
            self._continue_due = False
        return out

    def trailing(self) -> bytes:
        """Bytes received after an upgrade request (the first WebSocket frames)."""
        data = bytes(self._buf)
        self._buf.clear()
        return data

    def _next(self) -> Request | None:
        if self._pending is None:
            # RFC 9112 2.2: ignore empty lines before a request line.
            while self._buf[:2] == b"\r\n":
                del self._buf[:2]
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) > self.max_head_bytes:
                    raise HttpError(431, "request head too large")
                return None
            if end > self.max_head_bytes:
                raise HttpError(431, "request head too large")
            head = bytes(self._buf[:end])
            del self._buf[: end + 4]
            self._start(head)
        req = self._pending
        assert req is not None
        if self._chunked:
            done = self._take_chunked()
            if done is None:
                return None
            req.body = done
        else:
            n = self._length or 0
            if len(self._buf) < n:
                return None
            req.body = bytes(self._buf[:n])
            del self._buf[:n]
        self._pending = None
        self._continue_due = False
        return req

    def _start(self, head: bytes) -> None:
        method, target, version, headers, keep_alive, chunked, length, expect = _parse_head(head)
        if length is not None and length > self.max_body_bytes:
            raise HttpError(413, f"content length too large ({length}>{self.max_body_bytes})")
        self._chunked = chunked
        self._length = length
        if (chunked or length) and expect:
            self._continue_due = True
        self._pending = Request(method, target, version, list(headers), keep_alive=keep_alive)

    def _take_chunked(self) -> bytes | None:
        """Decode a complete chunked body from the buffer, or None if more bytes are due.

        Re-scans from the start of the body on each call: simple, and bodies are small.
        """
        buf = self._buf
        pos = 0
        body = bytearray()
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                if len(buf) - pos > 1024:
                    raise HttpError(400, "chunk size line too long")
                return None
            size_text = bytes(buf[pos:eol]).split(b";", 1)[0].strip()
            try:
                if not size_text or not all(c in b"0123456789abcdefABCDEF" for c in size_text):
                    raise ValueError
                size = int(size_text, 16)
            except ValueError:
                raise HttpError(400, f"malformed chunk size {size_text[:20]!r}") from None
            pos = eol + 2
            if size == 0:
                # trailer section: header lines until an empty line
                while True:
                    eol = buf.find(b"\r\n", pos)
                    if eol < 0:
                        return None
                    line_empty = eol == pos
                    pos = eol + 2
                    if line_empty:
                        del buf[:pos]
                        return bytes(body)
            if len(body) + size > self.max_body_bytes:
                raise HttpError(413, "content length too large")
            if len(buf) < pos + size + 2:
                return None
            body += buf[pos : pos + size]
            if buf[pos + size : pos + size + 2] != b"\r\n":
                raise HttpError(400, "chunk data not followed by CRLF")
            pos += size + 2


# Clients on keep-alive connections send the same head again and again (only the body
# changes, and often not its length): memoizing the pure parse of a head saves about a
# third of the handler's time. Failed parses raise and are not cached.
@lru_cache(maxsize=512)
def _parse_head(
    head: bytes,
) -> tuple[str, str, str, tuple[tuple[str, str], ...], bool, bool, int | None, bool]:
    """Request line and headers -> (method, target, version, headers, keep_alive,
    chunked, content_length, expect_100_continue); raises HttpError."""
    text = head.decode("latin-1")  # decodes every byte; names are checked below
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise HttpError(400, f"malformed request line {lines[0][:80]!r}")
    method, target, version = parts
    if not _TOKEN.fullmatch(method):
        raise HttpError(400, f"malformed method {method[:20]!r}")
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        if version.startswith("HTTP/"):
            raise HttpError(505, f"unsupported version {version[:20]!r}")
        raise HttpError(400, f"malformed version {version[:20]!r}")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name[-1] in " \t" or name[0] in " \t":
            # also rejects obsolete line folding (RFC 9112 5.2)
            raise HttpError(400, f"malformed header line {line[:80]!r}")
        if not _TOKEN.fullmatch(name):
            raise HttpError(400, f"malformed header name {name[:40]!r}")
        headers.append((name.lower(), value.strip(" \t")))

    connection = {t.strip().lower() for k, v in headers if k == "connection" for t in v.split(",")}
    if version == "HTTP/1.1":
        keep_alive = "close" not in connection
    else:
        keep_alive = "keep-alive" in connection

    te = [v.lower() for k, v in headers if k == "transfer-encoding"]
    cl = [v for k, v in headers if k == "content-length"]
    chunked = False
    length: int | None = None
    if te:
        if cl:
            # RFC 9112 6.1: both together is a smuggling vector; refuse.
            raise HttpError(400, "both Transfer-Encoding and Content-Length")
        codings = [c.strip() for v in te for c in v.split(",")]
        if codings != ["chunked"]:
            raise HttpError(501, f"unsupported transfer coding {','.join(codings)[:40]!r}")
        chunked = True
    elif cl:
        values = {v.strip() for v in cl for v in v.split(",")}
        if len(values) != 1:
            raise HttpError(400, "conflicting Content-Length values")
        (value,) = values
        if not value.isdigit() or not value.isascii():
            raise HttpError(400, f"malformed Content-Length {value[:20]!r}")
        length = int(value)
    expect = any(k == "expect" and v.lower() == "100-continue" for k, v in headers)
    return method, target, version, tuple(headers), keep_alive, chunked, length, expect


# ------------------------------------------------------------------ responses


@lru_cache(maxsize=64)
def _status_head(status: int, content_type: str) -> bytes:
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
    return f"HTTP/1.1 {status} {phrase}\r\nContent-Type: {content_type}\r\n".encode("latin-1")


def render_response(resp: Response, *, keep_alive: bool) -> bytes:
    """The bytes of an HTTP/1.1 response with a Content-Length body."""
    extra = "".join(f"{k}: {v}\r\n" for k, v in resp.headers) if resp.headers else ""
    if not keep_alive:
        extra += "Connection: close\r\n"
    return b"".join(
        (
            _status_head(resp.status, resp.content_type),
            b"Content-Length: %d\r\n" % len(resp.body),
            extra.encode("latin-1"),
            b"\r\n",
            resp.body,
        )
    )


def route(node: MockNode, req: Request) -> Response:
    """The provider's routes: ``POST /`` JSON-RPC, ``GET /health``.

    A WebSocket upgrade on ``/`` never reaches here (the driver takes it over). The
    native latency of a reply is carried in ``Response.delay_ns``.
    """
    path = req.target.split("?", 1)[0]
    if path == "/":
        if req.method == "POST":
            reply = node.respond(req.body)
            return Response(
                reply.status, reply.body, headers=reply.headers, delay_ns=reply.delay_ns
            )
        return Response(405, b"method not allowed\n", "text/plain", [("Allow", "POST")])
    if path == "/health":
        if req.method in ("GET", "HEAD"):
            head = node.head()
            body = json.dumps({"status": "ok", "name": node.name, "head": head}).encode()
            return Response(200, b"" if req.method == "HEAD" else body)
        return Response(405, b"method not allowed\n", "text/plain", [("Allow", "GET")])
    return Response(404, b"not found\n", "text/plain")


# ------------------------------------------------------------------ asyncio driver


class HttpProtocol(asyncio.Protocol):
    """Feeds a :class:`RequestParser` and writes one response per request, in order.

    Handling is synchronous, so pipelined requests are answered in arrival order with no
    queue. A response with a native latency is written later by ``call_at``; responses
    behind it wait for it, so order is kept. When the peer stops reading (transport
    buffer above its high-water mark) we stop reading too. ``GET /`` with an upgrade
    header switches the connection to WebSocket (:class:`WsConnection`).
    """

    def __init__(
        self,
        handler: Callable[[Request], Response],
        connections: set[HttpProtocol],
        node: MockNode | None = None,
    ):
        self._handler = handler
        self._connections = connections
        self._node = node
        self._parser = RequestParser()
        self._transport: asyncio.Transport | None = None
        self._busy_until = 0.0  # loop time of the last delayed write still pending
        self.ws: WsConnection | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport is not an asyncio.Transport subclass, only alike.
        self._transport = transport  # type: ignore[assignment]
        self._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.discard(self)
        self._transport = None

    def _idle(self) -> bool:
        """No delayed write is pending, so a write now keeps the response order."""
        return not self._busy_until or self._busy_until <= asyncio.get_running_loop().time()

    def _send(self, data: bytes, delay_ns: int = 0, close: bool = False) -> None:
        """Write now, or after ``delay_ns`` and after every earlier delayed write."""
        if delay_ns <= 0 and self._idle():
            if data and self._transport is not None:
                self._transport.write(data)
            if close and self._transport is not None:
                self._transport.close()
            return
        loop = asyncio.get_running_loop()
        at = max(loop.time() + delay_ns / 1e9, self._busy_until)
        self._busy_until = at
        loop.call_at(at, self._send_now, data, close)

    def _send_now(self, data: bytes, close: bool) -> None:
        if self._transport is None:
            return
        if data:
            self._transport.write(data)
        if close:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        transport = self._transport
        if transport is None:
            return
        if self.ws is not None:
            self._ws_received(data)
            return
        parser = self._parser
        requests = parser.feed(data)
        if parser.upgraded:
            upgrade = requests.pop()
        if len(requests) == 1:
            resp = self._handler(requests[0])
            self._send(render_response(resp, keep_alive=requests[0].keep_alive), resp.delay_ns)
        elif requests:
            # Pipelined: one write for every response due now (one syscall, not N).
            now: list[bytes] = []
            for r in requests:
                resp = self._handler(r)
                data = render_response(resp, keep_alive=r.keep_alive)
                if resp.delay_ns > 0 or not (now or self._idle()):
                    if now:
                        self._send(b"".join(now))
                        now = []
                    self._send(data, resp.delay_ns)
                else:
                    now.append(data)
            if now:
                self._send(b"".join(now))
        if parser.upgraded:
            self._upgrade(upgrade)
            return
        if parser.error is not None:
            e = parser.error
            body = (str(e) + "\n").encode()
            resp = Response(e.status, body, "text/plain")
            self._send(render_response(resp, keep_alive=False), close=True)
        elif parser.take_continue():
            self._send(b"HTTP/1.1 100 Continue\r\n\r\n")
        elif parser.closed:
            self._send(b"", close=True)

    def _upgrade(self, req: Request) -> None:
        path = req.target.split("?", 1)[0]
        if path != "/" or self._node is None:
            resp = Response(404, b"not found\n", "text/plain")
            self._send(render_response(resp, keep_alive=False), close=True)
            return
        status, head = handshake(req.headers)
        if status != 101:
            self._send(head, close=True)
            return
        self._send(head)
        self.ws = WsConnection(self._node.open_session())
        rest = self._parser.trailing()
        if rest:
            self._ws_received(rest)

    def _ws_received(self, data: bytes) -> None:
        assert self.ws is not None
        out = self.ws.receive(data)
        if out.now:
            self._send(bytes(out.now))
        for delay_ns, frame in out.replies:
            self._send(frame, delay_ns)
        if out.close:
            self._send(b"", close=True)

    def tick(self, now_ns: int) -> None:
        """Send the WebSocket notifications due at ``now_ns`` (no-op for HTTP)."""
        if self.ws is not None and self._transport is not None:
            frames = self.ws.notifications(now_ns)
            if frames:
                self._transport.write(frames)

    def pause_writing(self) -> None:
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    def close(self) -> None:
        if self._transport is not None:
            if self.ws is not None:
                self._transport.write(self.ws.going_away())
            self._transport.close()


async def _notify_blocks(node: MockNode, connections: set[HttpProtocol]) -> None:
    """Wake at each block's production time and push WebSocket notifications."""
    chain = node.chain
    while True:
        now = time.time_ns()
        nxt = chain.block_time_ns(chain.head(now) + 1)
        # A hair after the boundary, so head(now) has moved when we look.
        await asyncio.sleep(max(nxt - now, 0) / 1e9 + 0.0005)
        now = time.time_ns()
        for conn in list(connections):
            if conn.ws is not None:
                conn.tick(now)


async def serve(
    node: MockNode,
    port: int,
    *,
    host: str = "127.0.0.1",
    ready: Callable[[int], None] | None = None,
    stop: asyncio.Event,
) -> None:
    """Serve ``node`` on ``host:port`` (HTTP and WebSocket) until ``stop`` is set.

    Args:
        port: 0 picks an ephemeral port; ``ready`` receives the real one.
        ready: called once, after the socket listens.
        stop: set it to shut down; every connection is closed (WebSocket ones with 1001).
    """
    loop = asyncio.get_running_loop()
    connections: set[HttpProtocol] = set()

    def handler(req: Request) -> Response:
        return route(node, req)

    server = await loop.create_server(
        lambda: HttpProtocol(handler, connections, node),
        host,
        port,
        reuse_address=True,
        backlog=1024,
    )
    ticker = asyncio.create_task(_notify_blocks(node, connections))
    try:
        bound = server.sockets[0].getsockname()[1]
        if ready is not None:
            ready(bound)
        await stop.wait()
    finally:
        ticker.cancel()
        server.close()
        for conn in list(connections):
            conn.close()
        await server.wait_closed()
