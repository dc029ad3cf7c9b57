"""Reading a live shard in a test: poll for the rows you expect, with a deadline,
instead of sleeping for "a flush" (a busy machine may flush later than any guess)."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["shard_rows", "wait_for_rows"]

Row = dict[str, str]


def shard_rows(path: Path) -> list[Row]:
    """The shard's rows, whole lines only (a writer may be mid-batch); [] before the
    file exists."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return []
    return list(csv.DictReader(io.StringIO(text[: text.rfind("\n") + 1])))


def wait_for_rows(
    path: Path,
    where: Callable[[Row], bool] = lambda row: True,
    *,
    count: int = 1,
    timeout: float = 15.0,
) -> list[Row]:
    """The rows of `path` for which `where` holds, once there are at least `count` of
    them; AssertionError after `timeout` seconds, showing what there was."""
    deadline = time.monotonic() + timeout
    while True:
        rows = [r for r in shard_rows(path) if where(r)]
        if len(rows) >= count:
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{path}: {len(rows)} matching rows after {timeout} s, not {count}: {rows}"
            )
        time.sleep(0.05)
