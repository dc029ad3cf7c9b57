"""A circuit breaker per upstream: a pure state machine on an injected clock, no I/O.

States (as Prometheus exports them): ``closed`` (0) lets everything through and counts
consecutive failures; ``open`` (2) lets nothing through until its recovery time is over;
``half_open`` (1) lets exactly one probe through at a time and closes after
``success_threshold`` successful probes. A failed probe reopens it for a longer time
(``backoff_factor``, capped at ``max_recovery_s``), so a provider that keeps failing is
probed less and less often; closing resets the recovery time.

Times are seconds on any monotonic clock (``trio.current_time()`` in the router), passed
in by the caller, so tests drive the machine with plain numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

__all__ = ["BREAKER_STATE_VALUES", "BreakerSettings", "BreakerState", "CircuitBreaker"]

type BreakerState = Literal["closed", "half_open", "open"]
BREAKER_STATE_VALUES: dict[str, int] = {"closed": 0, "half_open": 1, "open": 2}


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """When a breaker opens and how it recovers.

    The defaults follow common router practice (resilience4j, eRPC): a handful of
    consecutive failures, fewer timeouts (a hung provider costs a whole attempt timeout
    per request, so it should be cut off sooner), a recovery time of seconds.
    """

    failure_threshold: int = 5
    timeout_threshold: int = 2
    recovery_s: float = 2.0
    success_threshold: int = 2
    backoff_factor: float = 2.0
    max_recovery_s: float = 30.0

    def __post_init__(self) -> None:
        for name in ("failure_threshold", "timeout_threshold", "success_threshold"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        for name in ("recovery_s", "max_recovery_s"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be > 0, got {value!r}")
        if not self.backoff_factor >= 1:
            raise ValueError(f"backoff_factor must be >= 1, got {self.backoff_factor!r}")
        if self.max_recovery_s < self.recovery_s:
            raise ValueError(
                f"max_recovery_s must be >= recovery_s ({self.recovery_s}),"
                f" got {self.max_recovery_s}"
            )


class CircuitBreaker:
    """One upstream's breaker. Call :meth:`allow` before an attempt and exactly one of
    :meth:`record_success`, :meth:`record_failure` or :meth:`release` after it."""

    __slots__ = (
        "_failures",
        "_open_until",
        "_probing",
        "_recovery_s",
        "_settings",
        "_successes",
        "_timeouts",
        "opens",
        "state",
    )

    def __init__(self, settings: BreakerSettings | None = None) -> None:
        self._settings = settings or BreakerSettings()
        self.state: BreakerState = "closed"
        self._failures = 0  # consecutive failures of any kind, timeouts included
        self._timeouts = 0  # timeouts since the last success
        self._successes = 0  # successful probes while half-open
        self._probing = False  # a half-open probe is in flight
        self._recovery_s = self._settings.recovery_s
        self._open_until = 0.0
        self.opens = 0  # times the breaker went to open, for metrics

    def available(self, now: float) -> bool:
        """Whether :meth:`allow` would let an attempt through now (does not claim the probe)."""
        if self.state == "closed":
            return True
        if self.state == "open":
            return now >= self._open_until
        return not self._probing

    def allow(self, now: float) -> bool:
        """Whether an attempt may go to this upstream now; claims the probe when half-open."""
        if self.state == "closed":
            return True
        if self.state == "open":
            if now < self._open_until:
                return False
            self.state = "half_open"
            self._successes = 0
        if self._probing:
            return False
        self._probing = True
        return True

    def record_success(self, now: float) -> None:
        """The attempt got a useful answer (including a non-retriable error)."""
        self._failures = self._timeouts = 0
        if self.state == "half_open":
            self._probing = False
            self._successes += 1
            if self._successes >= self._settings.success_threshold:
                self.state = "closed"
                self._recovery_s = self._settings.recovery_s

    def record_failure(self, now: float, *, timeout: bool = False) -> None:
        """The attempt failed in a way that says the upstream is unwell."""
        settings = self._settings
        if self.state == "half_open":
            self._probing = False
            longer = self._recovery_s * settings.backoff_factor
            self._recovery_s = min(longer, settings.max_recovery_s)
            self._open(now)
            return
        if self.state == "open":
            return  # a straggler that started before the breaker opened
        self._failures += 1
        if timeout:
            self._timeouts += 1
        if (
            self._failures >= settings.failure_threshold
            or self._timeouts >= settings.timeout_threshold
        ):
            self._open(now)

    def release(self) -> None:
        """The attempt says nothing about health (cancelled, rate-limited): free the probe."""
        self._probing = False

    def retry_at(self) -> float:
        """When an open breaker will let a probe through (meaningful only when open)."""
        return self._open_until

    def _open(self, now: float) -> None:
        self.state = "open"
        self._open_until = now + self._recovery_s
        self._failures = self._timeouts = self._successes = 0
        self.opens += 1
