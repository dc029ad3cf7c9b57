"""The demo scenario: three mock providers, one of them down for a while in the middle,
the reference router in front, constant-rate load, SLOs judged from recorded data."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from analysis import Check, RunJudgement

from .api import Fault, HttpLoad, Scenario, mock, reference_router
from .errors import ConfigError
from .runner import run_scenario

__all__ = ["DEMO_SLOS", "DemoScenario", "run_demo"]

DEMO_SLOS: tuple[Check, ...] = (
    Check("success_rate", ">=", 0.99, "clients got a correct answer to 99% of calls"),
    Check("latency_p95_ms", "<", 500, "p95 latency from the intended send time under 500 ms"),
    Check("failovers", ">=", 1, "a request that failed on one provider was retried on another"),
)


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

    def to_scenario(self) -> Scenario:
        """The demo on the Scenario API."""
        return Scenario(
            name=self.name,
            description="three mock providers, one down mid-run, the reference router in front",
            providers=[mock(name) for name in self.providers],
            sut=reference_router(
                strategy=self.strategy,
                failover=self.failover,
                request_timeout_s=self.request_timeout_s,
                attempt_timeout_s=min(2.0, self.request_timeout_s),
                # Without failover the router must keep sending to the dead provider, as
                # the demo means to show: its circuit breaker would route around it too.
                **{"circuit_breaker": self.failover, **self.router_options},
            ),
            workloads=[HttpLoad(rate=self.rate, mix=self.mix, timeout_s=self.request_timeout_s)],
            duration_s=self.duration_s,
            faults=[Fault(**fault) for fault in self.faults],
            slos=self.slos,
            seed=self.seed,
            block_time_ms=self.block_time_ms,
        )


def run_demo(scenario: DemoScenario, runs_dir: Path) -> RunJudgement:
    """Runs the demo end to end and judges it. Every child is stopped on return,
    whatever happened."""
    return run_scenario(scenario.to_scenario(), runs_dir).judgement
