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

from analysis.slo import SLO, Check, SqlCheck, Threshold, slo_from_json
from chaosproxy.errors import ConfigError as ProxyConfigError
from chaosproxy.faults import parse_faults
from loadgen.__main__ import check_args
from providers.remote import ProviderDef, Redactor, parse_provider

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
# Template variables the runner sets; an option of the same name would shadow one.
RESERVED_OPTIONS = ("listen", "listen_host", "listen_port", "upstreams", "run_dir")
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
        command: managed: argv; `{config}`, `{port}`, `{run_dir}`, `{python}` replaced.
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
    """

    kind: str = "reference"
    options: Mapping[str, Any] = field(default_factory=dict)
    command: tuple[str, ...] = ()
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

    def __post_init__(self) -> None:
        # TOML has no null: an empty path there means "none".
        for name in ("metrics_path", "ws_path"):
            if getattr(self, name) == "":
                object.__setattr__(self, name, None)

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
        for name in ("metrics_path", "ws_path"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, str) and value.startswith("/")):
                raise _fail(f"{where}.{name}", "must be a path starting with '/' or unset", value)
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
        if not self.command or not all(isinstance(a, str) and a for a in self.command):
            raise _fail(f"{where}.command", "must be a non-empty list of strings", self.command)
        if self.template is not None and not isinstance(self.template, str):
            raise _fail(f"{where}.template", "must be a path", self.template)
        if self.template is None and any("{config}" in a for a in self.command):
            raise ConfigError(f"{where}.command uses {{config}} but {where}.template is unset")
        for i, arg in enumerate(self.command):
            for brace in re.findall(r"\{[^}]*\}", arg):
                if brace not in _PLACEHOLDERS:
                    raise _fail(
                        f"{where}.command[{i}]",
                        f"may use only the placeholders {', '.join(_PLACEHOLDERS)}",
                        arg,
                    )
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
                out["command"] = list(self.command)
                if self.template is not None:
                    out["template"] = self.template
                out["config_name"] = self.config_name
            out["metrics_path"] = self.metrics_path or ""
            out["ws_path"] = self.ws_path or ""
        out["ready"] = self.ready
        out["ready_timeout_s"] = self.ready_timeout_s
        out["stop_grace_s"] = self.stop_grace_s
        return {k: v for k, v in out.items() if v is not None}


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
    **options: Any,
) -> Sut:
    """A router the runner starts: `command` with `{config}` (the rendered `template`),
    `{port}`, `{run_dir}` and `{python}` replaced; `options` go to the template."""
    return Sut(
        "managed",
        options,
        tuple(command),
        None if template is None else str(template),
        config_name,
        ready,
        metrics_path=metrics_path,
        ws_path=ws_path,
    )


def external(
    url: str,
    *,
    ws_url: str | None = None,
    metrics_url: str | None = None,
    listen_ports: Sequence[int] = (),
    ready: str = "rpc eth_chainId",
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

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise _fail("name", "must be 1-60 letters, digits, '_', '.' or '-'", self.name)
        object.__setattr__(self, "providers", tuple(self.providers))
        object.__setattr__(self, "workloads", tuple(self.workloads))
        object.__setattr__(self, "faults", tuple(self.faults))
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
        multi = [i for i, w in enumerate(self.workloads) if getattr(w, "workers", 1) > 1]
        for i, w in enumerate(self.workloads):
            if not isinstance(w, HttpLoad | WsLoad):
                raise _fail(f"workloads[{i}]", "must be an HttpLoad or a WsLoad", w)
            w.check(f"workloads[{i}]", self.duration_s)
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
        object.__setattr__(self, "faults", self._checked_faults())
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
    def redactor(self) -> Redactor:
        """Masks every provider secret (URL keys, credential headers)."""
        return Redactor([s for p in self.providers for s in p.secrets()])

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
        return out

    def public(self) -> dict[str, Any]:
        """`to_dict()` with every secret masked: what scenario.json and the plan show."""
        return self.redactor.value(self.to_dict())

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
            sut = dict(_table(data, "sut"))
            for key in ("command", "listen_ports"):
                if isinstance(sut.get(key), list):
                    sut[key] = tuple(sut[key])
            template = sut.get("template")
            if (
                base_dir is not None
                and isinstance(template, str)
                and not Path(template).is_absolute()
            ):
                sut["template"] = str((base_dir / template).resolve())
            kw["sut"] = _build(Sut, sut, "sut")
        if "collectors" in data:
            kw["collectors"] = _build(Collectors, _table(data, "collectors"), "collectors")
        if "analysis" in data:
            kw["analysis"] = dict(_table(data, "analysis"))
        return _build(cls, kw, "scenario")

    def run(
        self, runs_dir: Path | str = "runs", *, echo: Any = None, form: str = "custom"
    ) -> ScenarioResult:
        """Runs the scenario and judges it; see `scenarios.runner.run_scenario`."""
        from .runner import run_scenario

        return run_scenario(self, Path(runs_dir), echo=echo, form=form)


_SCALARS = ("name", "description", "duration_s", "seed", "block_time_ms")


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
