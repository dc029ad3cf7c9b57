"""Native provider behaviours: latency, errors, head lag, rate limits, pruning, forks.

Each provider of a fleet gets its own :class:`Behaviour` (a frozen spec, parsed from a
JSON object by :func:`parse_behaviour`) and, at run time, one :class:`BehaviourState`
holding its seeded random streams and rate-limit bucket. Nothing here does I/O or reads
the clock: callers pass ``now_ns``, so every sequence of latencies and errors is a pure
function of (seed, order of calls, their times).

Spec (every key optional)::

    {"seed": 7,
     "latency": {"dist": "lognormal", "median_ms": 20, "sigma": 0.5},
     "error_rate": 0.05, "error": "geth_header_not_found",
     "head_lag": 2,
     "rate_limit": {"rps": 50, "burst": 50, "mode": "http"},
     "unsupported": ["eth_getLogs"],
     "archive_depth": 128,
     "fork": {"start": 1200, "length": 3},
     "max_logs_range": 10000}
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

from providers.errors import PRESETS, ErrorShape

__all__ = [
    "LATENCY_KINDS",
    "Behaviour",
    "BehaviourState",
    "Fork",
    "Latency",
    "RateLimit",
    "parse_behaviour",
]

LATENCY_KINDS = ("fixed", "uniform", "normal", "lognormal")
#: Infura's eth_getLogs range cap (provider-errors.json: infura_getlogs_range_limit).
DEFAULT_MAX_LOGS_RANGE = 10_000


@dataclass(frozen=True)
class Latency:
    """Added before each response. ``fixed``: ``ms``; ``uniform``: ``low_ms``..``high_ms``;
    ``normal``: ``mean_ms``, ``stdev_ms`` (clipped at 0); ``lognormal``: ``median_ms``,
    ``sigma`` (of the underlying normal; a heavy right tail like real providers')."""

    dist: str
    a: float  # ms, low_ms, mean_ms or median_ms
    b: float = 0.0  # high_ms, stdev_ms or sigma

    def sample_ms(self, rng: random.Random) -> float:
        if self.dist == "fixed":
            return self.a
        if self.dist == "uniform":
            return rng.uniform(self.a, self.b)
        if self.dist == "normal":
            return max(0.0, rng.gauss(self.a, self.b))
        return self.a * math.exp(rng.gauss(0.0, self.b))


@dataclass(frozen=True)
class RateLimit:
    """A token bucket of ``rps`` tokens per second holding at most ``burst``.

    ``mode`` ``http``: HTTP 429 with ``Retry-After`` and Infura's -32005 body; ``rpc``:
    HTTP 200 with the -32005 error object (per call of a batch), as over WebSocket.
    """

    rps: float
    burst: float
    mode: str = "http"
    retry_after_s: int = 1


@dataclass(frozen=True)
class Fork:
    """The provider follows another branch for blocks ``start .. start+length-1``.

    While its head is inside that window its blocks there have other hashes (and
    transactions); once its head reaches ``start + length`` it reorgs back to the
    canonical chain. With ``every`` > 0 the window repeats every ``every`` blocks.
    """

    start: int
    length: int
    every: int = 0

    def window(self, head: int) -> tuple[int, int] | None:
        """The fork window ``[first, last]`` the provider is on at ``head``, else None."""
        start = self.start
        if self.every and head >= start:
            start += (head - start) // self.every * self.every
        if start <= head < start + self.length:
            return start, head
        return None


@dataclass(frozen=True)
class Behaviour:
    seed: int = 0
    latency: Latency | None = None
    error_rate: float = 0.0
    error: ErrorShape = field(default_factory=lambda: PRESETS["geth_request_timed_out"])
    head_lag: int = 0
    rate_limit: RateLimit | None = None
    unsupported: frozenset[str] = frozenset()
    archive_depth: int | None = None
    fork: Fork | None = None
    max_logs_range: int = DEFAULT_MAX_LOGS_RANGE


# ------------------------------------------------------------------ parsing


def _num(spec: dict[str, Any], key: str, where: str, *, minimum: float = 0.0) -> float:
    value = spec.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where}.{key} must be a number, got {value!r}")
    if value < minimum:
        raise ValueError(f"{where}.{key} must be >= {minimum:g}, got {value!r}")
    return float(value)


def _int(spec: dict[str, Any], key: str, where: str, *, minimum: int = 0) -> int:
    value = spec.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{where}.{key} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{where}.{key} must be >= {minimum}, got {value}")
    return value


def _known(spec: dict[str, Any], keys: set[str], where: str) -> None:
    if not isinstance(spec, dict):
        raise ValueError(f"{where} must be an object, got {spec!r}")
    extra = sorted(set(spec) - keys)
    if extra:
        raise ValueError(
            f"{where}.{extra[0]} is not a known key (known: {', '.join(sorted(keys))})"
        )


def _parse_latency(spec: Any, where: str) -> Latency:
    _known(
        spec,
        {"dist", "ms", "low_ms", "high_ms", "mean_ms", "stdev_ms", "median_ms", "sigma"},
        where,
    )
    dist = spec.get("dist")
    if dist not in LATENCY_KINDS:
        raise ValueError(f"{where}.dist must be one of {', '.join(LATENCY_KINDS)}, got {dist!r}")
    if dist == "fixed":
        return Latency(dist, _num(spec, "ms", where))
    if dist == "uniform":
        low, high = _num(spec, "low_ms", where), _num(spec, "high_ms", where)
        if high < low:
            raise ValueError(f"{where}.high_ms must be >= low_ms ({low:g}), got {high:g}")
        return Latency(dist, low, high)
    if dist == "normal":
        return Latency(dist, _num(spec, "mean_ms", where), _num(spec, "stdev_ms", where))
    return Latency(dist, _num(spec, "median_ms", where), _num(spec, "sigma", where))


def _parse_error(spec: Any, where: str) -> ErrorShape:
    if isinstance(spec, str):
        if spec not in PRESETS:
            raise ValueError(
                f"{where} must be a preset ({', '.join(sorted(PRESETS))}), got {spec!r}"
            )
        return PRESETS[spec]
    _known(spec, {"code", "message", "data", "http_status"}, where)
    code = _int(spec, "code", where, minimum=-(2**31))
    message = spec.get("message")
    if not isinstance(message, str):
        raise ValueError(f"{where}.message must be a string, got {message!r}")
    status = _int(spec, "http_status", where, minimum=200) if "http_status" in spec else 200
    return ErrorShape(code, message, spec.get("data"), status)


def parse_behaviour(spec: Any, where: str = "behaviour") -> Behaviour:
    """A :class:`Behaviour` from its JSON form (module doc).

    Raises:
        ValueError: naming the bad field, e.g. ``behaviour.error_rate must be <= 1, got 2``.
    """
    if spec is None:
        return Behaviour()
    _known(
        spec,
        {"seed", "latency", "error_rate", "error", "head_lag", "rate_limit", "unsupported",
         "archive_depth", "fork", "max_logs_range"},
        where,
    )  # fmt: skip
    kw: dict[str, Any] = {}
    if "seed" in spec:
        kw["seed"] = _int(spec, "seed", where, minimum=-(2**63))
    if "latency" in spec:
        kw["latency"] = _parse_latency(spec["latency"], f"{where}.latency")
    if "error_rate" in spec:
        rate = _num(spec, "error_rate", where)
        if rate > 1:
            raise ValueError(f"{where}.error_rate must be <= 1, got {rate:g}")
        kw["error_rate"] = rate
    if "error" in spec:
        kw["error"] = _parse_error(spec["error"], f"{where}.error")
    if "head_lag" in spec:
        kw["head_lag"] = _int(spec, "head_lag", where)
    if "rate_limit" in spec:
        rl, w = spec["rate_limit"], f"{where}.rate_limit"
        _known(rl, {"rps", "burst", "mode", "retry_after_s"}, w)
        rps = _num(rl, "rps", w)
        if rps <= 0:
            raise ValueError(f"{w}.rps must be > 0, got {rps:g}")
        burst = _num(rl, "burst", w, minimum=1) if "burst" in rl else max(rps, 1.0)
        mode = rl.get("mode", "http")
        if mode not in ("http", "rpc"):
            raise ValueError(f"{w}.mode must be 'http' or 'rpc', got {mode!r}")
        retry = _int(rl, "retry_after_s", w) if "retry_after_s" in rl else 1
        kw["rate_limit"] = RateLimit(rps, burst, mode, retry)
    if "unsupported" in spec:
        names = spec["unsupported"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"{where}.unsupported must be a list of method names, got {names!r}")
        kw["unsupported"] = frozenset(names)
    if "archive_depth" in spec:
        kw["archive_depth"] = _int(spec, "archive_depth", where)
    if "fork" in spec:
        f, w = spec["fork"], f"{where}.fork"
        _known(f, {"start", "length", "every"}, w)
        fork = Fork(
            _int(f, "start", w, minimum=1),
            _int(f, "length", w, minimum=1),
            _int(f, "every", w) if "every" in f else 0,
        )
        if fork.every and fork.every <= fork.length:
            raise ValueError(f"{w}.every must be > length ({fork.length}), got {fork.every}")
        kw["fork"] = fork
    if "max_logs_range" in spec:
        kw["max_logs_range"] = _int(spec, "max_logs_range", where, minimum=1)
    return Behaviour(**kw)


# ------------------------------------------------------------------ run-time state


class BehaviourState:
    """The mutable side of a :class:`Behaviour`: seeded streams and the token bucket.

    Latencies and errors draw from separate ``random.Random`` streams, so switching one
    on does not shift the other's sequence.
    """

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self._latency_rng = random.Random(f"{behaviour.seed}:latency")
        self._error_rng = random.Random(f"{behaviour.seed}:error")
        self._tokens = behaviour.rate_limit.burst if behaviour.rate_limit else 0.0
        self._refilled_ns: int | None = None

    def delay_ns(self) -> int:
        """The latency to add to the next response, in ns (0 without a latency spec)."""
        lat = self.behaviour.latency
        if lat is None:
            return 0
        return int(lat.sample_ms(self._latency_rng) * 1_000_000)

    def injected_error(self) -> ErrorShape | None:
        """The error to answer the next call with, drawn at ``error_rate``; else None."""
        rate = self.behaviour.error_rate
        if rate <= 0.0:
            return None
        return self.behaviour.error if self._error_rng.random() < rate else None

    def admit(self, now_ns: int) -> bool:
        """Take one token from the rate-limit bucket; False when the call is over the limit."""
        rl = self.behaviour.rate_limit
        if rl is None:
            return True
        if self._refilled_ns is not None and now_ns > self._refilled_ns:
            self._tokens = min(rl.burst, self._tokens + (now_ns - self._refilled_ns) * rl.rps / 1e9)
        if self._refilled_ns is None or now_ns > self._refilled_ns:
            self._refilled_ns = now_ns
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
