"""HeadTracker and the head-answer helpers: consensus, lag, ahead, and floors under answers."""

from __future__ import annotations

import json

from examples.reference_router._heads import (
    HeadTracker,
    asked_tag,
    block_of,
    chain_id_of,
    state_lie,
    with_block_number,
)

NOW = 1000.0


def tracker(count: int, *heads: int, **kw) -> HeadTracker:
    t = HeadTracker(count, **{"max_lag_blocks": 2, **kw})
    for i, h in enumerate(heads):
        t.observe(i, h, NOW)
    return t


def test_an_upstream_more_than_k_blocks_behind_the_best_is_lagging():
    heads = tracker(3, 100, 100, 97)
    assert [heads.lagging(i, NOW) for i in range(3)] == [False, False, True]
    assert heads.lag(2, NOW) == 3 and heads.best(NOW) == 100


def test_the_best_head_is_the_highest_half_the_upstreams_reached():
    assert tracker(3, 1100, 100, 100).best(NOW) == 100
    assert tracker(4, 1100, 103, 100, 90).best(NOW) == 103
    assert tracker(2, 110, 100).best(NOW) == 110  # two: no majority to tell a liar by
    assert tracker(3, 1100, 100, 100, consensus=False).best(NOW) == 1100


def test_an_upstream_far_past_the_others_is_ahead_and_they_are_not_lagging():
    heads = tracker(3, 1100, 100, 101)
    assert [heads.ahead(i, NOW) for i in range(3)] == [True, False, False]
    assert not any(heads.lagging(i, NOW) for i in range(3))
    naive = tracker(3, 1100, 100, 101, consensus=False)
    assert [naive.lagging(i, NOW) for i in range(3)] == [False, True, True]
    assert not any(naive.ahead(i, NOW) for i in range(3))


def test_an_upstream_that_stopped_reporting_has_no_say_in_the_best_head():
    heads = HeadTracker(3, max_lag_blocks=2, fresh_s=3.0)
    heads.observe(0, 100, NOW)
    heads.observe(1, 100, NOW)
    heads.observe(2, 130, NOW + 30)  # A and B went silent 30 s ago
    assert heads.best(NOW + 30) == 130 and not heads.ahead(2, NOW + 30)


def test_an_upstream_with_no_known_head_is_not_lagging():
    heads = tracker(2, 100, max_lag_blocks=0)
    assert not heads.lagging(1, NOW) and heads.lag(1, NOW) is None


def test_a_provider_that_falls_back_is_seen_falling_back():
    heads = tracker(3, 100, 100, 100, max_lag_blocks=1)
    heads.observe(1, 90, NOW)
    assert heads.lagging(1, NOW)


def test_the_floor_never_goes_down():
    heads = HeadTracker(1, max_lag_blocks=5)
    assert [heads.floor(b) for b in (10, 12, 11, 12, 9, 13)] == [10, 12, 12, 12, 12, 13]


def test_tag_floors_trail_one_another():
    heads = HeadTracker(1, max_lag_blocks=5)
    heads.answer_tag("finalized", 40)
    assert (heads.tag_floor("finalized"), heads.tag_floor("safe")) == (40, 40)
    heads.answer_tag("safe", 70)
    heads.floor(100)
    assert [heads.tag_floor(t) for t in ("finalized", "safe", "latest")] == [40, 70, 100]
    off = HeadTracker(1, max_lag_blocks=5, tags=False)
    off.answer_tag("safe", 70)
    off.floor(100)
    assert (off.tag_floor("safe"), off.tag_floor("latest")) == (-1, 100)


def test_only_a_single_call_for_a_tagged_block_is_recognised():
    def call(method: str, *params: object) -> bytes:
        return json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()

    assert asked_tag(call("eth_blockNumber")) == ("eth_blockNumber", "latest")
    assert asked_tag(call("eth_getBlockByNumber", "pending", False)) == (
        "eth_getBlockByNumber",
        "latest",
    )
    assert asked_tag(call("eth_getBlockByNumber", "safe", False))[1] == "safe"
    assert asked_tag(call("eth_getBlockByNumber", "0x10", False)) is None
    assert asked_tag(b"[" + call("eth_blockNumber") + b"]") is None
    assert asked_tag(call("eth_getBalance", "0x1", "latest")) is None
    assert asked_tag(b"eth_blockNumber{not json") is None


def test_block_numbers_are_read_and_rewritten_keeping_the_id():
    body = b'{"jsonrpc":"2.0","id":"bt-1-2","result":"0x10"}'
    assert block_of(body) == 16
    assert block_of(b'{"id":1,"result":{"number":"0x11","hash":"0x00"}}') == 17
    assert json.loads(with_block_number(body, 20)) == {
        "jsonrpc": "2.0",
        "id": "bt-1-2",
        "result": "0x14",
    }
    assert block_of(b'{"jsonrpc":"2.0","id":1,"error":{"code":-32000}}') is None
    assert block_of(b'{"result":"0xzz"}') is None
    assert block_of(b'{"id":1,"result":null}') is None


def test_the_fleets_chain_id_is_the_one_more_than_half_of_those_that_answered_agree_on():
    assert chain_id_of([0x7A69, 0x7A69, 0x1]) == 0x7A69
    assert chain_id_of([0x7A69, None, None]) == 0x7A69
    assert chain_id_of([0x7A69, 0x1, None]) is None  # one against one: no fleet's id
    assert chain_id_of([None, None]) is None


def test_another_chains_id_and_a_sync_are_lies_and_errors_and_batches_pass():
    def call(method: str) -> bytes:
        return json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": []}).encode()

    def answer(result: object) -> bytes:
        return json.dumps({"jsonrpc": "2.0", "id": 1, "result": result}).encode()

    chain = call("eth_chainId")
    assert state_lie(chain, answer("0x7a69"), 0x7A69) is None
    assert state_lie(chain, answer("0x1"), 0x7A69) == "chain id 0x1 is not the fleet's (0x7a69)"
    assert state_lie(chain, answer("0x1"), None) is None  # the fleet's id not known yet
    assert state_lie(call("eth_syncing"), answer(False), 0x7A69) is None
    assert state_lie(call("eth_syncing"), answer({"currentBlock": "0x1"}), None) == (
        "upstream reports it is syncing"
    )
    error = b'{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"x"}}'
    assert state_lie(chain, error, 0x7A69) is None
    assert state_lie(b"[" + chain + b"]", b"[" + answer("0x1") + b"]", 0x7A69) is None
    assert state_lie(call("eth_blockNumber"), answer("0x1"), 0x7A69) is None
