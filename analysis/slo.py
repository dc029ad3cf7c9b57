"""SLOs and validity checks: a named metric query compared with a threshold."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import duckdb

from .queries import query

__all__ = ["DEFAULT_VALIDITY", "Check", "CheckResult", "evaluate"]

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
}


@dataclass(frozen=True)
class Check:
    """`metric op threshold`, where `metric` names a scalar query of queries.sql."""

    metric: str
    op: str
    threshold: float
    description: str = ""
    name: str = ""

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ValueError(f"op of {self.metric} must be one of {sorted(_OPS)}, got {self.op!r}")
        query(self.metric)  # raises for an unknown metric
        if not self.name:
            object.__setattr__(self, "name", self.metric)

    @property
    def expression(self) -> str:
        return f"{self.metric} {self.op} {self.threshold:g}"


@dataclass(frozen=True)
class CheckResult:
    name: str
    expression: str
    description: str
    observed: float | None
    passed: bool
    query: str

    def as_dict(self) -> dict:
        return asdict(self)


def evaluate(con: duckdb.DuckDBPyConnection, checks: Sequence[Check]) -> list[CheckResult]:
    """Runs each check's query; a metric with no value (no data) fails its check."""
    results = []
    for check in checks:
        sql = query(check.metric)
        row = con.execute(sql).fetchone()
        observed = None if row is None or row[0] is None else float(row[0])
        passed = (
            observed is not None
            and not math.isnan(observed)
            and _OPS[check.op](observed, check.threshold)
        )
        results.append(
            CheckResult(check.name, check.expression, check.description, observed, passed, sql)
        )
    return results


# What makes a run trustworthy, whatever its SLOs: a failed one makes the run invalid.
DEFAULT_VALIDITY: tuple[Check, ...] = (
    Check("requests_total", ">", 0, "the load generator recorded client requests"),
    Check("loadgen_workers_finished", ">=", 1, "every load worker ran to its end"),
    Check("faults_not_applied", "==", 0, "every scheduled fault touched at least one exchange"),
    Check(
        "requests_not_sent_share",
        "<=",
        0.01,
        "the load generator sent at least 99% of its planned calls (not saturated)",
    ),
)
