"""Pins providers.chain: determinism, head as a function of time, block shape."""

import re

import pytest

from providers.chain import GENESIS_PARENT_HASH, Chain

HASH = re.compile(r"0x[0-9a-f]{64}")
QUANTITY = re.compile(r"0x(0|[1-9a-f][0-9a-f]*)")
G = 1_700_000_000_000_000_000  # a genesis in ns


def test_two_chains_with_the_same_seed_and_genesis_give_identical_blocks():
    a, b = Chain(7, G), Chain(7, G)
    for n in (0, 1, 2, 100, 12345):
        assert a.block(n) == b.block(n)
        assert a.block(n, full_txs=True) == b.block(n, full_txs=True)


def test_chains_with_different_seeds_give_different_hashes():
    a, b = Chain(1, G), Chain(2, G)
    assert all(a.block_hash(n) != b.block_hash(n) for n in range(50))


def test_block_hashes_are_32_byte_hex_and_distinct():
    c = Chain(3, G)
    hashes = [c.block_hash(n) for n in range(500)]
    assert all(HASH.fullmatch(h) for h in hashes)
    assert len(set(hashes)) == 500


def test_parent_hash_is_the_hash_of_the_previous_block():
    c = Chain(3, G)
    assert c.block(0)["parentHash"] == GENESIS_PARENT_HASH == "0x" + "0" * 64
    for n in range(1, 100):
        assert c.block(n)["parentHash"] == c.block(n - 1)["hash"]


@pytest.mark.parametrize(
    ("offset_ns", "head"),
    [
        (-5_000_000_000, 0),
        (0, 0),
        (999_999_999, 0),
        (1_000_000_000, 1),
        (1_500_000_000, 1),
        (60_000_000_000, 60),
    ],
)
def test_head_is_a_function_of_the_clock(offset_ns, head):
    assert Chain(0, G).head(G + offset_ns) == head


def test_head_follows_the_block_time():
    c = Chain(0, G, block_time_ms=250)
    assert c.head(G + 1_000_000_000) == 4
    assert c.block_time_ns(4) == G + 1_000_000_000
    assert c.head(c.block_time_ns(9)) == 9
    assert c.head(c.block_time_ns(9) - 1) == 8


def test_timestamp_is_the_production_time_in_seconds():
    c = Chain(0, G, block_time_ms=2000)
    assert int(c.block(5)["timestamp"], 16) == G // 10**9 + 10


def test_a_block_has_every_field_geth_returns_with_hex_quantities():
    b = Chain(11, G).block(42)
    for key in (
        "number", "hash", "parentHash", "timestamp", "gasLimit", "gasUsed", "baseFeePerGas",
        "miner", "difficulty", "nonce", "logsBloom", "transactionsRoot", "stateRoot",
        "receiptsRoot", "sha3Uncles", "extraData", "size", "mixHash", "uncles", "transactions",
    ):  # fmt: skip
        assert key in b, key
    assert b["number"] == "0x2a"
    assert b["difficulty"] == "0x0"
    assert b["uncles"] == []
    for key in ("number", "timestamp", "gasLimit", "gasUsed", "baseFeePerGas", "size"):
        assert QUANTITY.fullmatch(b[key]), (key, b[key])
    assert re.fullmatch(r"0x[0-9a-f]{40}", b["miner"])
    assert re.fullmatch(r"0x[0-9a-f]{512}", b["logsBloom"])
    assert re.fullmatch(r"0x[0-9a-f]{16}", b["nonce"])
    receipts = [Chain(11, G).receipt(42, i) for i in range(len(b["transactions"]))]
    assert int(b["gasUsed"], 16) == sum(int(r["gasUsed"], 16) for r in receipts)


def test_blocks_carry_a_small_deterministic_list_of_transactions():
    c = Chain(5, G)
    counts = {len(c.block(n)["transactions"]) for n in range(200)}
    assert counts <= set(range(5)) and len(counts) > 1
    tx_hashes = [h for n in range(50) for h in c.block(n)["transactions"]]
    assert all(HASH.fullmatch(h) for h in tx_hashes)
    assert len(set(tx_hashes)) == len(tx_hashes)


def test_full_transactions_match_the_hash_list_and_point_back_to_their_block():
    c = Chain(5, G, chain_id=10)
    n = next(n for n in range(100) if c.block(n)["transactions"])
    hashes, full = c.block(n), c.block(n, full_txs=True)
    assert [t["hash"] for t in full["transactions"]] == hashes["transactions"]
    for i, tx in enumerate(full["transactions"]):
        assert tx["blockHash"] == full["hash"]
        assert tx["blockNumber"] == hex(n)
        assert tx["transactionIndex"] == hex(i)
        assert tx["chainId"] == "0xa"
        for key in ("gas", "gasPrice", "nonce", "value", "r", "s", "v"):
            assert QUANTITY.fullmatch(tx[key]), (key, tx[key])


def test_balance_is_deterministic_and_changes_from_block_to_block():
    a, b = Chain(9, G), Chain(9, G)
    addr = "0x" + "ab" * 20
    assert a.balance(addr, 10) == b.balance(addr, 10)
    assert a.balance(addr, 10) != a.balance(addr, 11)
    assert a.balance(addr, 10) != a.balance("0x" + "cd" * 20, 10)
    assert a.balance(addr, 10) != Chain(10, G).balance(addr, 10)


def test_balance_ignores_address_case():
    c = Chain(9, G)
    assert c.balance("0x" + "AB" * 20, 3) == c.balance("0x" + "ab" * 20, 3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"block_time_ms": 0}, "block_time_ms must be > 0, got 0"),
        ({"genesis_ns": -1}, "genesis_ns must be >= 0, got -1"),
        ({"chain_id": 0}, "chain_id must be > 0, got 0"),
    ],
)
def test_bad_chain_arguments_are_refused_with_a_message_naming_them(kwargs, message):
    args = {"seed": 0, "genesis_ns": G, **kwargs}
    with pytest.raises(ValueError, match=re.escape(message)):
        Chain(**args)


def test_a_negative_block_number_is_refused():
    with pytest.raises(ValueError, match="block number must be >= 0, got -1"):
        Chain(0, G).block(-1)
