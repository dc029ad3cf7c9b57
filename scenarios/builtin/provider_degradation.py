"""provider_degradation: one provider's latency ramps up, then it stops answering.

A answers fastest until its latency ramps from nothing to 1.5 s, then it hangs (takes
requests, never answers). B and C are steady at 5 ms, so a router that follows measured
latency (`fastest`) has A as its first choice before the fault and moves off it as soon
as it slows down; a router that keeps spreading traffic evenly makes a third of its
clients wait on A, and, without a breaker, keeps paying an attempt timeout per request
while A hangs. SLOs judge what clients saw (success, latency over the run, latency
while A hangs) and what went upstream (amplification, time to route away from A once it
slows down, attempts spent on it in both faults).

Route-away is judged on the slowdown only: a router that already left A sends it
nothing but its head polls when the hang starts, so the hang's `breaker_stop` would
measure the poll interval, not a routing decision; the hang is judged by what clients
waited (`timeouts`) and by the attempts A still got (`wasted_attempts`).

No come-back SLO: a router that polls its upstreams (the reference one does) talks to A
again within a second of the fault's end whatever its strategy, so `traffic_return`
cannot tell a good router from a bad one here; http_failover judges coming back.
"""

from __future__ import annotations

from ..api import Fault, HttpLoad, Scenario, mock, reference_router
from . import builtin

# (rate, load seconds, ramp starts at, ramp lasts, hang lasts). The hang starts when the
# ramp ends; the load runs on for 2 s after the hang, so its end is recorded.
FAST = (40.0, 15.0, 2.0, 6.0, 5.0)
FULL = (100.0, 90.0, 10.0, 40.0, 20.0)
# B's and C's steady latency: above A's own (about 1 ms through the proxy), so that A is
# the fastest until the ramp starts, and far below the 300 ms latency SLO.
STEADY = {"dist": "fixed", "ms": 5}
# The ramp's top: well past the 300 ms SLO, below the router's 2 s attempt timeout, so
# a router that keeps using A pays in latency, not (yet) in timeouts.
RAMP_TO_MS = 1500
# Attempts on A allowed before the router moves: half a second of the load. `fastest`
# rightly keeps A while A is still faster than B and C, and its average of B's and C's
# latency starts high (the first polls) and comes down once a second.
WASTED_SHARE_S = 0.5


@builtin("provider_degradation", "one provider's latency ramps up, then it hangs; routing away")
def build(full: bool = False) -> Scenario:
    rate, duration, at, ramp, hang = FULL if full else FAST
    wasted = round(rate * WASTED_SHARE_S)
    return Scenario(
        name="provider_degradation",
        description="A slows down from 0 to 1.5 s, then hangs; B and C steady at 5 ms",
        providers=[mock("A"), mock("B", latency=STEADY), mock("C", latency=STEADY)],
        sut=reference_router(strategy="fastest"),
        workloads=[HttpLoad(rate=rate, mix="eth_blockNumber=1,eth_getBalance=1,eth_call=1")],
        duration_s=duration,
        faults=[
            Fault("A", "latency", start_s=at, duration_s=ramp,
                  params={"ms": 0, "ramp_to_ms": RAMP_TO_MS}, fault_id="a-slow"),
            Fault("A", "hang", start_s=at + ramp, duration_s=hang, fault_id="a-hang"),
        ],
        slos=[
            {"name": "success", "slo": "success: rate >= 0.99",
             "description": "clients got a correct answer to 99% of calls"},
            {"name": "latency", "slo": "latency: p(95) < 300",
             "description": "p95 latency (from the intended send time) under 300 ms"},
            {"name": "timeouts", "slo": "latency{phase:during:a-hang}: p(99) < 1000",
             "description": "while A hangs, 99% of calls answered within 1 s: none waits"
                            " out an attempt timeout on A"},
            {"name": "amplification", "slo": "attempts: avg <= 1.1",
             "description": "at most 10% more upstream attempts than client calls"},
            {"name": "route_away",
             "slo": "breaker_stop{provider:A,phase:during:a-slow}: max < 1500",
             "description": "the router stopped sending to A within 1.5 s of it slowing"
                            " down"},
            {"name": "wasted_attempts",
             "slo": f"wasted_attempts{{provider:A}}: count <= {wasted}",
             "description": f"at most {wasted} attempts spent on A, in both faults, before"
                            " routing away"},
        ],
    )  # fmt: skip
