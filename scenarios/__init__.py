"""Scenarios: compose providers, chaos, a system under test and load into a judged run.

Layout: `api` (the Scenario value and its parts, validated eagerly), `runner` (starts,
watches and stops every process of a run, then judges it), `sut` (the system under
test's spec, config, command and probe), `fields` (the field checks of both),
`collectors` and `metrics` (process samples and Prometheus scrapes), `loader` (scenario
files, built-in names, CLI overrides, the printed plan), `builtin/` (the built-in
scenarios and their registry), `demo` (`battle demo`), `pytest_plugin`, `cli`
(`battle`).
"""

from .api import Collectors as Collectors
from .api import Fault as Fault
from .api import HttpLoad as HttpLoad
from .api import Scenario as Scenario
from .api import Sut as Sut
from .api import WsLoad as WsLoad
from .api import anvil as anvil
from .api import external as external
from .api import managed as managed
from .api import mock as mock
from .api import reference_router as reference_router
from .api import remote as remote
from .builtin import builtin as builtin
from .demo import DEMO_SLOS as DEMO_SLOS
from .demo import DemoScenario as DemoScenario
from .demo import run_demo as run_demo
from .errors import BattleError as BattleError
from .errors import ConfigError as ConfigError
from .errors import RunError as RunError
from .loader import apply_overrides as apply_overrides
from .loader import load_scenario as load_scenario
from .runner import ScenarioResult as ScenarioResult
from .runner import run_scenario as run_scenario

__all__ = (
    "DEMO_SLOS",
    "BattleError",
    "Collectors",
    "ConfigError",
    "DemoScenario",
    "Fault",
    "HttpLoad",
    "RunError",
    "Scenario",
    "ScenarioResult",
    "Sut",
    "WsLoad",
    "anvil",
    "apply_overrides",
    "builtin",
    "external",
    "load_scenario",
    "managed",
    "mock",
    "reference_router",
    "remote",
    "run_demo",
    "run_scenario",
)
