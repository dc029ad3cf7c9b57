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
import tempfile
from pathlib import Path

import duckdb

from .queries import query
from .shards import SCHEMAS, readable_prefix

__all__ = ["DB_NAME", "DEFAULT_SETTINGS", "DERIVED", "EXPECTED_TABLES", "ingest"]

DB_NAME = "run.duckdb"
# Views, macros and tables derived after loading, in dependency order (queries.sql).
DERIVED = (
    "chaos_events",
    "run_window",
    "fault_windows",
    "phases",
    "attempts",
    "attempt_source",
    "request_attempts",
    "correlation",
    "requests_x",
    "true_head",
    "block_produced_at",
    "head_checks",
    "ws_checks",
    "ws_resubscribes",
    "breaker",
    "success_by_second",
    "impact",
)
# Tables analysis reads whose producer may not write them yet: created empty with this
# shape when shards.SCHEMAS does not define them, so that every query still runs.
EXPECTED_TABLES: dict[str, dict[str, str]] = {}
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


def _shards(run_dir: Path, table: str) -> list[Path]:
    return sorted(p for p in run_dir.glob(f"*/{table}.*.csv") if p.is_file())


def _load(con: duckdb.DuckDBPyConnection, table: str, paths: list[Path], scratch: Path) -> None:
    usable_paths = []
    for path in paths:
        size = path.stat().st_size
        usable = readable_prefix(path)
        if usable == 0:
            continue
        if usable < size:
            # A killed producer's partial last line: read the whole lines before it.
            trimmed = scratch / f"{path.parent.name}-{path.name}"
            with open(path, "rb") as src, open(trimmed, "wb") as dst:
                dst.write(src.read(usable))
            path = trimmed
        usable_paths.append(str(path))
    if not usable_paths:
        return
    columns = SCHEMAS[table]
    # One read_csv over every shard of the table: DuckDB parses the files in parallel.
    con.execute(
        f"INSERT INTO {table} SELECT * FROM read_csv(?, header = true, auto_detect = false,"
        f" columns = {_struct(columns)}, quote = '\"', escape = '\"', union_by_name = false)",
        [usable_paths],
    )


def _struct(columns: dict[str, str]) -> str:
    return "{" + ", ".join(f"'{c}': '{t}'" for c, t in columns.items()) + "}"


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


def _mode(con: duckdb.DuckDBPyConnection) -> str:
    return con.execute("SELECT mode FROM correlation").fetchall()[0][0]


def ingest(run_dir: Path) -> Path:
    """Builds (or rebuilds) the run database of `run_dir` and returns its path.

    Raises:
        FileNotFoundError: `run_dir` is not a directory.
        ValueError: scenario.json names an unknown analysis setting.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir} does not exist")
    target = run_dir / DB_NAME
    building = run_dir / f"{DB_NAME}.building"
    building.unlink(missing_ok=True)
    spec = _scenario(run_dir)
    with tempfile.TemporaryDirectory(prefix="battle-ingest-") as tmp:
        scratch = Path(tmp)
        con = duckdb.connect(str(building))
        try:
            # Rows need no order inside a table (every query orders what it shows), and
            # without it DuckDB loads CSV in parallel with less memory (~25% faster).
            con.execute("SET preserve_insertion_order = false")
            tables = {**EXPECTED_TABLES, **SCHEMAS}
            for table, columns in tables.items():
                cols = ", ".join(f"{c} {t}" for c, t in columns.items())
                con.execute(f"CREATE TABLE {table} ({cols})")
                if table in SCHEMAS:
                    _load(con, table, _shards(run_dir, table), scratch)
            _runs_row(con, run_dir, spec)
            _settings(con, spec)
            _planned_faults(con, spec)
            for name in DERIVED:
                con.execute(query(name))
                if name == "correlation" and _mode(con) == "time_window":
                    # The router strips tags: attribute exchanges by time instead.
                    con.execute(query("attempt_source_by_time"))
                    con.execute(query("request_attempts"))
        finally:
            con.close()
    os.replace(building, target)
    return target
