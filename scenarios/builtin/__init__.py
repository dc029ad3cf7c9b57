"""The built-in scenarios, by name (`battle list`, `battle run NAME [--full]`).

A built-in is a module of this package with a function decorated by `builtin`:

    @builtin("http_failover", "the primary provider flaps under steady load")
    def build(full: bool, expect: dict[str, float]) -> Scenario: ...

`full=False` is the fast form (CI: at most 60 s in all, 10-20 s of load); `full=True`
the full one. `expect` is the router profile resolved (`analysis.expect`: every
expectation, the user's where given, else its default), for the SLOs to judge against;
a one-argument `build(full)` is still called that way. To add one, write the module and
add its name to `MODULES`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from analysis.expect import resolve_expect

from ..api import Scenario
from ..errors import ConfigError

__all__ = ["MODULES", "Builtin", "builtin", "get", "registry"]

# The modules that register built-ins, in the order `battle list` shows them.
MODULES = (
    "http_failover",
    "provider_degradation",
    "rate_limited_provider",
    "ws_continuity",
    "stale_head",
    "lying_head",
    "total_outage",
    "concurrent_load",
    "long_running_stability",
    "demo",
)

Build = Callable[..., Scenario]


def takes_expect(build: Callable[..., Any]) -> bool:
    """Whether `build` takes the expectations: `build(full, expect)`, not `build(full)`."""
    params = inspect.signature(build).parameters.values()
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)


@dataclass(frozen=True)
class Builtin:
    name: str
    description: str
    build: Build

    def scenario(
        self, *, full: bool = False, expect: Mapping[str, float] | None = None
    ) -> Scenario:
        """The fast form, or with `full` the full form, for the router profile
        `expect` (declared expectations; the others keep their defaults). The result
        records `expect` as declared, over whatever the built-in declares itself.

        Raises:
            ConfigError: `expect` names an unknown expectation or a bad value.
        """
        given = dict(expect or {})
        try:
            resolved = resolve_expect(given)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        scenario = self.build(full, resolved) if takes_expect(self.build) else self.build(full)
        if given:
            scenario = scenario.replace(expect={**scenario.expect, **given})
        return scenario


_REGISTRY: dict[str, Builtin] = {}


def builtin(name: str, description: str) -> Callable[[Build], Build]:
    """Registers `build(full: bool, expect: dict[str, float]) -> Scenario` (or the older
    `build(full: bool)`) as the built-in `name`."""

    def register(build: Build) -> Build:
        if name in _REGISTRY:
            raise ValueError(f"built-in scenario {name!r} is registered twice")
        _REGISTRY[name] = Builtin(name, description, build)
        return build

    return register


def registry() -> dict[str, Builtin]:
    """Every built-in, by name, in `MODULES` order."""
    for module in MODULES:
        import_module(f"{__name__}.{module}")
    # In MODULES order whatever imported a module first (a test importing one directly
    # registers it early); built-ins registered from elsewhere come last.
    rank = {f"{__name__}.{module}": i for i, module in enumerate(MODULES)}
    ordered = sorted(_REGISTRY.values(), key=lambda b: rank.get(b.build.__module__, len(rank)))
    return {b.name: b for b in ordered}


def get(name: str) -> Builtin:
    """The built-in `name`.

    Raises:
        ConfigError: there is none; the message lists the known names.
    """
    found = registry().get(name)
    if found is None:
        raise ConfigError(f"no built-in scenario {name!r}; known: {', '.join(registry())}")
    return found
