"""JSON-RPC 2.0 on the wire, shared by the mock's HTTP dispatch (`jsonrpc`) and its
WebSocket sessions (`subscriptions`): the reply a transport sends, compact JSON, error
objects and the id rule. Pure."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from providers.errors import ErrorShape

__all__ = ["Reply", "dumps", "error", "error_obj", "valid_id"]

dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True).encode


@dataclass
class Reply:
    """What the transport sends for one request: status, body, extra headers, and when.

    ``delay_ns`` is the behaviour's latency; the driver holds the response that long.
    An empty ``body`` with status 200 means nothing to answer (only notifications).
    """

    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)
    delay_ns: int = 0


def error_obj(rid: Any, shape: ErrorShape) -> dict[str, Any]:
    """The error answer to request `rid` in `shape`."""
    return {"jsonrpc": "2.0", "id": rid, "error": shape.error_object()}


def error(rid: Any, code: int, message: str) -> dict[str, Any]:
    """The error answer to request `rid` with `code` and `message`."""
    return {"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message}}


def valid_id(rid: Any) -> bool:
    """JSON-RPC ids are strings, numbers or null (bool is not a number here)."""
    return rid is None or (isinstance(rid, str | int | float) and not isinstance(rid, bool))
