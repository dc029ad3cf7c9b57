"""total_outage: every provider is down at once for a while, then back (recovery).

A, B and C reset every connection for the same period. No router can answer then; what
is judged is how it fails and how it recovers: clients get a quick error rather than a
hang, the router stops hammering dead providers, and once they are back it finds out
soon (its breakers probe, and close) and serves as before. A router whose breaker backs
off too far after a failed probe (the reference router with `backoff_factor = 8`:
reopened for 16 s) sits out the return of its providers with every breaker open,
failing clients for no reason. SLOs judge clients (success before the outage and after
its recovery window, success in the recovery window, time from the end of the outage to
the last bad second, latency during the outage, no call left to time out) and upstream
(attempts spent on the dead providers, time until each served again).

`phase:steady` is the run outside the outage and its recovery window: before and after.
A call sent a moment before the outage and answered in it may fail; at most one such
call falls in the 99% of `success_outside`.
"""

from __future__ import annotations

from ..api import Fault, HttpLoad, Scenario, mock, reference_router
from . import builtin

PROVIDERS = ("A", "B", "C")
# (rate, load seconds, outage starts at, outage lasts, recovery limit ms, recovery
# window s). The reference breaker (2 s open, doubled after each failed probe) probes
# 2 s, then 6 s, then 14 s into an outage: it finds the providers back about 2 s after a
# 4 s outage and 4 s after a 10 s one. The limits add the 1 s granularity of
# success_by_second and a margin; the recovery window (`phase:recovery:*`) is twice the
# expected recovery or more, so that most of its calls are answered. The load runs on
# for the recovery window plus at least 2 s after the outage, so `phase:steady` has a
# stretch after it.
FAST = (40.0, 14.0, 3.0, 4.0, 4000, 5.0)
FULL = (100.0, 60.0, 10.0, 10.0, 6500, 10.0)

RECOVERY_SQL = """
WITH o AS (SELECT max(t_to) AS t_end FROM fault_windows)
SELECT coalesce(max(w.t_start + (s.second + 1) * 1000000000 - o.t_end), 0) / 1e6
FROM o, run_window w, settings st, success_by_second s
WHERE s.success_rate < st.success_target
  AND w.t_start + (s.second + 1) * 1000000000 > o.t_end
""".strip()

TIMEOUTS_SQL = "SELECT count(*) FROM requests WHERE outcome = 'timeout'"


@builtin("total_outage", "every provider is down for a period, then back; recovery")
def build(full: bool = False) -> Scenario:
    rate, duration, at, length, recovery_ms, window_s = FULL if full else FAST
    return Scenario(
        name="total_outage",
        description=f"A, B and C reset every connection for {length:g} s",
        providers=[mock(name) for name in PROVIDERS],
        sut=reference_router(strategy="round_robin"),
        workloads=[HttpLoad(rate=rate, mix="eth_blockNumber=1,eth_getBalance=1,eth_call=1")],
        duration_s=duration,
        analysis={"recovery_window_s": window_s},
        faults=[Fault(name, "reset", start_s=at, duration_s=length,
                      fault_id=f"{name.lower()}-down") for name in PROVIDERS],
        slos=[
            {"name": "success_outside", "slo": "success{phase:steady}: rate >= 0.99",
             "description": f"before the outage and after its {window_s:g} s recovery"
                            " window, 99% of calls answered"},
            {"name": "recovery_success", "slo": "success{phase:recovery:a-down}: rate >= 0.4",
             "description": f"in the {window_s:g} s after the outage, at least 40% of calls"
                            " answered"},
            {"name": "recovery_time", "sql": RECOVERY_SQL, "expect": f"< {recovery_ms}",
             "description": f"within {recovery_ms / 1000:g} s of the outage's end, every"
                            " second had 99% of its calls answered again"},
            {"name": "fail_fast", "slo": "latency{phase:during:a-down}: p(99) < 1000",
             "description": "during the outage, clients got their error within 1 s"},
            {"name": "no_hanging", "sql": TIMEOUTS_SQL, "expect": "== 0",
             "description": "no call was left to time out"},
            {"name": "wasted_attempts", "slo": "wasted_attempts: count <= 45",
             "description": "at most 15 attempts per provider sent into the outage before"
                            " the router stopped"},
            {"name": "come_back", "slo": f"traffic_return: max < {recovery_ms}",
             "description": f"every provider served again within {recovery_ms / 1000:g} s"
                            " of the outage's end"},
        ],
    )  # fmt: skip
