"""The worker's timing, pinned exactly on trio's MockClock (autojump)."""

from __future__ import annotations

import json

import pytest
import trio

from loadgen import Clock, ConstantRate, WorkerConfig, run_worker

T0 = 1_700_000_000_000_000_000  # an arbitrary epoch start, ns
SEC = 1_000_000_000


class StallingUpstream:
    """Answers at once, except that every call in [stall_from, stall_to) waits until
    stall_to: a server that freezes for a while, then answers everything."""

    def __init__(self, clock: Clock, stall_from_ns: int, stall_to_ns: int) -> None:
        self.clock, self.stall_from, self.stall_to = clock, stall_from_ns, stall_to_ns
        self.bodies: list[dict] = []

    async def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        request = json.loads(body)
        self.bodies.append({"body": request, "headers": headers})
        now = self.clock.now_ns()
        if self.stall_from <= now < self.stall_to:
            await trio.sleep_until(self.clock.deadline(self.stall_to))
        result = "0x10" if request["method"] == "eth_blockNumber" else "0x0"
        return 200, json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": result}).encode()

    async def aclose(self) -> None:
        pass


def config(**overrides) -> WorkerConfig:
    values = dict(worker=3, t0_ns=T0, schedule=ConstantRate(100, 2.0), mix={"eth_blockNumber": 1})
    values.update(overrides)
    return WorkerConfig(**values)


async def test_sends_follow_the_schedule_while_the_upstream_stalls(autojump_clock):
    clock = Clock(T0)
    upstream = StallingUpstream(clock, T0 + SEC // 2, T0 + 3 * SEC // 2)
    rows: list[tuple] = []
    summary = await run_worker(config(), upstream, rows, clock=clock)
    assert summary.sent == 200 and len(rows) == 200
    assert all(r[7] == r[6] for r in rows), "every send happens exactly at its intended time"
    assert summary.late_sends == 0


async def test_a_one_second_stall_shows_in_p99_measured_from_the_intended_time(autojump_clock):
    clock = Clock(T0)
    upstream = StallingUpstream(clock, T0 + SEC // 2, T0 + 3 * SEC // 2)
    rows: list[tuple] = []
    summary = await run_worker(config(), upstream, rows, clock=clock)
    latencies = sorted(r[8] - r[6] for r in rows)
    # 100 of 200 requests were sent during the stall; the first waited the whole second.
    assert latencies[-1] == SEC
    assert sum(1 for lat in latencies if lat > 0) == 100
    assert summary.as_dict()["latency_ms"]["p99"] == pytest.approx(990, rel=0.01)
    assert summary.as_dict()["latency_ms"]["p50"] < 1


async def test_every_request_carries_its_tag_in_header_and_id(autojump_clock):
    clock = Clock(T0)
    upstream = StallingUpstream(clock, 0, 0)
    rows: list[tuple] = []
    await run_worker(config(schedule=ConstantRate(10, 0.5)), upstream, rows, clock=clock)
    tags = [b["headers"]["x-battle-tag"] for b in upstream.bodies]
    assert tags == [f"bt-3-{i}" for i in range(5)]
    assert [b["body"]["id"] for b in upstream.bodies] == tags
    assert [r[2] for r in rows] == tags


async def test_a_call_past_its_timeout_is_recorded_as_timeout(autojump_clock):
    clock = Clock(T0)
    upstream = StallingUpstream(clock, T0, T0 + 10 * SEC)
    rows: list[tuple] = []
    summary = await run_worker(
        config(schedule=ConstantRate(2, 1.0), timeout_s=0.25), upstream, rows, clock=clock
    )
    assert [r[9] for r in rows] == ["timeout", "timeout"]
    assert [r[8] - r[7] for r in rows] == [SEC // 4, SEC // 4]
    assert summary.outcomes == {"timeout": 2}


async def test_sends_beyond_the_in_flight_cap_are_counted_not_sent(autojump_clock):
    clock = Clock(T0)
    upstream = StallingUpstream(clock, T0, T0 + 10 * SEC)
    rows: list[tuple] = []
    summary = await run_worker(
        config(schedule=ConstantRate(10, 1.0), max_in_flight=4, timeout_s=5),
        upstream,
        rows,
        clock=clock,
    )
    assert (summary.sent, summary.not_sent) == (4, 6)
    assert len(rows) == 4


async def test_a_transport_error_is_recorded_as_conn_error(autojump_clock):
    class Refusing:
        async def post(self, body, headers):
            raise OSError("connection refused")

        async def aclose(self):
            pass

    rows: list[tuple] = []
    summary = await run_worker(
        config(schedule=ConstantRate(4, 0.5)), Refusing(), rows, clock=Clock(T0)
    )
    assert summary.outcomes == {"conn_error": 2}
    assert "connection refused" in rows[0][12]


def test_worker_config_names_the_bad_field():
    with pytest.raises(ValueError, match="timeout_s must be > 0, got 0"):
        config(timeout_s=0)
    with pytest.raises(ValueError, match="rate must be > 0"):
        ConstantRate(0, 1)
