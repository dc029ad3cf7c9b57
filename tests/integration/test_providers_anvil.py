"""Conformance: the mock and a real node (anvil) answer the same requests with results
of the same shape (keys and JSON types), method by method, errors for bad params too.
Also pins the anvil wrapper: one chain for nodes started with one timestamp, clean exit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from providers import Chain, MockNode
from providers.anvil import find_anvil
from providers.chain import TRANSFER_TOPIC
from scenarios.processes import free_ports

pytestmark = pytest.mark.timeout(90)

REQUIRE = os.environ.get("BATTLE_REQUIRE_ANVIL") == "1"
ANVIL = find_anvil()
if ANVIL is None and not REQUIRE:
    pytest.skip(
        "anvil not installed (run `make` to npm-install @foundry-rs/anvil-linux-amd64)",
        allow_module_level=True,
    )

# anvil's first default dev account (the well-known "test test ... junk" mnemonic).
DEV = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
OTHER = "0x" + "12" * 20

# Init code: emits Transfer(from, to, 1) with LOG3, then deploys a runtime that returns
# the word 42 to every call, so that logs, receipts and eth_call have real data.
_RUNTIME = "602a60005260206000f3"
_INIT = (
    "6001600052"
    + "7f" + "00" * 12 + "22" * 20
    + "7f" + "00" * 12 + "11" * 20
    + "7f" + TRANSFER_TOPIC[2:]
    + "60206000a3"
    + "600a6079600039"
    + "600a6000f3"
)  # fmt: skip
assert len(_INIT) // 2 == 0x79
DEPLOY = "0x" + _INIT + _RUNTIME


def _free_port() -> int:
    # Reserved (TIME_WAIT), not just seen free: no other test's port-0 bind takes it
    # before the child binds it.
    return free_ports(1)[0]


def _start_anvil(port: int, timestamp: int, block_time_ms: int = 1000) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "providers.anvil", "--port", str(port),
         "--timestamp", str(timestamp), "--block-time-ms", str(block_time_ms)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith("ready "):
        proc.kill()
        raise AssertionError(f"anvil wrapper did not start: {line!r} {proc.stderr.read()}")
    return proc


def _stop(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def _rpc(url: str, method: str, params: Any) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    return httpx.post(url, json=body, timeout=5.0).json()


@pytest.fixture(scope="module")
def anvil():
    """One anvil node with a contract deployed (a log) and a plain transfer mined in one
    block: the block's transactions then hold both shapes, as a mock block's do."""
    port = _free_port()
    proc = _start_anvil(port, int(time.time()) - 100)
    url = f"http://127.0.0.1:{port}/"
    try:
        yield {"url": url, **_deploy_and_transfer_in_one_block(url)}
    finally:
        _stop(proc)


def _deploy_and_transfer_in_one_block(url: str) -> dict[str, Any]:
    # The wrapper mines once a second; both transactions are sent just after a block, so
    # only a machine stalled for most of a second splits them, and then the pair is sent
    # again.
    for _ in range(5):
        head = _wait_for_next_block(url, int(_rpc(url, "eth_blockNumber", [])["result"], 16))
        deploy = _rpc(url, "eth_sendTransaction", [{"from": DEV, "data": DEPLOY}])["result"]
        transfer = _rpc(url, "eth_sendTransaction", [{"from": DEV, "to": OTHER, "value": "0x1"}])
        _wait_for_next_block(url, head)
        receipts = [_receipt(url, tx) for tx in (deploy, transfer["result"])]
        if receipts[0]["blockNumber"] == receipts[1]["blockNumber"]:
            return {
                "transfer": transfer["result"],
                "contract": receipts[0]["contractAddress"],
                "log_block": receipts[0]["blockNumber"],
            }
    raise AssertionError("anvil never mined the deploy and the transfer in one block")


def _wait_for_next_block(url: str, head: int) -> int:
    deadline = time.monotonic() + 30
    while (now := int(_rpc(url, "eth_blockNumber", [])["result"], 16)) <= head:
        assert time.monotonic() < deadline, "anvil mined no block in 30 s"
        time.sleep(0.02)
    return now


def _receipt(url: str, tx: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while (receipt := _rpc(url, "eth_getTransactionReceipt", [tx])["result"]) is None:
        assert time.monotonic() < deadline, f"anvil did not mine {tx}"
        time.sleep(0.05)
    return receipt


@pytest.fixture(scope="module")
def mock():
    """The mock, and the references the requests need (a block with a transfer and logs)."""
    genesis = time.time_ns() - 1000 * 10**9
    node = MockNode(Chain(5, genesis, 1000))
    chain = node.chain
    n = next(n for n in range(1, 500) if any(chain.logs(n)) and chain.tx_count(n))
    plain = next(
        (n2, i)
        for n2 in range(1, 500)
        for i in range(chain.tx_count(n2))
        if chain.tx(n2, i)["input"] == "0x"
    )

    def call(method: str, params: Any) -> dict[str, Any]:
        msg = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        return json.loads(node.handle(json.dumps(msg).encode()))

    return {
        "call": call,
        "transfer": chain.tx_hash(*plain),
        "contract": chain.logs(n)[0]["address"],
        "log_block": hex(n),
    }


def shape(value: Any) -> Any:
    """Keys and JSON types; a list's shape is the list of its elements' distinct shapes."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in sorted(value.items()) if k not in _QUIRKS}
    if isinstance(value, list):
        shapes = []
        for v in value:
            if shape(v) not in shapes:
                shapes.append(shape(v))
        return shapes
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if value is None:
        return "null"
    return "string"


# anvil 1.7.1 sends a receipt's blockTimestamp as a JSON number (its transactions and
# logs send a hex string, as the execution-apis spec does); the mock sends the string.
_QUIRKS = frozenset({"blockTimestamp"})


def same_shape(a: Any, b: Any) -> bool:
    """Equal shapes; lists agree when either is empty or they share an element shape
    (a block's transactions may be a transfer on one side, a contract creation and a
    transfer on the other)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_shape(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return not a or not b or any(same_shape(x, y) for x in a for y in b)
    return a == b


def _outcome(response: dict[str, Any]) -> Any:
    if "error" in response:
        return {"error": shape(response["error"]), "code_class": _code_class(response)}
    return {"result": shape(response["result"])}


def _code_class(response: dict[str, Any]) -> str:
    """Standard codes must agree; server-defined ones (-32000..-32099, anvil's -32602 for
    a missing block, …) only in being errors."""
    code = response["error"]["code"]
    return str(code) if code in (-32601, -32602, -32600) else "server"


# (name, method, params): "$x" is filled from each side's own references.
CASES: list[tuple[str, str, list[Any]]] = [
    ("chainId", "eth_chainId", []),
    ("net_version", "net_version", []),
    ("clientVersion", "web3_clientVersion", []),
    ("syncing", "eth_syncing", []),
    ("blockNumber", "eth_blockNumber", []),
    ("block latest", "eth_getBlockByNumber", ["latest", False]),
    ("block earliest", "eth_getBlockByNumber", ["earliest", False]),
    ("block safe", "eth_getBlockByNumber", ["safe", False]),
    ("block finalized", "eth_getBlockByNumber", ["finalized", False]),
    ("block with logs, full txs", "eth_getBlockByNumber", ["$log_block", True]),
    ("block not yet produced", "eth_getBlockByNumber", ["0xffffffff", False]),
    ("block by unknown hash", "eth_getBlockByHash", ["0x" + "ab" * 32, False]),
    ("balance", "eth_getBalance", [OTHER, "latest"]),
    ("transaction count", "eth_getTransactionCount", [OTHER, "latest"]),
    ("code of an account", "eth_getCode", [OTHER, "latest"]),
    ("code of a contract", "eth_getCode", ["$contract", "latest"]),
    ("call an account", "eth_call", [{"to": OTHER, "data": "0x"}, "latest"]),
    ("call a contract", "eth_call", [{"to": "$contract", "data": "0x12345678"}, "latest"]),
    ("estimate a transfer", "eth_estimateGas", [{"from": DEV, "to": OTHER, "value": "0x1"}]),
    ("gas price", "eth_gasPrice", []),
    ("priority fee", "eth_maxPriorityFeePerGas", []),
    ("fee history", "eth_feeHistory", ["0x4", "latest", [25, 75]]),
    ("logs of a block", "eth_getLogs", [{"fromBlock": "$log_block", "toBlock": "$log_block"}]),
    (
        "logs by topic",
        "eth_getLogs",
        [{"fromBlock": "$log_block", "toBlock": "$log_block", "topics": [TRANSFER_TOPIC]}],
    ),
    ("transaction", "eth_getTransactionByHash", ["$transfer"]),
    ("receipt", "eth_getTransactionReceipt", ["$transfer"]),
    ("unknown transaction", "eth_getTransactionByHash", ["0x" + "cd" * 32]),
    ("unknown receipt", "eth_getTransactionReceipt", ["0x" + "cd" * 32]),
    # errors
    ("unknown method", "eth_noSuchMethod", []),
    ("balance of a bad address", "eth_getBalance", ["0x12", "latest"]),
    ("block with a bad flag", "eth_getBlockByNumber", ["0x1", "yes"]),
    ("block without its flag", "eth_getBlockByNumber", ["latest"]),
    ("balance with a bad block", "eth_getBalance", [OTHER, "0xzz"]),
    ("block by a short hash", "eth_getBlockByHash", ["0x1234", False]),
]


def _fill(params: Any, refs: dict[str, Any]) -> Any:
    if isinstance(params, str) and params.startswith("$"):
        return refs[params[1:]]
    if isinstance(params, list):
        return [_fill(p, refs) for p in params]
    if isinstance(params, dict):
        return {k: _fill(v, refs) for k, v in params.items()}
    return params


@pytest.mark.parametrize(("name", "method", "params"), CASES, ids=[c[0] for c in CASES])
def test_the_mock_answers_like_anvil(anvil, mock, name, method, params):
    real = _rpc(anvil["url"], method, _fill(params, anvil))
    ours = mock["call"](method, _fill(params, mock))
    assert same_shape(_outcome(ours), _outcome(real)), (
        f"{name}: mock {json.dumps(ours)[:600]}\n  anvil {json.dumps(real)[:600]}"
    )


def test_the_comparison_catches_a_missing_key(anvil, mock):
    real = _rpc(anvil["url"], "eth_getBlockByNumber", ["latest", False])
    ours = mock["call"]("eth_getBlockByNumber", ["latest", False])
    assert same_shape(_outcome(ours), _outcome(real))
    del ours["result"]["requestsHash"]
    assert not same_shape(_outcome(ours), _outcome(real))
    ours["result"]["requestsHash"] = 7
    assert not same_shape(_outcome(ours), _outcome(real))


def test_anvil_nodes_started_with_one_timestamp_serve_one_chain():
    timestamp = int(time.time()) - 50
    ports = [_free_port(), _free_port()]
    procs = []
    try:
        for port in ports:
            procs.append(_start_anvil(port, timestamp))
            time.sleep(0.4)  # started apart on purpose
        urls = [f"http://127.0.0.1:{p}/" for p in ports]
        deadline = time.monotonic() + 20
        while (common := min(int(_rpc(u, "eth_blockNumber", [])["result"], 16) for u in urls)) < 3:
            assert time.monotonic() < deadline, "anvil nodes did not mine 3 blocks in 20 s"
            time.sleep(0.2)
        for n in range(1, common + 1):
            a, b = (_rpc(u, "eth_getBlockByNumber", [hex(n), False])["result"] for u in urls)
            assert a["hash"] == b["hash"], n
    finally:
        codes = [_stop(p) for p in procs]
    assert codes == [0, 0]


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--port", "0", "--timestamp", "1"], "--port"),
        (["--port", "8545", "--timestamp", "1", "--block-time-ms", "500"], "--block-time-ms"),
    ],
)
def test_the_anvil_wrapper_refuses_bad_arguments_in_one_line(args, field):
    r = subprocess.run(
        [sys.executable, "-m", "providers.anvil", *args], capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and field in r.stderr


def test_a_new_heads_notification_has_anvils_shape(anvil):
    from websockets.sync.client import connect

    ws_url = anvil["url"].replace("http://", "ws://")
    with connect(ws_url, open_timeout=5) as ws:
        sub = {"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]}
        ws.send(json.dumps(sub))
        real_reply = json.loads(ws.recv(timeout=5))
        real_note = json.loads(ws.recv(timeout=5))
    genesis = time.time_ns() - 100 * 10**9
    clock = {"now": genesis + 100 * 10**9 + 1}
    node = MockNode(Chain(5, genesis), lambda: clock["now"])
    session = node.open_session()
    our_reply = json.loads(session.message(json.dumps(sub).encode()).body)
    clock["now"] += 10**9
    (raw,) = session.poll(clock["now"])
    our_note = json.loads(raw)
    assert shape(our_reply) == shape(real_reply)
    assert same_shape(shape(our_note), shape(real_note)), (our_note, real_note)
