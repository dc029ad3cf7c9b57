"""What the recorder needs to know about one exchange, from bytes. Pure: no I/O.

`parse_request` reads the JSON-RPC request once; `extract_tag` finds the client's
correlation tag; `classify_response` and `classify_error` map an exchange onto the
`outcome` vocabulary of the `upstream` table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "TAG_HEADER",
    "TAG_PREFIX",
    "Outcome",
    "RequestInfo",
    "classify_error",
    "classify_response",
    "extract_tag",
    "parse_request",
    "rpc_id_text",
]

TAG_HEADER = "X-Battle-Tag"
TAG_PREFIX = "bt-"

Outcome = Literal["ok", "rpc_error", "http_error", "reset", "conn_error", "timeout"]


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """The JSON-RPC facts of a request body. For a batch, `method` and `rpc_id` are the
    first element's; `ids` holds every element's id (for echoing them in errors)."""

    method: str | None = None
    batch_size: int = 1
    rpc_id: Any = None
    ids: tuple[Any, ...] = ()
    is_batch: bool = False
    # Every element's method (one entry for a single request).
    methods: tuple[str | None, ...] = (None,)


_UNPARSED = RequestInfo()


def parse_request(body: bytes) -> RequestInfo:
    """Reads method, batch size and id(s) from a JSON-RPC request body.

    Never raises: a body that is not JSON-RPC yields a `RequestInfo` of Nones.
    """
    if not body:
        return _UNPARSED
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return _UNPARSED
    if isinstance(doc, dict):
        method = doc.get("method")
        rpc_id = doc.get("id")
        method = method if isinstance(method, str) else None
        return RequestInfo(method, 1, rpc_id, (rpc_id,), False, (method,))
    if isinstance(doc, list):
        ids = tuple(e.get("id") if isinstance(e, dict) else None for e in doc)
        methods = tuple(
            m if isinstance(m := (e.get("method") if isinstance(e, dict) else None), str) else None
            for e in doc
        )
        first = doc[0] if doc and isinstance(doc[0], dict) else {}
        return RequestInfo(
            methods[0] if methods else None,
            len(doc),
            first.get("id"),
            ids,
            True,
            methods,
        )
    return _UNPARSED


def rpc_id_text(rpc_id: Any) -> str | None:
    """The id as recorded in `upstream.rpc_id`: strings as is, numbers as digits."""
    if rpc_id is None:
        return None
    if isinstance(rpc_id, str):
        return rpc_id
    return json.dumps(rpc_id, separators=(",", ":"))


def extract_tag(header_value: str | None, info: RequestInfo) -> str | None:
    """The client's correlation tag: the `X-Battle-Tag` header, else a string JSON-RPC id
    starting with ``bt-`` (for a batch, the first element's)."""
    if header_value:
        return header_value
    rpc_id = info.rpc_id
    if isinstance(rpc_id, str) and rpc_id.startswith(TAG_PREFIX):
        return rpc_id
    return None


def _first_error_code(doc: Any) -> tuple[bool, int | None]:
    """(has an error object, its code) for a response object or batch."""
    items = doc if isinstance(doc, list) else (doc,)
    for item in items:
        if isinstance(item, dict) and item.get("error") is not None:
            err = item["error"]
            code = err.get("code") if isinstance(err, dict) else None
            if isinstance(code, bool) or not isinstance(code, int):
                code = None
            return True, code
    return False, None


def classify_response(status: int, body: bytes) -> tuple[Outcome, int | None]:
    """Maps an HTTP response onto (outcome, rpc_code).

    ``http_error`` for status >= 400; ``rpc_error`` for a JSON-RPC error object in a
    non-error response (in a batch: any element); else ``ok``. rpc_code is the first
    error code found, also under an HTTP error. The body is parsed only when it
    contains ``"error"``, which keeps the common success path to one substring scan.
    """
    code: int | None = None
    has_error = False
    if b'"error"' in body:
        try:
            has_error, code = _first_error_code(json.loads(body))
        except (ValueError, UnicodeDecodeError):
            pass
    if status >= 400:
        return "http_error", code
    if has_error:
        return "rpc_error", code
    return "ok", None


def classify_error(message: str, *, killed_by_fault: bool, upstream_connected: bool) -> Outcome:
    """Maps an exchange that ended without a response onto an outcome.

    Args:
        message: mitmproxy's `flow.error.msg`.
        killed_by_fault: a `reset` fault killed the flow.
        upstream_connected: a connection to the upstream was established.
    """
    if killed_by_fault:
        return "reset"
    lowered = message.lower()
    if "timed out" in lowered or "timeout" in lowered:
        return "timeout"
    if not upstream_connected:
        return "conn_error"
    return "reset"
