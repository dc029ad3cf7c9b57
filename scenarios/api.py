"""The Scenario API: a battle test as one validated value, then `run()`.

A `Scenario` composes providers (`mock`, `anvil`, `remote`), a system under test
(`reference_router`, `managed`, `external`), workloads (`HttpLoad`, `WsLoad`), chaos
(`Fault`s, given to the chaos proxy as its plan), collectors and SLOs (strings in the
analysis k6 grammar, objects with raw SQL, or `analysis` SLO objects). Every field is
checked when the value is built: a bad one raises one `ConfigError` naming it
(`workloads[0].rate must be > 0, got -5`), before any process starts.

`Scenario.to_dict()` / `Scenario.from_dict()` are the declarative form: the TOML
schema of `docs/scenarios.md` is exactly that dict, and `--set a.b=v` edits it.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import jinja2.meta

from analysis.expect import resolve_expect
from analysis.slo import SLO, Check, SqlCheck, Threshold, slo_from_json
from chaosproxy.errors import ConfigError as ProxyConfigError
from chaosproxy.faults import parse_faults
from loadgen.__main__ import check_args
from providers.remote import ProviderDef, Redactor, parse_provider, secrets_in_url

from .errors import ConfigError

if TYPE_CHECKING:
    from .runner import ScenarioResult

__all__ = [
    "Collectors",
    "Fault",
    "HttpLoad",
    "Scenario",
    "Sut",
    "WsLoad",
    "anvil",
    "external",
    "managed",
    "mock",
    "reference_router",
    "remote",
]

DEFAULT_MIX = "eth_blockNumber=1,eth_getBalance=1"
SUT_KINDS = ("reference", "managed", "external")
# The reference router's defaults the runner fills in when the scenario leaves them out
# (render_config needs them all). attempt_timeout_s 2 s: well under request_timeout_s,
# so a hung provider leaves time for another attempt.
REFERENCE_DEFAULTS: dict[str, Any] = {
    "strategy": "round_robin",
    "failover": True,
    "request_timeout_s": 5.0,
    "attempt_timeout_s": 2.0,
}
_PLACEHOLDERS = ("{config}", "{port}", "{run_dir}", "{python}")
# Template variables the runner sets (the config template's, plus `port`, `config` and
# `python` for the command); an option of the same name would shadow one.
RESERVED_OPTIONS = (
    "listen", "listen_host", "listen_port", "upstreams", "run_dir", "port", "config", "python",
)  # fmt: skip
# A command item that expands into one or more argv items per element of a list.
EACH_KEYS = ("each", "as", "arg", "args")
# Jinja2 markup, removed before looking for the old single-brace placeholders.
_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
# SUT options whose values are credentials (masked wherever the run writes them).
_SECRET_OPTION = re.compile(r"(?i)(key|token|secret|passw|auth)")
# Load kept after the last fault ends beyond come_back_s, so the come-back is judged
# on traffic that was sent after it (one second of margin on each side).
COME_BACK_MARGIN_S = 2.0
# The metrics (analysis/queries.sql, analysis/slo.py) that judge a provider coming back.
COME_BACK_METRICS = ("abandoned_providers", "come_back_max_s", "traffic_return")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,60}$")


def _fail(where: str, rule: str, value: Any) -> ConfigError:
    return ConfigError(f"{where} {rule}, got {value!r}")


def _number(where: str, value: Any, *, minimum: float = 0.0, strict: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(where, "must be a number", value)
    if (strict and not value > minimum) or (not strict and value < minimum):
        raise _fail(where, f"must be {'>' if strict else '>='} {minimum:g}", value)
    return float(value)


def _int(where: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(where, f"must be an integer >= {minimum}", value)
    return value


def _known(where: str, data: Mapping[str, Any], allowed: Sequence[str]) -> None:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a table/object, got {type(data).__name__}")
    extra = sorted(set(data) - set(allowed))
    if extra:
        raise ConfigError(f"{where}.{extra[0]} is not a known field (known: {', '.join(allowed)})")


# ---------------------------------------------------------------------------------
# Providers
# ---------------------------------------------------------------------------------


def mock(name: str, **behaviour: Any) -> ProviderDef:
    """A mock provider; `behaviour` keys are `providers.behaviour`'s (`latency`,
    `error_rate`, `head_lag`, `rate_limit`, ...)."""
    return _provider(
        {"name": name, "kind": "mock", **({"behaviour": behaviour} if behaviour else {})}
    )


def anvil(name: str) -> ProviderDef:
    """An anvil node started by the runner (every anvil of a fleet serves one chain)."""
    return _provider({"name": name, "kind": "anvil"})


def remote(
    name: str, url: str, *, ws_url: str | None = None, headers: Mapping[str, str] | None = None
) -> ProviderDef:
    """A provider reached by URL; its key (in the URL or a header) is redacted from
    every file the run writes."""
    spec: dict[str, Any] = {"name": name, "kind": "remote", "url": url}
    if ws_url:
        spec["ws_url"] = ws_url
    if headers:
        spec["headers"] = dict(headers)
    return _provider(spec)


def _provider(spec: Any, where: str = "providers[0]") -> ProviderDef:
    try:
        return parse_provider(spec, where)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _provider_dict(p: ProviderDef) -> dict[str, Any]:
    out: dict[str, Any] = {"name": p.name, "kind": p.kind}
    if p.url:
        out["url"] = p.url
    if p.ws_url:
        out["ws_url"] = p.ws_url
    if p.headers:
        out["headers"] = dict(p.headers)
    if p.behaviour is not None:
        out["behaviour"] = dict(p.behaviour)
    return out


# ---------------------------------------------------------------------------------
# The system under test
# ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sut:
    """The system under test. Build it with `reference_router`, `managed` or `external`.

    Managed SUTs (`reference`, `managed`) are started by the runner on a free port with
    a config rendered from a jinja2 template whose variables are: `listen`
    ("127.0.0.1:PORT"), `listen_host`, `listen_port`, `upstreams` (list of dicts with
    `name`, `url`, `ws_url`, `host`, `port`: the chaos-proxy listener of each
    provider), `run_dir`, and every key of `options`.

    Args:
        kind: `reference` | `managed` | `external`.
        options: template variables (reference: `render_config`'s keys, e.g. `failover`,
            `strategy`, `circuit_breaker`).
        command: managed: argv. Each item is a jinja2 template over the config
            template's variables plus `port`, `config` (the rendered config's path) and
            `python` (this interpreter), e.g. `"--listen=127.0.0.1:{{ port }}"`; the
            older `{config}`, `{port}`, `{run_dir}`, `{python}` are replaced too. An
            item `{"each": "upstreams", "as": "u", "args": ["--upstream",
            "{{ u.name }}={{ u.url }}"]}` (or `"arg": "..."` for one) becomes those
            items once per element of the list variable `each` (`as` defaults to
            `item`): a list never has to be split out of one string.
        template: managed: the jinja2 config template's path (relative paths are
            resolved against the scenario file's folder by the loader).
        config_name: the rendered config's file name in the run directory.
        ready: readiness probe: `GET /path` (any status below 500) or `rpc METHOD`
            (a JSON-RPC answer without error).
        ready_timeout_s: how long the SUT may take to pass its probe.
        metrics_path: the Prometheus endpoint's path (managed), scraped each second.
        ws_path: the WebSocket path (managed); None: the SUT serves no WebSocket.
        url, ws_url, metrics_url: external: where the running router listens.
        listen_ports: external: the chaos-proxy listeners' ports, one per provider in
            order, so that a router started beforehand can be pointed at them; without
            them the router is taken to use providers of its own: faults cannot reach it
            and answers are not judged against the mock chain.
        stop_grace_s: SIGTERM, then SIGKILL after this long.
        path: the client path (`/v1/KEY`): the load, HTTP and WebSocket, goes to the
            SUT's URL with this path instead of `/` (an external URL's path is
            replaced by it). Treated as a key: masked in every file the run writes.
    """

    kind: str = "reference"
    options: Mapping[str, Any] = field(default_factory=dict)
    command: tuple[str | Mapping[str, Any], ...] = ()
    template: str | None = None
    config_name: str = "sut.conf"
    ready: str = "GET /health"
    ready_timeout_s: float = 30.0
    metrics_path: str | None = "/metrics"
    ws_path: str | None = "/"
    url: str | None = None
    ws_url: str | None = None
    metrics_url: str | None = None
    stop_grace_s: float = 5.0
    listen_ports: tuple[int, ...] = ()
    path: str | None = None

    def __post_init__(self) -> None:
        # TOML has no null: an empty path there means "none".
        for name in ("metrics_path", "ws_path", "path"):
            if getattr(self, name) == "":
                object.__setattr__(self, name, None)

    def secrets(self) -> list[str]:
        """Every credential of the SUT: keys in its URLs, its client `path`, and the
        values of options named like a credential (`api_key`, `auth_token`, ...)."""
        out: list[str] = []
        for url in (self.url, self.ws_url, self.metrics_url):
            if isinstance(url, str):
                out += secrets_in_url(url)
        if isinstance(self.path, str):
            # The whole path is the key (`/KEY`, `/v1/KEY`); its key-like segments
            # too, should the SUT's log show one without the rest.
            out += [self.path, self.path.strip("/"), *secrets_in_url(f"http://h{self.path}")]
        return out + _option_secrets(self.options)

    def check(self, where: str = "sut") -> None:
        if self.kind not in SUT_KINDS:
            raise _fail(f"{where}.kind", f"must be one of {', '.join(SUT_KINDS)}", self.kind)
        if not isinstance(self.options, Mapping) or not all(
            isinstance(k, str) and k.isidentifier() for k in self.options
        ):
            raise ConfigError(f"{where}.options must map identifiers to values")
        for key in RESERVED_OPTIONS:
            if key in self.options:
                raise ConfigError(f"{where}.options.{key} is set by the runner and cannot be given")
        _number(f"{where}.ready_timeout_s", self.ready_timeout_s)
        _number(f"{where}.stop_grace_s", self.stop_grace_s)
        parse_ready(self.ready, f"{where}.ready")
        for name in ("metrics_path", "ws_path", "path"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, str) and value.startswith("/")):
                raise _fail(f"{where}.{name}", "must be a path starting with '/' or unset", value)
        if self.path is not None and (re.search(r"[\s#]", self.path) or self.path == "/"):
            raise ConfigError(
                f"{where}.path must be a URL path without spaces or '#', other than '/'"
            )
        if self.kind == "external":
            if not isinstance(self.url, str) or not self.url.startswith(("http://", "https://")):
                raise _fail(
                    f"{where}.url", "must be the http(s) URL of the running router", self.url
                )
            if self.ws_url is not None and not str(self.ws_url).startswith(("ws://", "wss://")):
                raise _fail(f"{where}.ws_url", "must be a ws(s) URL", self.ws_url)
            if self.metrics_url is not None and not str(self.metrics_url).startswith("http"):
                raise _fail(f"{where}.metrics_url", "must be an http(s) URL", self.metrics_url)
            if self.command or self.template:
                raise ConfigError(f"{where}.command and .template are for kind 'managed' only")
            for i, port in enumerate(self.listen_ports):
                if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
                    raise _fail(f"{where}.listen_ports[{i}]", "must be a port number", port)
            if len(set(self.listen_ports)) != len(self.listen_ports):
                raise _fail(f"{where}.listen_ports", "must be distinct", self.listen_ports)
            return
        for name in ("url", "ws_url", "metrics_url"):
            if getattr(self, name) is not None:
                raise ConfigError(f"{where}.{name} is for kind 'external' only")
        if self.listen_ports:
            raise ConfigError(f"{where}.listen_ports is for kind 'external' only")
        if self.kind == "reference":
            if self.command or self.template:
                raise ConfigError(
                    f"{where}.command and .template are for kind 'managed'; the reference"
                    " router uses its own"
                )
            return
        if not self.command or not isinstance(self.command, tuple | list):
            raise _fail(f"{where}.command", "must be a non-empty list of strings", self.command)
        if self.template is not None and not isinstance(self.template, str):
            raise _fail(f"{where}.template", "must be a path", self.template)
        used: set[str] = set()
        known = {*RESERVED_OPTIONS, *self.options, *jinja2.Environment().globals}
        for i, item in enumerate(self.command):
            names = _check_command_item(f"{where}.command[{i}]", item)
            # Caught here, not when the run starts: --dry-run shows a typo too.
            if unknown := sorted(names - known):
                raise ConfigError(
                    f"{where}.command[{i}] uses {unknown[0]!r}, which is neither a variable"
                    f" of the runner nor an option (known: {', '.join(sorted(known))})"
                )
            used |= names
        if self.template is None and "config" in used:
            raise ConfigError(f"{where}.command uses {{config}} but {where}.template is unset")
        if not _NAME.match(self.config_name):
            raise _fail(f"{where}.config_name", "must be a plain file name", self.config_name)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        if self.options:
            out["options"] = dict(self.options)
        if self.kind == "external":
            out["url"] = self.url
            for name in ("ws_url", "metrics_url"):
                if getattr(self, name) is not None:
                    out[name] = getattr(self, name)
            if self.listen_ports:
                out["listen_ports"] = list(self.listen_ports)
        else:
            if self.kind == "managed":
                out["command"] = [a if isinstance(a, str) else dict(a) for a in self.command]
                if self.template is not None:
                    out["template"] = self.template
                out["config_name"] = self.config_name
            out["metrics_path"] = self.metrics_path or ""
            out["ws_path"] = self.ws_path or ""
        out["ready"] = self.ready
        out["ready_timeout_s"] = self.ready_timeout_s
        out["stop_grace_s"] = self.stop_grace_s
        if self.path is not None:
            out["path"] = self.path
        return {k: v for k, v in out.items() if v is not None}


def _option_secrets(value: Any, secret: bool = False) -> list[str]:
    """The string values under every option key that names a credential."""
    if isinstance(value, Mapping):
        out: list[str] = []
        for k, v in value.items():
            out += _option_secrets(v, secret or bool(_SECRET_OPTION.search(str(k))))
        return out
    if isinstance(value, list | tuple):
        return [s for v in value for s in _option_secrets(v, secret)]
    return [value] if secret and isinstance(value, str) else []


def _check_template(where: str, text: Any) -> set[str]:
    """The variables a command template uses; a syntax error or a stray single-brace
    placeholder is a ConfigError naming the item."""
    if not isinstance(text, str) or not text:
        raise _fail(where, "must be a non-empty string", text)
    try:
        names = set(jinja2.meta.find_undeclared_variables(jinja2.Environment().parse(text)))
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"{where} is not a valid jinja2 template: {exc}") from None
    for brace in re.findall(r"\{[^}]*\}", _JINJA.sub("", text)):
        if brace not in _PLACEHOLDERS:
            raise _fail(
                where,
                f"may use only jinja2 ({{{{ port }}}}) or the placeholders"
                f" {', '.join(_PLACEHOLDERS)}",
                text,
            )
        names.add(brace.strip("{}"))
    return names


def _check_command_item(where: str, item: Any) -> set[str]:
    if isinstance(item, str):
        return _check_template(where, item)
    if not isinstance(item, Mapping):
        raise _fail(where, "must be a string or an {each, as, args} table", item)
    _known(where, item, EACH_KEYS)
    each, loop = item.get("each"), item.get("as", "item")
    for key, name in (("each", each), ("as", loop)):
        if not isinstance(name, str) or not name.isidentifier():
            raise _fail(f"{where}.{key}", "must name a variable", name)
    if ("arg" in item) == ("args" in item):
        raise ConfigError(f"{where} needs exactly one of arg or args")
    args = [item["arg"]] if "arg" in item else item["args"]
    if not isinstance(args, list | tuple) or not args:
        raise _fail(f"{where}.args", "must be a non-empty list of strings", args)
    used = {each}
    for j, arg in enumerate(args):
        used |= _check_template(f"{where}.{'arg' if 'arg' in item else f'args[{j}]'}", arg)
    return used - {loop}


def parse_ready(text: Any, where: str = "sut.ready") -> tuple[str, str]:
    """`GET /path` -> ("GET", "/path"); `rpc eth_chainId` -> ("rpc", "eth_chainId")."""
    parts = text.split() if isinstance(text, str) else []
    if len(parts) == 2 and parts[0] == "GET" and parts[1].startswith("/"):
        return "GET", parts[1]
    if len(parts) == 2 and parts[0] == "rpc" and re.fullmatch(r"[A-Za-z0-9_]+", parts[1]):
        return "rpc", parts[1]
    raise _fail(where, "must read `GET /path` or `rpc METHOD`", text)


def reference_router(**options: Any) -> Sut:
    """The bundled reference router, managed; `options` are `render_config`'s keys
    (`failover`, `strategy`, `request_timeout_s`, `circuit_breaker`, `rate_limit`, ...)."""
    return Sut("reference", options)


def managed(
    command: Sequence[str],
    *,
    template: str | Path | None = None,
    config_name: str = "sut.conf",
    ready: str = "rpc eth_chainId",
    metrics_path: str | None = None,
    ws_path: str | None = None,
    path: str | None = None,
    **options: Any,
) -> Sut:
    """A router the runner starts: `command` rendered as jinja2 over the template's
    variables plus `port`, `config` (the rendered `template`'s path) and `python`
    (`{config}`, `{port}`, `{run_dir}`, `{python}` work too); `options` go to both."""
    return Sut(
        "managed",
        options,
        tuple(command),
        None if template is None else str(template),
        config_name,
        ready,
        metrics_path=metrics_path,
        ws_path=ws_path,
        path=path,
    )


def external(
    url: str,
    *,
    ws_url: str | None = None,
    metrics_url: str | None = None,
    listen_ports: Sequence[int] = (),
    ready: str = "rpc eth_chainId",
    path: str | None = None,
) -> Sut:
    """A router already running at `url`; the runner only probes it and loads it. With
    `listen_ports` (one per provider) the chaos-proxy listeners take those ports, for a
    router configured beforehand to use them as its upstreams."""
    return Sut(
        "external",
        {},
        ready=ready,
        url=url,
        ws_url=ws_url,
        metrics_url=metrics_url,
        listen_ports=tuple(listen_ports),
        path=path,
    )


# ---------------------------------------------------------------------------------
# Workloads
# ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpLoad:
    """JSON-RPC calls over HTTP from `workers` processes sharing one schedule.

    Args:
        rate: requests per second (open model, constant); or
        arrival: `python -m loadgen --arrival`'s model (`ramp:10,200`, `poisson:50`,
            `steps:10@5,50@10`, `bursts:...`, `closed:N[,THINK_MS]`).
        mix: `method=weight,...` (loadgen's mixes).
        batch: `SHARE:SIZE=WEIGHT,...`, e.g. `0.1:2=1,10=1`.
    """

    rate: float | None = None
    arrival: str | None = None
    mix: str = DEFAULT_MIX
    batch: str | None = None
    workers: int = 1
    timeout_s: float = 5.0
    max_in_flight: int = 1000
    transport: str = "auto"
    max_lag_blocks: int | None = None

    kind = "http"

    def argv(self, duration_s: float, seed: int) -> list[str]:
        """`python -m loadgen` arguments (without target, run dir, t0 and worker)."""
        out = ["--duration", f"{duration_s:g}", "--mix", self.mix, "--seed", str(seed)]
        out += ["--timeout", f"{self.timeout_s:g}", "--max-in-flight", str(self.max_in_flight)]
        out += ["--transport", self.transport]
        if self.arrival is not None:
            out += ["--arrival", self.arrival]
        elif self.rate is not None:
            out += ["--rate", f"{self.rate:g}"]
        if self.batch:
            out += ["--batch", self.batch]
        if self.max_lag_blocks is not None:
            out += ["--max-lag-blocks", str(self.max_lag_blocks)]
        return out

    def check(self, where: str, duration_s: float) -> None:
        if (self.rate is None) == (self.arrival is None):
            raise ConfigError(f"{where} needs exactly one of rate or arrival")
        if self.rate is not None:
            _number(f"{where}.rate", self.rate)
        _int(f"{where}.workers", self.workers, 1)
        _number(f"{where}.timeout_s", self.timeout_s)
        _int(f"{where}.max_in_flight", self.max_in_flight, 1)
        _check_worker_args(where, [*self.argv(duration_s, 0), "--workers", str(self.workers)])

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "http", **_fields(self)}


@dataclass(frozen=True)
class WsLoad:
    """WebSocket subscribers (and, with `call_interval_s`, JSON-RPC calls over WS).

    Args:
        subscriptions: `kind=clients,...`, e.g. `newHeads=2,logs=1`: one socket each,
            per worker process.
        reconnect: on a drop, reconnect (0.5 s doubling to 8 s) and resubscribe; off:
            the subscriber ends (counted as a failure).
        call_interval_s: seconds between `eth_blockNumber` calls on each socket (0: none).
    """

    subscriptions: str = "newHeads=1"
    reconnect: bool = True
    call_interval_s: float = 0.0
    workers: int = 1
    timeout_s: float = 5.0

    kind = "ws"

    def argv(self, duration_s: float, seed: int) -> list[str]:
        # No HTTP calls: a single zero-rate step keeps loadgen's schedule empty.
        return [
            "--duration", f"{duration_s:g}", "--arrival", f"steps:0@{duration_s:g}",
            "--seed", str(seed), "--timeout", f"{self.timeout_s:g}",
            "--ws-subscriptions", self.subscriptions,
            "--ws-reconnect", "on" if self.reconnect else "off",
            "--ws-call-interval", f"{self.call_interval_s:g}",
        ]  # fmt: skip

    def check(self, where: str, duration_s: float) -> None:
        if not isinstance(self.reconnect, bool):
            raise _fail(f"{where}.reconnect", "must be true or false", self.reconnect)
        _number(f"{where}.call_interval_s", self.call_interval_s, strict=False)
        _int(f"{where}.workers", self.workers, 1)
        _number(f"{where}.timeout_s", self.timeout_s)
        _check_worker_args(where, self.argv(duration_s, 0))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "ws", **_fields(self)}


Workload = HttpLoad | WsLoad
_WORKLOADS: dict[str, type] = {"http": HttpLoad, "ws": WsLoad}


def _check_worker_args(where: str, argv: list[str]) -> None:
    probe = ["--target", "http://127.0.0.1:1/", "--run-dir", ".", "--t0-ns", "0", *argv]
    try:
        check_args(probe)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _fields(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)
            if getattr(obj, f.name) is not None}  # fmt: skip


# ---------------------------------------------------------------------------------
# Chaos
# ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """One fault of the chaos plan (the chaos proxy's fault-file object).

    Active in `[t0 + start_s, t0 + start_s + duration_s)`, cut into windows by
    `schedule` (`{"flap": {"down_s", "up_s", "count"}}`, `{"ramp": ...}`, ...); `match`
    narrows it (`methods`, `probability`, `per`, `seed`). `fault_id` defaults to
    `<provider>-<kind>` (lowercase), numbered when repeated.
    """

    provider: str
    kind: str
    start_s: float
    duration_s: float
    params: Mapping[str, Any] = field(default_factory=dict)
    match: Mapping[str, Any] | None = None
    schedule: Mapping[str, Any] | None = None
    fault_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "fault_id": self.fault_id,
            "provider": self.provider,
            "kind": self.kind,
            "start_s": self.start_s,
            "duration_s": self.duration_s,
            "params": dict(self.params),
        }
        if self.match is not None:
            out["match"] = dict(self.match)
        if self.schedule is not None:
            out["schedule"] = dict(self.schedule)
        return {k: v for k, v in out.items() if v is not None}


# ---------------------------------------------------------------------------------
# Collectors
# ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Collectors:
    """`system`: CPU, RSS, open files, threads of each role's process tree;
    `metrics`: the SUT's Prometheus endpoint, when it has one; every `interval_s`."""

    system: bool = True
    metrics: bool = True
    interval_s: float = 1.0

    def check(self, where: str = "collectors") -> None:
        for name in ("system", "metrics"):
            if not isinstance(getattr(self, name), bool):
                raise _fail(f"{where}.{name}", "must be true or false", getattr(self, name))
        _number(f"{where}.interval_s", self.interval_s)


# ---------------------------------------------------------------------------------
# The scenario
# ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """A battle test. Every field is validated on construction (`ConfigError`).

    Args:
        name: the run directory's slug and the report's title.
        providers: `mock(...)`, `anvil(...)`, `remote(...)`; mock and anvil do not mix
            (they serve different chains).
        sut: the system under test (default: the reference router).
        workloads: at least one `HttpLoad` or `WsLoad`; each runs `workers` processes
            for `duration_s` from the shared t0.
        faults: the chaos plan; times are seconds after t0.
        slos: k6-grammar strings (`latency{phase:steady}: p(95) < 300`), named queries
            (`success_rate >= 0.99`), `{"name", "sql", "expect"}` objects, or
            `analysis` SLO objects.
        analysis: analysis settings (`recovery_window_s`, `breaker_gap_s`, ...).
        seed, block_time_ms: the mock chain's (and the load's) seed and block time.
        expect: the router profile: `analysis.expect.EXPECTATIONS` values the user
            declares (`{"come_back_s": 30}`); the rest keep their defaults
            (`expectations` has them all). With faults, the load runs at least
            `come_back_s` + 2 s past the last one (`load_duration_s`).
    """

    name: str
    providers: Sequence[ProviderDef] = ()
    workloads: Sequence[Workload] = ()
    duration_s: float = 30.0
    sut: Sut = field(default_factory=Sut)
    faults: Sequence[Fault] = ()
    slos: Sequence[Any] = ()
    collectors: Collectors = field(default_factory=Collectors)
    analysis: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 1
    block_time_ms: int = 1000
    description: str = ""
    expect: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise _fail("name", "must be 1-60 letters, digits, '_', '.' or '-'", self.name)
        object.__setattr__(self, "providers", tuple(self.providers))
        object.__setattr__(self, "workloads", tuple(self.workloads))
        object.__setattr__(self, "faults", tuple(self.faults))
        if not isinstance(self.expect, Mapping):
            raise _fail("expect", "must be a table of expectations", self.expect)
        try:
            resolve_expect(self.expect)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        object.__setattr__(self, "expect", {k: float(v) for k, v in self.expect.items()})
        _number("duration_s", self.duration_s)
        _int("seed", self.seed, 0)
        _int("block_time_ms", self.block_time_ms, 1)
        self._check_providers()
        if not isinstance(self.sut, Sut):
            raise _fail("sut", "must be a Sut (reference_router, managed, external)", self.sut)
        self.sut.check()
        if self.sut.listen_ports and len(self.sut.listen_ports) != len(self.providers):
            raise ConfigError(
                f"sut.listen_ports must give one port per provider ({len(self.providers)}),"
                f" got {len(self.sut.listen_ports)}"
            )
        if not self.workloads:
            raise ConfigError("workloads must name at least one HttpLoad or WsLoad")
        # Faults first: the load's duration (what the workloads are checked with)
        # depends on when the last one ends.
        object.__setattr__(self, "faults", self._checked_faults())
        multi = [i for i, w in enumerate(self.workloads) if getattr(w, "workers", 1) > 1]
        for i, w in enumerate(self.workloads):
            if not isinstance(w, HttpLoad | WsLoad):
                raise _fail(f"workloads[{i}]", "must be an HttpLoad or a WsLoad", w)
            w.check(f"workloads[{i}]", self.load_duration_s)
        if len(multi) > 1:
            # loadgen's --worker is both a shard name and the index of its share of the
            # schedule, so only one workload's processes can be numbered 0..M-1.
            raise ConfigError(
                f"workloads[{multi[1]}].workers must be 1: only one workload may have"
                " several worker processes"
            )
        if any(isinstance(w, WsLoad) for w in self.workloads) and self.sut.kind != "external":
            if self.sut.ws_path is None:
                raise ConfigError("sut.ws_path is unset but a WsLoad needs a WebSocket")
        if any(isinstance(w, WsLoad) for w in self.workloads) and self.sut.kind == "external":
            if not self.sut.ws_url and not self.sut.url.startswith("http://"):
                raise ConfigError("sut.ws_url is required for a WsLoad on an https router")
        object.__setattr__(self, "slos", tuple(self._checked_slos()))
        if not isinstance(self.collectors, Collectors):
            raise _fail("collectors", "must be a Collectors", self.collectors)
        self.collectors.check()
        from analysis.database import DEFAULT_SETTINGS

        _known("analysis", self.analysis, sorted(DEFAULT_SETTINGS))
        for key, value in self.analysis.items():
            _number(f"analysis.{key}", value, strict=False)

    # -- validation ------------------------------------------------------------------

    def _check_providers(self) -> None:
        if not self.providers:
            raise ConfigError("providers must name at least one provider")
        seen: set[str] = set()
        for i, p in enumerate(self.providers):
            if not isinstance(p, ProviderDef):
                raise _fail(f"providers[{i}]", "must be a provider (mock, anvil, remote)", p)
            # Re-parse: a ProviderDef built by hand skipped parse_provider's checks.
            _provider(_provider_dict(p), f"providers[{i}]")
            if p.name in seen:
                raise ConfigError(f"providers[{i}].name {p.name!r} is used twice")
            seen.add(p.name)
        kinds = {p.kind for p in self.providers} - {"remote"}
        if len(kinds) > 1:
            raise ConfigError(
                "providers mix mock and anvil: they serve different chains, so answers"
                " could not be judged; use one kind (plus remote ones)"
            )
        if any(p.kind == "anvil" for p in self.providers) and self.block_time_ms % 1000:
            raise _fail(
                "block_time_ms",
                "must be a multiple of 1000 with anvil providers",
                self.block_time_ms,
            )

    def _checked_faults(self) -> tuple[Fault, ...]:
        out: list[Fault] = []
        used: dict[str, int] = {}
        for i, f in enumerate(self.faults):
            if not isinstance(f, Fault):
                raise _fail(f"faults[{i}]", "must be a Fault", f)
            fid = f.fault_id
            if fid is None:
                base = f"{str(f.provider).lower()}-{f.kind}"
                used[base] = used.get(base, 0) + 1
                fid = base if used[base] == 1 else f"{base}-{used[base]}"
                f = dataclasses.replace(f, fault_id=fid)
            out.append(f)
        try:
            parse_faults([f.to_dict() for f in out], [p.name for p in self.providers])
        except ProxyConfigError as exc:
            raise ConfigError(str(exc)) from None
        for i, f in enumerate(out):
            if f.start_s + f.duration_s > self.duration_s:
                raise ConfigError(
                    f"faults[{i}] must end within the load's duration ({self.duration_s:g} s),"
                    f" got start_s + duration_s = {f.start_s + f.duration_s:g} s"
                )
        return tuple(out)

    def _checked_slos(self) -> list[SLO]:
        out = []
        for i, s in enumerate(self.slos):
            if isinstance(s, Check | Threshold | SqlCheck):
                out.append(s)
                continue
            try:
                out.append(slo_from_json(s))
            except ValueError as exc:
                raise ConfigError(f"slos[{i}]: {exc}") from None
        return out

    # -- forms -----------------------------------------------------------------------

    def replace(self, **changes: Any) -> Scenario:
        """A copy with `changes` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    @property
    def expectations(self) -> dict[str, float]:
        """Every expectation: the declared ones, the others at their defaults."""
        return resolve_expect(self.expect)

    @property
    def last_fault_end_s(self) -> float | None:
        """When the last fault ends (seconds after t0); None without faults."""
        return max((f.start_s + f.duration_s for f in self.faults), default=None)

    @property
    def load_duration_s(self) -> float:
        """How long the load runs: `duration_s`, extended with faults to the last
        fault's end + `come_back_s` + 2 s, so that a router is seen coming back (or
        not) within the come-back the scenario judges."""
        end = self.last_fault_end_s
        if end is None or not self.judges_come_back:
            return self.duration_s
        return max(self.duration_s, end + self.expectations["come_back_s"] + COME_BACK_MARGIN_S)

    @property
    def judges_come_back(self) -> bool:
        """Whether an SLO judges a provider coming back after its fault (the figures
        that need the load to go on past `come_back_s`): a scenario that judges none,
        such as the demo, runs as long as it says."""
        # Also before __post_init__ has parsed them: strings, dicts or SLO objects.
        texts = [str(s.to_json() if hasattr(s, "to_json") else s) for s in self.slos]
        return any(metric in text for text in texts for metric in COME_BACK_METRICS)

    @property
    def redactor(self) -> Redactor:
        """Masks every secret the scenario knows: the providers' (URL keys, credential
        headers) and the SUT's (URL keys, client path, credential options)."""
        return Redactor([*(s for p in self.providers for s in p.secrets()), *self.sut.secrets()])

    def to_dict(self) -> dict[str, Any]:
        """The declarative form (the TOML schema), secrets included: pass it through
        `redactor.value` before writing it anywhere."""
        out: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "duration_s": self.duration_s,
            "seed": self.seed,
            "block_time_ms": self.block_time_ms,
            "providers": [_provider_dict(p) for p in self.providers],
            "sut": self.sut.to_dict(),
            "workloads": [w.to_dict() for w in self.workloads],
            "faults": [f.to_dict() for f in self.faults],
            "slos": [s.to_json() for s in self.slos],
            "collectors": _fields(self.collectors),
        }
        if self.analysis:
            out["analysis"] = dict(self.analysis)
        if self.expect:
            out["expect"] = dict(self.expect)
        return out

    def public(self) -> dict[str, Any]:
        """`to_dict()` with every secret masked."""
        return self.redactor.value(self.to_dict())

    def resolved(self) -> dict[str, Any]:
        """What scenario.json records and the plan shows: `public()` with the values
        the run uses. `duration_s` is the load's (`load_duration_s`),
        `duration_s_declared` the scenario's; `expect` holds every expectation
        (declared or default) and `expect_declared` the names of the declared ones."""
        out = self.public()
        out["duration_s"] = self.load_duration_s
        out["duration_s_declared"] = self.duration_s
        out["expect"] = self.expectations
        out["expect_declared"] = sorted(self.expect)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, base_dir: Path | None = None) -> Scenario:
        """The scenario a TOML file (or `to_dict()`) describes.

        Args:
            base_dir: relative `sut.template` paths are resolved against it.

        Raises:
            ConfigError: naming the first bad field.
        """
        _known("scenario", data, [f.name for f in dataclasses.fields(cls)])
        if "name" not in data:
            raise ConfigError("name is required")
        kw: dict[str, Any] = {k: v for k, v in data.items() if k in _SCALARS}
        kw["providers"] = [
            _provider(p, f"providers[{i}]") for i, p in enumerate(_list(data, "providers"))
        ]
        kw["workloads"] = [_workload(w, f"workloads[{i}]") for i, w in
                           enumerate(_list(data, "workloads"))]  # fmt: skip
        kw["faults"] = [_build(Fault, f, f"faults[{i}]") for i, f in
                        enumerate(_list(data, "faults"))]  # fmt: skip
        kw["slos"] = list(_list(data, "slos"))
        if "sut" in data:
            kw["sut"] = sut_from_dict(_table(data, "sut"), base_dir=base_dir)
        if "collectors" in data:
            kw["collectors"] = _build(Collectors, _table(data, "collectors"), "collectors")
        if "analysis" in data:
            kw["analysis"] = dict(_table(data, "analysis"))
        if "expect" in data:
            kw["expect"] = dict(_table(data, "expect"))
        return _build(cls, kw, "scenario")

    def run(
        self, runs_dir: Path | str = "runs", *, echo: Any = None, form: str = "custom"
    ) -> ScenarioResult:
        """Runs the scenario and judges it; see `scenarios.runner.run_scenario`."""
        from .runner import run_scenario

        return run_scenario(self, Path(runs_dir), echo=echo, form=form)


_SCALARS = ("name", "description", "duration_s", "seed", "block_time_ms")


def sut_from_dict(
    data: Mapping[str, Any], *, base_dir: Path | None = None, where: str = "sut"
) -> Sut:
    """The `Sut` a `[sut]` table describes. With `base_dir` (the file's folder), a
    relative `template`, and each command item naming a file that exists there, are
    made absolute: a file's SUT works from whatever directory `battle` runs in.

    Raises:
        ConfigError: naming the first bad field.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a table/object, got {type(data).__name__}")
    sut = dict(data)
    for key in ("command", "listen_ports"):
        if isinstance(sut.get(key), list):
            sut[key] = tuple(sut[key])
    if base_dir is not None:
        template = sut.get("template")
        if isinstance(template, str) and not Path(template).is_absolute():
            sut["template"] = str((base_dir / template).resolve())
        if isinstance(sut.get("command"), tuple):
            sut["command"] = tuple(_relative_file(a, base_dir) for a in sut["command"])
    return _build(Sut, sut, where)


def _relative_file(arg: Any, base_dir: Path) -> Any:
    # Only plain words that name a file next to the SUT's file (`router.py`,
    # `conf/r.toml`): flags, templates and anything else are left as written.
    if not isinstance(arg, str) or arg.startswith("-") or "{" in arg or Path(arg).is_absolute():
        return arg
    candidate = base_dir / arg
    return str(candidate.resolve()) if candidate.is_file() else arg


def _list(data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list | tuple):
        raise ConfigError(f"{key} must be a list, got {type(value).__name__}")
    return list(value)


def _table(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data[key]
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key} must be a table/object, got {type(value).__name__}")
    return value


def _workload(data: Any, where: str) -> Workload:
    _known(
        where, data, ["kind", *{f.name for c in _WORKLOADS.values() for f in dataclasses.fields(c)}]
    )
    kind = data.get("kind", "http")
    if kind not in _WORKLOADS:
        raise _fail(f"{where}.kind", "must be http or ws", kind)
    return _build(_WORKLOADS[kind], {k: v for k, v in data.items() if k != "kind"}, where)


def _build(cls: type, data: Mapping[str, Any], where: str) -> Any:
    _known(where, data, [f.name for f in dataclasses.fields(cls)])
    try:
        return cls(**data)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def python_placeholder() -> str:
    """What `{python}` in a managed SUT's command becomes: this interpreter."""
    return sys.executable
