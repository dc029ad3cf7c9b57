"""Building `run.duckdb` from a run directory's shards.

Idempotent: the database is built anew in a temporary file and renamed into place, so a
rebuild never mixes old and new rows and a failed build leaves the old one intact.

Besides the shard tables it holds `runs` (from scenario.json), `settings` (the
analysis parameters: recovery window, breaker gap, success target, the chain's clock),
`planned_faults` (the scenario's fault plan) and the derived views and tables of
`queries.sql` listed in `DERIVED`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb

from .columnar import convert, parts
from .expect import EXPECTATIONS, resolve_expect
from .queries import query
from .shards import SCHEMAS

__all__ = [
    "DB_NAME",
    "DEFAULT_SETTINGS",
    "DERIVED",
    "MATERIALISED",
    "VIEWS",
    "build",
    "finish",
    "ingest",
    "materialise",
]

DB_NAME = "run.duckdb"
# Views, macros and tables derived after loading, in dependency order (queries.sql).
DERIVED = (
    "chaos_events",
    "run_window",
    "fault_windows",
    "phases",
    "attempts",
    "correlation",
    "attempt_source",
    "providers",
    "requests_x",
    "request_attempts",
    "client_exchanges",
    "own_traffic",
    "serving_exchanges",
    "true_head",
    "block_produced_at",
    "head_checks",
    "tag_checks",
    "ws_checks",
    "ws_silence",
    "ws_resubscribes",
    "breaker",
    "expect_s",
    "unrescued",
    "hung_calls",
    "retry_storms",
    "rate_limit_faults",
    "rate_limit_answers",
    "limit_backoffs",
    "retry_after_breaches",
    "limit_backoff_breaches",
    "provider_return",
    "majority_traffic",
    "rss_per_call",
    "success_by_second",
    "impact",
    "rate_steps",
    "highest_holding_rate",
)
# Provider behaviours (providers/behaviour.py) that leave a mock healthy: only its
# latency. One with an error rate, a rate limit, a lagging head or unsupported methods
# fails calls by design, so a router may rightly avoid it.
HEALTHY_BEHAVIOURS = frozenset({"seed", "latency"})
# Analysis parameters, overridable in scenario.json under "analysis" (in seconds).
DEFAULT_SETTINGS = {
    # How long after a fault ends its effects are still attributed to it (phase
    # `recovery:<fault>`); steady state starts after it.
    "recovery_window_s": 5.0,
    # A pause this long in traffic to a faulted provider counts as the router having
    # stopped sending to it. 1 s is many times the gap between requests to one provider
    # at the rates a scenario runs (tens of requests per second).
    "breaker_gap_s": 1.0,
    # The one-second success rate a fault's client-visible impact is measured against.
    "success_target": 0.99,
    # Below this share of upstream exchanges carrying a client's tag, the router is
    # taken to strip tags and exchanges are attributed to requests by time.
    "correlation_min": 0.5,
}


# The per-call tables, tens of millions of rows in a long run, stay in their Parquet
# parts behind a view: copying 30 million upstream rows into DuckDB's own storage took
# 18 s (compressing them), while the queries that read them scan a few columns of the
# parts each (about 0.5 s). The other tables are small and copied, so they can be
# edited like any table.
VIEWS = ("requests", "upstream")


def _load_parts(con: duckdb.DuckDBPyConnection, run_dir: Path, table: str) -> None:
    """`table` from its Parquet parts: a view (see VIEWS) or a copy; an empty table
    when it has none."""
    paths = [str(p.resolve()) for p in parts(run_dir, table)]
    if not paths:
        cols = ", ".join(f"{c} {t}" for c, t in SCHEMAS[table].items())
        con.execute(f"CREATE TABLE {table} ({cols})")
        return
    listed = ", ".join("'" + p.replace("'", "''") + "'" for p in paths)
    kind = "VIEW" if table in VIEWS else "TABLE"
    con.execute(f"CREATE {kind} {table} AS SELECT * FROM read_parquet([{listed}])")


def _scenario(run_dir: Path) -> dict:
    spec_path = run_dir / "scenario.json"
    return json.loads(spec_path.read_text()) if spec_path.exists() else {}


def _runs_row(con: duckdb.DuckDBPyConnection, run_dir: Path, spec: dict) -> None:
    con.execute(
        "CREATE TABLE runs (run_id VARCHAR, scenario VARCHAR, t_start BIGINT, t_end BIGINT,"
        " versions VARCHAR, host VARCHAR, parameters VARCHAR, verdict VARCHAR)"
    )
    if not spec:
        return
    con.execute(
        "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
        [
            run_dir.name,
            spec.get("name"),
            spec.get("t0_ns"),
            spec.get("t_end_ns"),
            json.dumps(spec.get("versions", {})),
            spec.get("host"),
            json.dumps(spec),
        ],
    )


def _settings(con: duckdb.DuckDBPyConnection, spec: dict) -> None:
    given = spec.get("analysis") or {}
    unknown = set(given) - set(DEFAULT_SETTINGS)
    if unknown:
        raise ValueError(
            f"scenario.json analysis.{sorted(unknown)[0]} is not a setting;"
            f" known: {sorted(DEFAULT_SETTINGS)}"
        )
    s = {**DEFAULT_SETTINGS, **given}
    con.execute(
        "CREATE TABLE settings (recovery_window_ns BIGINT, breaker_gap_ns BIGINT,"
        " success_target DOUBLE, correlation_min DOUBLE, genesis_ns BIGINT,"
        " block_time_ms BIGINT)"
    )
    con.execute(
        "INSERT INTO settings VALUES (?, ?, ?, ?, ?, ?)",
        [
            int(float(s["recovery_window_s"]) * 1e9),
            int(float(s["breaker_gap_s"]) * 1e9),
            float(s["success_target"]),
            float(s["correlation_min"]),
            spec.get("genesis_ns"),
            spec.get("block_time_ms"),
        ],
    )


def _planned_faults(con: duckdb.DuckDBPyConnection, spec: dict) -> None:
    con.execute(
        "CREATE TABLE planned_faults (fault_id VARCHAR, provider VARCHAR, kind VARCHAR,"
        " start_s DOUBLE, duration_s DOUBLE)"
    )
    rows = [
        (f.get("fault_id"), f.get("provider"), f.get("kind"), f.get("start_s"), f.get("duration_s"))
        for f in spec.get("faults") or []
        if isinstance(f, dict)
    ]
    if rows:
        con.executemany("INSERT INTO planned_faults VALUES (?, ?, ?, ?, ?)", rows)


def _expect(con: duckdb.DuckDBPyConnection, spec: dict) -> None:
    """`expect`: the router profile, every expectation with its value and whether the
    scenario declared it (analysis/expect.py)."""
    # The runner records every value, resolved, and the names the scenario declared
    # beside them (`expect_declared`); a hand-written scenario.json may hold only what
    # it declares.
    given = spec.get("expect") or {}
    declared = set(spec.get("expect_declared", given))
    values = resolve_expect(given)
    con.execute("CREATE TABLE expect (name VARCHAR, value DOUBLE, declared BOOLEAN)")
    con.executemany(
        "INSERT INTO expect VALUES (?, ?, ?)",
        [(name, values[name], name in declared) for name in EXPECTATIONS],
    )


def _scenario_providers(con: duckdb.DuckDBPyConnection, spec: dict) -> None:
    """`scenario_providers`: every provider of the scenario (also those that never got
    an exchange: the idle backups of a priority router) and whether it is healthy when
    no fault acts on it."""
    con.execute("CREATE TABLE scenario_providers (provider VARCHAR, healthy BOOLEAN)")
    rows = []
    for p in spec.get("providers") or []:
        if isinstance(p, dict) and p.get("name"):
            behaviour = p.get("behaviour") or {}
            rows.append((p["name"], set(behaviour) <= HEALTHY_BEHAVIOURS))
    if rows:
        con.executemany("INSERT INTO scenario_providers VALUES (?, ?)", rows)
    # Without a provider list (a run from before scenario.json had one), those seen.
    con.execute(
        "INSERT INTO scenario_providers SELECT DISTINCT provider, true FROM upstream"
        " WHERE provider IS NOT NULL"
        " AND provider NOT IN (SELECT provider FROM scenario_providers)"
    )


def _mode(con: duckdb.DuckDBPyConnection) -> str:
    return con.execute("SELECT mode FROM correlation").fetchall()[0][0]


# Derived views that every judging connection materialises once as a temporary table
# of the same name (which DuckDB resolves before the view, in views too): requests_x
# holds a row per client request, and writing it into run.duckdb cost more (7 s of CPU
# compressing 10 million rows) than building it in memory where it is used.
MATERIALISED = ("requests_x",)


def materialise(con: duckdb.DuckDBPyConnection) -> None:
    """Builds the MATERIALISED views of an open run database as temporary tables, so
    that the queries of one judging read them once."""
    for name in MATERIALISED:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM main.{name}")


def build(run_dir: Path) -> tuple[duckdb.DuckDBPyConnection, Path]:
    """Builds the run database of `run_dir` in a temporary file; returns a connection to
    it, with the MATERIALISED views in memory, and the file. `finish` closes it and
    puts it in place.

    Raises:
        FileNotFoundError: `run_dir` is not a directory.
        ValueError: scenario.json names an unknown analysis setting or expectation, or a
            shard's header does not match its table.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir} does not exist")
    building = run_dir / f"{DB_NAME}.building"
    building.unlink(missing_ok=True)
    spec = _scenario(run_dir)
    # Whatever the converter has not done during the run (at least the last seconds).
    convert(run_dir)
    con = duckdb.connect(str(building))
    try:
        # Rows need no order inside a table (every query orders what it shows); without
        # it DuckDB builds tables in parallel with less memory.
        con.execute("SET preserve_insertion_order = false")
        for table in SCHEMAS:
            _load_parts(con, run_dir, table)
        _runs_row(con, run_dir, spec)
        _settings(con, spec)
        _planned_faults(con, spec)
        _expect(con, spec)
        _scenario_providers(con, spec)
        for name in DERIVED:
            if name == "attempt_source" and _mode(con) == "time_window":
                # The router strips or rewrites tags: attribute exchanges by time. Chosen
                # before anything reads attempt_source, so that every connection (this
                # one, with its materialised tables, and any opened later) sees one
                # attribution.
                con.execute(query("attempt_source_by_time"))
            else:
                con.execute(query(name))
            if name in MATERIALISED:
                materialise(con)
    except BaseException:
        con.close()
        building.unlink(missing_ok=True)
        raise
    return con, building


def finish(con: duckdb.DuckDBPyConnection, building: Path) -> Path:
    """Closes a connection from `build` and renames its file into place."""
    con.close()
    target = building.with_name(DB_NAME)
    os.replace(building, target)
    return target


def ingest(run_dir: Path) -> Path:
    """Builds (or rebuilds) the run database of `run_dir` and returns its path.

    Raises:
        FileNotFoundError: `run_dir` is not a directory.
        ValueError: scenario.json names an unknown analysis setting, or a shard's header
            does not match its table.
    """
    return finish(*build(run_dir))
