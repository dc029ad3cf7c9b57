"""total_outage: every provider is down at once for a while, then back (recovery).

A, B and C reset every connection for the same period. No router can answer then; what
is judged is how it fails and how it recovers, whatever its policy: clients get an
error, never a hang and never a made-up answer (a router that swallows errors as
`{"result": null}` fails `no_wrong_answer`), no call hammers one dead provider
(`no_retry_storm`), and once the providers are back the router serves again from the
ones it used before (`no_abandoned_provider`). How soon it recovers is its policy
(breakers open for seconds and may back off): `recovery_time` and `come_back` are
judged against expect.recovery_s and expect.come_back_s. A priority router's idle
backups are not judged on coming back. After the recovery allowance, a call that fails
while a provider is up and untried is an unrescued failure.
"""

from __future__ import annotations

from ..api import Fault, HttpLoad, Scenario, mock, reference_router
from . import builtin
from ._slos import batch_mix, client_timeout_s, invariants, policy

PROVIDERS = ("A", "B", "C")
# (rate, load seconds, outage starts at, outage lasts). The runner lengthens the load to
# expect.come_back_s after the outage (plus 2 s).
FAST = (40.0, 14.0, 3.0, 4.0)
FULL = (100.0, 60.0, 10.0, 10.0)

RECOVERY_SQL = """
WITH o AS (SELECT max(t_to) AS t_end FROM fault_windows)
SELECT coalesce(max(w.t_start + (s.second + 1) * 1000000000 - o.t_end), 0) / 1e9
FROM o, run_window w, settings st, success_by_second s
WHERE s.success_rate < st.success_target
  AND w.t_start + (s.second + 1) * 1000000000 > o.t_end
""".strip()
RECOVERY_WITNESSES = """
WITH o AS (SELECT max(t_to) AS t_end FROM fault_windows)
SELECT s.second AS second_after_t0, s.requests, s.ok, round(s.success_rate, 3) AS success_rate
FROM o, run_window w, settings st, success_by_second s
WHERE s.success_rate < st.success_target
  AND w.t_start + (s.second + 1) * 1000000000 > o.t_end
ORDER BY s.second
""".strip()


@builtin("total_outage", "every provider is down for a period, then back; recovery")
def build(full: bool, expect: dict[str, float]) -> Scenario:
    rate, duration, at, length = FULL if full else FAST
    recovery_s = expect["recovery_s"]
    return Scenario(
        name="total_outage",
        description=f"A, B and C reset every connection for {length:g} s",
        providers=[mock(name) for name in PROVIDERS],
        sut=reference_router(strategy="round_robin"),
        workloads=[HttpLoad(rate=rate, mix="eth_blockNumber=1,eth_getBalance=1,eth_call=1",
                            batch=batch_mix(), timeout_s=client_timeout_s(expect))],
        duration_s=duration,
        faults=[Fault(name, "reset", start_s=at, duration_s=length,
                      fault_id=f"{name.lower()}-down") for name in PROVIDERS],
        slos=[
            *invariants("no_unrescued_failure", "no_wrong_answer", "no_hung_call",
                        "no_retry_storm", "no_abandoned_provider"),
            {"name": "recovery_time", "sql": RECOVERY_SQL, "expect": f"<= {recovery_s:g}",
             "witnesses": RECOVERY_WITNESSES,
             "description": f"within {recovery_s:g} s (expect.recovery_s) of the outage's"
                            " end, every second had 99% of its calls answered again"},
            *policy(expect, "come_back"),
        ],
    )  # fmt: skip
