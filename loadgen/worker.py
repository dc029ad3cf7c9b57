"""One load worker: arrival model → request mix → timed call → transport → sample.

Latency is measured from the intended send time (coordinated-omission-correct) and
service time from the actual send; both are recorded for every call. Nothing is
dropped silently: a call the in-flight cap keeps from being sent is counted in
`not_sent`, a send later than `LATE_SEND_NS` in `late_sends`, a call without an answer
within its timeout (or by the end of the drain) is a `timeout` row.

Two engines run the calls; both end every call in `run_worker`'s `end` (judgement,
histograms, row). An open-model load over `Http1Transport` on a clock with the precise
timer runs on the reactor (`reactor.py`: one task, its own epoll set); everything else
(closed loops, httpx, `--timer trio`, fakes on a MockClock) on trio tasks ("lanes")
awaiting `transport.post`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import outcome
import trio
from hdrh.histogram import HdrHistogram

from .mix import BatchSpec, Call, RequestMix
from .reactor import DRAIN, run_open_load
from .schedule import ClosedLoop, Schedule
from .timer import PreciseTimer
from .transport import Http1Transport, Transport, outcome_of_exception
from .validate import DEFAULT_MAX_LAG_BLOCKS, Truth, judge, judge_batch

__all__ = ["Clock", "Summary", "WallClock", "WorkerConfig", "record", "run_worker"]

# Latencies are kept in microseconds up to one hour, 3 significant digits.
HIST_MAX_US = 3_600_000_000
# A send later than this after its intended time counts as late.
LATE_SEND_NS = 1_000_000
# Per-window histograms cover this many seconds each (coarse: a histogram is ~200 KB).
WINDOW_S = 10


class Sink(Protocol):
    def append(self, row: tuple) -> None: ...


class Clock:
    """Epoch nanoseconds from trio's clock, anchored to the wall clock once: what tests
    run a worker on, over trio's MockClock, with exact times. A real run uses
    `WallClock` (`from_system`), which follows the wall clock the other processes read.
    """

    def __init__(
        self, wall_ns: int, *, timer: PreciseTimer | None = None, at: float | None = None
    ) -> None:
        """`wall_ns` is the epoch time at trio time `at` (default: now)."""
        self._wall0 = wall_ns
        self._mono0 = trio.current_time() if at is None else at
        # Sends wait on a PreciseTimer when given (µs accuracy), else on trio's own
        # sleep (1 ms granularity, and the only kind a MockClock can jump over). With
        # one, an open-model load over Http1Transport runs on the reactor (its own
        # timerfd, real time only).
        self.timer = timer
        # The run's clock itself (SystemClock, or a test's MockClock): calling it
        # directly skips trio.current_time()'s run-context lookups on the hot path.
        self._current_time = trio.lowlevel.current_clock().current_time

    @classmethod
    def from_system(cls, *, timer: PreciseTimer | None = None) -> Clock:
        """The wall clock itself (`WallClock`): what the chaos proxy, the providers and
        the runner's t0 read."""
        return WallClock(timer=timer)

    def now_ns(self) -> int:
        return self._wall0 + round((self._current_time() - self._mono0) * 1e9)

    def deadline(self, t_ns: int) -> float:
        """The trio-clock deadline of epoch time `t_ns`."""
        return self._mono0 + (t_ns - self._wall0) / 1e9

    async def sleep_until(self, t_ns: int) -> None:
        """Waits until epoch time `t_ns` (a checkpoint even when it has passed)."""
        if self.timer is None:
            await trio.sleep_until(self.deadline(t_ns))
        else:
            await self.timer.sleep_until(self.deadline(t_ns))


class WallClock(Clock):
    """Epoch nanoseconds read from the wall clock (CLOCK_REALTIME) at every timestamp,
    as every other process of a run reads them; sleeps convert a wall time to trio's
    clock afresh each time.

    Why not anchor once: on a busy VM the wall clock ran 0.5% faster than the
    monotonic one for minutes (something disciplined the wall clock alone), so a worker
    anchored at its start fell 5 ms a second behind the proxy and the providers; after
    ten seconds true heads came out "ahead of the true head" and the router was blamed.
    """

    def __init__(self, *, timer: PreciseTimer | None = None) -> None:
        super().__init__(time.time_ns(), timer=timer)
        # The builtin itself, not a method around it: this runs at every timestamp.
        self.now_ns = time.time_ns  # type: ignore[method-assign]

    def deadline(self, t_ns: int) -> float:
        # The wall first: preempted between the two reads, the deadline comes out late
        # (a late send, recorded as such), never early.
        wall = time.time_ns()
        return self._current_time() + (t_ns - wall) / 1e9


@dataclass(frozen=True)
class WorkerConfig:
    """Args:
    worker: this worker's number (in tags and shard names).
    t0_ns: epoch start of the load; schedule offsets are relative to it.
    schedule: an open arrival model, or `ClosedLoop`.
    mix: mix name → weight (`loadgen.mix.METHODS`, or a method with fixed params).
    timeout_s: a call without an answer this long after its send is a `timeout`.
    max_in_flight: an open-model send beyond this many calls in flight is not sent
        (counted in `not_sent`).
    drain_s: after the last send, calls still in flight get at most this long
        (default: `timeout_s`); those cut off are `timeout` rows.
    max_lag_blocks: how far behind the true head an answer may be (with a truth).
    """

    worker: int
    t0_ns: int
    schedule: Schedule | ClosedLoop
    mix: Mapping[str, float]
    seed: int = 0
    timeout_s: float = 5.0
    max_in_flight: int = 1000
    drain_s: float | None = None
    batch: BatchSpec | None = None
    fixed: Mapping[str, Sequence[list]] | None = None
    max_lag_blocks: int = DEFAULT_MAX_LAG_BLOCKS

    def __post_init__(self) -> None:
        if self.worker < 0:
            raise ValueError(f"worker must be >= 0, got {self.worker}")
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")
        if self.max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {self.max_in_flight}")
        if self.drain_s is not None and self.drain_s < 0:
            raise ValueError(f"drain_s must be >= 0, got {self.drain_s}")
        if self.max_lag_blocks < 0:
            raise ValueError(f"max_lag_blocks must be >= 0, got {self.max_lag_blocks}")


def _hist() -> HdrHistogram:
    return HdrHistogram(1, HIST_MAX_US, 3)


def record(h: HdrHistogram, value: int) -> bool:
    """`h.record_value(value)`, inlined: the same index arithmetic as hdrh's
    `_counts_index_for` with `int.bit_length` for its leading-zero count, about 4x
    faster (four values per call are recorded on the hot path). Returns False, as
    hdrh does, for a value out of range; tests pin it against hdrh."""
    if value < 0:
        return False
    bucket = (
        (value | h.sub_bucket_mask).bit_length()
        - h.unit_magnitude
        - (h.sub_bucket_half_count_magnitude + 1)
    )
    index = ((bucket + 1) << h.sub_bucket_half_count_magnitude) + (
        (value >> (bucket + h.unit_magnitude)) - h.sub_bucket_half_count
    )
    if index < 0 or index >= h.counts_len:
        return False
    h.counts[index] += 1
    h.total_count += 1
    if value < h.min_value:
        h.min_value = value
    if value > h.max_value:
        h.max_value = value
    return True


def _quantiles(h: HdrHistogram) -> dict[str, float]:
    return {
        "count": h.get_total_count(),
        "p50": h.get_value_at_percentile(50) / 1000,
        "p99": h.get_value_at_percentile(99) / 1000,
        "max": h.get_max_value() / 1000,
    }


@dataclass
class Summary:
    """The worker's counters and HDR histograms (values in µs, shown in ms)."""

    planned: int = 0
    sent: int = 0
    not_sent: int = 0
    late_sends: int = 0
    max_lateness_ns: int = 0
    out_of_range: int = 0
    in_flight: int = 0
    interrupted_by: str | None = None
    # CPU time of the whole process (every thread) from the start of the load to the
    # end of its drain: what the worker's calls cost, free of start-up and of other
    # processes' noise.
    load_cpu_s: float = 0.0
    outcomes: dict[str, int] = field(default_factory=dict)
    lateness_us: HdrHistogram = field(default_factory=_hist)
    by_method: dict[str, HdrHistogram] = field(default_factory=dict)
    by_window: dict[int, HdrHistogram] = field(default_factory=dict)

    @property
    def latency_us(self) -> HdrHistogram:
        """Every call's latency: the sum of the windows' histograms (recording each
        value a third time cost a tenth of a call's CPU)."""
        total = _hist()
        for h in self.by_window.values():
            total.add(h)
        return total

    def _clamped(self, value_ns: int) -> int:
        value = value_ns // 1000
        if value < 1:
            return 1
        if value > HIST_MAX_US:
            # HdrHistogram.record_value returns False, silently, for a value out of
            # range: such a value is clamped to the top and counted, never lost.
            self.out_of_range += 1
            return HIST_MAX_US
        return value

    def record_latency(self, latency_ns: int, method: str = "", window: int = 0) -> None:
        value = self._clamped(latency_ns)
        h = self.by_method.get(method)
        if h is None:
            h = self.by_method[method] = _hist()
        w = self.by_window.get(window)
        if w is None:
            w = self.by_window[window] = _hist()
        # Within the range both always record; a refusal would still be counted.
        if not (record(h, value) & record(w, value)):
            self.out_of_range += 1

    def record_lateness(self, lateness_ns: int) -> None:
        if lateness_ns > LATE_SEND_NS:
            self.late_sends += 1
        if lateness_ns > self.max_lateness_ns:
            self.max_lateness_ns = lateness_ns
        if not record(self.lateness_us, self._clamped(max(lateness_ns, 0))):
            self.out_of_range += 1

    def as_dict(self) -> dict:
        """The summary line; `planned`, `not_sent` and `late_sends` are read by analysis."""
        return {
            "planned": self.planned,
            "sent": self.sent,
            "not_sent": self.not_sent,
            "late_sends": self.late_sends,
            "interrupted_by": self.interrupted_by,
            "max_lateness_ms": self.max_lateness_ns / 1e6,
            "send_lateness_ms": _quantiles(self.lateness_us),
            "latency_out_of_range": self.out_of_range,
            "cpu_s_during_load": round(self.load_cpu_s, 3),
            "cpu_us_per_call": round(self.load_cpu_s * 1e6 / self.sent, 1) if self.sent else None,
            "outcomes": dict(sorted(self.outcomes.items())),
            "latency_ms": _quantiles(self.latency_us),
            "latency_ms_by_method": {m: _quantiles(h) for m, h in sorted(self.by_method.items())},
            f"latency_ms_by_{WINDOW_S}s_window": {
                str(w * WINDOW_S): _quantiles(h) for w, h in sorted(self.by_window.items())
            },
        }


# One encoder for every body: json.dumps with separators builds a new one per call.
_encode_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _encode(calls: Call | list[Call], tag: str) -> tuple[bytes, list[tuple[str, str, list]]]:
    """The request body and its (method, id, params) triples. A batch's first call
    carries the tag itself as its id (the chaos proxy reads the first element's)."""
    if isinstance(calls, Call):
        params = calls.params
        # The tag and method names are plain ASCII (no escaping needed).
        body = (
            f'{{"jsonrpc":"2.0","id":"{tag}","method":"{calls.method}","params":'
            f"{_encode_json(params) if params else '[]'}}}"
        )
        return body.encode(), [(calls.method, tag, params)]
    triples = [(c.method, tag if i == 0 else f"{tag}.{i}", c.params) for i, c in enumerate(calls)]
    body = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for m, i, p in triples]
    return _encode_json(body).encode(), triples


async def run_worker(
    config: WorkerConfig,
    transport: Transport,
    sink: Sink,
    *,
    clock: Clock,
    truth: Truth | None = None,
    summary: Summary | None = None,
) -> Summary:
    """Runs the whole arrival model, waits for every call to end, returns the summary.

    Every call ends within `config.timeout_s` (or the drain), so the worker is bounded
    by the model's duration plus that. With `truth`, answers are checked against it.
    Pass `summary` to watch the counters while the worker runs (the progress line).
    """
    schedule = config.schedule
    summary = summary if summary is not None else Summary()
    mix = RequestMix(config.mix, seed=config.seed, batch=config.batch, fixed=config.fixed)
    prefix = f"bt-{config.worker}-"
    worker = config.worker
    t0 = config.t0_ns
    timeout_s = config.timeout_s
    max_lag = config.max_lag_blocks
    window_ns = WINDOW_S * 1_000_000_000
    outcomes = summary.outcomes
    append = sink.append
    scopes: set[trio.CancelScope] = set()
    drain_deadline = math.inf
    current_time = trio.current_time
    # A transport that enforces deadlines itself (Http1Transport) has a watchdog task.
    watchdog = getattr(transport, "watchdog", None)
    max_in_flight = config.max_in_flight
    request_prefix = b""  # set below when the reactor runs the load

    def end(
        job: tuple,
        t_sent: int,
        t_done: int,
        status: int | None,
        payload: bytes,
        exc: BaseException | None,
        timed_out: str | None = None,
    ) -> None:
        """Judges and records one call that ended: answered (`status`, `payload`), failed
        (`exc`), or timed out (`timed_out`: "deadline", or "drain" when the end of the
        drain cut it off). Both engines end every call here."""
        seq, calls, tag, bytes_out, triples, t_intended = job
        rpc_code = result_block = tag_of_block = None
        bytes_in = 0
        error = None
        if timed_out is not None:
            outcome = "timeout"
            error = DRAIN if timed_out == "drain" else f"no answer within {timeout_s} s"
        elif exc is not None:
            outcome, error = outcome_of_exception(exc), f"{type(exc).__name__}: {exc}"[:200]
        else:
            assert status is not None
            bytes_in = len(payload)
            if isinstance(calls, Call):
                j = judge(
                    calls.method,
                    tag,
                    status,
                    payload,
                    params=calls.params,
                    truth=truth,
                    t_sent_ns=t_sent,
                    t_done_ns=t_done,
                    max_lag_blocks=max_lag,
                )
                if j.outcome == "ok":
                    mix.view.observe(calls.method, j.result)
            else:
                j, each = judge_batch(
                    triples,
                    status,
                    payload,
                    truth=truth,
                    t_sent_ns=t_sent,
                    t_done_ns=t_done,
                    max_lag_blocks=max_lag,
                )
                for (method, _, _), one in zip(triples, each, strict=False):
                    if one.outcome == "ok":
                        mix.view.observe(method, one.result)
            outcome, rpc_code, error, result_block = j.outcome, j.rpc_code, j.error, j.result_block
            tag_of_block = j.block_tag
        summary.in_flight -= 1
        method = calls.method if isinstance(calls, Call) else "batch"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        summary.record_lateness(t_sent - t_intended)
        summary.record_latency(t_done - t_intended, method, (t_intended - t0) // window_ns)
        append(
            (
                worker,
                seq,
                tag,
                "http",
                method,
                1 if isinstance(calls, Call) else len(calls),
                t_intended,
                t_sent,
                t_done,
                outcome,
                status,
                rpc_code,
                error,
                bytes_out,
                bytes_in,
                result_block,
                tag_of_block,
            )
        )

    async def call(seq: int, calls: Call | list[Call], t_intended: int) -> None:
        """One call through `transport.post` (the engine of trio tasks)."""
        tag = f"{prefix}{seq}"
        body, triples = _encode(calls, tag)
        headers = {"content-type": "application/json", "x-battle-tag": tag}
        status = None
        payload = b""
        failure: BaseException | None = None
        timed_out = None
        t_sent = clock.now_ns()
        scope = None
        try:
            if watchdog is not None:
                # The transport enforces the deadline itself (no CancelScope per call).
                deadline = min(current_time() + timeout_s, drain_deadline)
                try:
                    status, payload = await transport.post(body, headers, deadline=deadline)
                except TimeoutError as exc:
                    timed_out = "drain" if "drain" in str(exc) else "deadline"
            else:
                scope = trio.CancelScope(deadline=min(current_time() + timeout_s, drain_deadline))
                scopes.add(scope)
                with scope:
                    status, payload = await transport.post(body, headers)
        except Exception as exc:
            failure = exc
        except BaseException:
            summary.in_flight -= 1  # cancelled: the worker is being stopped, no row
            raise
        finally:
            if scope is not None:
                scopes.discard(scope)
        if scope is not None and scope.cancelled_caught:
            timed_out = "drain" if scope.deadline == drain_deadline else "deadline"
        job = (seq, calls, tag, len(body), triples, t_intended)
        end(job, t_sent, clock.now_ns(), status, payload, failure, timed_out)

    def start(seq: int, t_intended: int) -> tuple[bytes, tuple] | None:
        """A call's request at its intended time, for the reactor (None: not sent)."""
        if summary.in_flight >= max_in_flight:
            summary.not_sent += 1
            return None
        tag = f"{prefix}{seq}"
        calls = mix.next(tag)
        body, triples = _encode(calls, tag)
        summary.in_flight += 1
        summary.sent += 1
        request = b"".join(
            (
                request_prefix,
                b"x-battle-tag: ",
                tag.encode(),
                b"\r\nContent-Length: %d\r\n\r\n" % len(body),
                body,
            )
        )
        return request, (seq, calls, tag, len(body), triples, t_intended)

    def reactor_end(
        job: tuple,
        t_sent: int,
        t_done: int,
        status: int | None,
        payload: bytes,
        exc: BaseException | None,
    ) -> None:
        if isinstance(exc, TimeoutError):
            end(job, t_sent, t_done, None, b"", None, "drain" if str(exc) == DRAIN else "deadline")
        else:
            end(job, t_sent, t_done, status, payload, exc)

    def end_of_load() -> None:
        # The drain: calls still in flight get at most drain_s more.
        nonlocal drain_deadline
        drain_deadline = trio.current_time() + (
            timeout_s if config.drain_s is None else config.drain_s
        )
        for scope in scopes:
            scope.deadline = min(scope.deadline, drain_deadline)
        if watchdog is not None:
            transport.cap_deadlines(drain_deadline)  # type: ignore[attr-defined]

    if (
        isinstance(transport, Http1Transport)
        and clock.timer is not None
        and not isinstance(schedule, ClosedLoop)
    ):
        # The reactor: one task drives every call (see reactor.py); it needs the
        # precise timer's platform and real time, as `clock.timer` says.
        request_prefix = transport.request_prefix + b"content-type: application/json\r\n"
        summary.planned = schedule.count
        times = ((seq, t0 + offset) for seq, offset in enumerate(schedule.offsets_ns()))
        drain_s = timeout_s if config.drain_s is None else config.drain_s
        await clock.sleep_until(t0)
        cpu0 = time.process_time()
        try:
            await run_open_load(
                transport,
                times,
                start,
                reactor_end,
                now_ns=clock.now_ns,
                timeout_ns=round(timeout_s * 1e9),
                drain_ns=round(drain_s * 1e9),
            )
        finally:
            summary.load_cpu_s = time.process_time() - cpu0
        return summary
    await clock.sleep_until(t0)
    cpu0 = time.process_time()
    try:
        async with trio.open_nursery() as guard:
            if watchdog is not None:
                guard.start_soon(watchdog)
            await _run_load(schedule, config, summary, mix, clock, call, prefix, end_of_load)
            guard.cancel_scope.cancel()
    finally:
        summary.load_cpu_s = time.process_time() - cpu0
    return summary


async def _run_load(
    schedule: Schedule | ClosedLoop,
    config: WorkerConfig,
    summary: Summary,
    mix: RequestMix,
    clock: Clock,
    call: Callable,
    prefix: str,
    end_of_load: Callable[[], None],
) -> None:
    t0 = config.t0_ns
    async with trio.open_nursery() as nursery:
        if isinstance(schedule, ClosedLoop):
            await _closed_loop(schedule, config, summary, mix, clock, call, prefix)
        else:
            summary.planned = schedule.count
            max_in_flight = config.max_in_flight
            lanes = _Lanes(nursery, call)
            dispatch = lanes.dispatch
            for seq, offset in enumerate(schedule.offsets_ns()):
                t_intended = t0 + offset
                await clock.sleep_until(t_intended)
                if summary.in_flight >= max_in_flight:
                    # Counted, never silently skipped: analysis judges the run invalid
                    # past a threshold, as k6 does with dropped iterations.
                    summary.not_sent += 1
                    continue
                calls = mix.next(f"{prefix}{seq}")
                summary.in_flight += 1
                summary.sent += 1
                dispatch((seq, calls, t_intended))
            lanes.close()
        end_of_load()


class _Lanes:
    """Long-lived sender tasks, each running one call at a time.

    Handing a call to an idle lane is one `trio.lowlevel.reschedule`; spawning a task
    per call cost several times more (a task, a nursery entry, a context copy) and was
    the largest item of the open model's CPU per call. A new lane is spawned only when
    every lane is busy, so there are as many lanes as calls were ever in flight at once.
    """

    def __init__(self, nursery: trio.Nursery, call: Callable) -> None:
        self._nursery = nursery
        self._call = call
        self._idle: list[trio.lowlevel.Task] = []
        self._closing = False

    def dispatch(self, job: tuple) -> None:
        if self._idle:
            trio.lowlevel.reschedule(self._idle.pop(), outcome.Value(job))
        else:
            self._nursery.start_soon(self._lane, job)

    def close(self) -> None:
        """Idle lanes end now, busy ones after their call."""
        self._closing = True
        for task in self._idle:
            trio.lowlevel.reschedule(task, outcome.Value(None))
        self._idle.clear()

    async def _lane(self, job: tuple | None) -> None:
        task = trio.lowlevel.current_task()
        idle = self._idle

        def abort(_: object) -> trio.lowlevel.Abort:
            idle.remove(task)
            return trio.lowlevel.Abort.SUCCEEDED

        while job is not None:
            await self._call(*job)
            if self._closing:
                return
            # No checkpoint between joining the idle list and parking: nothing can
            # hand this lane a job before it waits for one.
            idle.append(task)
            job = await trio.lowlevel.wait_task_rescheduled(abort)


async def _closed_loop(
    model: ClosedLoop,
    config: WorkerConfig,
    summary: Summary,
    mix: RequestMix,
    clock: Clock,
    call: Callable,
    prefix: str,
) -> None:
    """N clients, each calling, waiting for the answer, thinking, calling again. A
    call's intended time is when its client was ready to send it."""
    end = config.t0_ns + round(model.duration_s * 1e9)
    seq = 0
    await clock.sleep_until(config.t0_ns)

    async def client() -> None:
        nonlocal seq
        while (now := clock.now_ns()) < end:
            n, seq = seq, seq + 1
            summary.planned += 1
            summary.sent += 1
            summary.in_flight += 1
            await call(n, mix.next(f"{prefix}{n}"), now)
            if model.think_s:
                await trio.sleep(model.think_s)

    async with trio.open_nursery() as nursery:
        for _ in range(model.clients):
            nursery.start_soon(client)
