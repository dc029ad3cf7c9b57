"""Arrival schedules: when each request is meant to be sent. Pure, no I/O."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["ConstantRate"]


@dataclass(frozen=True)
class ConstantRate:
    """An open model: `rate` requests per second for `duration_s` seconds.

    Sends follow this schedule whatever the responses do, so a slow system cannot slow
    the load down and hide its latency (no coordinated omission).
    """

    rate: float
    duration_s: float

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise ValueError(f"rate must be > 0, got {self.rate}")
        if not self.duration_s > 0:
            raise ValueError(f"duration_s must be > 0, got {self.duration_s}")

    @property
    def count(self) -> int:
        return int(self.rate * self.duration_s)

    def offsets_ns(self) -> Iterator[int]:
        """Intended send times, in nanoseconds after the start of the load."""
        interval = 1e9 / self.rate
        for i in range(self.count):
            yield round(i * interval)
