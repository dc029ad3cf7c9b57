"""lying_head: one provider misreports its head, its tags and its state.

A lies in turn (chaosproxy `head_lie`): it reports a head 1,000 blocks ahead of the
chain (a provider on another chain, or misreporting), then head 0x0 (a node that
restarted unsynced), then `safe` and `finalized` blocks 100 below its head (they go
back, and safe drops under the finalized block it answered before) while it answers
`eth_chainId` with mainnet's id (a mainnet node in the fleet) and `eth_syncing` with a
sync in progress. B and C stay honest: a majority that agrees on the head.

Whatever its policy, a correct router serves none of the lies: no answer contradicts
the chain (`no_wrong_answer`: a head or a `latest` block from the future, another
chain's id, a sync on a chain in sync), no client head goes back (`heads_monotonic`:
block 0, or a head below one answered), and no tag goes back or out of order
(`tags_monotonic`: per client, finalized <= safe <= latest, none regressing); it keeps
sending B and C their share of calls while A is ahead (`majority_keeps_traffic`: the
honest majority is not behind), and it fails no call while B and C answer. Following
the highest head reported (no consensus) fails the first and
`majority_keeps_traffic`; trusting every tag answer fails `tags_monotonic`; passing
`eth_chainId` and `eth_syncing` through unchecked fails `no_wrong_answer`. A router
that used A before uses it again once it tells the truth (`no_abandoned_provider`,
`come_back`).
"""

from __future__ import annotations

from ..api import Fault, HttpLoad, Scenario, mock, reference_router
from . import builtin
from ._slos import client_timeout_s, invariants, policy

# (rate, load seconds, first lie from, each lie lasts, gap between lies). The runner
# lengthens the load to expect.come_back_s after the last one.
FAST = (40.0, 14.0, 1.5, 3.0, 1.0)
FULL = (100.0, 90.0, 10.0, 20.0, 5.0)
# (fault id, params) in window order: the lies of the module docstring.
LIES = (
    ("a-ahead", {"mode": "ahead", "blocks": 1000}),
    ("a-zero", {"mode": "zero"}),
    ("a-tags", {"mode": "tags", "blocks": 100}),
)
# State lies told in the last window, beside the tags: each about one method, so each
# matches that method's calls only (the proxy gives a call the first lie matching it).
STATE_LIES = (
    ("a-chain-id", {"mode": "chain_id"}, "eth_chainId"),
    ("a-syncing", {"mode": "syncing"}, "eth_syncing"),
)
# Heads, tip blocks and both trailing tags, as wallets and indexers ask for them, and
# the chain id and sync state that wallets and dapps check before they trust a node.
MIX = (
    "eth_blockNumber=3,eth_getBlockByNumber=1,eth_getBlockByNumber:safe=1,"
    "eth_getBlockByNumber:finalized=1,eth_chainId=1,eth_syncing=1"
)


def _lies(first: float, lasts: float, gap: float) -> list[Fault]:
    """The lies in window order, the state lies just before the last window's tag lie
    (a call gets the first lie in plan order that matches it; the tag lie matches all)."""
    faults = [Fault("A", "head_lie", start_s=first + k * (lasts + gap), duration_s=lasts,
                    params=params, fault_id=fault_id)
              for k, (fault_id, params) in enumerate(LIES)]  # fmt: skip
    last = faults[-1].start_s
    state = [Fault("A", "head_lie", start_s=last, duration_s=lasts, params=params,
                   match={"methods": [method]}, fault_id=fault_id)
             for fault_id, params, method in STATE_LIES]  # fmt: skip
    return [*faults[:-1], *state, faults[-1]]


@builtin(
    "lying_head",
    "one provider reports a head far ahead, head 0, tags going back, another chain, a sync",
)
def build(full: bool, expect: dict[str, float]) -> Scenario:
    rate, duration, first, lasts, gap = FULL if full else FAST
    return Scenario(
        name="lying_head",
        description="A lies about its head (1,000 ahead, then 0), its safe/finalized tags,"
        " its chain id and its sync state",
        providers=[mock("A"), mock("B"), mock("C")],
        sut=reference_router(strategy="round_robin"),
        workloads=[HttpLoad(rate=rate, mix=MIX, timeout_s=client_timeout_s(expect))],
        duration_s=duration,
        faults=_lies(first, lasts, gap),
        slos=[
            *invariants("no_wrong_answer", "heads_monotonic", "tags_monotonic",
                        "majority_keeps_traffic", "no_unrescued_failure", "no_hung_call",
                        "no_abandoned_provider"),
            *policy(expect, "come_back"),
        ],
    )  # fmt: skip
