"""The proxy's shard files in the run directory."""

from __future__ import annotations

import os
import time
from pathlib import Path

from analysis.shards import ShardWriter, shard_path

__all__ = ["Shards"]


class Shards:
    """The three shards one proxy process writes:

    ``upstream/upstream.<id>.csv``, ``events/fault_events.<id>.csv``,
    ``events/lifecycle.<id>.csv``.
    """

    def __init__(self, run_dir: Path, proxy_id: str) -> None:
        self.proxy_id = proxy_id
        self.upstream = ShardWriter(
            shard_path(run_dir / "upstream", "upstream", proxy_id), "upstream"
        )
        try:
            self.fault_events = ShardWriter(
                shard_path(run_dir / "events", "fault_events", proxy_id), "fault_events"
            )
            self.lifecycle = ShardWriter(
                shard_path(run_dir / "events", "lifecycle", proxy_id), "lifecycle"
            )
        except BaseException:
            self.upstream.close()
            if hasattr(self, "fault_events"):
                self.fault_events.close()
            raise

    def lifecycle_event(self, event: str, detail: str | None = None) -> None:
        self.lifecycle.append((time.time_ns(), self.proxy_id, "proxy", os.getpid(), event, detail))

    def close(self) -> None:
        """Writes every pending row and closes the files; safe to call twice."""
        for writer in (self.upstream, self.fault_events, self.lifecycle):
            writer.close()
