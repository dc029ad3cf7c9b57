"""Building `run.duckdb` from a run directory's shards.

Idempotent: the database is built anew in a temporary file and renamed into place, so a
rebuild never mixes old and new rows and a failed build leaves the old one intact.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import duckdb

from .queries import query
from .shards import SCHEMAS, readable_prefix

__all__ = ["DB_NAME", "ingest"]

DB_NAME = "run.duckdb"
# Views derived from the tables, created after loading.
VIEWS = ("chaos_events", "attempts")


def _shards(run_dir: Path, table: str) -> list[Path]:
    return sorted(p for p in run_dir.glob(f"*/{table}.*.csv") if p.is_file())


def _load(con: duckdb.DuckDBPyConnection, table: str, path: Path, scratch: Path) -> None:
    size = path.stat().st_size
    usable = readable_prefix(path)
    if usable == 0:
        return
    if usable < size:
        # A killed producer's partial last line: read the whole lines before it.
        trimmed = scratch / f"{path.parent.name}-{path.name}"
        with open(path, "rb") as src, open(trimmed, "wb") as dst:
            dst.write(src.read(usable))
        path = trimmed
    columns = SCHEMAS[table]
    con.execute(
        f"INSERT INTO {table} SELECT * FROM read_csv(?, header = true, auto_detect = false,"
        f" columns = {_struct(columns)}, quote = '\"', escape = '\"')",
        [str(path)],
    )


def _struct(columns: dict[str, str]) -> str:
    return "{" + ", ".join(f"'{c}': '{t}'" for c, t in columns.items()) + "}"


def _runs_row(con: duckdb.DuckDBPyConnection, run_dir: Path) -> None:
    con.execute(
        "CREATE TABLE runs (run_id VARCHAR, scenario VARCHAR, t_start BIGINT, t_end BIGINT,"
        " versions VARCHAR, host VARCHAR, parameters VARCHAR, verdict VARCHAR)"
    )
    spec_path = run_dir / "scenario.json"
    if not spec_path.exists():
        return
    spec = json.loads(spec_path.read_text())
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


def ingest(run_dir: Path) -> Path:
    """Builds (or rebuilds) the run database of `run_dir` and returns its path."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir} does not exist")
    target = run_dir / DB_NAME
    building = run_dir / f"{DB_NAME}.building"
    building.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="battle-ingest-") as tmp:
        scratch = Path(tmp)
        con = duckdb.connect(str(building))
        try:
            for table, columns in SCHEMAS.items():
                cols = ", ".join(f"{c} {t}" for c, t in columns.items())
                con.execute(f"CREATE TABLE {table} ({cols})")
                for shard in _shards(run_dir, table):
                    _load(con, table, shard, scratch)
            _runs_row(con, run_dir)
            for view in VIEWS:
                con.execute(query(view))
        finally:
            con.close()
    os.replace(building, target)
    return target
