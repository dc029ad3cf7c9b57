"""Judging answers: a wrong 200 is invalid, never ok."""

from __future__ import annotations

import json

import pytest

from loadgen import judge
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
