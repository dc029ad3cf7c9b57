"""The pytest plugin (entry point `pytest11`): gate CI on battle runs with plain pytest.

    @pytest.mark.battle("http_failover")                       # a built-in, fast form
    def test_router_fails_over(battle):
        assert battle.metrics["failovers"] >= 1

    @pytest.mark.battle("scenarios/mine.toml", full=True, rate=200,
                        set=["sut.options.failover=false"], expect="failed")
    def test_without_failover_it_fails(battle):
        assert "no_unrescued_failure" in battle.failed_slos

    @pytest.mark.battle("http_failover", sut="my_router.sut.toml", profile={"come_back_s": 30})
    def test_my_router_comes_back_within_its_declared_30_s(battle): ...

The `battle` fixture runs the marker's scenario (a built-in name, a .py or .toml path,
or a `Scenario`), with the CLI's overrides (`rate`, `duration`, `seed`, `sut_url`,
`providers`, `set`; `sut`: a `--sut` file; `profile`: the router profile, as
`--expect`, which a built-in builds its SLOs from), and returns its `ScenarioResult`.
The test fails when the verdict is not `expect` (default `passed`), with the run's
summary as the message, before its body runs; a bad scenario is a test error. Runs go
under `--battle-runs-dir` (default: a temporary folder of the session); `--battle-full`
picks every full form.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

__all__ = ["battle", "pytest_addoption", "pytest_configure", "pytest_runtest_call"]

_OVERRIDES = ("rate", "duration", "seed", "sut_url", "providers", "set", "sut", "profile")
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
        " providers=, set=[...], sut=FILE, profile={...}): the scenario the `battle`"
        " fixture runs",
    )


@pytest.fixture
def battle(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Runs the test's `battle` marker scenario and returns its `ScenarioResult`."""
    from scenarios.api import Scenario
    from scenarios.errors import ConfigError
    from scenarios.loader import apply_overrides, expect_from_sets, load_scenario, load_sut_file
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
    sets = [sets] if isinstance(sets, str) else list(sets)
    sut_file = kwargs.pop("sut", None)
    try:
        # The router profile as `battle run` takes it, weakest first: the --sut file's,
        # --set expect.*, then `profile` (--expect).
        sut, from_file = load_sut_file(sut_file) if sut_file else (None, {})
        profile = {**from_file, **expect_from_sets(sets), **dict(kwargs.pop("profile", {}))}
        if isinstance(target, Scenario):
            scenario, form = target, "custom"
        else:
            scenario, form = load_scenario(str(target), full=full, expect=profile)
        scenario = apply_overrides(scenario, sets=sets, sut=sut, expect=profile, **kwargs)
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
