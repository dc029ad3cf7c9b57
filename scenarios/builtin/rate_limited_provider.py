"""rate_limited_provider: one provider rate-limits the router (429 / -32005, Retry-After).

A's quota drops to 2 calls per second (burst 2) while the router would send it about a
third of the load; past the quota A answers as Infura does: HTTP 429 with a -32005
"request rate exceeded" body, plus `Retry-After: 3`. A good router backs off A for the
3 s it was asked to and serves the calls elsewhere: it meets A's limit about once per
back-off. A router that treats the 429 as a plain failure still answers its clients
(failover) but keeps coming back to A, its breaker closing as soon as a probe gets
through and opening again a few 429s later: it hammers a provider that asked it to
wait. SLOs judge clients (success, latency) and upstream (amplification, attempts that
met the limit, time to route away and to come back).
"""

from __future__ import annotations

from ..api import Fault, HttpLoad, Scenario, mock, reference_router
from . import builtin

# (rate, load seconds, limit starts at, limit lasts). The load runs on for 6 s after
# the limit, longer than the come-back limit, so a router that never returns fails.
FAST = (40.0, 15.0, 2.0, 7.0)
FULL = (100.0, 90.0, 10.0, 60.0)
RETRY_AFTER_S = 3
QUOTA = {"rate_per_s": 2, "burst": 2, "headers": {"Retry-After": str(RETRY_AFTER_S)}}
# A router that honours Retry-After meets the limit once per period (observed: 3 in the
# fast form's 7 s); allowed: twice per period (a call already in flight), plus 2. One
# that ignores it but has a breaker (5 failures to open, 2 s open, closed again by the
# first probe that gets through) meets it about five times per 2.5 s (observed: 16).
LIMITED_PER_S = 2 / RETRY_AFTER_S
# Demoted for at most RETRY_AFTER_S after the limit ends (a 429 just before its end),
# plus 2 s: measured, the reference router came back 3.3 s after a 3 s Retry-After.
COME_BACK_MS = (RETRY_AFTER_S + 2) * 1000


@builtin("rate_limited_provider", "one provider answers 429 / -32005 with Retry-After")
def build(full: bool = False) -> Scenario:
    rate, duration, at, limit = FULL if full else FAST
    limited = round(LIMITED_PER_S * limit) + 2
    return Scenario(
        name="rate_limited_provider",
        description=f"A rate-limits at 2 req/s: 429 + -32005, Retry-After {RETRY_AFTER_S} s",
        providers=[mock("A"), mock("B"), mock("C")],
        sut=reference_router(strategy="round_robin"),
        workloads=[HttpLoad(rate=rate, mix="eth_blockNumber=1,eth_getBalance=1,eth_call=1")],
        duration_s=duration,
        faults=[Fault("A", "rate_limit", start_s=at, duration_s=limit, params=QUOTA,
                      fault_id="a-limit")],
        slos=[
            {"name": "success", "slo": "success: rate >= 0.99",
             "description": "clients got a correct answer to 99% of calls"},
            {"name": "latency", "slo": "latency: p(95) < 300",
             "description": "p95 latency (from the intended send time) under 300 ms"},
            {"name": "amplification", "slo": "attempts: avg <= 1.1",
             "description": "at most 10% more upstream attempts than client calls"},
            {"name": "limited_attempts",
             "slo": f"upstream_errors{{provider:A,phase:during:a-limit}}: count <= {limited}",
             "description": f"at most {limited} attempts met A's limit: Retry-After honoured"},
            {"name": "route_away", "slo": "breaker_stop{provider:A}: max < 1500",
             "description": "the router stopped sending to A within 1.5 s of its limit"},
            {"name": "come_back", "slo": f"traffic_return{{provider:A}}: max < {COME_BACK_MS}",
             "description": f"A served again within {COME_BACK_MS / 1000:g} s of the limit's"
                            " end"},
        ],
    )  # fmt: skip
