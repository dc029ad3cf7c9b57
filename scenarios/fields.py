"""Checking a scenario's fields: each check raises one `ConfigError` naming the field
(`workloads[0].rate must be > 0, got -5`). Shared by the Scenario API (`api`) and the
system under test's spec (`sut`)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import ConfigError

__all__ = ["NAME", "build", "fail", "integer", "known", "number"]

# A scenario's name, a config file's name: safe in a path and a shell.
NAME = re.compile(r"^[A-Za-z0-9_.-]{1,60}$")


def fail(where: str, rule: str, value: Any) -> ConfigError:
    """The error for field `where` breaking `rule` with `value`."""
    return ConfigError(f"{where} {rule}, got {value!r}")


def number(where: str, value: Any, *, minimum: float = 0.0, strict: bool = True) -> float:
    """`value` as a number above `minimum` (or at least it, when not `strict`)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise fail(where, "must be a number", value)
    if (strict and not value > minimum) or (not strict and value < minimum):
        raise fail(where, f"must be {'>' if strict else '>='} {minimum:g}", value)
    return float(value)


def integer(where: str, value: Any, minimum: int) -> int:
    """`value` as an integer of at least `minimum` (a bool is none)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise fail(where, f"must be an integer >= {minimum}", value)
    return value


def known(where: str, data: Mapping[str, Any], allowed: Sequence[str]) -> None:
    """A table with no field outside `allowed`."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a table/object, got {type(data).__name__}")
    extra = sorted(set(data) - set(allowed))
    if extra:
        raise ConfigError(f"{where}.{extra[0]} is not a known field (known: {', '.join(allowed)})")


def build(cls: type, data: Mapping[str, Any], where: str) -> Any:
    """The dataclass `cls` built from table `data`, which may hold only its fields."""
    known(where, data, [f.name for f in dataclasses.fields(cls)])
    try:
        return cls(**data)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None
