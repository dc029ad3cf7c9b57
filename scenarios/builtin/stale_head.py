"""stale_head: one provider lies about its head (10 blocks behind the chain).

While the fault lasts, A answers `eth_blockNumber` 10 blocks low (and reads of
"latest" at that old block). A router that tracks heads notices A is behind the others
by more than its limit, routes away from it, and never answers a head lower than one it
already gave; one that does not hands a third of its clients an old head, so a client
sees its chain go backwards. The load accepts heads up to 20 blocks behind
(`max_lag_blocks`), so that a stale answer is recorded as answered and judged here by
name (`heads_backwards`, `stale_answers`) rather than only lowering the success rate.
SLOs judge clients (success, latency, heads never backwards, answers not behind the
true head by more than 2 blocks) and upstream (amplification, time to route away from
A, time to come back after the fault).
"""

from __future__ import annotations

from ..api import Fault, HttpLoad, Scenario, mock, reference_router
from . import builtin

# (rate, load seconds, fault starts at, fault lasts, lag in blocks). The load runs on
# for 5 s after the fault, longer than the come-back limit.
FAST = (40.0, 14.0, 2.0, 7.0, 10)
FULL = (100.0, 90.0, 10.0, 60.0, 10)
# Behind the true head by at most this many blocks is not stale: a block produced while
# the request was in flight, or a node a block behind, is normal (loadgen's default).
STALE_BLOCKS = 2
# The load records answers up to this far behind as answered, so stale ones reach the
# head SLOs; above the fault's lag.
ACCEPT_LAG_BLOCKS = 20
COME_BACK_MS = 3000


@builtin("stale_head", "one provider lags behind the chain's head; head tracking")
def build(full: bool = False) -> Scenario:
    rate, duration, at, length, lag = FULL if full else FAST
    return Scenario(
        name="stale_head",
        description=f"A reports a head {lag} blocks behind the chain's",
        providers=[mock("A"), mock("B"), mock("C")],
        sut=reference_router(strategy="round_robin"),
        workloads=[HttpLoad(rate=rate, mix="eth_blockNumber=2,eth_getBalance=1",
                            max_lag_blocks=ACCEPT_LAG_BLOCKS)],
        duration_s=duration,
        faults=[Fault("A", "stale", start_s=at, duration_s=length, params={"lag_blocks": lag},
                      fault_id="a-stale")],
        slos=[
            {"name": "success", "slo": "success: rate >= 0.99",
             "description": "clients got an answer to 99% of calls"},
            {"name": "latency", "slo": "latency: p(95) < 300",
             "description": "p95 latency (from the intended send time) under 300 ms"},
            {"name": "heads_backwards", "slo": "heads_backwards: count == 0",
             "description": "no client got a head lower than one answered before it asked"},
            {"name": "stale_answers",
             "slo": f"head_lag{{method:eth_blockNumber}}: max <= {STALE_BLOCKS}",
             "description": f"no eth_blockNumber answer over {STALE_BLOCKS} blocks behind"
                            " the chain's head"},
            {"name": "amplification", "slo": "attempts: avg <= 1.1",
             "description": "at most 10% more upstream attempts than client calls"},
            {"name": "route_away", "slo": "breaker_stop{provider:A}: max < 1500",
             "description": "the router stopped sending to A within 1.5 s of it falling"
                            " behind"},
            {"name": "come_back", "slo": f"traffic_return{{provider:A}}: max < {COME_BACK_MS}",
             "description": f"A served again within {COME_BACK_MS / 1000:g} s of catching up"},
        ],
    )  # fmt: skip
