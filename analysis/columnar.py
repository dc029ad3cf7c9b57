"""Parquet parts of the CSV shards: the form analysis reads, converted as the run goes.

Producers keep writing append-only CSV (`analysis.shards`). Parsing CSV is the costliest
part of building a large run's database (measured: about 1.5 µs of CPU per upstream row,
45 s for 30 million rows on this machine), so it is done incrementally: `convert` turns
the whole lines a shard gained since its last part into one more Parquet part, and the
scenario runner calls it every few seconds while the load runs (`Converter`). At the
end, `analysis.ingest` converts only what is left and reads the parts.

Layout: `<run>/columnar/<folder>/<table>.<producer>.<inode>.<start>-<end>.parquet`, where
`start`..`end` is the byte range of the shard `<run>/<folder>/<table>.<producer>.csv`
the part holds (whole lines only; the first starts after the header) and `inode`
identifies that shard file. A part is written under a temporary name and renamed, so a
killed converter leaves no partial part. The parts of a shard must chain from the
header's end; a part that does not (a shard replaced or rewritten, which the shard
contract rules out, or a schema change, see `schema.json`) is deleted and its range
converted again. A partial last record (a batch being written, or cut by a kill) is
never converted: it is left for the next call, when it may be whole. Records are
told apart by newlines outside quotes (see `_record_end`), as a field may hold one.
Converters serialise on an flock of `<run>/columnar/.lock`, so the runner's converter
and a `battle ingest` can overlap.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from .shards import SCHEMAS, readable_prefix

__all__ = ["COLUMNAR_DIR", "DURING_RUN_MIN_BYTES", "Converter", "convert", "parts"]

COLUMNAR_DIR = "columnar"
# During the run a shard is converted once it has gained this much: a part then holds
# about 100,000 rows (a few seconds of a busy proxy), few enough files for the final
# read to stay cheap, and small tables (lifecycle, system) wait for the final ingest.
DURING_RUN_MIN_BYTES = 16 << 20
_PART = re.compile(
    r"^(?P<table>[a-z_]+)\.(?P<producer>[^.]+)\.(?P<ino>\d+)\.(?P<a>\d+)-(?P<b>\d+)\.parquet$"
)


@dataclass(frozen=True)
class _Part:
    path: Path
    start: int
    end: int


def _struct(columns: dict[str, str]) -> str:
    return "{" + ", ".join(f"'{c}': '{t}'" for c, t in columns.items()) + "}"


def _sql_path(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _header_end(shard: Path, table: str) -> int | None:
    """The length of the shard's header line, None while it is not whole yet.

    Raises:
        ValueError: the header does not name the columns of `SCHEMAS[table]`.
    """
    with open(shard, "rb") as f:
        line = f.readline()
    if not line.endswith(b"\n"):
        return None
    expected = ",".join(SCHEMAS[table])
    if line.decode().rstrip("\n") != expected:
        raise ValueError(
            f"shard {shard} has header {line.decode().rstrip()!r}; {table} expects {expected!r}"
        )
    return len(line)


def _shards(run_dir: Path) -> Iterator[tuple[str, Path]]:
    for table in SCHEMAS:
        for path in sorted(run_dir.glob(f"*/{table}.*.csv")):
            if path.is_file() and path.parent.name != COLUMNAR_DIR:
                yield table, path


def _producer(shard: Path, table: str) -> str:
    return shard.name.removeprefix(f"{table}.").removesuffix(".csv")


def _chain(out_dir: Path, shard: Path, table: str, ino: int, start: int, limit: int) -> list[_Part]:
    """The shard's parts that chain from `start` without passing `limit`; deletes the
    others (stale: another inode, overlapping, or beyond the readable prefix)."""
    producer = _producer(shard, table)
    found: list[_Part] = []
    for path in out_dir.glob(f"{table}.{producer}.*.parquet"):
        m = _PART.match(path.name)
        if m is None or m["table"] != table or m["producer"] != producer:
            continue
        if int(m["ino"]) != ino:
            path.unlink(missing_ok=True)
            continue
        found.append(_Part(path, int(m["a"]), int(m["b"])))
    found.sort(key=lambda p: (p.start, -p.end))
    chain: list[_Part] = []
    pos = start
    for part in found:
        if part.start == pos and pos < part.end <= limit:
            chain.append(part)
            pos = part.end
        else:
            part.path.unlink(missing_ok=True)
    return chain


def _write_part(
    con: duckdb.DuckDBPyConnection, shard: Path, table: str, out: Path, start: int, end: int
) -> None:
    # DuckDB reads files, not byte ranges: copy the range (page cache to page cache, far
    # cheaper than the parse) into a scratch file without header, convert, rename.
    scratch = out.with_name(f".{out.name}.csv")
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        with open(shard, "rb") as src, open(scratch, "wb") as dst:
            left, offset = end - start, start
            while left:
                n = os.copy_file_range(src.fileno(), dst.fileno(), left, offset)
                if n == 0:
                    raise OSError(f"shard {shard} ended before byte {end}")
                left -= n
                offset += n
        try:
            con.execute(_copy_sql(scratch, table, tmp, typed=True))
        except duckdb.ConversionException:
            # A value its column's type cannot hold (a forged answer's number, a torn
            # field): read every column as text and keep the row, NULL in that column,
            # rather than fail the whole analysis. Only this part pays for the casts.
            con.execute(_copy_sql(scratch, table, tmp, typed=False))
        os.replace(tmp, out)
    finally:
        scratch.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)


def _copy_sql(scratch: Path, table: str, out: Path, *, typed: bool) -> str:
    """The COPY of a header-less CSV range into Parquet with `SCHEMAS[table]`'s types:
    parsed as those types (`typed`), or as text with each value `TRY_CAST` (NULL where
    it does not convert: the row is kept)."""
    schema = SCHEMAS[table]
    if typed:
        columns, select = schema, "*"
    else:
        columns = dict.fromkeys(schema, "VARCHAR")
        # trim(): DuckDB 2.0's type_pushdown optimizer turns a TRY_CAST of a read_csv
        # column into that column's type in the reader, which then fails as strictly
        # as the typed read; a function in between keeps the cast a TRY_CAST.
        select = ", ".join(
            f'"{c}"' if t == "VARCHAR" else f'TRY_CAST(trim("{c}") AS {t}) AS "{c}"'
            for c, t in schema.items()
        )
    return (
        f"COPY (SELECT {select} FROM read_csv({_sql_path(scratch)}, header = false,"
        f" auto_detect = false, columns = {_struct(columns)}, quote = '\"',"
        f" escape = '\"')) TO {_sql_path(out)} (FORMAT parquet, COMPRESSION zstd)"
    )


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _check_schema(root: Path) -> None:
    """Parts written under other table schemas are useless: drop them all."""
    marker = root / "schema.json"
    current = json.dumps(SCHEMAS, sort_keys=True)
    if marker.exists() and marker.read_text() == current:
        return
    for old in root.glob("*/*.parquet"):
        old.unlink()
    marker.write_text(current)


def _record_end(shard: Path, pos: int, end: int) -> int:
    """The end of the last whole record in bytes `pos`..`end` of the shard (`pos` if
    there is none), `pos` being a record's start.

    Not simply the last newline: csv.writer quotes a field that holds a newline (an
    error message can), doubling the quotes inside it, so a newline ends a record
    exactly when the quotes from the record's start to it are even in number. One pass
    counts the quotes (C speed), then newlines are tried from the end."""
    block = 1 << 24
    quotes = 0
    with open(shard, "rb") as f:
        f.seek(pos)
        at = pos
        while at < end:
            chunk = f.read(min(block, end - at))
            if not chunk:
                break
            quotes += chunk.count(b'"')
            at += len(chunk)
        after = 0  # quotes between the newline tried and `end`
        hi = end
        while hi > pos:
            lo = max(pos, hi - block)
            f.seek(lo)
            chunk = f.read(hi - lo)
            j = len(chunk)
            while (i := chunk.rfind(b"\n", 0, j)) >= 0:
                after += chunk.count(b'"', i + 1, j)
                if (quotes - after) % 2 == 0:
                    return lo + i + 1
                j = i
            after += chunk.count(b'"', 0, j)
            hi = lo
    return pos


def _cut(shard: Path, pos: int, limit: int, max_bytes: int | None) -> int:
    """Where the next part ends: `limit`, or the last record end within `max_bytes`
    (all of it up to `limit` when one record is longer)."""
    if max_bytes is None or limit - pos <= max_bytes:
        return limit
    end = _record_end(shard, pos, pos + max_bytes)
    return end if end > pos else limit


def convert(
    run_dir: Path,
    *,
    min_bytes: int = 0,
    max_bytes: int | None = None,
    threads: int | None = None,
) -> int:
    """Converts the whole lines each shard of `run_dir` gained since its last part into
    new parts, for shards that gained at least `min_bytes` (and at least one line).
    Idempotent; safe to call while producers write and from several processes.

    Args:
        run_dir: the run directory.
        min_bytes: skip shards with less new data than this (0: convert everything).
        max_bytes: cut the new data into parts of at most this many bytes (whole lines;
            None: one part), converting while at least `min_bytes` remain.
        threads: DuckDB threads for the conversion (None: DuckDB's default, every core).

    Returns:
        The number of parts written.

    Raises:
        ValueError: a shard's header does not match its table's schema.
    """
    if min_bytes < 0:
        raise ValueError(f"min_bytes must be >= 0, got {min_bytes}")
    if max_bytes is not None and max_bytes <= 0:
        raise ValueError(f"max_bytes must be > 0, got {max_bytes}")
    run_dir = Path(run_dir)
    root = run_dir / COLUMNAR_DIR
    written = 0
    with _locked(root):
        _check_schema(root)
        con: duckdb.DuckDBPyConnection | None = None
        try:
            for table, shard in _shards(run_dir):
                start = _header_end(shard, table)
                if start is None:
                    continue
                readable = readable_prefix(shard)
                out_dir = root / shard.parent.name
                out_dir.mkdir(exist_ok=True)
                ino = shard.stat().st_ino
                chain = _chain(out_dir, shard, table, ino, start, readable)
                pos = chain[-1].end if chain else start
                if readable - pos < max(min_bytes, 1):
                    continue
                # A batch being written, or cut by a kill, may end inside a quoted field.
                limit = _record_end(shard, pos, readable)
                while limit - pos > 0 and limit - pos >= min_bytes:
                    if con is None:
                        con = duckdb.connect()
                        if threads is not None:
                            con.execute(f"SET threads = {int(threads)}")
                    end = _cut(shard, pos, limit, max_bytes)
                    name = f"{table}.{_producer(shard, table)}.{ino}.{pos:012d}-{end:012d}.parquet"
                    _write_part(con, shard, table, out_dir / name, pos, end)
                    written += 1
                    pos = end
        finally:
            if con is not None:
                con.close()
    return written


def parts(run_dir: Path, table: str) -> list[Path]:
    """Every part of `table` that chains from its shard's header (call `convert` first
    for them to cover the shards' readable prefixes)."""
    if table not in SCHEMAS:
        raise ValueError(f"table must be one of {sorted(SCHEMAS)}, got {table!r}")
    run_dir = Path(run_dir)
    root = run_dir / COLUMNAR_DIR
    found: list[Path] = []
    with _locked(root):
        for shard_table, shard in _shards(run_dir):
            if shard_table != table:
                continue
            start = _header_end(shard, table)
            if start is None:
                continue
            out_dir = root / shard.parent.name
            if not out_dir.is_dir():
                continue
            ino = shard.stat().st_ino
            chain = _chain(out_dir, shard, table, ino, start, readable_prefix(shard))
            found.extend(p.path for p in chain)
    return found


class Converter:
    """Calls `convert(run_dir, min_bytes=DURING_RUN_MIN_BYTES, threads=1)` every
    `interval` seconds on a daemon thread until `stop`, so that the final ingest only
    has the last few seconds of each shard to parse. One DuckDB thread: the conversion
    shares the machine with the system under test, and a steady trickle disturbs it
    less than bursts on every core."""

    def __init__(self, run_dir: Path, *, interval: float = 5.0) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be > 0, got {interval}")
        self.run_dir = Path(run_dir)
        self.interval = interval
        self.parts_written = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="shard-converter", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stops after the conversion in progress, if any; what is left is for ingest."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        # Below the system under test and the load generator in the scheduler's eyes (on
        # Linux a thread has its own nice value; DuckDB with one thread runs here).
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        while not self._stop.wait(self.interval):
            try:
                self.parts_written += convert(
                    self.run_dir, min_bytes=DURING_RUN_MIN_BYTES, threads=1
                )
            except Exception as exc:
                # A conversion failure must not end the run: ingest converts again and
                # raises there, where the error is reported.
                self.error = exc
