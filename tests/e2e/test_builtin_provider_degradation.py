"""The provider_degradation built-in through `battle run`, issue 6's end-to-end proof of
timeout handling: the fast form passes against the reference router (`fastest`,
breaker on); with round robin and no breaker it still passes, its cost in latency
and route-away reported (moving away from a slow but answering provider is policy, not
an invariant); with attempt timeouts longer
than a client waits it fails on the hang being unbounded (`hang_bounded`, `no_hung_call`)."""

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

JUDGED = {"no_unrescued_failure", "no_wrong_answer", "no_hung_call", "no_retry_storm",
          "hang_bounded", "route_away"}  # fmt: skip


def test_the_fast_form_passes_against_the_reference_router(tmp_path):
    result = run_battle(["run", "provider_degradation", "--runs-dir", str(tmp_path)])
    assert result.returncode == 0, result.stdout + result.stderr
    report = report_of(tmp_path)
    assert_passed(report)  # valid: the ramp and the hang both touched exchanges with A
    assert JUDGED <= {s["name"] for s in report["slos"]}
    # The breaker cut A off at the hang's first timeouts: no call waited on it.
    assert slo(report, "hang_bounded")["observed"] < 2000
    assert_no_process_left(only_run(tmp_path))


def test_round_robin_without_a_breaker_passes_and_its_cost_is_reported(tmp_path):
    # A round-robin router without a breaker keeps sending a third of the calls to A
    # through the ramp and the 10 s hang, but bounds each hung attempt by its 2 s
    # attempt timeout and answers from B or C (within expect.attempt_timeout_s, 5 s): no
    # invariant breaks, and its latency is reported, not failed on (latency-aware
    # routing is a policy). Its route-away is measured: about 7 s, when its connections
    # to A are all held by hung attempts and its calls to A stop reaching the proxy;
    # under the profile's 8 s. A router that keeps sending for the whole 10 s hang fails
    # `route_away` (tests/routers' node_roundrobin with its declared profile does).
    off = ["--set", "sut.options.strategy=round_robin",
           "--set", "sut.options.circuit_breaker=false"]  # fmt: skip
    result = run_battle(["run", "provider_degradation", *off, "--runs-dir", str(tmp_path)])
    assert result.returncode == 0, result.stdout + result.stderr
    report = report_of(tmp_path)
    assert_passed(report)
    metrics = report["metrics"]
    assert metrics["latency_p95_ms"] is not None and metrics["latency_p99_ms"] is not None
    # Each hung attempt on A costs the router's whole 2 s attempt timeout.
    assert slo(report, "hang_bounded")["observed"] >= 2000
    assert slo(report, "route_away")["observed"] >= 4.5
    assert_no_process_left(only_run(tmp_path))


def test_attempt_timeouts_longer_than_the_clients_deadline_fail_on_the_hang(tmp_path):
    # Round robin, no breaker, and 30 s attempt (and request) timeouts: the calls sent to
    # A while it hangs wait on it past the clients' deadline (expect.request_timeout_s +
    # hung_margin_s, 11 s) instead of being answered from B or C.
    off = ["--set", "sut.options.strategy=round_robin",
           "--set", "sut.options.circuit_breaker=false",
           "--set", "sut.options.attempt_timeout_s=30",
           "--set", "sut.options.request_timeout_s=30"]  # fmt: skip
    result = run_battle(["run", "provider_degradation", *off, "--runs-dir", str(tmp_path)])
    assert result.returncode == 1, result.stdout + result.stderr
    report = report_of(tmp_path)
    caught_by = {"hang_bounded", "no_hung_call"}
    assert_caught(report, caught_by)
    assert slo(report, "hang_bounded")["observed"] > 6000
    for witness in slo(report, "no_hung_call")["witnesses"]:
        assert witness["service_ms"] is None or witness["service_ms"] > 11_000, witness
    for name in caught_by:
        assert f"FAIL SLO {slo(report, name)['expression']}" in result.stdout
    assert_no_process_left(only_run(tmp_path))
