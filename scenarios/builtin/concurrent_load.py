"""concurrent_load: a rising rate finds the highest rate at which the SLOs still hold.

The load climbs in steps (each step a fixed rate for a few seconds) through the router
to a healthy fleet of three providers. Each step is judged on the requests intended in
it: it holds when at least 99% got a correct answer and their p95 latency (from the
intended send time) stayed under 300 ms. The figure the run reports is the highest
holding rate: the rate of the last step before the first one that failed
(`analysis/queries.sql`: `rate_steps`, `highest_holding_rate`). The SLO asks for a
required capacity below the top step; the report states how far the router got.

Whatever the load, every answer is right (`no_wrong_answer`: a fifth of the calls are
batches, so a router that mixes up batch answers is caught), no call is failed with
healthy providers untried, and none hangs. The router's own time per call (overhead)
is its policy: judged against expect.overhead_p50_ms (5 ms at the median: a router
adding 15 ms fails, one adding 2 ms passes). Amplification is reported.

Rates stay modest: one chaos-proxy process stays accurate to about 500 req/s
(docs/ARCHITECTURE.md), and a saturated proxy or load generator makes the run invalid
instead of measuring the router.
"""

from __future__ import annotations

from ..api import HttpLoad, Scenario, mock, reference_router
from . import builtin
from ._slos import batch_mix, client_timeout_s, invariants, policy

# (steps as (rate, seconds), required capacity in req/s). Fast: 16 s of load.
FAST = (((25, 4), (50, 4), (100, 4), (200, 4)), 100)
FULL = (((50, 20), (100, 20), (200, 20), (300, 20), (400, 20)), 200)
# A step holds at this success rate and p95 latency (ms).
STEP_SUCCESS = 0.99
STEP_P95_MS = 300


def arrival(steps: tuple[tuple[int, int], ...]) -> str:
    """loadgen's `steps:` arrival for `steps`."""
    return "steps:" + ",".join(f"{rate}@{seconds}" for rate, seconds in steps)


@builtin("concurrent_load", "a rising rate finds the highest rate at which the SLOs hold")
def build(full: bool, expect: dict[str, float]) -> Scenario:
    steps, required = FULL if full else FAST
    return Scenario(
        name="concurrent_load",
        description="the rate climbs in steps; the report states the highest holding rate",
        providers=[mock("A"), mock("B"), mock("C")],
        sut=reference_router(strategy="round_robin"),
        workloads=[HttpLoad(arrival=arrival(steps),
                            mix="eth_blockNumber=1,eth_getBalance=1,eth_call=1",
                            batch=batch_mix(), timeout_s=client_timeout_s(expect))],
        duration_s=float(sum(seconds for _, seconds in steps)),
        slos=[
            {"name": "highest_holding_rate",
             "sql": f"SELECT highest_holding_rate({STEP_SUCCESS}, {STEP_P95_MS}) AS value",
             "expect": f">= {required}",
             "witnesses": "SELECT step, rate, requests, round(success_rate, 4) AS success_rate,"
                          " round(p95_ms, 1) AS p95_ms FROM rate_steps ORDER BY step",
             "description": f"the highest step rate (req/s) before the first step with"
                            f" success under {STEP_SUCCESS:.0%} or p95 latency over"
                            f" {STEP_P95_MS} ms; at least {required} req/s required"},
            *invariants("no_wrong_answer", "no_unrescued_failure", "no_hung_call"),
            *policy(expect, "overhead"),
        ],
    )  # fmt: skip
