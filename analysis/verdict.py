"""Judging a run: validity first, then SLOs, then the baseline, into a verdict and its
exit code."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path

import duckdb

from .baseline import INVARIANT_METRICS, Comparison, compare
from .database import build, finish, materialise
from .queries import query
from .slo import DEFAULT_VALIDITY, SLO, CheckResult, Threshold, evaluate
from .sut_metrics import sut_metrics_table

__all__ = [
    "KEY_METRICS",
    "REPORT_SCHEMA_VERSION",
    "ExitCode",
    "RunJudgement",
    "judge_database",
    "judge_run",
]

# 2: SLO results carry unit, window and note; metrics grew; series, phases,
# correlation and baseline comparison added. 3: results carry their witnesses (the
# calls and exchanges that broke them) and the query that lists them all; invariants,
# policy figures and the router profile (`expect_table`) added.
REPORT_SCHEMA_VERSION = 3

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
    "tags_behind",
    "ws_gap_blocks",
    "ws_duplicates",
    "ws_out_of_order",
    "ws_parent_breaks",
    "ws_delay_p95_ms",
    "ws_resubscribe_max_ms",
    "ws_silence_max_s",
    "sut_rss_slope_mb_per_min",
    "sut_rss_fit_r2",
    "sut_cpu_avg",
    "sut_cpu_max",
    "faults_planned",
    "late_sends_share",
    "send_lateness_p99_ms",
    "clock_skew_ms",
    "host_jitter_p99_ms",
    "host_jitter_max_ms",
    *INVARIANT_METRICS,
    # Policy figures.
    "route_away_max_s",
    "come_back_max_s",
    "wasted_attempts_max",
    "limit_backoff_breach_count",
    "own_exchanges",
    "faults_without_traffic",
    "rss_kb_per_call",
    "rss_kb_per_call_low95",
)
TABLES = (
    "outcome_breakdown",
    "provider_breakdown",
    "fault_timeline",
    "breaker_table",
    "impact_table",
    "ws_subscriptions",
    "ws_silence_table",
    "phase_table",
    "own_traffic_table",
    "provider_return_table",
    "majority_traffic_table",
    "rate_limit_shapes",
    "expect_table",
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


@dataclass(kw_only=True)
class RunJudgement:
    """A run judged: its verdict and exit code, every SLO and validity result with its
    witnesses, the key figures, tables and series the reports show, and the baseline
    comparison when one was given."""

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


def load_noise(
    con: duckdb.DuckDBPyConnection, slos: Sequence[SLO], results: Sequence[CheckResult]
) -> list[CheckResult]:
    """Validity checks for the load generator's own lateness: each latency SLO that
    failed is judged again on service time (from the actual send). Where that passes,
    the calls' lateness, not the router, may have failed it: the run is invalid and
    the check names the SLO. A latency SLO that passes, or fails either way, stands."""
    out = []
    for slo, result in zip(slos, results, strict=True):
        if result.passed or not isinstance(slo, Threshold) or slo.metric != "latency":
            continue
        sent = dataclasses.replace(slo, metric="service_time", name=f"{slo.name} (from send)")
        again = sent.judge(con)
        out.append(
            CheckResult(
                f"load_noise:{slo.name}",
                f"{slo.name} fails from the intended send and from the actual send",
                f"the load generator's lateness did not decide {slo.name}: judged from the"
                " actual send it fails too",
                again.observed,
                not again.passed,
                again.query,
                again.unit,
                note=""
                if not again.passed
                else f"{slo.name} fails only when latency counts the load generator's own"
                " lateness: its send lateness, not the router, may have decided it",
            )
        )
    return out


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
    validity_results += load_noise(con, slos, slo_results)
    metrics = {name: _scalar(con, name) for name in KEY_METRICS}
    tables = {name: _table(con, name) for name in TABLES}
    # The SUT's own counters and gauges (its /metrics), beside the traffic Battle saw.
    tables["sut_metrics"] = sut_metrics_table(con)
    series = {name: _table(con, name) for name in SERIES}
    coverage, mode = con.execute("SELECT coverage, mode FROM correlation").fetchall()[0]
    correlation = {"coverage": coverage, "mode": mode, "note": ""}
    if mode == "time_window":
        correlation["note"] = (
            "the router strips correlation tags: upstream exchanges were attributed to"
            " the client request of the same method sent most recently before them"
            " (attempt_source_by_time), so failovers, retries, amplification and"
            " overhead are estimates; route-away and come-back count only calls of"
            " methods the router does not also send on its own (serving_exchanges)"
        )
    comparison = compare(metrics, baseline) if baseline is not None else None
    verdict, code = _verdict(validity_results, slo_results, comparison)
    spec_path = Path(run_dir) / "scenario.json"
    scenario = json.loads(spec_path.read_text()) if spec_path.exists() else {}
    return RunJudgement(
        run_dir=Path(run_dir),
        verdict=verdict,
        exit_code=code,
        slos=slo_results,
        validity=validity_results,
        metrics=metrics,
        tables=tables,
        scenario=scenario,
        series=series,
        correlation=correlation,
        comparison=comparison,
        baseline_run=None if baseline is None else baseline.get("run"),
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
