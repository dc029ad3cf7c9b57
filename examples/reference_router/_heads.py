"""Head tracking: what each upstream's head is, and a floor under eth_blockNumber. Pure.

The router learns heads from ``eth_blockNumber`` answers and from polling each upstream.
An upstream more than ``max_lag_blocks`` behind the best known head is *lagging* (the
router routes away from it), and no ``eth_blockNumber`` answer goes below the highest one
already given: a client that saw block 100 never sees 99 after it, whichever upstream
answered (answers are raised to the floor, which is a head some upstream really had).
"""

from __future__ import annotations

import json

__all__ = ["HeadTracker", "block_number_of", "is_block_number_request", "with_block_number"]


class HeadTracker:
    """Heads of ``count`` upstreams (by index) and the highest head answered so far."""

    __slots__ = ("answered", "heads", "max_lag_blocks")

    def __init__(self, count: int, max_lag_blocks: int) -> None:
        if max_lag_blocks < 0:
            raise ValueError(f"max_lag_blocks must be >= 0, got {max_lag_blocks}")
        self.heads: list[int | None] = [None] * count
        self.max_lag_blocks = max_lag_blocks
        self.answered = -1

    def observe(self, index: int, block: int) -> None:
        """Upstream ``index`` reported ``block`` as its head (heads only move forward:
        a lower report after a higher one is that provider falling back, and counts)."""
        self.heads[index] = block

    def best(self) -> int | None:
        known = [h for h in self.heads if h is not None]
        return max(known) if known else None

    def lag(self, index: int) -> int | None:
        """Blocks upstream ``index`` is behind the best known head; None when unknown."""
        head, best = self.heads[index], self.best()
        return None if head is None or best is None else best - head

    def lagging(self, index: int) -> bool:
        lag = self.lag(index)
        return lag is not None and lag > self.max_lag_blocks

    def floor(self, block: int) -> int:
        """The block to answer: ``block``, or the highest already answered if that is higher."""
        if block > self.answered:
            self.answered = block
        return self.answered


def is_block_number_request(body: bytes) -> bool:
    """Whether ``body`` is a single ``eth_blockNumber`` call (batches pass through as they are)."""
    if b"eth_blockNumber" not in body:
        return False
    try:
        request = json.loads(body)
    except ValueError:
        return False
    return isinstance(request, dict) and request.get("method") == "eth_blockNumber"


def block_number_of(body: bytes) -> int | None:
    """The block number in an ``eth_blockNumber`` answer, or None when it is not one."""
    try:
        answer = json.loads(body)
    except ValueError:
        return None
    result = answer.get("result") if isinstance(answer, dict) else None
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
