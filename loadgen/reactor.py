"""The open-model engine for plain-HTTP targets: one trio task, one private epoll.

Why: driven by trio tasks, a call costs three task switches (the timer wakes the
dispatcher, the dispatcher hands the call to a sender, the sender waits for the
answer), an `epoll_ctl` per wait (trio registers one-shot) and a timerfd round trip
per send: about 60 µs of CPU a call, so one worker process kept pace up to about
15,000 calls/s. Here one task runs every call of the load as a small event loop:

- a level-triggered epoll set of its own holds one timerfd and every connection's
  socket (registered once, for as long as the connection lives); trio waits on that
  epoll's own descriptor, which is readable when any member is ready;
- on each wake it reads the answers that arrived, sends every call whose intended time
  has come (straight from this task: nothing stands between the timer and the send),
  times out calls past their deadline, and arms the timer for the next intended send or
  deadline.

It is HTTP/1.1 keep-alive with one call per connection at a time, as `Http1Transport`:
a call takes an idle connection or opens a new one (up to the transport's
`max_connections`, then it waits for one to come back); a connection is reused only if
its response said so and arrived whole; a call timed out closes its connection; a
kept-alive connection the server had closed is retried once on a fresh one. The engine
knows nothing of JSON-RPC: `start` gives it each call's request bytes, `finish` takes
each call's end (an answer, or the exception that ended it).

Every wait on trio is a checkpoint, so the load is cancellable and other tasks (the
WebSocket clients, the progress line) run between wakes; a wake handles at most
`BATCH` sends before yielding again.
"""

from __future__ import annotations

import errno
import os
import select
import socket
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import trio

from .http1 import CLOSED, NEED_DATA, ClientConnection, RemoteProtocolError
from .timer import TimerFd
from .transport import RECEIVE_BYTES, ConnectionClosedError, Http1Transport

__all__ = ["DRAIN", "run_open_load"]

# Sends handled in one wake before yielding to trio (a worker far behind its schedule
# still lets other tasks and cancellation in every few hundred µs).
BATCH = 64
# Readiness events handled per wake: answers that piled up (after a stall) are read a
# few at a time, with the sends that fell due in between, so answers do not make sends
# late (the rest stay ready: the epoll set is level-triggered).
EVENTS = 16
# A wake closer than this is not worth a timer (a syscall and a wakeup cost more): the
# engine yields with a plain checkpoint and looks again.
MIN_WAIT_NS = 20_000
# The text of a TimeoutError for a call the end of the drain cut off.
DRAIN = "no answer by the end of the drain"

_CLOSED_TEXT = "server closed the connection without answering"
_IN = select.EPOLLIN
_IN_OUT = select.EPOLLIN | select.EPOLLOUT


class _Flight:
    """One call on its way: sent (or waiting for a connection) and not yet ended."""

    __slots__ = ("conn", "deadline", "done", "job", "request", "retried", "t_sent", "unsent")

    def __init__(self, job: Any, request: bytes, t_sent: int, deadline: int) -> None:
        self.job = job
        self.request = request
        self.t_sent = t_sent
        self.deadline = deadline
        self.conn: _Conn | None = None
        self.unsent = b""
        self.retried = False
        self.done = False


class _Conn:
    __slots__ = ("connecting", "flight", "parser", "sock", "used")

    def __init__(self, sock: socket.socket, *, connecting: bool, used: bool = False) -> None:
        self.sock = sock
        self.parser = ClientConnection()
        self.connecting = connecting
        self.used = used  # has answered a call before (a retry is allowed on it)
        self.flight: _Flight | None = None


async def run_open_load(
    transport: Http1Transport,
    times: Iterator[tuple[int, int]],
    start: Callable[[int, int], tuple[bytes, Any] | None],
    finish: Callable[[Any, int, int, int | None, bytes, BaseException | None], None],
    *,
    now_ns: Callable[[], int],
    timeout_ns: int,
    drain_ns: int,
) -> None:
    """Runs an open-model load over `transport`'s target until every call has ended.

    Args:
        times: `(seq, t_intended)` of each call, epoch ns, non-decreasing.
        start: called at a call's intended time; returns its request bytes and a job
            handed back to `finish`, or None when the call is not to be sent.
        finish: `finish(job, t_sent, t_done, status, body, exc)`: the call ended with
            an answer (`status`, `body`), or with `exc` (TimeoutError, whose text says
            whether the drain cut it off (`DRAIN`); an OSError; a RemoteProtocolError...).
        now_ns: the worker's clock (epoch ns on a monotonic base).
        timeout_ns: a call unanswered this long after its send ends as a timeout.
        drain_ns: after the last send, calls in flight get at most this long.
    """
    engine = _Engine(transport, start, finish, now_ns, timeout_ns)
    try:
        await engine.run(times, drain_ns)
    finally:
        engine.close()


class _Engine:
    def __init__(
        self,
        transport: Http1Transport,
        start: Callable[[int, int], tuple[bytes, Any] | None],
        finish: Callable[[Any, int, int, int | None, bytes, BaseException | None], None],
        now_ns: Callable[[], int],
        timeout_ns: int,
    ) -> None:
        self._transport = transport
        self._start = start
        self._finish = finish
        self._now = now_ns
        self._timeout = timeout_ns
        self._max = transport.max_connections
        self._ep = select.epoll()
        self._timer = TimerFd()
        self._ep.register(self._timer.fileno(), _IN)
        self._conns: dict[int, _Conn] = {}
        self._idle: list[_Conn] = []
        # Calls in send order; their deadlines (send + timeout) are non-decreasing, so
        # the first not yet done is the next to time out. Ended calls are skipped.
        self._flights: deque[_Flight] = deque()
        # Calls waiting for a connection (all `max_connections` busy), in order.
        self._waiting: deque[_Flight] = deque()
        self._cap: int | None = None  # the end of the drain, once the load has ended
        self._address: tuple | None = None
        self._resolve_error: OSError | None = None
        for sock in transport.adopt_idle():
            conn = _Conn(sock, connecting=False, used=True)
            self._add(conn, _IN)
            self._idle.append(conn)

    # ---------------------------------------------------------------- the loop

    async def run(self, times: Iterator[tuple[int, int]], drain_ns: int) -> None:
        try:
            self._address = await self._transport.resolve()
        except OSError as exc:
            self._resolve_error = exc  # every call records it
        now = self._now
        flights = self._flights
        ep_fd = self._ep.fileno()
        poll = self._ep.poll
        timer = self._timer
        timer_fd = timer.fileno()
        conns = self._conns
        wait_readable = trio.lowlevel.wait_readable
        nxt = next(times, None)
        while True:
            t = now()
            sent = 0
            while nxt is not None and nxt[1] <= t and sent < BATCH:
                started = self._start(nxt[0], nxt[1])
                if started is not None:
                    self._send_new(*started)
                sent += 1
                nxt = next(times, None)
                t = now()
            if nxt is None and self._cap is None:
                self._cap = t + drain_ns
            self._expire(t)
            if nxt is None and not flights:
                return
            wake = nxt[1] if nxt is not None else self._cap
            while flights and flights[0].done:
                flights.popleft()
            if flights:
                wake = min(wake, flights[0].deadline)  # type: ignore[type-var]
            if nxt is not None and nxt[1] <= t:
                wake = t  # more sends are due: yield, then go on
            delay = wake - t  # type: ignore[operator]
            if delay > MIN_WAIT_NS:
                timer.arm_ns(delay)
                await wait_readable(ep_fd)
            else:
                await trio.lowlevel.checkpoint()
            for fd, events in poll(0, EVENTS):
                if fd == timer_fd:
                    timer.consume()
                    continue
                conn = conns.get(fd)
                if conn is None:
                    continue  # closed while handling an earlier event of this batch
                if conn.connecting or (events & select.EPOLLOUT and conn.flight):
                    self._on_writable(conn)
                    if fd not in conns:
                        continue
                if events & ~select.EPOLLOUT:
                    self._on_readable(conn)

    def _expire(self, t: int) -> None:
        """Times out calls past their deadline, and every call once the drain ends."""
        flights = self._flights
        cap = self._cap
        drained = cap is not None and t >= cap
        while flights and (flights[0].done or flights[0].deadline <= t or drained):
            flight = flights.popleft()
            if not flight.done:
                # The drain's text only when it came before the call's own deadline.
                why = DRAIN if drained and cap < flight.deadline else "deadline"  # type: ignore[operator]
                self._end(flight, None, b"", TimeoutError(why), t)

    # ------------------------------------------------------------- sending

    def _send_new(self, request: bytes, job: Any) -> None:
        t_sent = self._now()
        flight = _Flight(job, request, t_sent, t_sent + self._timeout)
        self._flights.append(flight)
        self._dispatch(flight, fresh=False)

    def _dispatch(self, flight: _Flight, *, fresh: bool) -> None:
        """Puts `flight` on a connection: an idle one (unless `fresh`), a new one, or
        the queue of calls waiting for one."""
        if self._idle and not fresh:
            conn = self._idle.pop()
        elif len(self._conns) < self._max:
            try:
                conn = self._open()
            except OSError as exc:
                self._end(flight, None, b"", exc)
                return
        elif self._idle:  # a fresh one was asked for, but none can be opened
            conn = self._idle.pop()
        else:
            self._waiting.append(flight)
            return
        conn.flight = flight
        flight.conn = conn
        flight.unsent = flight.request
        if not conn.connecting:
            self._write(conn)

    def _open(self) -> _Conn:
        address = self._address
        if address is None:
            # A new exception each time: raising one object again would grow its
            # traceback by a call's frames every time.
            error = self._resolve_error
            raise type(error)(*error.args) if error else OSError("target not resolved")
        sock = socket.socket(socket.AF_INET6 if len(address) == 4 else socket.AF_INET)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            err = sock.connect_ex(address)
            if err not in (0, errno.EINPROGRESS):
                raise OSError(err, f"connect to {address[0]}:{address[1]}: {os.strerror(err)}")
        except BaseException:
            sock.close()
            raise
        conn = _Conn(sock, connecting=err != 0)
        self._add(conn, _IN_OUT if conn.connecting else _IN)
        return conn

    def _add(self, conn: _Conn, events: int) -> None:
        fd = conn.sock.fileno()
        self._conns[fd] = conn
        self._ep.register(fd, events)

    def _write(self, conn: _Conn) -> None:
        flight = conn.flight
        assert flight is not None
        try:
            n = conn.sock.send(flight.unsent)
        except BlockingIOError:
            n = 0
        except OSError as exc:
            self._failed(conn, exc)
            return
        was_blocked = len(flight.unsent) != len(flight.request) or n < len(flight.unsent)
        flight.unsent = flight.unsent[n:]
        if flight.unsent:
            self._ep.modify(conn.sock.fileno(), _IN_OUT)
        elif was_blocked:
            self._ep.modify(conn.sock.fileno(), _IN)

    def _on_writable(self, conn: _Conn) -> None:
        if conn.connecting:
            err = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                address = self._address or ("?", "?")
                text = f"connect to {address[0]}:{address[1]}: {os.strerror(err)}"
                self._failed(conn, OSError(err, text))
                return
            conn.connecting = False
            self._ep.modify(conn.sock.fileno(), _IN)
            if conn.flight is None:
                self._release(conn, True)
                return
        if conn.flight is not None and conn.flight.unsent:
            self._write(conn)

    # ------------------------------------------------------------ receiving

    def _on_readable(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(RECEIVE_BYTES)
        except BlockingIOError:
            return
        except OSError as exc:
            self._failed(conn, exc)
            return
        flight = conn.flight
        if flight is None:
            # An idle connection became readable: the server closed it (or sent what
            # nobody asked for). It cannot carry a call any more.
            self._close(conn)
            return
        parser = conn.parser
        try:
            parser.receive_data(data)
            event = parser.next_event()
        except RemoteProtocolError as exc:
            self._failed(conn, exc, nothing=False)
            return
        if event is NEED_DATA:
            return
        if event is CLOSED:  # closed before a byte of the answer
            self._failed(conn, ConnectionClosedError(_CLOSED_TEXT), nothing=True)
            return
        self._end(flight, event.status, event.body)  # type: ignore[union-attr]
        # An answer that came before the whole request was sent (an early 413, say)
        # leaves the connection mid-request: not reusable.
        self._release(conn, event.keep_alive and not flight.unsent)  # type: ignore[union-attr]

    def _failed(self, conn: _Conn, exc: BaseException, *, nothing: bool | None = None) -> None:
        """The connection broke: its call is retried once on a fresh connection if it was
        a kept-alive one that had answered before and nothing of this answer arrived
        (the server closed it while idle, as browsers and httpcore assume), else it ends
        with `exc`. `nothing`: no byte of the answer arrived (default: the parser says)."""
        flight = conn.flight
        if nothing is None:
            nothing = conn.parser.reusable
        used = conn.used
        self._close(conn)
        if flight is None or flight.done:
            return
        if used and nothing and not flight.retried:
            flight.retried = True
            flight.conn = None
            self._dispatch(flight, fresh=True)
            return
        self._end(flight, None, b"", exc)

    # ----------------------------------------------------------- connections

    def _release(self, conn: _Conn, keep_alive: bool) -> None:
        conn.flight = None
        if keep_alive and conn.parser.reusable:
            conn.used = True
            if self._waiting:
                self._reuse(conn, self._waiting.popleft())
            else:
                self._idle.append(conn)
        else:
            self._close(conn)

    def _reuse(self, conn: _Conn, flight: _Flight) -> None:
        conn.flight = flight
        flight.conn = conn
        flight.unsent = flight.request
        self._write(conn)

    def _close(self, conn: _Conn) -> None:
        fd = conn.sock.fileno()
        if self._conns.pop(fd, None) is None:
            return
        self._ep.unregister(fd)
        conn.sock.close()
        if conn.flight is None and conn in self._idle:
            self._idle.remove(conn)
        # A connection freed: the first call waiting for one gets a new one.
        if self._waiting and len(self._conns) < self._max:
            self._dispatch(self._waiting.popleft(), fresh=False)

    def _end(
        self,
        flight: _Flight,
        status: int | None,
        body: bytes,
        exc: BaseException | None = None,
        t_done: int | None = None,
    ) -> None:
        flight.done = True
        conn = flight.conn
        if exc is not None:
            if conn is not None and conn.flight is flight:
                conn.flight = None
                self._close(conn)  # its answer may still arrive on it
            elif conn is None and flight in self._waiting:
                self._waiting.remove(flight)
        self._finish(
            flight.job, flight.t_sent, self._now() if t_done is None else t_done, status, body, exc
        )

    def close(self) -> None:
        for conn in list(self._conns.values()):
            conn.sock.close()
        self._conns.clear()
        self._idle.clear()
        self._ep.close()
        self._timer.close()
