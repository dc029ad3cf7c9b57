"""rate_limit_of: which answers are rate limits and how long they ask us to wait."""

from __future__ import annotations

import json
from email.utils import formatdate

import pytest

from examples.reference_router._policy import UpstreamFailure, UpstreamResponse
from examples.reference_router._ratelimit import RateLimit, RateLimitSettings, rate_limit_of

SETTINGS = RateLimitSettings(default_backoff_s=1.5, max_backoff_s=60.0)


def rpc(code: int, message: str, data: object = None) -> bytes:
    error: dict[str, object] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return json.dumps({"jsonrpc": "2.0", "id": 1, "error": error}).encode()


def response(status: int, body: bytes = b"", retry_after: str | None = None) -> UpstreamResponse:
    return UpstreamResponse(status, "application/json", body, retry_after)


INFURA = rpc(
    -32005,
    "project ID request rate exceeded",
    {"rate": {"allowed_rps": 50, "backoff_seconds": 30, "current_rps": 52.3}},
)
INFURA_ZERO = rpc(-32005, "project ID request rate exceeded", {"rate": {"backoff_seconds": 0}})
CHAINSTACK = rpc(
    -32005, "You've exceeded the RPS limit available on the current plan.", {"try_again_in": "2s"}
)
ALCHEMY = rpc(429, "Your app has exceeded its compute units per second capacity.")

CASES = [
    ("429_with_retry_after_seconds", response(429, b"", "30"), RateLimit(30.0, "Retry-After")),
    ("429_without_hint", response(429, b"error code: 1015"), RateLimit(1.5, "default")),
    ("infura_body_hint", response(429, INFURA), RateLimit(30.0, "data.rate.backoff_seconds")),
    ("infura_zero_means_no_hint", response(429, INFURA_ZERO), RateLimit(1.5, "default")),
    ("chainstack_on_200", response(200, CHAINSTACK), RateLimit(2.0, "data.try_again_in")),
    ("alchemy_code_429", response(429, ALCHEMY), RateLimit(1.5, "default")),
    ("header_wins_over_body", response(429, INFURA, "5"), RateLimit(5.0, "Retry-After")),
    ("capped", response(429, b"", "86400"), RateLimit(60.0, "Retry-After")),
    (
        "quicknode_-32007_on_200",
        response(200, rpc(-32007, "100/second request limit reached - reduce calls per second")),
        RateLimit(1.5, "default"),
    ),
    (
        "quicknode_credits_-32012",
        response(200, rpc(-32012, "credits limited to 6000/sec")),
        RateLimit(1.5, "default"),
    ),
    ("proxyd_-32016", response(429, rpc(-32016, "over rate limit")), RateLimit(1.5, "default")),
    (
        "milliseconds",
        response(200, rpc(-32005, "rate limited", {"try_again_in": "500ms"})),
        RateLimit(0.5, "data.try_again_in"),
    ),
]


@pytest.mark.parametrize(("case", "result", "expected"), CASES, ids=[c[0] for c in CASES])
def test_rate_limits_and_their_back_off(case, result, expected):
    assert rate_limit_of(result, SETTINGS) == expected


def test_retry_after_as_an_http_date_counts_from_now():
    now = 1_700_000_000.0
    limit = rate_limit_of(
        response(429, b"", formatdate(now + 12, usegmt=True)), SETTINGS, now_epoch_s=now
    )
    assert limit == RateLimit(12.0, "Retry-After")


NOT_LIMITS = [
    ("ok", response(200, b'{"jsonrpc":"2.0","id":1,"result":"0x1"}')),
    ("503", response(503, b"", "30")),
    ("range_cap_-32005", response(200, rpc(-32005, "query returned more than 10000 results"))),
    ("revert", response(200, rpc(3, "execution reverted"))),
    ("no_response", UpstreamFailure("conn_error", "refused")),
    # reth's -32007 is a request too big, answered with HTTP 413: not a limit on rate.
    ("reth_too_big_413", response(413, rpc(-32007, "Request is too big"))),
]


@pytest.mark.parametrize(("case", "result"), NOT_LIMITS, ids=[c[0] for c in NOT_LIMITS])
def test_other_answers_are_not_rate_limits(case, result):
    assert rate_limit_of(result, SETTINGS) is None


def test_a_router_that_knows_only_http_429_backs_off_no_limit_inside_a_200():
    only_429 = RateLimitSettings(default_backoff_s=1.5, in_body=False)
    assert rate_limit_of(response(200, CHAINSTACK), only_429) is None
    assert rate_limit_of(response(429, INFURA), only_429) == RateLimit(
        30.0, "data.rate.backoff_seconds"
    )
