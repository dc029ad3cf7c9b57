"""The `battle` command line. Exit codes are DESIGN.md's, mapped here and only here."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import click

from analysis import ExitCode

from .errors import ConfigError, RunError

__all__ = ["main"]


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop_on_signals() -> None:
    """SIGTERM and SIGINT both stop the command as Ctrl-C does. SIGINT explicitly: a
    process started in the background of a non-interactive shell inherits SIGINT
    ignored, and Python then installs no KeyboardInterrupt for it."""
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, _raise_interrupt)


def _resolve_run(run: str, runs_dir: Path) -> Path:
    for candidate in (Path(run), runs_dir / run):
        if candidate.is_dir():
            return candidate
    if run == "latest":
        runs = sorted(p for p in runs_dir.glob("*") if p.is_dir())
        if runs:
            return runs[-1]
    raise click.BadParameter(f"no run directory {run!r} (nor {runs_dir / run})", param_hint="RUN")


_RUNS_DIR = click.option(
    "--runs-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs"),
    show_default=True,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Battle-test a JSON-RPC router: chaos, load, and SLOs judged from recorded data."""


@cli.command()
@click.option("--rate", type=float, default=50.0, show_default=True, help="requests per second")
@click.option("--duration", type=float, default=30.0, show_default=True, help="seconds of load")
@click.option(
    "--fault-at",
    type=float,
    default=10.0,
    show_default=True,
    help="seconds after the start when provider A goes down",
)
@click.option(
    "--fault-for", type=float, default=10.0, show_default=True, help="seconds provider A stays down"
)
@click.option(
    "--failover/--no-failover",
    default=True,
    show_default=True,
    help="switch the reference router's failover on or off",
)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option(
    "--runs-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs"),
    show_default=True,
)
def demo(
    rate: float,
    duration: float,
    fault_at: float,
    fault_for: float,
    failover: bool,
    seed: int,
    runs_dir: Path,
) -> None:
    """Three mock providers, provider A down mid-run, the reference router in front."""
    from analysis import summary_text

    from .demo import DemoScenario, run_demo

    try:
        scenario = DemoScenario(
            rate=rate,
            duration_s=duration,
            fault_at_s=fault_at,
            fault_for_s=fault_for,
            failover=failover,
            seed=seed,
        )
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(
        f"demo: {len(scenario.providers)} mock providers behind the chaos proxy, "
        f"reference router (failover {'on' if failover else 'off'}), "
        f"{rate:g} req/s for {duration:g} s, provider {scenario.fault_provider} "
        f"down from {fault_at:g} s for {fault_for:g} s"
    )
    _stop_on_signals()
    try:
        judgement = run_demo(scenario, runs_dir)
    except RunError as exc:
        click.echo(f"battle: run invalid: {exc}", err=True)
        sys.exit(ExitCode.INVALID)
    except KeyboardInterrupt:
        click.echo("battle: interrupted; every child process was stopped", err=True)
        sys.exit(130)
    click.echo(summary_text(judgement))
    sys.exit(judgement.exit_code)


def _config_error(exc: ConfigError) -> None:
    """A bad scenario, file or flag: one line on stderr, exit 2."""
    click.echo(f"battle: error: {exc}", err=True)
    sys.exit(ExitCode.USAGE)


@cli.command("run")
@click.argument("target", metavar="PATH|NAME")
@click.option("--full", is_flag=True, help="a built-in's (or a file's) full form; default: fast")
@click.option("--rate", type=float, help="every HTTP workload's constant rate, requests/s")
@click.option("--duration", type=float, help="seconds of load")
@click.option("--seed", type=int, help="the chain's and the load's seed")
@click.option("--sut-url", help="test a router already running at this URL (external SUT)")
@click.option(
    "--sut",
    "sut_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="your router: a TOML file with a [sut] table (a scenario file's schema) and an"
    " optional [expect] table; replaces the scenario's SUT",
)
@click.option("--providers", help="mock | anvil (switch every local provider) | FILE.toml/json")
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="any field by dotted path, value as a TOML literal (e.g. sut.options.failover=false,"
    " workloads.0.workers=2); repeatable",
)
@click.option(
    "--expect",
    "expects",
    multiple=True,
    metavar="KEY=VALUE",
    help="declare an expectation of your router (e.g. come_back_s=30), over the"
    " scenario's and the --sut file's; repeatable",
)
@click.option("--dry-run", is_flag=True, help="print the resolved plan and stop")
@_RUNS_DIR
def run_cmd(
    target: str,
    full: bool,
    rate: float | None,
    duration: float | None,
    seed: int | None,
    sut_url: str | None,
    sut_file: Path | None,
    providers: str | None,
    sets: tuple[str, ...],
    expects: tuple[str, ...],
    dry_run: bool,
    runs_dir: Path,
) -> None:
    """Run a scenario: a .py file (defining `scenario` or `build()`), a .toml file, or
    a built-in NAME (`battle list`). Prints the resolved plan, runs it, judges it, and
    exits with the verdict's code (0 passed, 1 failed, 2 usage, 3 invalid)."""
    from .loader import (
        apply_overrides,
        describe_plan,
        expect_from_sets,
        load_scenario,
        load_sut_file,
        parse_expect,
    )
    from .runner import run_scenario

    try:
        sut, profile = load_sut_file(sut_file) if sut_file is not None else (None, {})
        # The router profile, weakest first: the --sut file's, --set expect.*, --expect.
        expect = {**profile, **expect_from_sets(sets), **parse_expect(expects)}
        scenario, form = load_scenario(target, full=full, expect=expect)
        scenario = apply_overrides(
            scenario,
            rate=rate,
            duration=duration,
            seed=seed,
            sut_url=sut_url,
            providers=providers,
            sets=sets,
            sut=sut,
            expect=expect,
        )
    except ConfigError as exc:
        _config_error(exc)
    click.echo(describe_plan(scenario, form))
    if dry_run:
        return
    _stop_on_signals()
    try:
        result = run_scenario(scenario, runs_dir, echo=click.echo, form=form)
    except ConfigError as exc:
        _config_error(exc)
    except RunError as exc:
        click.echo(f"battle: run invalid: {exc}", err=True)
        sys.exit(ExitCode.INVALID)
    except KeyboardInterrupt:
        click.echo(
            "battle: interrupted; every child process was stopped and the run marked"
            " interrupted (`battle report RUN` judges what was recorded)",
            err=True,
        )
        sys.exit(130)
    click.echo(result.summary)
    sys.exit(result.exit_code)


@cli.command("list")
def list_cmd() -> None:
    """The built-in scenarios, with one line each (`battle run NAME [--full]`)."""
    from .builtin import registry

    entries = registry()
    width = max(len(name) for name in entries)
    for name, entry in entries.items():
        click.echo(f"{name:<{width}}  {entry.description}")


@cli.command()
@click.argument("run")
@click.option(
    "--runs-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs"),
    show_default=True,
)
def ingest(run: str, runs_dir: Path) -> None:
    """Build (or rebuild) RUN's database from its shards; prints its path, then the
    rows of each table that has any."""
    import time

    import duckdb

    from analysis import ingest as build
    from analysis.database import VIEWS

    started = time.perf_counter()
    try:
        path = build(_resolve_run(run, runs_dir))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(str(path))
    con = duckdb.connect(str(path), read_only=True)
    try:
        counts = con.execute(
            "SELECT table_name, estimated_size FROM duckdb_tables()"
            " WHERE estimated_size > 0 ORDER BY table_name"
        ).fetchall()
        # requests and upstream are views over their Parquet parts (analysis.database).
        for view in VIEWS:
            n = con.execute(f"SELECT count(*) FROM {view}").fetchone()[0]
            if n:
                counts.append((view, n))
        counts.sort()
    finally:
        con.close()
    rows = "  ".join(f"{name} {n:,}" for name, n in counts)
    click.echo(f"{rows}  ({time.perf_counter() - started:.1f} s)")


@cli.command()
@click.argument("run")
@click.argument("query", required=False)
@click.option(
    "--runs-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs"),
    show_default=True,
)
@click.option(
    "--max-rows", type=int, default=100, show_default=True, help="rows shown at most; 0: all"
)
def sql(run: str, query: str | None, runs_dir: Path, max_rows: int) -> None:
    """Run any SQL QUERY over RUN's database (a run directory, its name, or `latest`)
    and print its rows as a table; without QUERY, open an interactive SQL shell on it.
    A query that fails is one line on stderr, exit 2."""
    import duckdb

    from analysis import ingest as build
    from analysis import run_shell
    from analysis.database import materialise
    from analysis.shell import run_query

    run_dir = _resolve_run(run, runs_dir)
    db = run_dir / "run.duckdb"
    try:
        if not db.exists():
            build(run_dir)
        con = duckdb.connect(str(db), read_only=True)
        try:
            # Read to its end: DuckDB 2 refuses any other work on a connection while an
            # execute()'s result still has rows (ResourceInUseException).
            con.execute("SELECT 1 FROM requests LIMIT 1").fetchall()
        except duckdb.IOException:
            # Its views name Parquet parts that are not there (the run directory moved,
            # or columnar/ was deleted): build it again.
            con.close()
            build(run_dir)
            con = duckdb.connect(str(db), read_only=True)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        if query is None:
            # The shell's queries then read the derived tables (requests_x, ...) once.
            materialise(con)
            run_shell(con, max_rows=max_rows)
            return
        try:
            text = run_query(con, query, max_rows)
        except duckdb.Error as exc:
            # DuckDB's message is its first line; the rest repeats the query with a caret.
            first = next((line for line in str(exc).splitlines() if line.strip()), repr(exc))
            click.echo(f"battle: error: query failed: {first}", err=True)
            sys.exit(ExitCode.USAGE)
        if text is not None:
            click.echo(text)
    finally:
        con.close()


def _judge(run_dir: Path, slo_texts: tuple[str, ...], baseline_file: Path | None):
    """Re-judges a recorded run: its scenario's SLOs (or --slo), and the baseline."""
    import json

    from analysis import judge_run, load_baseline, slo_from_json

    spec_path = run_dir / "scenario.json"
    spec = json.loads(spec_path.read_text()) if spec_path.exists() else {}
    try:
        if slo_texts:
            slos = [slo_from_json(t) for t in slo_texts]
        else:
            slos = [slo_from_json(s) for s in spec.get("slos", [])]
        baseline = load_baseline(baseline_file) if baseline_file else None
        return judge_run(run_dir, slos, baseline=baseline)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


_SLO = click.option(
    "--slo",
    "slo_texts",
    multiple=True,
    help="an SLO (repeatable), e.g. 'latency{phase:steady,window:10s}: p(95) < 300';"
    " default: the scenario's",
)


@cli.command()
@click.argument("run")
@click.option("--baseline", "baseline_file", type=click.Path(dir_okay=False, path_type=Path))
@_SLO
@_RUNS_DIR
def report(
    run: str, baseline_file: Path | None, slo_texts: tuple[str, ...], runs_dir: Path
) -> None:
    """Re-judge RUN and write report.json, report.md, report.html and junit.xml;
    exits with the verdict's code."""
    from analysis import summary_text, write_reports

    judgement = _judge(_resolve_run(run, runs_dir), slo_texts, baseline_file)
    write_reports(judgement)
    click.echo(summary_text(judgement))
    sys.exit(judgement.exit_code)


@cli.command()
@click.argument("run")
@click.option(
    "--baseline",
    "baseline_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
)
@_SLO
@_RUNS_DIR
def compare(run: str, baseline_file: Path, slo_texts: tuple[str, ...], runs_dir: Path) -> None:
    """Compare RUN with a baseline (per-metric tolerance and direction); a regression
    exits 4. Writes every report with the comparison in it."""
    from analysis import write_reports

    judgement = _judge(_resolve_run(run, runs_dir), slo_texts, baseline_file)
    write_reports(judgement)
    for c in judgement.comparison or []:
        mark = "REGR" if c.regressed else "ok  "
        change = "" if c.change is None else f" ({c.change:+.1%})"
        click.echo(
            f"{mark} {c.metric}: {c.observed} vs baseline {c.baseline}{change},"
            f" {c.direction} is better, tolerance {c.tolerance_text}"
        )
    click.echo(f"verdict: {judgement.verdict.upper()} (exit {int(judgement.exit_code)})")
    sys.exit(judgement.exit_code)


@cli.group()
def baseline() -> None:
    """Baselines: a run's key figures to compare later runs with."""


@baseline.command("save")
@click.argument("run")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--tolerance",
    type=float,
    default=0.10,
    show_default=True,
    help="relative tolerance of every figure but the rates and shares, which get absolute"
    " ones (analysis.baseline.ABSOLUTE_TOLERANCES); edit the file for per-metric ones",
)
@_RUNS_DIR
def baseline_save(run: str, file: Path, tolerance: float, runs_dir: Path) -> None:
    """Save RUN's key figures as a baseline FILE."""
    import json

    from analysis import make_baseline

    run_dir = _resolve_run(run, runs_dir)
    judgement = _judge(run_dir, (), None)
    try:
        doc = make_baseline(run_dir.name, judgement.metrics, tolerance=tolerance)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    file.write_text(json.dumps(doc, indent=2) + "\n")
    click.echo(f"{file}: {len(doc['metrics'])} figures from {run_dir.name}")


# ---------------------------------------------------------------- battle fleet up (providers)


@cli.group()
def fleet() -> None:
    """Provider fleets behind the chaos proxy, for your own router."""


@fleet.command("up")
@click.option("--count", type=click.IntRange(1, 100), default=3, show_default=True)
@click.option("--kind", type=click.Choice(["mock", "anvil"]), default="mock", show_default=True)
@click.option("--seed", type=int, default=1, show_default=True, help="chain seed (mock)")
@click.option("--block-time-ms", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option(
    "--behaviour",
    "behaviours",
    multiple=True,
    metavar="NAME=JSON",
    help="native behaviours of one mock provider, e.g. 'B={\"head_lag\": 2}'; repeatable",
)
@click.option(
    "--faults",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="a chaos-proxy fault file; its schedule starts when the fleet is ready",
)
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="keep the chaos proxy's shards and the logs here (default: a temporary folder, removed)",
)
@click.option(
    "--duration", type=click.FloatRange(min=0, min_open=True), help="stop after S seconds"
)
def fleet_up(
    count: int,
    kind: str,
    seed: int,
    block_time_ms: int,
    behaviours: tuple[str, ...],
    faults: Path | None,
    run_dir: Path | None,
    duration: float | None,
) -> None:
    """Start COUNT providers, each behind a chaos-proxy listener; print their URLs; run
    until Ctrl-C (or --duration), then stop every process."""
    import json
    import shutil
    import tempfile
    import time

    import httpx

    from providers.fleet import plan_fleet

    from .processes import ProcessGroup, free_ports, wait_until

    specs = {}
    for item in behaviours:
        name, sep, text = item.partition("=")
        try:
            if not sep:
                raise ValueError("expected NAME=JSON")
            specs[name] = json.loads(text)
        except ValueError as exc:
            raise click.BadParameter(f"{item!r}: {exc}", param_hint="--behaviour") from None
    temp = run_dir is None
    work = Path(tempfile.mkdtemp(prefix="battle-fleet-")) if temp else run_dir
    work.mkdir(parents=True, exist_ok=True)
    # Genesis on a whole second (anvil's --timestamp is in seconds). A mock chain gets 100
    # blocks of history; anvil always starts at block 0, so its genesis is now.
    genesis_ns = time.time_ns() // 10**9 * 10**9
    if kind == "mock":
        genesis_ns -= 100 * block_time_ms * 10**6
    try:
        plan = plan_fleet(
            count, kind, free_ports(2 * count + 1), run_dir=str(work), seed=seed,
            genesis_ns=genesis_ns,
            block_time_ms=block_time_ms, behaviours=specs,
            faults_file=str(faults.resolve()) if faults else None,
        )  # fmt: skip
    except ValueError as exc:
        if temp:
            shutil.rmtree(work, ignore_errors=True)
        raise click.UsageError(str(exc)) from None

    def answers(url: str) -> bool:
        body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
        try:
            return httpx.post(url, json=body, timeout=1.0).status_code == 200
        except httpx.TransportError:
            return False

    group = ProcessGroup(work / "logs")
    _stop_on_signals()
    status = 0
    try:
        for m in plan.members:
            group.start(f"provider-{m.name}", "provider", m.argv)
        group.start("proxy-fleet", "proxy", plan.proxy_argv)
        for what, url in [*((m.name, m.provider_url) for m in plan.members),
                          *((f"listener {m.name}", m.http_url) for m in plan.members)]:  # fmt: skip

            def ready(url: str = url) -> bool:
                if dead := group.dead():
                    raise RuntimeError(f"{dead[0].name} exited: {dead[0].log_tail()}")
                return answers(url)

            wait_until(ready, timeout=30.0, what=what)
        httpx.post(
            f"http://127.0.0.1:{plan.control_port}/start",
            json={"t0_ns": time.time_ns()},
            timeout=5.0,
        ).raise_for_status()
        click.echo(f"fleet: {count} {kind} providers on one chain, each behind the chaos proxy")
        for line in plan.summary_lines():
            click.echo(line)
        click.echo("ready; Ctrl-C stops every process", err=True)
        deadline = None if duration is None else time.monotonic() + duration
        while deadline is None or time.monotonic() < deadline:
            if dead := group.dead():
                click.echo(f"battle: {dead[0].name} exited: {dead[0].log_tail()}", err=True)
                status = 1
                break
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    except (RuntimeError, TimeoutError, httpx.HTTPError) as exc:
        click.echo(f"battle: fleet failed to start: {exc}", err=True)
        status = 1
    finally:
        group.stop_all()
        if temp:
            shutil.rmtree(work, ignore_errors=True)
    click.echo("fleet: every process stopped", err=True)
    sys.exit(status)


@cli.command(context_settings={"ignore_unknown_options": True})
@click.option("--target", required=True, help="HTTP(S) URL of the running system under test")
@click.option("--workers", type=int, default=1, show_default=True, help="worker processes")
@click.option("--chain-seed", type=int, help="validate against the mock chain of this seed")
@click.option("--genesis-ns", type=int, help="the mock chain's genesis (with --chain-seed)")
@click.option("--block-time-ms", type=int, default=1000, show_default=True)
@_SLO
@_RUNS_DIR
@click.argument("worker_args", nargs=-1, type=click.UNPROCESSED)
def load(
    target: str,
    workers: int,
    chain_seed: int | None,
    genesis_ns: int | None,
    block_time_ms: int,
    slo_texts: tuple[str, ...],
    runs_dir: Path,
    worker_args: tuple[str, ...],
) -> None:
    """Load a running system with N worker processes sharing one schedule, then judge
    the run. WORKER_ARGS are `python -m loadgen`'s (--duration, --rate or --arrival,
    --mix, --batch, --timeout, --ws-subscriptions, ...)."""
    from analysis import summary_text, write_reports

    from .worker import run_load

    if (chain_seed is None) != (genesis_ns is None):
        raise click.UsageError("--chain-seed and --genesis-ns go together")
    truth = (
        [
            "--chain-seed",
            str(chain_seed),
            "--genesis-ns",
            str(genesis_ns),
            "--block-time-ms",
            str(block_time_ms),
        ]
        if chain_seed is not None
        else []
    )
    _stop_on_signals()
    try:
        run_dir = run_load(
            ["--target", target, *worker_args],
            workers=workers,
            runs_dir=runs_dir,
            truth_args=truth,
            slos=slo_texts,
        )
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    except RunError as exc:
        click.echo(f"battle: run invalid: {exc}", err=True)
        sys.exit(ExitCode.INVALID)
    except KeyboardInterrupt:
        click.echo("battle: interrupted; every worker was stopped", err=True)
        sys.exit(130)
    judgement = _judge(run_dir, slo_texts, None)
    write_reports(judgement)
    click.echo(summary_text(judgement))
    sys.exit(judgement.exit_code)


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("proxy_args", nargs=-1, type=click.UNPROCESSED)
def proxy(proxy_args: tuple[str, ...]) -> None:
    """Run the chaos proxy standalone, its fault timeline starting when it is ready.
    PROXY_ARGS are `python -m chaosproxy`'s (--proxy-id, --run-dir, --control-port,
    --listen NAME=PORT=UPSTREAM_URL ..., --faults FILE); faults can also be applied
    at run time through the control API. Stops on Ctrl-C or SIGTERM."""
    from chaosproxy import main as proxy_main

    args = list(proxy_args)
    if "--start-now" not in args:
        args.append("--start-now")
    sys.exit(proxy_main(args))


def main() -> None:
    cli(prog_name="battle")
