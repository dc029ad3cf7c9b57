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


def _resolve_run(run: str, runs_dir: Path) -> Path:
    for candidate in (Path(run), runs_dir / run):
        if candidate.is_dir():
            return candidate
    if run == "latest":
        runs = sorted(p for p in runs_dir.glob("*") if p.is_dir())
        if runs:
            return runs[-1]
    raise click.BadParameter(f"no run directory {run!r} (nor {runs_dir / run})", param_hint="RUN")


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
    signal.signal(signal.SIGTERM, _raise_interrupt)
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


@cli.command()
@click.argument("run")
@click.option(
    "--runs-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs"),
    show_default=True,
)
def ingest(run: str, runs_dir: Path) -> None:
    """Build (or rebuild) RUN's database from its shards."""
    from analysis import ingest as build

    path = build(_resolve_run(run, runs_dir))
    click.echo(str(path))


@cli.command()
@click.argument("run")
@click.argument("query")
@click.option(
    "--runs-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs"),
    show_default=True,
)
@click.option("--max-rows", type=int, default=100, show_default=True)
def sql(run: str, query: str, runs_dir: Path, max_rows: int) -> None:
    """Run any SQL QUERY over RUN's database (a run directory, its name, or `latest`)."""
    import duckdb

    from analysis import ingest as build

    run_dir = _resolve_run(run, runs_dir)
    db = run_dir / "run.duckdb"
    if not db.exists():
        build(run_dir)
    con = duckdb.connect(str(db), read_only=True)
    try:
        relation = con.sql(query)
    except duckdb.Error as exc:
        raise click.UsageError(f"query failed: {exc}") from None
    if relation is not None:
        relation.show(max_rows=max_rows, max_width=200)
    con.close()


def main() -> None:
    cli(prog_name="battle")
