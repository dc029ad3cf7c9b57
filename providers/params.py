"""JSON-RPC parameter parsing with geth's error messages, and log filters (pure).

Messages follow geth's ``common/hexutil`` and ``encoding/json`` wording (``invalid
argument N: ...``) so a router sees the shapes a real node sends.
"""

from __future__ import annotations

import re
from typing import Any

from providers.errors import ErrorShape

__all__ = ["InvalidParams", "RpcError"]

_HEX_BODY = re.compile(r"[0-9a-fA-F]*")
_MAX_INT64 = (1 << 63) - 1


class RpcError(Exception):
    """A JSON-RPC error object to send back; ``code``, ``message``, ``data`` as on the wire."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    @classmethod
    def of(cls, shape: ErrorShape) -> RpcError:
        return cls(shape.code, shape.message, shape.data)


class InvalidParams(RpcError):
    """-32602: the parameters of a known method do not parse."""

    def __init__(self, message: str) -> None:
        super().__init__(-32602, message)


def _go_kind(value: Any) -> str:
    """The JSON kind as Go's encoding/json names it in "cannot unmarshal X" errors."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _parse_address(value: Any, index: int) -> str:
    """A 20-byte hex address, with geth's hexutil errors for anything else."""
    go_type = "common.Address"
    if not isinstance(value, str):
        raise InvalidParams(
            f"invalid argument {index}: json: cannot unmarshal non-string into Go value "
            f"of type {go_type}"
        )
    if not value.startswith(("0x", "0X")):
        raise InvalidParams(
            f"invalid argument {index}: json: cannot unmarshal hex string without 0x prefix "
            f"into Go value of type {go_type}"
        )
    body = value[2:]
    if len(body) % 2:
        raise InvalidParams(
            f"invalid argument {index}: json: cannot unmarshal hex string of odd length "
            f"into Go value of type {go_type}"
        )
    if not _HEX_BODY.fullmatch(body):
        raise InvalidParams(
            f"invalid argument {index}: json: cannot unmarshal invalid hex string "
            f"into Go value of type {go_type}"
        )
    if len(body) != 40:
        raise InvalidParams(
            f"invalid argument {index}: hex string has length {len(body)}, want 40 for {go_type}"
        )
    return "0x" + body.lower()


def _parse_uint64(text: str) -> int:
    """geth's ``hexutil.DecodeUint64``; raises ValueError with its message."""
    if not text.startswith(("0x", "0X")):
        raise ValueError("hex string without 0x prefix")
    digits = text[2:]
    if not digits:
        raise ValueError('hex string "0x"')
    if len(digits) > 1 and digits[0] == "0":
        raise ValueError("hex number with leading zero digits")
    if not _HEX_BODY.fullmatch(digits):
        raise ValueError("invalid hex string")
    if len(digits) > 16:
        raise ValueError("hex number > 64 bits")
    return int(digits, 16)


def _parse_hash(value: Any, index: int) -> str:
    """A 32-byte hex hash, geth's common.Hash errors otherwise."""
    if not isinstance(value, str):
        raise InvalidParams(
            f"invalid argument {index}: json: cannot unmarshal non-string into Go value "
            "of type common.Hash"
        )
    body = value[2:] if value.startswith(("0x", "0X")) else None
    if body is None or not _HEX_BODY.fullmatch(body):
        raise InvalidParams(
            f"invalid argument {index}: json: cannot unmarshal invalid hex string "
            "into Go value of type common.Hash"
        )
    if len(body) != 64:
        raise InvalidParams(
            f"invalid argument {index}: hex string has length {len(body)}, want 64 for common.Hash"
        )
    return "0x" + body.lower()


def _parse_data(value: Any, where: str) -> str:
    if value is None:
        return "0x"
    if not isinstance(value, str) or not value.startswith(("0x", "0X")):
        raise InvalidParams(f"{where}: json: cannot unmarshal hex string without 0x prefix")
    if len(value) % 2 or not _HEX_BODY.fullmatch(value[2:]):
        raise InvalidParams(f"{where}: json: cannot unmarshal invalid hex string")
    return value.lower()


# ------------------------------------------------------------------ log filters


def _log_addresses(value: Any) -> frozenset[str] | None:
    if value is None:
        return None
    values = value if isinstance(value, list) else [value]
    return frozenset(_parse_address(v, 0) for v in values) or None


def _log_topics(value: Any) -> list[frozenset[str] | None]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidParams("invalid argument 0: topics must be an array")
    if len(value) > 4:
        raise InvalidParams("invalid argument 0: too many topics")
    out: list[frozenset[str] | None] = []
    for t in value:
        if t is None:
            out.append(None)
        elif isinstance(t, list):
            out.append(frozenset(_parse_hash(x, 0) for x in t if x is not None) or None)
        else:
            out.append(frozenset({_parse_hash(t, 0)}))
    return out


def _log_matches(
    log: dict[str, Any], addresses: frozenset[str] | None, topics: list[frozenset[str] | None]
) -> bool:
    if addresses is not None and log["address"] not in addresses:
        return False
    have = log["topics"]
    for i, wanted in enumerate(topics):
        if wanted is None:
            continue
        if i >= len(have) or have[i] not in wanted:
            return False
    return True
