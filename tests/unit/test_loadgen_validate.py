"""Judging answers: a wrong 200 is invalid, never ok."""

from __future__ import annotations

import json
import re

import pytest

from loadgen import judge, judge_batch, validate
from loadgen.mix import BALANCE_OF, METHODS, TOKEN, RequestMix, parse_mix
from loadgen.mix import TRANSFER_TOPIC as TRANSFER
from providers import Chain, MockNode
from scenarios.worker import ChainTruth


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
    ("eth_getBlockByNumber", None, ["0x32", False], "invalid", "null result where the chain has"),
    ("eth_getBlockByNumber", None, [hex(100), False], "ok", None),
    ("eth_getBlockByNumber", None, ["latest", False], "invalid", "null result where the chain"),
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
    "method,params,tag",
    [
        ("eth_blockNumber", [], "latest"),
        ("eth_getBlockByNumber", ["latest", False], "latest"),
        ("eth_getBlockByNumber", ["pending", False], "latest"),
        ("eth_getBlockByNumber", ["safe", False], "safe"),
        ("eth_getBlockByNumber", ["finalized", False], "finalized"),
        ("eth_getBlockByNumber", ["0x2", False], None),
        ("eth_getBlockByNumber", ["earliest", False], None),
    ],
)
def test_an_answer_names_the_block_tag_its_block_answers_for(method, params, tag):
    result = "0x2" if method == "eth_blockNumber" else {"number": "0x2", "hash": "0x" + "ab" * 32}
    j = judge(method, "t", 200, body(id="t", result=result), params=params)
    assert (j.outcome, j.result_block, j.block_tag) == ("ok", 2, tag)


def test_a_batch_answers_for_a_tag_only_when_every_block_in_it_does():
    block = {"number": "0x2", "hash": "0x" + "ab" * 32}
    answer = json.dumps([{"jsonrpc": "2.0", "id": i, "result": block} for i in "ab"]).encode()
    safe = [("eth_getBlockByNumber", i, ["safe", False]) for i in "ab"]
    mixed = [("eth_getBlockByNumber", "a", ["safe", False]),
             ("eth_getBlockByNumber", "b", ["latest", False])]  # fmt: skip
    assert judge_batch(safe, 200, answer)[0].block_tag == "safe"
    assert judge_batch(mixed, 200, answer)[0].block_tag is None


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


# ------------------------------------------- against the mock chain's own answers
#
# The truth the scenario worker builds (`scenarios.worker.ChainTruth`) over the chain a
# mock provider (`providers.MockNode`) serves: true answers are the node's own, wrong
# ones are those answers forged.

CHAIN = Chain(11, 1_000 * SEC)
NOW = CHAIN.genesis_ns + 300 * SEC + SEC // 3  # head 300
NODE = MockNode(CHAIN, lambda: NOW)
TRUTH = ChainTruth(CHAIN)
ADDRESS = "0x" + "00" * 19 + "2a"
OTHER = "0x" + "00" * 19 + "2b"
TOKEN_CONTRACT = CHAIN.token_contracts[0]
MINED_TX = next(h for n in range(1, 290) for h in CHAIN.tx_hashes(n))  # mined long ago
# Another transaction's receipt, a later block's.
OTHER_RECEIPT = next(
    CHAIN.receipt(n, 0)
    for n in range(200, 290)
    if CHAIN.tx_count(n) and MINED_TX not in CHAIN.tx_hashes(n)
)


def ask(method: str, params: list, rid: object = "t") -> bytes:
    request = {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}
    return NODE.handle(json.dumps(request).encode())


def chain_judge(method: str, params: list, payload: bytes, rid: object = "t"):
    return judge(
        method, rid, 200, payload, params=params, truth=TRUTH, t_sent_ns=NOW, t_done_ns=NOW
    )


def forged(payload: bytes, result: object) -> bytes:
    return json.dumps({**json.loads(payload), "result": result}).encode()


# Every method of the mix (mix.METHODS), with parameters like its generator's.
MIX_CALLS = {
    "eth_blockNumber": [],
    "eth_chainId": [],
    "eth_gasPrice": [],
    "eth_getBalance": [ADDRESS, "latest"],
    "eth_getBlockByNumber": ["latest", False],
    "eth_getBlockByNumber:historical": [hex(200), False],
    "eth_getBlockByNumber:safe": ["safe", False],
    "eth_getBlockByNumber:finalized": ["finalized", False],
    "eth_call": [{"to": TOKEN, "data": BALANCE_OF + ADDRESS[2:].rjust(64, "0")}, "latest"],
    "eth_getLogs": [
        {"fromBlock": hex(250), "toBlock": hex(260), "address": TOKEN, "topics": [TRANSFER]}
    ],
    "eth_getTransactionReceipt": [MINED_TX],
    "eth_syncing": [],
}


def test_the_table_of_mix_calls_covers_every_method_of_the_mix():
    assert set(MIX_CALLS) == set(METHODS)


@pytest.mark.parametrize("name", sorted(MIX_CALLS))
def test_every_true_answer_of_the_mock_chain_is_ok(name):
    method, params = name.partition(":")[0], MIX_CALLS[name]
    j = chain_judge(method, params, ask(method, params))
    assert j.outcome == "ok", j.error


@pytest.mark.parametrize(
    "method,params",
    [
        ("eth_call", [{"to": TOKEN_CONTRACT, "data": BALANCE_OF + "00" * 32}, "latest"]),
        ("eth_call", [{"to": TOKEN_CONTRACT, "data": BALANCE_OF + "00" * 32}, hex(7)]),
        ("eth_getBalance", [ADDRESS, hex(12)]),
        ("eth_getBalance", [ADDRESS, "earliest"]),
    ],
)
def test_true_state_at_any_block_asked_is_ok(method, params):
    j = chain_judge(method, params, ask(method, params))
    assert j.outcome == "ok", j.error


def test_a_forged_balance_is_invalid_saying_what_was_expected_and_what_came():
    params = [ADDRESS, "latest"]
    true = hex(CHAIN.balance(ADDRESS, 300))
    wrong = hex(CHAIN.balance(ADDRESS, 300) + 10**18)
    j = chain_judge("eth_getBalance", params, forged(ask("eth_getBalance", params), wrong))
    assert (j.outcome, j.result_block) == ("invalid", None)
    assert j.error == f"balance of 0x0000…002a must be {true} at blocks 298-300, got {wrong}"


def test_a_balance_from_a_block_within_the_allowed_lag_is_ok_and_an_older_one_is_not():
    params = [ADDRESS, "latest"]
    payload = ask("eth_getBalance", params)
    assert (
        chain_judge(
            "eth_getBalance", params, forged(payload, hex(CHAIN.balance(ADDRESS, 298)))
        ).outcome
        == "ok"
    )
    stale = chain_judge("eth_getBalance", params, forged(payload, hex(CHAIN.balance(ADDRESS, 297))))
    assert stale.outcome == "invalid" and "at blocks 298-300" in stale.error


def test_another_accounts_balance_is_invalid():
    params = [ADDRESS, "latest"]
    j = chain_judge("eth_getBalance", params, ask("eth_getBalance", [OTHER, "latest"]))
    assert j.outcome == "invalid" and j.error.startswith("balance of 0x0000…002a must be")


def test_a_wrong_chain_id_is_invalid_saying_what_was_expected_and_what_came():
    # The literal answer of a router forwarding to a mainnet node by mistake.
    j = chain_judge("eth_chainId", [], b'{"jsonrpc":"2.0","id":"t","result":"0x1"}')
    assert (j.outcome, j.error) == ("invalid", "chain id must be 0x7a69, got 0x1")


def test_a_node_reporting_a_sync_on_a_chain_in_sync_is_invalid_and_off_a_mock_shaped_only():
    status = {"startingBlock": "0x0", "currentBlock": "0x1", "highestBlock": "0x65"}
    payload = json.dumps({"jsonrpc": "2.0", "id": "t", "result": status}).encode()
    j = chain_judge("eth_syncing", [], payload)
    assert j.outcome == "invalid" and j.error.startswith("the chain is in sync: eth_syncing")
    # Without a truth (a remote fleet) a node may be syncing; only its shape is checked.
    assert judge("eth_syncing", "t", 200, payload).outcome == "ok"
    bad = json.dumps({"jsonrpc": "2.0", "id": "t", "result": True}).encode()
    assert judge("eth_syncing", "t", 200, bad).error.startswith("result must be false or a sync")


@pytest.mark.parametrize(
    "method,params,wrong,reason",
    [
        (
            "eth_call",
            [{"to": TOKEN_CONTRACT, "data": BALANCE_OF + "00" * 32}, "latest"],
            "0x" + "00" * 32,
            "eth_call result must be 0x",
        ),
        (
            "eth_call",
            MIX_CALLS["eth_call"],
            "0x" + "00" * 31 + "01",
            "eth_call result must be 0x at blocks 298-300",
        ),
        ("eth_gasPrice", [], hex(CHAIN.base_fee(300)), "gas price must be"),
        (
            "eth_getTransactionReceipt",
            [MINED_TX],
            OTHER_RECEIPT,
            "receipt must be of",
        ),
    ],
)
def test_a_forged_value_of_any_other_method_is_invalid(method, params, wrong, reason):
    j = chain_judge(method, params, forged(ask(method, params), wrong))
    assert j.outcome == "invalid" and reason in j.error, j.error


LOGS_FILTER = [
    {
        "fromBlock": hex(200),
        "toBlock": hex(260),
        "address": TOKEN_CONTRACT,
        "topics": [TRANSFER, None],
    }
]


def test_the_chains_logs_are_ok_and_missing_or_foreign_ones_are_invalid():
    true = ask("eth_getLogs", LOGS_FILTER)
    logs = json.loads(true)["result"]
    assert len(logs) >= 2  # the filter has hits on this chain
    assert chain_judge("eth_getLogs", LOGS_FILTER, true).outcome == "ok"
    dropped = chain_judge("eth_getLogs", LOGS_FILTER, forged(true, logs[1:]))
    assert dropped.outcome == "invalid"
    assert dropped.error == f"blocks 200-260 have {len(logs)} matching logs, got {len(logs) - 1}"
    swapped = chain_judge("eth_getLogs", LOGS_FILTER, forged(true, [logs[1], logs[0], *logs[2:]]))
    assert swapped.outcome == "invalid" and swapped.error.startswith("log 0 must be log")
    other = [{**LOGS_FILTER[0], "address": CHAIN.token_contracts[1]}]
    foreign = chain_judge(
        "eth_getLogs", LOGS_FILTER, forged(true, json.loads(ask("eth_getLogs", other))["result"])
    )
    assert foreign.outcome == "invalid"
    # Logs for a filter on an address that never logs on this chain (the mix's token).
    nobody = [{**LOGS_FILTER[0], "address": TOKEN}]
    assert chain_judge("eth_getLogs", nobody, ask("eth_getLogs", nobody)).outcome == "ok"
    invented = chain_judge("eth_getLogs", nobody, true)
    assert invented.error == f"blocks 200-260 have 0 matching logs, got {len(logs)}"


NULL_BODY = b'{"jsonrpc":"2.0","id":1,"result":null}'


@pytest.mark.parametrize("name", sorted(MIX_CALLS))
def test_a_null_result_where_the_chain_has_a_value_is_invalid_for_every_method_of_the_mix(name):
    method, params = name.partition(":")[0], MIX_CALLS[name]
    j = chain_judge(method, params, NULL_BODY, rid=1)
    assert j.outcome == "invalid"
    assert j.error.startswith("null result where the chain has a value"), j.error


@pytest.mark.parametrize(
    "method", ["eth_blockNumber", "eth_chainId", "eth_gasPrice", "eth_getBalance", "eth_call"]
)
def test_a_null_result_is_invalid_even_without_a_truth_where_a_value_always_exists(method):
    j = judge(method, 1, 200, NULL_BODY, params=MIX_CALLS[method])
    assert (j.outcome, j.error) == ("invalid", "null result where the chain has a value")


def test_null_stays_a_true_answer_for_a_block_or_receipt_that_may_not_exist_yet():
    assert chain_judge("eth_getBlockByNumber", [hex(301), False], NULL_BODY, 1).outcome == "ok"
    unknown = "0x" + "ee" * 32
    assert chain_judge("eth_getTransactionReceipt", [unknown], NULL_BODY, 1).outcome == "ok"


BATCH = [
    ("eth_blockNumber", "bt-0-9", []),
    ("eth_chainId", "bt-0-9.1", []),
    ("eth_getBalance", "bt-0-9.2", [ADDRESS, "latest"]),
    ("eth_getBalance", "bt-0-9.3", [OTHER, "latest"]),
    ("eth_call", "bt-0-9.4", MIX_CALLS["eth_call"]),
]


def batch_answers() -> list[dict]:
    body = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for m, i, p in BATCH]
    return json.loads(NODE.handle(json.dumps(body).encode()))


def batch_judge(answers: list[dict]):
    return judge_batch(
        BATCH, 200, json.dumps(answers).encode(), truth=TRUTH, t_sent_ns=NOW, t_done_ns=NOW
    )


def test_a_true_batch_answered_in_another_order_is_ok():
    j, each = batch_judge(batch_answers()[::-1])
    assert (j.outcome, j.error, j.result_block) == ("ok", None, 300)
    assert [e.outcome for e in each] == ["ok"] * len(BATCH)


def test_a_batch_whose_answers_are_rotated_onto_the_wrong_ids_is_invalid():
    answers = batch_answers()
    results = [a["result"] for a in answers]
    rotated = [
        {**a, "result": r} for a, r in zip(answers, results[-1:] + results[:-1], strict=True)
    ]
    j, each = batch_judge(rotated)
    assert j.outcome == "invalid"
    assert j.error.startswith("call 0 (eth_blockNumber): ")
    # The head's slot got eth_call's 32-byte word: no block number, and none recorded.
    assert j.result_block is None
    assert [e.outcome for e in each] == ["invalid"] * len(BATCH)


def test_two_balances_swapped_between_their_ids_are_invalid():
    answers = batch_answers()
    answers[2]["result"], answers[3]["result"] = answers[3]["result"], answers[2]["result"]
    j, each = batch_judge(answers)
    assert j.outcome == "invalid" and j.error.startswith("call 2 (eth_getBalance): balance of")
    assert [e.outcome for e in each] == ["ok", "ok", "invalid", "invalid", "ok"]


@pytest.mark.parametrize("truth", [None, TRUTH])
def test_a_head_too_large_for_a_block_number_is_invalid_and_never_a_result_block(truth):
    # A balance (1000 ETH in wei, > 2**63) where eth_blockNumber's answer belongs.
    payload = b'{"jsonrpc":"2.0","id":"t","result":"0x3635c9adc5dea00000"}'
    j = judge("eth_blockNumber", "t", 200, payload, truth=truth, t_sent_ns=NOW, t_done_ns=NOW)
    assert (j.outcome, j.result_block) == ("invalid", None)
    assert "not a block number" in j.error
    block = {"number": hex(1 << 63), "hash": "0x" + "ab" * 32}
    j = judge(
        "eth_getBlockByNumber", "t", 200, body(id="t", result=block), params=["latest", False]
    )
    assert (j.outcome, j.result_block) == ("invalid", None)


@pytest.mark.parametrize(
    "method,params,result",
    [
        (
            "eth_getBlockByNumber",
            ["latest", False],
            {"number": hex(1 << 60), "hash": "0x" + "ab" * 32},
        ),
        ("eth_getLogs", [{}], [{"blockNumber": hex(1 << 60), "blockHash": "0x" + "ab" * 32}]),
        ("eth_getTransactionReceipt", [MINED_TX], {"blockNumber": hex(1 << 60), "blockHash": "0x"}),
    ],
)
def test_a_block_number_past_any_chains_is_invalid_and_never_crashes_the_judge(
    method, params, result
):
    j = chain_judge(method, params, body(id="t", result=result))
    assert (j.outcome, j.result_block) == ("invalid", None)
