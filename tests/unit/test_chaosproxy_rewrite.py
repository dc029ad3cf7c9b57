"""What a client observes of the body-level faults, byte for byte."""

from __future__ import annotations

import json

import pytest

from chaosproxy.exchange import parse_request
from chaosproxy.rewrite import (
    corrupt,
    head_lie_response,
    notification_facts,
    rpc_error_body,
    rpc_error_merge,
    stale_request,
    stale_response,
    tag_request,
    ws_close_frame,
)

BATCH = json.dumps(
    [{"jsonrpc": "2.0", "id": 1, "method": "a"}, {"jsonrpc": "2.0", "id": "x", "method": "b"}]
).encode()


def test_rpc_error_echoes_every_batch_id_or_collapses_to_one_object():
    info = parse_request(BATCH)
    doc = json.loads(rpc_error_body(info, -32005, "limit", {"k": 1}))
    assert [(e["id"], e["error"]) for e in doc] == [
        (1, {"code": -32005, "message": "limit", "data": {"k": 1}}),
        ("x", {"code": -32005, "message": "limit", "data": {"k": 1}}),
    ]
    collapsed = json.loads(rpc_error_body(info, -32000, "batch", collapse=True))
    assert collapsed["id"] is None and collapsed["error"]["code"] == -32000


def test_rpc_error_merge_replaces_only_the_given_ids():
    upstream = json.dumps([{"id": 1, "result": "0x1"}, {"id": "x", "result": "0x2"}]).encode()
    doc = json.loads(rpc_error_merge(upstream, ["x"], -32000, "header not found"))
    assert doc[0] == {"id": 1, "result": "0x1"}
    assert doc[1]["error"] == {"code": -32000, "message": "header not found"}
    assert rpc_error_merge(b'{"id": 1}', ["x"], 1, "m") is None


BODY = b'{"jsonrpc":"2.0","id":7,"result":"0x64"}'


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("truncate", BODY[: len(BODY) // 2]),
        ("invalid_json", b'{"jsonrpc":"2.0","id":7,"result":"0x64"<!garbage'),
        ("wrong_id", b'{"jsonrpc":"2.0","id":1000007,"result":"0x64"}'),
        ("null_result", b'{"jsonrpc":"2.0","id":7,"result":null}'),
    ],
)
def test_corrupt_modes(mode, expected):
    assert corrupt(BODY, mode) == expected


def test_wrong_id_prefixes_string_ids_and_null_result_keeps_errors():
    assert json.loads(corrupt(b'{"id":"bt-1","result":1}', "wrong_id"))["id"] == "wrong-bt-1"
    err = b'{"id":1,"error":{"code":1,"message":"m"}}'
    assert json.loads(corrupt(err, "null_result")) == json.loads(err)


def test_stale_request_rewrites_latest_tags_including_filters():
    body = json.dumps(
        [
            {"id": 1, "method": "eth_getBalance", "params": ["0xa", "latest"]},
            {
                "id": 2,
                "method": "eth_getLogs",
                "params": [{"fromBlock": "latest", "toBlock": "latest"}],
            },
        ]
    ).encode()
    doc = json.loads(stale_request(body, 100, 3))
    assert doc[0]["params"] == ["0xa", "0x61"]
    assert doc[1]["params"] == [{"fromBlock": "0x61", "toBlock": "0x61"}]
    assert stale_request(body, None, 3) is None  # head not seen yet: left alone
    assert stale_request(b'{"params":["0x1"]}', 100, 3) is None


def test_stale_response_lowers_block_number_and_reports_the_true_head():
    new, head = stale_response(b'{"id":1,"result":"0x64"}', ("eth_blockNumber",), 4)
    assert json.loads(new)["result"] == "0x60" and head == 100
    assert stale_response(b'{"id":1,"result":"0x64"}', ("eth_chainId",), 4) == (None, None)


def _call(i, method, *params):
    return {"jsonrpc": "2.0", "id": i, "method": method, "params": list(params)}


def _answer(i, result):
    return {"jsonrpc": "2.0", "id": i, "result": result}


BLOCK = {"number": "0x64", "hash": "0x" + "ab" * 32}


def test_tag_request_replaces_only_the_tags_it_names():
    body = json.dumps([_call(1, "eth_getBlockByNumber", "safe", False),
                       _call(2, "eth_getBlockByNumber", "latest", False),
                       _call(3, "eth_getLogs", {"fromBlock": "finalized", "toBlock": "safe"})]
                      ).encode()  # fmt: skip
    doc = json.loads(tag_request(body, {"safe": "0x10", "finalized": "0x10"}))
    assert [c["params"][0] for c in doc] == [
        "0x10",
        "latest",
        {"fromBlock": "0x10", "toBlock": "0x10"},
    ]
    assert tag_request(body, {"pending": "0x0"}) is None


def test_head_lie_ahead_raises_heads_and_latest_blocks_but_not_blocks_asked_by_number():
    request = json.dumps([_call(1, "eth_blockNumber"),
                          _call(2, "eth_getBlockByNumber", "latest", False),
                          _call(3, "eth_getBlockByNumber", "0x64", False)]).encode()  # fmt: skip
    # The answers in another order: matched to their calls by id.
    body = json.dumps(
        [_answer(3, dict(BLOCK)), _answer(1, "0x64"), _answer(2, dict(BLOCK))]
    ).encode()
    new, head = head_lie_response(request, body, "ahead", 1000)
    doc = {e["id"]: e["result"] for e in json.loads(new)}
    assert (doc[1], doc[2]["number"], doc[3]["number"], head) == ("0x44c", "0x44c", "0x64", 100)


def test_head_lie_zero_answers_head_zero_and_tags_only_learns_the_head():
    request = json.dumps(_call(1, "eth_blockNumber")).encode()
    body = json.dumps(_answer(1, "0x64")).encode()
    new, head = head_lie_response(request, body, "zero", 0)
    assert (json.loads(new)["result"], head) == ("0x0", 100)
    assert head_lie_response(request, body, "tags", 100) == (None, 100)
    chain_id = json.dumps(_call(1, "eth_chainId")).encode()
    assert head_lie_response(chain_id, body, "ahead", 1000) == (None, None)
    assert head_lie_response(request, b"<html>", "ahead", 1000) == (None, None)


def test_notification_facts_reads_subscription_and_block():
    note = (
        b'{"method":"eth_subscription","params":{"subscription":"0xs","result":{"number":"0x10"}}}'
    )
    assert notification_facts(note) == ("0xs", 16)
    assert notification_facts(b'{"id":1,"result":"0x1"}') is None


def test_ws_close_frame_is_an_unmasked_close_with_code_and_reason():
    assert ws_close_frame(4000, "bye") == b"\x88\x05\x0f\xa0bye"


def test_head_lie_chain_id_answers_another_chains_id_and_leaves_heads_alone():
    request = json.dumps([_call(1, "eth_chainId"), _call(2, "eth_blockNumber")]).encode()
    body = json.dumps([_answer(1, "0x7a69"), _answer(2, "0x64")]).encode()
    new, head = head_lie_response(request, body, "chain_id", 0)
    assert [e["result"] for e in json.loads(new)] == ["0x1", "0x64"] and head == 100
    # On mainnet itself the lie is Sepolia's id; an id of its own is told as given.
    mainnet = json.dumps([_answer(1, "0x1"), _answer(2, "0x64")]).encode()
    assert json.loads(head_lie_response(request, mainnet, "chain_id", 0)[0])[0]["result"] == (
        hex(11155111)
    )
    told = head_lie_response(request, body, "chain_id", 0, chain_id=56)[0]
    assert json.loads(told)[0]["result"] == "0x38"


def test_head_lie_syncing_reports_a_sync_short_of_the_head_seen():
    request = json.dumps(_call(1, "eth_syncing")).encode()
    body = json.dumps(_answer(1, False)).encode()
    new, head = head_lie_response(request, body, "syncing", 100, known_head=1000)
    assert json.loads(new)["result"] == {
        "startingBlock": "0x0",
        "currentBlock": hex(900),
        "highestBlock": hex(1000),
    }
    assert head is None
    # Other modes tell no state lies; a node already syncing is left as it says.
    assert head_lie_response(request, body, "ahead", 1000) == (None, None)
    syncing = json.dumps(_answer(1, {"currentBlock": "0x1"})).encode()
    assert head_lie_response(request, syncing, "syncing", 100) == (None, None)
