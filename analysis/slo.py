"""SLOs and validity checks over the run database.

Three forms, all judged by `evaluate` into a `CheckResult` that carries its evidence
(observed value, the exact SQL that produced it, the worst window):

- `Threshold`: k6's grammar over any metric of `METRICS`, e.g.
  `latency{method:eth_call,phase:steady,window:10s}: p(95) < 300`. Filters: `method`,
  `transport`, `provider` (where the metric has them), `phase` (from the applied chaos
  timeline: `run`, `before_faults`, `during:<fault>`, `recovery:<fault>`, `steady`) and
  `window` (every rolling window of that length, one-second steps, must hold; the
  observed value is the worst window's).
- `Check`: a named scalar query of queries.sql compared with a number
  (`success_rate >= 0.99`); the skeleton's form, kept.
- `SqlCheck`: raw SQL returning one value, compared with a number.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import duckdb

from .queries import query, query_names

__all__ = [
    "DEFAULT_VALIDITY",
    "METRICS",
    "Check",
    "CheckResult",
    "Metric",
    "SqlCheck",
    "Threshold",
    "evaluate",
    "parse_slo",
    "slo_from_json",
]

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
_NS = 1_000_000_000


# ---------------------------------------------------------------------------------
# The metric catalogue
# ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    """A per-row source: SQL selecting `t` (ns), `value` and its dimensions.

    `kind` follows k6: a trend takes avg/min/max/med/p(N)/count, a rate (0/1 values)
    takes rate, a counter takes count (the sum) and rate (per second). `dims` are the
    filters it accepts; `provider` on a client metric means the provider that served
    the request (its last correlated attempt).
    """

    name: str
    kind: str
    unit: str
    source: str
    dims: tuple[str, ...]
    description: str


_CLIENT = ("method", "transport", "provider")


def _client_sql(value: str, where: str = "") -> str:
    """A client metric's rows: `provider` is the provider that served the request; the
    call's tag, outcome and attempts name it when it is listed as a witness."""
    return (
        f"SELECT t_intended AS t, {value} AS value, method, transport, served_by AS provider,"
        f" tag, outcome, attempts FROM requests_x{' ' + where if where else ''}"
    )


_UP = ("provider", "method", "transport")


def _m(name, kind, unit, source, dims, description) -> Metric:
    return Metric(name, kind, unit, source, dims, description)


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        _m(
            "latency",
            "trend",
            "ms",
            _client_sql("latency_ms"),
            _CLIENT,
            "client latency from the intended send time (coordinated-omission-correct)",
        ),
        _m(
            "service_time",
            "trend",
            "ms",
            _client_sql("(t_done - t_sent) / 1e6"),
            _CLIENT,
            "client latency from the actual send time",
        ),
        _m(
            "success",
            "rate",
            "",
            _client_sql("CASE WHEN outcome = 'ok' THEN 1.0 ELSE 0.0 END"),
            _CLIENT,
            "client requests answered with a correct result",
        ),
        _m(
            "errors",
            "counter",
            "",
            _client_sql("CASE WHEN outcome = 'ok' THEN 0 ELSE 1 END"),
            _CLIENT,
            "client requests not answered with a correct result",
        ),
        _m(
            "requests",
            "counter",
            "",
            _client_sql("1"),
            _CLIENT,
            "client requests",
        ),
        _m(
            "attempts",
            "trend",
            "",
            _client_sql("coalesce(attempts, 0)"),
            _CLIENT,
            "upstream exchanges per client request (avg = amplification)",
        ),
        _m(
            "failovers",
            "counter",
            "",
            _client_sql("CASE WHEN failed_over THEN 1 ELSE 0 END"),
            _CLIENT,
            "client requests that failed on one provider and went on to another",
        ),
        _m(
            "failover_latency",
            "trend",
            "ms",
            _client_sql("latency_ms", "WHERE failed_over"),
            _CLIENT,
            "latency of the client requests that failed over",
        ),
        _m(
            "retries_same_provider",
            "counter",
            "",
            _client_sql("coalesce(retries_same_provider, 0)"),
            _CLIENT,
            "upstream attempts on a provider already tried for the same request",
        ),
        _m(
            "overhead",
            "trend",
            "ms",
            _client_sql(
                "((t_done - t_sent) - upstream_ns) / 1e6", "WHERE attempts = 1 AND outcome = 'ok'"
            ),
            _CLIENT,
            "router overhead: service time minus upstream time (one attempt)",
        ),
        _m(
            "head_lag",
            "trend",
            "blocks",
            "SELECT t_intended AS t, lag_blocks AS value, method, transport, worker, seq,"
            " result_block FROM head_checks",
            ("method", "transport"),
            "blocks an answer was behind the true head",
        ),
        _m(
            "heads_backwards",
            "counter",
            "",
            "SELECT t_intended AS t, CASE WHEN backwards THEN 1 ELSE 0 END AS value, method,"
            " transport, worker, seq, result_block, seen_max FROM head_checks",
            ("method", "transport"),
            "answers lower than one already answered before they were sent",
        ),
        _m(
            "tags_behind",
            "counter",
            "",
            "SELECT t_intended AS t, CASE WHEN behind THEN 1 ELSE 0 END AS value, method,"
            " transport, worker, seq, block_tag, result_block, floor_tag, floor FROM tag_checks",
            ("method", "transport"),
            "tag answers (safe, finalized, latest) below one answered for a tag trailing"
            " them, or for themselves, before they were sent",
        ),
        _m(
            "upstream_latency",
            "trend",
            "ms",
            "SELECT t_request AS t, (t_response - t_request) / 1e6 AS value, provider, method,"
            " transport, tag, outcome, fault_id, flow_id FROM upstream",
            _UP,
            "upstream exchange time at the proxy",
        ),
        _m(
            "upstream_success",
            "rate",
            "",
            "SELECT t_request AS t, CASE WHEN outcome = 'ok' THEN 1.0 ELSE 0.0 END AS value,"
            " provider, method, transport, tag, outcome, fault_id, flow_id FROM upstream",
            _UP,
            "upstream exchanges that succeeded",
        ),
        _m(
            "upstream_errors",
            "counter",
            "",
            "SELECT t_request AS t, CASE WHEN outcome = 'ok' THEN 0 ELSE 1 END AS value,"
            " provider, method, transport, tag, outcome, fault_id, flow_id FROM upstream",
            _UP,
            "upstream exchanges that failed",
        ),
        _m(
            "upstream_exchanges",
            "counter",
            "",
            "SELECT t_request AS t, 1 AS value, provider, method, transport, tag, outcome,"
            " fault_id, flow_id FROM upstream",
            _UP,
            "upstream exchanges",
        ),
        _m(
            "ws_delay",
            "trend",
            "ms",
            "SELECT t_received AS t, delay_ms AS value, worker, connection, subscription,"
            " block_number FROM ws_checks WHERE NOT duplicate",
            (),
            "WebSocket newHeads delivery delay after the block's production",
        ),
        _m(
            "ws_gap_blocks",
            "counter",
            "",
            "SELECT t_received AS t, gap_blocks AS value, worker, connection, subscription,"
            " block_number FROM ws_checks",
            (),
            "blocks a subscription skipped",
        ),
        _m(
            "ws_duplicates",
            "counter",
            "",
            "SELECT t_received AS t, CASE WHEN duplicate THEN 1 ELSE 0 END AS value, worker,"
            " connection, subscription, block_number FROM ws_checks",
            (),
            "blocks a subscription delivered again",
        ),
        _m(
            "ws_out_of_order",
            "counter",
            "",
            "SELECT t_received AS t, CASE WHEN out_of_order THEN 1 ELSE 0 END AS value,"
            " worker, connection, subscription, block_number FROM ws_checks",
            (),
            "blocks delivered below the highest already delivered",
        ),
        _m(
            "ws_parent_breaks",
            "counter",
            "",
            "SELECT t_received AS t, CASE WHEN parent_break THEN 1 ELSE 0 END AS value,"
            " worker, connection, subscription, block_number FROM ws_checks",
            (),
            "next blocks whose parent hash does not match",
        ),
        _m(
            "ws_resubscribe_time",
            "trend",
            "ms",
            "SELECT t_disconnect AS t, coalesce(resubscribe_ms,"
            " ((SELECT t_end FROM run_window) - t_disconnect) / 1e6) AS value"
            " FROM ws_resubscribes",
            (),
            "time from a WebSocket disconnect to the next subscribe (to the run's end if never)",
        ),
        _m(
            "rss_mb",
            "trend",
            "MB",
            "SELECT t, sum(rss) / 1e6 AS value FROM system WHERE role = 'sut' GROUP BY t",
            (),
            "resident memory of the system under test",
        ),
        _m(
            "cpu",
            "trend",
            "cores",
            "SELECT t, sum(cpu) AS value FROM system WHERE role = 'sut' GROUP BY t",
            (),
            "CPU of the system under test (1.0 = one core)",
        ),
        _m(
            "breaker_stop",
            "trend",
            "ms",
            "SELECT f.t_from AS t, coalesce(b.stop_ms, (f.t_to - f.t_from) / 1e6) AS value,"
            " b.provider, fault_id, b.kind, b.wasted_attempts FROM breaker b"
            " JOIN fault_windows f USING (fault_id)",
            ("provider",),
            "time until the router stopped sending client calls to a faulted provider"
            " (the fault's length when it never stopped)",
        ),
        _m(
            "wasted_attempts",
            "counter",
            "",
            "SELECT f.t_from AS t, b.wasted_attempts AS value, b.provider, fault_id, b.kind,"
            " b.stop_ms FROM breaker b JOIN fault_windows f USING (fault_id)",
            ("provider",),
            "exchanges sent to a faulted provider before the router stopped",
        ),
        _m(
            "traffic_return",
            "trend",
            "ms",
            "SELECT f.t_to AS t, coalesce(b.return_ms, ((SELECT t_end FROM run_window)"
            " - f.t_to) / 1e6) AS value, b.provider, fault_id, b.kind FROM breaker b"
            " JOIN fault_windows f USING (fault_id)",
            ("provider",),
            "time after a fault ended until the provider served again (to the run's end if never)",
        ),
        _m(
            "impact",
            "trend",
            "ms",
            "SELECT f.t_from AS t, i.impact_ms AS value, i.provider FROM impact i"
            " JOIN fault_windows f USING (fault_id)",
            ("provider",),
            "client-visible impact of a fault (see the impact view)",
        ),
    )
}

_AGGS = {
    "trend": ("avg", "min", "max", "med", "p", "count"),
    "rate": ("rate",),
    "counter": ("count", "rate"),
}


# ---------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckResult:
    """One judged SLO or validity check with its evidence."""

    name: str
    expression: str
    description: str
    observed: float | None
    passed: bool
    query: str
    unit: str = ""
    # The worst window (seconds after t0) when the check is over rolling windows.
    window: dict | None = None
    # Why there is no value, when there is none.
    note: str = ""
    # When it failed: up to WITNESSES_SHOWN of the calls, exchanges or windows that broke
    # it, how many there are in all, and the SQL that lists every one.
    witnesses: list[dict] = field(default_factory=list)
    witness_count: int | None = None
    witness_query: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


# Witnesses listed per failed check in the reports; witness_query finds them all.
WITNESSES_SHOWN = 10


def _json_value(value: object) -> object:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)


def witnesses(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[list[dict], int | None]:
    """The first WITNESSES_SHOWN rows of `sql` (in its own order) as JSON-safe dicts,
    and how many rows it has; ([], None) when the query fails (the check's own
    result stands; a witness list is evidence, not the verdict)."""
    sql = sql.strip().rstrip(";")
    try:
        cur = con.execute(sql)
        columns = [d[0] for d in cur.description]
        rows = cur.fetchmany(WITNESSES_SHOWN)
        total = con.execute(f"SELECT count(*) FROM ({sql})").fetchone()[0]
    except duckdb.Error:
        return [], None
    shown = [{c: _json_value(v) for c, v in zip(columns, row, strict=True)} for row in rows]
    return shown, int(total)


def _with_witnesses(
    result: CheckResult, con: duckdb.DuckDBPyConnection, sql: str | None
) -> CheckResult:
    if result.passed or not sql:
        return result
    shown, total = witnesses(con, sql)
    return dataclasses.replace(
        result, witnesses=shown, witness_count=total, witness_query=sql.strip().rstrip(";")
    )


def _passes(observed: float | None, op: str, threshold: float) -> bool:
    return observed is not None and not math.isnan(observed) and _OPS[op](observed, threshold)


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# ---------------------------------------------------------------------------------
# The three forms
# ---------------------------------------------------------------------------------


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

    def to_json(self) -> dict:
        return {"slo": self.expression, "name": self.name, "description": self.description}

    def judge(self, con: duckdb.DuckDBPyConnection) -> CheckResult:
        sql = query(self.metric)
        observed = _scalar(con, sql)
        result = CheckResult(
            self.name,
            self.expression,
            self.description,
            observed,
            _passes(observed, self.op, self.threshold),
            sql,
            note="" if observed is not None else "no data",
        )
        # A named query's witnesses are the query `<name>.witnesses`, where it has one.
        listed = f"{self.metric}.witnesses"
        return _with_witnesses(result, con, query(listed) if listed in query_names() else None)


@dataclass(frozen=True)
class SqlCheck:
    """Raw SQL returning one row whose first column is compared with `threshold`."""

    name: str
    sql: str
    op: str
    threshold: float
    description: str = ""
    # SQL listing the rows that break it (shown when it fails), optional.
    witnesses: str = ""

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ValueError(f"op of {self.name} must be one of {sorted(_OPS)}, got {self.op!r}")
        if not self.sql.strip():
            raise ValueError(f"sql of {self.name} must not be empty")

    @property
    def expression(self) -> str:
        return f"{self.name}: value {self.op} {self.threshold:g}"

    def to_json(self) -> dict:
        out = {
            "name": self.name,
            "sql": self.sql,
            "expect": f"{self.op} {self.threshold:g}",
            "description": self.description,
        }
        if self.witnesses:
            out["witnesses"] = self.witnesses
        return out

    def judge(self, con: duckdb.DuckDBPyConnection) -> CheckResult:
        try:
            observed = _scalar(con, self.sql)
            note = "" if observed is not None else "no data"
        except duckdb.Error as exc:
            observed, note = None, f"query failed: {exc}".splitlines()[0]
        result = CheckResult(
            self.name,
            self.expression,
            self.description,
            observed,
            _passes(observed, self.op, self.threshold),
            self.sql,
            note=note,
        )
        return _with_witnesses(result, con, self.witnesses or None)


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m)$")
_DUR_NS = {"ms": 1_000_000, "s": _NS, "m": 60 * _NS}


def _duration_ns(text: str, where: str) -> int:
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"{where} must be a duration like 10s, 500ms or 1m, got {text!r}")
    ns = int(float(match.group(1)) * _DUR_NS[match.group(2)])
    if ns < _NS or ns % _NS:
        raise ValueError(
            f"{where} must be a whole number of seconds (windows step by one second), got {text!r}"
        )
    return ns


@dataclass(frozen=True, kw_only=True)
class Threshold:
    """k6's threshold over a metric of `METRICS`: `metric{filters}: agg op threshold`."""

    metric: str
    aggregation: str
    op: str
    threshold: float
    filters: tuple[tuple[str, str], ...] = ()
    description: str = ""
    name: str = ""
    # p(N)'s N, in percent.
    percentile: float | None = None
    phase: str = "run"
    window_ns: int | None = None
    window_text: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        where = f"SLO {self.metric!r}"
        metric = METRICS.get(self.metric)
        if metric is None:
            raise ValueError(f"{where}: metric must be one of {sorted(METRICS)}")
        if self.aggregation not in _AGGS[metric.kind]:
            allowed = ", ".join("p(N)" if a == "p" else a for a in _AGGS[metric.kind])
            raise ValueError(
                f"{where}: aggregation of a {metric.kind} metric must be one of {allowed},"
                f" got {self.aggregation!r}"
            )
        if self.aggregation == "p" and not (
            self.percentile is not None and 0 <= self.percentile <= 100
        ):
            raise ValueError(f"{where}: p(N) needs 0 <= N <= 100, got {self.percentile}")
        if self.op not in _OPS:
            raise ValueError(f"{where}: op must be one of {sorted(_OPS)}, got {self.op!r}")
        for key, _ in self.filters:
            if key not in metric.dims:
                raise ValueError(
                    f"{where}: filter {key!r} is not a dimension of {self.metric};"
                    f" it has {list(metric.dims) or 'none'} (and phase, window)"
                )
        if not self.name:
            object.__setattr__(self, "name", self.expression)

    @property
    def agg_text(self) -> str:
        return f"p({self.percentile:g})" if self.aggregation == "p" else self.aggregation

    @property
    def expression(self) -> str:
        tags = [f"{k}:{v}" for k, v in self.filters]
        if self.phase != "run":
            tags.append(f"phase:{self.phase}")
        if self.window_ns:
            tags.append(f"window:{self.window_text or f'{self.window_ns / _NS:g}s'}")
        scope = "{" + ",".join(tags) + "}" if tags else ""
        return f"{self.metric}{scope}: {self.agg_text} {self.op} {self.threshold:g}"

    def to_json(self) -> dict:
        return {"slo": self.expression, "name": self.name, "description": self.description}

    def _agg_sql(self, kind: str, seconds: str) -> str:
        a = self.aggregation
        if a == "p":
            return f"quantile_cont(value, {self.percentile / 100!r})"
        if a == "med":
            return "quantile_cont(value, 0.5)"
        if a in ("avg", "min", "max"):
            return f"{a}(value)"
        if a == "count":
            return "coalesce(sum(value), 0)" if kind == "counter" else "count(value)"
        # rate
        if kind == "rate":
            return "avg(value)"
        return f"coalesce(sum(value), 0) / nullif({seconds}, 0)"

    def rows_sql(self, *, every_column: bool = False) -> str:
        metric = METRICS[self.metric]
        where = []
        for key, value in self.filters:
            where.append(f"{key} = {_lit(value)}")
        cond = (" WHERE " + " AND ".join(where)) if where else ""
        return f"SELECT {'*' if every_column else 't, value'} FROM ({metric.source}) src{cond}"

    def sql(self, intervals: Sequence[tuple[int, int]]) -> str:
        """The query, with the phase's intervals (ns) written in as literals: a plain
        filter DuckDB pushes into the scan, and a query that runs as it reads."""
        kind = METRICS[self.metric].kind
        spans = list(intervals) or [(0, 0)]
        if self.window_ns is None:
            seconds = f"{sum(b - a for a, b in spans) / 1e9!r}"
            scope = ""
            if self.phase != "run":
                scope = " WHERE " + " OR ".join(f"(t >= {a} AND t < {b})" for a, b in spans)
            return (
                f"WITH r AS ({self.rows_sql()})\n"
                f"SELECT {self._agg_sql(kind, seconds)} AS value FROM r{scope}"
            )
        # Rolling windows on a one-second grid per scope interval: window k covers the
        # interval's whole seconds k .. k+W-1; the last one runs to the interval's end,
        # taking its final partial second too, and a scope shorter than W is one window.
        # Each row joins the W windows holding it by integer arithmetic, not by a range
        # join: several times faster on millions of rows.
        w = self.window_ns // _NS
        values = ", ".join(
            f"({i}, {a}, {b}, {max(0, (b - a) // _NS - w)})" for i, (a, b) in enumerate(spans)
        )
        which = " ".join(f"WHEN t >= {a} AND t < {b} THEN {i}" for i, (a, b) in enumerate(spans))
        base = " ".join(f"WHEN {i} THEN {a}" for i, (a, _) in enumerate(spans))
        last = " ".join(
            f"WHEN {i} THEN {max((b - a) // _NS, w) - 1}" for i, (a, b) in enumerate(spans)
        )
        inside = " OR ".join(f"(t >= {a} AND t < {b})" for a, b in spans)
        if kind == "counter" and self.aggregation == "rate":
            final = "coalesce(a.total, 0) / ((w.w_to - w.w_from) / 1e9)"
        elif self.aggregation == "count":
            final = "coalesce(a.total, 0)"
        else:
            final = "a.value"
        return (
            f"WITH r AS ({self.rows_sql()}),\n"
            f"scope(i, t_from, t_to, k_last) AS (VALUES {values}),\n"
            f"secs AS (SELECT i, least((t - CASE i {base} END) // {_NS}, CASE i {last} END)"
            f" AS s, value"
            f" FROM (SELECT CASE {which} END AS i, t, value FROM r WHERE {inside})),\n"
            f"pairs AS (SELECT i, unnest(range(greatest(0, s - {w - 1}), s + 1)) AS k, value"
            f" FROM secs),\n"
            f"a AS (SELECT i, k, {self._agg_sql(kind, '1')} AS value,"
            f" {'sum(value)' if kind == 'counter' else 'count(value)'} AS total"
            f" FROM pairs GROUP BY i, k),\n"
            f"w AS (SELECT i, k, t_from + k * {_NS} AS w_from,"
            f" CASE WHEN k = k_last THEN t_to ELSE t_from + (k + {w}) * {_NS} END AS w_to"
            f" FROM (SELECT *, unnest(range(0, k_last + 1)) AS k FROM scope))\n"
            f"SELECT w.w_from, w.w_to, {final} AS value\n"
            f"FROM w LEFT JOIN a USING (i, k) ORDER BY w.w_from"
        )

    def witness_sql(self, intervals: Sequence[tuple[int, int]]) -> str | None:
        """The rows of the metric, in the SLO's scope, that push it past its threshold:
        a trend's values beyond it (worst first), a rate's failures, a counter's counted
        rows. None where single rows cannot break it (a count of rows that must be
        high enough, `!=`)."""
        kind = METRICS[self.metric].kind
        op, thr = self.op, self.threshold
        if kind == "trend" and self.aggregation != "count" and op in ("<", "<=", ">", ">="):
            bad = f"NOT (value {op} {thr!r})"
            order = "value DESC" if op in ("<", "<=") else "value ASC"
        elif kind == "rate" and op in (">", ">="):
            bad, order = "value < 1", "t"
        elif kind == "rate" and op in ("<", "<="):
            bad, order = "value > 0", "t"
        elif kind == "counter" and op in ("==", "<", "<="):
            bad, order = "value > 0", "value DESC, t"
        else:
            return None
        scope = ""
        if self.phase != "run":
            spans = list(intervals) or [(0, 0)]
            scope = " AND (" + " OR ".join(f"(t >= {a} AND t < {b})" for a, b in spans) + ")"
        return (
            f"WITH r AS ({self.rows_sql(every_column=True)})\n"
            f"SELECT round((t - (SELECT t_start FROM run_window)) / 1e9, 3) AS at_s,"
            f" * EXCLUDE (t) FROM r WHERE {bad}{scope} ORDER BY {order}"
        )

    def judge(self, con: duckdb.DuckDBPyConnection) -> CheckResult:
        result = self._judge(con)
        if result.passed:
            return result
        phases = [
            (a, b)
            for phase, a, b in con.execute("SELECT phase, t_from, t_to FROM phases").fetchall()
            if phase == self.phase
        ]
        return _with_witnesses(result, con, self.witness_sql(phases) if phases else None)

    def _judge(self, con: duckdb.DuckDBPyConnection) -> CheckResult:
        unit = METRICS[self.metric].unit
        phases: dict[str, list[tuple[int, int]]] = {}
        for phase, a, b in con.execute(
            "SELECT phase, t_from, t_to FROM phases ORDER BY t_from"
        ).fetchall():
            phases.setdefault(phase, []).append((a, b))
        if self.phase not in phases:
            return CheckResult(
                self.name,
                self.expression,
                self.description,
                None,
                False,
                self.sql([]),
                unit,
                note=f"phase {self.phase!r} is not in this run; it has {sorted(phases)}",
            )
        sql = self.sql(phases[self.phase])
        if self.window_ns is None:
            observed = _scalar(con, sql)
            return CheckResult(
                self.name,
                self.expression,
                self.description,
                observed,
                _passes(observed, self.op, self.threshold),
                sql,
                unit,
                note="" if observed is not None else "no data",
            )
        t0 = con.execute("SELECT t_start FROM run_window").fetchone()[0] or 0
        windows = [(a, b, float(v)) for a, b, v in con.execute(sql).fetchall() if v is not None]
        if not windows:
            return CheckResult(
                self.name,
                self.expression,
                self.description,
                None,
                False,
                sql,
                unit,
                note="no data in any window",
            )
        worst = self._worst(windows)
        evidence = {
            "from_s": (worst[0] - t0) / 1e9,
            "to_s": (worst[1] - t0) / 1e9,
            "windows": len(windows),
            "failing_windows": sum(not _OPS[self.op](v, self.threshold) for *_, v in windows),
        }
        return CheckResult(
            self.name,
            self.expression,
            self.description,
            worst[2],
            _passes(worst[2], self.op, self.threshold),
            sql,
            unit,
            evidence,
        )

    def _worst(self, windows: list[tuple[int, int, float]]) -> tuple[int, int, float]:
        if self.op in ("<", "<="):
            return max(windows, key=lambda w: w[2])
        if self.op in (">", ">="):
            return min(windows, key=lambda w: w[2])
        if self.op == "==":
            return max(windows, key=lambda w: abs(w[2] - self.threshold))
        return min(windows, key=lambda w: abs(w[2] - self.threshold))


SLO = Check | SqlCheck | Threshold


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> float | None:
    rows = con.execute(sql).fetchall()
    row = rows[0] if rows else None
    if row is None or row[0] is None:
        return None
    value = float(row[0])
    return None if math.isnan(value) else value


# ---------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------

_THRESHOLD = re.compile(
    r"^\s*(?P<metric>[a-z_][a-z0-9_]*)\s*(?:\{(?P<filters>[^}]*)\})?\s*:?\s*"
    r"(?P<agg>p\(\s*(?P<pct>[0-9.]+)\s*\)|avg|min|max|med|count|rate)\s*"
    r"(?P<op><=|>=|==|!=|<|>)\s*(?P<thr>[-+]?[0-9.]+(?:[eE][-+]?\d+)?)\s*$"
)
_NAMED = re.compile(
    r"^\s*(?P<metric>[a-z_][a-z0-9_]*)\s*(?P<op><=|>=|==|!=|<|>)\s*"
    r"(?P<thr>[-+]?[0-9.]+(?:[eE][-+]?\d+)?)\s*$"
)


def parse_slo(text: str, description: str = "", name: str = "") -> Check | Threshold:
    """Parses an SLO line: k6's `metric{filters}: agg op number`, or the named-query
    form `query_name op number`.

    Raises:
        ValueError: naming what is wrong with `text`.
    """
    named = _NAMED.match(text)
    if named:
        return Check(named["metric"], named["op"], float(named["thr"]), description, name)
    match = _THRESHOLD.match(text)
    if not match:
        raise ValueError(
            f"SLO {text!r} must read `metric{{filter:value,...}}: agg op number` (agg one of"
            " avg, min, max, med, p(N), count, rate) or `named_query op number`"
        )
    filters: list[tuple[str, str]] = []
    phase, window_ns, window_text = "run", None, ""
    for item in (match["filters"] or "").split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition(":")
        key, value = key.strip(), value.strip()
        if not sep or not value:
            raise ValueError(f"SLO {text!r}: filter {item.strip()!r} must read key:value")
        if key == "phase":
            phase = value
        elif key == "window":
            window_ns, window_text = _duration_ns(value, f"SLO {text!r}: window"), value
        else:
            filters.append((key, value))
    agg = match["agg"]
    pct = None
    if agg.startswith("p("):
        agg, pct = "p", float(match["pct"])
    return Threshold(
        metric=match["metric"],
        aggregation=agg,
        op=match["op"],
        threshold=float(match["thr"]),
        filters=tuple(filters),
        description=description,
        name=name,
        percentile=pct,
        phase=phase,
        window_ns=window_ns,
        window_text=window_text,
    )


def slo_from_json(obj: object) -> SLO:
    """An SLO from its scenario-file form: a string (see `parse_slo`), or an object
    with `slo` (and optional `name`, `description`), or with `name`, `sql` and `expect`
    (e.g. `"< 5"`) for raw SQL."""
    if isinstance(obj, str):
        return parse_slo(obj)
    if not isinstance(obj, dict):
        raise ValueError(f"an SLO must be a string or an object, got {obj!r}")
    if "sql" in obj:
        expect = str(obj.get("expect", ""))
        m = re.match(r"^\s*(<=|>=|==|!=|<|>)\s*([-+]?[0-9.]+(?:[eE][-+]?\d+)?)\s*$", expect)
        if not m:
            raise ValueError(
                f"SLO {obj.get('name')!r}: expect must read `op number`, e.g. `< 5`, got {expect!r}"
            )
        if not obj.get("name"):
            raise ValueError("a raw SQL SLO needs a name")
        return SqlCheck(
            obj["name"],
            obj["sql"],
            m[1],
            float(m[2]),
            obj.get("description", ""),
            obj.get("witnesses", ""),
        )
    if "slo" not in obj:
        raise ValueError(f"an SLO object needs `slo` or `sql`, got keys {sorted(obj)}")
    return parse_slo(obj["slo"], obj.get("description", ""), obj.get("name", ""))


def evaluate(con: duckdb.DuckDBPyConnection, checks: Sequence[SLO]) -> list[CheckResult]:
    """Judges each check; a metric with no value (no data) fails its check."""
    return [check.judge(con) for check in checks]


# What makes a run trustworthy, whatever its SLOs: a failed one makes the run invalid.
DEFAULT_VALIDITY: tuple[Check, ...] = (
    Check("requests_total", ">", 0, "the load generator recorded client requests"),
    Check("loadgen_workers_finished", ">=", 1, "a load worker ran to its end"),
    Check("loadgen_workers_unfinished", "==", 0, "every load worker recorded its end"),
    Check(
        "faults_not_applied",
        "==",
        0,
        "every scheduled fault started, and touched the traffic it met",
    ),
    Check(
        "requests_not_sent_share",
        "<=",
        0.01,
        "the load generator sent at least 99% of its planned calls (not saturated)",
    ),
    Check(
        "late_sends_share",
        "<=",
        0.05,
        "the load generator kept its schedule: at most 5% of calls sent later than the gap"
        " between two scheduled sends",
    ),
    Check(
        "clock_skew_ms",
        "<",
        5,
        "the load generator's clock and the chaos proxy's agree within 5 ms: every"
        " exchange falls inside the call it served (median over calls)",
    ),
    Check(
        "requests_missing_share",
        "<=",
        0.01,
        "at least 99% of the calls the workers sent are recorded (data complete)",
    ),
    Check(
        "loadgen_cpu_max",
        "<",
        0.95,
        "no load-generator process used a whole core (not saturated)",
    ),
    Check(
        "proxy_cpu_max",
        "<",
        0.95,
        "the chaos proxy never used a whole core (not saturated)",
    ),
    Check(
        "proxy_loop_lag_max_ms",
        "<",
        100,
        "the chaos proxy's event loop never lagged 100 ms (not saturated)",
    ),
)
