"""The runner's errors; the CLI maps them onto DESIGN.md's exit codes."""

from __future__ import annotations

__all__ = ["BattleError", "ConfigError", "RunError"]


class BattleError(Exception):
    """Base of the errors the CLI reports in one line."""


class ConfigError(BattleError):
    """A scenario, flag or file is wrong (exit 2). The message names the field."""


class RunError(BattleError):
    """The run could not be carried out as planned, so it cannot be trusted (exit 3)."""
