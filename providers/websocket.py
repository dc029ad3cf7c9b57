"""WebSocket JSON-RPC on the HTTP port (RFC 6455), without I/O.

A client sends ``GET /`` with ``Upgrade: websocket`` to the provider's HTTP port, as
with hosted providers; :func:`handshake` answers it and :class:`WsConnection` then turns
frames into JSON-RPC replies and notifications into frames. Framing is wsproto's pure
``Connection`` (no permessage-deflate is negotiated: replies are small and compression
would cost the provider CPU the benchmark needs).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field

from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Message, Ping, TextMessage

from providers.subscriptions import WsSession
from providers.wire import Reply

__all__ = ["WsConnection", "WsOutput", "handshake", "is_upgrade"]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
#: Largest message accepted; geth's websocket read limit is 32 MiB, we keep the HTTP one.
MAX_MESSAGE_BYTES = 5 * 1024 * 1024


def is_upgrade(method: str, headers: list[tuple[str, str]]) -> bool:
    """A request asking to switch to WebSocket (RFC 6455 4.1)."""
    if method != "GET":
        return False
    upgrade = any(k == "upgrade" and "websocket" in v.lower() for k, v in headers)
    conn = any(
        k == "connection" and "upgrade" in [t.strip().lower() for t in v.split(",")]
        for k, v in headers
    )
    return upgrade and conn


def handshake(headers: list[tuple[str, str]]) -> tuple[int, bytes]:
    """The response to an upgrade request: ``(101, bytes)`` or ``(400|426, bytes)``."""
    values = dict(headers)
    key = values.get("sec-websocket-key", "")
    try:
        valid_key = len(base64.b64decode(key, validate=True)) == 16
    except ValueError:
        valid_key = False
    if not valid_key:
        body = b"bad Sec-WebSocket-Key\n"
        return 400, _plain(400, "Bad Request", body)
    if values.get("sec-websocket-version") != "13":
        body = b"unsupported Sec-WebSocket-Version\n"
        head = "HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n"
        return 426, (
            head + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode() + body
    accept = base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()
    return 101, (
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
    ).encode()


def _plain(status: int, phrase: str, body: bytes) -> bytes:
    return (
        f"HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


@dataclass
class WsOutput:
    """What :meth:`WsConnection.receive` produced: frames to send now, delayed replies,
    and whether to close the transport after sending."""

    now: bytearray = field(default_factory=bytearray)
    replies: list[tuple[int, bytes]] = field(default_factory=list)  # (delay_ns, frame)
    close: bool = False


class WsConnection:
    """One upgraded connection: frames in, JSON-RPC over a :class:`WsSession`, frames out."""

    def __init__(self, session: WsSession, trailing: bytes = b"") -> None:
        self.session = session
        self._ws = Connection(ConnectionType.SERVER)
        self._buf = bytearray()
        self._pending = trailing
        self.closed = False

    def receive(self, data: bytes) -> WsOutput:
        """Feed bytes from the peer; returns what to write."""
        out = WsOutput()
        if self.closed:
            return out
        if self._pending:
            data, self._pending = self._pending + data, b""
        self._ws.receive_data(data)
        try:
            for event in self._ws.events():
                if isinstance(event, TextMessage | BytesMessage):
                    # geth reads JSON from text and binary frames alike (web3.py sends
                    # binary); replies are always text.
                    chunk = event.data
                    self._buf += chunk.encode() if isinstance(chunk, str) else chunk
                    if len(self._buf) > MAX_MESSAGE_BYTES:
                        out.now += self._close(1009, "message too big")
                        out.close = True
                        return out
                    if event.message_finished:
                        text = bytes(self._buf)
                        self._buf.clear()
                        reply: Reply = self.session.message(text)
                        if reply.body:
                            frame = self._ws.send(Message(data=reply.body.decode()))
                            out.replies.append((reply.delay_ns, frame))
                elif isinstance(event, Ping):
                    out.now += self._ws.send(event.response())
                elif isinstance(event, CloseConnection):
                    out.now += self._ws.send(event.response())
                    self.closed = True
                    out.close = True
                    return out
        except Exception:  # wsproto raises on malformed frames: answer 1002 and close
            out.now += self._close(1002, "protocol error")
            out.close = True
        return out

    def notifications(self, now_ns: int) -> bytes:
        """Frames of every notification due at ``now_ns`` (``b""`` if none)."""
        if self.closed:
            return b""
        msgs = self.session.poll(now_ns)
        return b"".join(self._ws.send(Message(data=m.decode())) for m in msgs)

    def going_away(self) -> bytes:
        """The close frame sent when the provider shuts down (1001, RFC 6455 7.4.1)."""
        return b"" if self.closed else self._close(1001, "provider shutting down")

    def _close(self, code: int, reason: str) -> bytes:
        self.closed = True
        try:
            return self._ws.send(CloseConnection(code=code, reason=reason))
        except Exception:
            return b""
