"""Reports (JSON, Markdown, JUnit), baselines and the CLI commands over a recorded run."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import duckdb
import jsonschema
import pytest
from analysis_rows import fault, make_run, req, stopped, up
from click.testing import CliRunner

import analysis
from analysis import judge_run, write_reports
from analysis.baseline import compare, load_baseline, make_baseline
from analysis.database import ingest
from analysis.shell import run_shell
from analysis.slo import parse_slo
from scenarios.cli import cli

SLOS = ["success: rate >= 0.99", "latency{window:2s}: p(95) < 100"]


def recorded(tmp_path, *, slow: bool = False, failing: bool = False, name: str = "run"):
    latency = 150 if slow else 10
    reqs = [
        req(i, i * 100, latency_ms=latency, outcome="timeout" if failing and i % 10 == 0 else "ok")
        for i in range(60)
    ]
    ups = [up(i, "AB"[i % 2], i * 100 + 1) for i in range(60)]
    ups.append(up(20, "A", 2001.5, outcome="reset", fault="a-down", flow="fa"))
    return make_run(
        tmp_path,
        {
            "requests": reqs,
            "upstream": ups,
            "fault_events": fault("a-down", "A", 2, 3),
            "lifecycle": [stopped(0, 60)],
        },
        scenario={"slos": SLOS, "faults": [{"fault_id": "a-down", "provider": "A"}]},
        name=name,
    )


def test_a_failed_slo_shows_its_witnesses_in_every_report(tmp_path):
    run = recorded(tmp_path, failing=True)
    j = judge_run(run, [parse_slo(SLOS[0], name="success")])
    write_reports(j, charts=False)
    report = json.loads((run / "report.json").read_text())
    slo = report["slos"][0]
    # Calls 0, 10, ..., 50 timed out: six witnesses, in time order, and the query for all.
    assert slo["witness_count"] == 6
    assert [w["tag"] for w in slo["witnesses"]] == [f"bt-0-{i}" for i in range(0, 60, 10)]
    assert {"at_s", "outcome", "attempts", "provider"} <= set(slo["witnesses"][0])
    assert "FROM requests_x" in slo["witness_query"]
    md = (run / "report.md").read_text()
    assert "### Witnesses of `success` (6 of 6)" in md and "| bt-0-50 |" in md
    assert "battle sql" in md
    junit = (run / "junit.xml").read_text()
    assert "witnesses (6 of 6)" in junit and "tag=bt-0-10" in junit


def test_a_passed_slo_lists_no_witnesses(tmp_path):
    run = recorded(tmp_path)
    j = judge_run(run, [parse_slo(SLOS[0], name="success")])
    assert j.slos[0].passed and j.slos[0].witnesses == [] and j.slos[0].witness_query == ""


def test_report_json_is_versioned_and_carries_the_evidence(tmp_path):
    run = recorded(tmp_path, slow=True)
    j = judge_run(run, [parse_slo(s) for s in SLOS])
    write_reports(j, charts=False)
    report = json.loads((run / "report.json").read_text())
    assert report["schema_version"] == 3 and report["verdict"] == "failed"
    slo = report["slos"][1]
    assert slo["passed"] is False and slo["observed"] == pytest.approx(150)
    assert slo["window"]["failing_windows"] == slo["window"]["windows"]
    assert "quantile_cont" in slo["query"] and slo["unit"] == "ms"
    assert {"series_requests", "latency_histogram"} <= set(report["series"])
    assert report["tables"]["fault_timeline"][0]["applied"] == 1
    assert report["baseline"] is None
    schema = json.loads((Path(analysis.__file__).parent / "report.schema.json").read_text())
    jsonschema.validate(report, schema)


def test_junit_has_one_test_case_per_slo_and_fails_the_broken_one(tmp_path):
    run = recorded(tmp_path, slow=True)
    write_reports(judge_run(run, [parse_slo(s) for s in SLOS]), charts=False)
    suites = {s.get("name"): s for s in ET.parse(run / "junit.xml").getroot()}
    cases = suites["slos"].findall("testcase")
    assert [c.get("name") for c in cases] == SLOS
    assert cases[0].find("failure") is None
    failure = cases[1].find("failure")
    assert "observed 150" in failure.get("message") and "worst window" in failure.text
    assert suites["slos"].get("failures") == "1" and suites["validity"].get("failures") == "0"


def test_markdown_fits_a_step_summary_and_links_its_charts(tmp_path):
    run = recorded(tmp_path, failing=True)
    write_reports(judge_run(run, [parse_slo(s) for s in SLOS]))
    md = (run / "report.md").read_text()
    assert "# Battle run `run`: **FAILED** (exit 1)" in md
    assert "| ❌ | `success: rate >= 0.99` | 0.9 |" in md
    assert len(md.encode()) < 1024 * 1024  # GitHub's step-summary limit
    for name in ("throughput", "latency", "provider_share", "latency_distribution"):
        assert f"![{name}](charts/{name}.svg)" in md
        assert (run / "charts" / f"{name}.svg").read_text().startswith("<svg")


def test_a_baseline_regression_exits_4_and_appears_in_every_report(tmp_path):
    base_run = recorded(tmp_path, name="base")
    base = make_baseline("base", judge_run(base_run, []).metrics)
    assert base["metrics"]["latency_p95_ms"] == {
        "value": pytest.approx(10),
        "direction": "lower",
        "tolerance": 0.1,
    }
    same = judge_run(recorded(tmp_path, name="same"), [], baseline=base)
    assert same.verdict == "passed" and not any(c.regressed for c in same.comparison)
    slow = judge_run(recorded(tmp_path, slow=True, name="slow"), [], baseline=base)
    assert slow.verdict == "regressed" and int(slow.exit_code) == 4
    regressed = {c.metric for c in slow.comparison if c.regressed}
    assert {"latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "latency_max_ms"} <= regressed
    assert "success_rate" not in regressed
    write_reports(slow)
    run = tmp_path / "slow"
    report = json.loads((run / "report.json").read_text())
    assert report["baseline"]["regressions"] >= 4
    schema = json.loads((Path(analysis.__file__).parent / "report.schema.json").read_text())
    jsonschema.validate(report, schema)
    assert "## Baseline comparison (against `base`" in (run / "report.md").read_text()
    assert "Baseline comparison" in (run / "report.html").read_text()


def test_tolerance_and_direction_decide_a_regression():
    base = {
        "metrics": {
            "latency_p95_ms": {"value": 100, "direction": "lower", "tolerance": 0.1},
            "success_rate": {"value": 1.0, "direction": "higher", "tolerance": 0.01},
            "heads_backwards": {"value": 0, "direction": "lower", "tolerance": 0.1},
        }
    }

    def regressed(**m):
        return {c.metric for c in compare(m, base) if c.regressed}

    assert regressed(latency_p95_ms=110, success_rate=0.99, heads_backwards=0) == set()
    assert regressed(latency_p95_ms=111, success_rate=0.98, heads_backwards=1) == {
        "latency_p95_ms",
        "success_rate",
        "heads_backwards",
    }
    assert regressed(latency_p95_ms=5, success_rate=1.0) == {"heads_backwards"}  # no value


def test_a_bad_baseline_file_names_its_bad_field(tmp_path):
    path = tmp_path / "b.json"
    path.write_text(
        json.dumps(
            {
                "kind": "battle-baseline",
                "schema_version": 1,
                "metrics": {"latency_p95_ms": {"value": 1, "direction": "up"}},
            }
        )
    )
    with pytest.raises(ValueError, match=r"metrics.latency_p95_ms.direction must be"):
        load_baseline(path)


def test_cli_baseline_save_then_compare_exits_4_on_a_regression(tmp_path):
    base_run, slow_run = recorded(tmp_path, name="base"), recorded(tmp_path, slow=True, name="slow")
    runner = CliRunner()
    saved = runner.invoke(cli, ["baseline", "save", str(base_run), str(tmp_path / "b.json")])
    assert saved.exit_code == 0, saved.output
    same = runner.invoke(cli, ["compare", str(base_run), "--baseline", str(tmp_path / "b.json")])
    assert same.exit_code == 0, same.output
    slow = runner.invoke(
        cli,
        [
            "compare",
            str(slow_run),
            "--baseline",
            str(tmp_path / "b.json"),
            "--slo",
            "success: rate > 0.5",
        ],
    )
    assert slow.exit_code == 4, slow.output
    assert "REGR latency_p95_ms: 150.0 vs baseline 10.0 (+1400.0%)" in slow.output
    assert (slow_run / "report.html").exists() and (slow_run / "junit.xml").exists()


def test_cli_report_judges_the_scenarios_slos_and_exits_with_the_verdict(tmp_path):
    runner = CliRunner()
    good = runner.invoke(cli, ["report", str(recorded(tmp_path, name="good"))])
    assert good.exit_code == 0, good.output
    bad = runner.invoke(cli, ["report", str(recorded(tmp_path, slow=True, name="bad"))])
    assert bad.exit_code == 1 and "FAIL SLO latency{window:2s}: p(95) < 100" in bad.output
    usage = runner.invoke(cli, ["report", str(tmp_path / "good"), "--slo", "latncy: max < 1"])
    assert usage.exit_code == 2 and "metric must be one of" in usage.output


def test_sql_shell_runs_statements_and_dot_commands(tmp_path):
    con = duckdb.connect(str(ingest(recorded(tmp_path))), read_only=True)
    out = io.StringIO()
    run_shell(
        con,
        [
            "SELECT count(*) AS n",
            "FROM requests;",
            ".query failovers",
            "SELECT nope;",
            ".schema breaker",
            ".quit",
            "SELECT 1;",
        ],
        out,
        prompt=False,
    )
    text = out.getvalue()
    assert "n\n--\n60\n(1 row)" in text
    assert "value\n-----\n0" in text
    assert "error: " in text and "wasted_attempts" in text
    assert text.count("(1 row)") == 2  # nothing ran after .quit


def test_cli_sql_without_a_query_reads_statements_from_stdin(tmp_path):
    run = recorded(tmp_path)
    result = CliRunner().invoke(cli, ["sql", str(run)], input="SELECT 41 + 1 AS answer;\n")
    assert result.exit_code == 0 and "answer" in result.output and "42" in result.output


def test_cli_sql_on_a_moved_run_rebuilds_its_database_and_answers(tmp_path):
    run = recorded(tmp_path)
    assert CliRunner().invoke(cli, ["ingest", str(run)]).exit_code == 0
    moved = run.rename(tmp_path / "moved")
    query = "SELECT count(*) AS n FROM requests_x"
    result = CliRunner().invoke(cli, ["sql", str(moved), query])
    assert result.exit_code == 0, result.output
    assert "60" in result.output


def test_every_example_of_the_sql_shell_runs(tmp_path):
    from analysis.shell import EXAMPLES

    con = duckdb.connect(str(ingest(recorded(tmp_path))), read_only=True)
    for question, sql in EXAMPLES.items():
        assert con.execute(sql).fetchall() is not None, question


def test_cli_ingest_prints_the_database_and_its_row_counts(tmp_path):
    run = recorded(tmp_path)
    result = CliRunner().invoke(cli, ["ingest", str(run)])
    assert result.exit_code == 0, result.output
    path, counts = result.output.splitlines()
    assert path == str(run / "run.duckdb")
    assert "requests 60" in counts and "upstream 61" in counts
