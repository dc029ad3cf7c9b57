"""The reference router's behaviours end to end: for each, a short battle run aimed at it
passes with the behaviour on and fails with it off, the report naming the SLO that
caught it. Full stack on loopback (mock providers, chaos proxy, router, load, analysis).

Not covered here: the `fastest` strategy (no `latency` fault in the proxy when this was
written) and WebSocket subscriptions (the demo machinery drives no WebSocket load);
tests/integration/test_router_ws_chaos.py runs the WebSocket faults through the real
chaos proxy and mock providers instead, without the load generator and analysis.
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
        assert failing == {"breaker_stop_max_ms", "amplification"}


@pytest.mark.parametrize("rate_limit", [True, False], ids=["on", "off"])
def test_rate_limit_demotes_the_provider_until_retry_after(tmp_path, rate_limit):
    # The breaker is off in both runs, so that only the rate-limit handling can stop the
    # traffic (with the breaker on, repeated 429s would trip it instead).
    slos = battle(
        tmp_path,
        f"rate-limit-{rate_limit}",
        {"status": 429, "headers": {"Retry-After": "30"}},
        {"circuit_breaker": False, "rate_limit": rate_limit},
    )
    if rate_limit:
        assert all(slos.values()), slos
    else:
        failing = {name for name, passed in slos.items() if not passed}
        assert failing == {"breaker_stop_max_ms", "amplification"}


NEVER_BACKWARDS = Check("heads_backwards", "==", 0, "eth_blockNumber never went backwards")
FRESH = Check("head_lag_max_blocks", "<=", 3, "no answer more than 3 blocks behind the head")


@pytest.mark.parametrize("heads", [True, False], ids=["on", "off"])
def test_head_tracking_keeps_a_stale_provider_out_of_eth_block_number(tmp_path, heads):
    # Provider A reports a head 10 blocks behind the truth; round robin would give every
    # third eth_blockNumber to it. The load worker judges answers against the chain, so
    # a stale head is a wrong answer.
    slos = battle(
        tmp_path,
        f"heads-{heads}",
        {"lag_blocks": 10},
        {"head_tracking": heads},
        kind="stale",
        slos=(ANSWERS, NEVER_BACKWARDS, FRESH),
        mix="eth_blockNumber=1",
    )
    if heads:
        assert all(slos.values()), slos
    else:
        assert not slos["success_rate"], slos
