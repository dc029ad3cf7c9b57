"""A real client library (web3.py from PyPI) uses a mock provider process without
noticing: blocks, balances, transactions, receipts and logs over HTTP, and newHeads and
logs subscriptions over WebSocket on the same port."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

web3 = pytest.importorskip("web3", reason="web3 is a dev dependency (pip install -e '.[dev]')")
from web3 import AsyncWeb3, Web3  # noqa: E402
from web3.providers.persistent import WebSocketProvider  # noqa: E402

from providers.chain import TRANSFER_TOPIC  # noqa: E402

pytestmark = pytest.mark.timeout(60)

BLOCK_TIME_MS = 300


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    genesis = time.time_ns() - 500 * BLOCK_TIME_MS * 1_000_000
    proc = subprocess.Popen(
        [sys.executable, "-m", "providers.mock", "--port", "0", "--seed", "9",
         "--genesis-ns", str(genesis), "--block-time-ms", str(BLOCK_TIME_MS)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.startswith("ready "), line
        yield line.split(" ", 1)[1].strip()
    finally:
        proc.kill()
        proc.wait(10)


def test_web3_reads_blocks_balances_transactions_and_logs_over_http(provider):
    w3 = Web3(Web3.HTTPProvider(provider, request_kwargs={"timeout": 5}))
    assert w3.is_connected()
    assert w3.eth.chain_id == 31337
    head = w3.eth.block_number
    assert head >= 500
    block = w3.eth.get_block(head - 5, full_transactions=True)
    assert block.number == head - 5
    assert w3.eth.get_block(block.hash).number == block.number
    parent = w3.eth.get_block(head - 6)
    assert block.parentHash == parent.hash
    addr = Web3.to_checksum_address("0x" + "12" * 20)
    assert w3.eth.get_balance(addr, head - 5) < w3.eth.get_balance(addr, head - 4)

    window = {"fromBlock": head - 50, "toBlock": head - 1}
    logs = w3.eth.get_logs({**window, "topics": [TRANSFER_TOPIC]})
    assert logs, "50 blocks of the mock chain carry Transfer logs"
    log = logs[0]
    receipt = w3.eth.get_transaction_receipt(log.transactionHash)
    assert receipt.status == 1 and receipt.blockNumber == log.blockNumber
    assert log in receipt.logs
    tx = w3.eth.get_transaction(log.transactionHash)
    assert tx.to == log.address and tx.blockHash == log.blockHash
    only = w3.eth.get_logs({**window, "address": log.address})
    assert only and all(x.address == log.address for x in only)
    fees = w3.eth.fee_history(4, "latest", [50])
    assert len(fees.baseFeePerGas) == 5


def test_web3_subscribes_to_new_heads_and_logs_over_websocket(provider):
    ws_url = provider.replace("http://", "ws://")

    async def run() -> tuple[list[int], list[str], int]:
        async with AsyncWeb3(WebSocketProvider(ws_url)) as w3:
            assert await w3.eth.chain_id == 31337
            heads_id = await w3.eth.subscribe("newHeads")
            logs_id = await w3.eth.subscribe("logs", {"topics": [TRANSFER_TOPIC]})
            numbers: list[int] = []
            hashes: list[str] = []
            log_count = 0
            async with asyncio.timeout(15):
                async for msg in w3.socket.process_subscriptions():
                    if msg["subscription"] == heads_id:
                        numbers.append(msg["result"]["number"])
                        hashes.append(msg["result"]["parentHash"])
                        hashes.append(msg["result"]["hash"])
                    elif msg["subscription"] == logs_id:
                        log_count += 1
                    if len(numbers) >= 8:
                        break
            assert await w3.eth.unsubscribe(heads_id)
            return numbers, hashes, log_count

    numbers, hashes, log_count = asyncio.run(run())
    assert numbers == list(range(numbers[0], numbers[0] + 8)), "one notification per block"
    # each head's parentHash is the previous head's hash
    assert all(hashes[2 * i + 2] == hashes[2 * i + 1] for i in range(7))
    assert log_count > 0
