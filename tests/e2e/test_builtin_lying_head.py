"""The lying_head built-in through `battle run`: the fast form passes against the
reference router (none of A's lies reaches a client), fails on `no_wrong_answer` and
`majority_keeps_traffic` with its consensus switched off (the highest head reported
wins: A's head from 1,000 blocks ahead is served, B and C look behind and lose their
calls), and on `no_wrong_answer` with its state checks off (A's mainnet chain id and
its sync in progress are served). In tests/e2e/matrix.py, aio_priority (another stack,
another consensus) passes it and fails it with `no_head_consensus` (`no_wrong_answer`;
`majority_keeps_traffic` where the liar is its backup) or `no_tag_floor`
(`tags_monotonic`); node_roundrobin, nginx and HAProxy, which read no JSON-RPC, fail
it as findings. The reference router's tag floors switched off are caught on
`tags_monotonic` in tests/unit/test_router_health.py."""

from __future__ import annotations

from battle_cli import (
    assert_caught,
    assert_no_process_left,
    assert_passed,
    only_run,
    report_of,
    run_battle,
    slo,
)


def test_the_fast_form_passes_against_the_reference_router(tmp_path):
    result = run_battle(["run", "lying_head", "--runs-dir", str(tmp_path)])
    assert result.returncode == 0, result.stdout + result.stderr
    report = report_of(tmp_path)
    assert_passed(report)
    for name in ("no_wrong_answer", "heads_monotonic", "tags_monotonic"):
        assert slo(report, name)["observed"] == 0
    assert_no_process_left(only_run(tmp_path))


def test_a_router_following_the_highest_head_reported_fails_on_wrong_answers(tmp_path):
    result = run_battle(["run", "lying_head", "--runs-dir", str(tmp_path),
                         "--set", "sut.options.head_tracking={consensus=false}"])  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    report = report_of(tmp_path)
    assert_caught(report, {"no_wrong_answer", "majority_keeps_traffic"})
    assert_no_process_left(only_run(tmp_path))


def test_a_router_passing_chain_ids_and_sync_states_through_fails_on_wrong_answers(tmp_path):
    # No come-back is judged here: a short tail after the last lie is enough.
    result = run_battle(["run", "lying_head", "--runs-dir", str(tmp_path),
                         "--set", "sut.options.head_tracking={state=false}",
                         "--expect", "come_back_s=2"])  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    report = report_of(tmp_path)
    assert_caught(report, {"no_wrong_answer"})
    errors = {w["error"].split(",")[0] for w in slo(report, "no_wrong_answer")["witnesses"]}
    assert errors == {
        "chain id must be 0x7a69",
        "the chain is in sync: eth_syncing must be false",
    }, errors
    assert_no_process_left(only_run(tmp_path))
