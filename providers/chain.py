"""The deterministic mock chain: every block is a pure function of (seed, number).

Every mock provider in a run is built from the same seed and genesis time, so they all
serve one chain: the same block at the same height has the same hash on every provider,
and the head at any instant is a pure function of the clock. Nothing here does I/O or
reads the clock itself; callers pass ``now_ns``.

Hashes are BLAKE2b-256 (``hashlib.blake2b(digest_size=32)``), **not** Keccak-256: they
are shaped like Ethereum hashes (``"0x"`` + 64 hex digits) and link parent to child, but
no client can verify them against block contents. That is enough for a router under test,
which never recomputes hashes.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Any

__all__ = ["DEFAULT_CHAIN_ID", "GENESIS_PARENT_HASH", "Chain"]

#: anvil's and hardhat's default chain id (0x7a69).
DEFAULT_CHAIN_ID = 31337

#: Block 0's parentHash, as on every Ethereum chain.
GENESIS_PARENT_HASH = "0x" + "00" * 32

# Constants of the block shape, taken from a post-London, post-merge geth block.
_GAS_LIMIT = 30_000_000
_GAS_PER_TX = 21_000
_BASE_FEE_WEI = 1_000_000_000  # 1 gwei, the floor before noise
_TIP_WEI = 100_000_000  # 0.1 gwei priority fee
_EMPTY_UNCLES_HASH = "0x1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347"
_EMPTY_BLOOM = "0x" + "00" * 256
_ZERO_HASH = "0x" + "00" * 32
_ZERO_NONCE = "0x0000000000000000"
_MAX_TXS_PER_BLOCK = 4
_WEI_PER_ETHER = 10**18


@lru_cache(maxsize=1 << 16)
def _digest(seed: int, kind: str, key: str) -> bytes:
    """32 bytes derived from (seed, kind, key); cached because heads are asked for often."""
    h = hashlib.blake2b(digest_size=32)
    h.update(f"{seed}\x00{kind}\x00{key}".encode())
    return h.digest()


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


def _q(n: int) -> str:
    """An Ethereum JSON-RPC quantity: hex, no leading zeros, ``0x0`` for zero (as geth)."""
    return hex(n)


class Chain:
    """One deterministic chain, shared by every mock provider built from the same arguments.

    Args:
        seed: any integer; two chains with the same seed and genesis are identical.
        genesis_ns: production time of block 0, in ns since the Unix epoch.
        block_time_ms: time between blocks (> 0).
        chain_id: the EIP-155 chain id carried by transactions and ``eth_chainId``.

    Raises:
        ValueError: block_time_ms <= 0, genesis_ns < 0 or chain_id <= 0.
    """

    __slots__ = ("_block_ns", "block_time_ms", "chain_id", "genesis_ns", "seed")

    def __init__(
        self,
        seed: int,
        genesis_ns: int,
        block_time_ms: int = 1000,
        *,
        chain_id: int = DEFAULT_CHAIN_ID,
    ) -> None:
        if block_time_ms <= 0:
            raise ValueError(f"block_time_ms must be > 0, got {block_time_ms}")
        if genesis_ns < 0:
            raise ValueError(f"genesis_ns must be >= 0, got {genesis_ns}")
        if chain_id <= 0:
            raise ValueError(f"chain_id must be > 0, got {chain_id}")
        self.seed = int(seed)
        self.genesis_ns = int(genesis_ns)
        self.block_time_ms = int(block_time_ms)
        self.chain_id = int(chain_id)
        self._block_ns = self.block_time_ms * 1_000_000

    def __repr__(self) -> str:
        return (
            f"Chain(seed={self.seed}, genesis_ns={self.genesis_ns}, "
            f"block_time_ms={self.block_time_ms}, chain_id={self.chain_id})"
        )

    # ---------------------------------------------------------------- time

    def head(self, now_ns: int) -> int:
        """The number of the newest block produced at ``now_ns`` (0 before genesis)."""
        if now_ns <= self.genesis_ns:
            return 0
        return (now_ns - self.genesis_ns) // self._block_ns

    def block_time_ns(self, n: int) -> int:
        """When block ``n`` is produced, in ns since the Unix epoch."""
        return self.genesis_ns + n * self._block_ns

    # ---------------------------------------------------------------- hashes

    def block_hash(self, n: int) -> str:
        """``"0x"`` + 64 hex digits; BLAKE2b of (seed, n), not Keccak (see module doc)."""
        if n < 0:
            return GENESIS_PARENT_HASH
        return _hex(_digest(self.seed, "block", str(n)))

    def parent_hash(self, n: int) -> str:
        """The hash of block ``n - 1``; all zeros for block 0."""
        return GENESIS_PARENT_HASH if n <= 0 else self.block_hash(n - 1)

    def tx_hashes(self, n: int) -> list[str]:
        """The hashes of block ``n``'s transactions: 0 to 4 of them, fixed by (seed, n)."""
        count = _digest(self.seed, "block", str(n))[0] % (_MAX_TXS_PER_BLOCK + 1)
        return [_hex(_digest(self.seed, "tx", f"{n}:{i}")) for i in range(count)]

    # ---------------------------------------------------------------- state

    def base_fee(self, n: int) -> int:
        """Base fee of block ``n`` in wei: 1 gwei plus up to ~0.26 gwei of noise."""
        return _BASE_FEE_WEI + _digest(self.seed, "block", str(n))[1] * 1_000_000

    def balance(self, address: str, n: int) -> int:
        """Balance of ``address`` at block ``n`` in wei; changes from one block to the next.

        ``address`` is compared case-insensitively (checksummed and lower-case forms agree).
        A base of 0..1000 ETH grows by a per-address delta of 1..2**16 gwei per block.
        """
        d = _digest(self.seed, "balance", address.lower())
        base = int.from_bytes(d[:16]) % (1000 * _WEI_PER_ETHER)
        delta = (int.from_bytes(d[16:18]) + 1) * 1_000_000_000
        return base + max(n, 0) * delta

    # ---------------------------------------------------------------- blocks

    def block(self, n: int, full_txs: bool = False) -> dict[str, Any]:
        """Block ``n`` shaped like geth's ``eth_getBlockByNumber`` result.

        Args:
            n: block number (>= 0). Whether it exists yet is the caller's concern
                (compare with :meth:`head`).
            full_txs: transaction objects instead of hashes, as the RPC's second argument.

        Raises:
            ValueError: n < 0.
        """
        if n < 0:
            raise ValueError(f"block number must be >= 0, got {n}")
        block_hash = self.block_hash(n)
        hashes = self.tx_hashes(n)
        base_fee = self.base_fee(n)
        txs: list[Any] = (
            [self._tx(n, i, h, block_hash, base_fee) for i, h in enumerate(hashes)]
            if full_txs
            else hashes
        )
        seed = self.seed
        return {
            "baseFeePerGas": _q(base_fee),
            "difficulty": "0x0",
            "extraData": "0x",
            "gasLimit": _q(_GAS_LIMIT),
            "gasUsed": _q(_GAS_PER_TX * len(hashes)),
            "hash": block_hash,
            "logsBloom": _EMPTY_BLOOM,
            "miner": _hex(_digest(seed, "miner", str(n))[:20]),
            "mixHash": _hex(_digest(seed, "mix", str(n))),
            "nonce": _ZERO_NONCE,
            "number": _q(n),
            "parentHash": self.parent_hash(n),
            "receiptsRoot": _hex(_digest(seed, "receipts", str(n))),
            "sha3Uncles": _EMPTY_UNCLES_HASH,
            # Header (~540 bytes of RLP) plus ~110 bytes per simple transfer: an estimate.
            "size": _q(540 + 110 * len(hashes)),
            "stateRoot": _hex(_digest(seed, "state", str(n))),
            "timestamp": _q(self.block_time_ns(n) // 1_000_000_000),
            "totalDifficulty": "0x0",
            "transactions": txs,
            "transactionsRoot": _hex(_digest(seed, "txroot", str(n))),
            "uncles": [],
            "withdrawals": [],
            "withdrawalsRoot": _ZERO_HASH,
        }

    def _tx(self, n: int, i: int, tx_hash: str, block_hash: str, base_fee: int) -> dict[str, Any]:
        """An EIP-1559 transfer, as geth returns it inside a full block."""
        d = _digest(self.seed, "txbody", f"{n}:{i}")
        return {
            "accessList": [],
            "blockHash": block_hash,
            "blockNumber": _q(n),
            "chainId": _q(self.chain_id),
            "from": _hex(d[:20]),
            "gas": _q(_GAS_PER_TX),
            "gasPrice": _q(base_fee + _TIP_WEI),
            "hash": tx_hash,
            "input": "0x",
            "maxFeePerGas": _q(2 * base_fee + _TIP_WEI),
            "maxPriorityFeePerGas": _q(_TIP_WEI),
            "nonce": _q(d[20]),
            "r": _q(int.from_bytes(_digest(self.seed, "r", f"{n}:{i}"))),
            "s": _q(int.from_bytes(_digest(self.seed, "s", f"{n}:{i}"))),
            "to": _hex(_digest(self.seed, "to", f"{n}:{i}")[:20]),
            "transactionIndex": _q(i),
            "type": "0x2",
            "v": _q(d[21] & 1),
            "value": _q(int.from_bytes(d[22:30])),
            "yParity": _q(d[21] & 1),
        }
