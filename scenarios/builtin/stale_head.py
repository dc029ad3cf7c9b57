"""stale_head: one provider lags behind the chain's head.

A answers as if the chain were 10 blocks shorter. Whatever its policy, a correct router
never lets a client's head go backwards (`heads_monotonic`: a router without head
tracking that sends some calls to A shows it as soon as A's answer follows B's), answers
nothing wrong and fails no call. How stale its answers get is reported
(`head_lag_max_blocks`); whether it avoids A while A lags (route-away) depends on how
it tracks heads, so it is reported, not failed on. A router that used A before and
avoided it while it lagged must use it again once it catches up (`no_abandoned_provider`,
`come_back`).
"""

from __future__ import annotations

from ..api import Fault, HttpLoad, Scenario, mock, reference_router
from . import builtin
from ._slos import client_timeout_s, invariants, policy

# (rate, load seconds, fault starts at, fault lasts, lag in blocks). The runner
# lengthens the load to expect.come_back_s after the fault.
FAST = (40.0, 14.0, 2.0, 7.0, 10)
FULL = (100.0, 90.0, 10.0, 60.0, 10)
# The load records answers up to this far behind as answered (not `invalid`), so stale
# ones reach the head checks; above the fault's lag.
ACCEPT_LAG_BLOCKS = 20


@builtin("stale_head", "one provider lags behind the chain's head; head tracking")
def build(full: bool, expect: dict[str, float]) -> Scenario:
    rate, duration, at, length, lag = FULL if full else FAST
    return Scenario(
        name="stale_head",
        description=f"A reports a head {lag} blocks behind the chain's",
        providers=[mock("A"), mock("B"), mock("C")],
        sut=reference_router(strategy="round_robin"),
        workloads=[HttpLoad(rate=rate, mix="eth_blockNumber=2,eth_getBalance=1",
                            max_lag_blocks=ACCEPT_LAG_BLOCKS,
                            timeout_s=client_timeout_s(expect))],
        duration_s=duration,
        faults=[Fault("A", "stale", start_s=at, duration_s=length, params={"lag_blocks": lag},
                      fault_id="a-stale")],
        slos=[
            *invariants("heads_monotonic", "no_unrescued_failure", "no_wrong_answer",
                        "no_hung_call", "no_abandoned_provider"),
            *policy(expect, "come_back"),
        ],
    )  # fmt: skip
