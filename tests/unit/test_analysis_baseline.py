"""Baselines: rates and shares move by absolute tolerances, latencies and counts by
relative ones, and the comparison says which applied."""

from __future__ import annotations

import json

import pytest
from analysis_rows import make_run, req, stopped, up
from click.testing import CliRunner

from analysis.baseline import (
    ABSOLUTE_TOLERANCES,
    DIRECTIONS,
    compare,
    load_baseline,
    make_baseline,
)
from scenarios.cli import cli

METRICS = {
    "success_rate": 1.0,
    "correlation_coverage": 0.99,
    "late_sends_share": 0.0,
    "latency_p95_ms": 100.0,
    "wasted_attempts": 10,
}


def by_name(comparisons):
    return {c.metric: c for c in comparisons}


def test_a_success_rate_falling_from_one_to_091_regresses_at_the_default_tolerance():
    base = make_baseline("base", METRICS)
    c = by_name(compare({**METRICS, "success_rate": 0.91}, base))["success_rate"]
    assert c.regressed
    assert (c.tolerance, c.tolerance_kind) == (0.01, "absolute")


def test_a_rate_may_move_by_its_absolute_tolerance_and_no_more():
    base = make_baseline("base", METRICS)
    within = by_name(compare({**METRICS, "success_rate": 0.99, "late_sends_share": 0.01}, base))
    assert not within["success_rate"].regressed and not within["late_sends_share"].regressed
    beyond = by_name(compare({**METRICS, "success_rate": 0.985, "late_sends_share": 0.02}, base))
    assert beyond["success_rate"].regressed and beyond["late_sends_share"].regressed


def test_a_share_of_a_small_baseline_is_not_judged_relative_to_that_baseline():
    # 0.001 -> 0.005 is +400% relative, yet 0.4 points of late sends.
    base = make_baseline("base", {**METRICS, "late_sends_share": 0.001})
    c = by_name(compare({**METRICS, "late_sends_share": 0.005}, base))["late_sends_share"]
    assert not c.regressed and c.tolerance_kind == "absolute"


def test_latencies_and_counts_keep_relative_tolerances():
    base = make_baseline("base", METRICS, tolerance=0.1)
    ok = by_name(compare({**METRICS, "latency_p95_ms": 110.0, "wasted_attempts": 11}, base))
    assert not ok["latency_p95_ms"].regressed and not ok["wasted_attempts"].regressed
    assert ok["latency_p95_ms"].tolerance_kind == "relative"
    bad = by_name(compare({**METRICS, "latency_p95_ms": 111.0, "wasted_attempts": 12}, base))
    assert bad["latency_p95_ms"].regressed and bad["wasted_attempts"].regressed


def test_a_saved_baseline_holds_absolute_tolerances_for_rates_and_the_given_one_otherwise():
    figures = make_baseline("base", METRICS, tolerance=0.2)["metrics"]
    assert figures["success_rate"] == {"value": 1.0, "direction": "higher", "tolerance": 0.01}
    assert figures["latency_p95_ms"]["tolerance"] == 0.2


def test_a_baseline_file_may_override_a_figures_tolerance_kind():
    base = make_baseline(
        "base",
        METRICS,
        overrides={"latency_p95_ms": {"tolerance": 5, "tolerance_kind": "absolute"}},
    )
    c = by_name(compare({**METRICS, "latency_p95_ms": 106.0}, base))["latency_p95_ms"]
    assert c.regressed and c.tolerance_text == "5 absolute"


def test_the_kind_is_decided_by_name_for_a_baseline_file_that_does_not_say():
    base = {
        "metrics": {
            "success_rate": {"value": 1.0, "direction": "higher", "tolerance": 0.05},
            "latency_p95_ms": {"value": 100, "direction": "lower", "tolerance": 0.05},
        }
    }
    c = by_name(compare({"success_rate": 0.94, "latency_p95_ms": 104}, base))
    assert c["success_rate"].regressed and c["success_rate"].tolerance_kind == "absolute"
    assert not c["latency_p95_ms"].regressed and c["latency_p95_ms"].tolerance_kind == "relative"


def test_the_comparison_text_says_which_kind_of_tolerance_applied():
    base = make_baseline("base", METRICS)
    c = by_name(compare(METRICS, base))
    assert c["success_rate"].tolerance_text == "0.01 absolute"
    assert c["latency_p95_ms"].tolerance_text == "10% relative"
    assert c["success_rate"].as_dict()["tolerance_kind"] == "absolute"


def test_every_figure_with_an_absolute_tolerance_is_a_directed_rate_or_share():
    directed = {n for n in ABSOLUTE_TOLERANCES if n in DIRECTIONS}
    assert {"success_rate", "correlation_coverage", "late_sends_share"} <= directed
    assert all(n.endswith(("_rate", "_share", "_coverage")) for n in ABSOLUTE_TOLERANCES)
    assert all(0 < t < 1 for t in ABSOLUTE_TOLERANCES.values())


def test_a_baseline_file_with_an_unknown_tolerance_kind_names_the_field(tmp_path):
    path = tmp_path / "b.json"
    doc = make_baseline("base", METRICS)
    doc["metrics"]["success_rate"]["tolerance_kind"] = "percent"
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"metrics\.success_rate\.tolerance_kind"):
        load_baseline(path)


def _run(tmp_path, name: str, failures: int):
    reqs = [req(i, i * 100, outcome="timeout" if i < failures else "ok") for i in range(100)]
    ups = [up(i, "A", i * 100 + 1) for i in range(100)]
    return make_run(
        tmp_path,
        {"requests": reqs, "upstream": ups, "lifecycle": [stopped(0, 100)]},
        name=name,
    )


def test_battle_compare_flags_a_success_rate_down_9_points_and_names_the_tolerance_kind(
    tmp_path,
):
    base, worse = _run(tmp_path, "base", 0), _run(tmp_path, "worse", 9)
    runner = CliRunner()
    saved = runner.invoke(cli, ["baseline", "save", str(base), str(tmp_path / "b.json")])
    assert saved.exit_code == 0, saved.output
    out = runner.invoke(cli, ["compare", str(worse), "--baseline", str(tmp_path / "b.json")])
    assert out.exit_code == 4, out.output
    lines = {line.split(":")[0]: line for line in out.output.splitlines()}
    assert lines["REGR success_rate"].endswith("higher is better, tolerance 0.01 absolute")
    assert lines["ok   latency_p95_ms"].endswith("lower is better, tolerance 10% relative")
