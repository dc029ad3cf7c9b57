"""ws_continuity: the active upstream's WebSocket loses notifications, stalls, drops.

Clients hold newHeads subscriptions through the router for the whole run while the
upstream the router is subscribed to misbehaves in turn. The router is given A, B, C in
priority order, so it subscribes on A first; each fault is aimed at the provider it is
subscribed to at that moment:

1. A loses every third notification, then repeats every second one;
2. A stalls (its socket stays open, nothing comes): a router notices after a few block
   times and resubscribes elsewhere, B being the next in its order;
3. B's socket is closed: the router resubscribes, on A (whose faults have ended);
4. A's socket goes silent (the zombie socket: it answers calls and pings, and sends no
   notification while the chain advances): the router must notice the silence itself
   and move.

A good router gives every client every block exactly once, in order, each block's
parent the one before, without ever dropping a client (resubscribe on another provider,
backfill the missed blocks over HTTP, drop repeats by hash). SLOs judge what clients saw
(every block once, in order, chained, promptly, sessions kept, never silent for long
while the chain advanced) and what the router did upstream (how soon it left a
stalled, closed or silent upstream, how few blocks it fetched to fill gaps). With mock
providers every block is also checked against the chain's truth.
"""

from __future__ import annotations

from ..api import Fault, Scenario, WsLoad, mock, reference_router
from . import builtin
from ._slos import invariants, policy

# (load seconds, drop from/for, duplicate from/for, stall from/for, disconnect at,
# silence from/for). One block a second (anvil needs whole seconds). The stall and the
# silence last beyond the router's stall detection (3 s: three block times) so that it
# must move; the silence also beyond the default expect.ws_silence_s (10 s), so that a
# router that never notices it fails; the run goes on for 4 s after the last fault so
# blocks delivered late are still seen in order.
FAST = (33.0, (1.0, 4.0), (5.0, 2.0), (7.5, 5.0), 15.0, (17.0, 12.0))
FULL = (180.0, (10.0, 30.0), (45.0, 20.0), (75.0, 8.0), 120.0, (135.0, 15.0))
# The longest a block may take to reach a client: a stall goes unnoticed for 3 s, a new
# subscription and the backfill take a block time more; 2 s of margin on top. An anvil
# node mines from its own start, after the schedule's genesis the delay is measured
# against: its blocks measured 1.4 s late at the median (stall included: 3.5 s at most).
MAX_DELAY_MS = 6000
# How soon after a stall or a close the router must subscribe on another provider:
# its stall detection (3 s) plus 1.5 s.
MOVE_AWAY_MS = 4500

# Blocks a logical client (one per socket slot, across reconnects) never received
# between its first and its last: gaps inside a subscription and across reconnects.
EVERY_BLOCK_SQL = """
SELECT coalesce(sum(hi - lo + 1 - n), 0) AS value FROM (
    SELECT worker, connection, min(block_number) AS lo, max(block_number) AS hi,
           count(DISTINCT block_number) AS n
    FROM ws_notifications WHERE kind = 'newHeads' GROUP BY worker, connection)
"""
# Blocks the worst client socket fell short by: those produced (by the chain's schedule)
# from its first subscribe to the end of the load, minus the distinct blocks it got.
# Without it the checks above would pass a feed that delivered nothing at all.
KEPT_UP_SQL = """
SELECT max(true_head((SELECT t_end FROM run_window)) - true_head(s.t_first)
           - coalesce(n.blocks, 0)) AS value
FROM (SELECT worker, connection, min(t) AS t_first FROM ws_sessions
      WHERE event = 'subscribe' GROUP BY worker, connection) s
LEFT JOIN (SELECT worker, connection, count(DISTINCT block_number) AS blocks
           FROM ws_notifications WHERE kind = 'newHeads' GROUP BY worker, connection) n
  USING (worker, connection)
"""
# Per client socket, the blocks it never got between its first and its last.
EVERY_BLOCK_WITNESSES = """
WITH got AS (
    SELECT worker, connection, min(block_number) AS lo, max(block_number) AS hi,
           list(DISTINCT block_number) AS blocks
    FROM ws_notifications WHERE kind = 'newHeads' GROUP BY worker, connection)
SELECT worker, connection, lo AS first_block, hi AS last_block,
       list_filter(range(lo, hi + 1), lambda b: NOT list_contains(blocks, b)) AS missing
FROM got WHERE hi - lo + 1 > len(blocks) ORDER BY worker, connection
"""
# Per client socket, the blocks produced since it subscribed and the blocks it got.
KEPT_UP_WITNESSES = """
WITH k AS (
    SELECT s.worker, s.connection,
           round((s.t_first - (SELECT t_start FROM run_window)) / 1e9, 3) AS subscribed_at_s,
           true_head((SELECT t_end FROM run_window)) - true_head(s.t_first) AS produced,
           coalesce(n.blocks, 0) AS received,
           round((n.t_last - (SELECT t_start FROM run_window)) / 1e9, 3) AS last_block_at_s
    FROM (SELECT worker, connection, min(t) AS t_first FROM ws_sessions
          WHERE event = 'subscribe' GROUP BY worker, connection) s
    LEFT JOIN (SELECT worker, connection, count(DISTINCT block_number) AS blocks,
                      max(t_received) AS t_last
               FROM ws_notifications WHERE kind = 'newHeads' GROUP BY worker, connection) n
      USING (worker, connection))
SELECT * FROM k ORDER BY produced - received DESC
"""
# A block of slack at each end: the last one may be produced as the load stops, and an
# anvil node starts mining up to a second after the schedule's genesis.
KEPT_UP_SLACK = 2
# Client sessions the router ended (the client had to reconnect).
SESSIONS_KEPT_SQL = "SELECT count(*) AS value FROM ws_sessions WHERE event = 'disconnect'"
SESSIONS_KEPT_WITNESSES = """
SELECT worker, connection, round((t - (SELECT t_start FROM run_window)) / 1e9, 3) AS at_s,
       reason, close_code
FROM ws_sessions WHERE event = 'disconnect' ORDER BY t
"""
# Per stall, close or silence of the upstream socket: from the fault's start until the
# router opened a socket on another provider (the fault's length plus the rest of the run when
# it never did), the longest.
MOVE_AWAY_SQL = """
SELECT max(coalesce(
    (SELECT min(o.t) FROM upstream_ws o
     WHERE o.action = 'open' AND o.provider <> f.provider AND o.t >= f.t_from),
    (SELECT t_end FROM run_window) + (f.t_to - f.t_from)) - f.t_from) / 1e6 AS value
FROM fault_windows f WHERE f.kind IN ('ws_stall', 'ws_disconnect', 'ws_silence')
"""
MOVE_AWAY_WITNESSES = """
SELECT f.fault_id, f.provider, f.kind,
       round((f.t_from - (SELECT t_start FROM run_window)) / 1e9, 3) AS fault_at_s,
       round(((SELECT min(o.t) FROM upstream_ws o WHERE o.action = 'open'
               AND o.provider <> f.provider AND o.t >= f.t_from) - f.t_from) / 1e9, 3)
           AS moved_after_s,
       (SELECT arg_min(o.provider, o.t) FROM upstream_ws o WHERE o.action = 'open'
          AND o.provider <> f.provider AND o.t >= f.t_from) AS moved_to
FROM fault_windows f WHERE f.kind IN ('ws_stall', 'ws_disconnect', 'ws_silence')
ORDER BY f.t_from
"""


def backfill_budget(drop_s: float, stall_s: float, silence_s: float) -> int:
    """Blocks a router may fetch over HTTP: those the faults hide (a third of the
    dropped window's, every one of the stall's and of the silence's, two around the
    close; repeats hide none) and as many again, as a router may fetch a block once
    more when an answer comes in late."""
    return 2 * (int(drop_s / 3) + 1 + int(stall_s) + int(silence_s) + 2)


@builtin("ws_continuity", "the subscribed upstream loses notifications, stalls, drops")
def build(full: bool, expect: dict[str, float]) -> Scenario:
    (
        duration,
        (drop_at, drop_s),
        (dup_at, dup_s),
        (stall_at, stall_s),
        close_at,
        (silence_at, silence_s),
    ) = FULL if full else FAST
    # Moving the subscription away from a stalled or closed upstream is routing away:
    # judged against expect.route_away_s; a block may be late by that plus the backfill.
    move_away_ms = expect["route_away_s"] * 1000
    max_delay_ms = move_away_ms + MAX_DELAY_MS - MOVE_AWAY_MS
    return Scenario(
        name="ws_continuity",
        description="newHeads through the router while its upstream drops, repeats, stalls",
        providers=[mock("A"), mock("B"), mock("C")],
        sut=reference_router(strategy="priority"),
        # Two subscribers per socket kind: the router must serve both from one upstream
        # subscription; a call each second keeps JSON-RPC over the same sockets working.
        workloads=[WsLoad(subscriptions="newHeads=2", reconnect=True, call_interval_s=1.0)],
        duration_s=duration,
        faults=[
            Fault("A", "ws_drop", start_s=drop_at, duration_s=drop_s,
                  params={"every_k": 3}, fault_id="a-drop"),
            Fault("A", "ws_duplicate", start_s=dup_at, duration_s=dup_s,
                  params={"every_k": 2}, fault_id="a-duplicate"),
            Fault("A", "ws_stall", start_s=stall_at, duration_s=stall_s, fault_id="a-stall"),
            Fault("B", "ws_disconnect", start_s=close_at, duration_s=1.0,
                  fault_id="b-disconnect"),
            Fault("A", "ws_silence", start_s=silence_at, duration_s=silence_s,
                  fault_id="a-silence"),
        ],
        slos=[
            *invariants("ws_no_gap"),
            {"name": "ws_every_block", "sql": EVERY_BLOCK_SQL, "expect": "== 0",
             "witnesses": EVERY_BLOCK_WITNESSES,
             "description": "every client got every block from its first to its last,"
                            " across reconnects too"},
            {"name": "ws_kept_up", "sql": KEPT_UP_SQL, "expect": f"<= {KEPT_UP_SLACK}",
             "witnesses": KEPT_UP_WITNESSES,
             "description": "every client got (nearly) every block produced while it was"
                            " subscribed: the feed never fell silent"},
            *invariants("ws_no_duplicate", "ws_in_order", "ws_chain", "no_wrong_answer",
                        "no_unrescued_failure"),
            {"name": "ws_sessions_kept", "sql": SESSIONS_KEPT_SQL, "expect": "== 0",
             "witnesses": SESSIONS_KEPT_WITNESSES,
             "description": "the router never dropped a client; it absorbed every"
                            " upstream failure"},
            {"name": "ws_delay", "slo": f"ws_delay: max < {max_delay_ms:g}",
             "description": f"every block reached the clients within"
                            f" {max_delay_ms / 1000:g} s of its production"},
            {"name": "upstream_move_away", "sql": MOVE_AWAY_SQL,
             "expect": f"< {move_away_ms:g}", "witnesses": MOVE_AWAY_WITNESSES,
             "description": f"after a stall, a close or a silence the router subscribed on"
                            f" another provider within {move_away_ms / 1000:g} s"
                            " (expect.route_away_s)"},
            *policy(expect, "ws_silence"),
            {"name": "backfill_fetches",
             "slo": "upstream_exchanges{method:eth_getBlockByNumber}: count <= "
                    f"{backfill_budget(drop_s, stall_s, silence_s)}",
             "description": "blocks fetched over HTTP stay near the blocks the faults hid"},
        ],
    )  # fmt: skip
