"""The lean HTTP/1.1 client parser agrees with h11 on a corpus of responses, however
the bytes are split across reads."""

from __future__ import annotations

import h11
import pytest

from loadgen import http1
from loadgen.http1 import CLOSED, NEED_DATA, ClientConnection, RemoteProtocolError, encode_post

OK = b'{"jsonrpc":"2.0","id":1,"result":"0x1"}'


def cl(
    body: bytes, *extra: bytes, version: bytes = b"HTTP/1.1", status: bytes = b"200 OK"
) -> bytes:
    head = [version + b" " + status, b"Content-Type: application/json"]
    head += list(extra)
    head.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def chunked(*parts: bytes, trailer: bytes = b"") -> bytes:
    out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    for p in parts:
        out += b"%x;ext=1\r\n" % len(p) + p + b"\r\n"
    return out + b"0\r\n" + trailer + b"\r\n"


# (name, bytes the server sends, whether it then closes the connection)
CORPUS = [
    ("content_length", cl(OK), False),
    ("content_length_then_close", cl(OK), True),
    ("empty_body", cl(b""), False),
    ("chunked", chunked(OK[:10], OK[10:]), False),
    ("chunked_with_trailer", chunked(OK, trailer=b"X-Checksum: 1\r\n"), False),
    ("connection_close", cl(OK, b"Connection: close"), True),
    ("connection_keep_alive_then_close_tokens", cl(OK, b"Connection: keep-alive, close"), True),
    ("close_delimited", b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + OK, True),
    ("continue_then_ok", b"HTTP/1.1 100 Continue\r\n\r\n" + cl(OK), False),
    ("early_hints_then_ok", b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + cl(OK), False),
    ("http_1_0", cl(OK, version=b"HTTP/1.0"), True),
    ("error_status", cl(b"Service Unavailable", status=b"503 Service Unavailable"), False),
    ("no_content", b"HTTP/1.1 204 No Content\r\n\r\n" + cl(OK), False),
    ("not_modified_with_length", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", False),
    ("pipelined", cl(OK) + chunked(OK) + cl(b"{}"), False),
    (
        "header_whitespace",
        b"HTTP/1.1 200 OK\r\nX-A:   spaced  \r\nContent-Length: 2\r\n\r\n{}",
        False,
    ),
    ("no_reason_phrase", b"HTTP/1.1 200 \r\nContent-Length: 2\r\n\r\n{}", False),
    (
        "duplicate_equal_lengths",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
        False,
    ),
    ("early_close_in_body", cl(OK)[:-5], True),
    ("early_close_in_head", b"HTTP/1.1 200 OK\r\nContent-Len", True),
    ("early_close_in_chunk", chunked(OK)[:-12], True),
    ("closed_before_any_byte", b"", True),
    ("bad_status_line", b"HTTP/2 200 OK\r\nContent-Length: 0\r\n\r\n", False),
    ("bad_chunk_size", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", False),
    (
        "conflicting_lengths",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
        False,
    ),
    ("unsupported_transfer_encoding", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", False),
    ("bad_content_length", b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", False),
    ("header_without_colon", b"HTTP/1.1 200 OK\r\nBroken\r\nContent-Length: 0\r\n\r\n", False),
]


def h11_outcomes(chunks: list[bytes], close: bool) -> list:
    conn = h11.Connection(h11.CLIENT)

    def send_request() -> None:
        conn.send(
            h11.Request(method="POST", target="/", headers=[("Host", "x"), ("Content-Length", "2")])
        )
        conn.send(h11.Data(data=b"{}"))
        conn.send(h11.EndOfMessage())

    send_request()
    # The next request is sent only once bytes of its response exist: a server closing
    # an idle kept-alive connection is then ConnectionClosed, not an error.
    deferred = False
    out: list = []
    status, headers, body = 0, (), b""
    try:
        for chunk in [*chunks, *([b""] if close else [])]:
            if deferred and chunk:
                send_request()
                deferred = False
            conn.receive_data(chunk)
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    break
                if isinstance(event, h11.ConnectionClosed):
                    out.append("closed")
                    return out
                if isinstance(event, h11.Response):
                    status, body = event.status_code, b""
                    headers = tuple((n.lower(), v) for n, v in event.headers)
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    # A close-delimited body ends at EOF: h11 then still says DONE.
                    keep_alive = conn.their_state is h11.DONE and chunk != b""
                    out.append((status, headers, body, keep_alive))
                    if keep_alive:
                        conn.start_next_cycle()
                        if conn.trailing_data[0]:
                            send_request()
                        else:
                            deferred = True
    except h11.RemoteProtocolError:
        out.append("error")
    return out


def our_outcomes(chunks: list[bytes], close: bool) -> list:
    conn = ClientConnection()
    out: list = []
    try:
        for chunk in [*chunks, *([b""] if close else [])]:
            conn.receive_data(chunk)
            while True:
                event = conn.next_event()
                if event is NEED_DATA:
                    break
                if event is CLOSED:
                    # Before any response, a request was waiting (the driver's
                    # ConnectionClosedError); after one, the server closed an idle
                    # connection (h11 sends the next request only once bytes arrive).
                    out.append("closed" if out else "error")
                    return out
                out.append((event.status, event.headers, event.body, event.keep_alive))
    except RemoteProtocolError:
        out.append("error")
    return out


def splits(data: bytes):
    yield [data]
    yield [data[i : i + 1] for i in range(len(data))]
    for i in range(1, len(data)):
        yield [data[:i], data[i:]]


@pytest.mark.parametrize("name,data,close", CORPUS, ids=[c[0] for c in CORPUS])
def test_the_lean_parser_agrees_with_h11_at_every_split(name, data, close):
    expected = h11_outcomes([data], close)
    assert expected, "the corpus case must produce at least one event"
    for chunks in splits(data):
        assert our_outcomes(chunks, close) == expected, chunks
        assert h11_outcomes(chunks, close) == expected


def test_a_response_head_past_the_limit_is_a_protocol_error():
    conn = ClientConnection(max_head_bytes=64)
    conn.receive_data(b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * 100 + b"\r\n")
    with pytest.raises(RemoteProtocolError, match="longer than 64 bytes"):
        conn.next_event()


def test_a_connection_is_reusable_only_between_whole_kept_alive_responses():
    conn = ClientConnection()
    assert conn.reusable
    conn.receive_data(cl(OK)[:10])
    assert conn.next_event() is NEED_DATA and not conn.reusable
    conn.receive_data(cl(OK)[10:])
    assert conn.next_event().keep_alive and conn.reusable
    conn.receive_data(cl(OK, b"Connection: close"))
    assert not conn.next_event().keep_alive and not conn.reusable


def test_encode_post_is_a_request_h11_accepts():
    data = encode_post(b"/rpc", b"127.0.0.1:8545", {"X-Battle-Tag": "bt-0-1"}, b"{}")
    server = h11.Connection(h11.SERVER)
    server.receive_data(data)
    request = server.next_event()
    assert (request.method, request.target) == (b"POST", b"/rpc")
    assert (b"x-battle-tag", b"bt-0-1") in list(request.headers)
    assert server.next_event().data == b"{}"
    assert isinstance(server.next_event(), h11.EndOfMessage)


def test_parsed_heads_are_memoised_within_bounds_and_malformed_ones_never():
    for n in range(http1._HEAD_CACHE_SIZE + 50):
        conn = ClientConnection()
        conn.receive_data(cl(b"{}", b"X-N: %d" % n))
        assert conn.next_event().headers[1] == (b"x-n", b"%d" % n)
    assert 0 < len(http1._HEADS) <= http1._HEAD_CACHE_SIZE
    bad = b"HTTP/1.1 200 OK\r\nBroken\r\nContent-Length: 0"
    for _ in range(2):  # the second time too: it was not cached as if well-formed
        conn = ClientConnection()
        conn.receive_data(bad + b"\r\n\r\n")
        with pytest.raises(RemoteProtocolError, match="bad header line"):
            conn.next_event()
    assert bad not in http1._HEADS
