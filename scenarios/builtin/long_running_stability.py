"""long_running_stability: a soak that judges memory growth and repeated breaker cycles.

Steady load (HTTP calls and a newHeads subscriber) runs through the router while the
primary provider A flaps for the whole run: its connections are reset for a while, then
it is healthy again, over and over. The router is given A, B, C in priority order.

What must hold, cycle after cycle and minute after minute:

- memory: the router keeps no memory per call. Judged as the least-squares slope of
  its RSS (KB) against the calls it has served, after a warm-up (start-up allocations,
  connection pools and caches filling are not a leak): the slope's lower 95% bound
  must stay under expect.rss_growth_kb_per_request (a leak of ~1 KB per call fails in
  the fast form). The slope per minute and the fit (r²) are reported next to it.
- breaker cycles: every call is answered (failover), A carries traffic again after
  every outage if it did before (`no_abandoned_provider`, `come_back`), the attempts
  wasted per outage stay within the profile and do not grow from one cycle to the next
  (a breaker whose back-off or state leaks across cycles would).
- clients: answers stay correct and fast in every window of the run, not just on
  average, and the subscription delivers every block.
"""

from __future__ import annotations

from ..api import Fault, HttpLoad, Scenario, WsLoad, mock, reference_router
from . import builtin
from ._slos import client_timeout_s, invariants, policy
from .ws_continuity import KEPT_UP_SLACK, KEPT_UP_SQL, KEPT_UP_WITNESSES

# (rate, load s, first outage at, down s, up s, outages, warm-up s, max growth of wasted
# attempts per cycle). Fast: 3 outages; the runner lengthens the load to
# expect.come_back_s after the last (about 35 s, 1,700 calls: a leak of 1 KB per call
# keeps 1.7 MB, several times the allocator's noise). Full: 30 minutes, an outage every
# 30 s.
FAST = (50.0, 28.0, 2.0, 2.0, 5.0, 3, 5.0, 2.0)
FULL = (50.0, 1800.0, 30.0, 5.0, 25.0, 58, 60.0, 0.2)
# Wasted attempts per outage vary by a few with timing (at 50 req/s, 4-8 calls arrive
# before a breaker opens): over the fast form's 3 outages a slope of 2 per cycle is noise,
# over the full form's 58 a slope of 0.2 is already 11 more attempts by the end.


def memory_sql(warmup_s: float) -> str:
    """The lower 95% bound of the SUT's RSS slope per call served (KB), over its samples
    from t0 + `warmup_s` on (analysis/queries.sql: rss_per_call)."""
    return f"SELECT kb_per_call - 2 * coalesce(stderr, 0) AS value FROM rss_per_call({warmup_s:g})"


def memory_witnesses(warmup_s: float) -> str:
    """The fit behind memory_growth, and the SUT's RSS at the first and last sample
    after the warm-up with the calls served by then."""
    return (
        "SELECT round(kb_per_call, 3) AS kb_per_call, round(stderr, 3) AS stderr,"
        " round(r2, 3) AS r2, samples,"
        " (SELECT round(min(rss) / 1e6, 1) FROM system WHERE role = 'sut') AS rss_min_mb,"
        " (SELECT round(max(rss) / 1e6, 1) FROM system WHERE role = 'sut') AS rss_max_mb,"
        " (SELECT count(*) FROM requests_x) AS calls"
        f" FROM rss_per_call({warmup_s:g})"
    )


WASTED_GROWTH_WITNESSES = """
SELECT row_number() OVER (ORDER BY f.t_from) AS outage, b.fault_id, b.wasted_attempts,
       round(b.stop_ms / 1e3, 3) AS stopped_after_s
FROM breaker b JOIN fault_windows f USING (fault_id) WHERE b.provider = 'A' ORDER BY f.t_from
"""


# Least-squares slope of the attempts wasted on the flapping provider per outage,
# against the outage's number (0 with fewer than two outages judged).
WASTED_GROWTH_SQL = """
SELECT coalesce(regr_slope(wasted_attempts, k), 0) AS value FROM (
    SELECT b.wasted_attempts, row_number() OVER (ORDER BY f.t_from) AS k
    FROM breaker b JOIN fault_windows f USING (fault_id) WHERE b.provider = 'A')
"""


@builtin("long_running_stability", "a soak judging memory growth and repeated breaker cycles")
def build(full: bool, expect: dict[str, float]) -> Scenario:
    rate, duration, at, down, up, count, warmup, max_growth = FULL if full else FAST
    leak_kb = expect["rss_growth_kb_per_request"]
    return Scenario(
        name="long_running_stability",
        description="A flaps for the whole run under steady load; memory and breaker judged",
        providers=[mock("A"), mock("B"), mock("C")],
        sut=reference_router(strategy="priority"),
        workloads=[
            HttpLoad(rate=rate, mix="eth_blockNumber=1,eth_getBalance=1,eth_call=1",
                     timeout_s=client_timeout_s(expect)),
            WsLoad(subscriptions="newHeads=1", reconnect=True),
        ],
        duration_s=duration,
        faults=[
            Fault("A", "reset", start_s=at, duration_s=count * down + (count - 1) * up,
                  schedule={"flap": {"down_s": down, "up_s": up, "count": count}},
                  fault_id="a-flap"),
        ],
        slos=[
            {"name": "memory_growth", "sql": memory_sql(warmup), "expect": f"<= {leak_kb:g}",
             "witnesses": memory_witnesses(warmup),
             "description": f"the router keeps under {leak_kb:g} KB per call served after"
                            f" {warmup:g} s of warm-up (lower 95% bound of the RSS slope;"
                            " expect.rss_growth_kb_per_request)"},
            *policy(expect, "come_back", "wasted_attempts"),
            *invariants("no_unrescued_failure", "no_wrong_answer", "no_hung_call",
                        "no_retry_storm", "no_abandoned_provider"),
            {"name": "wasted_growth", "sql": WASTED_GROWTH_SQL,
             "witnesses": WASTED_GROWTH_WITNESSES,
             "expect": f"<= {max_growth:g}",
             "description": "attempts wasted per outage do not grow from cycle to cycle"},
            {"name": "latency_every_window", "slo": "latency{window:10s}: p(95) < 500",
             "description": "every 10 s window: p95 latency under 500 ms (no slow drift)"},
            *invariants("ws_no_gap"),
            {"name": "ws_kept_up", "sql": KEPT_UP_SQL, "expect": f"<= {KEPT_UP_SLACK}",
             "witnesses": KEPT_UP_WITNESSES,
             "description": "the subscriber got every block produced while it ran"},
        ],
    )  # fmt: skip
