"""A lean HTTP/1.1 client connection: bytes in, whole responses out. Pure, no I/O.

The load generator's hot path. h11 is the reference (and the oracle of this module's
tests, which feed both the same corpus of responses, split at every byte); this parser
does less than h11, on purpose: it only ever sends POSTs with a body, so it never needs
h11's per-event streaming or its full state machine, and handing back a whole
`Response` at once is what makes it several times faster on trio streams.

What a real router may send, and what this does with it:

- `Content-Length` bodies; chunked bodies (extensions and trailers skipped);
  close-delimited bodies (no length: the body ends at EOF, the connection is not reused).
- `Connection: close`, or HTTP/1.0: the response is complete, the connection is not reused.
- 1xx informational responses (`100 Continue`, `103 Early Hints`): skipped.
- Several responses in one read (pipelining, or a server that answers early): each
  `next_event` returns the next one.
- An early close: EOF in the middle of a response raises `RemoteProtocolError`; EOF
  between responses is the `CLOSED` event.
"""

from __future__ import annotations

from typing import Final, NamedTuple

__all__ = [
    "CLOSED",
    "NEED_DATA",
    "ClientConnection",
    "RemoteProtocolError",
    "Response",
    "encode_post",
]

# h11's default limit on a response head (its `max_incomplete_event_size`).
DEFAULT_MAX_HEAD_BYTES = 16 * 1024


class _Sentinel:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


#: `next_event` cannot go on until more bytes (or EOF) are received.
NEED_DATA: Final = _Sentinel("NEED_DATA")
#: The peer closed the connection between responses: no response is coming.
CLOSED: Final = _Sentinel("CLOSED")


class RemoteProtocolError(Exception):
    """The server sent something that is not a valid HTTP/1.1 response, or closed the
    connection in the middle of one. The connection cannot be used again."""


class Response(NamedTuple):
    # A NamedTuple, not a frozen dataclass: as immutable, and about 5x cheaper to
    # build (one per call on the hot path).
    status: int
    headers: tuple[tuple[bytes, bytes], ...]  # names lower-cased, values stripped
    body: bytes
    keep_alive: bool  # False: the server will send nothing more on this connection


def encode_post(target: bytes, host: bytes, headers: dict[str, str], body: bytes) -> bytes:
    """One POST request with `Content-Length` framing, ready for `send_all`."""
    lines = [b"POST ", target, b" HTTP/1.1\r\nHost: ", host, b"\r\n"]
    for name, value in headers.items():
        lines.append(f"{name}: {value}\r\n".encode())
    lines.append(b"Content-Length: %d\r\n\r\n" % len(body))
    lines.append(body)
    return b"".join(lines)


# Space and horizontal tab, as ints (what indexing bytes gives).
_SP_HT = (32, 9)

_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _TRAILERS, _UNTIL_EOF, _DONE, _NO_BODY = range(8)

# Parsed heads by their bytes. A server sends the same few heads again and again (they
# differ by Content-Length, or by Date once a second), and parsing one is a tenth of a
# call's CPU; a lookup is a hash of ~100 bytes. Bounded: at most this many heads of at
# most this size, cleared when full. Only well-formed heads are kept.
_HEADS: dict[bytes, tuple | None] = {}
_HEAD_CACHE_SIZE = 256
_HEAD_CACHE_MAX_BYTES = 1024
_MISS = object()


class ClientConnection:
    """The client side of one HTTP/1.1 connection, as a parser of response bytes.

    Feed what the socket returned to `receive_data` (`b""` for EOF), then call
    `next_event` until it returns `NEED_DATA`. It returns a `Response`, `NEED_DATA`, or
    `CLOSED`, and raises `RemoteProtocolError` on a malformed or truncated response.
    """

    __slots__ = (
        "_buf",
        "_chunks",
        "_eof",
        "_headers",
        "_keep_alive",
        "_max_head",
        "_need",
        "_state",
        "_status",
    )

    def __init__(self, *, max_head_bytes: int = DEFAULT_MAX_HEAD_BYTES) -> None:
        if max_head_bytes < 1:
            raise ValueError(f"max_head_bytes must be >= 1, got {max_head_bytes}")
        self._max_head = max_head_bytes
        self._buf = bytearray()
        self._eof = False
        self._state = _HEAD
        self._status = 0
        self._headers: tuple[tuple[bytes, bytes], ...] = ()
        self._keep_alive = True
        self._need = 0
        self._chunks: list[bytes] = []

    @property
    def reusable(self) -> bool:
        """True when the next request may be sent on this connection."""
        return self._state == _HEAD and not self._eof and not self._buf

    def receive_data(self, data: bytes) -> None:
        if data:
            if self._eof:
                raise RemoteProtocolError("data received after the connection was closed")
            self._buf += data
        else:
            self._eof = True

    def next_event(self) -> Response | _Sentinel:
        buf = self._buf
        while True:
            state = self._state
            if state == _HEAD:
                i = buf.find(b"\r\n\r\n")
                if i < 0:
                    if len(buf) > self._max_head:
                        raise RemoteProtocolError(
                            f"response head longer than {self._max_head} bytes"
                        )
                    if self._eof:
                        if not buf:
                            return CLOSED
                        raise RemoteProtocolError("connection closed in a response head")
                    return NEED_DATA
                if i > self._max_head:
                    raise RemoteProtocolError(f"response head longer than {self._max_head} bytes")
                head = bytes(buf[:i])
                del buf[: i + 4]
                if self._parse_head(head):
                    return self._finish(b"")
            elif state == _LENGTH:
                need = self._need
                if len(buf) >= need:
                    body = bytes(buf[:need])
                    del buf[:need]
                    return self._finish(body)
                if self._eof:
                    raise RemoteProtocolError(
                        f"connection closed after {len(buf)} of {need} body bytes"
                    )
                return NEED_DATA
            elif state == _CHUNK_SIZE:
                i = buf.find(b"\r\n")
                if i < 0:
                    if len(buf) > self._max_head:
                        raise RemoteProtocolError("chunk size line too long")
                    if self._eof:
                        raise RemoteProtocolError("connection closed in a chunked body")
                    return NEED_DATA
                size_text = bytes(buf[:i]).split(b";", 1)[0].strip(b" \t")
                del buf[: i + 2]
                try:
                    if not size_text or size_text[:1] in b"+-" or b"_" in size_text:
                        raise ValueError
                    size = int(size_text, 16)
                except ValueError:
                    raise RemoteProtocolError(f"bad chunk size {size_text!r:.40}") from None
                if size == 0:
                    self._state = _TRAILERS
                else:
                    self._need = size
                    self._state = _CHUNK_DATA
            elif state == _CHUNK_DATA:
                need = self._need
                if len(buf) < need + 2:
                    if self._eof:
                        raise RemoteProtocolError("connection closed in a chunked body")
                    return NEED_DATA
                if buf[need : need + 2] != b"\r\n":
                    raise RemoteProtocolError("chunk data not followed by CRLF")
                self._chunks.append(bytes(buf[:need]))
                del buf[: need + 2]
                self._state = _CHUNK_SIZE
            elif state == _TRAILERS:
                i = buf.find(b"\r\n")
                if i < 0:
                    if len(buf) > self._max_head:
                        raise RemoteProtocolError("trailer line too long")
                    if self._eof:
                        raise RemoteProtocolError("connection closed in a chunked body's trailer")
                    return NEED_DATA
                line = bytes(buf[:i])
                del buf[: i + 2]
                if not line:
                    body = b"".join(self._chunks)
                    self._chunks = []
                    return self._finish(body)
                if b":" not in line:
                    raise RemoteProtocolError(f"bad trailer line {line!r:.40}")
            elif state == _UNTIL_EOF:
                if not self._eof:
                    return NEED_DATA
                body = bytes(buf)
                buf.clear()
                return self._finish(body)
            else:  # _DONE: the server said it would close; nothing more is a response
                return CLOSED

    def _parse_head(self, head: bytes) -> bool:
        """Reads a status line and headers; returns True when the response has no body.

        Sets up the body's framing otherwise. A 1xx head is skipped (state stays _HEAD).
        """
        parsed = _HEADS.get(head, _MISS)
        if parsed is _MISS:
            parsed = _read_head(head)  # raises on a malformed head: never cached
            if len(head) <= _HEAD_CACHE_MAX_BYTES:
                if len(_HEADS) >= _HEAD_CACHE_SIZE:
                    _HEADS.clear()
                _HEADS[head] = parsed
        if parsed is None:
            return False  # informational: the real response follows
        self._status, self._headers, self._keep_alive, state, self._need = parsed  # type: ignore[misc]
        if state == _NO_BODY:
            return True
        self._state = state
        return False

    def _finish(self, body: bytes) -> Response:
        response = Response(self._status, self._headers, body, self._keep_alive)
        self._state = _HEAD if self._keep_alive else _DONE
        return response


def _read_head(head: bytes) -> tuple | None:
    """A response head's (status, headers, keep_alive, framing state, body length), or
    None for a 1xx head. Pure, so `ClientConnection` memoises it.

    Raises:
    RemoteProtocolError: the head is malformed, or frames its body in a way this
        client does not support.
    """
    lines = head.split(b"\r\n")
    status_line = lines[0]
    version, _, rest = status_line.partition(b" ")
    code, _, _reason = rest.partition(b" ")
    if version not in (b"HTTP/1.1", b"HTTP/1.0") or len(code) != 3 or not code.isdigit():
        raise RemoteProtocolError(f"bad status line {status_line!r:.60}")
    status = int(code)
    headers = []
    connection = b""
    length: bytes | None = None
    transfer: bytes | None = None
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        # No colon, an empty name, or whitespace around the name (which also catches
        # an obsolete folded continuation line) is malformed, as h11 has it.
        if not sep or not name or name[0] in _SP_HT or name[-1] in _SP_HT:
            raise RemoteProtocolError(f"bad header line {line!r:.60}")
        name = name.lower()
        value = value.strip(b" \t")
        if name == b"content-length":
            if length is not None:
                if length != value:
                    raise RemoteProtocolError("conflicting Content-Length headers")
                continue  # an equal repeat is one header, as h11 has it
            length = value
        elif name == b"transfer-encoding":
            if transfer is not None:
                raise RemoteProtocolError("more than one Transfer-Encoding header")
            transfer = value.lower()
        elif name == b"connection":
            connection += b"," + value.lower()
        headers.append((name, value))
    if status < 200:
        if status == 101:
            raise RemoteProtocolError("101 Switching Protocols to a POST")
        return None
    keep_alive = version == b"HTTP/1.1" and not (
        connection and b"close" in {t.strip() for t in connection.split(b",")}
    )
    fields = (status, tuple(headers))
    if status in (204, 304):
        return (*fields, keep_alive, _NO_BODY, 0)
    if transfer is not None:
        if transfer != b"chunked":
            raise RemoteProtocolError(f"unsupported Transfer-Encoding {transfer!r:.40}")
        return (*fields, keep_alive, _CHUNK_SIZE, 0)
    if length is not None:
        if not length.isdigit():
            raise RemoteProtocolError(f"bad Content-Length {length!r:.40}")
        return (*fields, keep_alive, _LENGTH, int(length))
    return (*fields, False, _UNTIL_EOF, 0)
