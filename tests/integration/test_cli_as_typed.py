"""The `battle` commands that look at a recorded run, typed as a user types them: the
installed entry point in a subprocess, its stdout, stderr and exit status. The run
directories are literal rows written as shards (no battle runs), so these are fast and
give the same output on every machine and with DuckDB 1.x or 2.x."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from analysis_rows import fault, make_run, req, stopped, up

# The entry point of the interpreter running the tests: .venv's under `make test`,
# .venv-latest's under `make test-latest`.
BATTLE = Path(sys.executable).parent / "battle"
SLOS = ["success: rate >= 0.99", "latency{window:2s}: p(95) < 100"]
TRACEBACK = "Traceback (most recent call last)"


def battle(*args: str, cwd: Path | None = None, stdin: str | None = None):
    return subprocess.run(
        [str(BATTLE), *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def recorded(root: Path, name: str, *, latency_ms: float = 10) -> Path:
    """60 calls 100 ms apart, each served by A or B in turn, and one reset on A during
    the fault a-down (2 s to 3 s): 61 exchanges."""
    reqs = [req(i, i * 100, latency_ms=latency_ms) for i in range(60)]
    ups = [up(i, "AB"[i % 2], i * 100 + 1) for i in range(60)]
    ups.append(up(20, "A", 2001.5, outcome="reset", fault="a-down", flow="fa"))
    return make_run(
        root,
        {
            "requests": reqs,
            "upstream": ups,
            "fault_events": fault("a-down", "A", 2, 3),
            "lifecycle": [stopped(0, 60)],
        },
        scenario={"slos": SLOS, "faults": [{"fault_id": "a-down", "provider": "A"}]},
        name=name,
    )


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return recorded(tmp_path, "run")


def ingest(run: Path) -> Path:
    result = battle("ingest", str(run))
    assert result.returncode == 0, result.stderr
    return run


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run whose database exists: the state every later `battle sql` meets. Shared by
    the tests that only read it."""
    return ingest(recorded(tmp_path_factory.mktemp("ingested"), "run"))


PER_PROVIDER = "SELECT provider, count(*) AS n FROM upstream GROUP BY ALL ORDER BY ALL"


def test_battle_sql_prints_a_querys_rows_as_a_table_once_the_database_exists(ingested):
    # DuckDB 2 refused the query with a ResourceInUseException traceback here: the
    # probe of the database left its result unread.
    result = battle("sql", str(ingested), PER_PROVIDER)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "provider  n\n--------  --\nA         31\nB         30\n(2 rows)\n"


def test_battle_sql_builds_a_missing_database_first_and_prints_the_same(run):
    assert not (run / "run.duckdb").exists()
    result = battle("sql", str(run), PER_PROVIDER)
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("A         31\nB         30\n(2 rows)\n")
    assert (run / "run.duckdb").exists()


def test_battle_sql_on_a_moved_run_rebuilds_its_database_and_answers(run, tmp_path):
    moved = ingest(run).rename(tmp_path / "moved")
    result = battle("sql", str(moved), "SELECT count(*) AS n FROM requests_x")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "n\n--\n60\n(1 row)\n"


def test_battle_sql_max_rows_cuts_the_table_and_says_so(ingested):
    query = "SELECT seq FROM requests ORDER BY seq"
    cut = battle("sql", str(ingested), query, "--max-rows", "3")
    assert cut.returncode == 0, cut.stderr
    assert cut.stdout == "seq\n---\n0\n1\n2\n(first 3 rows)\n"
    default = battle("sql", str(ingested), query).stdout.splitlines()
    assert len(default) == 2 + 60 + 1 and default[-1] == "(60 rows)"
    every = battle("sql", str(ingested), query, "--max-rows", "0").stdout.splitlines()
    assert every == default


def test_battle_sql_finds_the_latest_run_under_the_runs_directory(tmp_path):
    runs = tmp_path / "runs"
    recorded(runs, "20240101T000000Z-old", latency_ms=10)
    recorded(runs, "20240102T000000Z-new", latency_ms=20)
    query = "SELECT max(t_done - t_intended) // 1000000 AS ms FROM requests"
    result = battle("sql", "latest", query, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ms\n--\n20\n(1 row)\n"


def test_battle_sql_prints_nothing_for_a_statement_without_rows(ingested):
    # DuckDB 1.x returns no relation for SET, 2.x one of a `Success` column.
    result = battle("sql", str(ingested), "SET threads = 1")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


@pytest.mark.parametrize(
    ("query", "kind"),
    [
        ("SELECT nope FROM requests", "Binder Error"),  # fails in con.sql()
        ("SELEC 1", "Parser Error"),
        # Fails only once rows are read: a traceback out of relation.show() before.
        ("SELECT 'x'::INTEGER AS n", "Conversion Error"),
    ],
    ids=["binder", "parser", "runtime"],
)
def test_a_failing_query_is_one_line_on_stderr_and_exit_2(ingested, query, kind):
    result = battle("sql", str(ingested), query)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"battle: error: query failed: {kind}: ")
    assert result.stderr.count("\n") == 1, result.stderr


def test_battle_sql_on_an_unknown_run_is_a_usage_error(tmp_path):
    result = battle("sql", str(tmp_path / "nowhere"), "SELECT 1", cwd=tmp_path)
    assert result.returncode == 2
    assert "no run directory" in result.stderr and TRACEBACK not in result.stderr


def test_the_sql_shell_reads_statements_and_dot_commands_from_stdin(ingested):
    typed = "\n".join(
        [
            ".tables",
            "SELECT count(*) AS n",
            "FROM requests;",
            "SELECT 'x'::INTEGER;",  # fails while rows are read: the shell goes on
            "SELECT nope;",
            ".schema runs",
            "SELECT 41 + 1 AS answer",  # the end of input runs the last statement
        ]
    )
    result = battle("sql", str(ingested), stdin=typed + "\n")
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    out = result.stdout
    assert out.startswith("battle sql: statements end with ';', .help for commands\nname")
    assert re.search(r"^requests_x +LOCAL TEMPORARY$", out, re.M), "materialised for the shell"
    assert "\nn\n--\n60\n(1 row)\n" in out
    assert re.search(r"^error: Conversion Error: ", out, re.M)
    assert re.search(r"^error: Binder Error: ", out, re.M)
    assert re.search(r"^run_id +VARCHAR ", out, re.M)
    assert out.endswith("answer\n------\n42\n(1 row)\n")


def test_the_sql_shell_stops_at_quit(ingested):
    result = battle("sql", str(ingested), stdin="SELECT 1 AS a;\n.quit\nSELECT 2 AS b;\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("a\n-\n1\n(1 row)\n")


def test_battle_ingest_prints_the_database_path_then_the_rows_of_each_table(run):
    result = battle("ingest", str(run))
    assert (result.returncode, result.stderr) == (0, "")
    path, counts = result.stdout.splitlines()
    assert path == str(run / "run.duckdb") and Path(path).exists()
    assert re.fullmatch(r"(\w+ [\d,]+  )+\(\d+\.\d s\)", counts), counts
    assert {"requests 60", "upstream 61", "fault_events 2"} <= set(counts.split("  "))


def test_battle_ingest_of_a_missing_run_is_a_usage_error(tmp_path):
    result = battle("ingest", "no-such-run", cwd=tmp_path)
    assert result.returncode == 2 and TRACEBACK not in result.stderr


def test_battle_report_writes_every_report_and_exits_with_the_verdict(run):
    passed = battle("report", str(run))
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert passed.stdout.startswith("verdict: PASSED (exit 0)\n")
    assert "  ok   SLO latency{window:2s}: p(95) < 100 (observed 10)" in passed.stdout
    for name in ("report.json", "report.md", "report.html", "junit.xml"):
        assert (run / name).stat().st_size > 0, name
    assert json.loads((run / "report.json").read_text())["verdict"] == "passed"


def test_battle_report_with_a_failing_slo_exits_1_naming_it(run):
    failed = battle("report", str(run), "--slo", "latency: p(95) < 5")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert failed.stdout.startswith("verdict: FAILED (exit 1)\n")
    assert "FAIL SLO latency: p(95) < 5 (observed 10)" in failed.stdout


def test_battle_report_with_a_bad_slo_is_a_usage_error(run):
    bad = battle("report", str(run), "--slo", "latncy: max < 1")
    assert bad.returncode == 2 and "metric must be one of" in bad.stderr
    assert TRACEBACK not in bad.stderr


def test_battle_compare_passes_the_baseline_run_and_exits_4_on_a_regression(tmp_path):
    base = recorded(tmp_path, "base")
    # Slower than the baseline by far, yet within every SLO: only the comparison fails.
    slower = recorded(tmp_path, "slower", latency_ms=50)
    baseline = tmp_path / "baseline.json"
    saved = battle("baseline", "save", str(base), str(baseline))
    assert saved.returncode == 0, saved.stderr
    assert re.fullmatch(rf"{re.escape(str(baseline))}: \d+ figures from base\n", saved.stdout)
    assert json.loads(baseline.read_text())["metrics"]["latency_p95_ms"]

    same = battle("compare", str(base), "--baseline", str(baseline))
    assert same.returncode == 0, same.stdout + same.stderr
    assert "REGR" not in same.stdout and same.stdout.endswith("verdict: PASSED (exit 0)\n")

    regressed = battle("compare", str(slower), "--baseline", str(baseline))
    assert regressed.returncode == 4, regressed.stdout + regressed.stderr
    assert re.search(
        r"^REGR latency_p95_ms: 50(\.0)? vs baseline 10(\.0)? \(\+400\.0%\), lower is better",
        regressed.stdout,
        re.M,
    ), regressed.stdout
    assert regressed.stdout.endswith("(exit 4)\n")
    assert (slower / "report.json").exists()
