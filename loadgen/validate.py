"""Judging one JSON-RPC answer: ok, rpc_error, http_error or invalid. Pure, no I/O.

A 200 carrying a JSON-RPC error is an error, and a 200 carrying a wrong answer is
`invalid`, never a success: the id must match, the result must have the method's
shape, and when a `Truth` is given (the mock fleet's chain), it must be true: a block
has its true hash and parent, `eth_blockNumber` is neither ahead of the true head nor
further behind it than `max_lag_blocks`, a balance, an `eth_call` result or a gas price
is the true one at a block of that window, the chain id is the chain's.

A `null` result where the chain has a value (a head, a balance, the chain id, an
`eth_call`, a block or receipt that exists) is `invalid`: a router that swallows
errors as null must look neither like a success nor like an ordinary error.

Every answer that implies a block number (a head, a block, a receipt's block) reports
it as `result_block` (only a number in [0, 2**63): the column is a BIGINT), and one
that answers for a block tag (`eth_blockNumber` and a `latest` block: `latest`; a
`safe` or `finalized` block) names it as `block_tag`, so analysis can see heads and
tags going backwards or out of order.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["DEFAULT_MAX_LAG_BLOCKS", "Judgement", "Truth", "block_tag", "judge", "judge_batch"]

_QUANTITY = re.compile(r"0x(0|[1-9a-f][0-9a-f]*)\Z")
_HASH = re.compile(r"0x[0-9a-f]{64}\Z")
_DATA = re.compile(r"0x([0-9a-f]{2})*\Z")

# The commonest answer, byte for byte as nodes and the mock send it: a string id and a
# hex string result, no whitespace, no escapes. Its groups are printable ASCII without
# '"' or '\\', so json.loads would give exactly these strings; anything else (other key
# order, spaces, escapes, numbers, objects) takes json.loads.
_SIMPLE_ANSWER = re.compile(
    rb'\{"jsonrpc":"2\.0","id":"([\x20\x21\x23-\x5b\x5d-\x7e]*)","result":"(0x[0-9a-fA-F]*)"\}'
)

# A head this many blocks behind the true one still counts as correct: a node a couple
# of blocks behind is normal (propagation), more is a stale answer.
DEFAULT_MAX_LAG_BLOCKS = 2
# Block numbers are int64 on every node (and `result_block` is a BIGINT).
_BLOCK_LIMIT = 1 << 63
NULL_RESULT = "null result where the chain has a value"
# What a truth may raise for a forged value (e.g. a block number too large to hash).
_UNCHECKABLE = (ArithmeticError, ValueError, TypeError, KeyError, IndexError, AttributeError)
# eth_getLogs answers are compared with the chain's logs over ranges up to this wide.
_LOG_RANGE_CHECKED = 1_000


class Truth(Protocol):
    """What is true of the chain the providers serve (the mock fleet knows it)."""

    def head_at(self, t_ns: int) -> int:
        """The newest block number at epoch time `t_ns`."""
        ...

    def block_hash(self, n: int) -> str:
        """The hash of block `n` (`0x` + 64 lower-case hex digits)."""
        ...

    # Optional, each checked only when the truth has it:
    # `produced_at(n) -> int`: when block n was produced (epoch ns), fills
    #     ws_notifications.t_produced;
    # `chain_id: int`: what eth_chainId answers;
    # `synced: bool`: True when the chain's nodes are in sync (a live chain never
    #     syncs): eth_syncing must answer false;
    # `balance(address, n) -> int`: the balance of `address` at block n (wei);
    # `call_result(to, data, n) -> str`: eth_call's result at block n (hex data);
    # `gas_price(n) -> int`: eth_gasPrice at head n (wei);
    # `tx_block(tx_hash) -> int | None`: the canonical block of a transaction, None
    #     for a hash the chain does not have;
    # `logs(n) -> Sequence[dict]`: every log of canonical block n, as eth_getLogs
    #     returns them (addresses and topics lower-case), and `log_addresses`: a set of
    #     every address that ever logs (lets a filter on others skip the scan).


# Not frozen: a frozen dataclass costs 4x as much to build, and one is built per
# call on the hot path. Treat it as immutable.
@dataclass(slots=True)
class Judgement:
    outcome: str
    rpc_code: int | None = None
    error: str | None = None
    result_block: int | None = None
    result: object = None  # the result of an ok answer (the mix learns from it)
    block_tag: str | None = None  # the tag result_block answers for (see block_tag)


# Not frozen: a frozen dataclass costs 4x as much to build, and one is built per
# call on the hot path. Treat it as immutable.
@dataclass(slots=True)
class _Context:
    params: Sequence
    truth: Truth | None
    t_sent_ns: int
    t_done_ns: int
    max_lag: int


def _shape_only(ctx: _Context) -> _Context:
    return _Context(ctx.params, None, ctx.t_sent_ns, ctx.t_done_ns, ctx.max_lag)


def _quantity(result: object) -> str | None:
    if isinstance(result, str) and _QUANTITY.match(result):
        return None
    return f"result must be a hex quantity, got {result!r:.80}"


def _check_head(n: int, ctx: _Context, what: str) -> str | None:
    truth = ctx.truth
    if truth is None:
        return None
    ceiling = truth.head_at(ctx.t_done_ns)
    if n > ceiling:
        return f"{what} {n} is ahead of the true head {ceiling}"
    floor = truth.head_at(ctx.t_sent_ns) - ctx.max_lag
    if n < floor:
        return f"{what} {n} is more than {ctx.max_lag} blocks behind the true head"
    return None


def _check_block_number(result: object, ctx: _Context) -> str | None:
    problem = _quantity(result)
    if problem:
        return NULL_RESULT if result is None else problem
    n = int(result, 16)  # type: ignore[arg-type]
    if n >= _BLOCK_LIMIT:
        return f"head {result:.40} is not a block number (>= 2**63)"
    return _check_head(n, ctx, "head")


def _state_window(tag: object, ctx: _Context) -> tuple[int, int] | None:
    """The blocks whose state may answer a call at block `tag` between t_sent and
    t_done: `latest` is any head of the window `_check_head` allows, a number is itself;
    None for what is not checked (other tags, block hashes)."""
    truth = ctx.truth
    assert truth is not None
    if tag == "latest" or tag == "pending":
        return max(truth.head_at(ctx.t_sent_ns) - ctx.max_lag, 0), truth.head_at(ctx.t_done_ns)
    if tag == "earliest":
        return 0, 0
    if isinstance(tag, str) and _QUANTITY.match(tag):
        n = int(tag, 16)
        return n, n
    return None


def _blocks(window: tuple[int, int]) -> str:
    lo, hi = window
    return f"block {hi}" if lo == hi else f"blocks {lo}-{hi}"


def _true_value(
    result: str, what: str, window: tuple[int, int] | None, value: Callable[[int], object]
) -> str | None:
    """None if `result` is `value(n)` for a block n of `window` (the newest first)."""
    if window is None:
        return None
    lo, hi = window
    for n in range(hi, lo - 1, -1):
        if value(n) == result:
            return None
    return f"{what} must be {value(hi)} at {_blocks(window)}, got {result:.68}"


def _check_chain_id(result: object, ctx: _Context) -> str | None:
    problem = _quantity(result)
    if problem or ctx.truth is None:
        return NULL_RESULT if result is None else problem
    chain_id = getattr(ctx.truth, "chain_id", None)
    if chain_id is not None and int(result, 16) != chain_id:  # type: ignore[arg-type]
        return f"chain id must be {hex(chain_id)}, got {result:.40}"
    return None


def _check_syncing(result: object, ctx: _Context) -> str | None:
    if result is False:
        return None
    if result is None:
        return NULL_RESULT  # every node answers false or its sync status
    if not isinstance(result, dict) or any(
        _quantity(result.get(k)) for k in ("currentBlock", "highestBlock")
    ):
        return f"result must be false or a sync status with hex blocks, got {result!r:.80}"
    if getattr(ctx.truth, "synced", False):
        return f"the chain is in sync: eth_syncing must be false, got {result!r:.80}"
    return None


def _check_balance(result: object, ctx: _Context) -> str | None:
    problem = _quantity(result)
    if problem or ctx.truth is None:
        return NULL_RESULT if result is None else problem
    balance = getattr(ctx.truth, "balance", None)
    params = ctx.params
    if balance is None or len(params) < 2 or not isinstance(params[0], str):
        return None
    address = params[0]
    return _true_value(
        result,  # type: ignore[arg-type]
        f"balance of {address[:6]}…{address[-4:]}",
        _state_window(params[1], ctx),
        lambda n: hex(balance(address, n)),
    )


def _check_gas_price(result: object, ctx: _Context) -> str | None:
    problem = _quantity(result)
    if problem or ctx.truth is None:
        return NULL_RESULT if result is None else problem
    gas_price = getattr(ctx.truth, "gas_price", None)
    if gas_price is None:
        return None
    return _true_value(
        result,  # type: ignore[arg-type]
        "gas price",
        _state_window("latest", ctx),
        lambda n: hex(gas_price(n)),
    )


def _check_block(result: object, ctx: _Context) -> str | None:
    asked = ctx.params[0] if ctx.params else None
    if result is None:
        # A node answers null for a block it does not have yet; the tagged blocks always
        # exist (a node without safe/finalized blocks answers an error, not null), and
        # so does a block the truth says is older than the allowed lag.
        if asked in ("latest", "earliest", "safe", "finalized"):
            return f"{NULL_RESULT} (the {asked} block)"
        if ctx.truth and isinstance(asked, str) and _QUANTITY.match(asked):
            if int(asked, 16) <= ctx.truth.head_at(ctx.t_sent_ns) - ctx.max_lag:
                return f"{NULL_RESULT} (block {int(asked, 16)} exists)"
        return None
    if not isinstance(result, dict):
        return f"result must be a block object or null, got {type(result).__name__}"
    number, block_hash = result.get("number"), result.get("hash")
    if _quantity(number) or not isinstance(block_hash, str) or not _HASH.match(block_hash):
        return "block must carry a hex number and a 32-byte hash"
    n = int(number, 16)  # type: ignore[arg-type]
    if n >= _BLOCK_LIMIT:
        return f"block number {number:.40} is not a block number (>= 2**63)"
    if isinstance(asked, str) and _QUANTITY.match(asked) and int(asked, 16) != n:
        return f"block number must be {int(asked, 16)} as asked, got {n}"
    truth = ctx.truth
    if truth is None:
        return None
    if block_hash != truth.block_hash(n):
        return f"block {n} hash {block_hash[:12]}… is not the true hash"
    if n > 0 and result.get("parentHash") != truth.block_hash(n - 1):
        return f"block {n} parentHash is not the true hash of block {n - 1}"
    if asked == "latest":
        return _check_head(n, ctx, "latest block")
    return None


def _check_call(result: object, ctx: _Context) -> str | None:
    if not isinstance(result, str) or not _DATA.match(result):
        return NULL_RESULT if result is None else f"result must be hex data, got {result!r:.80}"
    call_result = getattr(ctx.truth, "call_result", None) if ctx.truth else None
    params = ctx.params
    if call_result is None or not params or not isinstance(params[0], dict):
        return None
    to, data = params[0].get("to"), params[0].get("input", params[0].get("data"))
    if not isinstance(data, str) or not (to is None or isinstance(to, str)):
        return None
    return _true_value(
        result,
        "eth_call result",
        _state_window(params[1] if len(params) > 1 else "latest", ctx),
        lambda n: call_result(to, data, n),
    )


def _check_logs(result: object, ctx: _Context) -> str | None:
    if result is None:
        return NULL_RESULT
    if not isinstance(result, list):
        return f"result must be a list of logs, got {type(result).__name__}"
    for i, log in enumerate(result):
        if not isinstance(log, dict) or _quantity(log.get("blockNumber")):
            return f"log {i} must be an object with a hex blockNumber"
        if ctx.truth and log.get("blockHash") != ctx.truth.block_hash(int(log["blockNumber"], 16)):
            return f"log {i} blockHash is not the true hash of its block"
    chain_logs = getattr(ctx.truth, "logs", None) if ctx.truth else None
    f = ctx.params[0] if ctx.params else None
    if chain_logs is None or not isinstance(f, dict):
        return None
    first, last = f.get("fromBlock"), f.get("toBlock")
    if not (isinstance(first, str) and _QUANTITY.match(first)):
        return None  # tags and block hashes: the blocks' hashes were checked above
    if not (isinstance(last, str) and _QUANTITY.match(last)):
        return None
    a, b = int(first, 16), int(last, 16)
    if b > ctx.truth.head_at(ctx.t_sent_ns) - ctx.max_lag or b - a > _LOG_RANGE_CHECKED:  # type: ignore[union-attr]
        return None  # blocks a provider may not have yet, or a range not worth the CPU
    addresses, topics = f.get("address"), f.get("topics") or []
    if not isinstance(topics, list):
        return None
    if isinstance(addresses, str):
        addresses = [addresses]
    elif addresses is not None and not isinstance(addresses, list):
        return None
    # No address, or an empty list: any address.
    wanted = {x.lower() for x in addresses if isinstance(x, str)} if addresses else None
    emitters = getattr(ctx.truth, "log_addresses", None)
    if wanted is not None and emitters is not None and wanted.isdisjoint(emitters):
        expected = []  # no contract of the filter ever logs: no block to scan
    else:
        expected = [
            log
            for n in range(a, b + 1)
            for log in chain_logs(n)
            if (wanted is None or log["address"] in wanted) and _topics_match(log["topics"], topics)
        ]
    if len(result) != len(expected):
        return f"blocks {a}-{b} have {len(expected)} matching logs, got {len(result)}"
    for i, (got, true) in enumerate(zip(result, expected, strict=True)):
        if got != true:
            return f"log {i} must be log {true['logIndex']} of block {int(true['blockNumber'], 16)}"
    return None


def _topics_match(log_topics: list, wanted: list) -> bool:
    """JSON-RPC topic filters: position i is null (any), a topic, or a list of them."""
    if len(wanted) > len(log_topics):
        return False
    for have, want in zip(log_topics, wanted, strict=False):
        if want is None:
            continue
        if isinstance(want, list):
            if want and have not in {w.lower() for w in want if isinstance(w, str)}:
                return False
        elif not isinstance(want, str) or have != want.lower():
            return False
    return True


def _check_receipt(result: object, ctx: _Context) -> str | None:
    truth = ctx.truth
    tx_block = getattr(truth, "tx_block", None) if truth else None
    asked = ctx.params[0] if ctx.params else None
    mined = tx_block(asked) if tx_block is not None and isinstance(asked, str) else None
    if result is None:
        # Unknown or pending transactions have none; one mined before the allowed lag has.
        if mined is not None and mined <= truth.head_at(ctx.t_sent_ns) - ctx.max_lag:  # type: ignore[union-attr]
            return f"{NULL_RESULT} (its transaction is in block {mined})"
        return None
    if not isinstance(result, dict) or _quantity(result.get("blockNumber")):
        return "receipt must be an object with a hex blockNumber, or null"
    n = int(result["blockNumber"], 16)
    if n >= _BLOCK_LIMIT:
        return "receipt blockNumber is not a block number (>= 2**63)"
    if truth is None:
        return None
    if result.get("blockHash") != truth.block_hash(n):
        return "receipt blockHash is not the true hash of its block"
    if tx_block is not None and (result.get("transactionHash") != asked or mined != n):
        return f"receipt must be of {asked!s:.20}… in block {mined}, got block {n}"
    return None


# The check of each method's result: its shape, and its truth when a Truth is given.
_CHECKS = {
    "eth_blockNumber": _check_block_number,
    "eth_chainId": _check_chain_id,
    "eth_gasPrice": _check_gas_price,
    "eth_getBalance": _check_balance,
    "eth_getBlockByNumber": _check_block,
    "eth_call": _check_call,
    "eth_getLogs": _check_logs,
    "eth_getTransactionReceipt": _check_receipt,
    "eth_syncing": _check_syncing,
}


def _implied_block(method: str, result: object) -> int | None:
    """The block number a well-shaped answer implies, if its method returns one and it
    fits `result_block` (a BIGINT): a forged value must never reach the column."""
    if method == "eth_blockNumber":
        n = int(result, 16)  # type: ignore[arg-type]
    elif method in ("eth_getBlockByNumber", "eth_getTransactionReceipt") and result:
        key = "number" if method == "eth_getBlockByNumber" else "blockNumber"
        n = int(result[key], 16)  # type: ignore[index]
    else:
        return None
    return n if 0 <= n < _BLOCK_LIMIT else None


_TAG_OF = {"latest": "latest", "pending": "latest", "safe": "safe", "finalized": "finalized"}


def block_tag(method: str, params: Sequence) -> str | None:
    """The block tag an answer of `method` reports the block of: `latest` for
    `eth_blockNumber` and a block asked by `latest` (or `pending`), `safe` or `finalized`
    for those tags; None for a block asked by number or hash and for other methods."""
    if method == "eth_blockNumber":
        return "latest"
    if method == "eth_getBlockByNumber" and params and isinstance(params[0], str):
        return _TAG_OF.get(params[0])
    return None


def _rpc_code(error: object) -> int | None:
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def _judge_object(method: str, expected_id: object, doc: object, ctx: _Context) -> Judgement:
    if not isinstance(doc, dict):
        return Judgement("invalid", None, "body is not a JSON-RPC response object")
    error = doc.get("error")
    code = _rpc_code(error)
    if doc.get("id") != expected_id:
        return Judgement("invalid", code, f"id must be {expected_id!r}, got {doc.get('id')!r:.60}")
    if error is not None:
        message = error.get("message") if isinstance(error, dict) else error
        return Judgement("rpc_error", code, str(message)[:200])
    if "result" not in doc:
        return Judgement("invalid", None, "response has neither result nor error")
    result = doc["result"]
    check = _CHECKS.get(method)
    try:
        problem = check(result, ctx) if check else None
    except _UNCHECKABLE as exc:
        # A forged value the truth cannot even be asked about (a block number past any
        # chain's): wrong, and it must not take the instrument down.
        return Judgement(
            "invalid", None, f"answer not checkable: {type(exc).__name__}: {exc}"[:200]
        )
    if problem:
        # A well-shaped but untrue answer still records the block it implies: analysis
        # looks for heads going backwards, wrong ones included.
        shape_ok = ctx.truth is not None and check(result, _shape_only(ctx)) is None
        block = _implied_block(method, result) if shape_ok else None
        tag = block_tag(method, ctx.params) if block is not None else None
        return Judgement("invalid", None, problem, block, block_tag=tag)
    block = _implied_block(method, result)
    tag = block_tag(method, ctx.params) if block is not None else None
    return Judgement("ok", result_block=block, result=result, block_tag=tag)


def _http_error(status: int, doc: object) -> Judgement:
    error = doc.get("error") if isinstance(doc, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return Judgement(
        "http_error", _rpc_code(error), f"HTTP {status}" + (f": {message}" if message else "")
    )


def judge(
    method: str,
    expected_id: object,
    status: int,
    body: bytes,
    *,
    params: Sequence = (),
    truth: Truth | None = None,
    t_sent_ns: int = 0,
    t_done_ns: int = 0,
    max_lag_blocks: int = DEFAULT_MAX_LAG_BLOCKS,
) -> Judgement:
    """Classifies the answer to one call of `method` sent with id `expected_id`.

    With `truth`, the result is also checked against the true chain between `t_sent_ns`
    and `t_done_ns` (the answer was produced somewhere in that window).
    """
    simple = _SIMPLE_ANSWER.fullmatch(body) if status == 200 else None
    if simple is not None:
        # The very object json.loads would build (see _SIMPLE_ANSWER), for a third of
        # the cost; every check below still runs on it.
        doc: object = {
            "jsonrpc": "2.0",
            "id": simple[1].decode("ascii"),
            "result": simple[2].decode("ascii"),
        }
    else:
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
    if status != 200:
        return _http_error(status, doc)
    ctx = _Context(params, truth, t_sent_ns, t_done_ns, max_lag_blocks)
    return _judge_object(method, expected_id, doc, ctx)


def judge_batch(
    calls: Sequence[tuple[str, object, Sequence]],
    status: int,
    body: bytes,
    *,
    truth: Truth | None = None,
    t_sent_ns: int = 0,
    t_done_ns: int = 0,
    max_lag_blocks: int = DEFAULT_MAX_LAG_BLOCKS,
) -> tuple[Judgement, list[Judgement]]:
    """Classifies the answer to a batch of `(method, id, params)` calls.

    Answers may come in any order (JSON-RPC 2.0 §6); each is matched by id. The batch
    as a whole is `invalid` if any answer is wrong or missing, else `rpc_error` if any
    is an error, else `ok`; its `result_block` is the highest block any answer implies.
    Returns the batch's judgement and each call's (in call order; empty if the body
    was not a batch at all).
    """
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if status != 200:
        return _http_error(status, doc), []
    if not isinstance(doc, list):
        if isinstance(doc, dict) and doc.get("error") is not None:
            # A router may refuse a whole batch with one error object.
            error = doc["error"]
            message = error.get("message") if isinstance(error, dict) else error
            return Judgement("rpc_error", _rpc_code(error), str(message)[:200]), []
        return Judgement("invalid", None, "a batch must be answered with a JSON array"), []
    by_id = {}
    for answer in doc:
        if isinstance(answer, dict):
            by_id.setdefault(json.dumps(answer.get("id")), answer)
    if len(doc) != len(calls):
        return Judgement(
            "invalid", None, f"batch of {len(calls)} answered with {len(doc)} responses"
        ), []
    ctx = _Context((), truth, t_sent_ns, t_done_ns, max_lag_blocks)
    judgements = []
    for method, call_id, params in calls:
        answer = by_id.get(json.dumps(call_id))
        if answer is None:
            missing = f"batch has no answer with id {call_id!r}"
            judgements.append(Judgement("invalid", None, missing))
            continue
        c = _Context(params, ctx.truth, ctx.t_sent_ns, ctx.t_done_ns, ctx.max_lag)
        judgements.append(_judge_object(method, call_id, answer, c))
    # Each answer was judged against the truth of ITS call (same id): answers rotated
    # onto other ids are untrue for the calls they landed on.
    worst = next((i for i, j in enumerate(judgements) if j.outcome == "invalid"), None)
    if worst is None:
        worst = next((i for i, j in enumerate(judgements) if j.outcome == "rpc_error"), None)
    blocks = [j.result_block for j in judgements if j.result_block is not None]
    top = max(blocks) if blocks else None
    # The batch answers for a tag only when every call that implies a block asked for
    # that one tag: its highest block is then that tag's.
    tags = {j.block_tag for j in judgements if j.result_block is not None}
    tag = tags.pop() if len(tags) == 1 else None
    if worst is not None:
        j = judgements[worst]
        error = (
            j.error if j.outcome == "rpc_error" else f"call {worst} ({calls[worst][0]}): {j.error}"
        )
        return Judgement(j.outcome, j.rpc_code, error, top, block_tag=tag), judgements
    return Judgement("ok", result_block=top, block_tag=tag), judgements
