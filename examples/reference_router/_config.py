"""The router's TOML configuration: parse, validate, render from the template.

Every validation error is a :class:`ConfigError` whose message names the bad field, e.g.
``upstreams[1].url must start with http:// or https://, got 'ftp://x'``.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import jinja2

from ._breaker import BreakerSettings
from ._ratelimit import RateLimitSettings
from ._selector import STRATEGIES, Strategy

__all__ = [
    "DEFAULT_ATTEMPT_TIMEOUT_S",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_REQUEST_TIMEOUT_S",
    "TEMPLATE_NAME",
    "ConfigError",
    "HeadSettings",
    "RouterConfig",
    "UpstreamConfig",
    "WebSocketSettings",
    "load_config",
    "parse_config",
    "render_config",
]

# Defaults for the optional fields. A whole request gets 5 s, in line with common RPC
# client timeouts; one attempt 2 s, so a hung provider still leaves time for another.
DEFAULT_REQUEST_TIMEOUT_S = 5.0
DEFAULT_ATTEMPT_TIMEOUT_S = 2.0
DEFAULT_MAX_ATTEMPTS = 3

TEMPLATE_NAME = "config.toml.j2"

_TOP_LEVEL_FIELDS = (
    "listen",
    "strategy",
    "failover",
    "request_timeout_s",
    "attempt_timeout_s",
    "max_attempts",
    "upstreams",
    "circuit_breaker",
    "rate_limit",
    "head_tracking",
    "metrics",
    "websocket",
)
_UPSTREAM_FIELDS = ("name", "url", "ws_url")
# The behaviours that can be switched off, each a table with `enabled` and its settings;
# every one is on unless the file says `enabled = false`.
SECTIONS = ("circuit_breaker", "rate_limit", "head_tracking", "metrics", "websocket")


class ConfigError(Exception):
    """The configuration is invalid; the message names the field and the rule.

    The CLI prints it as one line and exits with status 2.
    """


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    """One upstream provider: a unique ``name``, its JSON-RPC HTTP ``url`` and its
    WebSocket URL (``ws_url``; by default ``url`` with ``ws://``/``wss://``)."""

    name: str
    url: str
    ws_url: str = ""

    @property
    def websocket_url(self) -> str:
        if self.ws_url:
            return self.ws_url
        scheme, rest = self.url.split("://", 1)
        return ("wss" if scheme == "https" else "ws") + "://" + rest


@dataclass(frozen=True, slots=True)
class HeadSettings:
    """Head tracking: route away from upstreams more than ``max_lag_blocks`` behind the
    best head or ``max_ahead_blocks`` past it; poll every upstream's ``eth_blockNumber``
    every ``poll_interval_s``. ``consensus``: the best head is the highest half of the
    upstreams reached (off: the highest any reported); ``tags``: no safe or finalized
    block below one already answered (off: served as they come); ``state``: no
    ``eth_chainId`` of another chain than the fleet's and no ``eth_syncing`` other than
    ``false`` served (off: served as they come). See ``_heads``."""

    max_lag_blocks: int = 5
    poll_interval_s: float = 1.0
    max_ahead_blocks: int = 5
    consensus: bool = True
    tags: bool = True
    state: bool = True


@dataclass(frozen=True, slots=True)
class WebSocketSettings:
    """WebSocket subscriptions (served on the HTTP port through ``Upgrade``).

    An upstream subscription with no notification for ``stall_timeout_s`` is stalled (the
    default is three block times of the mock chain). ``resubscribe`` moves it to another
    upstream on a drop or stall; up to ``backfill_limit`` missed blocks are fetched over
    HTTP (0: none); ``dedupe`` drops blocks already delivered (by hash).
    """

    stall_timeout_s: float = 3.0
    resubscribe: bool = True
    backfill_limit: int = 32
    dedupe: bool = True
    client_queue: int = 256


_DEFAULT_BREAKER = BreakerSettings()
_DEFAULT_RATE_LIMIT = RateLimitSettings()
_DEFAULT_HEADS = HeadSettings()
_DEFAULT_WEBSOCKET = WebSocketSettings()


@dataclass(frozen=True, slots=True)
class RouterConfig:
    """A validated router configuration (see the module docstring of the package)."""

    host: str
    port: int
    upstreams: tuple[UpstreamConfig, ...]
    strategy: Strategy = "round_robin"
    failover: bool = True
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S
    attempt_timeout_s: float = DEFAULT_ATTEMPT_TIMEOUT_S
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    # None: the behaviour is switched off.
    circuit_breaker: BreakerSettings | None = _DEFAULT_BREAKER
    rate_limit: RateLimitSettings | None = _DEFAULT_RATE_LIMIT
    head_tracking: HeadSettings | None = _DEFAULT_HEADS
    metrics: bool = True
    websocket: WebSocketSettings | None = _DEFAULT_WEBSOCKET

    @property
    def listen(self) -> str:
        """``host:port`` as written in the config file."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


# ---------------------------------------------------------------------------------------
# Parsing


def _check_known(table: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    for key in table:
        if key not in known:
            field = f"{where}.{key}" if where else key
            raise ConfigError(f"{field} is not a known field; expected one of {', '.join(known)}")


def _parse_listen(value: object) -> tuple[str, int]:
    if not isinstance(value, str):
        raise ConfigError(f"listen must be a string HOST:PORT, got {value!r}")
    host, sep, port_text = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(f"listen must be HOST:PORT with PORT in 0..65535, got {value!r}")
    return host, int(port_text)


def _positive_float(raw: Mapping[str, Any], field: str, default: float) -> float:
    value = raw.get(field, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{field} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{field} must be > 0, got {value!r}")
    return float(value)


def _parse_upstreams(value: object) -> tuple[UpstreamConfig, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError("upstreams must be a non-empty array of tables ([[upstreams]])")
    upstreams: list[UpstreamConfig] = []
    seen: set[str] = set()
    for i, entry in enumerate(value):
        where = f"upstreams[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be a table with name and url, got {entry!r}")
        _check_known(entry, _UPSTREAM_FIELDS, where)
        name, url = entry.get("name"), entry.get("url")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{where}.name must be a non-empty string, got {name!r}")
        if name in seen:
            raise ConfigError(f"{where}.name must be unique, {name!r} appears twice")
        seen.add(name)
        if not isinstance(url, str):
            raise ConfigError(f"{where}.url must be a string, got {url!r}")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"{where}.url must start with http:// or https://, got {url!r}")
        ws_url = entry.get("ws_url", "")
        if not isinstance(ws_url, str) or (
            ws_url and (urlsplit(ws_url).scheme not in ("ws", "wss") or not urlsplit(ws_url).netloc)
        ):
            raise ConfigError(f"{where}.ws_url must start with ws:// or wss://, got {ws_url!r}")
        upstreams.append(UpstreamConfig(name=name, url=url, ws_url=ws_url))
    return tuple(upstreams)


def _section(raw: Mapping[str, Any], name: str, cls: type | None) -> Any:
    """A behaviour's table: None when ``enabled = false``, else its settings object."""
    table = raw.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{name} must be a table ([{name}]), got {table!r}")
    fields = ("enabled", *(cls.__dataclass_fields__ if cls else ()))
    _check_known(table, fields, name)
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{name}.enabled must be true or false, got {enabled!r}")
    if not enabled:
        return None
    if cls is None:
        return True
    values = {k: v for k, v in table.items() if k != "enabled"}
    defaults = cls()
    for key, value in values.items():
        default = getattr(defaults, key)
        # bool is an int subclass: check it first, and never accept it for a number.
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        else:
            ok = (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and math.isfinite(value)
                and value > 0
            )
        if not ok:
            kind = type(default).__name__
            rule = {"bool": "true or false", "int": "an integer >= 0"}.get(kind, "a number > 0")
            raise ConfigError(f"{name}.{key} must be {rule}, got {value!r}")
    try:
        return cls(**values)
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def parse_config(raw: Mapping[str, Any]) -> RouterConfig:
    """Validate a decoded TOML document.

    Args:
        raw: the document, as ``tomllib`` returns it.

    Returns:
        The configuration, defaults filled in.

    Raises:
        ConfigError: a field is missing, unknown or invalid; the message names it.
    """
    _check_known(raw, _TOP_LEVEL_FIELDS, "")
    if "listen" not in raw:
        raise ConfigError("listen is required")
    host, port = _parse_listen(raw["listen"])
    if "upstreams" not in raw:
        raise ConfigError("upstreams is required")
    strategy = raw.get("strategy", "round_robin")
    if strategy not in STRATEGIES:
        raise ConfigError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    failover = raw.get("failover", True)
    if not isinstance(failover, bool):
        raise ConfigError(f"failover must be true or false, got {failover!r}")
    max_attempts = raw.get("max_attempts", DEFAULT_MAX_ATTEMPTS)
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int):
        raise ConfigError(f"max_attempts must be an integer, got {max_attempts!r}")
    if max_attempts < 1:
        raise ConfigError(f"max_attempts must be >= 1, got {max_attempts}")
    return RouterConfig(
        host=host,
        port=port,
        upstreams=_parse_upstreams(raw["upstreams"]),
        strategy=cast(Strategy, strategy),
        failover=failover,
        request_timeout_s=_positive_float(raw, "request_timeout_s", DEFAULT_REQUEST_TIMEOUT_S),
        attempt_timeout_s=_positive_float(raw, "attempt_timeout_s", DEFAULT_ATTEMPT_TIMEOUT_S),
        max_attempts=max_attempts,
        circuit_breaker=_section(raw, "circuit_breaker", BreakerSettings),
        rate_limit=_section(raw, "rate_limit", RateLimitSettings),
        head_tracking=_section(raw, "head_tracking", HeadSettings),
        metrics=_section(raw, "metrics", None) is not None,
        websocket=_section(raw, "websocket", WebSocketSettings),
    )


def load_config(path: str | Path) -> RouterConfig:
    """Read and validate a TOML config file.

    Raises:
        ConfigError: the file cannot be read, is not TOML, or is invalid.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config {path} is not UTF-8: {exc}") from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {path} is not valid TOML: {exc}") from exc
    return parse_config(raw)


# ---------------------------------------------------------------------------------------
# Rendering


def _toml_value(value: object) -> str:
    """One TOML value: bools as true/false, strings as basic strings, numbers as written."""
    if isinstance(value, jinja2.Undefined):
        str(value)  # StrictUndefined raises UndefinedError naming the missing variable
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        # JSON string escapes are a subset of TOML basic-string escapes; ensure_ascii=False
        # keeps astral characters whole, since TOML rejects surrogate escapes.
        return json.dumps(value, ensure_ascii=False)
    raise TypeError(f"cannot render {type(value).__name__} as a TOML value: {value!r}")


_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,
)
_ENV.filters["toml"] = _toml_value


def _section_table(name: str, value: object) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"enabled": value}
    if isinstance(value, Mapping):
        return {"enabled": True, **value}
    raise TypeError(f"{name} must be true, false or a table of settings, got {value!r}")


def render_config(**values: Any) -> str:
    """Render ``config.toml.j2`` and check that the result is a valid configuration.

    Args:
        **values: ``listen`` (``"host:port"``), ``upstreams`` (list of ``{name, url}``,
            optionally ``ws_url``), ``strategy``, ``failover`` (bool),
            ``request_timeout_s``, ``attempt_timeout_s``, ``max_attempts``; and, each
            optional (on with defaults when absent), ``circuit_breaker``, ``rate_limit``,
            ``head_tracking``, ``metrics``, ``websocket``: true, false, or a mapping of
            that section's settings (``{"recovery_s": 5}``; ``enabled`` may be in it).

    Returns:
        The TOML text.

    Raises:
        jinja2.UndefinedError: a variable is missing.
        ConfigError: the rendered configuration is invalid.
    """
    sections = {name: _section_table(name, values.pop(name, True)) for name in SECTIONS}
    text = _ENV.get_template(TEMPLATE_NAME).render(**values, sections=sections)
    parse_config(tomllib.loads(text))
    return text
