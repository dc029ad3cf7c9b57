"""The scenarios package's public surface, pinned."""

from __future__ import annotations

import scenarios


def test_the_package_exports_exactly_the_scenario_api():
    assert set(scenarios.__all__) == {
        "DEMO_SLOS", "BattleError", "Collectors", "ConfigError", "DemoScenario", "Fault",
        "HttpLoad", "RunError", "Scenario", "ScenarioResult", "Sut", "WsLoad", "anvil",
        "apply_overrides", "builtin", "external", "load_scenario", "managed", "mock",
        "reference_router", "remote", "run_demo", "run_scenario",
    }  # fmt: skip
    for name in scenarios.__all__:
        assert getattr(scenarios, name) is not None, name
