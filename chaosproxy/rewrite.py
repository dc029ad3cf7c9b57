"""Bodies the faults send or rewrite. Pure: bytes in, bytes out.

Every function here is what a client observes of one fault, so each has a unit test
pinning its output (tests/unit/test_chaosproxy_rewrite.py).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Collection
from typing import Any

from chaosproxy.exchange import RequestInfo

__all__ = [
    "corrupt",
    "error_object",
    "head_lie_response",
    "notification_facts",
    "rpc_error_body",
    "rpc_error_merge",
    "stale_request",
    "stale_response",
    "tag_request",
    "ws_close_frame",
]


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def error_object(rpc_id: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return {"jsonrpc": "2.0", "id": rpc_id, "error": err}


def rpc_error_body(
    info: RequestInfo, code: int, message: str, data: Any = None, collapse: bool = False
) -> bytes:
    """The error echoing the request's id; one per element of a batch, or a single
    non-array object with id null when `collapse` (Infura's and erigon's shape)."""
    if info.is_batch and not collapse:
        return _dumps([error_object(i, code, message, data) for i in info.ids])
    return _dumps(error_object(None if info.is_batch else info.rpc_id, code, message, data))


def rpc_error_merge(
    body: bytes, ids: Collection[Any], code: int, message: str, data: Any = None
) -> bytes | None:
    """The upstream's batch answer with the elements of `ids` replaced by the error;
    None when the body is not a JSON array (left as it is)."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, list):
        return None
    wanted = {json.dumps(i) for i in ids}
    out = [
        error_object(e.get("id"), code, message, data)
        if isinstance(e, dict) and json.dumps(e.get("id")) in wanted
        else e
        for e in doc
    ]
    return _dumps(out)


WRONG_ID_OFFSET = 1_000_000


def _wrong(rpc_id: Any) -> Any:
    if isinstance(rpc_id, bool) or rpc_id is None:
        return "wrong"
    if isinstance(rpc_id, int | float):
        return rpc_id + WRONG_ID_OFFSET
    return f"wrong-{rpc_id}"


def corrupt(body: bytes, mode: str) -> bytes:
    """The upstream's body damaged by `mode` (see `chaosproxy.faults.CorruptParams`)."""
    if mode == "truncate":
        return body[: len(body) // 2]
    if mode == "invalid_json":
        stripped = body.rstrip()
        return (stripped[:-1] if stripped else stripped) + b"<!garbage"
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body[: len(body) // 2]
    items = doc if isinstance(doc, list) else [doc]
    for e in items:
        if not isinstance(e, dict):
            continue
        if mode == "wrong_id":
            e["id"] = _wrong(e.get("id"))
        elif mode == "null_result" and "error" not in e:
            e["result"] = None
    return _dumps(doc)


def _rewrite_tags(value: Any, replace: dict[str, str]) -> tuple[Any, bool]:
    if isinstance(value, str) and value in replace:
        return replace[value], True
    if isinstance(value, dict):
        changed = False
        out = {}
        for k, v in value.items():
            if k in ("fromBlock", "toBlock", "blockNumber") and isinstance(v, str) and v in replace:
                out[k], changed = replace[v], True
            else:
                out[k] = v
        return out, changed
    return value, False


def tag_request(body: bytes, replace: dict[str, str]) -> bytes | None:
    """The request with every block tag named in `replace` (a parameter, or `fromBlock`
    / `toBlock` / `blockNumber` of an object parameter) replaced by its block; None
    when nothing changed."""
    if not any(f'"{tag}"'.encode() in body for tag in replace):
        return None
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    changed = False
    for e in doc if isinstance(doc, list) else [doc]:
        params = e.get("params") if isinstance(e, dict) else None
        if isinstance(params, list):
            for i, p in enumerate(params):
                params[i], c = _rewrite_tags(p, replace)
                changed |= c
    return _dumps(doc) if changed else None


def stale_request(body: bytes, head: int | None, lag: int) -> bytes | None:
    """The request with every ``"latest"`` block tag (also `fromBlock` / `toBlock` of a
    filter) replaced by ``head - lag``; None when nothing changed or the head is unknown."""
    if head is None:
        return None
    return tag_request(body, {"latest": hex(max(0, head - lag))})


def stale_response(
    body: bytes, methods: tuple[str | None, ...], lag: int
) -> tuple[bytes | None, int | None]:
    """The answer with each `eth_blockNumber` result lowered by `lag`, and the true head
    seen (the highest such result); (None, head) when nothing changed."""
    if "eth_blockNumber" not in methods:
        return None, None
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None, None
    items = doc if isinstance(doc, list) else [doc]
    if len(items) != len(methods):
        # A batch answer's order is not guaranteed; without the request ids we only
        # rewrite single answers.
        return None, None
    head = None
    for e, m in zip(items, methods, strict=True):
        if m != "eth_blockNumber" or not isinstance(e, dict):
            continue
        r = e.get("result")
        if isinstance(r, str) and r.startswith("0x"):
            try:
                n = int(r, 16)
            except ValueError:
                continue
            head = n if head is None else max(head, n)
            e["result"] = hex(max(0, n - lag))
    if head is None:
        return None, None
    return _dumps(doc), head


def _hex_int(value: Any) -> int | None:
    if isinstance(value, str) and value.startswith("0x"):
        try:
            return int(value, 16)
        except ValueError:
            return None
    return None


def _asks_head(call: Any) -> bool:
    """Whether a request object asks for the head: `eth_blockNumber`, or a block by the
    ``latest`` (or ``pending``) tag."""
    if not isinstance(call, dict):
        return False
    method, params = call.get("method"), call.get("params")
    if method == "eth_blockNumber":
        return True
    return (
        method == "eth_getBlockByNumber"
        and isinstance(params, list)
        and bool(params)
        and params[0] in ("latest", "pending")
    )


# A `chain_id` lie without an id of its own: a mainnet node in a devnet's fleet, the
# usual misconfiguration; Sepolia's id where the truth is mainnet's.
LIE_CHAIN_ID = 1
LIE_CHAIN_ID_ON_MAINNET = 11155111


def _state_lie(mode: str, method: object, result: Any, blocks: int, chain_id: int | None,
               known_head: int | None) -> Any:  # fmt: skip
    """The lie a ``chain_id`` or ``syncing`` mode tells in place of `result` (the
    answer of a call of `method`), or `result` itself when it tells none there."""
    if mode == "chain_id" and method == "eth_chainId":
        true_id = _hex_int(result)
        if true_id is None:
            return result
        lie = chain_id or (LIE_CHAIN_ID_ON_MAINNET if true_id == LIE_CHAIN_ID else LIE_CHAIN_ID)
        return hex(lie)
    if mode == "syncing" and method == "eth_syncing" and result is False:
        # geth's answer mid-sync: where it started, where it is, the highest it has heard
        # of (the last head seen through the proxy, else `blocks` ahead of block 0).
        highest = known_head if known_head is not None else blocks
        return {"startingBlock": "0x0", "currentBlock": hex(max(0, highest - blocks)),
                "highestBlock": hex(highest)}  # fmt: skip
    return result


def head_lie_response(
    request: bytes,
    body: bytes,
    mode: str,
    blocks: int,
    *,
    chain_id: int | None = None,
    known_head: int | None = None,
) -> tuple[bytes | None, int | None]:
    """The answer with every head in it misreported by a `head_lie` of `mode` (see
    `chaosproxy.faults.HeadLieParams`), and the true head seen (the highest); (None,
    head) when nothing changed. A head is an `eth_blockNumber` result or the number of a
    block asked by ``latest``; batch answers are matched to their calls by id. ``ahead``
    raises each by `blocks`, ``zero`` answers 0 for `eth_blockNumber` (its ``latest``
    blocks were asked as block 0), ``tags`` only learns the head; ``chain_id`` answers
    `eth_chainId` with another chain's id (`chain_id`, else LIE_CHAIN_ID), ``syncing``
    answers `eth_syncing` with a sync `blocks` short of `known_head` (the last head seen),
    and both learn the heads they see."""
    state = {"chain_id": b"eth_chainId", "syncing": b"eth_syncing"}.get(mode)
    heads = b"eth_blockNumber" in request or b"eth_getBlockByNumber" in request
    if not heads and (state is None or state not in request):
        return None, None
    try:
        calls, doc = json.loads(request), json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None, None
    if isinstance(calls, list) != isinstance(doc, list):
        return None, None
    if isinstance(calls, list):
        asked = {json.dumps(c.get("id")): c for c in calls if isinstance(c, dict)}
        pairs = [(asked.get(json.dumps(e.get("id"))), e) for e in doc if isinstance(e, dict)]
    else:
        pairs = [(calls, doc)] if isinstance(doc, dict) else []
    head, changed = None, False
    for call, answer in pairs:
        if not isinstance(answer, dict):
            continue
        if state is not None and isinstance(call, dict) and "result" in answer:
            lie = _state_lie(mode, call.get("method"), answer["result"], blocks, chain_id,
                             known_head)  # fmt: skip
            if lie != answer["result"]:
                answer["result"] = lie
                changed = True
                continue
        if not _asks_head(call):
            continue
        result = answer.get("result")
        block = result.get("number") if isinstance(result, dict) else result
        n = _hex_int(block)
        if n is None:
            continue
        head = n if head is None else max(head, n)
        if mode in ("tags", "chain_id", "syncing") or (mode == "zero" and isinstance(result, dict)):
            continue
        lied = hex(n + blocks) if mode == "ahead" else "0x0"
        if isinstance(result, dict):
            result["number"] = lied
        else:
            answer["result"] = lied
        changed = True
    return (_dumps(doc) if changed else None), head


def notification_facts(content: bytes) -> tuple[str | None, int | None] | None:
    """(subscription id, block number) of an `eth_subscription` notification, or None
    when the message is not one. The block number is the result's `number` (newHeads)
    or `blockNumber` (logs)."""
    if b"eth_subscription" not in content:
        return None
    try:
        doc = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict) or doc.get("method") != "eth_subscription":
        return None
    params = doc.get("params")
    if not isinstance(params, dict):
        return None, None
    sub = params.get("subscription")
    result = params.get("result")
    block = None
    if isinstance(result, dict):
        raw = result.get("number", result.get("blockNumber"))
        if isinstance(raw, str) and raw.startswith("0x"):
            try:
                block = int(raw, 16)
            except ValueError:
                block = None
    return (sub if isinstance(sub, str) else None), block


def ws_close_frame(code: int, reason: str) -> bytes:
    """A server-to-client (unmasked) WebSocket close frame (RFC 6455 5.5.1)."""
    payload = struct.pack("!H", code) + reason.encode()
    if len(payload) > 125:
        raise ValueError("close reason too long")
    return bytes([0x88, len(payload)]) + payload
