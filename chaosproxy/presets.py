"""Named fault presets: real provider failure responses, replayed verbatim.

`chaosproxy/presets.json` is generated from the shared catalogue
(`provider-errors.json`, described in its `provider-errors.md`) by

    python -m chaosproxy.presets /path/to/provider-errors.json

which copies every entry's replayable fields. A fault names one with
``"params": {"preset": "<id>"}``: ``http_error`` and ``rate_limit`` take ``http_error``
presets, ``rpc_error`` any preset with a JSON-RPC code, ``ws_disconnect`` the
``ws_close`` ones. Explicit params override the preset's fields.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["PRESETS_PATH", "Preset", "convert", "load_presets", "main"]

PRESETS_PATH = Path(__file__).with_name("presets.json")
# The fields a preset keeps from a catalogue entry (the rest is provenance).
KEPT = (
    "id",
    "provider",
    "failure_mode",
    "transport",
    "as",
    "http_status",
    "rpc_code",
    "message",
    "data",
    "headers",
    "ws_close_code",
    "source",
)


@dataclass(frozen=True, slots=True)
class Preset:
    id: str
    as_: str  # http_error | rpc_error_200 | ws_close
    transport: str
    http_status: int | None
    rpc_code: int | None
    message: str
    data: Any
    headers: tuple[tuple[str, str], ...]
    ws_close_code: int | None


def convert(catalogue: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The presets file's content from the catalogue's entries (pure)."""
    out = []
    for i, entry in enumerate(catalogue):
        missing = [k for k in KEPT if k not in entry]
        if missing:
            raise ValueError(f"catalogue[{i}] lacks {missing}")
        out.append({k: entry[k] for k in KEPT})
    ids = [e["id"] for e in out]
    if len(set(ids)) != len(ids):
        raise ValueError("catalogue ids are not unique")
    return out


@cache
def load_presets(path: Path = PRESETS_PATH) -> dict[str, Preset]:
    """The presets by id (read once per process)."""
    entries = json.loads(Path(path).read_text())
    return {
        e["id"]: Preset(
            id=e["id"],
            as_=e["as"],
            transport=e["transport"],
            http_status=e["http_status"],
            rpc_code=e["rpc_code"],
            message=e["message"],
            data=e["data"],
            headers=tuple((e["headers"] or {}).items()),
            ws_close_code=e["ws_close_code"],
        )
        for e in entries
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m chaosproxy.presets PROVIDER_ERRORS_JSON", file=sys.stderr)
        return 2
    entries = convert(json.loads(Path(args[0]).read_text()))
    PRESETS_PATH.write_text(json.dumps(entries, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(entries)} presets to {PRESETS_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
