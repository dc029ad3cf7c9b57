"""Judging a run: validity first, then SLOs, into a verdict and its exit code."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path

import duckdb

from .database import ingest
from .queries import query
from .slo import DEFAULT_VALIDITY, Check, CheckResult, evaluate

__all__ = ["REPORT_SCHEMA_VERSION", "ExitCode", "RunJudgement", "judge_run"]

REPORT_SCHEMA_VERSION = 1

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
    "failovers",
    "failover_extra_latency_ms",
    "faults_planned",
)
TABLES = ("outcome_breakdown", "provider_breakdown", "fault_timeline")


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
            "tables": self.tables,
        }


def _scalar(con: duckdb.DuckDBPyConnection, name: str) -> float | None:
    row = con.execute(query(name)).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def _table(con: duckdb.DuckDBPyConnection, name: str) -> list[dict]:
    cur = con.execute(query(name))
    columns = [d[0] for d in cur.description]
    return [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]


def judge_run(
    run_dir: Path,
    slos: Sequence[Check],
    *,
    validity: Sequence[Check] = DEFAULT_VALIDITY,
) -> RunJudgement:
    """Ingests the run, evaluates validity and SLOs, and records the verdict."""
    run_dir = Path(run_dir)
    db = ingest(run_dir)
    con = duckdb.connect(str(db))
    try:
        validity_results = evaluate(con, validity)
        slo_results = evaluate(con, slos)
        if not all(r.passed for r in validity_results):
            verdict, code = "invalid", ExitCode.INVALID
        elif not all(r.passed for r in slo_results):
            verdict, code = "failed", ExitCode.FAILED
        else:
            verdict, code = "passed", ExitCode.PASSED
        metrics = {name: _scalar(con, name) for name in KEY_METRICS}
        tables = {name: _table(con, name) for name in TABLES}
        con.execute("UPDATE runs SET verdict = ?", [verdict])
    finally:
        con.close()
    spec_path = run_dir / "scenario.json"
    scenario = json.loads(spec_path.read_text()) if spec_path.exists() else {}
    return RunJudgement(
        run_dir, verdict, code, slo_results, validity_results, metrics, tables, scenario
    )
