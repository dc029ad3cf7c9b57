"""Request mixes: realistic parameters, batches, fixed lists, tags in parameters."""

from __future__ import annotations

import pytest

from loadgen.mix import METHODS, BatchSpec, Call, RequestMix, parse_batch, parse_mix


def test_every_generator_works_before_and_after_the_chain_is_known():
    mix = RequestMix(dict.fromkeys(METHODS, 1), seed=1)
    for _ in range(200):
        assert isinstance(mix.next("bt-0-1"), Call)
    mix.view.observe("eth_getBlockByNumber", {"number": hex(5000), "transactions": ["0xab"]})
    for _ in range(200):
        assert isinstance(mix.next("bt-0-1"), Call)


def test_historical_reads_and_log_ranges_stay_within_the_chain_seen():
    mix = RequestMix({"eth_getBlockByNumber:historical": 1, "eth_getLogs": 1}, seed=2)
    mix.view.observe("eth_blockNumber", hex(5000))
    for _ in range(300):
        call = mix.next("t")
        if call.method == "eth_getBlockByNumber":
            assert 4000 <= int(call.params[0], 16) <= 5000
        else:
            f = call.params[0]
            assert 3901 <= int(f["fromBlock"], 16) <= int(f["toBlock"], 16) <= 5000


def test_receipts_ask_for_transactions_seen_in_blocks():
    mix = RequestMix({"eth_getTransactionReceipt": 1}, seed=3)
    mix.view.observe("eth_getBlockByNumber", {"number": "0x1", "transactions": ["0xaa", "0xbb"]})
    assert {mix.next("t").params[0] for _ in range(50)} == {"0xaa", "0xbb"}


def test_eth_call_carries_the_tag_in_its_calldata():
    call = RequestMix({"eth_call": 1}).next("bt-4-17")
    assert call.params[0]["data"].endswith(b"bt-4-17".hex())


def test_a_share_of_calls_go_as_batches_of_the_given_sizes():
    mix = RequestMix({"eth_blockNumber": 1}, seed=5, batch=BatchSpec(0.25, {2: 1, 5: 1}))
    draws = [mix.next("t") for _ in range(2000)]
    batches = [d for d in draws if isinstance(d, list)]
    assert 400 < len(batches) < 600
    assert {len(b) for b in batches} == {2, 5}


def test_fixed_parameter_lists_are_used_in_turn():
    mix = RequestMix(
        {"eth_getBalance": 1}, fixed={"eth_getBalance": [["0x1", "latest"], ["0x2", "0x5"]]}
    )
    assert [mix.next().params for _ in range(3)] == [
        ["0x1", "latest"],
        ["0x2", "0x5"],
        ["0x1", "latest"],
    ]


def test_mix_is_deterministic_under_a_seed():
    a = RequestMix({"eth_blockNumber": 1, "eth_getBalance": 3}, seed=7)
    b = RequestMix({"eth_blockNumber": 1, "eth_getBalance": 3}, seed=7)
    assert [a.next() for _ in range(50)] == [b.next() for _ in range(50)]


def test_parse_batch_names_the_bad_value():
    assert parse_batch("0.1:2=1,10=3") == BatchSpec(0.1, {2: 1.0, 10: 3.0})
    with pytest.raises(ValueError, match="batch share must be in"):
        parse_batch("2:2=1")
    with pytest.raises(ValueError, match="batch size must be >= 1"):
        parse_batch("0.5:0=1")
    with pytest.raises(ValueError, match="SHARE:SIZE=WEIGHT"):
        parse_batch("0.5")


def test_parse_mix_accepts_methods_with_fixed_params_only_when_given():
    with pytest.raises(ValueError, match="mix method must be one of"):
        parse_mix("debug_traceBlock=1")
    assert parse_mix("debug_traceBlock=1", fixed={"debug_traceBlock": [["0x1"]]}) == {
        "debug_traceBlock": 1.0
    }


def test_methods_are_drawn_in_proportion_to_their_weights():
    mix = RequestMix({"eth_blockNumber": 1, "eth_getBalance": 3}, seed=1)
    draws = [mix.next().method for _ in range(20_000)]
    assert 0.73 < draws.count("eth_getBalance") / len(draws) < 0.77
