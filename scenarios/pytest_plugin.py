"""The pytest plugin (entry point `pytest11`): gate CI on battle runs with plain pytest.

    @pytest.mark.battle("http_failover")                       # a built-in, fast form
    def test_router_fails_over(battle):
        assert battle.metrics["failovers"] >= 1

    @pytest.mark.battle("scenarios/mine.toml", full=True, rate=200,
                        set=["sut.options.failover=false"], expect="failed")
    def test_without_failover_it_fails(battle):
        assert "success" in battle.failed_slos

The `battle` fixture runs the marker's scenario (a built-in name, a .py or .toml path,
or a `Scenario`), with the CLI's overrides (`rate`, `duration`, `seed`, `sut_url`,
`providers`, `set`), and returns its `ScenarioResult`. The test fails when the verdict
is not `expect` (default `passed`), with the run's summary as the message, before its
body runs; a bad scenario is a test error. Runs go under `--battle-runs-dir` (default: a temporary
folder of the session); `--battle-full` picks every full form.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

__all__ = ["battle", "pytest_addoption", "pytest_configure", "pytest_runtest_call"]

_OVERRIDES = ("rate", "duration", "seed", "sut_url", "providers", "set")
_VERDICTS = ("passed", "failed", "invalid", "regressed")
# (result, expected verdict) of the test's run, checked when the test is called, so a
# verdict mismatch is the test's failure rather than an error in its fixture.
_OUTCOME = pytest.StashKey[tuple[Any, str]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("battle", "battle-test JSON-RPC routers")
    group.addoption("--battle-runs-dir", type=Path, help="keep run directories here")
    group.addoption("--battle-full", action="store_true", help="run every full form")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "battle(scenario, *, full=False, expect='passed', rate=, duration=, seed=, sut_url=,"
        " providers=, set=[...]): the scenario the `battle` fixture runs",
    )


@pytest.fixture
def battle(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Runs the test's `battle` marker scenario and returns its `ScenarioResult`."""
    from scenarios.api import Scenario
    from scenarios.errors import ConfigError
    from scenarios.loader import apply_overrides, load_scenario
    from scenarios.runner import run_scenario

    marker = request.node.get_closest_marker("battle")
    if marker is None or len(marker.args) != 1:
        raise pytest.UsageError("the battle fixture needs @pytest.mark.battle(scenario)")
    target, kwargs = marker.args[0], dict(marker.kwargs)
    full = bool(kwargs.pop("full", False) or request.config.getoption("--battle-full"))
    expect = kwargs.pop("expect", "passed")
    if expect not in _VERDICTS:
        raise pytest.UsageError(f"battle marker: expect must be one of {_VERDICTS}, got {expect!r}")
    unknown = sorted(set(kwargs) - set(_OVERRIDES))
    if unknown:
        raise pytest.UsageError(f"battle marker: unknown argument {unknown[0]!r}")
    sets = kwargs.pop("set", ())
    try:
        if isinstance(target, Scenario):
            scenario, form = target, "custom"
        else:
            scenario, form = load_scenario(str(target), full=full)
        scenario = apply_overrides(
            scenario, sets=[sets] if isinstance(sets, str) else sets, **kwargs
        )
    except ConfigError as exc:
        raise pytest.UsageError(f"battle marker: {exc}") from None
    runs_dir = request.config.getoption("--battle-runs-dir") or tmp_path_factory.mktemp("battle")
    result = run_scenario(scenario, Path(runs_dir), form=form)
    request.node.stash[_OUTCOME] = (result, expect)
    return result


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    """Fails a test whose battle run's verdict is not the one it expects."""
    outcome = item.stash.get(_OUTCOME, None)
    if outcome is not None:
        result, expect = outcome
        if result.verdict != expect:
            pytest.fail(f"battle verdict {result.verdict}, expected {expect}\n{result.summary}")
