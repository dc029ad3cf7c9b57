"""provider_degradation: one provider's latency ramps up, then it hangs.

A slows down from 0 to 1.5 s, then stops answering at all; B and C stay at 5 ms. Whether
a router moves away from a slow but answering provider is its policy: a latency-aware
router ("fastest") does, a priority or round-robin one need not, so latency is
reported (p95, p99, per phase) and not failed on. What every correct router must do is
bound the hang: give up on A within its own attempt timeout and answer from B or C
(`hang_bounded`, against expect.attempt_timeout_s; a router with 30 s attempt timeouts
fails it and `no_hung_call`), never return the hang's failure while B and C are up
(`no_unrescued_failure`), never answer wrong, and stop sending to a provider that
no longer answers (`route_away`, over the hang only: the ramp is policy).
"""

from __future__ import annotations

from ..api import Fault, HttpLoad, Scenario, mock, reference_router
from . import builtin
from ._slos import batch_mix, client_timeout_s, invariants, policy

# (rate, load seconds, ramp starts at, ramp lasts, hang lasts). The hang starts when the
# ramp ends and lasts longer than the profile's default route_away_s (8 s), so that a
# router that never stops sending to a hung provider fails `route_away`; the load runs
# 2 s past it.
FAST = (40.0, 20.0, 2.0, 6.0, 10.0)
FULL = (100.0, 90.0, 10.0, 40.0, 20.0)
# B's and C's steady latency: above A's own (about 1 ms through the proxy), so that A is
# the fastest until the ramp starts.
STEADY = {"dist": "fixed", "ms": 5}
# The ramp's top: below the reference router's 2 s attempt timeout and the profile's
# default 5 s, so a router that keeps using A pays in latency, not in errors.
RAMP_TO_MS = 1500


@builtin("provider_degradation", "one provider's latency ramps up, then it hangs; routing away")
def build(full: bool, expect: dict[str, float]) -> Scenario:
    rate, duration, at, ramp, hang = FULL if full else FAST
    bound_ms = (expect["attempt_timeout_s"] + expect["hung_margin_s"]) * 1000
    return Scenario(
        name="provider_degradation",
        description="A slows down from 0 to 1.5 s, then hangs; B and C steady at 5 ms",
        providers=[mock("A"), mock("B", latency=STEADY), mock("C", latency=STEADY)],
        sut=reference_router(strategy="fastest"),
        workloads=[HttpLoad(rate=rate, mix="eth_blockNumber=1,eth_getBalance=1,eth_call=1",
                            batch=batch_mix(), timeout_s=client_timeout_s(expect))],
        duration_s=duration,
        faults=[
            Fault("A", "latency", start_s=at, duration_s=ramp,
                  params={"ms": 0, "ramp_to_ms": RAMP_TO_MS}, fault_id="a-slow"),
            Fault("A", "hang", start_s=at + ramp, duration_s=hang, fault_id="a-hang"),
        ],
        slos=[
            *invariants("no_unrescued_failure", "no_wrong_answer", "no_hung_call",
                        "no_retry_storm"),
            {"name": "hang_bounded",
             "slo": f"latency{{phase:during:a-hang}}: p(99) < {bound_ms:g}",
             "description": f"while A hangs, 99% of calls answered within {bound_ms:g} ms:"
                            " the router gives up on A within its attempt timeout"
                            " (expect.attempt_timeout_s + expect.hung_margin_s)"},
            *policy(expect, "route_away"),
        ],
    )  # fmt: skip
