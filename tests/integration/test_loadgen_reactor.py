"""The reactor (one task, one private epoll) running open-model loads against real
servers on loopback: the same behaviour as the engine of trio tasks, call for call."""

from __future__ import annotations

import json
import time

import pytest
import trio
from test_loadgen_transport import Server, ok, serve

from loadgen import Clock, ConstantRate, Http1Transport, WorkerConfig, run_worker
from loadgen.http1 import encode_post
from loadgen.timer import PreciseTimer, precise_timer_available
from scenarios.processes import free_ports

pytestmark = [
    pytest.mark.timeout(30),
    pytest.mark.skipif(not precise_timer_available(), reason="needs Linux epoll and timerfd"),
]


async def load(
    url: str, rate: float, seconds: float, *, max_connections: int = 1024, **overrides
) -> tuple[dict, list[tuple], object]:
    """Runs the worker on the reactor (a precise-timer clock, the lean transport)."""
    transport = Http1Transport(url, max_connections=max_connections)
    timer = PreciseTimer()
    values = dict(
        worker=0,
        t0_ns=time.time_ns() + 50_000_000,
        schedule=ConstantRate(rate, seconds),
        mix={"eth_blockNumber": 1},
    )
    values.update(overrides)
    rows: list[tuple] = []
    try:
        summary = await run_worker(
            WorkerConfig(**values), transport, rows, clock=Clock.from_system(timer=timer)
        )
    finally:
        timer.close()
        await transport.aclose()
    return summary.as_dict(), rows, summary


def delayed(seconds: float):
    async def hold() -> None:
        await trio.sleep(seconds)

    return hold


async def test_the_reactor_sends_what_the_lean_transport_sends_byte_for_byte(nursery):
    raw: list[bytes] = []
    listeners = await nursery.start(trio.serve_tcp, lambda s: capture(s, raw), 0)
    port = listeners[0].socket.getsockname()[1]
    url = f"http://127.0.0.1:{port}/rpc"
    _, rows, _ = await load(url, 10, 0.1, timeout_s=0.5, drain_s=0.2)
    assert len(raw) == 1 and len(rows) == 1
    body = json.dumps(
        {"jsonrpc": "2.0", "id": "bt-0-0", "method": "eth_blockNumber", "params": []},
        separators=(",", ":"),
    ).encode()
    headers = {"content-type": "application/json", "x-battle-tag": "bt-0-0"}
    assert raw[0] == encode_post(b"/rpc", f"127.0.0.1:{port}".encode(), headers, body)


async def capture(stream: trio.SocketStream, raw: list[bytes]) -> None:
    data = b""
    while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < int(
        data.lower().split(b"content-length: ")[1].split(b"\r\n")[0]
    ):
        data += await stream.receive_some(65536)
    raw.append(data)
    await stream.aclose()


async def test_calls_in_turn_reuse_one_kept_alive_connection(nursery):
    # 50 ms apart, each answered at once (a second connection only if the machine
    # stalls an answer that long).
    server = Server(lambda r, n: ok(r))
    d, _, _ = await load(await serve(nursery, server), 20, 0.5)
    assert d["outcomes"] == {"ok": 10} and server.requests == 10
    assert server.connections <= 2


async def test_the_pool_grows_when_every_connection_is_busy(nursery):
    # Answers take 50 ms and calls come every 5 ms: about ten are in flight at once.
    server = Server(lambda r, n: ok(r), before_answer=delayed(0.05))
    d, _, _ = await load(await serve(nursery, server), 200, 0.3)
    assert d["outcomes"] == {"ok": 60}
    assert 8 <= server.connections <= 20, server.connections


async def test_calls_wait_for_a_connection_when_the_pool_is_full(nursery):
    server = Server(lambda r, n: ok(r), before_answer=delayed(0.02))
    d, _, _ = await load(await serve(nursery, server), 500, 0.1, max_connections=2)
    assert d["outcomes"] == {"ok": 50} and d["not_sent"] == 0
    assert server.connections == 2
    # Waiting for a connection shows in latency (from the intended time), not in lateness.
    assert d["latency_ms"]["max"] > 100


async def test_sends_beyond_the_in_flight_cap_are_counted_not_sent(nursery):
    server = Server(lambda r, n: None)  # never answers
    d, rows, _ = await load(
        await serve(nursery, server), 100, 0.1, max_in_flight=3, timeout_s=0.3, drain_s=0.3
    )
    assert d["planned"] == 10 and d["sent"] == 3 and d["not_sent"] == 7
    assert d["outcomes"] == {"timeout": 3} and len(rows) == 3


async def test_connection_close_answers_open_a_new_connection_each_time(nursery):
    server = Server(lambda r, n: (ok(r, "Connection: close"), "close"))
    d, _, _ = await load(await serve(nursery, server), 100, 0.05)
    assert d["outcomes"] == {"ok": 5} and server.connections == 5


async def test_chunked_and_informational_answers_arrive_whole(nursery):
    def chunked(request: dict, n: int) -> bytes:
        body = json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": "0x10"}).encode()
        return (
            b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"%x\r\n%s\r\n" % (5, body[:5])
            + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body) - 5, body[5:])
        )

    server = Server(chunked)
    d, _, _ = await load(await serve(nursery, server), 20, 0.25)
    assert d["outcomes"] == {"ok": 5} and server.connections <= 2


async def test_an_early_close_in_the_body_is_a_conn_error(nursery):
    server = Server(lambda r, n: (ok(r)[:-3], "close"))
    d, rows, _ = await load(await serve(nursery, server), 100, 0.02)
    assert d["outcomes"] == {"conn_error": 2}
    assert all(r[12].startswith("RemoteProtocolError: connection closed after") for r in rows)


async def test_a_new_connection_closed_without_an_answer_is_a_conn_error(nursery):
    server = Server(lambda r, n: (b"", "close"))
    d, rows, _ = await load(await serve(nursery, server), 100, 0.02)
    assert d["outcomes"] == {"conn_error": 2}
    assert {r[12] for r in rows} == {
        "ConnectionClosedError: server closed the connection without answering"
    }


async def test_a_kept_alive_connection_the_server_closed_is_retried_once_on_a_new_one(nursery):
    # Every second request the server reads and then closes its connection without an
    # answer (as one whose idle timeout struck): each reused connection fails so, and
    # its call is retried on a fresh connection, which answers.
    server = Server(lambda r, n: ok(r) if n % 2 == 0 else (b"", "close"))
    d, _, _ = await load(await serve(nursery, server), 20, 0.25)
    assert d["outcomes"] == {"ok": 5}
    assert server.connections == 5 and server.requests == 9


async def test_a_refused_connection_is_a_conn_error_naming_the_address(nursery):
    # Reserved, not merely seen free: nothing listens there, and no other test's
    # port-0 bind can take it meanwhile.
    (port,) = free_ports(1)
    d, rows, _ = await load(f"http://127.0.0.1:{port}/", 100, 0.02)
    assert d["outcomes"] == {"conn_error": 2}
    assert all(f"connect to 127.0.0.1:{port}" in r[12] for r in rows)


async def test_timeouts_and_the_drain(nursery):
    server = Server(lambda r, n: None)
    d, rows, _ = await load(
        await serve(nursery, server), 10, 0.5, timeout_s=0.3, drain_s=0.1, max_in_flight=100
    )
    assert d["outcomes"] == {"timeout": 5}
    # The first calls time out after 0.3 s; the last, sent at 0.4 s, is cut by the drain
    # 0.1 s after the last send.
    first, last = rows[0], rows[-1]
    assert 0.29e9 <= first[8] - first[7] < 0.6e9 and first[12] == "no answer within 0.3 s"
    assert last[12] == "no answer by the end of the drain"
    assert last[8] - last[7] < 0.25e9
    # A timed-out call closes its connection: the server sees every one end.
    with trio.fail_after(5):
        while server.eofs < 5:
            await trio.sleep(0.01)


async def test_a_one_second_stall_at_100_per_second_shows_in_the_corrected_p99(nursery):
    # A quarter of the calls held (1 s of 4), so that the median sits among the others
    # even when the burst of answers after the stall slows a few dozen of them.
    t0 = time.time_ns() + 100_000_000
    stall_from, stall_to = t0 + 1_000_000_000, t0 + 2_000_000_000

    async def hold() -> None:
        now = time.time_ns()
        if stall_from <= now < stall_to:
            await trio.sleep((stall_to - now) / 1e9)

    server = Server(lambda r, n: ok(r), before_answer=hold)
    d, rows, _ = await load(await serve(nursery, server), 100, 4.0, t0_ns=t0)
    assert d["outcomes"] == {"ok": 400}, d["outcomes"]
    assert d["latency_ms"]["p99"] > 900 and d["latency_ms"]["p50"] < 400, d["latency_ms"]
    held = [r for r in rows if stall_from + 20_000_000 <= r[6] < stall_to - 20_000_000]
    assert held and all(r[8] >= stall_to for r in held)
    # Sent on schedule during the stall, not after it (no coordinated omission).
    assert all(r[7] - r[6] < 200_000_000 for r in held)


async def test_a_cancelled_load_stops_promptly_and_closes_its_connections(nursery):
    server = Server(lambda r, n: None)
    url = await serve(nursery, server)
    with trio.move_on_after(0.3):
        await load(url, 100, 10.0, timeout_s=5)
    with trio.fail_after(5):
        while server.eofs < server.connections or server.connections == 0:
            await trio.sleep(0.01)
    assert server.connections >= 10
