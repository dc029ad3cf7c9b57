"""demo: `battle demo`'s scenario as a built-in (three mock providers, A down mid-run)."""

from __future__ import annotations

from ..api import Scenario
from ..demo import DemoScenario
from . import builtin

# The fast form is the demo's end-to-end test's: 12 s of load, A down from 4 s for 5 s.
FAST = {"rate": 50.0, "duration_s": 12.0, "fault_at_s": 4.0, "fault_for_s": 5.0}


@builtin("demo", "three mock providers, provider A down mid-run, the reference router in front")
def build(full: bool = False) -> Scenario:
    return (DemoScenario() if full else DemoScenario(**FAST)).to_scenario()
