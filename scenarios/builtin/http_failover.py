"""http_failover: the primary provider flaps (connections reset) under steady load.

The router is given A, B, C in that order; a priority router sends A everything while
it is up, a round-robin one a third. Whatever its policy, a correct router answers
every call anyway (it tries B or C when A fails: `no_unrescued_failure`), answers
nothing wrong (a fifth of the calls are batches, so answers put on the wrong ids show),
retries A a few times at most per call, and once A is back sends it traffic again if A
carried any before (`no_abandoned_provider`: a breaker that never closes). How fast it
routes away, how many attempts it wastes on A per outage and how soon it comes back are
its policy: measured, and judged against the router profile the user declares
(`--expect`; defaults any production router meets, analysis/expect.py).

A router without a breaker or health check still answers every call; it sends each one
to A first for the whole outage (120 attempts per outage at 40 req/s), which
`wasted_attempts` judges against expect.wasted_attempts_per_outage (60).
"""

from __future__ import annotations

from ..api import Fault, HttpLoad, Scenario, mock, reference_router
from . import builtin
from ._slos import batch_mix, client_timeout_s, invariants, policy

# (rate, load seconds, first outage at, outage, gap between outages, outages). The
# runner lengthens the load to expect.come_back_s after the last outage (plus 2 s), so
# a router that never sends to A again fails `no_abandoned_provider`.
FAST = (40.0, 25.0, 3.0, 3.0, 5.0, 2)
FULL = (100.0, 120.0, 10.0, 5.0, 15.0, 5)


@builtin("http_failover", "the primary provider flaps under steady load; failover and recovery")
def build(full: bool, expect: dict[str, float]) -> Scenario:
    rate, duration, at, down, up, count = FULL if full else FAST
    return Scenario(
        name="http_failover",
        description="A (the primary) flaps: connections reset while down",
        providers=[mock("A"), mock("B"), mock("C")],
        sut=reference_router(strategy="priority"),
        workloads=[HttpLoad(rate=rate, mix="eth_blockNumber=1,eth_getBalance=1,eth_call=1",
                            batch=batch_mix(), timeout_s=client_timeout_s(expect))],
        duration_s=duration,
        faults=[
            Fault(
                "A",
                "reset",
                start_s=at,
                duration_s=count * down + (count - 1) * up,
                schedule={"flap": {"down_s": down, "up_s": up, "count": count}},
                fault_id="a-flap",
            )
        ],
        slos=[
            *invariants("no_unrescued_failure", "no_wrong_answer", "no_hung_call",
                        "no_retry_storm", "no_abandoned_provider"),
            *policy(expect, "route_away", "wasted_attempts", "come_back"),
        ],
    )  # fmt: skip
