"""Transports: how a worker puts one request on the wire.

A transport takes the encoded body and headers and returns the status and body, or
raises. `outcome_of_exception` is the one place where transport exceptions become the
`outcome` vocabulary of the requests table.

`Http1Transport` is the hot path (plain `http://` targets): the pure parser of
`http1.py` driven by trio streams, a pool of keep-alive connections. `HttpxTransport`
serves `https://` targets (TLS; HTTP/1.1, as its client is made without `http2=True`),
where speed matters less than coverage.
"""

from __future__ import annotations

import errno
import math
import os
import socket
from collections import deque
from typing import Protocol
from urllib.parse import urlsplit

import httpx
import trio

from .http1 import CLOSED, NEED_DATA, ClientConnection, encode_post

__all__ = [
    "ConnectionClosedError",
    "Http1Transport",
    "HttpxTransport",
    "Transport",
    "open_transport",
    "outcome_of_exception",
]

# Bytes asked of the socket per read: one read holds a typical JSON-RPC answer whole.
RECEIVE_BYTES = 65536


class Transport(Protocol):
    async def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]: ...

    async def aclose(self) -> None: ...


class ConnectionClosedError(Exception):
    """The server closed the connection without sending a response."""


class _Conn:
    __slots__ = ("call", "closed", "parser", "sock", "timed_out", "used")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.parser = ClientConnection()
        self.used = False
        self.call = 0  # the number of the call using it (0: none)
        self.timed_out: str | None = None
        self.closed = False

    def close(self) -> None:
        # Synchronous, so that it also runs while the call is being cancelled; a
        # task waiting on the socket gets trio.ClosedResourceError.
        if not self.closed:
            self.closed = True
            trio.lowlevel.notify_closing(self.sock)
            self.sock.close()


async def _connect(address: tuple) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if len(address) == 4 else socket.AF_INET)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        err = sock.connect_ex(address)
        if err == errno.EINPROGRESS:
            await trio.lowlevel.wait_writable(sock)
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise OSError(err, f"connect to {address[0]}:{address[1]}: {os.strerror(err)}")
    except BaseException:
        sock.close()
        raise
    return sock


class Http1Transport:
    """HTTP/1.1 keep-alive POSTs, one request per connection at a time.

    The driver of `http1.ClientConnection`: non-blocking sockets waited on with
    `trio.lowlevel.wait_readable` / `wait_writable`, the leanest way to do I/O under
    trio (trio's `SocketStream` adds about 15 µs a request in conflict detection and
    wrappers, which at 20,000 requests a second is a third of a core).

    A request takes an idle connection or opens a new one (up to `max_connections`,
    then it waits for one to come back). A connection is reused only if the response
    said so and arrived whole; a cancelled call (timeout) closes its connection, since
    its answer may still arrive on it.
    """

    def __init__(self, url: str, *, max_connections: int = 1024) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"url must be http://host[:port][/path], got {url!r}")
        if max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, got {max_connections}")
        self.url = url
        self._host = parts.hostname
        self._port = parts.port or 80
        self._address: tuple | None = None
        self._host_header = parts.netloc.encode()
        self._target = (parts.path or "/").encode() + (
            b"?" + parts.query.encode() if parts.query else b""
        )
        self._max = max_connections
        self._idle: list[_Conn] = []
        self._open = 0
        self._lot = trio.lowlevel.ParkingLot()
        # Deadlines of calls in flight, in the order sent, for the watchdog.
        self._deadlines: deque[tuple[float, _Conn, int]] = deque()
        self._calls = 0
        self._cap = math.inf
        self._watchdog_lot = trio.lowlevel.ParkingLot()
        self._watchdog_scope: trio.CancelScope | None = None

    @property
    def max_connections(self) -> int:
        return self._max

    @property
    def request_prefix(self) -> bytes:
        """What every request starts with (`encode_post` with no headers and no body,
        up to its headers)."""
        return encode_post(self._target, self._host_header, {}, b"").partition(b"Content-Length:")[
            0
        ]

    async def resolve(self) -> tuple:
        """The target's socket address (resolved once)."""
        if self._address is None:
            info = await trio.socket.getaddrinfo(self._host, self._port, type=socket.SOCK_STREAM)
            self._address = info[0][4]
        return self._address

    def adopt_idle(self) -> list[socket.socket]:
        """Hands the idle connections over to the caller (`reactor`), which closes them."""
        socks = [conn.sock for conn in self._idle]
        self._open -= len(self._idle)
        self._idle.clear()
        return socks

    async def _acquire(self) -> _Conn:
        while True:
            if self._idle:
                return self._idle.pop()
            if self._open < self._max:
                self._open += 1
                try:
                    sock = await _connect(await self.resolve())
                except BaseException:
                    self._open -= 1
                    self._lot.unpark()
                    raise
                return _Conn(sock)
            await self._lot.park()

    async def warm_up(self, connections: int = 1) -> None:
        """Resolves the target and opens `connections` idle connections, before the
        load starts: the first resolution runs in a thread and imports codecs, a
        stall of milliseconds that would otherwise make the first sends late. A
        target that refuses now is not an error here (calls will record it)."""
        conns = []
        try:
            for _ in range(min(connections, self._max)):
                conns.append(await self._acquire())
        except OSError:
            pass
        for conn in conns:
            self._release(conn, True)

    def _release(self, conn: _Conn, reusable: bool) -> None:
        if reusable and conn.parser.reusable:
            conn.used = True
            self._idle.append(conn)
        else:
            self._open -= 1
            conn.close()
        self._lot.unpark()

    # ------------------------------------------------------------- deadlines
    #
    # A trio CancelScope per call was the largest single cost of a call (about a sixth
    # of the worker's CPU at 20,000 calls/s). With `deadline`, a call registers it in
    # a queue instead, and one watchdog task closes the socket of a call past its
    # deadline: the waiting call wakes with ClosedResourceError and raises TimeoutError.

    async def watchdog(self) -> None:
        """Enforces the `deadline` of calls; run it in the worker's nursery."""
        queue = self._deadlines
        while True:
            while queue and queue[0][1].call != queue[0][2]:
                queue.popleft()  # that call ended
            if not queue:
                await self._watchdog_lot.park()
                continue
            deadline, conn, call = queue[0]
            with trio.CancelScope(deadline=min(deadline, self._cap)) as scope:
                self._watchdog_scope = scope
                await trio.sleep_forever()
            self._watchdog_scope = None
            if trio.current_time() >= min(deadline, self._cap) and conn.call == call:
                queue.popleft()
                conn.timed_out = "deadline" if deadline <= self._cap else "cap"
                conn.close()

    def cap_deadlines(self, cap: float) -> None:
        """From now on no call outlives trio time `cap` (the drain's end)."""
        self._cap = min(self._cap, cap)
        if self._watchdog_scope is not None:
            self._watchdog_scope.deadline = min(self._watchdog_scope.deadline, self._cap)

    async def post(
        self, body: bytes, headers: dict[str, str], *, deadline: float | None = None
    ) -> tuple[int, bytes]:
        """One call. With `deadline` (trio time; needs `watchdog` running) a call still
        unanswered then raises TimeoutError, and so does one the drain cuts off."""
        if deadline is None:
            return await self._post(body, headers, None)
        if self._idle:
            return await self._post(body, headers, deadline)
        # Connecting, or waiting for a connection, is bounded the ordinary way.
        with trio.move_on_at(min(deadline, self._cap)):
            return await self._post(body, headers, deadline)
        raise TimeoutError(self._timeout_text("deadline" if deadline <= self._cap else "cap"))

    @staticmethod
    def _timeout_text(why: str) -> str:
        return "no answer by the end of the drain" if why == "cap" else "no answer in time"

    async def _post(
        self, body: bytes, headers: dict[str, str], deadline: float | None
    ) -> tuple[int, bytes]:
        request = encode_post(self._target, self._host_header, headers, body)
        wait_readable = trio.lowlevel.wait_readable
        while True:
            conn = await self._acquire()
            reused = conn.used
            reusable = False
            sock = conn.sock
            if deadline is not None:
                self._calls += 1
                conn.call = self._calls
                self._deadlines.append((deadline, conn, conn.call))
                if len(self._deadlines) == 1:
                    self._watchdog_lot.unpark()
            try:
                view = memoryview(request)
                while view:
                    try:
                        view = view[sock.send(view) :]
                    except BlockingIOError:
                        await trio.lowlevel.wait_writable(sock)
                parser = conn.parser
                while True:
                    event = parser.next_event()
                    if event is NEED_DATA:
                        await wait_readable(sock)
                        try:
                            parser.receive_data(sock.recv(RECEIVE_BYTES))
                        except BlockingIOError:
                            pass
                    elif event is CLOSED:
                        break
                    else:
                        reusable = event.keep_alive  # type: ignore[union-attr]
                        return event.status, event.body  # type: ignore[union-attr]
            except (OSError, trio.ClosedResourceError):
                if conn.timed_out:
                    raise TimeoutError(self._timeout_text(conn.timed_out)) from None
                if not reused:
                    raise
            finally:
                conn.call = 0
                self._release(conn, reusable)
            # A kept-alive connection the server had already closed (its idle timeout)
            # answers nothing: retry once on a fresh one, as browsers and httpcore do.
            # A new connection closed without an answer is the server's failure.
            if not reused:
                raise ConnectionClosedError("server closed the connection without answering")

    async def aclose(self) -> None:
        for conn in self._idle:
            conn.close()
        self._open -= len(self._idle)
        self._idle.clear()


class HttpxTransport:
    """HTTP/1.1 keep-alive POSTs through one httpx client (TLS targets)."""

    def __init__(self, url: str, *, max_connections: int = 256) -> None:
        self.url = url
        # Deadlines are enforced by the worker around the whole call, so httpx's own
        # timeouts are off: they apply per phase and would not bound a call in total.
        self._client = httpx.AsyncClient(
            timeout=None,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )

    async def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        response = await self._client.post(self.url, content=body, headers=headers)
        return response.status_code, response.content

    async def aclose(self) -> None:
        await self._client.aclose()


def open_transport(url: str, *, max_connections: int = 1024) -> Transport:
    """The lean client for `http://` targets, httpx for `https://`."""
    if url.startswith("https://"):
        return HttpxTransport(url, max_connections=max_connections)
    return Http1Transport(url, max_connections=max_connections)


def outcome_of_exception(exc: BaseException) -> str:
    """Maps a transport failure onto the requests table's outcome vocabulary."""
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return "timeout"
    # Everything else a transport raises (OSError, trio.BrokenResourceError,
    # RemoteProtocolError, ConnectionClosedError, httpx.TransportError) means the
    # connection failed before a whole answer arrived.
    return "conn_error"
