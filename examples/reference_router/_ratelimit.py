"""Recognising a provider's rate limit and how long it asks us to back off. Pure, no I/O.

A rate limit is HTTP 429, or a JSON-RPC error whose message speaks of a rate or request
limit with one of the codes providers use for it: -32005 ("limit exceeded", EIP-1474;
Infura, Chainstack), 429 (Alchemy), -32007 and -32012 (QuickNode's requests and
credits), -32016 (proxyd). The back-off comes from, in
order: the ``Retry-After`` header (seconds, or an HTTP date), Infura's
``error.data.rate.backoff_seconds``, Chainstack's ``error.data.try_again_in``; else a
default. See ``chaosproxy/provider-errors.md``: hints are rare and mostly in the body,
and Infura often sends ``backoff_seconds: 0``, which we treat as "no hint".
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from ._policy import AttemptResult, UpstreamResponse

__all__ = ["RateLimit", "RateLimitSettings", "rate_limit_of"]

# -32005 also means "query returned more than 10000 results" (a range cap), which is not
# a rate limit: only messages with one of these words demote the provider.
_RATE_WORDS = (
    "rate",
    "limit exceeded",
    "limit reached",
    "too many",
    "exceeded",
    "capacity",
    "throughput",
    "credits",
)
_RATE_CODES = frozenset({-32005, 429, -32007, -32012, -32016})
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|sec|secs|seconds)?\s*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class RateLimitSettings:
    """``default_backoff_s`` when the provider gives no hint; hints are capped at
    ``max_backoff_s`` so a silly header cannot bench a provider for a day. ``in_body``
    off is a router that knows only HTTP 429: a limit inside a JSON-RPC error of an HTTP
    200 is still failed over, but the provider is not backed off (the switch for
    rate_limited_provider's in-body shapes)."""

    default_backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    in_body: bool = True


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A recognised rate limit: back off for ``backoff_s``; ``source`` names the hint."""

    backoff_s: float
    source: str


def _seconds(value: object) -> float | None:
    """A positive duration from a number or a string such as ``"2"``, ``"1.5s"``, ``"500ms"``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1))
        if (match.group(2) or "").lower() == "ms":
            seconds /= 1000
    else:
        return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None


def _retry_after_seconds(header: str, now_epoch_s: float) -> float | None:
    seconds = _seconds(header)
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(header)  # RFC 9110 10.2.3: delay-seconds or HTTP-date
    except (TypeError, ValueError):
        return None
    delta = when.timestamp() - now_epoch_s
    return delta if delta > 0 else None


def _rate_limit_errors(body: bytes) -> list[dict[str, Any]]:
    if b'"error"' not in body:
        return []
    try:
        payload = json.loads(body)
    except ValueError:
        return []
    out = []
    for element in payload if isinstance(payload, list) else [payload]:
        error = element.get("error") if isinstance(element, dict) else None
        if not isinstance(error, dict):
            continue
        code, message = error.get("code"), str(error.get("message", "")).lower()
        if code in _RATE_CODES and any(word in message for word in _RATE_WORDS):
            out.append(error)
    return out


def _body_hint(error: dict[str, Any]) -> tuple[float, str] | None:
    data = error.get("data")
    if not isinstance(data, dict):
        return None
    rate = data.get("rate")
    if isinstance(rate, dict) and (s := _seconds(rate.get("backoff_seconds"))) is not None:
        return s, "data.rate.backoff_seconds"
    if (s := _seconds(data.get("try_again_in"))) is not None:
        return s, "data.try_again_in"
    return None


def rate_limit_of(
    result: AttemptResult, settings: RateLimitSettings, *, now_epoch_s: float = 0.0
) -> RateLimit | None:
    """The rate limit this attempt ran into, or None.

    Args:
        result: the attempt's outcome.
        settings: default and cap of the back-off.
        now_epoch_s: the wall clock, to read a ``Retry-After`` given as an HTTP date.
    """
    if not isinstance(result, UpstreamResponse):
        return None
    in_body = result.status == 429 or (settings.in_body and result.status == 200)
    errors = _rate_limit_errors(result.body) if in_body else []
    if result.status != 429 and not errors:
        return None
    hint: tuple[float, str] | None = None
    if result.retry_after is not None:
        seconds = _retry_after_seconds(result.retry_after, now_epoch_s)
        if seconds is not None:
            hint = (seconds, "Retry-After")
    for error in errors:
        if hint is None:
            hint = _body_hint(error)
    if hint is None:
        return RateLimit(settings.default_backoff_s, "default")
    return RateLimit(min(hint[0], settings.max_backoff_s), hint[1])
