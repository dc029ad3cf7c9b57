"""The lean HTTP/1.1 transport and the worker against real servers on loopback."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from functools import partial

import pytest
import trio
from trio.testing import wait_all_tasks_blocked

from loadgen import Clock, ConstantRate, Http1Transport, WorkerConfig, run_worker
from loadgen.http1 import RemoteProtocolError
from loadgen.transport import ConnectionClosedError
from scenarios.processes import free_ports

pytestmark = pytest.mark.timeout(30)


def ok(request: dict, *extra: str) -> bytes:
    body = json.dumps({"jsonrpc": "2.0", "id": request.get("id"), "result": "0x10"}).encode()
    head = ["HTTP/1.1 200 OK", "Content-Type: application/json", *extra]
    return ("\r\n".join([*head, f"Content-Length: {len(body)}"]) + "\r\n\r\n").encode() + body


class Server:
    """Answers each request with `script(request, n)`: bytes to send, then `close`
    after them if the script returns a tuple (bytes, "close"), or never if None."""

    def __init__(
        self,
        script: Callable[[dict, int], bytes | tuple | None],
        before_answer: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.script = script
        self.before_answer = before_answer
        self.connections = 0
        self.requests = 0
        self.eofs = 0

    async def handle(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = await stream.receive_some(65536)
                    if not data:
                        self.eofs += 1
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                while len(buf) < length:
                    buf += await stream.receive_some(65536)
                body, buf = buf[:length], buf[length:]
                n, self.requests = self.requests, self.requests + 1
                action = self.script(json.loads(body), n)
                if self.before_answer:
                    await self.before_answer()
                if action is None:  # never answer; notice when the client gives up
                    while await stream.receive_some(65536):
                        pass
                    self.eofs += 1
                    return
                data, close = action if isinstance(action, tuple) else (action, None)
                await stream.send_all(data)
                if close:
                    return
        except trio.BrokenResourceError:
            return
        finally:
            await stream.aclose()


async def serve(nursery: trio.Nursery, server: Server) -> str:
    listeners = await nursery.start(partial(trio.serve_tcp, server.handle, 0, host="127.0.0.1"))
    return f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}/"


async def post(transport: Http1Transport, i: int = 1) -> tuple[int, bytes]:
    body = json.dumps({"jsonrpc": "2.0", "id": f"bt-0-{i}", "method": "eth_blockNumber"})
    return await transport.post(body.encode(), {"x-battle-tag": f"bt-0-{i}"})


async def test_calls_in_turn_reuse_one_kept_alive_connection(nursery):
    server = Server(lambda r, n: ok(r))
    transport = Http1Transport(await serve(nursery, server))
    for i in range(20):
        status, body = await post(transport, i)
        assert status == 200 and json.loads(body)["id"] == f"bt-0-{i}"
    assert server.connections == 1
    await transport.aclose()


async def test_connection_close_answers_open_a_new_connection_each_time(nursery):
    server = Server(lambda r, n: (ok(r, "Connection: close"), "close"))
    transport = Http1Transport(await serve(nursery, server))
    for i in range(5):
        assert (await post(transport, i))[0] == 200
    assert server.connections == 5


async def test_chunked_and_informational_answers_arrive_whole(nursery):
    def script(r: dict, n: int) -> bytes:
        body = json.dumps({"jsonrpc": "2.0", "id": r["id"], "result": "0x10"}).encode()
        chunks = b"".join(
            b"%x\r\n%s\r\n" % (len(body[i : i + 7]), body[i : i + 7])
            for i in range(0, len(body), 7)
        )
        return (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked"
            b"\r\n\r\n" + chunks + b"0\r\n\r\n"
        )

    transport = Http1Transport(await serve(nursery, Server(script)))
    status, body = await post(transport)
    assert status == 200 and json.loads(body)["result"] == "0x10"


async def test_an_early_close_in_the_body_is_a_protocol_error(nursery):
    transport = Http1Transport(await serve(nursery, Server(lambda r, n: (ok(r)[:-4], "close"))))
    with pytest.raises(RemoteProtocolError, match="connection closed after"):
        await post(transport)


async def test_a_new_connection_closed_without_an_answer_is_an_error(nursery):
    transport = Http1Transport(await serve(nursery, Server(lambda r, n: (b"", "close"))))
    with pytest.raises(ConnectionClosedError):
        await post(transport)


async def test_a_kept_alive_connection_the_server_closed_is_retried_once_on_a_new_one(nursery):
    # The server answers the first call on each connection, then closes it: the
    # client's idle connection is stale when the second call takes it.
    server = Server(lambda r, n: (ok(r), "close") if n % 2 == 0 else ok(r))
    transport = Http1Transport(await serve(nursery, server))
    assert (await post(transport, 1))[0] == 200
    await wait_all_tasks_blocked()  # the server has closed its side: no real-time wait
    assert (await post(transport, 2))[0] == 200
    assert server.connections == 2


async def test_a_timed_out_call_closes_its_connection(nursery):
    server = Server(lambda r, n: None)
    transport = Http1Transport(await serve(nursery, server))
    with trio.move_on_after(0.2):
        await post(transport)
    with trio.fail_after(5):
        while server.eofs == 0:
            await trio.sleep(0.01)
    assert transport._open == 0


async def test_a_one_second_stall_at_100_per_second_shows_in_the_corrected_p99(nursery):
    # The real-time twin of the MockClock test: a server that freezes for 1 s and
    # then answers everything held, at 100 req/s for 4 s. A quarter of the calls are
    # held, so the median sits among the others with room for the burst of answers
    # after the stall slowing a few dozen of them on a busy box (with half held, as
    # once, a CPU hog put it in the held ones: p50 757 ms).
    t0 = time.time_ns() + 100_000_000
    stall_from, stall_to = t0 + 1_000_000_000, t0 + 2_000_000_000

    async def hold() -> None:
        now = time.time_ns()
        if stall_from <= now < stall_to:
            await trio.sleep((stall_to - now) / 1e9)

    server = Server(lambda r, n: ok(r), before_answer=hold)
    transport = Http1Transport(await serve(nursery, server))
    rows: list[tuple] = []
    cfg = WorkerConfig(
        worker=0, t0_ns=t0, schedule=ConstantRate(100, 4.0), mix={"eth_blockNumber": 1}
    )
    summary = await run_worker(cfg, transport, rows, clock=Clock.from_system())
    d = summary.as_dict()
    assert summary.outcomes == {"ok": 400}, summary.outcomes
    assert d["latency_ms"]["p99"] > 900, d["latency_ms"]
    assert d["latency_ms"]["p50"] < 400, d["latency_ms"]
    # Measured from the intended time, every call of the stall waited until its end.
    held = [r for r in rows if stall_from + 20_000_000 <= r[6] < stall_to - 20_000_000]
    assert held and all(r[8] >= stall_to for r in held)
    # And they were sent on schedule, during the stall, not after it (coordinated
    # omission would send them up to 1 s late); the bound leaves room for a busy machine.
    assert all(r[7] - r[6] < 200_000_000 for r in held)


async def test_a_deadline_is_enforced_by_the_watchdog_and_closes_the_connection(nursery):
    server = Server(lambda r, n: None)  # never answers
    transport = Http1Transport(await serve(nursery, server))
    nursery.start_soon(transport.watchdog)
    start = trio.current_time()
    with pytest.raises(TimeoutError, match="no answer in time"):
        body = b'{"jsonrpc":"2.0","id":"bt-0-1","method":"eth_blockNumber","params":[]}'
        await transport.post(body, {}, deadline=start + 0.2)
    assert 0.2 <= trio.current_time() - start < 1.0
    with trio.fail_after(5):
        while server.eofs == 0:
            await trio.sleep(0.01)
    # A kept-alive connection with an answered call is never touched by the watchdog.
    answering = Http1Transport(await serve(nursery, Server(lambda r, n: ok(r))))
    nursery.start_soon(answering.watchdog)
    for i in range(2):
        body = json.dumps({"jsonrpc": "2.0", "id": f"bt-0-{i}", "method": "m"}).encode()
        await answering.post(body, {}, deadline=trio.current_time() + 0.5)
        await trio.sleep(0.6)  # past the deadline of the call just answered
    assert answering._open == 1


async def test_timeouts_and_the_drain_through_the_worker_and_the_lean_transport(nursery):
    server = Server(lambda r, n: None)
    transport = Http1Transport(await serve(nursery, server))
    t0 = time.time_ns() + 50_000_000
    rows: list[tuple] = []
    cfg = WorkerConfig(
        worker=0,
        t0_ns=t0,
        schedule=ConstantRate(10, 0.5),
        mix={"eth_blockNumber": 1},
        timeout_s=0.3,
        drain_s=0.1,
    )
    summary = await run_worker(cfg, transport, rows, clock=Clock.from_system())
    assert summary.outcomes == {"timeout": 5}
    # The first calls time out after 0.3 s; the last, sent at 0.4 s, is cut by the drain
    # 0.1 s after the last send.
    first, last = rows[0], rows[-1]
    assert 0.29e9 <= first[8] - first[7] < 0.6e9 and first[12] == "no answer within 0.3 s"
    assert last[12] == "no answer by the end of the drain"
    assert last[8] - last[7] < 0.25e9


async def test_warm_up_opens_idle_connections_the_first_calls_reuse(nursery):
    server = Server(lambda r, n: ok(r))
    transport = Http1Transport(await serve(nursery, server))
    await transport.warm_up(2)
    with trio.fail_after(5):
        while server.connections < 2:  # the server's handlers start a moment later
            await trio.sleep(0.01)
    await post(transport, 1)
    await trio.sleep(0.05)
    assert server.connections == 2
    # Reserved, not merely seen free: nothing listens there, and no other test's
    # port-0 bind can take it meanwhile.
    (port,) = free_ports(1)
    await Http1Transport(f"http://127.0.0.1:{port}/").warm_up(2)  # refused: no error
