"""Literal rows for the analysis tests: a tiny run directory built from tuples.

Times are nanoseconds after `T0`; helpers take milliseconds or seconds for readability.
"""

from __future__ import annotations

import json
from pathlib import Path

from analysis.shards import SCHEMAS, ShardWriter, shard_path

T0 = 1_700_000_000_000_000_000
MS = 1_000_000
S = 1_000_000_000
FOLDERS = {
    "requests": "client",
    "ws_notifications": "client",
    "ws_sessions": "client",
    "upstream": "upstream",
    "upstream_ws": "upstream",
    "fault_events": "events",
    "lifecycle": "events",
    "system": "system",
    "metrics": "system",
}


def req(
    seq: int,
    at_ms: float,
    *,
    outcome: str = "ok",
    latency_ms: float = 10,
    send_delay_ms: float = 0,
    method: str = "eth_blockNumber",
    transport: str = "http",
    worker: int = 0,
    result_block: int | None = None,
    block_tag: str | None = None,
) -> dict:
    """A client call; an eth_blockNumber answer with a block answers for `latest`."""
    t = T0 + int(at_ms * MS)
    if block_tag is None and method == "eth_blockNumber" and result_block is not None:
        block_tag = "latest"
    return {
        "worker": worker,
        "seq": seq,
        "tag": f"bt-{worker}-{seq}",
        "transport": transport,
        "method": method,
        "batch_size": 1,
        "t_intended": t,
        "t_sent": t + int(send_delay_ms * MS),
        "t_done": t + int(latency_ms * MS),
        "outcome": outcome,
        "http_status": 200,
        "result_block": result_block,
        "block_tag": block_tag,
    }


def up(
    seq: int | None,
    provider: str,
    at_ms: float,
    *,
    outcome: str = "ok",
    took_ms: float = 1,
    fault: str | None = None,
    method: str = "eth_blockNumber",
    worker: int = 0,
    flow: str | None = None,
) -> dict:
    t = T0 + int(at_ms * MS)
    tag = None if seq is None else f"bt-{worker}-{seq}"
    return {
        "provider": provider,
        "proxy": "p0",
        "flow_id": flow or f"f-{seq}-{provider}-{at_ms}",
        "conn_id": "c1",
        "transport": "http",
        "method": method,
        "batch_size": 1,
        "rpc_id": tag,
        "tag": tag,
        "t_request": t,
        "t_upstream_sent": t,
        "t_upstream_done": t + int(took_ms * MS),
        "t_response": t + int(took_ms * MS),
        "fault_id": fault,
        "fault_kind": "reset" if fault else None,
        "outcome": outcome,
    }


def fault(fault_id: str, provider: str, start_s: float, end_s: float, *, applied=True) -> list:
    planned_start, planned_end = T0 + int(start_s * S), T0 + int(end_s * S)
    base = {
        "fault_id": fault_id,
        "provider": provider,
        "kind": "reset",
        "params": "{}",
        "planned_start": planned_start,
        "planned_end": planned_end,
    }
    if not applied:
        return []
    return [
        {**base, "event": "start", "t": planned_start + MS},
        {**base, "event": "end", "t": planned_end + MS},
    ]


def stopped(worker: int, planned: int, not_sent: int = 0, late_sends: int = 0) -> dict:
    detail = {"planned": planned, "not_sent": not_sent, "late_sends": late_sends}
    return {
        "t": T0,
        "process": f"loadgen-w{worker}",
        "role": "loadgen",
        "pid": 100 + worker,
        "event": "stopped",
        "detail": json.dumps(detail),
    }


def make_run(
    root: Path,
    tables: dict[str, list[dict]],
    *,
    scenario: dict | None = None,
    name: str = "run",
) -> Path:
    """Writes each table's rows (dicts; missing columns are NULL) as a shard, and a
    scenario.json with t0 at T0 unless `scenario` says otherwise."""
    run = root / name
    run.mkdir(parents=True)
    spec = {"name": "unit", "t0_ns": T0, **(scenario or {})}
    (run / "scenario.json").write_text(json.dumps(spec))
    for table, rows in tables.items():
        columns = list(SCHEMAS[table])
        unknown = {k for row in rows for k in row} - set(columns)
        assert not unknown, f"{table} has no columns {unknown}"
        path = shard_path(run / FOLDERS[table], table, "t0")
        with ShardWriter(path, table) as w:
            for row in rows:
                w.append(tuple(row.get(c) for c in columns))
    return run
