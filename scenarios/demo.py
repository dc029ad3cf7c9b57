"""The demo scenario: three mock providers, one of them down for a while in the middle,
the reference router in front, constant-rate load, SLOs judged from recorded data."""

from __future__ import annotations

import json
import platform
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import httpx

from analysis import Check, RunJudgement, judge_run, write_reports
from analysis.shards import ShardWriter, shard_path
from examples.reference_router import render_config

from .collectors import SystemCollector
from .errors import ConfigError, RunError
from .processes import Child, ProcessGroup, free_ports, wait_until

__all__ = ["DEMO_SLOS", "DemoScenario", "run_demo"]

DEMO_SLOS: tuple[Check, ...] = (
    Check("success_rate", ">=", 0.99, "clients got a correct answer to 99% of calls"),
    Check("latency_p95_ms", "<", 500, "p95 latency from the intended send time under 500 ms"),
    Check("failovers", ">=", 1, "a request that failed on one provider was retried on another"),
)

# Seconds a child may take to answer its readiness probe (mitmproxy takes about 1 s).
READY_TIMEOUT_S = 30.0
# Load starts this long after every child is ready. The load worker is started after
# t0 is fixed and takes 0.3-1 s to import and connect here; with 0.3 s its first sends
# went out up to 211 ms late, so the margin covers its start-up with room to spare.
START_MARGIN_NS = 2_000_000_000


@dataclass(frozen=True)
class DemoScenario:
    name: str = "demo"
    providers: tuple[str, ...] = ("A", "B", "C")
    rate: float = 50.0
    duration_s: float = 30.0
    mix: str = "eth_blockNumber=1,eth_getBalance=1"
    fault_provider: str = "A"
    fault_kind: str = "reset"
    fault_at_s: float = 10.0
    fault_for_s: float = 10.0
    failover: bool = True
    strategy: str = "round_robin"
    request_timeout_s: float = 5.0
    seed: int = 1
    block_time_ms: int = 1000
    slos: tuple[Check, ...] = field(default=DEMO_SLOS)
    # The fault's params (e.g. http_error's status and headers).
    fault_params: dict = field(default_factory=dict)
    # Extra reference-router config keys (see examples.reference_router.render_config).
    router_options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = []
        if not self.rate > 0:
            problems.append(f"rate must be > 0, got {self.rate:g}")
        if not self.duration_s > 0:
            problems.append(f"duration must be > 0, got {self.duration_s:g}")
        if self.fault_at_s < 0:
            problems.append(f"fault_at must be >= 0, got {self.fault_at_s:g}")
        if not self.fault_for_s > 0:
            problems.append(f"fault_for must be > 0, got {self.fault_for_s:g}")
        elif self.fault_at_s + self.fault_for_s > self.duration_s:
            problems.append(
                f"fault_at + fault_for must end within the load's duration"
                f" ({self.duration_s:g} s), got {self.fault_at_s + self.fault_for_s:g} s"
            )
        if self.fault_provider not in self.providers:
            problems.append(
                f"fault_provider must be one of {list(self.providers)}, got {self.fault_provider!r}"
            )
        if problems:
            raise ConfigError("; ".join(problems))

    @property
    def faults(self) -> list[dict]:
        return [
            {
                "fault_id": f"{self.fault_provider.lower()}-down",
                "provider": self.fault_provider,
                "kind": self.fault_kind,
                "start_s": self.fault_at_s,
                "duration_s": self.fault_for_s,
                "params": dict(self.fault_params),
            }
        ]

    def resolved(self) -> dict:
        values = asdict(self)
        values["slos"] = [s.to_json() for s in self.slos]
        values["faults"] = self.faults
        return values


def _versions() -> dict[str, str]:
    names = ("battle", "mitmproxy", "trio", "httpx", "duckdb")
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "unknown"
    return out


def new_run_dir(runs_dir: Path, name: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    run_dir = runs_dir / f"{stamp}-{slug}"
    run_dir.mkdir(parents=True)
    return run_dir


def _post_json_ok(url: str, payload: dict) -> bool:
    try:
        return httpx.post(url, json=payload, timeout=1.0).status_code == 200
    except httpx.TransportError:
        return False


def _get_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.TransportError:
        return False


def run_demo(scenario: DemoScenario, runs_dir: Path) -> RunJudgement:
    """Runs the scenario end to end and judges it. Every child is stopped on return,
    whatever happened."""
    run_dir = new_run_dir(runs_dir, scenario.name)
    spec = {**scenario.resolved(), "host": platform.node(), "versions": _versions()}
    n = len(scenario.providers)
    ports = free_ports(2 * n + 2)
    provider_ports, listen_ports = ports[:n], ports[n : 2 * n]
    control_port, router_port = ports[2 * n], ports[2 * n + 1]
    genesis_ns = time.time_ns() - 1000 * scenario.block_time_ms * 1_000_000
    spec.update(genesis_ns=genesis_ns, ports={"control": control_port, "router": router_port})

    (run_dir / "chaos-plan.json").write_text(json.dumps(scenario.faults, indent=2))
    lifecycle = ShardWriter(shard_path(run_dir / "events", "lifecycle", "runner"), "lifecycle")

    def event(name: str, detail: str | None = None) -> None:
        lifecycle.append((time.time_ns(), "runner", "runner", None, name, detail))

    def spawned(child: Child) -> None:
        lifecycle.append((time.time_ns(), child.name, child.role, child.pid, "spawned", None))

    group = ProcessGroup(run_dir / "logs", on_start=spawned)
    system = ShardWriter(shard_path(run_dir / "system", "system", "runner"), "system")
    collector = SystemCollector(
        lambda: {c.pid: c.role for c in group.children if c.exited() is None}, system
    )

    try:
        for name, port in zip(scenario.providers, provider_ports, strict=True):
            group.start(
                f"provider-{name}",
                "provider",
                [
                    "-m",
                    "providers.mock",
                    "--name",
                    name,
                    "--port",
                    str(port),
                    "--seed",
                    str(scenario.seed),
                    "--genesis-ns",
                    str(genesis_ns),
                    "--block-time-ms",
                    str(scenario.block_time_ms),
                ],
            )
        listens = [
            f"--listen={name}={lport}=http://127.0.0.1:{pport}"
            for name, lport, pport in zip(
                scenario.providers, listen_ports, provider_ports, strict=True
            )
        ]
        group.start(
            "proxy-p0",
            "proxy",
            [
                "-m",
                "chaosproxy",
                "--proxy-id",
                "p0",
                "--run-dir",
                str(run_dir),
                "--control-port",
                str(control_port),
                "--faults",
                str(run_dir / "chaos-plan.json"),
                *listens,
            ],
        )
        config = render_config(
            listen=f"127.0.0.1:{router_port}",
            upstreams=[
                {"name": name, "url": f"http://127.0.0.1:{port}"}
                for name, port in zip(scenario.providers, listen_ports, strict=True)
            ],
            strategy=scenario.strategy,
            failover=scenario.failover,
            request_timeout_s=scenario.request_timeout_s,
            attempt_timeout_s=min(2.0, scenario.request_timeout_s),
            max_attempts=n,
            # Without failover the router must keep sending to the dead provider, as the
            # demo means to show: its circuit breaker would route around it too.
            **{"circuit_breaker": scenario.failover, **scenario.router_options},
        )
        (run_dir / "router.toml").write_text(config)
        group.start(
            "router",
            "sut",
            ["-m", "examples.reference_router", "--config", str(run_dir / "router.toml")],
        )

        probe = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
        for name, port in zip(scenario.providers, provider_ports, strict=True):
            _wait(
                group,
                lambda p=port: _post_json_ok(f"http://127.0.0.1:{p}/", probe),
                f"provider {name}",
            )
        _wait(group, lambda: _get_ok(f"http://127.0.0.1:{control_port}/health"), "chaos proxy")
        _wait(group, lambda: _get_ok(f"http://127.0.0.1:{router_port}/health"), "router")
        event("ready")
        collector.start()

        t0_ns = time.time_ns() + START_MARGIN_NS
        spec["t0_ns"] = t0_ns
        response = httpx.post(
            f"http://127.0.0.1:{control_port}/start", json={"t0_ns": t0_ns}, timeout=5.0
        )
        if response.status_code != 200:
            raise RunError(f"chaos proxy refused /start: {response.status_code} {response.text}")
        (run_dir / "scenario.json").write_text(json.dumps(spec, indent=2))
        event("load_started")

        load = group.start(
            "loadgen-w0",
            "loadgen",
            [
                "-m",
                "scenarios.worker",
                "--chain-seed",
                str(scenario.seed),
                "--genesis-ns",
                str(genesis_ns),
                "--block-time-ms",
                str(scenario.block_time_ms),
                "--worker",
                "0",
                "--target",
                f"http://127.0.0.1:{router_port}/",
                "--run-dir",
                str(run_dir),
                "--t0-ns",
                str(t0_ns),
                "--rate",
                str(scenario.rate),
                "--duration",
                str(scenario.duration_s),
                "--mix",
                scenario.mix,
                "--seed",
                str(scenario.seed),
                "--timeout",
                str(scenario.request_timeout_s),
            ],
        )
        # The worker ends by itself: its schedule, plus one timeout for the last calls.
        deadline = time.monotonic() + scenario.duration_s + scenario.request_timeout_s + 30
        while load.exited() is None:
            others = [c for c in group.dead() if c is not load]
            if others:
                raise RunError(_died(others))
            if time.monotonic() > deadline:
                raise RunError("the load generator did not finish in time")
            time.sleep(0.1)
        if load.exited() != 0:
            raise RunError(_died([load]))
        event("load_finished")
    finally:
        collector.stop()
        system.close()
        group.stop_all()
        event("stopped")
        lifecycle.close()
        spec["t_end_ns"] = time.time_ns()
        (run_dir / "scenario.json").write_text(json.dumps(spec, indent=2))

    judgement = judge_run(run_dir, scenario.slos)
    write_reports(judgement)
    return judgement


def _wait(group: ProcessGroup, probe, what: str) -> None:
    def ready() -> bool:
        if dead := group.dead():
            raise RunError(_died(dead))
        return probe()

    try:
        wait_until(ready, timeout=READY_TIMEOUT_S, what=what)
    except TimeoutError as exc:
        raise RunError(str(exc)) from None


def _died(children) -> str:
    parts = []
    for c in children:
        parts.append(
            f"{c.name} (pid {c.pid}) exited with {c.exited()}; log {c.log}:\n{c.log_tail()}"
        )
    return "\n".join(parts)
