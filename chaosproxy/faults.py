"""Fault specs: parsing and validating the fault file. Pure: no I/O beyond `load_faults`.

A fault file is a JSON list of objects::

    {"fault_id": "a-down", "provider": "A", "kind": "reset",
     "start_s": 10, "duration_s": 10, "params": {}}

Each kind has a parameter parser in `PARAM_PARSERS`; adding a kind is one parser here
plus one addon class in `chaosproxy.addons`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaosproxy.errors import ConfigError

__all__ = [
    "FAULT_FIELDS",
    "PARAM_PARSERS",
    "FaultSpec",
    "HttpErrorParams",
    "load_faults",
    "parse_faults",
]


@dataclass(frozen=True, slots=True)
class HttpErrorParams:
    """`http_error`: answer from the proxy with `status`, without going upstream.

    `body` None means a JSON-RPC error echoing the request id (built per request).
    """

    status: int = 503
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """One validated fault of the fault file."""

    fault_id: str
    provider: str
    kind: str
    start_s: float
    duration_s: float
    # The params exactly as given (JSON-serialisable), for events and the control API.
    raw_params: Mapping[str, Any] = field(default_factory=dict)
    # The parsed, kind-specific params (None for kinds without params).
    params: Any = None

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _parse_reset(where: str, params: Mapping[str, Any]) -> None:
    for key in params:
        raise ConfigError(f"{where}.{key} is not a parameter of kind 'reset' (it takes none)")
    return None


# Default of http_error.status: 503 is what load balancers and most hosted providers
# send when a backend is unavailable.
DEFAULT_HTTP_ERROR_STATUS = 503


def _parse_http_error(where: str, params: Mapping[str, Any]) -> HttpErrorParams:
    allowed = ("status", "body", "headers")
    for key in params:
        if key not in allowed:
            raise ConfigError(
                f"{where}.{key} is not a parameter of kind 'http_error' "
                f"(expected one of {list(allowed)})"
            )
    status = params.get("status", DEFAULT_HTTP_ERROR_STATUS)
    if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
        raise ConfigError(f"{where}.status must be an integer in [200, 599], got {status!r}")
    body: bytes | None
    raw_body = params.get("body")
    if raw_body is None:
        body = None
    elif isinstance(raw_body, str):
        body = raw_body.encode()
    else:
        # Any other JSON value is sent as its JSON text.
        body = json.dumps(raw_body, separators=(",", ":")).encode()
    headers = params.get("headers", {})
    if not isinstance(headers, dict):
        raise ConfigError(f"{where}.headers must be an object, got {_describe(headers)}")
    pairs = []
    for name, value in headers.items():
        if not name or any(c in name for c in " :\r\n"):
            raise ConfigError(f"{where}.headers has an invalid header name {name!r}")
        if not isinstance(value, str) or any(c in value for c in "\r\n"):
            raise ConfigError(f"{where}.headers.{name} must be a single-line string, got {value!r}")
        pairs.append((name, value))
    return HttpErrorParams(status=status, body=body, headers=tuple(pairs))


# kind -> parser(where, params) returning the kind's parsed params.
PARAM_PARSERS: dict[str, Callable[[str, Mapping[str, Any]], Any]] = {
    "reset": _parse_reset,
    "http_error": _parse_http_error,
}

FAULT_FIELDS = ("fault_id", "provider", "kind", "start_s", "duration_s", "params")


def _number(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where} must be a number, got {_describe(value)}")
    if not math.isfinite(value):
        raise ConfigError(f"{where} must be finite, got {value!r}")
    return float(value)


def _parse_one(i: int, item: Any, providers: Collection[str]) -> FaultSpec:
    where = f"faults[{i}]"
    if not isinstance(item, dict):
        raise ConfigError(f"{where} must be an object, got {_describe(item)}")
    for key in item:
        if key not in FAULT_FIELDS:
            raise ConfigError(
                f"{where}.{key} is not a fault field (expected one of {list(FAULT_FIELDS)})"
            )
    for key in FAULT_FIELDS[:5]:
        if key not in item:
            raise ConfigError(f"{where}.{key} is required")
    fault_id = item["fault_id"]
    if not isinstance(fault_id, str) or not fault_id.strip():
        raise ConfigError(f"{where}.fault_id must be a non-empty string, got {fault_id!r}")
    provider = item["provider"]
    if not isinstance(provider, str) or provider not in providers:
        raise ConfigError(f"{where}.provider must be one of {sorted(providers)}, got {provider!r}")
    kind = item["kind"]
    if not isinstance(kind, str) or kind not in PARAM_PARSERS:
        raise ConfigError(f"{where}.kind must be one of {sorted(PARAM_PARSERS)}, got {kind!r}")
    start_s = _number(f"{where}.start_s", item["start_s"])
    if start_s < 0:
        raise ConfigError(f"{where}.start_s must be >= 0, got {item['start_s']!r}")
    duration_s = _number(f"{where}.duration_s", item["duration_s"])
    if duration_s <= 0:
        raise ConfigError(f"{where}.duration_s must be > 0, got {item['duration_s']!r}")
    raw_params = item.get("params", {})
    if raw_params is None:
        raw_params = {}
    if not isinstance(raw_params, dict):
        raise ConfigError(f"{where}.params must be an object, got {_describe(raw_params)}")
    params = PARAM_PARSERS[kind](f"{where}.params", raw_params)
    return FaultSpec(fault_id, provider, kind, start_s, duration_s, raw_params, params)


def parse_faults(data: Any, providers: Collection[str]) -> list[FaultSpec]:
    """Validates the decoded fault file.

    Args:
        data: the decoded JSON document.
        providers: the listener names a fault may target.

    Returns:
        The faults in file order.

    Raises:
        ConfigError: naming the first bad field, e.g. ``faults[0].duration_s must be > 0``.
    """
    if not isinstance(data, list):
        raise ConfigError(f"faults must be a JSON list, got {_describe(data)}")
    faults: list[FaultSpec] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(data):
        fault = _parse_one(i, item, providers)
        if fault.fault_id in seen:
            raise ConfigError(
                f"faults[{i}].fault_id {fault.fault_id!r} duplicates faults[{seen[fault.fault_id]}]"
            )
        seen[fault.fault_id] = i
        faults.append(fault)
    return faults


def load_faults(path: Path, providers: Collection[str]) -> list[FaultSpec]:
    """Reads and validates a fault file; errors name the file or the field."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ConfigError(f"--faults {path}: cannot read: {e.strerror or e}") from e
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(
            f"--faults {path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}"
        ) from e
    return parse_faults(data, providers)
