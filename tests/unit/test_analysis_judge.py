"""Analysis on literal rows: each metric, SLO and validity check fires and stays quiet."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from analysis import Check, ExitCode, ingest, judge_run, write_reports
from analysis.shards import SCHEMAS, ShardWriter, shard_path

MS = 1_000_000
T0 = 1_700_000_000_000_000_000


def request(seq: int, outcome: str = "ok", latency_ms: int = 10) -> tuple:
    t = T0 + seq * 20 * MS
    return (
        0,
        seq,
        f"bt-0-{seq}",
        "http",
        "eth_blockNumber",
        1,
        t,
        t,
        t + latency_ms * MS,
        outcome,
        200,
        None,
        None,
        60,
        40,
        5,
    )


def exchange(
    seq: int, provider: str, outcome: str = "ok", fault: str | None = None, dt_ms: int = 1
) -> tuple:
    t = T0 + seq * 20 * MS + dt_ms * MS
    return (
        provider,
        "p0",
        f"f{seq}{provider}",
        "c1",
        "http",
        "eth_blockNumber",
        1,
        f"bt-0-{seq}",
        f"bt-0-{seq}",
        t,
        t,
        t + MS,
        t + MS,
        fault,
        "reset" if fault else None,
        0,
        outcome,
        None,
        None,
        60,
        40,
    )


def write(run: Path, folder: str, table: str, rows: list[tuple], producer: str = "x") -> None:
    # Columns appended to the contract since these rows were written are left NULL.
    width = len(SCHEMAS[table])
    with ShardWriter(shard_path(run / folder, table, producer), table) as w:
        for row in rows:
            w.append(tuple(row) + (None,) * (width - len(row)))


def make_run(tmp_path: Path, *, requests, upstream, faults=(), planned=None, not_sent=0):
    run = tmp_path / "run"
    run.mkdir()
    (run / "scenario.json").write_text(json.dumps({"name": "unit"}))
    write(run, "client", "requests", requests, "w0")
    write(run, "upstream", "upstream", upstream, "p0")
    events = []
    for fault_id in faults:
        events.append((fault_id, "A", "reset", "{}", T0, T0 + 100 * MS, "start", T0 + MS))
        events.append((fault_id, "A", "reset", "{}", T0, T0 + 100 * MS, "end", T0 + 101 * MS))
    write(run, "events", "fault_events", events, "p0")
    detail = json.dumps({"planned": planned or len(requests), "not_sent": not_sent})
    write(run, "events", "lifecycle", [(T0, "w0", "loadgen", 1, "stopped", detail)], "w0")
    return run


FAILOVER = Check("failovers", ">=", 1, "a failover was observed")
SUCCESS = Check("success_rate", ">=", 0.99, "clients succeeded")


def test_a_failed_attempt_retried_on_another_provider_counts_as_a_failover(tmp_path):
    run = make_run(
        tmp_path,
        requests=[request(i) for i in range(4)],
        upstream=[exchange(0, "A", "reset", "a-down"), exchange(0, "B", dt_ms=2)]
        + [exchange(i, "B") for i in range(1, 4)],
        faults=["a-down"],
    )
    j = judge_run(run, [FAILOVER, SUCCESS])
    assert j.verdict == "passed" and j.exit_code == ExitCode.PASSED
    assert j.metrics["failovers"] == 1
    assert j.metrics["amplification"] == pytest.approx(5 / 4)
    assert j.metrics["correlation_coverage"] == 1


def test_a_failure_returned_to_the_client_is_no_failover_and_fails_the_slos(tmp_path):
    run = make_run(
        tmp_path,
        requests=[request(0, "http_error")] + [request(i) for i in range(1, 4)],
        upstream=[exchange(0, "A", "reset", "a-down")] + [exchange(i, "B") for i in range(1, 4)],
        faults=["a-down"],
    )
    j = judge_run(run, [FAILOVER, SUCCESS])
    assert j.verdict == "failed" and j.exit_code == ExitCode.FAILED
    assert [(r.name, r.passed) for r in j.slos] == [("failovers", False), ("success_rate", False)]
    assert j.slos[1].observed == pytest.approx(0.75)


def test_a_retry_on_the_same_provider_is_not_a_failover(tmp_path):
    run = make_run(
        tmp_path,
        requests=[request(0)],
        upstream=[exchange(0, "A", "reset"), exchange(0, "A", dt_ms=2)],
    )
    assert judge_run(run, [FAILOVER]).metrics["failovers"] == 0


def test_a_fault_that_touched_none_of_the_traffic_it_met_makes_the_run_invalid(tmp_path):
    # A is faulted for the first 100 ms and the proxy let its exchanges through.
    run = make_run(
        tmp_path,
        requests=[request(i) for i in range(3)],
        upstream=[exchange(i, "A") for i in range(3)],
        faults=["a-down"],
    )
    j = judge_run(run, [SUCCESS])
    assert j.verdict == "invalid" and j.exit_code == ExitCode.INVALID
    failed = [r.name for r in j.validity if not r.passed]
    assert failed == ["faults_not_applied"]


def test_a_saturated_load_generator_makes_the_run_invalid(tmp_path):
    run = make_run(
        tmp_path, requests=[request(0)], upstream=[exchange(0, "A")], planned=2, not_sent=1
    )
    j = judge_run(run, [SUCCESS])
    assert j.verdict == "invalid"
    assert [r.name for r in j.validity if not r.passed] == ["requests_not_sent_share"]


def test_a_run_without_requests_is_invalid_not_passed(tmp_path):
    run = make_run(tmp_path, requests=[], upstream=[])
    j = judge_run(run, [SUCCESS])
    assert j.verdict == "invalid"
    assert "requests_total" in [r.name for r in j.validity if not r.passed]


def test_latency_percentiles_are_measured_from_the_intended_time(tmp_path):
    rows = [request(i, latency_ms=10) for i in range(98)] + [
        request(i, latency_ms=1000) for i in (98, 99)
    ]
    run = make_run(tmp_path, requests=rows, upstream=[])
    j = judge_run(run, [Check("latency_p99_ms", "<", 100, "p99 under 100 ms")])
    assert j.metrics["latency_max_ms"] == 1000
    assert j.verdict == "failed"


def test_ingest_drops_a_killed_producers_partial_last_line_and_is_idempotent(tmp_path):
    run = make_run(tmp_path, requests=[request(i) for i in range(3)], upstream=[])
    shard = shard_path(run / "client", "requests", "w0")
    with open(shard, "a") as f:
        f.write("0,3,bt-0-3,http,eth_blockNum")  # a batch cut by SIGKILL
    for _ in range(2):
        con = duckdb.connect(str(ingest(run)), read_only=True)
        assert con.execute("SELECT count(*) FROM requests").fetchone() == (3,)
        con.close()


def test_reports_name_the_failing_slo(tmp_path):
    run = make_run(tmp_path, requests=[request(0, "timeout")], upstream=[])
    j = judge_run(run, [SUCCESS])
    write_reports(j)
    report = json.loads((run / "report.json").read_text())
    assert report["verdict"] == "failed" and report["schema_version"] == 3
    assert report["slos"][0]["passed"] is False and "SELECT" in report["slos"][0]["query"]
    assert "❌ | `success_rate >= 0.99`" in (run / "report.md").read_text()


def test_check_names_its_bad_operator_and_unknown_metric():
    with pytest.raises(ValueError, match="op of success_rate must be one of"):
        Check("success_rate", "=>", 1)
    with pytest.raises(ValueError, match="no query named 'nope'"):
        Check("nope", ">", 1)


def test_judging_an_existing_database_agrees_with_rebuilding_it_even_after_a_move(tmp_path):
    run = make_run(
        tmp_path,
        requests=[request(i) for i in range(4)],
        upstream=[exchange(0, "A", "reset"), exchange(0, "B", dt_ms=2)]
        + [exchange(i, "B") for i in range(1, 4)],
    )
    slos = [Check("failovers", "==", 1, "one failover")]
    built = judge_run(run, slos)
    again = judge_run(run, slos, rebuild=False)
    assert built.metrics == again.metrics and again.verdict == built.verdict
    assert again.metrics["failovers"] == 1
    # The views name the Parquet parts by path: moved, the run is built again.
    moved = run.rename(tmp_path / "moved")
    after_move = judge_run(moved, slos, rebuild=False)
    assert after_move.metrics == built.metrics
    con = duckdb.connect(str(moved / "run.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM upstream").fetchone() == (5,)
    finally:
        con.close()
