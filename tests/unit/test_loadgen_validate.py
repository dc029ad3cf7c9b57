"""Judging answers: a wrong 200 is invalid, never ok."""

from __future__ import annotations

import json
import re

import pytest

from loadgen import judge, judge_batch, validate
from loadgen.mix import RequestMix, parse_mix


def body(**fields) -> bytes:
    return json.dumps({"jsonrpc": "2.0", **fields}).encode()


CASES = [
    ("eth_blockNumber", 200, body(id="t", result="0x1f"), "ok", None, 31),
    ("eth_getBalance", 200, body(id="t", result="0x0"), "ok", None, None),
    ("eth_blockNumber", 200, body(id="u", result="0x1f"), "invalid", None, None),
    ("eth_blockNumber", 200, body(id="t", result=31), "invalid", None, None),
    ("eth_blockNumber", 200, body(id="t", result="0x01"), "invalid", None, None),
    ("eth_blockNumber", 200, body(id="t"), "invalid", None, None),
    ("eth_blockNumber", 200, b"<html>oops</html>", "invalid", None, None),
    (
        "eth_getBalance",
        200,
        body(id="t", error={"code": -32005, "message": "limit exceeded"}),
        "rpc_error",
        -32005,
        None,
    ),
    (
        "eth_blockNumber",
        502,
        body(id="t", error={"code": -32603, "message": "upstream A failed"}),
        "http_error",
        -32603,
        None,
    ),
    ("eth_blockNumber", 503, b"Service Unavailable", "http_error", None, None),
    ("eth_getBlockByNumber", 200, body(id="t", result=None), "ok", None, None),
    (
        "eth_getBlockByNumber",
        200,
        body(id="t", result={"number": "0x2", "hash": "0x" + "ab" * 32}),
        "ok",
        None,
        2,
    ),
    ("eth_getBlockByNumber", 200, body(id="t", result={"number": "0x2"}), "invalid", None, None),
]


@pytest.mark.parametrize("method,status,payload,outcome,code,block", CASES)
def test_judge_classifies_answers(method, status, payload, outcome, code, block):
    j = judge(method, "t", status, payload)
    assert (j.outcome, j.rpc_code, j.result_block) == (outcome, code, block)
    assert (j.error is None) == (outcome == "ok")


def test_mix_is_deterministic_under_a_seed():
    a = RequestMix({"eth_blockNumber": 1, "eth_getBalance": 3}, seed=7)
    b = RequestMix({"eth_blockNumber": 1, "eth_getBalance": 3}, seed=7)
    assert [a.next() for _ in range(50)] == [b.next() for _ in range(50)]


def test_parse_mix_names_the_bad_method_and_weight():
    assert parse_mix("eth_blockNumber=1, eth_getBalance=2") == {
        "eth_blockNumber": 1.0,
        "eth_getBalance": 2.0,
    }
    with pytest.raises(ValueError, match="mix method must be one of"):
        parse_mix("eth_nope=1")
    with pytest.raises(ValueError, match="mix weight of eth_blockNumber must be a number"):
        parse_mix("eth_blockNumber=x")
    with pytest.raises(ValueError, match="must be > 0"):
        parse_mix("eth_blockNumber=0")


# --------------------------------------------------------------- against the truth

SEC = 1_000_000_000


class FakeTruth:
    """Head n is produced at n seconds; block n's hash is 0x followed by n in hex."""

    def head_at(self, t_ns: int) -> int:
        return t_ns // SEC

    def block_hash(self, n: int) -> str:
        return f"0x{n:064x}"


def block(n: int, *, hash_of: int | None = None, parent_of: int | None = None) -> dict:
    h = n if hash_of is None else hash_of
    p = n - 1 if parent_of is None else parent_of
    return {"number": hex(n), "hash": f"0x{h:064x}", "parentHash": f"0x{p:064x}"}


def true_judge(method, result, params=(), sent=100 * SEC, done=100 * SEC + SEC // 2):
    return judge(
        method,
        "t",
        200,
        body(id="t", result=result),
        params=params,
        truth=FakeTruth(),
        t_sent_ns=sent,
        t_done_ns=done,
        max_lag_blocks=2,
    )


TRUTH_CASES = [
    ("eth_blockNumber", hex(100), [], "ok", None),
    ("eth_blockNumber", hex(98), [], "ok", None),
    ("eth_blockNumber", hex(101), [], "invalid", "ahead of the true head 100"),
    ("eth_blockNumber", hex(97), [], "invalid", "more than 2 blocks behind"),
    ("eth_getBlockByNumber", block(50), ["0x32", False], "ok", None),
    ("eth_getBlockByNumber", block(50, hash_of=7), ["0x32", False], "invalid", "not the true hash"),
    ("eth_getBlockByNumber", block(50, parent_of=7), ["0x32", False], "invalid", "parentHash"),
    ("eth_getBlockByNumber", block(51), ["0x32", False], "invalid", "must be 50 as asked"),
    ("eth_getBlockByNumber", None, ["0x32", False], "invalid", "block 50 exists, got null"),
    ("eth_getBlockByNumber", None, [hex(100), False], "ok", None),
    ("eth_getBlockByNumber", None, ["latest", False], "invalid", "latest block, got null"),
    ("eth_getBlockByNumber", block(100), ["latest", False], "ok", None),
    ("eth_getBlockByNumber", block(90), ["latest", False], "invalid", "behind the true head"),
    ("eth_getLogs", [{"blockNumber": "0x5", "blockHash": f"0x{5:064x}"}], [{}], "ok", None),
    ("eth_getLogs", [{"blockNumber": "0x5", "blockHash": f"0x{6:064x}"}], [{}], "invalid", "log 0"),
    (
        "eth_getTransactionReceipt",
        {"blockNumber": "0x5", "blockHash": "0x1"},
        ["0x"],
        "invalid",
        "receipt blockHash",
    ),
    ("eth_call", "0x" + "00" * 32, [], "ok", None),
    ("eth_call", "0x123", [], "invalid", "hex data"),
]


@pytest.mark.parametrize("method,result,params,outcome,reason", TRUTH_CASES)
def test_answers_are_judged_against_the_true_chain(method, result, params, outcome, reason):
    j = true_judge(method, result, params)
    assert j.outcome == outcome, j.error
    if reason:
        assert reason in j.error


def test_a_wrong_head_still_records_the_block_it_implies():
    # Analysis looks for heads going backwards, untrue ones included.
    assert true_judge("eth_blockNumber", hex(150)).result_block == 150
    assert true_judge("eth_blockNumber", "0x01").result_block is None


def test_without_a_truth_only_the_shape_is_judged():
    assert judge("eth_blockNumber", "t", 200, body(id="t", result=hex(10**9))).outcome == "ok"


def test_a_batch_is_matched_by_id_in_any_order():
    calls = [("eth_blockNumber", "a", []), ("eth_chainId", "b", [])]
    answer = json.dumps(
        [
            {"jsonrpc": "2.0", "id": "b", "result": "0x1"},
            {"jsonrpc": "2.0", "id": "a", "result": "0x64"},
        ]
    ).encode()
    j, each = judge_batch(calls, 200, answer)
    assert (j.outcome, j.result_block) == ("ok", 100)
    assert [e.outcome for e in each] == ["ok", "ok"]


@pytest.mark.parametrize(
    "answer,outcome,reason",
    [
        ([{"id": "a", "result": "0x64"}], "invalid", "batch of 2 answered with 1"),
        (
            [{"id": "a", "result": "0x64"}, {"id": "c", "result": "0x1"}],
            "invalid",
            "no answer with id 'b'",
        ),
        (
            [{"id": "a", "result": "0x64"}, {"id": "b", "error": {"code": -32005, "message": "x"}}],
            "rpc_error",
            "x",
        ),
        (
            {"id": None, "error": {"code": -32600, "message": "batch too large"}},
            "rpc_error",
            "batch too large",
        ),
        ({"id": "a", "result": "0x1"}, "invalid", "JSON array"),
    ],
)
def test_a_wrong_or_partial_batch_answer_is_not_ok(answer, outcome, reason):
    calls = [("eth_blockNumber", "a", []), ("eth_chainId", "b", [])]
    j, _ = judge_batch(calls, 200, json.dumps(answer).encode())
    assert j.outcome == outcome and reason in j.error


# ------------------------------------------------- the compact-answer shortcut

COMPACT_BODIES = [
    b'{"jsonrpc":"2.0","id":"t","result":"0x1f"}',
    b'{"jsonrpc":"2.0","id":"t","result":"0x"}',
    b'{"jsonrpc":"2.0","id":"t","result":"0x01"}',
    b'{"jsonrpc":"2.0","id":"t","result":"0xABC"}',
    b'{"jsonrpc":"2.0","id":"u","result":"0x1f"}',
    b'{"jsonrpc":"2.0","id":"\\u0074","result":"0x1f"}',
    b'{"jsonrpc":"2.0","id":"t\xc3\xa9","result":"0x1f"}',
    b'{"jsonrpc":"2.0","id":"t","result":"0x1f"} ',
    b'{"jsonrpc":"2.0","id":"t","result":"0x1f","result":"0x2"}',
    b'{"jsonrpc":"1.0","id":"t","result":"0x1f"}',
    b'{"jsonrpc":"2.0","id":"t","result":"0x1f"',
]


@pytest.mark.parametrize("payload", COMPACT_BODIES)
@pytest.mark.parametrize("method", ["eth_blockNumber", "eth_getBalance", "eth_call"])
def test_the_compact_answer_shortcut_judges_exactly_as_json_loads(monkeypatch, method, payload):
    truth = FakeTruth()
    args = dict(truth=truth, t_sent_ns=31 * SEC, t_done_ns=31 * SEC + 1, max_lag_blocks=2)
    fast = judge(method, "t", 200, payload, **args)
    monkeypatch.setattr(validate, "_SIMPLE_ANSWER", re.compile(rb"(?!)"))  # never matches
    assert judge(method, "t", 200, payload, **args) == fast


def test_the_shortcut_is_taken_for_a_compact_answer_and_still_checked(monkeypatch):
    def no_json(_: bytes) -> None:
        raise AssertionError("json.loads called")

    monkeypatch.setattr(validate.json, "loads", no_json)
    args = dict(truth=FakeTruth(), t_sent_ns=100 * SEC, t_done_ns=100 * SEC, max_lag_blocks=2)
    ok = judge("eth_blockNumber", "t", 200, b'{"jsonrpc":"2.0","id":"t","result":"0x64"}', **args)
    assert (ok.outcome, ok.result_block) == ("ok", 100)
    ahead = judge(
        "eth_blockNumber", "t", 200, b'{"jsonrpc":"2.0","id":"t","result":"0x65"}', **args
    )
    assert ahead.outcome == "invalid" and "ahead of the true head" in ahead.error
