"""Request mixes: which JSON-RPC call comes next. Pure, seeded, no I/O.

A mix is weighted methods, each with a parameter generator that looks like what dapps
send: tip-of-chain reads, safe and finalized blocks, historical blocks, balances across
an address space, `eth_call` to a token contract, `eth_getLogs` over a block range,
receipts of transactions seen on chain. Generators read `ChainView`, what the worker has learned
from answers so far (the newest head seen, recent transaction hashes), so historical
reads stay within the chain and receipts name real transactions.

Optionally a share of calls goes out as JSON-RPC batches with a size distribution, and
fixed parameter lists (from a file) replace a method's generator.
"""

from __future__ import annotations

import random
import re
from bisect import bisect
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["METHODS", "BatchSpec", "Call", "ChainView", "RequestMix", "parse_batch", "parse_mix"]

_METHOD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
# Accounts the balance and eth_call generators pick from (a dapp's user base).
ADDRESS_SPACE = 10_000
# A token contract address for eth_call and eth_getLogs (USDC on mainnet; the mock
# answers any address).
TOKEN = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"
# keccak256("Transfer(address,address,uint256)"), the topic every ERC-20 transfer logs.
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
# balanceOf(address)
BALANCE_OF = "0x70a08231"
# How far back historical reads go, and the widest eth_getLogs range (Alchemy and
# Infura cap ranges at a few thousand blocks; dapps usually ask for tens).
HISTORY_BLOCKS = 1_000
LOG_RANGE_BLOCKS = 100
TX_POOL = 256


@dataclass
class ChainView:
    """What the worker has learned about the chain from the answers it got."""

    head: int | None = None
    tx_hashes: deque[str] = field(default_factory=lambda: deque(maxlen=TX_POOL))

    def saw_block(self, number: int) -> None:
        if self.head is None or number > self.head:
            self.head = number

    def observe(self, method: str, result: object) -> None:
        """Learns from one correct answer."""
        if method == "eth_blockNumber" and isinstance(result, str):
            self.saw_block(int(result, 16))
        elif method == "eth_getBlockByNumber" and isinstance(result, dict):
            self.saw_block(int(result["number"], 16))
            for tx in result.get("transactions") or ():
                self.tx_hashes.append(tx if isinstance(tx, str) else tx.get("hash"))


# Not frozen: a frozen dataclass costs 4x as much to build, and one is built per
# call on the hot path. Treat it as immutable.
@dataclass(slots=True)
class Call:
    method: str
    params: list


Generator = Callable[[random.Random, ChainView, str], list]


def _address(rng: random.Random) -> str:
    return f"0x{rng.randrange(1, ADDRESS_SPACE + 1):040x}"


def _none(rng: random.Random, view: ChainView, tag: str) -> list:
    return []


def _get_balance(rng: random.Random, view: ChainView, tag: str) -> list:
    return [_address(rng), "latest"]


def _tip_block(rng: random.Random, view: ChainView, tag: str) -> list:
    return ["latest", False]


def _safe_block(rng: random.Random, view: ChainView, tag: str) -> list:
    return ["safe", False]


def _finalized_block(rng: random.Random, view: ChainView, tag: str) -> list:
    return ["finalized", False]


def _historical_block(rng: random.Random, view: ChainView, tag: str) -> list:
    if view.head is None:
        return ["latest", False]
    low = max(0, view.head - HISTORY_BLOCKS)
    return [hex(rng.randint(low, view.head)), False]


def _eth_call(rng: random.Random, view: ChainView, tag: str) -> list:
    # balanceOf(address), with the tag's bytes appended to the calldata: the ABI
    # decoder ignores trailing bytes, so the call means the same and carries its tag.
    data = BALANCE_OF + _address(rng)[2:].rjust(64, "0") + tag.encode().hex()
    return [{"to": TOKEN, "data": data}, "latest"]


def _get_logs(rng: random.Random, view: ChainView, tag: str) -> list:
    width = rng.randint(1, LOG_RANGE_BLOCKS)
    if view.head is None:
        return [
            {
                "fromBlock": "latest",
                "toBlock": "latest",
                "address": TOKEN,
                "topics": [TRANSFER_TOPIC],
            }
        ]
    to_block = rng.randint(max(0, view.head - HISTORY_BLOCKS), view.head)
    return [
        {
            "fromBlock": hex(max(0, to_block - width + 1)),
            "toBlock": hex(to_block),
            "address": TOKEN,
            "topics": [TRANSFER_TOPIC],
        }
    ]


def _receipt(rng: random.Random, view: ChainView, tag: str) -> list:
    if view.tx_hashes:
        return [view.tx_hashes[rng.randrange(len(view.tx_hashes))]]
    return ["0x" + rng.randbytes(32).hex()]  # unknown: a node answers null


# Mix names (a method, or a method with a flavour after ':') and their generators.
METHODS: dict[str, Generator] = {
    "eth_blockNumber": _none,
    "eth_chainId": _none,
    "eth_gasPrice": _none,
    "eth_getBalance": _get_balance,
    "eth_getBlockByNumber": _tip_block,
    "eth_getBlockByNumber:historical": _historical_block,
    # Tags that trail the head (wallets and indexers ask for them to wait out reorgs).
    "eth_getBlockByNumber:safe": _safe_block,
    "eth_getBlockByNumber:finalized": _finalized_block,
    "eth_call": _eth_call,
    "eth_getLogs": _get_logs,
    "eth_getTransactionReceipt": _receipt,
    "eth_syncing": _none,
}


@dataclass(frozen=True)
class BatchSpec:
    """A `share` of calls are batches; their sizes are drawn from `sizes` (size→weight)."""

    share: float
    sizes: Mapping[int, float]

    def __post_init__(self) -> None:
        if not 0 <= self.share <= 1:
            raise ValueError(f"batch share must be in [0, 1], got {self.share}")
        if not self.sizes:
            raise ValueError("batch sizes must name at least one size")
        for size, weight in self.sizes.items():
            if size < 1:
                raise ValueError(f"batch size must be >= 1, got {size}")
            if not weight > 0:
                raise ValueError(f"batch weight of size {size} must be > 0, got {weight}")


class RequestMix:
    """Weighted choice of methods with their parameter generators.

    Args:
        weights: mix name → weight (see `METHODS`).
        seed: the choices and parameters are a pure function of it (and of the answers
            fed to `view`).
        batch: optional share of batches and their size distribution.
        fixed: method → parameter lists used in turn instead of the generator.
    """

    def __init__(
        self,
        weights: Mapping[str, float],
        *,
        seed: int = 0,
        batch: BatchSpec | None = None,
        fixed: Mapping[str, Sequence[list]] | None = None,
    ) -> None:
        if not weights:
            raise ValueError("mix must name at least one method")
        fixed = dict(fixed or {})
        for method, weight in weights.items():
            if method not in METHODS and method not in fixed:
                raise ValueError(f"mix method must be one of {sorted(METHODS)}, got {method!r}")
            if not weight > 0:
                raise ValueError(f"mix weight of {method} must be > 0, got {weight}")
        for method, lists in fixed.items():
            if not _METHOD_NAME.match(method.partition(":")[0]):
                raise ValueError(f"fixed params method must be a method name, got {method!r}")
            if not lists or not all(isinstance(p, list) for p in lists):
                raise ValueError(f"fixed params of {method} must be a non-empty list of lists")
        self._names = list(weights)
        self._cum = []
        total = 0.0
        for name in self._names:
            total += float(weights[name])
            self._cum.append(total)
        self._rng = random.Random(seed)
        self._batch = batch
        self._batch_sizes = list(batch.sizes) if batch else []
        self._batch_weights = [float(batch.sizes[s]) for s in self._batch_sizes] if batch else []
        self._fixed = {m: list(v) for m, v in fixed.items()}
        self._fixed_next = dict.fromkeys(fixed, 0)
        self.view = ChainView()

    def _one(self, tag: str) -> Call:
        # random.choices, without its per-call set-up (a hot path).
        names = self._names
        name = (
            names[bisect(self._cum, self._rng.random() * self._cum[-1])]
            if len(names) > 1
            else names[0]
        )
        method = name.partition(":")[0]
        if name in self._fixed:
            lists = self._fixed[name]
            i = self._fixed_next[name]
            self._fixed_next[name] = (i + 1) % len(lists)
            return Call(method, lists[i])
        return Call(method, METHODS[name](self._rng, self.view, tag))

    def next(self, tag: str = "") -> Call | list[Call]:
        """The next call, or a list: the calls of the next batch (a batch of one is
        still a batch, sent as a JSON array)."""
        if self._batch and self._rng.random() < self._batch.share:
            size = self._rng.choices(self._batch_sizes, self._batch_weights)[0]
            return [self._one(tag) for _ in range(size)]
        return self._one(tag)


def parse_mix(text: str, *, fixed: Mapping[str, Sequence[list]] | None = None) -> dict[str, float]:
    """Parses `eth_blockNumber=1,eth_getBalance=2` into weights (methods with `fixed`
    parameter lists may be any name)."""
    weights: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        method, sep, weight = part.partition("=")
        try:
            weights[method.strip()] = float(weight) if sep else 1.0
        except ValueError:
            raise ValueError(
                f"mix weight of {method.strip()} must be a number, got {weight!r}"
            ) from None
    RequestMix(weights, fixed=fixed)  # validates
    return weights


def parse_batch(text: str) -> BatchSpec:
    """Parses `SHARE:SIZE=WEIGHT,...`, e.g. `0.1:2=1,10=1` (10% of calls are batches
    of 2 or 10 calls, equally likely)."""
    share, sep, sizes = text.partition(":")
    if not sep:
        raise ValueError(f"batch must be SHARE:SIZE=WEIGHT,..., got {text!r}")
    try:
        parsed = {}
        for part in filter(None, (p.strip() for p in sizes.split(","))):
            size, _, weight = part.partition("=")
            parsed[int(size)] = float(weight or 1)
        return BatchSpec(float(share), parsed)
    except ValueError as exc:
        if "must" in str(exc):
            raise
        raise ValueError(f"batch must be SHARE:SIZE=WEIGHT,..., got {text!r}") from None
