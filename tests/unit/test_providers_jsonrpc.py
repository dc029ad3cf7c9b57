"""Pins providers.jsonrpc: every method, geth's error shapes, batches and id types."""

import json
from typing import Any

import pytest

from providers import Chain, MockNode
from providers.jsonrpc import FINALIZED_DEPTH, SAFE_DEPTH

G = 1_700_000_000_000_000_000
ADDR = "0x" + "12" * 20


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now_ns: int) -> None:
        self.now_ns = now_ns

    def __call__(self) -> int:
        return self.now_ns


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(G + 100 * 10**9 + 1)  # head = 100


@pytest.fixture
def node(clock: FakeClock) -> MockNode:
    return MockNode(Chain(1, G, chain_id=31337), clock, name="A")


def call(node: MockNode, method: str, params: Any = None, rid: Any = 1) -> dict[str, Any]:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
    if params is not None:
        msg["params"] = params
    return json.loads(node.handle(json.dumps(msg).encode()))


def result(node: MockNode, method: str, params: Any = None) -> Any:
    r = call(node, method, params)
    assert "error" not in r, r
    return r["result"]


def error(node: MockNode, method: str, params: Any = None) -> dict[str, Any]:
    r = call(node, method, params)
    assert "result" not in r, r
    return r["error"]


# ------------------------------------------------------------------ methods


def test_simple_methods_answer_like_a_node(node):
    assert result(node, "eth_chainId") == "0x7a69"
    assert result(node, "net_version") == "31337"
    assert result(node, "web3_clientVersion") == "battle-mock/v0.1.0/A"
    assert result(node, "eth_syncing") is False
    assert result(node, "eth_blockNumber") == "0x64"
    gas_price = int(result(node, "eth_gasPrice"), 16)
    assert gas_price == node.chain.base_fee(100) + int(result(node, "eth_maxPriorityFeePerGas"), 16)


def test_responses_are_compact_json_with_jsonrpc_first():
    node = MockNode(Chain(1, G), lambda: G)
    body = node.handle(b'{"jsonrpc":"2.0","id":7,"method":"eth_blockNumber","params":[]}')
    assert body == b'{"jsonrpc":"2.0","id":7,"result":"0x0"}'


def test_block_number_follows_the_clock(node, clock):
    clock.now_ns += 5 * 10**9
    assert result(node, "eth_blockNumber") == "0x69"


def test_chain_id_is_configurable():
    node = MockNode(Chain(1, G, chain_id=1), lambda: G)
    assert result(node, "eth_chainId") == "0x1"
    assert result(node, "net_version") == "1"


@pytest.mark.parametrize(
    ("tag", "number"),
    [
        ("latest", 100),
        ("pending", 100),
        ("earliest", 0),
        ("safe", 100 - SAFE_DEPTH),
        ("finalized", 100 - FINALIZED_DEPTH),
        ("0x0", 0),
        ("0x2a", 42),
        ("0x64", 100),
    ],
)
def test_get_block_by_number_resolves_tags_and_numbers(node, tag, number):
    block = result(node, "eth_getBlockByNumber", [tag, False])
    assert block == node.chain.block(number)


def test_safe_and_finalized_do_not_go_below_genesis():
    node = MockNode(Chain(1, G), lambda: G + 3 * 10**9)
    assert result(node, "eth_getBlockByNumber", ["safe", False])["number"] == "0x0"
    assert result(node, "eth_getBlockByNumber", ["finalized", False])["number"] == "0x0"


def test_get_block_by_number_with_full_transactions(node):
    block = result(node, "eth_getBlockByNumber", ["0x2a", True])
    assert block == node.chain.block(42, full_txs=True)


def test_a_block_beyond_the_head_is_null_like_geth(node):
    assert result(node, "eth_getBlockByNumber", ["0x65", False]) is None


def test_get_balance_is_deterministic_and_depends_on_the_block(node):
    latest = result(node, "eth_getBalance", [ADDR, "latest"])
    assert latest == hex(node.chain.balance(ADDR, 100))
    assert result(node, "eth_getBalance", [ADDR, "0x64"]) == latest
    assert result(node, "eth_getBalance", [ADDR, "0x63"]) != latest
    assert result(node, "eth_getBalance", [ADDR.upper().replace("0X", "0x"), "latest"]) == latest


def test_get_balance_accepts_the_block_number_object_form(node):
    assert result(node, "eth_getBalance", [ADDR, {"blockNumber": "0x5"}]) == hex(
        node.chain.balance(ADDR, 5)
    )


def test_get_balance_beyond_the_head_is_header_not_found(node):
    assert error(node, "eth_getBalance", [ADDR, "0x65"]) == {
        "code": -32000,
        "message": "header not found",
    }


# ------------------------------------------------------------------ invalid params

PREFIX = "json: cannot unmarshal"
ADDR_T = "into Go value of type common.Address"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (["0x1234", "latest"], "invalid argument 0: hex string has length 4, want 40 for common.Address"),  # noqa: E501
        (["12" * 20, "latest"], f"invalid argument 0: {PREFIX} hex string without 0x prefix {ADDR_T}"),  # noqa: E501
        (["0x123", "latest"], f"invalid argument 0: {PREFIX} hex string of odd length {ADDR_T}"),
        (["0x" + "zz" * 20, "latest"], f"invalid argument 0: {PREFIX} invalid hex string {ADDR_T}"),
        ([42, "latest"], f"invalid argument 0: {PREFIX} non-string {ADDR_T}"),
        ([ADDR, "0x"], 'invalid argument 1: hex string "0x"'),
        ([ADDR, "12"], "invalid argument 1: hex string without 0x prefix"),
        ([ADDR, "0x01"], "invalid argument 1: hex number with leading zero digits"),
        ([ADDR, "0xg"], "invalid argument 1: invalid hex string"),
        ([ADDR, "0x" + "f" * 17], "invalid argument 1: hex number > 64 bits"),
        ([ADDR, "0x" + "f" * 16], "invalid argument 1: block number larger than int64"),
        ([ADDR, 5], f"invalid argument 1: {PREFIX} number into Go value of type string"),
        ([ADDR], "missing value for required argument 1"),
        ([], "missing value for required argument 0"),
        ([ADDR, "latest", 1], "too many arguments, want at most 2"),
    ],
)  # fmt: skip
def test_get_balance_rejects_bad_params_with_gethlike_messages(node, params, message):
    assert error(node, "eth_getBalance", params) == {"code": -32602, "message": message}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (["latest"], "missing value for required argument 1"),
        (["latest", "yes"], f"invalid argument 1: {PREFIX} string into Go value of type bool"),
        (["newest", False], "invalid argument 0: hex string without 0x prefix"),
        ([None, False], f"invalid argument 0: {PREFIX} null into Go value of type string"),
    ],
)
def test_get_block_by_number_rejects_bad_params(node, params, message):
    assert error(node, "eth_getBlockByNumber", params) == {"code": -32602, "message": message}


def test_params_that_are_not_an_array_are_refused(node):
    assert error(node, "eth_blockNumber", {"a": 1}) == {"code": -32602, "message": "non-array args"}


def test_a_method_without_params_refuses_extra_arguments(node):
    assert error(node, "eth_blockNumber", [1]) == {
        "code": -32602,
        "message": "too many arguments, want at most 0",
    }


# ------------------------------------------------------------------ protocol errors


def test_an_unknown_method_gets_gethlike_method_not_found(node):
    assert call(node, "eth_foo", [], rid=3) == {
        "jsonrpc": "2.0",
        "id": 3,
        "error": {"code": -32601, "message": "the method eth_foo does not exist/is not available"},
    }


@pytest.mark.parametrize("body", [b"", b"{", b"not json", b'{"id":1,', b"\xff\xfe"])
def test_a_body_that_is_not_json_is_a_parse_error_with_null_id(node, body):
    r = json.loads(node.handle(body))
    assert r["id"] is None
    assert r["error"]["code"] == -32700
    assert r["error"]["message"].startswith("parse error")


@pytest.mark.parametrize(
    "msg",
    [
        42,
        "eth_blockNumber",
        {"jsonrpc": "2.0", "id": 1},
        {"jsonrpc": "2.0", "id": 1, "method": 5},
        {"jsonrpc": "2.0", "id": 1, "method": ""},
        {"jsonrpc": "2.0", "id": {"a": 1}, "method": "eth_blockNumber"},
        {"jsonrpc": "2.0", "id": [1], "method": "eth_blockNumber"},
        {"jsonrpc": "2.0", "id": True, "method": "eth_blockNumber"},
    ],
)
def test_a_message_that_is_not_a_valid_request_is_an_invalid_request(node, msg):
    r = json.loads(node.handle(json.dumps(msg).encode()))
    assert r["error"] == {"code": -32600, "message": "invalid request"}


def test_an_invalid_request_keeps_a_valid_id(node):
    r = json.loads(node.handle(b'{"jsonrpc":"2.0","id":"x"}'))
    assert r["id"] == "x" and r["error"]["code"] == -32600


@pytest.mark.parametrize("rid", [0, 1, -5, 2**70, 1.5, "bt-0-1", "", None])
def test_ids_of_every_json_type_are_preserved(node, rid):
    r = call(node, "eth_chainId", rid=rid)
    assert "id" in r and r["id"] == rid and type(r["id"]) is type(rid)


def test_a_notification_gets_no_response(node):
    assert node.handle(b'{"jsonrpc":"2.0","method":"eth_blockNumber"}') == b""
    assert node.handle(b'{"jsonrpc":"2.0","method":"eth_nothing"}') == b""


# ------------------------------------------------------------------ batches


def test_a_batch_is_answered_in_order_without_its_notifications(node):
    batch = [
        {"jsonrpc": "2.0", "id": "a", "method": "eth_blockNumber"},
        {"jsonrpc": "2.0", "method": "eth_chainId"},
        {"jsonrpc": "2.0", "id": 2, "method": "eth_nope"},
        {"jsonrpc": "2.0", "id": None, "method": "eth_chainId"},
        7,
    ]
    r = json.loads(node.handle(json.dumps(batch).encode()))
    assert r == [
        {"jsonrpc": "2.0", "id": "a", "result": "0x64"},
        {
            "jsonrpc": "2.0",
            "id": 2,
            "error": {
                "code": -32601,
                "message": "the method eth_nope does not exist/is not available",
            },
        },
        {"jsonrpc": "2.0", "id": None, "result": "0x7a69"},
        {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "invalid request"}},
    ]


def test_a_batch_sees_one_head(node, clock):
    calls = []

    def ticking() -> int:
        calls.append(1)
        return clock()

    n = MockNode(node.chain, ticking)
    body = json.dumps([{"jsonrpc": "2.0", "id": i, "method": "eth_blockNumber"} for i in range(5)])
    assert len(json.loads(n.handle(body.encode()))) == 5
    assert len(calls) == 1


def test_an_empty_batch_is_a_single_invalid_request_error_like_geth(node):
    assert json.loads(node.handle(b"[]")) == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32600, "message": "empty batch"},
    }


def test_a_batch_of_notifications_gets_an_empty_body(node):
    assert node.handle(b'[{"jsonrpc":"2.0","method":"eth_blockNumber"}]') == b""


def test_a_batch_over_the_limit_is_one_error_carrying_the_first_id():
    node = MockNode(Chain(1, G), lambda: G, batch_limit=2)
    batch = [{"jsonrpc": "2.0", "id": 10 + i, "method": "eth_chainId"} for i in range(3)]
    assert json.loads(node.handle(json.dumps(batch).encode())) == [
        {"jsonrpc": "2.0", "id": 10, "error": {"code": -32600, "message": "batch too large"}}
    ]


def test_methods_lists_what_the_node_answers(node):
    assert {"eth_blockNumber", "eth_getBalance", "eth_getBlockByNumber"} <= node.methods
