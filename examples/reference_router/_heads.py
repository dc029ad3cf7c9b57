"""Head tracking: what each upstream's head is, and floors under what clients are told. Pure.

The router learns heads from head answers (``eth_blockNumber``, a block asked by
``latest``) and from polling each upstream. The best head is the highest one at least
half of the upstreams that reported lately (rounded up) have reached: proxyd's
consensus, so one upstream on another chain or misreporting far ahead cannot drag the
others behind it, while one that stopped answering (its last head going stale) has no
say. An upstream more than ``max_lag_blocks`` behind the best head is *lagging*, one
more than ``max_ahead_blocks`` past it is *ahead*; the router routes away from both,
and an answer from an upstream that is ahead is not served.

State checks: the chain id is the one most upstreams answered (more than half of those
that answered); an ``eth_chainId`` answer of another id (an upstream on another chain)
or an ``eth_syncing`` answer other than ``false`` (an upstream still syncing) is not
served while another upstream may answer.

Floors: no head answer goes below the highest one already given (an ``eth_blockNumber``
is raised to it, a head some upstream really had; a ``latest`` block below it is not
served), and no ``safe`` or ``finalized`` block goes below one already given for it or
for a tag trailing it (finalized <= safe <= latest).
"""

from __future__ import annotations

import json

__all__ = ["HeadTracker", "asked_tag", "block_of", "chain_id_of", "state_lie", "with_block_number"]

# The tags a block request may name, as the tag whose floor it answers for.
_TAGS = {"latest": "latest", "pending": "latest", "safe": "safe", "finalized": "finalized"}


class HeadTracker:
    """Heads of ``count`` upstreams (by index) and the highest blocks answered so far.

    ``consensus`` False: the best head is the highest any upstream reported (one
    misreporting far ahead then makes every other one look behind); ``tags`` False: no
    floor under ``safe`` and ``finalized`` answers.
    """

    __slots__ = (
        "answered",
        "consensus",
        "fresh_s",
        "heads",
        "max_ahead_blocks",
        "max_lag_blocks",
        "seen",
        "tags",
    )

    def __init__(
        self,
        count: int,
        max_lag_blocks: int,
        *,
        max_ahead_blocks: int = 5,
        consensus: bool = True,
        tags: bool = True,
        fresh_s: float = 3.0,
    ) -> None:
        if max_lag_blocks < 0:
            raise ValueError(f"max_lag_blocks must be >= 0, got {max_lag_blocks}")
        if max_ahead_blocks < 0:
            raise ValueError(f"max_ahead_blocks must be >= 0, got {max_ahead_blocks}")
        self.heads: list[int | None] = [None] * count
        # When each head was reported: the consensus counts those of the last fresh_s.
        self.seen = [0.0] * count
        self.fresh_s = fresh_s
        self.max_lag_blocks = max_lag_blocks
        self.max_ahead_blocks = max_ahead_blocks
        self.consensus = consensus
        self.tags: dict[str, int] | None = {"safe": -1, "finalized": -1} if tags else None
        self.answered = -1

    def observe(self, index: int, block: int, now: float) -> None:
        """Upstream ``index`` reported ``block`` as its head at ``now`` (a lower report
        after a higher one is that provider falling back, and counts)."""
        self.heads[index] = block
        self.seen[index] = now

    def best(self, now: float) -> int | None:
        if not self.consensus:
            known = [h for h in self.heads if h is not None]
            return max(known) if known else None
        since = now - self.fresh_s
        fresh = sorted(
            (h for h, t in zip(self.heads, self.seen, strict=True) if h is not None and t >= since),
            reverse=True,
        )
        return fresh[(len(fresh) + 1) // 2 - 1] if fresh else None

    def lag(self, index: int, now: float) -> int | None:
        """Blocks upstream ``index`` is behind the best head (negative: ahead of it);
        None when unknown."""
        head, best = self.heads[index], self.best(now)
        return None if head is None or best is None else best - head

    def lagging(self, index: int, now: float) -> bool:
        lag = self.lag(index, now)
        return lag is not None and lag > self.max_lag_blocks

    def ahead(self, index: int, now: float) -> bool:
        lag = self.lag(index, now)
        return lag is not None and -lag > self.max_ahead_blocks

    def floor(self, block: int) -> int:
        """The head to answer: ``block``, or the highest already answered if that is higher."""
        if block > self.answered:
            self.answered = block
        return self.answered

    def tag_floor(self, tag: str) -> int:
        """The lowest block a ``tag`` answer may give: the highest already given for it
        or for a tag trailing it (-1: none yet; with tag floors off, only ``latest`` has
        one, the head answered)."""
        tags = self.tags
        if tags is None:
            return self.answered if tag == "latest" else -1
        if tag == "finalized":
            return tags["finalized"]
        trailing = max(tags["safe"], tags["finalized"])
        return trailing if tag == "safe" else max(trailing, self.answered)

    def answer_tag(self, tag: str, block: int) -> None:
        """A ``safe`` or ``finalized`` block was given to a client."""
        if self.tags is not None and block > self.tags[tag]:
            self.tags[tag] = block


def asked_tag(body: bytes) -> tuple[str, str] | None:
    """(method, tag) of a single call asking for a tagged block: ``eth_blockNumber``
    (tag ``latest``), or ``eth_getBlockByNumber`` by ``latest``, ``pending``, ``safe``
    or ``finalized``; None for anything else (batches pass through as they are)."""
    if b"eth_blockNumber" not in body and b"eth_getBlockByNumber" not in body:
        return None
    try:
        request = json.loads(body)
    except ValueError:
        return None
    if not isinstance(request, dict):
        return None
    method, params = request.get("method"), request.get("params")
    if method == "eth_blockNumber":
        return method, "latest"
    if method == "eth_getBlockByNumber" and isinstance(params, list) and params:
        tag = _TAGS.get(params[0]) if isinstance(params[0], str) else None
        return (method, tag) if tag else None
    return None


def chain_id_of(answers: list[int | None]) -> int | None:
    """The chain id more than half of the upstreams that answered agree on (None
    answered nothing), else None: too few agree to tell which chain is the fleet's."""
    known = [a for a in answers if a is not None]
    for candidate in set(known):
        if 2 * known.count(candidate) > len(known):
            return candidate
    return None


def _result(body: bytes) -> tuple[bool, object]:
    try:
        answer = json.loads(body)
    except ValueError:
        return False, None
    if not isinstance(answer, dict) or "result" not in answer:
        return False, None
    return True, answer["result"]


def state_lie(request: bytes, body: bytes, chain_id: int | None) -> str | None:
    """Why a single call's answer must not be served (None: it may): an ``eth_chainId``
    other than `chain_id` (None: not known yet, any goes), an ``eth_syncing`` other than
    ``false``. Batches pass through as they are."""
    if b"eth_chainId" not in request and b"eth_syncing" not in request:
        return None
    try:
        call = json.loads(request)
    except ValueError:
        return None
    method = call.get("method") if isinstance(call, dict) else None
    if method not in ("eth_chainId", "eth_syncing"):
        return None
    has_result, result = _result(body)
    if not has_result:
        return None  # an error is judged as any error is
    if method == "eth_syncing":
        return None if result is False else "upstream reports it is syncing"
    if chain_id is not None and result != hex(chain_id):
        return f"chain id {result!s:.20} is not the fleet's ({hex(chain_id)})"
    return None


def block_of(body: bytes) -> int | None:
    """The block number in an ``eth_blockNumber`` answer or of the block in an
    ``eth_getBlockByNumber`` answer; None when it carries none (an error, null)."""
    try:
        answer = json.loads(body)
    except ValueError:
        return None
    result = answer.get("result") if isinstance(answer, dict) else None
    if isinstance(result, dict):
        result = result.get("number")
    if not isinstance(result, str) or not result.startswith("0x"):
        return None
    try:
        return int(result, 16)
    except ValueError:
        return None


def with_block_number(body: bytes, block: int) -> bytes:
    """The answer ``body`` with its result replaced by ``block`` (id and the rest kept)."""
    answer = json.loads(body)
    answer["result"] = hex(block)
    return json.dumps(answer, separators=(",", ":")).encode()
