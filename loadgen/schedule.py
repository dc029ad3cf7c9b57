"""Arrival models: when each request is meant to be sent. Pure, no I/O.

Open models (`ConstantRate`, `LinearRamp`, `Steps`, `Poisson`, `Bursts`) fix every
intended send time in advance, whatever the responses do, so a slow system cannot slow
the load down and hide its latency (no coordinated omission). `ClosedLoop` is the
other kind: N clients, each sending its next call when the previous one ended (plus a
think time); the worker runs it, since its times depend on the answers.

`Share` splits one open schedule between the worker processes of a run.
`Probes` is the fixed-interval schedule of the WebSocket call probes.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "Bursts",
    "ClosedLoop",
    "ConstantRate",
    "LinearRamp",
    "Poisson",
    "Probes",
    "Schedule",
    "Share",
    "Steps",
    "parse_arrival",
]


class Schedule(Protocol):
    """An open arrival model."""

    @property
    def count(self) -> int:
        """How many calls the schedule plans."""
        ...

    @property
    def duration_s(self) -> float: ...

    def offsets_ns(self) -> Iterator[int]:
        """Intended send times, ns after the start of the load, non-decreasing."""
        ...


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")


@dataclass(frozen=True)
class ConstantRate:
    """`rate` requests per second for `duration_s` seconds, evenly spaced."""

    rate: float
    duration_s: float

    def __post_init__(self) -> None:
        _positive("rate", self.rate)
        _positive("duration_s", self.duration_s)

    @property
    def count(self) -> int:
        return int(self.rate * self.duration_s)

    def offsets_ns(self) -> Iterator[int]:
        interval = 1e9 / self.rate
        for i in range(self.count):
            yield round(i * interval)


@dataclass(frozen=True)
class LinearRamp:
    """The rate goes linearly from `start_rate` to `end_rate` over `duration_s`."""

    start_rate: float
    end_rate: float
    duration_s: float

    def __post_init__(self) -> None:
        if self.start_rate < 0 or self.end_rate < 0:
            raise ValueError(f"ramp rates must be >= 0, got {self.start_rate} and {self.end_rate}")
        _positive("start_rate + end_rate", self.start_rate + self.end_rate)
        _positive("duration_s", self.duration_s)

    @property
    def count(self) -> int:
        return int((self.start_rate + self.end_rate) / 2 * self.duration_s + 1e-9)

    def offsets_ns(self) -> Iterator[int]:
        # Call i is sent when the integral of the rate reaches i:
        # a t + k t^2 / 2 = i, k = (b - a) / T, solved in the form that stays exact
        # when k is 0 (t = 2i / (a + sqrt(a^2 + 2ki))).
        a = self.start_rate
        k = (self.end_rate - a) / self.duration_s
        for i in range(self.count):
            root = math.sqrt(max(a * a + 2 * k * i, 0.0))
            yield 0 if i == 0 else round(2e9 * i / (a + root))


@dataclass(frozen=True)
class Steps:
    """Constant rates one after another: `((rate, seconds), ...)`."""

    steps: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        if not self.steps:
            raise ValueError("steps must name at least one (rate, seconds) step")
        for i, (rate, seconds) in enumerate(self.steps):
            if rate < 0:
                raise ValueError(f"steps[{i}].rate must be >= 0, got {rate}")
            _positive(f"steps[{i}].seconds", seconds)

    @property
    def duration_s(self) -> float:
        return sum(s for _, s in self.steps)

    @property
    def count(self) -> int:
        return sum(int(r * s) for r, s in self.steps)

    def offsets_ns(self) -> Iterator[int]:
        start = 0.0
        for rate, seconds in self.steps:
            if rate > 0:
                base = round(start * 1e9)
                for offset in ConstantRate(rate, seconds).offsets_ns():
                    yield base + offset
            start += seconds


@dataclass(frozen=True)
class Bursts:
    """`base_rate`, except `burst_rate` for the first `burst_s` of every `every_s`."""

    base_rate: float
    burst_rate: float
    every_s: float
    burst_s: float
    duration_s: float

    def __post_init__(self) -> None:
        _positive("burst_rate", self.burst_rate)
        if self.base_rate < 0:
            raise ValueError(f"base_rate must be >= 0, got {self.base_rate}")
        _positive("every_s", self.every_s)
        _positive("duration_s", self.duration_s)
        if not 0 < self.burst_s < self.every_s:
            raise ValueError(f"burst_s must be in (0, every_s), got {self.burst_s}")

    def _steps(self) -> Steps:
        steps: list[tuple[float, float]] = []
        t = 0.0
        while t < self.duration_s - 1e-12:
            for rate, seconds in (
                (self.burst_rate, self.burst_s),
                (self.base_rate, self.every_s - self.burst_s),
            ):
                seconds = min(seconds, self.duration_s - t)
                if seconds > 1e-12:
                    steps.append((rate, seconds))
                    t += seconds
        return Steps(tuple(steps))

    @property
    def count(self) -> int:
        return self._steps().count

    def offsets_ns(self) -> Iterator[int]:
        return self._steps().offsets_ns()


@dataclass(frozen=True)
class Poisson:
    """Arrivals of a Poisson process of `rate` per second, reproducible from `seed`."""

    rate: float
    duration_s: float
    seed: int = 0

    def __post_init__(self) -> None:
        _positive("rate", self.rate)
        _positive("duration_s", self.duration_s)

    @property
    def count(self) -> int:
        return sum(1 for _ in self.offsets_ns())

    def offsets_ns(self) -> Iterator[int]:
        rng = random.Random(self.seed)
        end = self.duration_s * 1e9
        t = 0.0
        while True:
            t += rng.expovariate(self.rate) * 1e9
            if t >= end:
                return
            yield round(t)


@dataclass(frozen=True)
class Share:
    """Worker `index` of `of` sends every `of`-th call of `schedule`, so N worker
    processes together send the whole schedule, interleaved, each at 1/N the rate."""

    schedule: Schedule
    index: int
    of: int

    def __post_init__(self) -> None:
        if self.of < 1:
            raise ValueError(f"workers must be >= 1, got {self.of}")
        if not 0 <= self.index < self.of:
            raise ValueError(f"worker must be in [0, {self.of}), got {self.index}")

    @property
    def duration_s(self) -> float:
        return self.schedule.duration_s

    @property
    def count(self) -> int:
        return len(range(self.index, self.schedule.count, self.of))

    def offsets_ns(self) -> Iterator[int]:
        for i, offset in enumerate(self.schedule.offsets_ns()):
            if i % self.of == self.index:
                yield offset


@dataclass(frozen=True)
class ClosedLoop:
    """`clients` concurrent clients, each sending its next call `think_s` after the
    previous one ended, for `duration_s`. Latency then equals service time: a closed
    model measures throughput, not what users waiting on a schedule would see."""

    clients: int
    duration_s: float
    think_s: float = 0.0

    def __post_init__(self) -> None:
        if self.clients < 1:
            raise ValueError(f"clients must be >= 1, got {self.clients}")
        _positive("duration_s", self.duration_s)
        if self.think_s < 0:
            raise ValueError(f"think_s must be >= 0, got {self.think_s}")


@dataclass(frozen=True)
class Probes:
    """Probe `k` (k >= 1) is meant to be sent at `t0_ns + k * interval_ns`, whatever
    the answers do: one probe is in flight at a time, and one that cannot go on time
    because the previous is still waiting goes as soon as that one ends, its latency
    counted from its own intended time (a stall shows in every probe it delayed, not
    in one). Slots that pass while there is no socket at all are skipped (`next`)."""

    t0_ns: int
    interval_ns: int

    def __post_init__(self) -> None:
        _positive("interval_ns", self.interval_ns)

    def at(self, k: int) -> int:
        """The intended send time of probe `k`."""
        return self.t0_ns + k * self.interval_ns

    def next(self, t_ns: int, after: int = 0) -> int:
        """The first probe after probe `after` that is not due before `t_ns` yet: the
        next one to send on a socket opened at `t_ns`."""
        due = -(-(t_ns - self.t0_ns) // self.interval_ns)  # ceil
        return max(due, after + 1, 1)


def _floats(spec: str, text: str, n: int) -> list[float]:
    parts = text.split(",")
    if len(parts) != n:
        raise ValueError(f"arrival {spec!r} needs {n} comma-separated numbers")
    try:
        return [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"arrival {spec!r} has a value that is not a number") from None


def parse_arrival(spec: str, duration_s: float, *, seed: int = 0) -> Schedule | ClosedLoop:
    """Reads an arrival model from the command line.

    `constant:RATE`, `ramp:FROM,TO`, `steps:RATE@SECONDS,RATE@SECONDS...`,
    `poisson:RATE`, `bursts:BASE,PEAK,EVERY_S,BURST_S`, `closed:CLIENTS[,THINK_MS]`.
    """
    kind, _, args = spec.partition(":")
    if kind == "constant":
        return ConstantRate(*_floats(spec, args, 1), duration_s)
    if kind == "ramp":
        return LinearRamp(*_floats(spec, args, 2), duration_s)
    if kind == "poisson":
        return Poisson(*_floats(spec, args, 1), duration_s, seed)
    if kind == "bursts":
        base, peak, every, burst = _floats(spec, args, 4)
        return Bursts(base, peak, every, burst, duration_s)
    if kind == "steps":
        steps = []
        for part in args.split(","):
            rate, sep, seconds = part.partition("@")
            steps.append(tuple(_floats(spec, f"{rate},{seconds}", 2)) if sep else ())
            if not sep:
                raise ValueError(f"arrival {spec!r}: each step is RATE@SECONDS")
        return Steps(tuple(steps))  # type: ignore[arg-type]
    if kind == "closed":
        values = args.split(",")
        if not 1 <= len(values) <= 2 or not values[0].isdigit():
            raise ValueError(f"arrival {spec!r} is closed:CLIENTS[,THINK_MS]")
        think = _floats(spec, values[1], 1)[0] / 1000 if len(values) == 2 else 0.0
        return ClosedLoop(int(values[0]), duration_s, think)
    raise ValueError(
        f"arrival must be one of constant, ramp, steps, poisson, bursts, closed; got {spec!r}"
    )
