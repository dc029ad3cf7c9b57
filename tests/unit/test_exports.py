"""Every package's public surface, pinned: its `__all__` is exactly these names, and it
exports nothing else (a name added or dropped is a decision, made here)."""

from __future__ import annotations

import importlib
import types

import pytest

SURFACES = {
    "analysis": {
        "Check", "CheckResult", "Converter", "DEFAULT_VALIDITY", "ExitCode", "METRICS",
        "RunJudgement", "SqlCheck", "Threshold", "compare", "ingest", "judge_run",
        "load_baseline", "make_baseline", "parse_slo", "run_shell", "slo_from_json",
        "summary_text", "write_reports"
    },
    "chaosproxy": {
        "ChaosProxyError", "Config", "ConfigError", "FaultSpec", "Listener", "Timeline",
        "load_faults", "main", "parse_args", "parse_faults"
    },
    "loadgen": {
        "BatchSpec", "Bursts", "Clock", "ClosedLoop", "ConstantRate", "Http1Transport",
        "HttpxTransport", "Judgement", "LinearRamp", "Poisson", "RequestMix", "Schedule",
        "Share", "Steps", "Summary", "Transport", "Truth", "WorkerConfig", "judge",
        "judge_batch", "open_transport", "parse_arrival", "parse_batch", "parse_mix",
        "run_worker"
    },
    "providers": {
        "Behaviour", "Chain", "FleetPlan", "MockNode", "ProviderDef", "Redactor",
        "parse_behaviour", "parse_provider", "plan_fleet", "redact_url"
    },
    "scenarios": {
        "BattleError", "Collectors", "ConfigError", "DEMO_SLOS", "DemoScenario", "Fault",
        "HttpLoad", "RunError", "Scenario", "ScenarioResult", "Sut", "WsLoad", "anvil",
        "apply_overrides", "builtin", "external", "load_scenario", "managed", "mock",
        "reference_router", "remote", "run_demo", "run_scenario"
    },
    "examples.reference_router": {
        "AttemptResult", "BreakerSettings", "CircuitBreaker", "ConfigError", "HeadSequencer",
        "HeadSettings", "HeadTracker", "LatencyTracker", "RETRIABLE_RPC_ERRORS", "RateLimit",
        "RateLimitSettings", "Reply", "Router", "RouterConfig", "Strategy", "UpstreamConfig",
        "UpstreamFailure", "UpstreamPool", "UpstreamResponse", "UpstreamSelector", "Verdict",
        "WebSocketSettings", "classify", "failure_body", "load_config", "open_upstream_client",
        "parse_config", "rate_limit_of", "render_config", "serve"
    },
}  # fmt: skip


@pytest.mark.parametrize("package", sorted(SURFACES))
def test_a_package_exports_exactly_its_pinned_names(package):
    module = importlib.import_module(package)
    assert set(module.__all__) == SURFACES[package]
    public = {
        name
        for name in dir(module)
        if not name.startswith("_") and not isinstance(getattr(module, name), types.ModuleType)
    }
    # `from __future__ import annotations` leaves `annotations` behind; it is no export.
    assert public - {"annotations"} == SURFACES[package], public ^ SURFACES[package]
    for name in module.__all__:
        assert getattr(module, name) is not None, name
