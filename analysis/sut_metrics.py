"""The SUT's own counters and gauges over the load, from the `metrics` table (its
Prometheus samples, one scrape a second: `scenarios/metrics.py`).

`sut_metrics_table(con)` returns one row per series (name + labels) that was scraped
during the load: its first and last value, its minimum and maximum, and, for a counter,
its increase (`delta`, reset-aware like PromQL's `increase`: a drop counts as a restart
from zero). Only the `limit` series that changed most, most first: a series' change is
its increase (counter) or its range (gauge), ranked relative to the series' magnitude, so
an error counter going 0 -> 3 outranks a byte counter growing by 0.1%; then by the
absolute change.

A series is a counter by its name, as Prometheus names them: `_total`, and a histogram's
or summary's `_count` and `_sum`; anything else is a gauge. Histogram buckets (`_bucket`)
and `_created` timestamps are left out: they are many and say little on their own.
"""

from __future__ import annotations

import duckdb

__all__ = ["COUNTER_SUFFIXES", "SUT_METRICS_LIMIT", "sut_metrics_table"]

SUT_METRICS_LIMIT = 40
COUNTER_SUFFIXES = ("_total", "_count", "_sum")
_LEFT_OUT = ("_bucket", "_created")

_COLUMNS = ("name", "labels", "kind", "samples", "first", "last", "delta", "min", "max")


def _suffix_test(suffixes: tuple[str, ...]) -> str:
    return " OR ".join(f"suffix(name, '{s}')" for s in suffixes)


_QUERY = f"""
WITH s AS (
    SELECT name, labels, t, value FROM metrics
    WHERE isfinite(value)
      AND ($t_from IS NULL OR t >= $t_from) AND ($t_to IS NULL OR t < $t_to)
      AND NOT ({_suffix_test(_LEFT_OUT)})
),
steps AS (
    SELECT name, labels, t, value,
           value - lag(value) OVER (PARTITION BY name, labels ORDER BY t) AS step
    FROM s
),
series AS (
    SELECT name, labels,
           CASE WHEN {_suffix_test(COUNTER_SUFFIXES)} THEN 'counter' ELSE 'gauge' END AS kind,
           count(*) AS samples,
           arg_min(value, t) AS first, arg_max(value, t) AS last,
           min(value) AS min, max(value) AS max,
           coalesce(sum(CASE WHEN step >= 0 THEN step WHEN step < 0 THEN value END), 0)
               AS increase
    FROM steps
    GROUP BY name, labels
),
ranked AS (
    SELECT *, CASE WHEN kind = 'counter' THEN increase ELSE max - min END AS change
    FROM series
)
SELECT name, labels, kind, samples, first, last,
       CASE WHEN kind = 'counter' THEN increase END AS delta, min, max
FROM ranked
ORDER BY coalesce(abs(change) / nullif(greatest(abs(min), abs(max)), 0), 0) DESC,
         abs(change) DESC, name, labels
LIMIT $limit
"""


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(
        con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [name]).fetchone()[
            0
        ]
    )


def _load_window(con: duckdb.DuckDBPyConnection) -> tuple[int | None, int | None]:
    """The load's interval: `run_window` once the queries made it, else the run's
    recorded start and end (`runs`), else unbounded."""
    if _has_table(con, "run_window"):
        row = con.execute("SELECT t_start, t_end FROM run_window").fetchone()
        if row is not None and row != (None, None):
            return row
    if _has_table(con, "runs"):
        row = con.execute("SELECT min(t_start), max(t_end) FROM runs").fetchone()
        if row is not None:
            return row
    return None, None


def sut_metrics_table(
    con: duckdb.DuckDBPyConnection,
    *,
    t_from: int | None = None,
    t_to: int | None = None,
    limit: int = SUT_METRICS_LIMIT,
) -> list[dict]:
    """The SUT's series that changed most over the load, as rows of `name`, `labels`
    (the JSON object as recorded), `kind` (``counter`` | ``gauge``), `samples`, `first`,
    `last`, `delta` (counters; None for gauges), `min`, `max`.

    `t_from` / `t_to` (ns, end exclusive) bound the samples; by default the load's
    interval (`run_window`, else `runs`). No `metrics` table or no samples: [].
    """
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    if not _has_table(con, "metrics"):
        return []
    if t_from is None and t_to is None:
        t_from, t_to = _load_window(con)
    rows = con.execute(_QUERY, {"t_from": t_from, "t_to": t_to, "limit": limit}).fetchall()
    return [dict(zip(_COLUMNS, row, strict=True)) for row in rows]
