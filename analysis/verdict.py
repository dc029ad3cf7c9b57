"""Judging a run: validity first, then SLOs, then the baseline, into a verdict and its
exit code."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path

import duckdb

from .baseline import Comparison, compare
from .database import build, finish, materialise
from .queries import query
from .slo import DEFAULT_VALIDITY, SLO, CheckResult, evaluate

__all__ = [
    "KEY_METRICS",
    "REPORT_SCHEMA_VERSION",
    "ExitCode",
    "RunJudgement",
    "judge_database",
    "judge_run",
]

# 2: SLO results carry unit, window and note; metrics grew; series, phases,
# correlation and baseline comparison added.
REPORT_SCHEMA_VERSION = 2

KEY_METRICS = (
    "requests_total",
    "success_rate",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "latency_max_ms",
    "upstream_exchanges",
    "correlation_coverage",
    "amplification",
    "amplification_time_window",
    "failovers",
    "retries_same_provider",
    "failover_extra_latency_ms",
    "failover_latency_p95_ms",
    "overhead_p50_ms",
    "overhead_p95_ms",
    "breaker_stop_max_ms",
    "wasted_attempts",
    "impact_max_ms",
    "head_lag_max_blocks",
    "heads_backwards",
    "ws_gap_blocks",
    "ws_duplicates",
    "ws_out_of_order",
    "ws_parent_breaks",
    "ws_delay_p95_ms",
    "ws_resubscribe_max_ms",
    "sut_rss_slope_mb_per_min",
    "sut_rss_fit_r2",
    "sut_cpu_avg",
    "sut_cpu_max",
    "faults_planned",
    "late_sends_share",
)
TABLES = (
    "outcome_breakdown",
    "provider_breakdown",
    "fault_timeline",
    "breaker_table",
    "impact_table",
    "ws_subscriptions",
    "phase_table",
)
SERIES = (
    "series_requests",
    "series_provider_share",
    "series_ws_delay",
    "series_system",
    "latency_histogram",
)


class ExitCode(IntEnum):
    """DESIGN.md's exit codes."""

    PASSED = 0
    FAILED = 1
    USAGE = 2
    INVALID = 3
    REGRESSION = 4


@dataclass
class RunJudgement:
    run_dir: Path
    verdict: str
    exit_code: ExitCode
    slos: list[CheckResult]
    validity: list[CheckResult]
    metrics: dict[str, float | None]
    tables: dict[str, list[dict]] = field(default_factory=dict)
    scenario: dict = field(default_factory=dict)
    series: dict[str, list[dict]] = field(default_factory=dict)
    correlation: dict = field(default_factory=dict)
    comparison: list[Comparison] | None = None
    baseline_run: str | None = None

    def as_dict(self) -> dict:
        return {
            "schema_version": REPORT_SCHEMA_VERSION,
            "run": self.run_dir.name,
            "scenario": self.scenario,
            "verdict": self.verdict,
            "exit_code": int(self.exit_code),
            "slos": [r.as_dict() for r in self.slos],
            "validity": [r.as_dict() for r in self.validity],
            "metrics": self.metrics,
            "correlation": self.correlation,
            "tables": self.tables,
            "series": self.series,
            "baseline": None
            if self.comparison is None
            else {
                "run": self.baseline_run,
                "regressions": sum(c.regressed for c in self.comparison),
                "comparison": [c.as_dict() for c in self.comparison],
            },
        }


def _scalar(con: duckdb.DuckDBPyConnection, name: str) -> float | None:
    rows = con.execute(query(name)).fetchall()
    row = rows[0] if rows else None
    return None if row is None or row[0] is None else float(row[0])


def _table(con: duckdb.DuckDBPyConnection, name: str) -> list[dict]:
    cur = con.execute(query(name))
    columns = [d[0] for d in cur.description]
    return [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]


def _verdict(
    validity: list[CheckResult], slos: list[CheckResult], comparison: list[Comparison] | None
) -> tuple[str, ExitCode]:
    # An untrustworthy run says nothing about SLOs; a failed SLO outranks a regression.
    if not all(r.passed for r in validity):
        return "invalid", ExitCode.INVALID
    if not all(r.passed for r in slos):
        return "failed", ExitCode.FAILED
    if comparison and any(c.regressed for c in comparison):
        return "regressed", ExitCode.REGRESSION
    return "passed", ExitCode.PASSED


def judge_database(
    con: duckdb.DuckDBPyConnection,
    run_dir: Path,
    slos: Sequence[SLO],
    *,
    validity: Sequence[SLO] = DEFAULT_VALIDITY,
    baseline: dict | None = None,
) -> RunJudgement:
    """Judges an open run database (see `judge_run`)."""
    validity_results = evaluate(con, validity)
    slo_results = evaluate(con, slos)
    metrics = {name: _scalar(con, name) for name in KEY_METRICS}
    tables = {name: _table(con, name) for name in TABLES}
    series = {name: _table(con, name) for name in SERIES}
    coverage, mode = con.execute("SELECT coverage, mode FROM correlation").fetchall()[0]
    correlation = {"coverage": coverage, "mode": mode, "note": ""}
    if mode == "time_window":
        correlation["note"] = (
            "the router strips correlation tags: upstream exchanges were attributed to"
            " the client request of the same method sent most recently before them"
            " (attempt_source_by_time), so failovers, retries, amplification and"
            " overhead are estimates"
        )
    comparison = compare(metrics, baseline) if baseline is not None else None
    verdict, code = _verdict(validity_results, slo_results, comparison)
    spec_path = Path(run_dir) / "scenario.json"
    scenario = json.loads(spec_path.read_text()) if spec_path.exists() else {}
    return RunJudgement(
        Path(run_dir),
        verdict,
        code,
        slo_results,
        validity_results,
        metrics,
        tables,
        scenario,
        series,
        correlation,
        comparison,
        None if baseline is None else baseline.get("run"),
    )


def judge_run(
    run_dir: Path,
    slos: Sequence[SLO],
    *,
    validity: Sequence[SLO] = DEFAULT_VALIDITY,
    baseline: dict | None = None,
    rebuild: bool = True,
) -> RunJudgement:
    """Ingests the run (unless `rebuild` is false and its database exists), evaluates
    validity, SLOs and the baseline, and records the verdict in `runs`."""
    run_dir = Path(run_dir)
    db = run_dir / "run.duckdb"
    if rebuild or not db.exists():
        # Judged on the connection that built it: its in-memory tables are ready.
        con, building = build(run_dir)
        try:
            judgement = judge_database(con, run_dir, slos, validity=validity, baseline=baseline)
            con.execute("UPDATE runs SET verdict = ?", [judgement.verdict])
        except BaseException:
            con.close()
            building.unlink(missing_ok=True)
            raise
        finish(con, building)
        return judgement
    con = duckdb.connect(str(db))
    try:
        try:
            materialise(con)
        except duckdb.IOException:
            # Its views name Parquet parts that are not there (the run directory moved,
            # or columnar/ was deleted): build it again.
            con.close()
            return judge_run(run_dir, slos, validity=validity, baseline=baseline)
        judgement = judge_database(con, run_dir, slos, validity=validity, baseline=baseline)
        con.execute("UPDATE runs SET verdict = ?", [judgement.verdict])
    finally:
        con.close()
    return judgement
