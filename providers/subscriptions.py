"""WebSocket subscriptions of the mock provider: ``eth_subscribe`` and notifications.

Pure: a :class:`WsSession` answers the text messages of one connection and, polled with
a time, returns the notifications due; the asyncio driver decides when to poll.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from providers.errors import PRESETS, ErrorShape
from providers.params import (
    InvalidParams,
    RpcError,
    _log_addresses,
    _log_matches,
    _log_topics,
)
from providers.wire import Reply, dumps, error_obj, valid_id

if TYPE_CHECKING:
    from providers.jsonrpc import MockNode

__all__ = ["WsSession"]

#: Blocks of history a subscription keeps to detect a reorg (and catch up after a stall).
_WS_HISTORY = 128


@dataclass
class _Sub:
    kind: str  # "newHeads" | "logs"
    addresses: frozenset[str] | None = None
    topics: list[frozenset[str] | None] = field(default_factory=list)
    last: int = 0
    sent: dict[int, tuple[str, int]] = field(default_factory=dict)  # n -> (hash, branch)


class WsSession:
    """The subscriptions of one WebSocket connection; pure, driven by :meth:`poll`.

    :meth:`message` answers a text message (``eth_subscribe`` and ``eth_unsubscribe``
    here, everything else through :meth:`MockNode.respond`); :meth:`poll` returns the
    notifications due at ``now_ns``: one per new block for ``newHeads``, each matching
    log for ``logs``, and after a reorg the new branch's blocks again (logs of blocks
    that left the chain come back with ``removed: true``, as geth sends them).
    """

    def __init__(self, node: MockNode, number: int) -> None:
        self.node = node
        self._number = number
        self._count = 0
        self.subs: dict[str, _Sub] = {}

    def message(self, text: bytes) -> Reply:
        """Answer one text message; subscribe calls are handled here, the rest by the node."""
        try:
            msg = json.loads(text)
        except (ValueError, UnicodeDecodeError):
            return self.node.respond(text, transport="ws")
        if isinstance(msg, dict) and msg.get("method") in ("eth_subscribe", "eth_unsubscribe"):
            rid = msg.get("id")
            if not valid_id(rid):
                return self.node.respond(text, transport="ws")
            try:
                params = msg.get("params") or []
                if not isinstance(params, list):
                    raise InvalidParams("non-array args")
                if msg["method"] == "eth_subscribe":
                    result: Any = self._subscribe(params)
                else:
                    if len(params) != 1 or not isinstance(params[0], str):
                        raise InvalidParams("missing value for required argument 0")
                    result = self.subs.pop(params[0], None) is not None
            except RpcError as e:
                out = error_obj(rid, ErrorShape(e.code, e.message, e.data))
            else:
                out = {"jsonrpc": "2.0", "id": rid, "result": result}
            return Reply(200, dumps(out).encode())
        return self.node.respond(text, transport="ws")

    def _subscribe(self, params: list[Any]) -> str:
        if not params:
            raise InvalidParams("missing value for required argument 0")
        kind = params[0]
        sub = _Sub(kind)
        if kind == "newHeads":
            if len(params) > 1:
                raise InvalidParams("too many arguments, want at most 1")
        elif kind == "logs":
            if len(params) > 2:
                raise InvalidParams("too many arguments, want at most 2")
            crit = params[1] if len(params) > 1 else {}
            if not isinstance(crit, dict):
                raise InvalidParams(
                    "invalid argument 1: json: cannot unmarshal into FilterCriteria"
                )
            sub.addresses = _log_addresses(crit.get("address"))
            sub.topics = _log_topics(crit.get("topics"))
        else:
            raise RpcError(-32601, f'no "{kind}" subscription in eth namespace')
        if len(self.subs) >= 1024:
            raise RpcError.of(PRESETS["reth_too_many_subscriptions"])
        self._count += 1
        digest = hashlib.blake2b(
            f"{self.node.name}:{self._number}:{self._count}".encode(), digest_size=16
        )
        sub_id = "0x" + digest.hexdigest()
        head = self.node.head()
        sub.last = head
        sub.sent[head] = (self.node.chain.block_hash(head, self.node.branch(head, head)), 0)
        self.subs[sub_id] = sub
        return sub_id

    def poll(self, now_ns: int) -> list[bytes]:
        """The notification messages due at ``now_ns``, in order."""
        if not self.subs:
            return []
        node = self.node
        head = node.head(now_ns)
        out: list[bytes] = []
        for sub_id, sub in self.subs.items():
            # Common ancestor of what was sent and what this provider now serves.
            a = min(sub.last, head)
            while a in sub.sent and sub.sent[a][0] != node.chain.block_hash(
                a, node.branch(a, head)
            ):
                a -= 1
            if a == sub.last and head == sub.last:
                continue
            if sub.kind == "logs":
                for n in range(a + 1, sub.last + 1):
                    if n in sub.sent:
                        for log in node.chain.logs(n, sub.sent[n][1]):
                            if _log_matches(log, sub.addresses, sub.topics):
                                out.append(_notification(sub_id, {**log, "removed": True}))
            for n in range(max(a + 1, head - _WS_HISTORY + 1), head + 1):
                branch = node.branch(n, head)
                if sub.kind == "newHeads":
                    # anvil sends the block as eth_getBlockByNumber(n, false) returns it;
                    # geth sends the header alone (no size, transactions, uncles,
                    # withdrawals). We follow anvil, the conformance reference.
                    out.append(_notification(sub_id, node.block(n, head)))
                else:
                    for log in node.chain.logs(n, branch):
                        if _log_matches(log, sub.addresses, sub.topics):
                            out.append(_notification(sub_id, log))
                sub.sent[n] = (node.chain.block_hash(n, branch), branch)
            for n in [k for k in sub.sent if k > head or k <= head - _WS_HISTORY]:
                del sub.sent[n]
            sub.last = head
        return out


def _notification(sub_id: str, result: Any) -> bytes:
    return dumps(
        {
            "jsonrpc": "2.0",
            "method": "eth_subscription",
            "params": {"subscription": sub_id, "result": result},
        }
    ).encode()
