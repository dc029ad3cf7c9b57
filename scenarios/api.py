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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analysis.expect import resolve_expect
from analysis.slo import SLO, Check, SqlCheck, Threshold, slo_from_json
from chaosproxy.errors import ConfigError as ProxyConfigError
from chaosproxy.faults import parse_faults
from loadgen.__main__ import check_args
from providers.remote import ProviderDef, Redactor, parse_provider

from .errors import ConfigError
from .fields import NAME, build, fail, integer, known, number
from .sut import Sut, external, managed, reference_router, sut_from_dict

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
# Load kept after the last fault ends beyond come_back_s, so the come-back is judged
# on traffic that was sent after it (one second of margin on each side).
COME_BACK_MARGIN_S = 2.0
# The metrics (analysis/queries.sql, analysis/slo.py) that judge a provider coming back.
COME_BACK_METRICS = ("abandoned_providers", "come_back_max_s", "traffic_return")


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
            number(f"{where}.rate", self.rate)
        integer(f"{where}.workers", self.workers, 1)
        number(f"{where}.timeout_s", self.timeout_s)
        integer(f"{where}.max_in_flight", self.max_in_flight, 1)
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
            raise fail(f"{where}.reconnect", "must be true or false", self.reconnect)
        number(f"{where}.call_interval_s", self.call_interval_s, strict=False)
        integer(f"{where}.workers", self.workers, 1)
        number(f"{where}.timeout_s", self.timeout_s)
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
    `schedule` (`{"flap": {"down_s", "up_s", "count"}}` or `{"random": ...}`); `match`
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
                raise fail(f"{where}.{name}", "must be true or false", getattr(self, name))
        number(f"{where}.interval_s", self.interval_s)


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
        if not isinstance(self.name, str) or not NAME.match(self.name):
            raise fail("name", "must be 1-60 letters, digits, '_', '.' or '-'", self.name)
        object.__setattr__(self, "providers", tuple(self.providers))
        object.__setattr__(self, "workloads", tuple(self.workloads))
        object.__setattr__(self, "faults", tuple(self.faults))
        if not isinstance(self.expect, Mapping):
            raise fail("expect", "must be a table of expectations", self.expect)
        try:
            resolve_expect(self.expect)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        object.__setattr__(self, "expect", {k: float(v) for k, v in self.expect.items()})
        number("duration_s", self.duration_s)
        integer("seed", self.seed, 0)
        integer("block_time_ms", self.block_time_ms, 1)
        self._check_providers()
        if not isinstance(self.sut, Sut):
            raise fail("sut", "must be a Sut (reference_router, managed, external)", self.sut)
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
                raise fail(f"workloads[{i}]", "must be an HttpLoad or a WsLoad", w)
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
            raise fail("collectors", "must be a Collectors", self.collectors)
        self.collectors.check()
        from analysis.database import DEFAULT_SETTINGS

        known("analysis", self.analysis, sorted(DEFAULT_SETTINGS))
        for key, value in self.analysis.items():
            number(f"analysis.{key}", value, strict=False)

    # -- validation ------------------------------------------------------------------

    def _check_providers(self) -> None:
        if not self.providers:
            raise ConfigError("providers must name at least one provider")
        seen: set[str] = set()
        for i, p in enumerate(self.providers):
            if not isinstance(p, ProviderDef):
                raise fail(f"providers[{i}]", "must be a provider (mock, anvil, remote)", p)
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
            raise fail(
                "block_time_ms",
                "must be a multiple of 1000 with anvil providers",
                self.block_time_ms,
            )

    def _checked_faults(self) -> tuple[Fault, ...]:
        out: list[Fault] = []
        used: dict[str, int] = {}
        for i, f in enumerate(self.faults):
            if not isinstance(f, Fault):
                raise fail(f"faults[{i}]", "must be a Fault", f)
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
        known("scenario", data, [f.name for f in dataclasses.fields(cls)])
        if "name" not in data:
            raise ConfigError("name is required")
        kw: dict[str, Any] = {k: v for k, v in data.items() if k in _SCALARS}
        kw["providers"] = [
            _provider(p, f"providers[{i}]") for i, p in enumerate(_list(data, "providers"))
        ]
        kw["workloads"] = [_workload(w, f"workloads[{i}]") for i, w in
                           enumerate(_list(data, "workloads"))]  # fmt: skip
        kw["faults"] = [build(Fault, f, f"faults[{i}]") for i, f in
                        enumerate(_list(data, "faults"))]  # fmt: skip
        kw["slos"] = list(_list(data, "slos"))
        if "sut" in data:
            kw["sut"] = sut_from_dict(_table(data, "sut"), base_dir=base_dir)
        if "collectors" in data:
            kw["collectors"] = build(Collectors, _table(data, "collectors"), "collectors")
        if "analysis" in data:
            kw["analysis"] = dict(_table(data, "analysis"))
        if "expect" in data:
            kw["expect"] = dict(_table(data, "expect"))
        return build(cls, kw, "scenario")

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
    known(
        where, data, ["kind", *{f.name for c in _WORKLOADS.values() for f in dataclasses.fields(c)}]
    )
    kind = data.get("kind", "http")
    if kind not in _WORKLOADS:
        raise fail(f"{where}.kind", "must be http or ws", kind)
    return build(_WORKLOADS[kind], {k: v for k, v in data.items() if k != "kind"}, where)
