"""rate_limited_provider: one provider answers 429 / -32005 with a Retry-After.

A rate-limits at 2 req/s, with Infura's answer (HTTP 429 and -32005) and
`Retry-After: 3`. Every correct router, whatever its policy, answers the client from
another provider rather than passing the limit on (`no_unrescued_failure`), and honours
the Retry-After: no call goes to A within 3 s of a limit answer
(`no_retry_after_breach`), nor hammers it (`no_retry_storm`). Once the limit is lifted
a router that used A before uses it again (`no_abandoned_provider`, `come_back`).
"""

from __future__ import annotations

from ..api import Fault, HttpLoad, Scenario, mock, reference_router
from . import builtin
from ._slos import batch_mix, client_timeout_s, invariants, policy

# (rate, load seconds, limit starts at, limit lasts). The runner lengthens the load to
# expect.come_back_s after the limit.
FAST = (40.0, 15.0, 2.0, 7.0)
FULL = (100.0, 90.0, 10.0, 60.0)
RETRY_AFTER_S = 3
QUOTA = {"rate_per_s": 2, "burst": 2, "headers": {"Retry-After": str(RETRY_AFTER_S)}}


@builtin("rate_limited_provider", "one provider answers 429 / -32005 with Retry-After")
def build(full: bool, expect: dict[str, float]) -> Scenario:
    rate, duration, at, limit = FULL if full else FAST
    return Scenario(
        name="rate_limited_provider",
        description=f"A rate-limits at 2 req/s: 429 + -32005, Retry-After {RETRY_AFTER_S} s",
        providers=[mock("A"), mock("B"), mock("C")],
        sut=reference_router(strategy="round_robin"),
        workloads=[HttpLoad(rate=rate, mix="eth_blockNumber=1,eth_getBalance=1,eth_call=1",
                            batch=batch_mix(), timeout_s=client_timeout_s(expect))],
        duration_s=duration,
        faults=[Fault("A", "rate_limit", start_s=at, duration_s=limit, params=QUOTA,
                      fault_id="a-limit")],
        slos=[
            *invariants("no_unrescued_failure", "no_wrong_answer", "no_hung_call",
                        "no_retry_storm", "no_retry_after_breach", "no_abandoned_provider"),
            *policy(expect, "come_back"),
        ],
    )  # fmt: skip
