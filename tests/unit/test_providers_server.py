"""Pins providers.server: the HTTP/1.1 parser byte by byte, the routes, and the driver
over a fake transport (no sockets)."""

import asyncio
import json

import pytest

from providers import Chain, MockNode
from providers.server import (
    HttpProtocol,
    Request,
    RequestParser,
    Response,
    render_response,
    route,
)

G = 1_700_000_000_000_000_000
RPC = b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber"}'


def post(body: bytes = RPC, *, extra: bytes = b"", version: bytes = b"HTTP/1.1") -> bytes:
    return (
        b"POST / " + version + b"\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n" + extra + b"\r\n" + body
    )


# ------------------------------------------------------------------ parser


def test_one_request_with_a_content_length_body_is_parsed():
    p = RequestParser()
    (req,) = p.feed(post())
    assert (req.method, req.target, req.version) == ("POST", "/", "HTTP/1.1")
    assert req.body == RPC
    assert req.header("content-type") == "application/json"
    assert req.keep_alive and not p.closed and p.error is None


def test_pipelined_requests_in_one_read_all_come_out_in_order():
    p = RequestParser()
    reqs = p.feed(post(b'{"id":1}') + post(b'{"id":2}') + b"GET /health HTTP/1.1\r\n\r\n")
    assert [r.body for r in reqs] == [b'{"id":1}', b'{"id":2}', b""]
    assert reqs[2].method == "GET"


@pytest.mark.parametrize("step", [1, 2, 7, 50])
def test_a_request_split_into_arbitrary_pieces_parses_once_complete(step):
    data = post() + post(b"[]")
    p = RequestParser()
    out = []
    for i in range(0, len(data), step):
        out += p.feed(data[i : i + step])
    assert [r.body for r in out] == [RPC, b"[]"]


def test_a_partial_request_yields_nothing_until_the_body_arrives():
    p = RequestParser()
    data = post()
    assert p.feed(data[:-5]) == []
    assert [r.body for r in p.feed(data[-5:])] == [RPC]


def test_http11_keeps_alive_unless_connection_close():
    p = RequestParser()
    (req,) = p.feed(post(extra=b"Connection: close\r\n") + post())
    assert not req.keep_alive
    assert p.closed  # the pipelined request after close is ignored
    assert p.feed(post()) == []


def test_http10_closes_unless_keep_alive_is_asked_for():
    (a,) = RequestParser().feed(post(version=b"HTTP/1.0"))
    (b,) = RequestParser().feed(post(version=b"HTTP/1.0", extra=b"Connection: Keep-Alive\r\n"))
    assert not a.keep_alive and b.keep_alive


def test_connection_header_tokens_are_case_insensitive_lists():
    (req,) = RequestParser().feed(post(extra=b"Connection: Upgrade, CLOSE\r\n"))
    assert not req.keep_alive


def test_a_chunked_body_is_decoded():
    data = (
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'5;ext=1\r\n[{"id\r\n'
        b'3\r\n":1\r\n'
        b"1\r\n}\r\n1\r\n]\r\n0\r\nX-Trailer: y\r\n\r\n"
    )
    p = RequestParser()
    out = []
    for i in range(0, len(data), 3):
        out += p.feed(data[i : i + 3])
    assert [r.body for r in out] == [b'[{"id":1}]']
    assert p.feed(post()) != []


def test_blank_lines_before_a_request_are_ignored():
    (req,) = RequestParser().feed(b"\r\n\r\n" + post())
    assert req.body == RPC


def test_a_body_of_length_zero_and_no_length_is_empty():
    (req,) = RequestParser().feed(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert req.body == b""


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"POST /\r\n\r\n", 400),
        (b"POST  / HTTP/1.1\r\n\r\n", 400),
        (b"P(ST / HTTP/1.1\r\n\r\n", 400),
        (b"POST / HTTX/1.1\r\n\r\n", 400),
        (b"POST / HTTP/2.0\r\n\r\n", 505),
        (b"POST / HTTP/1.1\r\nNoColon\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost : x\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", 413),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n", 400),
    ],
)
def test_malformed_requests_set_an_error_status_and_close(data, status):
    p = RequestParser()
    assert p.feed(data) == []
    assert p.error is not None and p.error.status == status
    assert p.closed
    assert p.feed(post()) == []


def test_requests_before_a_malformed_one_are_still_returned():
    p = RequestParser()
    reqs = p.feed(post() + b"garbage\r\n\r\n")
    assert [r.body for r in reqs] == [RPC]
    assert p.error is not None and p.error.status == 400


def test_duplicate_equal_content_lengths_are_accepted():
    (req,) = RequestParser().feed(
        b"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n[]"
    )
    assert req.body == b"[]"


def test_a_head_larger_than_the_limit_is_431_without_waiting_for_its_end():
    p = RequestParser(max_head_bytes=100)
    p.feed(b"POST / HTTP/1.1\r\nX: " + b"a" * 200)
    assert p.error is not None and p.error.status == 431


def test_expect_100_continue_is_signalled_once_until_the_body_arrives():
    p = RequestParser()
    head = b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
    assert p.feed(head) == []
    assert p.take_continue() is True
    assert p.take_continue() is False
    assert [r.body for r in p.feed(b"[]")] == [b"[]"]
    assert p.take_continue() is False


# ------------------------------------------------------------------ responses and routes


def test_render_response_has_length_type_and_close_when_asked():
    assert render_response(Response(200, b"{}"), keep_alive=True) == (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    )
    closing = render_response(Response(400, b"x", "text/plain"), keep_alive=False)
    assert closing.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"\r\nConnection: close\r\n\r\nx" in closing


@pytest.fixture
def node() -> MockNode:
    return MockNode(Chain(1, G), lambda: G + 7 * 10**9, name="A")


def req(method: str, target: str, body: bytes = b"") -> Request:
    return Request(method, target, "HTTP/1.1", [], body)


def test_post_root_is_jsonrpc(node):
    r = route(node, req("POST", "/", RPC))
    assert (r.status, r.content_type) == (200, "application/json")
    assert json.loads(r.body)["result"] == "0x7"


def test_get_health_answers_200_with_name_and_head(node):
    r = route(node, req("GET", "/health"))
    assert r.status == 200
    assert json.loads(r.body) == {"status": "ok", "name": "A", "head": 7}


@pytest.mark.parametrize(
    ("method", "target", "status"),
    [("GET", "/", 405), ("POST", "/health", 405), ("POST", "/other", 404), ("GET", "/x", 404)],
)
def test_other_routes_are_404_or_405(node, method, target, status):
    assert route(node, req(method, target)).status == status


# ------------------------------------------------------------------ driver on a fake transport


class FakeTransport(asyncio.Transport):
    """Records writes; close and flow control are flags."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False
        self.reading = True

    def write(self, data: bytes) -> None:
        assert not self.closed
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True


@pytest.fixture
def wired(node):
    conns: set[HttpProtocol] = set()
    proto = HttpProtocol(lambda r: route(node, r), conns)
    t = FakeTransport()
    proto.connection_made(t)
    return proto, t, conns


def responses(data: bytes) -> list[bytes]:
    """Split written bytes into responses by Content-Length."""
    out = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        n = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
        out.append(head + b"\r\n\r\n" + rest[:n])
        data = rest[n:]
    return out


def test_the_driver_answers_pipelined_requests_in_order_and_keeps_the_connection(wired):
    proto, t, conns = wired
    proto.data_received(post(b'{"jsonrpc":"2.0","id":"a","method":"eth_chainId"}') + post()[:10])
    proto.data_received(post()[10:])
    rs = responses(bytes(t.written))
    assert len(rs) == 2
    assert rs[0].endswith(b'"id":"a","result":"0x7a69"}')
    assert rs[1].endswith(b'"id":1,"result":"0x7"}')
    assert not t.closed and proto in conns


def test_the_driver_closes_after_connection_close(wired):
    proto, t, _ = wired
    proto.data_received(post(extra=b"Connection: close\r\n"))
    assert b"Connection: close" in t.written and t.closed


def test_the_driver_answers_malformed_http_with_400_and_closes(wired):
    proto, t, _ = wired
    proto.data_received(post() + b"BAD\r\n\r\n")
    rs = responses(bytes(t.written))
    assert rs[0].startswith(b"HTTP/1.1 200 OK")
    assert rs[1].startswith(b"HTTP/1.1 400 Bad Request") and b"Connection: close" in rs[1]
    assert t.closed


def test_the_driver_sends_100_continue_then_the_response(wired):
    proto, t, _ = wired
    proto.data_received(b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
    assert bytes(t.written) == b"HTTP/1.1 100 Continue\r\n\r\n"
    proto.data_received(b"[]")
    assert t.written.endswith(b'"message":"empty batch"}}')


def test_the_driver_stops_reading_while_the_peer_is_not_reading(wired):
    proto, t, conns = wired
    proto.pause_writing()
    assert not t.reading
    proto.resume_writing()
    assert t.reading
    proto.connection_lost(None)
    assert proto not in conns


# ------------------------------------------------------------------ WebSocket upgrade

_UPGRADE = (
    b"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def _masked_text(payload: bytes) -> bytes:
    """One client text frame (RFC 6455 5.2), masked with a zero key for readability."""
    assert len(payload) < 126
    return bytes([0x81, 0x80 | len(payload)]) + b"\x00\x00\x00\x00" + payload


def test_the_driver_upgrades_and_answers_a_frame_sent_with_the_handshake(node):
    proto = HttpProtocol(lambda r: route(node, r), set(), node)
    t = FakeTransport()
    proto.connection_made(t)
    msg = b'{"jsonrpc":"2.0","id":7,"method":"eth_chainId"}'
    proto.data_received(_UPGRADE.replace(b"{path}", b"/") + _masked_text(msg))
    head, _, frames = bytes(t.written).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols")
    reply = b'{"jsonrpc":"2.0","id":7,"result":"0x7a69"}'
    assert frames == bytes([0x81, len(reply)]) + reply  # unmasked text frame from a server
    assert proto.ws is not None and not t.closed
    proto.close()
    assert t.written.endswith(b"provider shutting down") and t.closed  # close frame 1001


def test_an_upgrade_on_another_path_is_not_found(node):
    proto = HttpProtocol(lambda r: route(node, r), set(), node)
    t = FakeTransport()
    proto.connection_made(t)
    proto.data_received(_UPGRADE.replace(b"{path}", b"/ws"))
    assert bytes(t.written).startswith(b"HTTP/1.1 404 Not Found") and t.closed
