"""Judging one JSON-RPC answer: ok, rpc_error, http_error or invalid. Pure, no I/O.

A 200 carrying a JSON-RPC error is an error, and a 200 carrying a wrong answer (wrong
id, missing or malformed result) is `invalid`, never a success.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

__all__ = ["Judgement", "judge"]

_QUANTITY = re.compile(r"0x(0|[1-9a-f][0-9a-f]*)\Z")
_HASH = re.compile(r"0x[0-9a-f]{64}\Z")


@dataclass(frozen=True, slots=True)
class Judgement:
    outcome: str
    rpc_code: int | None = None
    error: str | None = None
    result_block: int | None = None


def _quantity(result: object) -> str | None:
    if isinstance(result, str) and _QUANTITY.match(result):
        return None
    return f"result must be a hex quantity, got {result!r:.80}"


def _block(result: object) -> str | None:
    if result is None:
        return None  # a node answers null for a block it does not have yet
    if not isinstance(result, dict):
        return f"result must be a block object or null, got {type(result).__name__}"
    if _quantity(result.get("number")) or not _HASH.match(str(result.get("hash"))):
        return "block must carry a hex number and a 32-byte hash"
    return None


# The shape each method's result must have.
_SHAPES = {
    "eth_blockNumber": _quantity,
    "eth_chainId": _quantity,
    "eth_getBalance": _quantity,
    "eth_getBlockByNumber": _block,
}


def _implied_block(method: str, result: object) -> int | None:
    if method == "eth_blockNumber":
        return int(result, 16)  # type: ignore[arg-type]
    if method == "eth_getBlockByNumber" and isinstance(result, dict):
        return int(result["number"], 16)
    return None


def judge(method: str, expected_id: object, status: int, body: bytes) -> Judgement:
    """Classifies the answer to one call of `method` sent with id `expected_id`."""
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    error = doc.get("error") if isinstance(doc, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    code = code if isinstance(code, int) else None
    if status != 200:
        message = error.get("message") if isinstance(error, dict) else None
        return Judgement("http_error", code, f"HTTP {status}" + (f": {message}" if message else ""))
    if not isinstance(doc, dict):
        return Judgement("invalid", None, "body is not a JSON-RPC response object")
    if doc.get("id") != expected_id:
        return Judgement("invalid", code, f"id must be {expected_id!r}, got {doc.get('id')!r}")
    if error is not None:
        message = error.get("message") if isinstance(error, dict) else error
        return Judgement("rpc_error", code, str(message)[:200])
    if "result" not in doc:
        return Judgement("invalid", None, "response has neither result nor error")
    result = doc["result"]
    shape = _SHAPES.get(method)
    problem = shape(result) if shape else None
    if problem:
        return Judgement("invalid", None, problem)
    return Judgement("ok", result_block=_implied_block(method, result))
