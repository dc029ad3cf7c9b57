"""The worker's timing, pinned exactly on trio's MockClock (autojump)."""

from __future__ import annotations

import json
import time

import pytest
import trio
from hdrh.histogram import HdrHistogram

from loadgen import BatchSpec, Clock, ClosedLoop, ConstantRate, Summary, WorkerConfig, run_worker
from loadgen.progress import active_faults, progress_line
from loadgen.worker import HIST_MAX_US, record
from providers import Chain, MockNode
from scenarios.worker import ChainTruth

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


class SlowUpstream:
    """Answers every call after `delay_s`; eth_blockNumber with `head`, batches too."""

    def __init__(self, delay_s: float, head: int = 16) -> None:
        self.delay_s, self.head = delay_s, head
        self.bodies: list = []

    def _answer(self, request: dict) -> dict:
        result = hex(self.head) if request["method"] == "eth_blockNumber" else "0x0"
        return {"jsonrpc": "2.0", "id": request["id"], "result": result}

    async def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        request = json.loads(body)
        self.bodies.append(request)
        await trio.sleep(self.delay_s)
        if isinstance(request, list):
            return 200, json.dumps([self._answer(r) for r in request]).encode()
        return 200, json.dumps(self._answer(request)).encode()

    async def aclose(self) -> None:
        pass


async def test_a_slow_upstream_shows_in_service_time_and_latency_alike(autojump_clock):
    rows: list[tuple] = []
    summary = await run_worker(config(), SlowUpstream(0.05), rows, clock=Clock(T0))
    assert {r[8] - r[7] for r in rows} == {SEC // 20}
    assert {r[8] - r[6] for r in rows} == {SEC // 20}
    assert summary.late_sends == 0 and summary.as_dict()["send_lateness_ms"]["max"] == 0.001


async def test_calls_still_in_flight_at_the_end_of_the_drain_are_timeouts(autojump_clock):
    clock = Clock(T0)
    rows: list[tuple] = []
    cfg = config(schedule=ConstantRate(4, 1.0), timeout_s=10, drain_s=0.5)
    summary = await run_worker(cfg, StallingUpstream(clock, T0, T0 + 60 * SEC), rows, clock=clock)
    # The last send is at 0.75 s; the drain ends 0.5 s after it, cutting every call off.
    assert {r[8] for r in rows} == {T0 + 3 * SEC // 4 + SEC // 2}
    assert {r[9] for r in rows} == {"timeout"} and summary.outcomes == {"timeout": 4}
    assert all("end of the drain" in r[12] for r in rows)


async def test_a_closed_loop_sends_the_next_call_when_the_previous_one_ended(autojump_clock):
    rows: list[tuple] = []
    cfg = config(schedule=ClosedLoop(clients=2, duration_s=1.0, think_s=0.01))
    summary = await run_worker(cfg, SlowUpstream(0.04), rows, clock=Clock(T0))
    # Each client: 40 ms of service plus 10 ms of thinking per call, for one second.
    assert len(rows) == summary.planned == summary.sent == 40
    assert all(r[6] == r[7] for r in rows)
    assert {r[8] - r[6] for r in rows} == {SEC * 4 // 100}


async def test_a_batch_is_one_row_with_its_size_and_tagged_ids(autojump_clock):
    rows: list[tuple] = []
    upstream = SlowUpstream(0.001)
    cfg = config(schedule=ConstantRate(10, 0.5), batch=BatchSpec(1.0, {3: 1}))
    await run_worker(cfg, upstream, rows, clock=Clock(T0))
    assert [(r[4], r[5], r[9]) for r in rows] == [("batch", 3, "ok")] * 5
    assert [m["id"] for m in upstream.bodies[0]] == ["bt-3-0", "bt-3-0.1", "bt-3-0.2"]


async def test_an_answer_the_truth_contradicts_is_recorded_invalid_with_its_block(autojump_clock):
    class Truth:
        def head_at(self, t_ns: int) -> int:
            return 10

        def block_hash(self, n: int) -> str:
            return "0x" + "00" * 32

    rows: list[tuple] = []
    cfg = config(schedule=ConstantRate(10, 0.3))
    summary = await run_worker(
        cfg, SlowUpstream(0.001, head=12), rows, clock=Clock(T0), truth=Truth()
    )
    assert summary.outcomes == {"invalid": 3}
    assert {(r[9], r[15]) for r in rows} == {("invalid", 12)}
    assert "ahead of the true head 10" in rows[0][12]


def test_the_inlined_hdr_record_agrees_with_hdrh():
    a, b = HdrHistogram(1, HIST_MAX_US, 3), HdrHistogram(1, HIST_MAX_US, 3)
    values = [0, 1, 2, 1023, 1024, 2047, 2048, 999_999, HIST_MAX_US, HIST_MAX_US + 1, 10**12]
    values += [int(10 ** (i / 1000)) for i in range(9600)]
    for v in values:
        assert a.record_value(v) == record(b, v), v
    assert list(a.counts) == list(b.counts)
    assert (a.total_count, a.min_value, a.max_value) == (b.total_count, b.min_value, b.max_value)


def test_a_latency_beyond_the_histogram_is_clamped_and_counted_not_lost():
    summary = Summary()
    summary.record_latency(2 * HIST_MAX_US * 1000, "eth_blockNumber", 0)
    assert summary.out_of_range == 1  # one value, clamped in every histogram
    assert summary.latency_us.get_total_count() == 1
    assert summary.latency_us.get_max_value() >= HIST_MAX_US
    assert summary.by_method["eth_blockNumber"].get_max_value() >= HIST_MAX_US
    assert summary.as_dict()["latency_out_of_range"] == 1


def test_the_summary_keeps_the_counters_analysis_reads():
    d = Summary(planned=10, sent=8, not_sent=2, late_sends=1).as_dict()
    assert (d["planned"], d["not_sent"], d["late_sends"], d["sent"]) == (10, 2, 1, 8)
    assert {"p50", "p99", "max", "count"} <= set(d["send_lateness_ms"])


def test_the_progress_line_shows_rate_success_latency_in_flight_and_faults():
    summary = Summary(in_flight=7)
    summary.outcomes.update(ok=99, timeout=1)
    summary.record_latency(2_000_000, "eth_blockNumber", 1)
    line = progress_line(summary, 12.5, 4999.6, 1, ["a-down"])
    assert "5,000 req/s" in line and "ok  99.0%" in line and "in flight     7" in line
    assert "p99    2.00 ms" in line and "faults a-down" in line
    assert active_faults([("a-down", 10, 20), ("b", 20, 30)], 15) == ["a-down"]


async def test_a_worker_cancelled_mid_load_stops_promptly_with_idle_and_busy_senders(
    autojump_clock,
):
    # The SIGTERM path: the whole worker is cancelled while some senders wait for work
    # and others wait for an answer.
    clock = Clock(T0)
    rows: list[tuple] = []
    upstream = StallingUpstream(clock, T0 + SEC // 2, T0 + 60 * SEC)
    summary = Summary()
    with trio.move_on_at(clock.deadline(T0 + SEC)):
        await run_worker(config(), upstream, rows, clock=clock, summary=summary)
    assert trio.current_time() == pytest.approx(clock.deadline(T0 + SEC))
    assert summary.sent == 100 and len(rows) == 50  # the stalled half never answered


async def test_a_clock_anchored_at_a_trio_time_counts_from_it(autojump_clock):
    clock = Clock(T0, at=trio.current_time() - 1.5)
    assert clock.now_ns() == T0 + 1_500_000_000


def test_a_clock_from_the_system_agrees_with_the_wall_clock():
    async def gap() -> int:
        clock = Clock.from_system()
        await trio.sleep(0.01)
        return abs(time.time_ns() - clock.now_ns())

    # A few µs when anchored well; a thread switch in the anchoring would be ms.
    assert trio.run(gap) < 500_000


async def test_the_summary_gives_the_cpu_time_of_the_load_per_call_sent(autojump_clock):
    upstream = StallingUpstream(Clock(T0), 0, 0)
    summary = await run_worker(config(t0_ns=T0), upstream, [], clock=Clock(T0))
    d = summary.as_dict()
    assert summary.load_cpu_s > 0 and d["cpu_s_during_load"] == round(summary.load_cpu_s, 3)
    assert d["cpu_us_per_call"] == round(summary.load_cpu_s * 1e6 / 200, 1)
    assert Summary().as_dict()["cpu_us_per_call"] is None


class MockChainUpstream:
    """A mock provider (`providers.MockNode`) on the test's clock; `mangle` rewrites
    the answers of a batch (a list of answer objects) before they are sent."""

    def __init__(self, clock: Clock, mangle=lambda answers: answers) -> None:
        self.chain = Chain(5, T0 - 300 * SEC)
        self.node = MockNode(self.chain, clock.now_ns)
        self.mangle = mangle

    async def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        await trio.sleep(0.001)
        answer = json.loads(self.node.handle(body))
        if isinstance(answer, list):
            answer = self.mangle(answer)
        return 200, json.dumps(answer).encode()

    async def aclose(self) -> None:
        pass


def rotated(answers: list[dict]) -> list[dict]:
    results = [a["result"] for a in answers]
    return [{**a, "result": r} for a, r in zip(answers, results[1:] + results[:1], strict=True)]


@pytest.mark.parametrize(
    "mangle,outcome",
    [(lambda answers: answers[::-1], "ok"), (rotated, "invalid")],
    ids=["reordered", "rotated"],
)
async def test_a_batch_is_one_row_ok_in_any_order_and_invalid_when_answers_change_ids(
    autojump_clock, mangle, outcome
):
    clock = Clock(T0)
    upstream = MockChainUpstream(clock, mangle)
    rows: list[tuple] = []
    cfg = config(
        schedule=ConstantRate(10, 0.5),
        mix={"eth_blockNumber": 1, "eth_chainId": 1, "eth_getBalance": 2},
        batch=BatchSpec(1.0, {4: 1}),
        seed=3,
    )
    summary = await run_worker(cfg, upstream, rows, clock=clock, truth=ChainTruth(upstream.chain))
    assert [(r[4], r[5], r[9]) for r in rows] == [("batch", 4, outcome)] * 5
    assert summary.outcomes == {outcome: 5}
    if outcome == "invalid":
        assert all(r[12].startswith("call ") for r in rows)
    # A block number, or none: never a rotated balance (a BIGINT column).
    assert all(r[15] is None or 0 <= r[15] < 1 << 63 for r in rows)


# --- the worker's clock in a real run -----------------------------------------------


def _fast_wall(monkeypatch):
    """A wall clock running 0.5% faster than trio's (a VM measured so for minutes)."""
    mock = trio.lowlevel.current_clock()
    start = mock.current_time()

    def wall() -> int:
        return T0 + int((mock.current_time() - start) * 1.005 * SEC)

    monkeypatch.setattr(time, "time_ns", wall)
    return wall


async def test_a_real_runs_clock_follows_a_wall_clock_that_runs_ahead(autojump_clock, monkeypatch):
    wall = _fast_wall(monkeypatch)
    clock = Clock.from_system()
    await trio.sleep(10)
    assert clock.now_ns() == wall()
    # One wall second from now is one second of trio time from now, read afresh.
    assert clock.deadline(wall() + SEC) == pytest.approx(trio.current_time() + 1.0)


async def test_a_clock_anchored_once_falls_behind_such_a_wall_clock(autojump_clock, monkeypatch):
    wall = _fast_wall(monkeypatch)
    anchored = Clock(wall())
    await trio.sleep(10)
    assert wall() - anchored.now_ns() == pytest.approx(50_000_000, rel=1e-6)  # 50 ms
