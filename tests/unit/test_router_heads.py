"""HeadTracker and the eth_blockNumber helpers: lag, and a floor under answers."""

from __future__ import annotations

import json

from examples.reference_router._heads import (
    HeadTracker,
    block_number_of,
    is_block_number_request,
    with_block_number,
)


def test_an_upstream_more_than_k_blocks_behind_the_best_is_lagging():
    heads = HeadTracker(3, max_lag_blocks=2)
    heads.observe(0, 100)
    heads.observe(1, 98)
    heads.observe(2, 97)
    assert [heads.lagging(i) for i in range(3)] == [False, False, True]
    assert heads.lag(2) == 3 and heads.best() == 100


def test_an_upstream_with_no_known_head_is_not_lagging():
    heads = HeadTracker(2, max_lag_blocks=0)
    heads.observe(0, 100)
    assert not heads.lagging(1) and heads.lag(1) is None


def test_a_provider_that_falls_back_is_seen_falling_back():
    heads = HeadTracker(2, max_lag_blocks=1)
    heads.observe(0, 100)
    heads.observe(1, 100)
    heads.observe(1, 90)
    assert heads.lagging(1)


def test_the_floor_never_goes_down():
    heads = HeadTracker(1, max_lag_blocks=5)
    assert [heads.floor(b) for b in (10, 12, 11, 12, 9, 13)] == [10, 12, 12, 12, 12, 13]


def test_only_a_single_eth_block_number_call_is_recognised():
    single = b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'
    batch = b'[{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}]'
    other = b'{"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":["0x1"]}'
    assert is_block_number_request(single)
    assert not is_block_number_request(batch) and not is_block_number_request(other)
    assert not is_block_number_request(b"eth_blockNumber{not json")


def test_block_numbers_are_read_and_rewritten_keeping_the_id():
    body = b'{"jsonrpc":"2.0","id":"bt-1-2","result":"0x10"}'
    assert block_number_of(body) == 16
    assert json.loads(with_block_number(body, 20)) == {
        "jsonrpc": "2.0",
        "id": "bt-1-2",
        "result": "0x14",
    }
    assert block_number_of(b'{"jsonrpc":"2.0","id":1,"error":{"code":-32000}}') is None
    assert block_number_of(b'{"result":"0xzz"}') is None
