"""http_failover: the primary provider flaps (connections reset) under steady load.

The router is given A, B, C in priority order, so A takes all traffic while it is up.
A good router answers every call anyway (it retries on B), stops sending to A within
a moment of each outage (circuit breaker), wastes few attempts on it, and sends
traffic back to A soon after it recovers. SLOs judge both sides: what clients saw
(success, latency) and what went upstream (amplification, attempts wasted on A, time
to route away, time to come back).
"""

from __future__ import annotations

from ..api import Fault, HttpLoad, Scenario, mock, reference_router
from . import builtin

# (rate, load seconds, first outage at, outage, gap between outages, outages). The load
# goes on for over COME_BACK_MS after the last outage, so that a router that never sends
# to A again fails `come_back` instead of being cut short by the end of the run.
FAST = (40.0, 25.0, 3.0, 3.0, 5.0, 2)
FULL = (100.0, 120.0, 10.0, 5.0, 15.0, 5)
# The reference router's breaker backs off (2 s, then 4 s, 8 s after failed probes), and
# an outage that starts while it is half-open reopens it for the next step: 8 s is the
# longest it may take here; beyond that A was given up.
COME_BACK_MS = 9000


@builtin("http_failover", "the primary provider flaps under steady load; failover and recovery")
def build(full: bool = False) -> Scenario:
    rate, duration, at, down, up, count = FULL if full else FAST
    return Scenario(
        name="http_failover",
        description="A (the primary) flaps: connections reset while down",
        providers=[mock("A"), mock("B"), mock("C")],
        sut=reference_router(strategy="priority"),
        workloads=[HttpLoad(rate=rate, mix="eth_blockNumber=1,eth_getBalance=1,eth_call=1")],
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
            {"name": "success", "slo": "success: rate >= 0.99",
             "description": "clients got a correct answer to 99% of calls"},
            {"name": "latency", "slo": "latency: p(95) < 300",
             "description": "p95 latency (from the intended send time) under 300 ms"},
            {"name": "amplification", "slo": "attempts: avg <= 1.1",
             "description": "at most 10% more upstream attempts than client calls"},
            {"name": "route_away", "slo": "breaker_stop{provider:A}: max < 1500",
             "description": "in every outage the router stopped sending to A within 1.5 s"},
            {"name": "wasted_attempts",
             "slo": f"wasted_attempts{{provider:A}}: count <= {10 * count}",
             "description": "at most 10 attempts per outage spent on A before routing away"},
            {"name": "come_back", "slo": f"traffic_return{{provider:A}}: max < {COME_BACK_MS}",
             "description": f"A served again within {COME_BACK_MS / 1000:g} s of each outage"},
        ],
    )  # fmt: skip
