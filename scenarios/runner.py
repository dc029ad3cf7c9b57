"""The runner: one `Scenario` carried out on loopback, then judged.

Order: allocate free ports; start the providers (mock or anvil; remote ones are only
reached), one chaos-proxy process with a listener per provider (HTTP and WebSocket on
the same port) and the scenario's faults as its plan, then the SUT (unless external);
wait until each answers; start the collectors; fix t0 a margin ahead, tell the chaos
proxy, write scenario.json; start the load workers; wait for them. Then stop every
child (SIGTERM, then SIGKILL), redact secrets from every file written, judge the run
and write its reports.

Secrets (the scenario's `redactor`: remote providers' keys, the SUT's URL keys, client
path and credential options) never reach a file in clear except the rendered SUT config
(the router needs them; written 0600) and the 0600 argument files through which a child
whose command line would hold one is started (`/proc/PID/cmdline` is world-readable);
the argument files are removed and every text file scrubbed when the run ends. The
load runs for `Scenario.load_duration_s` (extended past the last fault's come-back).
A host-jitter probe (`scenarios/jitter.py`) records each second how late a 10 ms sleep
of the runner wakes up (`system/host_jitter.runner.csv`).

A child that dies before the load ends is recorded (lifecycle `died`) and ends the run
as invalid (`RunError`, exit 3). Ctrl-C / SIGTERM (KeyboardInterrupt) stops every
child, records `interrupted` and re-raises. Children die with the runner even when it
is SIGKILLed (`PR_SET_PDEATHSIG`); the shards they wrote stay readable.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from analysis import (
    CheckResult,
    Converter,
    RunJudgement,
    judge_run,
    summary_text,
    write_reports,
)
from analysis.shards import ShardWriter, shard_path

from .collectors import SystemCollector
from .errors import ConfigError, RunError
from .jitter import JitterProbe
from .metrics import MetricsCollector
from .processes import START_MARGIN_NS, Child, ProcessGroup, StartGate, free_ports, wait_until
from .sut import (
    SutPlan,
    plan_sut,
    probe_ready,
    proxy_upstream,
    proxy_ws_upstream,
    upstreams_for,
)

if TYPE_CHECKING:
    # Types only: the Scenario API imports this module to run a scenario.
    from .api import Scenario

__all__ = ["ScenarioResult", "new_run_dir", "run_scenario"]

# Seconds a provider or the chaos proxy may take to answer its probe (mitmproxy takes
# about 1 s; anvil 0.2 s idle, several on a loaded machine).
READY_TIMEOUT_S = 30.0
# Seconds the load workers may take to start (Python, imports, the mock chain) before
# the run gives up on them: 0.3 s on an idle machine, a few beside a CPU hog. The load
# starts START_MARGIN_NS after the last is ready (processes.StartGate).
WORKERS_READY_TIMEOUT_S = 60.0
# A mock chain starts with this many blocks of history, so historical calls have some.
MOCK_HISTORY_BLOCKS = 1000
# After its schedule, a worker drains for one timeout; beyond that plus this, it hangs.
WORKER_SLACK_S = 30.0
# `python -c` code that runs `python -m MODULE ARGS...` with MODULE and ARGS read from
# the JSON file given as its argument. Inline rather than a module of ours: importing
# the scenarios package would add its imports to the chaos proxy's start-up and RSS.
# (chaosproxy re-executes itself with -O from sys.orig_argv: this code and the file.)
FROM_FILE = (
    "import json, runpy, sys; spec = json.load(open(sys.argv[1]));"
    " sys.argv = [spec['module'], *spec['argv']];"
    " runpy.run_module(spec['module'], run_name='__main__', alter_sys=True)"
)


def write_private(path: Path, text: str) -> None:
    """Writes `text` to `path` readable by this user only (0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an existing file keeps its mode through os.open
        os.write(fd, text.encode())
    finally:
        os.close(fd)


@dataclass(frozen=True)
class ScenarioResult:
    """A judged run: verdict, summary, every metric, every SLO with its evidence."""

    judgement: RunJudgement

    @property
    def verdict(self) -> str:
        return self.judgement.verdict

    @property
    def exit_code(self) -> int:
        return int(self.judgement.exit_code)

    @property
    def passed(self) -> bool:
        return self.judgement.verdict == "passed"

    @property
    def run_dir(self) -> Path:
        return self.judgement.run_dir

    @property
    def slos(self) -> list[CheckResult]:
        return self.judgement.slos

    @property
    def validity(self) -> list[CheckResult]:
        return self.judgement.validity

    @property
    def metrics(self) -> dict[str, float | None]:
        return self.judgement.metrics

    @property
    def failed_slos(self) -> list[str]:
        return [s.name for s in self.judgement.slos if not s.passed]

    @property
    def summary(self) -> str:
        return summary_text(self.judgement)

    def slo(self, name: str) -> CheckResult:
        """The SLO result called `name` (KeyError if there is none)."""
        for s in self.judgement.slos:
            if s.name == name:
                return s
        raise KeyError(name)


def new_run_dir(runs_dir: Path, name: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    run_dir = Path(runs_dir) / f"{stamp}-{slug}"
    run_dir.mkdir(parents=True)
    return run_dir


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("battle", "mitmproxy", "trio", "httpx", "duckdb"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "unknown"
    return out


def _rpc_ok(url: str) -> bool:
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    try:
        return httpx.post(url, json=body, timeout=1.0).status_code == 200
    except httpx.TransportError:
        return False


def _get_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.TransportError:
        return False


def _died(children: list[Child]) -> str:
    return "\n".join(
        f"{c.name} (pid {c.pid}) exited with {c.exited()}; log {c.log}:\n{c.log_tail()}"
        for c in children
    )


class _Run:
    """The mutable state of one run; `execute` is the whole life cycle."""

    def __init__(self, scenario: Scenario, run_dir: Path, form: str, echo: Callable[[str], Any]):
        self.s = scenario
        self.run_dir = run_dir
        self.redactor = scenario.redactor
        self.echo = lambda line: echo(self.redactor.text(line))
        self.private: list[Path] = []
        self.spec: dict[str, Any] = {
            **scenario.resolved(),
            "form": form,
            "host": platform.node(),
            "versions": versions(),
        }
        self.lifecycle = ShardWriter(
            shard_path(run_dir / "events", "lifecycle", "runner"), "lifecycle"
        )
        self.group = ProcessGroup(run_dir / "logs", on_start=self._spawned)
        self.system_sink = ShardWriter(shard_path(run_dir / "system", "system", "runner"), "system")
        self.metrics_sink: ShardWriter | None = None
        self.collectors: list[SystemCollector | MetricsCollector | JitterProbe | Converter] = []
        self.jitter_sink: ShardWriter | None = None
        self.sut_child: Child | None = None

    def event(self, name: str, detail: str | None = None) -> None:
        self.lifecycle.append((time.time_ns(), "runner", "runner", None, name, detail))

    def _spawned(self, child: Child) -> None:
        self.lifecycle.append((time.time_ns(), child.name, child.role, child.pid, "spawned", None))

    def write_spec(self) -> None:
        spec = self.redactor.value(self.spec)
        (self.run_dir / "scenario.json").write_text(json.dumps(spec, indent=2))

    def start(self, name: str, role: str, argv: list[str], **kw: Any) -> Child:
        """Starts a child. A `-m MODULE` command line holding a secret is passed
        through a 0600 file instead (`FROM_FILE`), so that no key is in the process
        list."""
        joined = " ".join(argv)
        if argv[:1] == ["-m"] and self.redactor.text(joined) != joined:
            folder = self.run_dir / "private"
            folder.mkdir(mode=0o700, exist_ok=True)
            path = folder / f"{name}.args.json"
            write_private(path, json.dumps({"module": argv[1], "argv": argv[2:]}))
            self.private.append(path)
            argv = ["-c", FROM_FILE, str(path)]
        return self.group.start(name, role, argv, **kw)

    # -- the life cycle ----------------------------------------------------------------

    def execute(self) -> None:
        s = self.s
        local = [p for p in s.providers if p.kind != "remote"]
        n = len(s.providers)
        managed = s.sut.kind != "external"
        fixed = list(s.sut.listen_ports)
        ports = free_ports(len(local) + (0 if fixed else n) + 1 + int(managed))
        provider_ports = dict(zip((p.name for p in local), ports, strict=False))
        listen_ports = fixed or ports[len(local) : len(local) + n]
        # The last ports: the control API's, then the SUT's when the runner starts it.
        control_port = ports[-2] if managed else ports[-1]
        sut_port = ports[-1] if managed else None
        anvils = any(p.kind == "anvil" for p in s.providers)
        now = time.time_ns()
        # anvil takes whole seconds and always starts at block 0 (ARCHITECTURE.md).
        genesis_ns = (
            now // 10**9 * 10**9 if anvils else now - MOCK_HISTORY_BLOCKS * s.block_time_ms * 10**6
        )
        self.spec.update(
            genesis_ns=genesis_ns,
            ports={"control": control_port, "sut": sut_port, "providers": provider_ports,
                   "listeners": dict(zip((p.name for p in s.providers), listen_ports,
                                         strict=True))},
        )  # fmt: skip
        upstreams = upstreams_for(s.providers, listen_ports)
        sut = plan_sut(s.sut, sut_port, upstreams, self.run_dir)
        if sut.config_path is not None and sut.config_text is not None:
            # The router reads its keys (credential options) from here: 0600.
            write_private(sut.config_path, sut.config_text)
        plan_path = self.run_dir / "chaos-plan.json"
        plan = self.redactor.value([f.to_dict() for f in s.faults])
        plan_path.write_text(json.dumps(plan, indent=2))

        for p in local:
            argv = self._provider_argv(p, provider_ports[p.name], genesis_ns)
            self.start(f"provider-{p.name}", "provider", argv)
        listens = [
            f"--listen={p.name}={port}={proxy_upstream(p, provider_ports.get(p.name))}"
            for p, port in zip(s.providers, listen_ports, strict=True)
        ]
        listens += [
            f"--listen-ws={p.name}={ws}" for p in s.providers if (ws := proxy_ws_upstream(p))
        ]
        self.start("proxy-p0", "proxy", ["-m", "chaosproxy", "--proxy-id", "p0",
                         "--run-dir", str(self.run_dir), "--control-port", str(control_port),
                         "--faults", str(plan_path), *listens])  # fmt: skip
        if sut.argv is not None:
            self.sut_child = self.group.start(
                "sut", "sut", sut.argv, python=sut.python_module, own_session=True
            )
        for p in local:
            url = f"http://127.0.0.1:{provider_ports[p.name]}/"
            self._wait(lambda u=url: _rpc_ok(u), f"provider {p.name}", READY_TIMEOUT_S)
        control = f"http://127.0.0.1:{control_port}"
        self._wait(lambda: _get_ok(f"{control}/health"), "chaos proxy", READY_TIMEOUT_S)
        self._wait(lambda: probe_ready(s.sut, sut.url, sut.base_url),
                   f"system under test ({s.sut.ready})", s.sut.ready_timeout_s)  # fmt: skip
        self.event("ready")
        self._start_collectors(sut)

        # The workers start held (processes.StartGate); t0 is fixed once all of them are
        # set up, so that none starts its schedule late however slow its start-up was.
        gate = StartGate()
        try:
            workers = self._start_workers(gate, sut, genesis_ns, plan_path)
            try:
                gate.wait(WORKERS_READY_TIMEOUT_S)
            except (ChildProcessError, TimeoutError) as exc:
                self.event("died", str(exc))
                raise RunError(f"load workers: {exc}") from None
            t0_ns = time.time_ns() + START_MARGIN_NS
            self.spec["t0_ns"] = t0_ns
            response = httpx.post(f"{control}/start", json={"t0_ns": t0_ns}, timeout=5.0)
            if response.status_code != 200:
                raise RunError(
                    f"chaos proxy refused /start: {response.status_code} {response.text}"
                )
            self.write_spec()
            self.event("load_started")
            gate.release(t0_ns)
        finally:
            gate.close()
        self.echo(f"load: t0 in {START_MARGIN_NS / 1e9:g} s, {s.load_duration_s:g} s of load;"
                  f" run directory {self.run_dir}")  # fmt: skip
        timeout = max(w.timeout_s for w in s.workloads)
        deadline = (
            time.monotonic() + START_MARGIN_NS / 1e9 + s.load_duration_s + timeout + WORKER_SLACK_S
        )
        while any(w.exited() is None for w in workers):
            others = [c for c in self.group.dead() if c not in workers]
            if others:
                self.event("died", _died(others))
                raise RunError(_died(others))
            if time.monotonic() > deadline:
                raise RunError("a load worker did not finish in time")
            time.sleep(0.1)
        failed = [w for w in workers if w.exited() != 0]
        if failed:
            self.event("died", _died(failed))
            raise RunError(_died(failed))
        self.event("load_finished")

    def _provider_argv(self, p: Any, port: int, genesis_ns: int) -> list[str]:
        if p.kind == "anvil":
            return ["-m", "providers.anvil", "--name", p.name, "--port", str(port),
                    "--timestamp", str(genesis_ns // 10**9),
                    "--block-time-ms", str(self.s.block_time_ms)]  # fmt: skip
        argv = ["-m", "providers.mock", "--name", p.name, "--port", str(port),
                "--seed", str(self.s.seed), "--genesis-ns", str(genesis_ns),
                "--block-time-ms", str(self.s.block_time_ms)]  # fmt: skip
        if p.behaviour is not None:
            argv += ["--behaviour", json.dumps(dict(p.behaviour), separators=(",", ":"))]
        return argv

    def _start_collectors(self, sut: SutPlan) -> None:
        c = self.s.collectors
        if c.system:
            system = SystemCollector(
                lambda: {ch.pid: ch.role for ch in self.group.children if ch.exited() is None},
                self.system_sink,
                interval=c.interval_s,
            )
            self.collectors.append(system)
        if c.metrics and sut.metrics_url:
            self.metrics_sink = ShardWriter(
                shard_path(self.run_dir / "system", "metrics", "runner"), "metrics"
            )
            self.collectors.append(
                MetricsCollector(sut.metrics_url, self.metrics_sink, interval=c.interval_s)
            )
        # Always on: it costs 100 wake-ups a second, and without it a slow host
        # cannot be told from a slow router.
        self.jitter_sink = ShardWriter(
            shard_path(self.run_dir / "system", "host_jitter", "runner"), "host_jitter"
        )
        self.collectors.append(JitterProbe(self.jitter_sink))
        # Shards to Parquet as the run goes, so that analysis at the end has only the
        # last seconds to parse (analysis/columnar.py).
        self.collectors.append(Converter(self.run_dir))
        for collector in self.collectors:
            collector.start()

    def _start_workers(
        self, gate: StartGate, sut: SutPlan, genesis_ns: int, plan_path: Path
    ) -> list[Child]:
        s = self.s
        # An external router without our listeners answers from providers of its own:
        # the mock chain is not the truth of its answers.
        behind_us = s.sut.kind != "external" or bool(s.sut.listen_ports)
        truth = behind_us and all(p.kind == "mock" for p in s.providers)
        module = "scenarios.worker" if truth else "loadgen"
        truth_args = (
            ["--chain-seed", str(s.seed), "--genesis-ns", str(genesis_ns),
             "--block-time-ms", str(s.block_time_ms)] if truth else []
        )  # fmt: skip
        # The one workload with several processes takes indices 0..M-1 (its share of
        # the schedule is its index); the others, one process each, follow.
        order = sorted(range(len(s.workloads)), key=lambda i: -s.workloads[i].workers)
        children, index = [], 0
        for i in order:
            w = s.workloads[i]
            for j in range(w.workers):
                argv = ["-m", module, *w.argv(s.load_duration_s, s.seed), *truth_args,
                        "--target", sut.url, "--run-dir", str(self.run_dir),
                        "--worker", str(index), "--workers", str(w.workers),
                        "--faults", str(plan_path)]  # fmt: skip
                # A WebSocket workload (its arguments subscribe) goes to the SUT's WS URL.
                if "--ws-subscriptions" in argv and sut.ws_url:
                    argv += ["--ws-url", sut.ws_url]
                assert j < w.workers
                children.append(gate.start(self.start, f"loadgen-w{index}", "loadgen", argv))
                index += 1
        return children

    def _wait(self, probe: Callable[[], bool], what: str, timeout: float) -> None:
        def ready() -> bool:
            if dead := self.group.dead():
                self.event("died", _died(dead))
                raise RunError(_died(dead))
            return probe()

        try:
            wait_until(ready, timeout=timeout, what=what)
        except TimeoutError as exc:
            raise RunError(str(exc)) from None

    def finish(self, interrupted: bool) -> None:
        for collector in self.collectors:
            collector.stop()
        scraped = [c for c in self.collectors if isinstance(c, MetricsCollector)]
        for c in scraped:
            self.event("metrics_scrapes", json.dumps(
                {"ok": c.scrapes, "failed": c.failures, "last_error": c.last_error}))  # fmt: skip
        self.system_sink.close()
        for sink in (self.metrics_sink, self.jitter_sink):
            if sink is not None:
                sink.close()
        self.group.stop_all(grace=self.s.sut.stop_grace_s)
        if interrupted:
            self.spec["interrupted"] = True
            self.event("interrupted")
        self.event("stopped")
        self.lifecycle.close()
        self.spec["t_end_ns"] = time.time_ns()
        self.write_spec()
        for path in self.private:
            path.unlink(missing_ok=True)
        if self.private:
            with contextlib.suppress(OSError):  # not empty: scrubbed below like the rest
                (self.run_dir / "private").rmdir()
        # Keys may have reached a rendered config, a log or a shard: scrub them all.
        if self.redactor:
            self.redactor.tree(self.run_dir)


def run_scenario(
    scenario: Scenario,
    runs_dir: Path,
    *,
    echo: Callable[[str], Any] | None = None,
    form: str = "custom",
) -> ScenarioResult:
    """Runs `scenario` end to end and judges it; every child is stopped on return,
    whatever happened.

    Args:
        runs_dir: the run directory is created inside it.
        echo: called with progress lines (default: silent).
        form: recorded in scenario.json (`fast`, `full`, `custom`).

    Raises:
        RunError: a child died, a process was not ready in time, or a worker failed:
            the run cannot be trusted (exit 3).
        ConfigError: the SUT's template or config was rejected (exit 2).
        KeyboardInterrupt: Ctrl-C or SIGTERM; the run is marked interrupted.
    """
    run_dir = new_run_dir(runs_dir, scenario.name)
    run = _Run(scenario, run_dir, form, echo or (lambda line: None))
    interrupted = False
    try:
        run.execute()
    except KeyboardInterrupt:
        interrupted = True
        raise
    except (RunError, ConfigError) as exc:
        # Its message (a child's log tail, a template error) may quote a key.
        raise type(exc)(run.redactor.text(str(exc))) from None
    finally:
        run.finish(interrupted)
    judgement = judge_run(run_dir, scenario.slos)
    write_reports(judgement)
    return ScenarioResult(judgement)
