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

__all__ = ["DEFAULT_CHAIN_ID", "GENESIS_PARENT_HASH", "TRANSFER_TOPIC", "Chain"]

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
_TOKEN_CONTRACTS = 4  # addresses that emit Transfer logs, so log filters have hits
_MAX_LOGS_PER_TX = 2
_BLOB_BASE_FEE = "0x1"  # anvil and geth report 1 wei with no blob traffic

#: keccak256("Transfer(address,address,uint256)"), the ERC-20 event every mock log carries.
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"


@lru_cache(maxsize=1 << 16)
def _digest(seed: int, kind: str, key: str) -> bytes:
    """32 bytes derived from (seed, kind, key); cached because heads are asked for often."""
    h = hashlib.blake2b(digest_size=32)
    h.update(f"{seed}\x00{kind}\x00{key}".encode())
    return h.digest()


def _mask(seed: int, kind: str) -> int:
    return int.from_bytes(_digest(seed, "mask", kind)[:8])


def _locator_hash(seed: int, kind: str, key: int) -> str:
    """A hash whose last 8 bytes carry ``key`` (masked): lookups by hash need no index.

    The first 24 bytes are a digest of (seed, kind, key), so a hash from another seed or
    a made-up hash fails :func:`_unlocate`.
    """
    head = _digest(seed, kind, str(key))[:24]
    return "0x" + head.hex() + (key ^ _mask(seed, kind)).to_bytes(8).hex()


def _unlocate(seed: int, kind: str, h: str) -> int | None:
    """The key :func:`_locator_hash` embedded in ``h``, or None if ``h`` is not one of ours."""
    if not isinstance(h, str) or len(h) != 66:
        return None
    try:
        key = int(h[50:], 16) ^ _mask(seed, kind)
    except ValueError:
        return None
    if key < 0 or _locator_hash(seed, kind, key) != h.lower():
        return None
    return key


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

    __slots__ = ("_block_ns", "_contracts", "block_time_ms", "chain_id", "genesis_ns", "seed")

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
        self._contracts = tuple(
            _hex(_digest(self.seed, "contract", str(k))[:20]) for k in range(_TOKEN_CONTRACTS)
        )

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
    #
    # ``branch`` 0 is the canonical chain; a provider following a fork serves the same
    # numbers on another branch (see providers.behaviour.Fork). A branch's blocks differ
    # in hash and transactions; the parent of its first block is canonical.

    def block_hash(self, n: int, branch: int = 0) -> str:
        """``"0x"`` + 64 hex digits; BLAKE2b-based, not Keccak (see module doc)."""
        if n < 0:
            return GENESIS_PARENT_HASH
        return _locator_hash(self.seed, "block", (n << 8) | branch)

    def locate_block(self, block_hash: str) -> tuple[int, int] | None:
        """``(number, branch)`` of a hash this chain made, else None."""
        key = _unlocate(self.seed, "block", block_hash)
        return None if key is None else (key >> 8, key & 0xFF)

    def parent_hash(self, n: int, branch: int = 0, fork_start: int | None = None) -> str:
        """The hash of block ``n - 1``; all zeros for block 0.

        A fork branch's first block (``fork_start``) has a canonical parent.
        """
        if n <= 0:
            return GENESIS_PARENT_HASH
        parent_branch = 0 if fork_start is None or n - 1 < fork_start else branch
        return self.block_hash(n - 1, parent_branch)

    def tx_count(self, n: int, branch: int = 0) -> int:
        """0 to 4 transactions, fixed by (seed, n, branch); none in the genesis block."""
        if n == 0:
            return 0
        return _digest(self.seed, "txcount", f"{n}:{branch}")[0] % (_MAX_TXS_PER_BLOCK + 1)

    def tx_hashes(self, n: int, branch: int = 0) -> list[str]:
        """The hashes of block ``n``'s transactions."""
        return [self.tx_hash(n, i, branch) for i in range(self.tx_count(n, branch))]

    def tx_hash(self, n: int, i: int, branch: int = 0) -> str:
        return _locator_hash(self.seed, "tx", (n << 16) | (branch << 8) | i)

    def locate_tx(self, tx_hash: str) -> tuple[int, int, int] | None:
        """``(number, index, branch)`` of a transaction hash this chain made, else None."""
        key = _unlocate(self.seed, "tx", tx_hash)
        if key is None:
            return None
        n, branch, i = key >> 16, (key >> 8) & 0xFF, key & 0xFF
        return (n, i, branch) if i < self.tx_count(n, branch) else None

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

    def nonce(self, address: str, n: int) -> int:
        """Transaction count of ``address`` at block ``n``: grows by 0 or 1 per block."""
        d = _digest(self.seed, "nonce", address.lower())
        every = 2 + d[0] % 14  # one transaction every 2..15 blocks
        return int.from_bytes(d[1:3]) + max(n, 0) // every

    @property
    def token_contracts(self) -> tuple[str, ...]:
        """The contract addresses that emit every log of the chain (lower-case)."""
        return self._contracts

    def code(self, address: str) -> str:
        """Deployed bytecode: a short deterministic program for token contracts, else ``0x``."""
        if address.lower() not in self.token_contracts:
            return "0x"
        # PUSH1 0x80 PUSH1 0x40 MSTORE ... shaped like solc output; never executed.
        return "0x6080604052" + _digest(self.seed, "code", address.lower()).hex()

    def call_result(self, to: str | None, data: str, n: int) -> str:
        """``eth_call``: ``0x`` for accounts without code (as every node), else one word."""
        if to is None or to.lower() not in self.token_contracts:
            return "0x"
        return _hex(_digest(self.seed, "call", f"{to.lower()}:{data.lower()}:{n}"))

    # ---------------------------------------------------------------- blocks

    def block(
        self, n: int, full_txs: bool = False, branch: int = 0, fork_start: int | None = None
    ) -> dict[str, Any]:
        """Block ``n`` shaped like an ``eth_getBlockByNumber`` result (geth / anvil, Prague).

        Args:
            n: block number (>= 0). Whether it exists yet is the caller's concern
                (compare with :meth:`head`).
            full_txs: transaction objects instead of hashes, as the RPC's second argument.
            branch: 0 for the canonical chain, else a fork branch starting at ``fork_start``.

        Raises:
            ValueError: n < 0.
        """
        if n < 0:
            raise ValueError(f"block number must be >= 0, got {n}")
        block_hash = self.block_hash(n, branch)
        count = self.tx_count(n, branch)
        txs: list[Any] = (
            [self.tx(n, i, branch) for i in range(count)] if full_txs else self.tx_hashes(n, branch)
        )
        seed = self.seed
        key = f"{n}:{branch}"
        return {
            "hash": block_hash,
            "parentHash": self.parent_hash(n, branch, fork_start),
            "sha3Uncles": _EMPTY_UNCLES_HASH,
            "miner": _hex(_digest(seed, "miner", str(n))[:20]),
            "stateRoot": _hex(_digest(seed, "state", key)),
            "transactionsRoot": _hex(_digest(seed, "txroot", key)),
            "receiptsRoot": _hex(_digest(seed, "receipts", key)),
            "logsBloom": _EMPTY_BLOOM,
            "difficulty": "0x0",
            "number": _q(n),
            "gasLimit": _q(_GAS_LIMIT),
            "gasUsed": _q(self._cumulative_gas(n, count, branch)),
            "timestamp": _q(self.block_time_ns(n) // 1_000_000_000),
            "extraData": "0x",
            "mixHash": _hex(_digest(seed, "mix", key)),
            "nonce": _ZERO_NONCE,
            "baseFeePerGas": _q(self.base_fee(n)),
            "withdrawalsRoot": _hex(_digest(seed, "wroot", key)),
            "blobGasUsed": "0x0",
            "excessBlobGas": "0x0",
            "parentBeaconBlockRoot": _hex(_digest(seed, "beacon", key)),
            "requestsHash": _hex(_digest(seed, "requests", key)),
            "totalDifficulty": "0x0",
            # Header (~540 bytes of RLP) plus ~110 bytes per simple transfer: an estimate.
            "size": _q(540 + 110 * count),
            "uncles": [],
            "transactions": txs,
            "withdrawals": [],
        }

    def _tx_body(self, n: int, i: int, branch: int) -> bytes:
        return _digest(self.seed, "txbody", f"{n}:{i}:{branch}")

    def _log_count(self, n: int, i: int, branch: int) -> int:
        return self._tx_body(n, i, branch)[30] % (_MAX_LOGS_PER_TX + 1)

    def _tx_gas(self, n: int, i: int, branch: int) -> int:
        logs = self._log_count(n, i, branch)
        return _GAS_PER_TX if logs == 0 else 30_000 + 20_000 * logs

    def _cumulative_gas(self, n: int, upto: int, branch: int) -> int:
        return sum(self._tx_gas(n, j, branch) for j in range(upto))

    def _tx_to(self, n: int, i: int, branch: int) -> str:
        d = self._tx_body(n, i, branch)
        if self._log_count(n, i, branch):
            return self.token_contracts[d[31] % _TOKEN_CONTRACTS]
        return _hex(_digest(self.seed, "to", f"{n}:{i}:{branch}")[:20])

    def tx(self, n: int, i: int, branch: int = 0) -> dict[str, Any]:
        """Transaction ``i`` of block ``n``: an EIP-1559 transfer, as geth and anvil return it."""
        d = self._tx_body(n, i, branch)
        base_fee = self.base_fee(n)
        key = f"{n}:{i}:{branch}"
        logs = self._log_count(n, i, branch)
        data = "0x" if not logs else "0xa9059cbb" + _digest(self.seed, "input", key).hex() * 2
        return {
            "type": "0x2",
            "chainId": _q(self.chain_id),
            "nonce": _q(d[20]),
            "gas": _q(self._tx_gas(n, i, branch) + 10_000 * (logs > 0)),
            "maxFeePerGas": _q(2 * base_fee + _TIP_WEI),
            "maxPriorityFeePerGas": _q(_TIP_WEI),
            "to": self._tx_to(n, i, branch),
            "value": _q(0 if logs else int.from_bytes(d[22:30])),
            "accessList": [],
            "input": data,
            "r": _q(int.from_bytes(_digest(self.seed, "r", key))),
            "s": _q(int.from_bytes(_digest(self.seed, "s", key))),
            "yParity": _q(d[21] & 1),
            "v": _q(d[21] & 1),
            "hash": self.tx_hash(n, i, branch),
            "blockHash": self.block_hash(n, branch),
            "blockNumber": _q(n),
            "blockTimestamp": _q(self.block_time_ns(n) // 1_000_000_000),
            "transactionIndex": _q(i),
            "from": _hex(d[:20]),
            "gasPrice": _q(base_fee + _TIP_WEI),
        }

    def logs(self, n: int, branch: int = 0) -> list[dict[str, Any]]:
        """Every log of block ``n``, in order, shaped like ``eth_getLogs`` entries."""
        return list(_block_logs(self, n, branch))

    def receipt(self, n: int, i: int, branch: int = 0) -> dict[str, Any]:
        """The receipt of transaction ``i`` of block ``n``."""
        tx_hash = self.tx_hash(n, i, branch)
        d = self._tx_body(n, i, branch)
        return {
            "type": "0x2",
            "status": "0x1",
            "cumulativeGasUsed": _q(self._cumulative_gas(n, i + 1, branch)),
            "logs": [
                log for log in _block_logs(self, n, branch) if log["transactionHash"] == tx_hash
            ],
            "logsBloom": _EMPTY_BLOOM,
            "transactionHash": tx_hash,
            "transactionIndex": _q(i),
            "blockHash": self.block_hash(n, branch),
            "blockNumber": _q(n),
            "blockTimestamp": _q(self.block_time_ns(n) // 1_000_000_000),
            "gasUsed": _q(self._tx_gas(n, i, branch)),
            "blobGasPrice": _BLOB_BASE_FEE,
            "effectiveGasPrice": _q(self.base_fee(n) + _TIP_WEI),
            "from": _hex(d[:20]),
            "to": self._tx_to(n, i, branch),
            "contractAddress": None,
        }


@lru_cache(maxsize=4096)
def _block_logs(chain: Chain, n: int, branch: int) -> tuple[dict[str, Any], ...]:
    """Cached because eth_getLogs scans ranges of blocks. Callers must not mutate entries."""
    out = []
    block_hash = chain.block_hash(n, branch)
    timestamp = _q(chain.block_time_ns(n) // 1_000_000_000)
    index = 0
    for i in range(chain.tx_count(n, branch)):
        tx_hash = chain.tx_hash(n, i, branch)
        address = chain._tx_to(n, i, branch)
        for j in range(chain._log_count(n, i, branch)):
            d = _digest(chain.seed, "log", f"{n}:{i}:{j}:{branch}")
            out.append(
                {
                    "address": address,
                    "topics": [
                        TRANSFER_TOPIC,
                        "0x" + "00" * 12 + d[:20].hex(),
                        "0x" + "00" * 12 + d[12:32].hex(),
                    ],
                    "data": "0x" + "00" * 24 + d[24:32].hex(),
                    "blockHash": block_hash,
                    "blockNumber": _q(n),
                    "blockTimestamp": timestamp,
                    "transactionHash": tx_hash,
                    "transactionIndex": _q(i),
                    "logIndex": _q(index),
                    "removed": False,
                }
            )
            index += 1
    return tuple(out)
