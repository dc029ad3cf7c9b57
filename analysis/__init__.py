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
    "Check",
    "CheckResult",
    "ExitCode",
    "RunJudgement",
    "ingest",
    "judge_run",
    "summary_text",
    "write_reports",
)

_HOMES = {
    "DEFAULT_VALIDITY": "slo",
    "Check": "slo",
    "CheckResult": "slo",
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
