"""One load worker: arrival schedule → request mix → timed call → transport → sample.

Latency is measured from the intended send time (coordinated-omission-correct) and
service time from the actual send; both are recorded for every call.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import trio
from hdrh.histogram import HdrHistogram

from .mix import RequestMix
from .schedule import ConstantRate
from .transport import Transport, outcome_of_exception
from .validate import judge

__all__ = ["Clock", "Summary", "WorkerConfig", "run_worker"]

# Latencies are kept in microseconds up to one hour, 3 significant digits.
HIST_MAX_US = 3_600_000_000
# A send later than this after its intended time counts as late.
LATE_SEND_NS = 1_000_000


class Sink(Protocol):
    def append(self, row: tuple) -> None: ...


class Clock:
    """Epoch nanoseconds from trio's clock, anchored to the wall clock once.

    Using trio's clock for every timestamp keeps one monotonic source per process and
    lets tests run a worker on trio's MockClock with exact times.
    """

    def __init__(self, wall_ns: int) -> None:
        self._wall0 = wall_ns
        self._mono0 = trio.current_time()

    def now_ns(self) -> int:
        return self._wall0 + round((trio.current_time() - self._mono0) * 1e9)

    def deadline(self, t_ns: int) -> float:
        """The trio-clock deadline of epoch time `t_ns`."""
        return self._mono0 + (t_ns - self._wall0) / 1e9


@dataclass(frozen=True)
class WorkerConfig:
    worker: int
    t0_ns: int
    schedule: ConstantRate
    mix: Mapping[str, float]
    seed: int = 0
    timeout_s: float = 5.0
    max_in_flight: int = 1000

    def __post_init__(self) -> None:
        if self.worker < 0:
            raise ValueError(f"worker must be >= 0, got {self.worker}")
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")
        if self.max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {self.max_in_flight}")


@dataclass
class Summary:
    planned: int = 0
    sent: int = 0
    not_sent: int = 0
    late_sends: int = 0
    max_lateness_ns: int = 0
    out_of_range: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    latency_us: HdrHistogram = field(default_factory=lambda: HdrHistogram(1, HIST_MAX_US, 3))

    def record_latency(self, latency_ns: int) -> None:
        value = max(1, latency_ns // 1000)
        # HdrHistogram.record_value returns False, silently, for a value out of range.
        if not self.latency_us.record_value(min(value, HIST_MAX_US)) or value > HIST_MAX_US:
            self.out_of_range += 1

    def as_dict(self) -> dict:
        h = self.latency_us
        return {
            "planned": self.planned,
            "sent": self.sent,
            "not_sent": self.not_sent,
            "late_sends": self.late_sends,
            "max_lateness_ms": self.max_lateness_ns / 1e6,
            "latency_out_of_range": self.out_of_range,
            "outcomes": dict(sorted(self.outcomes.items())),
            "latency_ms": {
                "p50": h.get_value_at_percentile(50) / 1000,
                "p99": h.get_value_at_percentile(99) / 1000,
                "max": h.get_max_value() / 1000,
            },
        }


async def run_worker(
    config: WorkerConfig, transport: Transport, sink: Sink, *, clock: Clock
) -> Summary:
    """Sends the whole schedule, waits for every call to end, and returns the summary.

    Every call ends by itself within `config.timeout_s`, so the worker is bounded by
    the schedule's duration plus that timeout.
    """
    summary = Summary(planned=config.schedule.count)
    mix = RequestMix(config.mix, seed=config.seed)
    in_flight = 0
    prefix = f"bt-{config.worker}-"

    async def call(seq: int, method: str, params: list, t_intended: int) -> None:
        nonlocal in_flight
        tag = f"{prefix}{seq}"
        body = json.dumps(
            {"jsonrpc": "2.0", "id": tag, "method": method, "params": params},
            separators=(",", ":"),
        ).encode()
        headers = {"content-type": "application/json", "x-battle-tag": tag}
        status = rpc_code = result_block = None
        bytes_in = 0
        error = None
        t_sent = clock.now_ns()
        try:
            with trio.fail_after(config.timeout_s):
                status, payload = await transport.post(body, headers)
        except trio.TooSlowError:
            outcome, error = "timeout", f"no answer within {config.timeout_s} s"
        except Exception as exc:
            outcome, error = outcome_of_exception(exc), f"{type(exc).__name__}: {exc}"[:200]
        else:
            j = judge(method, tag, status, payload)
            outcome, rpc_code, error, result_block = j.outcome, j.rpc_code, j.error, j.result_block
            bytes_in = len(payload)
        finally:
            in_flight -= 1
        t_done = clock.now_ns()
        lateness = t_sent - t_intended
        if lateness > LATE_SEND_NS:
            summary.late_sends += 1
        summary.max_lateness_ns = max(summary.max_lateness_ns, lateness)
        summary.outcomes[outcome] = summary.outcomes.get(outcome, 0) + 1
        summary.record_latency(t_done - t_intended)
        sink.append(
            (
                config.worker,
                seq,
                tag,
                "http",
                method,
                1,
                t_intended,
                t_sent,
                t_done,
                outcome,
                status,
                rpc_code,
                error,
                len(body),
                bytes_in,
                result_block,
            )
        )

    async with trio.open_nursery() as nursery:
        for seq, offset in enumerate(config.schedule.offsets_ns()):
            t_intended = config.t0_ns + offset
            await trio.sleep_until(clock.deadline(t_intended))
            if in_flight >= config.max_in_flight:
                # Counted, never silently skipped: analysis judges the run invalid past
                # a threshold, as k6 does with dropped iterations.
                summary.not_sent += 1
                continue
            c = mix.next()
            in_flight += 1
            summary.sent += 1
            nursery.start_soon(call, seq, c.method, c.params, t_intended)
    return summary
