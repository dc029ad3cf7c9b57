"""Error shapes real providers send, copied from the shared catalogue.

``PRESETS`` holds the few entries of ``provider-errors.json`` (see its
``provider-errors.md``) the mock's native behaviours use, verbatim: id, JSON-RPC code,
message, data and HTTP status. ``tests/unit/test_providers_errors.py`` checks each one
against the catalogue when the catalogue is present.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["PRESETS", "ErrorShape"]


@dataclass(frozen=True)
class ErrorShape:
    """A JSON-RPC error object, and the HTTP status it travels with (200: in the body)."""

    code: int
    message: str
    data: Any = None
    http_status: int = 200

    def error_object(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            err["data"] = self.data
        return err


_INFURA_RATE_DATA = {
    "rate": {"allowed_rps": 50, "backoff_seconds": 0, "current_rps": 52.3},
    "see": "https://infura.io/docs/ethereum/json-rpc/ratelimits",
}
_MISSING_TRIE_NODE = (
    "missing trie node c6ebfa185e24077a555f06caaf4b78d9e0ae9dcb7a693ec753e856f49f55c85c "
    "(path ) state 0xc6ebfa185e24077a555f06caaf4b78d9e0ae9dcb7a693ec753e856f49f55c85c "
    "is not available, not found"
)
_ALCHEMY_CUPS = (
    "Your app has exceeded its compute units per second capacity. If you have retries "
    "enabled, you can safely ignore this message. If not, check out "
    "https://docs.alchemy.com/reference/throughput"
)

#: Catalogue id -> shape. Sources are in provider-errors.json.
PRESETS: dict[str, ErrorShape] = {
    "geth_header_not_found": ErrorShape(-32000, "header not found"),
    "geth_missing_trie_node": ErrorShape(-32000, _MISSING_TRIE_NODE),
    "geth_request_timed_out": ErrorShape(-32002, "request timed out"),
    "geth_pruned_history": ErrorShape(4444, "pruned history unavailable"),
    "geth_subscribe_over_http": ErrorShape(-32601, "notifications not supported"),
    "infura_project_rate_exceeded": ErrorShape(
        -32005, "project ID request rate exceeded", _INFURA_RATE_DATA, 429
    ),
    "infura_getlogs_range_limit": ErrorShape(-32602, "range 1000000 exceeds limit of 10000"),
    "alchemy_cups_exceeded": ErrorShape(429, _ALCHEMY_CUPS, None, 429),
    "proxyd_over_rate_limit": ErrorShape(-32016, "over rate limit", None, 429),
    "reth_too_many_subscriptions": ErrorShape(
        -32006, "Too many subscriptions on the connection", "Exceeded max limit of 1024"
    ),
}
