"""newHeads from a changing upstream into a stream seen exactly once, in order. Pure.

The upstream subscription may move from one provider to another (a drop, a stall), so
headers can repeat (the new provider re-sends the current head), arrive twice from two
subscriptions, or skip blocks (those that came while no subscription was live).
:class:`HeadSequencer` takes each header as it arrives and says which block numbers
must be fetched to fill a gap; the driver fetches them (over HTTP) and hands them back;
:meth:`HeadSequencer.ready` yields the headers that can go to clients, in block order.

Reorgs are out of scope: the mock chain has none, and a header at a height already
delivered is dropped (with ``dedupe`` on) whatever its hash.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

__all__ = ["HeadSequencer", "header_number"]


def header_number(header: Mapping[str, Any]) -> int | None:
    """A header's block number (hex ``number``), or None when it has none."""
    number = header.get("number")
    if not isinstance(number, str) or not number.startswith("0x"):
        return None
    try:
        return int(number, 16)
    except ValueError:
        return None


class HeadSequencer:
    """Orders and de-duplicates headers, and asks for the missing ones.

    Args:
        backfill_limit: at most this many missing blocks are fetched for one gap; older
            ones are given up (counted in ``skipped``). 0 switches backfill off.
        dedupe: drop headers already delivered (by hash) or at a height already
            delivered. Off, every header goes out as it comes, repeats included.
        remember: how many delivered hashes are kept for ``dedupe``.
    """

    def __init__(self, *, backfill_limit: int, dedupe: bool = True, remember: int = 1024) -> None:
        if backfill_limit < 0:
            raise ValueError(f"backfill_limit must be >= 0, got {backfill_limit}")
        self.backfill_limit = backfill_limit
        self.dedupe = dedupe
        self.last: int | None = None  # the last block number delivered (or given up)
        self._pending: dict[int, dict[str, Any]] = {}
        self._requested: set[int] = set()
        self._given_up: set[int] = set()
        self._direct: list[dict[str, Any]] = []  # dedupe off: repeats go straight out
        self._hashes: deque[str] = deque(maxlen=remember)
        self._hash_set: set[str] = set()
        self.duplicates = 0  # headers dropped as already delivered
        self.skipped = 0  # blocks never delivered: gap over the limit, or fetch failed
        self.backfilled = 0  # blocks delivered from a fetch

    def restart(self) -> None:
        """Forget the position (counters stay): the next header starts a new stream, as
        when the first client subscribes again after none was left."""
        self.last = None
        self._pending.clear()
        self._requested.clear()
        self._given_up.clear()
        self._direct.clear()

    def offer(self, header: dict[str, Any]) -> list[int]:
        """Take a header from the upstream subscription.

        Returns:
            Block numbers to fetch before this header can be delivered (often none).
        """
        number = header_number(header)
        if number is None:
            return []
        block_hash = header.get("hash")
        last = self.last
        seen = block_hash in self._hash_set or number in self._pending
        if seen or (last is not None and number <= last):
            if self.dedupe:
                self.duplicates += 1
            else:
                self._direct.append(header)
            return []
        self._pending[number] = header
        if last is None:
            self.last = number - 1  # the first header starts the stream
            return []
        missing = [
            n
            for n in range(last + 1, number)
            if n not in self._pending and n not in self._requested
        ]
        keep = self.backfill_limit
        give_up = missing[: max(len(missing) - keep, 0)]
        fetch = missing[len(give_up) :]
        self._given_up.update(give_up)
        self.skipped += len(give_up)
        self._requested.update(fetch)
        return fetch

    def fetched(self, number: int, header: dict[str, Any] | None) -> None:
        """Hand back a block asked for by :meth:`offer`; None when it could not be fetched."""
        self._requested.discard(number)
        if header is None or header_number(header) != number:
            self._given_up.add(number)
            self.skipped += 1
            return
        if number not in self._pending and (self.last is None or number > self.last):
            self._pending[number] = header
            self.backfilled += 1

    def ready(self) -> list[dict[str, Any]]:
        """Headers to deliver now, in order; each is delivered once."""
        out, self._direct = self._direct, []
        if self.last is None:
            return out
        while True:
            following = self.last + 1
            if following in self._pending:
                header = self._pending.pop(following)
                out.append(header)
                self._remember(header.get("hash"))
            elif following in self._given_up:
                self._given_up.discard(following)
            else:
                return out
            self.last = following

    def _remember(self, block_hash: object) -> None:
        if not isinstance(block_hash, str):
            return
        if len(self._hashes) == self._hashes.maxlen:
            self._hash_set.discard(self._hashes[0])
        self._hashes.append(block_hash)
        self._hash_set.add(block_hash)
