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
-32000   "header not found" (state asked for a block the chain has not produced yet),
         geth's "missing trie node ..." (state older than the archive depth)
=======  ==============================================================================

Native behaviours (latency, injected errors, head lag, rate limits, unsupported methods,
archive depth, forks) come from a :class:`providers.behaviour.Behaviour`;
:meth:`MockNode.respond` returns the status, headers and delay the HTTP driver applies.
WebSocket subscriptions live in :class:`providers.subscriptions.WsSession`; parameter
parsing and log filters in :mod:`providers.params`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from providers.behaviour import Behaviour, BehaviourState
from providers.chain import Chain
from providers.errors import PRESETS, ErrorShape
from providers.params import (
    _MAX_INT64,
    InvalidParams,
    RpcError,
    _go_kind,
    _log_addresses,
    _log_matches,
    _log_topics,
    _parse_address,
    _parse_data,
    _parse_hash,
    _parse_uint64,
)
from providers.wire import Reply, dumps, error, error_obj, valid_id

if TYPE_CHECKING:
    from providers.subscriptions import WsSession

__all__ = [
    "BATCH_LIMIT",
    "FINALIZED_DEPTH",
    "MAX_FEE_HISTORY",
    "SAFE_DEPTH",
    "InvalidParams",
    "MockNode",
    "RpcError",
]

#: geth's default ``--rpc.batch-request-limit``.
BATCH_LIMIT = 1000
#: geth's cap on eth_feeHistory's blockCount (eth/gasprice: maxBlockFetchers * 256).
MAX_FEE_HISTORY = 1024
#: "safe" and "finalized" trail the head by about one and two epochs of 32 slots on mainnet.
SAFE_DEPTH = 32
FINALIZED_DEPTH = 64

_CLIENT_VERSION = "battle-mock/v0.1.0"
_TIP_WEI = 100_000_000  # 0.1 gwei, matches Chain's transactions

_BLOCK_TAGS = frozenset({"latest", "earliest", "pending", "safe", "finalized"})

_loads = json.JSONDecoder().decode
_MISSING = object()


class MockNode:
    """A deterministic Ethereum node answering JSON-RPC from a :class:`Chain`.

    Args:
        chain: the chain every provider of the run shares.
        clock: returns the current time in ns since the Unix epoch (default
            ``time.time_ns``); the head is ``chain.head(clock()) - head_lag``.
        name: provider name, shown in ``web3_clientVersion``.
        batch_limit: most calls in one batch, as geth's ``--rpc.batch-request-limit``
            (0 = no limit).
        behaviour: the provider's native behaviours (default: none, a perfect node).
    """

    def __init__(
        self,
        chain: Chain,
        clock: Callable[[], int] = time.time_ns,
        *,
        name: str = "mock",
        batch_limit: int = BATCH_LIMIT,
        behaviour: Behaviour | None = None,
    ) -> None:
        self.chain = chain
        self.clock = clock
        self.name = name
        self.batch_limit = batch_limit
        self.behaviour = behaviour or Behaviour()
        self.state = BehaviourState(self.behaviour)
        self._lag = self.behaviour.head_lag
        self._fork = self.behaviour.fork
        self._plain = self.behaviour == Behaviour(seed=self.behaviour.seed)
        self._sessions = 0
        # Set by an injected error that travels with a non-200 status; read once per reply.
        self._http_error: int | None = None
        self._methods: dict[str, Callable[[list[Any], int], Any]] = {
            "eth_blockNumber": self._eth_block_number,
            "eth_call": self._eth_call,
            "eth_chainId": self._eth_chain_id,
            "eth_estimateGas": self._eth_estimate_gas,
            "eth_feeHistory": self._eth_fee_history,
            "eth_gasPrice": self._eth_gas_price,
            "eth_getBalance": self._eth_get_balance,
            "eth_getBlockByHash": self._eth_get_block_by_hash,
            "eth_getBlockByNumber": self._eth_get_block_by_number,
            "eth_getCode": self._eth_get_code,
            "eth_getLogs": self._eth_get_logs,
            "eth_getTransactionByHash": self._eth_get_transaction_by_hash,
            "eth_getTransactionCount": self._eth_get_transaction_count,
            "eth_getTransactionReceipt": self._eth_get_transaction_receipt,
            "eth_maxPriorityFeePerGas": self._eth_max_priority_fee,
            "eth_syncing": self._eth_syncing,
            "net_version": self._net_version,
            "web3_clientVersion": self._web3_client_version,
        }
        for m in self.behaviour.unsupported:
            self._methods.pop(m, None)

    @property
    def methods(self) -> frozenset[str]:
        """The method names this node answers over HTTP (plus subscriptions over WS)."""
        return frozenset(self._methods)

    # -------------------------------------------------------------- the provider's view

    def head(self, now_ns: int | None = None) -> int:
        """The newest block this provider serves: the chain's head minus ``head_lag``."""
        now = self.clock() if now_ns is None else now_ns
        return max(self.chain.head(now) - self._lag, 0)

    def branch(self, n: int, head: int) -> int:
        """The branch block ``n`` is on as seen at ``head``: 1 inside a fork window, else 0."""
        fork = self._fork
        if fork is None:
            return 0
        window = fork.window(head)
        return 1 if window is not None and window[0] <= n <= head else 0

    def _fork_start(self, head: int) -> int | None:
        window = None if self._fork is None else self._fork.window(head)
        return None if window is None else window[0]

    def block(self, n: int, head: int, full: bool = False) -> dict[str, Any]:
        """Block ``n`` as this provider serves it at ``head`` (on its fork branch if any)."""
        return self.chain.block(n, full, self.branch(n, head), self._fork_start(head))

    # -------------------------------------------------------------- entry points

    def handle(self, body: bytes) -> bytes:
        """Answer one HTTP request body (behaviours applied, HTTP status dropped)."""
        return self.respond(body).body

    def respond(self, body: bytes, *, transport: str = "http") -> Reply:
        """Answer one HTTP request body, or one WebSocket text message (``transport="ws"``).

        Returns:
            A :class:`Reply`; its body is a JSON object, a JSON array for a batch, or
            ``b""`` when every call was a notification (nothing to answer, as geth).
        """
        try:
            # JSON-RPC bodies are UTF-8 (geth refuses anything else); decoding here skips
            # json.loads's encoding detection on the hot path.
            msg = _loads(body.decode())
        except (ValueError, UnicodeDecodeError) as e:
            # json.JSONDecodeError is a ValueError; e.g. "Expecting value"
            text = e.msg if isinstance(e, json.JSONDecodeError) else str(e)
            return Reply(200, dumps(error(None, -32700, f"parse error: {text}")).encode())
        now = self.clock()
        head = max(self.chain.head(now) - self._lag, 0)
        if self._plain:
            if isinstance(msg, list):
                return Reply(200, self._handle_batch(msg, head, None))
            response = self._handle_one(msg, head, None)
            return Reply(200, b"" if response is None else dumps(response).encode())
        state = self.state
        delay = state.delay_ns()
        override: ErrorShape | None = None
        rl = self.behaviour.rate_limit
        if not state.admit(now):
            assert rl is not None
            shape = PRESETS["infura_project_rate_exceeded"]
            if rl.mode == "http" and transport == "http":
                rid = msg.get("id") if isinstance(msg, dict) and valid_id(msg.get("id")) else None
                err = {"jsonrpc": "2.0", "id": rid, "error": shape.error_object()}
                headers = [("Retry-After", str(rl.retry_after_s))]
                return Reply(429, dumps(err).encode(), headers, delay)
            override = ErrorShape(shape.code, shape.message, shape.data)
        if isinstance(msg, list):
            out = self._handle_batch(msg, head, override, transport)
        else:
            response = self._handle_one(msg, head, override, transport)
            out = b"" if response is None else dumps(response).encode()
        if self._http_error is not None:
            status, self._http_error = self._http_error, None
            return Reply(status, out, [], delay)
        return Reply(200, out, [], delay)

    def _handle_batch(
        self, msgs: list[Any], head: int, override: ErrorShape | None, transport: str = "http"
    ) -> bytes:
        if not msgs:
            return dumps(error(None, -32600, "empty batch")).encode()
        if self.batch_limit and len(msgs) > self.batch_limit:
            # geth: a one-element array carrying the first call's id.
            first = msgs[0]
            rid = first.get("id") if isinstance(first, dict) else None
            if not valid_id(rid):
                rid = None
            return dumps([error(rid, -32600, "batch too large")]).encode()
        out = []
        for m in msgs:
            r = self._handle_one(m, head, override, transport)
            if r is not None:
                out.append(r)
        return dumps(out).encode() if out else b""

    def _handle_one(
        self, msg: Any, head: int, override: ErrorShape | None, transport: str = "http"
    ) -> dict[str, Any] | None:
        if not isinstance(msg, dict):
            return error(None, -32600, "invalid request")
        rid = msg.get("id", _MISSING)
        method = msg.get("method")
        if not isinstance(method, str) or not method:
            return error(rid if valid_id(rid) else None, -32600, "invalid request")
        if rid is _MISSING:
            # A notification: run nothing observable, answer nothing.
            return None
        if not valid_id(rid):
            return error(None, -32600, "invalid request")
        if override is not None:
            return error_obj(rid, override)
        fn = self._methods.get(method)
        if fn is None:
            if method in ("eth_subscribe", "eth_unsubscribe") and transport == "http":
                return error_obj(rid, PRESETS["geth_subscribe_over_http"])
            return error(rid, -32601, f"the method {method} does not exist/is not available")
        if not self._plain:
            injected = self.state.injected_error()
            if injected is not None:
                if injected.http_status != 200 and transport == "http":
                    self._http_error = injected.http_status
                return error_obj(rid, injected)
        params = msg.get("params")
        if params is None:
            params = []
        elif not isinstance(params, list):
            return error(rid, -32602, "non-array args")
        try:
            result = fn(params, head)
        except RpcError as e:
            return error_obj(rid, ErrorShape(e.code, e.message, e.data))
        return {"jsonrpc": "2.0", "id": rid, "result": result}

    # -------------------------------------------------------------- parameter helpers

    @staticmethod
    def _arity(params: list[Any], required: int, most: int) -> None:
        if len(params) > most:
            raise InvalidParams(f"too many arguments, want at most {most}")
        if len(params) < required:
            raise InvalidParams(f"missing value for required argument {len(params)}")

    def _block_number(self, value: Any, index: int, head: int) -> int:
        """A block tag, hex number, or ``{"blockNumber"|"blockHash": ...}``, resolved."""
        if isinstance(value, dict):
            if "blockHash" in value:
                h = _parse_hash(value["blockHash"], index)
                n = self._visible_hash(h, head)
                if n is None:
                    raise RpcError(-32000, "header for hash not found")
                return n
            if "blockNumber" not in value:
                raise InvalidParams(
                    f"invalid argument {index}: types BlockNumber and BlockHash both nil"
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
            h = _parse_hash(value, index)
            n = self._visible_hash(h, head)
            if n is None:
                raise RpcError(-32000, "header for hash not found")
            return n
        try:
            n = _parse_uint64(value)
        except ValueError as e:
            raise InvalidParams(f"invalid argument {index}: {e}") from None
        if n > _MAX_INT64:
            raise InvalidParams(f"invalid argument {index}: block number larger than int64")
        return n

    def _visible_hash(self, block_hash: str, head: int) -> int | None:
        """The number of ``block_hash`` if this provider serves that block at ``head``."""
        where = self.chain.locate_block(block_hash)
        if where is None:
            return None
        n, branch = where
        if n > head or self.branch(n, head) != branch:
            return None
        return n

    def _state_block(self, value: Any, index: int, head: int) -> int:
        """A block whose state is asked for: produced, and within the archive depth."""
        n = self._block_number(value, index, head)
        if n > head:
            raise RpcError(-32000, "header not found")
        depth = self.behaviour.archive_depth
        if depth is not None and n < head - depth:
            raise RpcError.of(PRESETS["geth_missing_trie_node"])
        return n

    def _call_object(self, value: Any, index: int) -> tuple[str | None, str]:
        if not isinstance(value, dict):
            raise InvalidParams(
                f"invalid argument {index}: json: cannot unmarshal {_go_kind(value)} "
                "into Go value of type ethapi.TransactionArgs"
            )
        to = value.get("to")
        if to is not None:
            to = _parse_address(to, index)
        if "from" in value and value["from"] is not None:
            _parse_address(value["from"], index)
        data = value.get("input", value.get("data"))
        return to, _parse_data(data, f"invalid argument {index}")

    # -------------------------------------------------------------- methods

    def _eth_block_number(self, params: list[Any], head: int) -> str:
        if params:
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

    def _full_flag(self, value: Any, index: int) -> bool:
        if not isinstance(value, bool):
            raise InvalidParams(
                f"invalid argument {index}: json: cannot unmarshal {_go_kind(value)} "
                "into Go value of type bool"
            )
        return value

    def _eth_get_block_by_number(self, params: list[Any], head: int) -> dict[str, Any] | None:
        self._arity(params, 2, 2)
        n = self._block_number(params[0], 0, head)
        full = self._full_flag(params[1], 1)
        if n > head:
            return None  # geth answers null for a block it does not have
        return self.block(n, head, full)

    def _eth_get_block_by_hash(self, params: list[Any], head: int) -> dict[str, Any] | None:
        self._arity(params, 2, 2)
        h = _parse_hash(params[0], 0)
        full = self._full_flag(params[1], 1)
        n = self._visible_hash(h, head)
        return None if n is None else self.block(n, head, full)

    def _eth_get_balance(self, params: list[Any], head: int) -> str:
        self._arity(params, 2, 2)
        address = _parse_address(params[0], 0)
        n = self._state_block(params[1], 1, head)
        return hex(self.chain.balance(address, n))

    def _eth_get_transaction_count(self, params: list[Any], head: int) -> str:
        self._arity(params, 2, 2)
        address = _parse_address(params[0], 0)
        n = self._state_block(params[1], 1, head)
        return hex(self.chain.nonce(address, n))

    def _eth_get_code(self, params: list[Any], head: int) -> str:
        self._arity(params, 2, 2)
        address = _parse_address(params[0], 0)
        self._state_block(params[1], 1, head)
        return self.chain.code(address)

    def _eth_call(self, params: list[Any], head: int) -> str:
        self._arity(params, 1, 3)
        to, data = self._call_object(params[0], 0)
        n = self._state_block(params[1] if len(params) > 1 else "latest", 1, head)
        return self.chain.call_result(to, data, n)

    def _eth_estimate_gas(self, params: list[Any], head: int) -> str:
        self._arity(params, 1, 3)
        to, data = self._call_object(params[0], 0)
        if len(params) > 1:
            self._state_block(params[1], 1, head)
        payload = bytes.fromhex(data[2:])
        # Intrinsic gas (EIP-2028: 4 per zero byte, 16 per other), plus a token transfer's
        # execution for calls into one of the chain's contracts.
        gas = 21_000 + sum(4 if b == 0 else 16 for b in payload)
        if to is not None and to in self.chain.token_contracts:
            gas += 30_000
        return hex(gas)

    def _eth_fee_history(self, params: list[Any], head: int) -> dict[str, Any]:
        self._arity(params, 2, 3)
        count_arg = params[0]
        if isinstance(count_arg, int) and not isinstance(count_arg, bool):
            count = count_arg
        elif isinstance(count_arg, str):
            try:
                count = _parse_uint64(count_arg)
            except ValueError as e:
                raise InvalidParams(f"invalid argument 0: {e}") from None
        else:
            raise InvalidParams(
                f"invalid argument 0: json: cannot unmarshal {_go_kind(count_arg)} "
                "into Go value of type math.HexOrDecimal64"
            )
        newest = self._block_number(params[1], 1, head)
        percentiles = params[2] if len(params) > 2 else None
        if percentiles is not None:
            if not isinstance(percentiles, list) or not all(
                isinstance(p, int | float) and not isinstance(p, bool) for p in percentiles
            ):
                raise InvalidParams(
                    "invalid argument 2: json: cannot unmarshal non-number into Go value "
                    "of type float64"
                )
            for i, p in enumerate(percentiles):
                if p < 0 or p > 100 or (i and p < percentiles[i - 1]):
                    raise RpcError(-32000, f"invalid reward percentile: {p}")
        if newest > head:
            raise RpcError(-32000, f"request beyond head block: requested {newest}, head {head}")
        count = min(count, MAX_FEE_HISTORY, newest + 1)
        oldest = newest - count + 1
        blocks = range(oldest, newest + 1)
        chain = self.chain
        ratios = [int(chain.block(n)["gasUsed"], 16) / 30_000_000 for n in blocks]
        out: dict[str, Any] = {
            "baseFeePerGas": [hex(chain.base_fee(n)) for n in range(oldest, newest + 2)],
            "gasUsedRatio": ratios,
            "baseFeePerBlobGas": ["0x1"] * (count + 1),
            "blobGasUsedRatio": [0.0] * count,
            "oldestBlock": hex(oldest),
        }
        if percentiles is not None:
            out["reward"] = [
                [hex(_TIP_WEI if chain.tx_count(n) else 0) for _ in percentiles] for n in blocks
            ]
        return out

    def _eth_get_logs(self, params: list[Any], head: int) -> list[dict[str, Any]]:
        self._arity(params, 1, 1)
        f = params[0]
        if not isinstance(f, dict):
            raise InvalidParams(
                f"invalid argument 0: json: cannot unmarshal {_go_kind(f)} "
                "into Go value of type filters.FilterCriteria"
            )
        if "blockHash" in f and f["blockHash"] is not None:
            if f.get("fromBlock") is not None or f.get("toBlock") is not None:
                raise InvalidParams(
                    "invalid argument 0: cannot specify both BlockHash and FromBlock/ToBlock, "
                    "choose one or the other"
                )
            n = self._visible_hash(_parse_hash(f["blockHash"], 0), head)
            if n is None:
                raise RpcError(-32000, "unknown block")
            first = last = n
        else:
            first = self._block_number(f.get("fromBlock") or "latest", 0, head)
            last = self._block_number(f.get("toBlock") or "latest", 0, head)
            last = min(last, head)
            if first > last:
                if first > head:
                    return []
                raise RpcError(-32000, "invalid block range params")
            limit = self.behaviour.max_logs_range
            if last - first > limit:
                # Infura's shape (provider-errors.json: infura_getlogs_range_limit).
                raise RpcError(-32602, f"range {last - first} exceeds limit of {limit}")
        addresses = _log_addresses(f.get("address"))
        topics = _log_topics(f.get("topics"))
        out = []
        for n in range(first, last + 1):
            for log in self.chain.logs(n, self.branch(n, head)):
                if _log_matches(log, addresses, topics):
                    out.append(dict(log))
        return out

    def _visible_tx(self, tx_hash: str, head: int) -> tuple[int, int, int] | None:
        where = self.chain.locate_tx(tx_hash)
        if where is None:
            return None
        n, _, branch = where
        if n > head or self.branch(n, head) != branch:
            return None
        return where

    def _eth_get_transaction_by_hash(self, params: list[Any], head: int) -> dict[str, Any] | None:
        self._arity(params, 1, 1)
        where = self._visible_tx(_parse_hash(params[0], 0), head)
        return None if where is None else self.chain.tx(*where)

    def _eth_get_transaction_receipt(self, params: list[Any], head: int) -> dict[str, Any] | None:
        self._arity(params, 1, 1)
        where = self._visible_tx(_parse_hash(params[0], 0), head)
        return None if where is None else self.chain.receipt(*where)

    # -------------------------------------------------------------- WebSocket

    def open_session(self) -> WsSession:
        """A new WebSocket connection's state (its subscriptions)."""
        from providers.subscriptions import WsSession  # imports this module

        self._sessions += 1
        return WsSession(self, self._sessions)
