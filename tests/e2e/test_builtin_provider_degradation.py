"""The provider_degradation built-in through `battle run`, issue 6's end-to-end proof of
the `fastest` strategy and of timeout handling: the fast form passes against the
reference router (`fastest`, breaker on), and fails against it with round robin and no
breaker, the report naming the latency, timeout and route-away SLOs."""

from __future__ import annotations

from battle_cli import (
    assert_no_process_left,
    assert_valid,
    failing,
    only_run,
    report_of,
    run_battle,
    slo,
)


def test_the_fast_form_passes_against_the_reference_router(tmp_path):
    result = run_battle(["run", "provider_degradation", "--runs-dir", str(tmp_path)])
    assert result.returncode == 0, result.stdout + result.stderr
    report = report_of(tmp_path)
    assert report["verdict"] == "passed"
    assert_valid(report)  # the ramp and the hang both touched exchanges with A
    assert {s["name"] for s in report["slos"]} == {
        "success", "latency", "timeouts", "amplification", "route_away", "wasted_attempts"
    }  # fmt: skip
    assert_no_process_left(only_run(tmp_path))


def test_round_robin_without_a_breaker_fails_on_latency_and_timeouts(tmp_path):
    off = ["--set", "sut.options.strategy=round_robin",
           "--set", "sut.options.circuit_breaker=false"]  # fmt: skip
    result = run_battle(["run", "provider_degradation", *off, "--runs-dir", str(tmp_path)])
    assert result.returncode == 1, result.stdout + result.stderr
    report = report_of(tmp_path)
    assert report["verdict"] == "failed"
    assert_valid(report)
    caught_by = {"latency", "timeouts", "route_away", "wasted_attempts"}
    assert caught_by <= failing(report), failing(report)
    # Each hung attempt on A costs the router's whole 2 s attempt timeout.
    assert slo(report, "timeouts")["observed"] >= 2000
    for name in caught_by:
        assert f"FAIL SLO {slo(report, name)['expression']}" in result.stdout
    markdown = (only_run(tmp_path) / "report.md").read_text()
    assert all(slo(report, name)["expression"] in markdown for name in caught_by)
    assert_no_process_left(only_run(tmp_path))
