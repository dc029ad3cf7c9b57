"""Writing a judged run's reports: report.json, report.md and the printed summary."""

from __future__ import annotations

import json
import math
from pathlib import Path

import jinja2

from .verdict import RunJudgement

__all__ = ["summary_text", "write_reports"]


def _num(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() else f"{value:,.4g}"
    return str(value)


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader(__package__, ""),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["num"] = _num
    return env


def write_reports(judgement: RunJudgement) -> list[Path]:
    """Writes report.json and report.md into the run directory and returns their paths."""
    data = judgement.as_dict()
    run_dir = judgement.run_dir
    json_path = run_dir / "report.json"
    json_path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    md_path = run_dir / "report.md"
    md_path.write_text(_env().get_template("report.md.j2").render(r=data))
    return [json_path, md_path]


def summary_text(judgement: RunJudgement) -> str:
    """A few lines for the terminal: verdict, each SLO, and where the reports are."""
    m = judgement.metrics
    lines = [
        f"verdict: {judgement.verdict.upper()} (exit {int(judgement.exit_code)})",
        f"requests: {_num(m['requests_total'])}  success: {_num(m['success_rate'])}"
        f"  p50: {_num(m['latency_p50_ms'])} ms  p95: {_num(m['latency_p95_ms'])} ms"
        f"  p99: {_num(m['latency_p99_ms'])} ms",
        f"upstream exchanges: {_num(m['upstream_exchanges'])}"
        f"  failovers: {_num(m['failovers'])}  amplification: {_num(m['amplification'])}"
        f"  correlated: {_num(m['correlation_coverage'])}",
    ]
    for kind, results in (("validity", judgement.validity), ("SLO", judgement.slos)):
        for r in results:
            mark = "ok  " if r.passed else "FAIL"
            lines.append(f"  {mark} {kind} {r.expression} (observed {_num(r.observed)})")
    lines.append(f"reports: {judgement.run_dir / 'report.md'}  {judgement.run_dir / 'report.json'}")
    return "\n".join(lines)
