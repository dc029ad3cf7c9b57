"""JSON-RPC 2.0 dispatch for the mock provider: request body bytes in, response bytes out.

No I/O: :class:`MockNode` reads the time only through the clock it is given, so tests
pass a fake one. Error codes and messages follow geth (``rpc/errors.go``,
``rpc/handler.go``, ``common/hexutil``) so a router sees the shapes a real node sends:

=======  ==============================================================================
code     when
=======  ==============================================================================
-32700   the body is not JSON (response id null)
-32600   not a request object, bad id type, empty batch ("empty batch"), batch too large
-32601   "the method X does not exist/is not available"
-32602   "invalid argument N: ...", "missing value for required argument N",
         "too many arguments, want at most N", "non-array args"
-32000   "header not found" (state asked for a block the chain has not produced yet)
=======  ==============================================================================
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

from providers.chain import Chain

__all__ = [
    "BATCH_LIMIT",
    "FINALIZED_DEPTH",
    "SAFE_DEPTH",
    "InvalidParams",
    "MockNode",
    "RpcError",
]

#: geth's default ``--rpc.batch-request-limit``.
BATCH_LIMIT = 1000
#: "safe" and "finalized" trail the head by about one and two epochs of 32 slots on mainnet.
SAFE_DEPTH = 32
FINALIZED_DEPTH = 64

_CLIENT_VERSION = "battle-mock/v0.1.0"
_TIP_WEI = 100_000_000  # 0.1 gwei, matches Chain's transactions

_HEX_BODY = re.compile(r"[0-9a-fA-F]*")
_BLOCK_TAGS = frozenset({"latest", "earliest", "pending", "safe", "finalized"})
_MAX_INT64 = (1 << 63) - 1

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True).encode
_MISSING = object()


class RpcError(Exception):
    """A JSON-RPC error object to send back; ``code`` and ``message`` as on the wire."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class InvalidParams(RpcError):
    """-32602: the parameters of a known method do not parse."""

    def __init__(self, message: str) -> None:
        super().__init__(-32602, message)


# ------------------------------------------------------------------ parameter parsing


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


class MockNode:
    """A deterministic Ethereum node answering JSON-RPC from a :class:`Chain`.

    Args:
        chain: the chain every provider of the run shares.
        clock: returns the current time in ns since the Unix epoch (default
            ``time.time_ns``); the head is ``chain.head(clock())``.
        name: provider name, shown in ``web3_clientVersion``.
        batch_limit: most calls in one batch, as geth's ``--rpc.batch-request-limit``
            (0 = no limit).
    """

    def __init__(
        self,
        chain: Chain,
        clock: Callable[[], int] = time.time_ns,
        *,
        name: str = "mock",
        batch_limit: int = BATCH_LIMIT,
    ) -> None:
        self.chain = chain
        self.clock = clock
        self.name = name
        self.batch_limit = batch_limit
        self._methods: dict[str, Callable[[list[Any], int], Any]] = {
            "eth_blockNumber": self._eth_block_number,
            "eth_chainId": self._eth_chain_id,
            "eth_gasPrice": self._eth_gas_price,
            "eth_getBalance": self._eth_get_balance,
            "eth_getBlockByNumber": self._eth_get_block_by_number,
            "eth_maxPriorityFeePerGas": self._eth_max_priority_fee,
            "eth_syncing": self._eth_syncing,
            "net_version": self._net_version,
            "web3_clientVersion": self._web3_client_version,
        }

    @property
    def methods(self) -> frozenset[str]:
        """The method names this node answers."""
        return frozenset(self._methods)

    # -------------------------------------------------------------- entry point

    def handle(self, body: bytes) -> bytes:
        """Answer one HTTP request body.

        Returns:
            The response body: a JSON object, a JSON array for a batch, or ``b""`` when
            every call was a notification (nothing to answer, as geth).
        """
        try:
            msg = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            # json.JSONDecodeError is a ValueError; e.g. "Expecting value"
            text = e.msg if isinstance(e, json.JSONDecodeError) else str(e)
            return _dumps(_error(None, -32700, f"parse error: {text}")).encode()
        head = self.chain.head(self.clock())
        if isinstance(msg, list):
            return self._handle_batch(msg, head)
        response = self._handle_one(msg, head)
        return b"" if response is None else _dumps(response).encode()

    def _handle_batch(self, msgs: list[Any], head: int) -> bytes:
        if not msgs:
            return _dumps(_error(None, -32600, "empty batch")).encode()
        if self.batch_limit and len(msgs) > self.batch_limit:
            # geth: a one-element array carrying the first call's id.
            first = msgs[0]
            rid = first.get("id") if isinstance(first, dict) else None
            if not _valid_id(rid):
                rid = None
            return _dumps([_error(rid, -32600, "batch too large")]).encode()
        out = []
        for m in msgs:
            r = self._handle_one(m, head)
            if r is not None:
                out.append(r)
        return _dumps(out).encode() if out else b""

    def _handle_one(self, msg: Any, head: int) -> dict[str, Any] | None:
        if not isinstance(msg, dict):
            return _error(None, -32600, "invalid request")
        rid = msg.get("id", _MISSING)
        method = msg.get("method")
        if not isinstance(method, str) or not method:
            return _error(rid if _valid_id(rid) else None, -32600, "invalid request")
        if rid is _MISSING:
            # A notification: run nothing observable, answer nothing.
            return None
        if not _valid_id(rid):
            return _error(None, -32600, "invalid request")
        fn = self._methods.get(method)
        if fn is None:
            return _error(rid, -32601, f"the method {method} does not exist/is not available")
        params = msg.get("params")
        if params is None:
            params = []
        elif not isinstance(params, list):
            return _error(rid, -32602, "non-array args")
        try:
            result = fn(params, head)
        except RpcError as e:
            return _error(rid, e.code, e.message)
        return {"jsonrpc": "2.0", "id": rid, "result": result}

    # -------------------------------------------------------------- parameter helpers

    @staticmethod
    def _arity(params: list[Any], required: int, most: int) -> None:
        if len(params) > most:
            raise InvalidParams(f"too many arguments, want at most {most}")
        if len(params) < required:
            raise InvalidParams(f"missing value for required argument {len(params)}")

    def _block_number(self, value: Any, index: int, head: int) -> int:
        """A block tag or hex number, resolved against ``head``."""
        if isinstance(value, dict):
            # BlockNumberOrHash in object form; only blockNumber is supported here.
            if "blockNumber" not in value:
                raise InvalidParams(
                    f"invalid argument {index}: block hashes are not supported by the mock"
                )
            value = value["blockNumber"]
        if not isinstance(value, str):
            raise InvalidParams(
                f"invalid argument {index}: json: cannot unmarshal {_go_kind(value)} "
                "into Go value of type string"
            )
        if value in _BLOCK_TAGS:
            if value == "earliest":
                return 0
            if value == "safe":
                return max(head - SAFE_DEPTH, 0)
            if value == "finalized":
                return max(head - FINALIZED_DEPTH, 0)
            return head  # latest, pending
        if len(value) == 66:
            raise InvalidParams(
                f"invalid argument {index}: block hashes are not supported by the mock"
            )
        try:
            n = _parse_uint64(value)
        except ValueError as e:
            raise InvalidParams(f"invalid argument {index}: {e}") from None
        if n > _MAX_INT64:
            raise InvalidParams(f"invalid argument {index}: block number larger than int64")
        return n

    # -------------------------------------------------------------- methods

    def _eth_block_number(self, params: list[Any], head: int) -> str:
        self._arity(params, 0, 0)
        return hex(head)

    def _eth_chain_id(self, params: list[Any], head: int) -> str:
        self._arity(params, 0, 0)
        return hex(self.chain.chain_id)

    def _net_version(self, params: list[Any], head: int) -> str:
        self._arity(params, 0, 0)
        return str(self.chain.chain_id)

    def _web3_client_version(self, params: list[Any], head: int) -> str:
        self._arity(params, 0, 0)
        return f"{_CLIENT_VERSION}/{self.name}"

    def _eth_syncing(self, params: list[Any], head: int) -> bool:
        self._arity(params, 0, 0)
        return False

    def _eth_gas_price(self, params: list[Any], head: int) -> str:
        self._arity(params, 0, 0)
        return hex(self.chain.base_fee(head) + _TIP_WEI)

    def _eth_max_priority_fee(self, params: list[Any], head: int) -> str:
        self._arity(params, 0, 0)
        return hex(_TIP_WEI)

    def _eth_get_block_by_number(self, params: list[Any], head: int) -> dict[str, Any] | None:
        self._arity(params, 2, 2)
        n = self._block_number(params[0], 0, head)
        full = params[1]
        if not isinstance(full, bool):
            raise InvalidParams(
                f"invalid argument 1: json: cannot unmarshal {_go_kind(full)} "
                "into Go value of type bool"
            )
        if n > head:
            return None  # geth answers null for a block it does not have
        return self.chain.block(n, full_txs=full)

    def _eth_get_balance(self, params: list[Any], head: int) -> str:
        self._arity(params, 2, 2)
        address = _parse_address(params[0], 0)
        n = self._block_number(params[1], 1, head)
        if n > head:
            raise RpcError(-32000, "header not found")
        return hex(self.chain.balance(address, n))


def _valid_id(rid: Any) -> bool:
    """JSON-RPC ids are strings, numbers or null (bool is not a number here)."""
    return rid is None or (isinstance(rid, str | int | float) and not isinstance(rid, bool))


def _error(rid: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message}}
