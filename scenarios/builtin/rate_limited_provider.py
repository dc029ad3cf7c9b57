"""rate_limited_provider: rate limits in every shape providers send them.

Three of four providers rate-limit, one at a time, six answer shapes in all (the presets
replay real providers' answers; chaosproxy/provider-errors.md), in this order:

A answers HTTP 429 with a text body (Cloudflare's 1015) and a Retry-After; B HTTP 429
with -32005 (Infura) and a Retry-After; C HTTP 429 with code 429 (Alchemy), no
Retry-After, from a per-minute bucket of compute units; A HTTP 200 with -32005 and its
back-off in the body (Infura's `data.rate.backoff_seconds`); B HTTP 200 with -32007
(QuickNode), no back-off; C HTTP 200 with code 429 (Alchemy's answer inside a batch), no
back-off.

One provider limits at a time, so that a router retrying a call once finds a provider
that answers (how many providers it tries is its policy; the invariant judges only what
one more attempt would have rescued). D never limits. Every correct router, whatever
its policy, answers the client from another provider rather than passing any of these
on (`no_unrescued_failure`: an HTTP 200 carrying a limit error is a failed call), and
honours a Retry-After: no call goes to the provider inside it (`no_retry_after_breach`),
nor hammers it (`no_retry_storm`). An answer that asks no back-off in a header owes none
unless the user declares one (`expect.rate_limit_backoff_s`, judged by
`rate_limit_backoff`). The report's table "Rate limits: back-off per answer shape"
gives, per shape, the attempts inside its back-off and how long the router stayed away.
Once the limits are lifted a router that used a provider before uses it again
(`no_abandoned_provider`, `come_back`).
"""

from __future__ import annotations

from typing import Any

from ..api import Fault, HttpLoad, Scenario, mock, reference_router
from . import builtin
from ._slos import batch_mix, client_timeout_s, invariants, policy

# (rate, load seconds, first window from, each window lasts): the shapes' windows follow
# one another. The runner lengthens the load to expect.come_back_s after the last one.
FAST = (40.0, 22.0, 2.0, 3.0)
FULL = (100.0, 90.0, 10.0, 10.0)
RETRY_AFTER_S = 3
BACKOFF = {"Retry-After": str(RETRY_AFTER_S)}
PER_SECOND = {"rate_per_s": 2, "burst": 2}
# Alchemy's compute units per call (its published table); a minute's quota of 120 lasts
# under a second of C's share of the load, then refills at 2 units a second.
COMPUTE_UNITS = {
    "rate_per_min": 120,
    "costs": {"eth_blockNumber": 10, "eth_getBalance": 19, "eth_call": 26},
}
INFURA_BODY_BACKOFF = {
    "rate": {"allowed_rps": 2, "backoff_seconds": RETRY_AFTER_S, "current_rps": 10.0},
    "see": "https://infura.io/dashboard",
}
# (fault id, provider, params) in window order: the shapes of the module docstring.
SHAPES: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("a-429-text", "A",
     {**PER_SECOND, "preset": "llamarpc_cloudflare_1015", "headers": BACKOFF}),
    ("b-429-jsonrpc", "B",
     {**PER_SECOND, "preset": "infura_project_rate_exceeded", "headers": BACKOFF}),
    ("c-429-credits", "C", {**COMPUTE_UNITS, "preset": "alchemy_cups_exceeded"}),
    ("a-200-body-backoff", "A",
     {**PER_SECOND, "preset": "infura_project_rate_exceeded", "status": 200,
      "data": INFURA_BODY_BACKOFF}),
    ("b-200-32007", "B",
     {**PER_SECOND, "preset": "quicknode_request_limit_bare_body", "status": 200}),
    ("c-200-429", "C", {**PER_SECOND, "preset": "alchemy_cups_exceeded", "status": 200}),
)  # fmt: skip


@builtin("rate_limited_provider", "rate limits in six shapes, on 429 and on 200")
def build(full: bool, expect: dict[str, float]) -> Scenario:
    rate, duration, first, lasts = FULL if full else FAST
    return Scenario(
        name="rate_limited_provider",
        description="A, B and C rate-limit in six answer shapes, one at a time; D never",
        providers=[mock("A"), mock("B"), mock("C"), mock("D")],
        sut=reference_router(strategy="round_robin"),
        workloads=[HttpLoad(rate=rate, mix="eth_blockNumber=1,eth_getBalance=1,eth_call=1",
                            batch=batch_mix(), timeout_s=client_timeout_s(expect))],
        duration_s=duration,
        faults=[Fault(provider, "rate_limit", start_s=first + k * lasts, duration_s=lasts,
                      params=params, fault_id=fault_id)
                for k, (fault_id, provider, params) in enumerate(SHAPES)],
        slos=[
            *invariants("no_unrescued_failure", "no_wrong_answer", "no_hung_call",
                        "no_retry_storm", "no_retry_after_breach", "no_abandoned_provider"),
            *policy(expect, "come_back", "rate_limit_backoff"),
        ],
    )  # fmt: skip
