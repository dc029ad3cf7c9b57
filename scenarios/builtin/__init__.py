"""The built-in scenarios, by name (`battle list`, `battle run NAME [--full]`).

A built-in is a module of this package with a function decorated by `builtin`:

    @builtin("http_failover", "the primary provider flaps under steady load")
    def build(full: bool = False) -> Scenario: ...

`full=False` is the fast form (CI: at most 60 s in all, 10-20 s of load); `full=True`
the full one. To add one, write the module and add its name to `MODULES`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module

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
    "total_outage",
    "concurrent_load",
    "long_running_stability",
    "demo",
)

Build = Callable[[bool], Scenario]


@dataclass(frozen=True)
class Builtin:
    name: str
    description: str
    build: Build

    def scenario(self, *, full: bool = False) -> Scenario:
        """The fast form, or with `full` the full form."""
        return self.build(full)


_REGISTRY: dict[str, Builtin] = {}


def builtin(name: str, description: str) -> Callable[[Build], Build]:
    """Registers `build(full: bool) -> Scenario` as the built-in `name`."""

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
