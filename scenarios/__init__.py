"""Scenarios: compose providers, chaos, a system under test and load into a judged run."""

from .demo import DEMO_SLOS, DemoScenario, run_demo
from .errors import BattleError, ConfigError, RunError

__all__ = ("DEMO_SLOS", "BattleError", "ConfigError", "DemoScenario", "RunError", "run_demo")
