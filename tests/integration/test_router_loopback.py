"""The reference router on loopback (in-process, and once as a process) against tiny upstreams.

Upstream kinds: ``ok`` answers ``{"jsonrpc":"2.0","id":<same id>,"result":"0x10"}``,
``close`` reads the request and closes the connection without answering, ``hang`` reads
it and never answers, ``503`` answers HTTP 503, ``invalid_params`` answers a JSON-RPC -32602 error.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import h11
import httpx
import pytest
import trio

from examples.reference_router import RouterConfig, UpstreamConfig, render_config, serve

TAG = "bt-3-41"
BODY = json.dumps({"jsonrpc": "2.0", "id": TAG, "method": "eth_blockNumber", "params": []}).encode()


@dataclass
class Seen:
    headers: dict[bytes, bytes]
    body: bytes


@dataclass
class FakeUpstream:
    name: str
    kind: str
    seen: list[Seen] = field(default_factory=list)
    url: str = ""

    def answer(self, body: bytes) -> tuple[int, bytes]:
        request = json.loads(body)
        if self.kind == "503":
            return 503, b"service unavailable"
        if isinstance(request, list):
            answers = [self.answer_one(r.get("id")) for r in request]
            return 200, json.dumps(answers).encode()
        return 200, json.dumps(self.answer_one(request.get("id"))).encode()

    def answer_one(self, request_id: object) -> dict[str, object]:
        if self.kind == "invalid_params":
            error = {"code": -32602, "message": "invalid argument 0: hex string without 0x prefix"}
            return {"jsonrpc": "2.0", "id": request_id, "error": error}
        return {"jsonrpc": "2.0", "id": request_id, "result": "0x10"}

    async def handle(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                request, chunks = None, []
                while True:
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        conn.receive_data(await stream.receive_some(65536))
                    elif isinstance(event, h11.Request):
                        request = event
                    elif isinstance(event, h11.Data):
                        chunks.append(event.data)
                    elif isinstance(event, h11.EndOfMessage):
                        break
                    else:
                        return  # ConnectionClosed
                assert request is not None
                body = b"".join(chunks)
                self.seen.append(Seen(dict(request.headers), body))
                if self.kind == "close":
                    return
                if self.kind == "hang":
                    await trio.sleep_forever()
                status, payload = self.answer(body)
                headers = [
                    ("content-type", "application/json"),
                    ("content-length", str(len(payload))),
                ]
                await stream.send_all(
                    conn.send(h11.Response(status_code=status, headers=headers))
                    + conn.send(h11.Data(data=payload))
                    + conn.send(h11.EndOfMessage())
                )
                if conn.our_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except (trio.BrokenResourceError, h11.ProtocolError):
            return
        finally:
            await trio.aclose_forcefully(stream)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}/"
        task_status.started()
        await trio.serve_listeners(self.handle, listeners)


@pytest.fixture
async def nursery():
    async with trio.open_nursery() as nursery:
        yield nursery
        nursery.cancel_scope.cancel()


async def start_fleet(nursery: trio.Nursery, *kinds: str) -> list[FakeUpstream]:
    fleet = [FakeUpstream(chr(ord("A") + i), kind) for i, kind in enumerate(kinds)]
    for upstream in fleet:
        await nursery.start(upstream.run)
    return fleet


async def start_router(nursery: trio.Nursery, fleet: list[FakeUpstream], **options: object) -> str:
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": 0,
        "upstreams": tuple(UpstreamConfig(u.name, u.url) for u in fleet),
        "strategy": "priority",
        "attempt_timeout_s": 2.0,
        "request_timeout_s": 5.0,
        # These tests count the requests each upstream saw: no head polls among them.
        "head_tracking": None,
    }
    values.update(options)
    host, port = await nursery.start(serve, RouterConfig(**values))  # type: ignore[arg-type]
    return f"http://{host}:{port}"


def post(client: httpx.AsyncClient, url: str, body: bytes = BODY, **headers: str):
    headers = {"content-type": "application/json", "x-battle-tag": TAG, **headers}
    return client.post(url + "/", content=body, headers=headers)


async def test_health_answers_ok(nursery):
    fleet = await start_fleet(nursery, "ok")
    url = await start_router(nursery, fleet)
    async with httpx.AsyncClient() as client:
        response = await client.get(url + "/health")
    assert response.status_code == 200 and response.json() == {"ok": True}
    assert fleet[0].seen == []


@pytest.mark.parametrize("broken", ["close", "503"])
async def test_failover_succeeds_when_the_first_upstream_is_broken(nursery, broken):
    fleet = await start_fleet(nursery, broken, "ok")
    url = await start_router(nursery, fleet, strategy="priority")
    async with httpx.AsyncClient() as client:
        responses = [await post(client, url) for _ in range(5)]
    for response in responses:
        assert response.status_code == 200
        assert response.json() == {"jsonrpc": "2.0", "id": TAG, "result": "0x10"}
    assert len(fleet[0].seen) == 5 and len(fleet[1].seen) == 5


async def test_round_robin_with_failover_answers_every_request(nursery):
    fleet = await start_fleet(nursery, "close", "ok", "503")
    # Without a breaker, so that the broken ones stay in the rotation.
    url = await start_router(nursery, fleet, strategy="round_robin", circuit_breaker=None)
    async with httpx.AsyncClient() as client:
        statuses = [(await post(client, url)).status_code for _ in range(9)]
    assert statuses == [200] * 9
    assert len(fleet[1].seen) == 9  # the healthy one served all of them
    assert len(fleet[0].seen) == 6 and len(fleet[2].seen) == 3  # tried first or on the way


async def test_a_hung_upstream_costs_one_attempt_timeout_then_fails_over(nursery):
    fleet = await start_fleet(nursery, "hang", "ok")
    url = await start_router(nursery, fleet, attempt_timeout_s=0.3)
    async with httpx.AsyncClient() as client:
        start = trio.current_time()
        response = await post(client, url)
        elapsed = trio.current_time() - start
    assert response.status_code == 200 and len(fleet[1].seen) == 1
    assert 0.3 <= elapsed < 1.5


async def test_without_failover_a_closed_connection_is_a_502(nursery):
    fleet = await start_fleet(nursery, "close", "ok")
    url = await start_router(nursery, fleet, failover=False)
    async with httpx.AsyncClient() as client:
        response = await post(client, url)
    assert response.status_code == 502
    payload = response.json()
    assert payload["id"] == TAG and payload["error"]["code"] == -32603
    message = payload["error"]["message"]
    assert message == "upstream A failed: server closed the connection without a response"
    assert len(fleet[0].seen) == 1 and fleet[1].seen == []


async def test_without_failover_a_503_goes_back_as_is(nursery):
    fleet = await start_fleet(nursery, "503", "ok")
    url = await start_router(nursery, fleet, failover=False)
    async with httpx.AsyncClient() as client:
        response = await post(client, url)
    assert (response.status_code, response.content) == (503, b"service unavailable")
    assert fleet[1].seen == []


async def test_every_upstream_failing_is_a_502_naming_the_last(nursery):
    fleet = await start_fleet(nursery, "close", "503")
    url = await start_router(nursery, fleet)
    async with httpx.AsyncClient() as client:
        response = await post(client, url)
    assert response.status_code == 502
    assert response.json()["error"]["message"] == "upstream B failed: HTTP 503"


async def test_tag_and_body_reach_the_upstream_unchanged(nursery):
    fleet = await start_fleet(nursery, "ok")
    url = await start_router(nursery, fleet)
    # Odd but valid JSON: spacing and key order must survive byte for byte.
    body = (
        b'{ "method":"eth_getBalance", "id":"bt-3-41","params":["0xAb", "latest"],"jsonrpc":"2.0"}'
    )
    async with httpx.AsyncClient() as client:
        response = await post(
            client, url, body, **{"content-type": "application/json; charset=utf-8"}
        )
    assert response.status_code == 200
    (seen,) = fleet[0].seen
    assert seen.body == body
    assert seen.headers[b"x-battle-tag"] == TAG.encode()
    assert seen.headers[b"content-type"] == b"application/json; charset=utf-8"


async def test_upstream_answer_comes_back_byte_for_byte(nursery):
    fleet = await start_fleet(nursery, "ok")
    url = await start_router(nursery, fleet)
    async with httpx.AsyncClient() as client:
        response = await post(client, url)
    assert response.content == json.dumps({"jsonrpc": "2.0", "id": TAG, "result": "0x10"}).encode()
    assert response.headers["content-type"] == "application/json"


async def test_invalid_params_goes_back_unchanged_without_another_upstream(nursery):
    fleet = await start_fleet(nursery, "invalid_params", "ok")
    url = await start_router(nursery, fleet)
    async with httpx.AsyncClient() as client:
        response = await post(client, url)
    assert response.status_code == 200
    assert response.json()["error"]["code"] == -32602
    assert response.content == fleet[0].answer(BODY)[1]
    assert len(fleet[0].seen) == 1 and fleet[1].seen == []


async def test_batch_is_forwarded_and_answered(nursery):
    fleet = await start_fleet(nursery, "close", "ok")
    url = await start_router(nursery, fleet)
    batch = b'[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","id":2,"method":"b"}]'
    async with httpx.AsyncClient() as client:
        response = await post(client, url, batch)
    assert response.status_code == 200 and fleet[1].seen[0].body == batch
    assert [a["id"] for a in response.json()] == [1, 2]


async def raw_exchange(url: str, requests: list[h11.Event]) -> list[tuple[int, bytes]]:
    """Send requests over ONE connection with h11 and collect (status, body) for each."""
    port = int(url.rsplit(":", 1)[1])
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    conn = h11.Connection(h11.CLIENT)
    answers: list[tuple[int, bytes]] = []
    async with stream:
        for i, event in enumerate(requests):
            await stream.send_all(conn.send(event))
            if not isinstance(event, h11.EndOfMessage):
                continue
            status, body = 0, b""
            while True:
                got = conn.next_event()
                if got is h11.NEED_DATA:
                    conn.receive_data(await stream.receive_some(65536))
                elif isinstance(got, h11.Response):
                    status = got.status_code
                elif isinstance(got, h11.Data):
                    body += got.data
                elif isinstance(got, h11.EndOfMessage):
                    break
            answers.append((status, body))
            if i < len(requests) - 1:
                conn.start_next_cycle()
    return answers


async def test_keep_alive_and_chunked_request_bodies(nursery):
    fleet = await start_fleet(nursery, "ok")
    url = await start_router(nursery, fleet)
    host = ("host", "127.0.0.1")
    chunked = [host, ("transfer-encoding", "chunked"), ("x-battle-tag", TAG)]
    answers = await raw_exchange(
        url,
        [
            h11.Request(method="GET", target="/health", headers=[host]),
            h11.EndOfMessage(),
            h11.Request(method="POST", target="/rpc", headers=chunked),
            h11.Data(data=BODY[:10]),
            h11.Data(data=BODY[10:]),
            h11.EndOfMessage(),
            h11.Request(
                method="POST", target="/", headers=[host, ("content-length", str(len(BODY)))]
            ),
            h11.Data(data=BODY),
            h11.EndOfMessage(),
        ],
    )
    assert [status for status, _ in answers] == [200, 200, 200]
    assert json.loads(answers[1][1])["result"] == "0x10"
    assert [s.body for s in fleet[0].seen] == [BODY, BODY]


async def test_unknown_get_is_404_and_other_methods_405(nursery):
    fleet = await start_fleet(nursery, "ok")
    url = await start_router(nursery, fleet)
    async with httpx.AsyncClient() as client:
        assert (await client.get(url + "/nope")).status_code == 404
        assert (await client.put(url + "/", content=BODY)).status_code == 405


# ---------------------------------------------------------------------------------------
# The CLI as a real process

REPO = Path(__file__).resolve().parents[2]
READY = re.compile(rb"^ready http://127\.0\.0\.1:(\d+)\n")


async def read_ready_line(process: trio.Process) -> int:
    assert process.stdout is not None
    buffer = b""
    with trio.fail_after(20):
        while b"\n" not in buffer:
            chunk = await process.stdout.receive_some(1024)
            assert chunk, "router exited before printing its ready line"
            buffer += chunk
    match = READY.match(buffer)
    assert match, buffer
    return int(match.group(1))


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
async def test_cli_serves_on_port_zero_and_exits_0_on_signal(tmp_path, stop_signal):
    broken, healthy = FakeUpstream("A", "close"), FakeUpstream("B", "ok")
    async with trio.open_nursery() as nursery:
        await nursery.start(broken.run)
        await nursery.start(healthy.run)
        config = tmp_path / "router.toml"
        config.write_text(
            render_config(
                listen="127.0.0.1:0",
                upstreams=[{"name": u.name, "url": u.url} for u in (broken, healthy)],
                strategy="priority",
                failover=True,
                request_timeout_s=5.0,
                attempt_timeout_s=2.0,
                max_attempts=3,
                head_tracking=False,
            )
        )
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "examples.reference_router", "--config", str(config)],
            cwd=REPO,
            stdout=subprocess.PIPE,
        )
        try:
            port = await read_ready_line(process)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                assert (await client.get("/health")).json() == {"ok": True}
                response = await client.post("/", content=BODY, headers={"x-battle-tag": TAG})
            assert response.json() == {"jsonrpc": "2.0", "id": TAG, "result": "0x10"}
            assert healthy.seen[0].headers[b"x-battle-tag"] == TAG.encode()
            process.send_signal(stop_signal)
            with trio.fail_after(10):
                assert await process.wait() == 0
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            nursery.cancel_scope.cancel()
