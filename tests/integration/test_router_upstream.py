"""LeanUpstream, the router's HTTP/1.1 client, against raw loopback servers."""

from __future__ import annotations

import pytest
import trio
from trio.testing import wait_all_tasks_blocked

from examples.reference_router._policy import UpstreamFailure, UpstreamResponse
from examples.reference_router._upstream import LeanUpstream

HEADERS = {"content-type": "application/json"}
OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n"


class RawServer:
    """Answers each request on a connection with the next reply of ``script``, in order;
    records connections and requests."""

    def __init__(self, *script: bytes | None, close_after_reply: bool = False) -> None:
        self.script = list(script)
        self.close_after_reply = close_after_reply
        self.connections = 0
        self.requests: list[bytes] = []
        self.port = 0

    async def handle(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        buffer = b""
        async with stream:
            while self.script:
                while b"\r\n\r\n" not in buffer:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    buffer += data
                head, _, rest = buffer.partition(b"\r\n\r\n")
                length = int(
                    next(
                        line.split(b":")[1]
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    )
                )
                while len(rest) < length:
                    rest += await stream.receive_some(65536)
                self.requests.append(head + b"\r\n\r\n" + rest[:length])
                buffer = rest[length:]
                reply = self.script.pop(0)
                if reply is None:
                    return  # close without answering
                if reply == b"HANG":
                    await trio.sleep_forever()
                await stream.send_all(reply)
                if self.close_after_reply:
                    return

    async def start(self, nursery: trio.Nursery) -> str:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        nursery.start_soon(trio.serve_listeners, self.handle, listeners)
        return f"http://127.0.0.1:{self.port}/rpc?k=v"


@pytest.fixture
async def nursery():
    async with trio.open_nursery() as nursery:
        yield nursery
        nursery.cancel_scope.cancel()


async def test_requests_reuse_one_keep_alive_connection(nursery):
    server = RawServer(OK_HEAD + b"{}", OK_HEAD + b"[]")
    url = await server.start(nursery)
    client = LeanUpstream()
    first = await client.post(url, b'{"a":1}', HEADERS)
    second = await client.post(url, b'{"b":2}', {**HEADERS, "x-battle-tag": "bt-1-2"})
    assert first == UpstreamResponse(200, "application/json", b"{}")
    assert isinstance(second, UpstreamResponse) and second.body == b"[]"
    assert server.connections == 1
    assert server.requests[0].startswith(b"POST /rpc?k=v HTTP/1.1\r\n")
    assert b"x-battle-tag: bt-1-2\r\n" in server.requests[1]
    assert server.requests[1].endswith(b'\r\n\r\n{"b":2}')
    await client.aclose()


async def test_chunked_bodies_and_retry_after_are_read():
    async with trio.open_nursery() as nursery:
        reply = (
            b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        )
        url = await RawServer(reply).start(nursery)
        result = await LeanUpstream().post(url, b"{}", HEADERS)
        assert result == UpstreamResponse(429, None, b"abcde", "7")
        nursery.cancel_scope.cancel()


async def test_a_kept_alive_connection_the_server_closed_is_replaced(nursery):
    server = RawServer(OK_HEAD + b"{}", OK_HEAD + b"[]", close_after_reply=True)
    url = await server.start(nursery)
    client = LeanUpstream()
    assert isinstance(await client.post(url, b"{}", HEADERS), UpstreamResponse)
    await wait_all_tasks_blocked()  # the server has closed its side: no real-time wait
    result = await client.post(url, b"{}", HEADERS)
    assert isinstance(result, UpstreamResponse) and result.body == b"[]"
    assert server.connections == 2


async def test_a_close_without_an_answer_is_a_conn_error(nursery):
    url = await RawServer(None).start(nursery)
    result = await LeanUpstream().post(url, b"{}", HEADERS)
    assert result == UpstreamFailure(
        "conn_error", "server closed the connection without a response"
    )


async def test_a_refused_connection_is_a_conn_error():
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # the port is free, nothing listens on it
    result = await LeanUpstream().post(f"http://127.0.0.1:{port}/", b"{}", HEADERS)
    assert isinstance(result, UpstreamFailure) and result.kind == "conn_error"


async def test_a_cancelled_attempt_never_leaves_its_connection_for_reuse(nursery):
    server = RawServer(b"HANG", OK_HEAD + b"{}")
    url = await server.start(nursery)
    client = LeanUpstream()
    with trio.move_on_after(0.1):
        await client.post(url, b"{}", HEADERS)
    result = await client.post(url, b"{}", HEADERS)
    assert isinstance(result, UpstreamResponse) and result.body == b"{}"
    assert server.connections == 2


async def test_a_malformed_answer_is_a_conn_error(nursery):
    url = await RawServer(b"NOT HTTP\r\n\r\n").start(nursery)
    result = await LeanUpstream().post(url, b"{}", HEADERS)
    assert isinstance(result, UpstreamFailure) and result.kind == "conn_error"
