"""The proxy's shard files in the run directory."""

from __future__ import annotations

import os
import time
from pathlib import Path

from analysis.shards import ShardWriter, shard_path

__all__ = ["Shards"]


class Shards:
    """The shards one proxy process writes:

    ``upstream/upstream.<id>.csv``, ``upstream/upstream_ws.<id>.csv``,
    ``events/fault_events.<id>.csv``, ``events/lifecycle.<id>.csv``,
    ``events/proxy_health.<id>.csv``.
    """

    TABLES = (
        ("upstream", "upstream"),
        ("upstream", "upstream_ws"),
        ("events", "fault_events"),
        ("events", "lifecycle"),
        ("events", "proxy_health"),
    )

    def __init__(self, run_dir: Path, proxy_id: str) -> None:
        self.proxy_id = proxy_id
        self.run_dir = Path(run_dir)
        opened: list[ShardWriter] = []
        try:
            for folder, table in self.TABLES:
                w = ShardWriter(shard_path(self.run_dir / folder, table, proxy_id), table)
                opened.append(w)
                setattr(self, table, w)
        except BaseException:
            for w in opened:
                w.close()
            raise
        self._writers = opened

    upstream: ShardWriter
    upstream_ws: ShardWriter
    fault_events: ShardWriter
    lifecycle: ShardWriter
    proxy_health: ShardWriter

    def lifecycle_event(self, event: str, detail: str | None = None) -> None:
        self.lifecycle.append((time.time_ns(), self.proxy_id, "proxy", os.getpid(), event, detail))

    def close(self) -> None:
        """Writes every pending row and closes the files; safe to call twice."""
        for writer in self._writers:
            writer.close()
