"""Shard files: the format every producer writes and analysis reads.

This module is the contract of DESIGN.md's tables. Producers (loadgen, chaosproxy,
providers, the scenario runner) import only this module from `analysis`; it needs
nothing beyond the standard library, so importing it costs a producer nothing.

A shard is one CSV file, one table, one writing process: `<dir>/<table>.<producer>.csv`
with a header line. Rows are appended in batches, each batch one `os.write` of whole
lines, at most `flush_interval` seconds apart, from a background thread so that the
producer's event loop never blocks on disk. A producer killed mid-write leaves at most
one partial last line, which ingest drops (see `readable_prefix`).
"""

from __future__ import annotations

import csv
import io
import os
import threading
from collections.abc import Sequence
from pathlib import Path

__all__ = ["SCHEMAS", "ShardWriter", "readable_prefix", "shard_path"]

# Column name -> DuckDB type, per table. Times are integer nanoseconds since the Unix
# epoch from one host clock; durations are integer nanoseconds.
SCHEMAS: dict[str, dict[str, str]] = {
    "requests": {
        "worker": "INTEGER",
        "seq": "BIGINT",
        "tag": "VARCHAR",
        "transport": "VARCHAR",
        "method": "VARCHAR",
        "batch_size": "INTEGER",
        "t_intended": "BIGINT",
        "t_sent": "BIGINT",
        "t_done": "BIGINT",
        "outcome": "VARCHAR",
        "http_status": "INTEGER",
        "rpc_code": "INTEGER",
        "error": "VARCHAR",
        "bytes_out": "INTEGER",
        "bytes_in": "INTEGER",
        "result_block": "BIGINT",
        "block_tag": "VARCHAR",
    },
    "upstream": {
        "provider": "VARCHAR",
        "proxy": "VARCHAR",
        "flow_id": "VARCHAR",
        "conn_id": "VARCHAR",
        "transport": "VARCHAR",
        "method": "VARCHAR",
        "batch_size": "INTEGER",
        "rpc_id": "VARCHAR",
        "tag": "VARCHAR",
        "t_request": "BIGINT",
        "t_upstream_sent": "BIGINT",
        "t_upstream_done": "BIGINT",
        "t_response": "BIGINT",
        "fault_id": "VARCHAR",
        "fault_kind": "VARCHAR",
        "injected_delay": "BIGINT",
        "outcome": "VARCHAR",
        "http_status": "INTEGER",
        "rpc_code": "INTEGER",
        "bytes_in": "INTEGER",
        "bytes_out": "INTEGER",
        # Every fault window that acted on the exchange, comma-separated (fault_id is
        # the deciding one: the outcome or modifier, else the first delay).
        "fault_ids": "VARCHAR",
    },
    # One row per transition of a fault; analysis pivots them into chaos_events.
    "fault_events": {
        "fault_id": "VARCHAR",
        "provider": "VARCHAR",
        "kind": "VARCHAR",
        "params": "VARCHAR",
        "planned_start": "BIGINT",
        "planned_end": "BIGINT",
        "event": "VARCHAR",
        "t": "BIGINT",
        # The fault's match object as JSON (null: every exchange), e.g. its
        # probability and whether drawn per request or per connection.
        "match": "VARCHAR",
        # The fault as specified; fault_id is its window ("<spec_id>#<i>" when its
        # schedule cuts it into several windows).
        "spec_id": "VARCHAR",
    },
    "lifecycle": {
        "t": "BIGINT",
        "process": "VARCHAR",
        "role": "VARCHAR",
        "pid": "INTEGER",
        "event": "VARCHAR",
        "detail": "VARCHAR",
    },
    "ws_notifications": {
        "worker": "INTEGER",
        "connection": "VARCHAR",
        "subscription": "VARCHAR",
        "kind": "VARCHAR",
        "block_number": "BIGINT",
        "block_hash": "VARCHAR",
        "parent_hash": "VARCHAR",
        "log_index": "INTEGER",
        "t_received": "BIGINT",
        "t_produced": "BIGINT",
    },
    "ws_sessions": {
        "worker": "INTEGER",
        "connection": "VARCHAR",
        "event": "VARCHAR",
        "t": "BIGINT",
        "reason": "VARCHAR",
        "close_code": "INTEGER",
        # The subscription id the session holds (after `subscribe`), to join with
        # ws_notifications.
        "subscription": "VARCHAR",
    },
    "upstream_ws": {
        "provider": "VARCHAR",
        "proxy": "VARCHAR",
        "conn_id": "VARCHAR",
        "subscription": "VARCHAR",
        "action": "VARCHAR",
        "fault_id": "VARCHAR",
        "block_number": "BIGINT",
        "t": "BIGINT",
        "flow_id": "VARCHAR",
        # ws_delay: how long the notification was held; ws close: the code sent (null
        # for an abnormal close).
        "delay_ns": "BIGINT",
        "close_code": "INTEGER",
    },
    # Chaos proxy self-report, one row per proxy process per second: the largest
    # event-loop lag seen in the second (a 10 ms ticker's lateness), exchanges in
    # flight at the end of the second, open client connections, exchanges started in
    # the second, and the process's CPU use in the second (1.0 = one core busy).
    "proxy_health": {
        "t": "BIGINT",
        "proxy": "VARCHAR",
        "loop_lag_ns": "BIGINT",
        "in_flight": "INTEGER",
        "connections": "INTEGER",
        "exchanges": "INTEGER",
        "cpu": "DOUBLE",
    },
    "system": {
        "t": "BIGINT",
        "pid": "INTEGER",
        "role": "VARCHAR",
        "cpu": "DOUBLE",
        "rss": "BIGINT",
        "fds": "INTEGER",
        "threads": "INTEGER",
    },
    "metrics": {
        "t": "BIGINT",
        "name": "VARCHAR",
        "labels": "VARCHAR",
        "value": "DOUBLE",
    },
    # The runner's host-jitter probe (scenarios/jitter.py): a thread sleeping
    # interval_ns in a loop; per wall-clock second ending at t, how much longer than
    # asked its sleeps took (host preemption, not the router).
    "host_jitter": {
        "t": "BIGINT",
        "interval_ns": "BIGINT",
        "samples": "INTEGER",
        "oversleep_p50_ns": "BIGINT",
        "oversleep_p99_ns": "BIGINT",
        "oversleep_max_ns": "BIGINT",
    },
}


def shard_path(directory: Path, table: str, producer: str) -> Path:
    """Where `producer` writes its shard of `table` inside `directory`."""
    if table not in SCHEMAS:
        raise ValueError(f"table must be one of {sorted(SCHEMAS)}, got {table!r}")
    if not producer or any(c in producer for c in "/. "):
        raise ValueError(
            f"producer must be a non-empty name without '/', '.' or ' ', got {producer!r}"
        )
    return directory / f"{table}.{producer}.csv"


# Rows encoded per call into the csv module (see ShardWriter._write_lines).
ENCODE_SLICE = 32


class ShardWriter:
    """Appends rows of one table to one shard file, flushing in batches off-thread.

    `append` is the hot path: it only appends a tuple to a list. A daemon thread writes
    what has accumulated every `flush_interval` seconds; `close` writes the rest.
    Rows are tuples in the column order of `SCHEMAS[table]`; `None` is written as an
    empty field, which ingest reads as NULL.
    """

    def __init__(self, path: Path, table: str, *, flush_interval: float = 0.5) -> None:
        if table not in SCHEMAS:
            raise ValueError(f"table must be one of {sorted(SCHEMAS)}, got {table!r}")
        if not 0 < flush_interval <= 1.0:
            # DESIGN.md: batches at most 1 s apart.
            raise ValueError(f"flush_interval must be in (0, 1], got {flush_interval}")
        self.path = Path(path)
        self.table = table
        self._width = len(SCHEMAS[table])
        self._rows: list[tuple] = []
        self._interval = flush_interval
        self._stop = threading.Event()
        self._write_lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        if os.fstat(self._fd).st_size == 0:
            self._write_lines([tuple(SCHEMAS[table])])
        self._thread = threading.Thread(
            target=self._run, name=f"shard-{self.path.name}", daemon=True
        )
        self._thread.start()

    def append(self, row: tuple) -> None:
        if len(row) != self._width:
            raise ValueError(
                f"{self.table} rows have {self._width} columns, got {len(row)}: {row!r}"
            )
        self._rows.append(row)

    def flush(self) -> None:
        """Writes every row appended so far."""
        # Swapping the list is atomic under the GIL, so `append` never needs a lock.
        rows, self._rows = self._rows, []
        if rows:
            self._write_lines(rows)

    def close(self) -> None:
        """Stops the flushing thread, writes the remaining rows and closes the file."""
        if self._fd < 0:
            return
        self._stop.set()
        self._thread.join()
        self.flush()
        os.close(self._fd)
        self._fd = -1

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.flush()

    def _write_lines(self, rows: Sequence[tuple]) -> None:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        # csv encodes in C without releasing the GIL (about 2.5 µs a row): in slices, the
        # producer's event loop can take the GIL back between them (at its switch
        # interval) instead of waiting for a whole batch, which at 20,000 rows/s and 20 ms
        # batches would stall it for 1 ms.
        for i in range(0, len(rows), ENCODE_SLICE):
            writer.writerows(rows[i : i + ENCODE_SLICE])
        data = buf.getvalue().encode()
        with self._write_lock:
            # One write per batch: a kill can only cut the batch's tail.
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]


def readable_prefix(path: Path) -> int:
    """The length in bytes of the part of a shard made of whole lines.

    A producer killed during a write may leave a partial last line; everything before
    the last newline is intact because each batch is appended whole.
    """
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "rb") as f:
        block = 1 << 16
        end = size
        while end > 0:
            start = max(0, end - block)
            f.seek(start)
            chunk = f.read(end - start)
            i = chunk.rfind(b"\n")
            if i >= 0:
                return start + i + 1
            end = start
    return 0
