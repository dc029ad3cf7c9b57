"""The reference router's circuit breaker end to end: a short battle run aimed at it
passes with the breaker on and fails with it off, the report naming the SLO that caught
it. Full stack on loopback (mock providers, chaos proxy, router, load, analysis).

The other behaviours are proven by the built-in scenarios' tests, on with the scenario
passing and off with it failing on the SLO that names the defect: failover and the
breaker (test_builtin_http_failover.py), attempt timeouts
(test_builtin_provider_degradation.py; the `fastest` strategy is policy there, its
absence reported, not failed on), rate-limit demotion
(test_builtin_rate_limited_provider.py), head tracking (test_builtin_stale_head.py),
breaker recovery (test_builtin_total_outage.py) and WebSocket subscriptions
(test_builtin_ws_continuity.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analysis import Check
from scenarios.demo import DemoScenario, run_demo

STOPS_SENDING = Check(
    "breaker_stop_max_ms",
    "<",
    1500,
    "the router stopped sending to the failing provider within 1.5 s",
)
FEW_WASTED = Check(
    "amplification", "<=", 1.05, "at most 5% more upstream exchanges than client requests"
)
ANSWERS = Check("success_rate", ">=", 0.99, "clients got a correct answer to 99% of calls")

# 8 s of load at 40 req/s; provider A faulted from 1 s to 7 s.
SHORT = {"rate": 40.0, "duration_s": 8.0, "fault_at_s": 1.0, "fault_for_s": 6.0}


def battle(
    tmp_path: Path,
    name: str,
    fault: dict,
    router: dict,
    *,
    kind: str = "http_error",
    slos: tuple[Check, ...] = (ANSWERS, STOPS_SENDING, FEW_WASTED),
    mix: str = "eth_blockNumber=1,eth_getBalance=1",
) -> dict[str, bool]:
    """Runs the scenario; returns each SLO's pass/fail after checking the run is valid
    and that report.json and report.md name every SLO with its result."""
    scenario = DemoScenario(
        name=name,
        fault_kind=kind,
        fault_params=fault,
        router_options=router,
        slos=slos,
        mix=mix,
        **SHORT,
    )
    judgement = run_demo(scenario, tmp_path)
    invalid = [
        f"{v.expression} (observed {v.observed})" for v in judgement.validity if not v.passed
    ]
    assert not invalid, invalid
    report = json.loads((judgement.run_dir / "report.json").read_text())
    assert {s["name"]: s["passed"] for s in report["slos"]} == {
        s.name: s.passed for s in judgement.slos
    }
    markdown = (judgement.run_dir / "report.md").read_text().splitlines()
    for slo in judgement.slos:
        mark = "✅" if slo.passed else "❌"
        assert any(mark in line and slo.name in line for line in markdown), slo.name
    expected_verdict = "passed" if all(s.passed for s in judgement.slos) else "failed"
    assert judgement.verdict == expected_verdict
    return {s.name: s.passed for s in judgement.slos}


@pytest.mark.parametrize("breaker", [True, False], ids=["on", "off"])
def test_circuit_breaker_stops_traffic_to_a_failing_provider(tmp_path, breaker):
    slos = battle(tmp_path, f"breaker-{breaker}", {"status": 503}, {"circuit_breaker": breaker})
    if breaker:
        assert all(slos.values()), slos
    else:
        failing = {name for name, passed in slos.items() if not passed}
        # The SLOs that must catch it (others may fail too: never the exact set).
        assert {"breaker_stop_max_ms", "amplification"} <= failing, failing
