"""long_running_stability: a soak that judges memory growth and repeated breaker cycles.

Steady load (HTTP calls and a newHeads subscriber) runs through the router while the
primary provider A flaps for the whole run: its connections are reset for a while, then
it is healthy again, over and over. The router is given A, B, C in priority order.

What must hold, cycle after cycle and minute after minute:

- memory: the router's resident memory does not grow. Judged as the least-squares slope
  (MB per minute) of its RSS samples after a warm-up (start-up allocations, connection
  pools and caches filling are not a leak); the report gives the fit (r²) next to it.
- breaker cycles: in every outage the router stops sending to A quickly, wastes few
  attempts on it, and sends traffic back after it recovers; the attempts wasted per
  outage do not grow from one cycle to the next (a breaker whose back-off or state
  leaks across cycles would).
- clients: answers stay correct and fast in every window of the run, not just on
  average, and the subscription delivers every block.
"""

from __future__ import annotations

from ..api import Fault, HttpLoad, Scenario, WsLoad, mock, reference_router
from . import builtin
from .ws_continuity import KEPT_UP_SLACK, KEPT_UP_SQL

# (rate, load s, first outage at, down s, up s, outages, warm-up s, max RSS slope MB/min,
# max growth of wasted attempts per cycle).
# Fast: 3 outages, then 10 s of load (beyond COME_BACK_MS, so a router that never sends
# to A again fails come_back rather than being cut short). Full: 30 minutes, an outage
# every 30 s. The fast form's slope bound is loose: over 20 s, 1 MB of allocator noise
# is already 3 MB/min; a leak of a few KB per call is far above it.
FAST = (30.0, 28.0, 2.0, 2.0, 5.0, 3, 5.0, 8.0, 2.0)
FULL = (50.0, 1800.0, 30.0, 5.0, 25.0, 58, 60.0, 1.0, 0.2)
# The reference router's breaker re-opens with a doubling back-off (2, 4, 8 s) when a
# probe fails; 9 s is the longest it may take to come back (see http_failover).
COME_BACK_MS = 9000
# Wasted attempts per outage vary by a few with timing (at 30 req/s, 4-5 calls arrive
# before a breaker opens): over the fast form's 3 outages a slope of 2 per cycle is noise,
# over the full form's 58 a slope of 0.2 is already 11 more attempts by the end.


def rss_slope_sql(warmup_s: float) -> str:
    """The SUT's RSS slope (MB per minute) over its samples from t0 + `warmup_s` on."""
    return (
        "SELECT regr_slope(rss / 1e6, t / 6e10) AS value FROM ("
        " SELECT t, sum(rss) AS rss FROM system WHERE role = 'sut'"
        f" AND t >= (SELECT t_start FROM run_window) + {int(warmup_s * 1e9)}"
        " AND t <= (SELECT t_end FROM run_window) GROUP BY t)"
    )


# Least-squares slope of the attempts wasted on the flapping provider per outage,
# against the outage's number (0 with fewer than two outages judged).
WASTED_GROWTH_SQL = """
SELECT coalesce(regr_slope(wasted_attempts, k), 0) AS value FROM (
    SELECT b.wasted_attempts, row_number() OVER (ORDER BY f.t_from) AS k
    FROM breaker b JOIN fault_windows f USING (fault_id) WHERE b.provider = 'A')
"""


@builtin("long_running_stability", "a soak judging memory growth and repeated breaker cycles")
def build(full: bool = False) -> Scenario:
    rate, duration, at, down, up, count, warmup, max_slope, max_growth = FULL if full else FAST
    return Scenario(
        name="long_running_stability",
        description="A flaps for the whole run under steady load; memory and breaker judged",
        providers=[mock("A"), mock("B"), mock("C")],
        sut=reference_router(strategy="priority"),
        workloads=[
            HttpLoad(rate=rate, mix="eth_blockNumber=1,eth_getBalance=1,eth_call=1"),
            WsLoad(subscriptions="newHeads=1", reconnect=True),
        ],
        duration_s=duration,
        faults=[
            Fault("A", "reset", start_s=at, duration_s=count * down + (count - 1) * up,
                  schedule={"flap": {"down_s": down, "up_s": up, "count": count}},
                  fault_id="a-flap"),
        ],
        slos=[
            {"name": "memory_growth", "sql": rss_slope_sql(warmup), "expect": f"< {max_slope:g}",
             "description": f"the router's RSS grew less than {max_slope:g} MB/min after"
                            f" {warmup:g} s of warm-up (least-squares slope; fit in the"
                            " report's sut_rss_fit_r2)"},
            {"name": "route_away", "slo": "breaker_stop{provider:A}: max < 1500",
             "description": "in every outage the router stopped sending to A within 1.5 s"},
            {"name": "come_back", "slo": f"traffic_return{{provider:A}}: max < {COME_BACK_MS}",
             "description": f"after every outage A served again within"
                            f" {COME_BACK_MS / 1000:g} s"},
            {"name": "wasted_attempts", "slo": f"wasted_attempts{{provider:A}}: count <= "
                                               f"{10 * count}",
             "description": "at most 10 attempts per outage spent on A before routing away"},
            {"name": "wasted_growth", "sql": WASTED_GROWTH_SQL,
             "expect": f"<= {max_growth:g}",
             "description": "attempts wasted per outage do not grow from cycle to cycle"},
            {"name": "success_every_window", "slo": "success{window:10s}: rate >= 0.99",
             "description": "every 10 s window: 99% of calls answered correctly"},
            {"name": "latency_every_window", "slo": "latency{window:10s}: p(95) < 500",
             "description": "every 10 s window: p95 latency under 500 ms (no slow drift)"},
            {"name": "amplification", "slo": "attempts: avg <= 1.1",
             "description": "at most 10% more upstream attempts than client calls"},
            {"name": "ws_gaps", "slo": "ws_gap_blocks: count == 0",
             "description": "the subscription skipped no block"},
            {"name": "ws_kept_up", "sql": KEPT_UP_SQL, "expect": f"<= {KEPT_UP_SLACK}",
             "description": "the subscriber got every block produced while it ran"},
        ],
    )  # fmt: skip
