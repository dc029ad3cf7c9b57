"""Analysis: the run database, SLOs and validity checks in SQL, verdicts and reports.

Producers import only `analysis.shards`, which needs nothing beyond the standard
library. The names below are imported lazily so that importing `analysis.shards` in a
producer does not load DuckDB or jinja2 into it. Everything here reads files, never a
live process.
"""

from importlib import import_module
from typing import Any

__all__ = (
    "DEFAULT_VALIDITY",
    "METRICS",
    "Check",
    "CheckResult",
    "Converter",
    "ExitCode",
    "RunJudgement",
    "SqlCheck",
    "Threshold",
    "compare",
    "ingest",
    "judge_run",
    "load_baseline",
    "make_baseline",
    "parse_slo",
    "run_shell",
    "slo_from_json",
    "summary_text",
    "write_reports",
)

_HOMES = {
    "DEFAULT_VALIDITY": "slo",
    "METRICS": "slo",
    "SqlCheck": "slo",
    "Threshold": "slo",
    "parse_slo": "slo",
    "slo_from_json": "slo",
    "compare": "baseline",
    "load_baseline": "baseline",
    "make_baseline": "baseline",
    "run_shell": "shell",
    "Check": "slo",
    "CheckResult": "slo",
    "Converter": "columnar",
    "ExitCode": "verdict",
    "RunJudgement": "verdict",
    "judge_run": "verdict",
    "ingest": "database",
    "summary_text": "report",
    "write_reports": "report",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'analysis' has no attribute {name!r}")
    return getattr(import_module(f".{home}", __name__), name)


def __dir__() -> list[str]:
    # The lazy names are the package's surface; its own helpers are not.
    return sorted(__all__)
