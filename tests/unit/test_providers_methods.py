"""Pins the mock's state, transaction and log methods: lookups by hash, receipts, logs
with address and topic filters and the range cap, fees, calls and gas estimates."""

from __future__ import annotations

import json
from typing import Any

import pytest

from providers import Chain, MockNode
from providers.behaviour import parse_behaviour
from providers.chain import TRANSFER_TOPIC

G = 1_700_000_000_000_000_000
S = 10**9
ADDR = "0x" + "12" * 20


@pytest.fixture
def node() -> MockNode:
    return MockNode(Chain(8, G), lambda: G + 300 * S + 1, name="A")  # head 300


def call(node: MockNode, method: str, params: Any) -> dict[str, Any]:
    msg = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    return json.loads(node.handle(json.dumps(msg).encode()))


def result(node: MockNode, method: str, params: Any) -> Any:
    r = call(node, method, params)
    assert "error" not in r, r
    return r["result"]


def a_block_with_logs(node: MockNode) -> int:
    return next(n for n in range(1, 300) if node.chain.logs(n))


def test_blocks_are_found_by_hash_and_unknown_hashes_give_null(node):
    b = result(node, "eth_getBlockByNumber", ["0x2a", True])
    assert result(node, "eth_getBlockByHash", [b["hash"], True]) == b
    assert result(node, "eth_getBlockByHash", ["0x" + "ab" * 32, False]) is None
    future = node.chain.block_hash(301)
    assert result(node, "eth_getBlockByHash", [future, False]) is None
    other_chain = Chain(9, G).block_hash(42)
    assert result(node, "eth_getBlockByHash", [other_chain, False]) is None


def test_transactions_and_receipts_are_found_by_hash(node):
    n = a_block_with_logs(node)
    block = result(node, "eth_getBlockByNumber", [hex(n), True])
    for i, tx in enumerate(block["transactions"]):
        assert result(node, "eth_getTransactionByHash", [tx["hash"]]) == tx
        receipt = result(node, "eth_getTransactionReceipt", [tx["hash"]])
        assert receipt["transactionHash"] == tx["hash"]
        assert receipt["transactionIndex"] == hex(i)
        assert receipt["blockHash"] == block["hash"]
        assert receipt["status"] == "0x1"
    assert result(node, "eth_getTransactionByHash", ["0x" + "cd" * 32]) is None
    assert result(node, "eth_getTransactionReceipt", [node.chain.tx_hash(301, 0)]) is None
    err = call(node, "eth_getTransactionByHash", ["0x12"])["error"]
    assert err["code"] == -32602


def test_a_receipts_logs_are_the_blocks_logs_of_that_transaction(node):
    n = a_block_with_logs(node)
    logs = node.chain.logs(n)
    by_receipts = []
    for h in node.chain.tx_hashes(n):
        by_receipts += result(node, "eth_getTransactionReceipt", [h])["logs"]
    assert by_receipts == logs
    assert [int(x["logIndex"], 16) for x in logs] == list(range(len(logs)))


def test_get_logs_filters_by_address_and_topics(node):
    rng = {"fromBlock": "0x1", "toBlock": hex(300)}
    every = result(node, "eth_getLogs", [rng])
    assert len(every) > 50
    addr = every[0]["address"]
    by_addr = result(node, "eth_getLogs", [{**rng, "address": addr}])
    assert by_addr == [x for x in every if x["address"] == addr]
    by_list = result(node, "eth_getLogs", [{**rng, "address": [addr, ADDR]}])
    assert by_list == by_addr
    sender = every[3]["topics"][1]
    by_topic = result(node, "eth_getLogs", [{**rng, "topics": [TRANSFER_TOPIC, sender]}])
    assert by_topic == [x for x in every if x["topics"][1] == sender]
    either = result(node, "eth_getLogs", [{**rng, "topics": [None, [sender, "0x" + "00" * 32]]}])
    assert either == by_topic
    assert result(node, "eth_getLogs", [{**rng, "topics": ["0x" + "00" * 32]}]) == []
    one = every[0]
    by_hash = result(node, "eth_getLogs", [{"blockHash": one["blockHash"]}])
    assert by_hash == [x for x in every if x["blockHash"] == one["blockHash"]]


def test_get_logs_over_the_maximum_range_gives_infuras_error():
    node = MockNode(
        Chain(8, G), lambda: G + 30_000 * S, behaviour=parse_behaviour({"max_logs_range": 100})
    )
    err = call(node, "eth_getLogs", [{"fromBlock": "0x0", "toBlock": hex(101)}])["error"]
    assert err == {"code": -32602, "message": "range 101 exceeds limit of 100"}
    assert "result" in call(node, "eth_getLogs", [{"fromBlock": "0x0", "toBlock": hex(100)}])
    default = MockNode(Chain(8, G), lambda: G + 30_000 * S)
    err = call(default, "eth_getLogs", [{"fromBlock": "0x0", "toBlock": "latest"}])["error"]
    assert err["message"] == "range 30000 exceeds limit of 10000"


def test_get_logs_refuses_an_inverted_range_and_bad_filters(node):
    err = call(node, "eth_getLogs", [{"fromBlock": "0x10", "toBlock": "0x5"}])["error"]
    assert err == {"code": -32000, "message": "invalid block range params"}
    assert call(node, "eth_getLogs", [{"address": "0x12"}])["error"]["code"] == -32602
    assert call(node, "eth_getLogs", [{"topics": ["0x12"]}])["error"]["code"] == -32602
    assert call(node, "eth_getLogs", ["latest"])["error"]["code"] == -32602


def test_fee_history_has_one_more_base_fee_than_blocks(node):
    r = result(node, "eth_feeHistory", ["0x4", "latest", [10, 90]])
    assert r["oldestBlock"] == hex(297)
    assert len(r["baseFeePerGas"]) == 5 and len(r["gasUsedRatio"]) == 4
    assert len(r["reward"]) == 4 and all(len(x) == 2 for x in r["reward"])
    assert "reward" not in result(node, "eth_feeHistory", [4, "0x10"])
    assert call(node, "eth_feeHistory", ["0x4", "latest", [90, 10]])["error"]["code"] == -32000


def test_calls_and_gas_estimates_depend_on_the_target(node):
    token = node.chain.token_contracts[0]
    assert result(node, "eth_call", [{"to": ADDR, "data": "0x"}, "latest"]) == "0x"
    word = result(node, "eth_call", [{"to": token, "data": "0x70a08231"}, "latest"])
    assert len(word) == 66
    assert result(node, "eth_getCode", [token, "latest"]).startswith("0x6080")
    assert result(node, "eth_getCode", [ADDR, "latest"]) == "0x"
    assert result(node, "eth_estimateGas", [{"to": ADDR}]) == hex(21_000)
    assert int(result(node, "eth_estimateGas", [{"to": token, "data": "0x0100"}]), 16) == (
        21_000 + 16 + 4 + 30_000
    )
    assert call(node, "eth_call", [{"to": "0x12"}])["error"]["code"] == -32602
    assert call(node, "eth_call", [{"to": ADDR, "data": "xyz"}])["error"]["code"] == -32602


def test_the_nonce_never_decreases(node):
    counts = [int(result(node, "eth_getTransactionCount", [ADDR, hex(n)]), 16) for n in range(300)]
    assert counts == sorted(counts) and counts[-1] > counts[0]
