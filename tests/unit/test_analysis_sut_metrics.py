"""The SUT's own counters and gauges over the load, from literal `metrics` rows."""

from __future__ import annotations

import json

import duckdb
import pytest
from analysis_rows import make_run

from analysis.database import ingest
from analysis.shards import SCHEMAS
from analysis.sut_metrics import sut_metrics_table

S = 1_000_000_000
T0 = 1_700_000_000 * S


def db(rows, *, window=None):
    con = duckdb.connect()
    cols = ", ".join(f"{c} {t}" for c, t in SCHEMAS["metrics"].items())
    con.execute(f"CREATE TABLE metrics ({cols})")
    if rows:
        con.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?)", rows)
    if window is not None:
        con.execute("CREATE TABLE run_window AS SELECT ? AS t_start, ? AS t_end", list(window))
    return con


def series(name, labels, values, *, start_s=0):
    text = json.dumps(labels, sort_keys=True)
    return [(T0 + (start_s + i) * S, name, text, float(v)) for i, v in enumerate(values)]


def by_series(table):
    return {(r["name"], r["labels"]): r for r in table}


def test_a_counter_gets_first_last_and_delta_and_a_gauge_first_last_min_max():
    con = db(
        series("router_requests_total", {"outcome": "ok"}, [100, 150, 230])
        + series("router_in_flight", {}, [2, 9, 3])
    )
    rows = by_series(sut_metrics_table(con))
    counter = rows[("router_requests_total", '{"outcome": "ok"}')]
    assert (counter["kind"], counter["first"], counter["last"], counter["delta"]) == (
        "counter",
        100.0,
        230.0,
        130.0,
    )
    gauge = rows[("router_in_flight", "{}")]
    assert (gauge["kind"], gauge["first"], gauge["last"], gauge["delta"]) == (
        "gauge",
        2.0,
        3.0,
        None,
    )
    assert (gauge["min"], gauge["max"], gauge["samples"]) == (2.0, 9.0, 3)


def test_a_counter_reset_counts_as_a_restart_from_zero():
    con = db(series("errors_total", {}, [10, 15, 2, 6]))
    (row,) = sut_metrics_table(con)
    assert row["delta"] == 5 + 2 + 4


def test_only_samples_inside_the_load_window_count():
    rows = series("x_total", {}, [0, 100, 110, 120, 500])  # at 0 s .. 4 s
    con = db(rows, window=(T0 + 1 * S, T0 + 4 * S))
    (row,) = sut_metrics_table(con)
    assert (row["first"], row["last"], row["delta"], row["samples"]) == (100.0, 120.0, 20.0, 3)
    (explicit,) = sut_metrics_table(con, t_from=T0, t_to=T0 + 2 * S)
    assert (explicit["first"], explicit["last"]) == (0.0, 100.0)


def test_the_series_that_changed_most_relative_to_their_size_come_first_and_at_most_the_limit():
    con = db(
        series("bytes_total", {}, [1_000_000, 1_001_000])  # +0.1%
        + series("errors_total", {"code": "502"}, [0, 3])  # appeared
        + series("breaker_state", {"upstream": "A"}, [0, 2, 0])  # opened and closed
        + series("idle", {}, [7, 7])
        + series("queue", {}, [10, 15])
    )
    names = [r["name"] for r in sut_metrics_table(con)]
    # errors and breaker both changed by their whole size: the larger change first.
    assert names == ["errors_total", "breaker_state", "queue", "bytes_total", "idle"]
    assert [r["name"] for r in sut_metrics_table(con, limit=2)] == ["errors_total", "breaker_state"]


def test_forty_series_at_most_by_default():
    rows = [r for i in range(45) for r in series("hits_total", {"path": f"/{i}"}, [0, i + 1])]
    table = sut_metrics_table(db(rows))
    assert len(table) == 40
    assert table[0]["labels"] == '{"path": "/44"}' and table[-1]["labels"] == '{"path": "/5"}'


def test_buckets_created_stamps_and_non_finite_samples_are_left_out():
    con = db(
        series("lat_bucket", {"le": "0.1"}, [1, 5])
        + series("lat_created", {}, [1.7e9, 1.7e9])
        + series("lat_count", {}, [1, 5])
        + [(T0, "ratio", "{}", float("nan")), (T0 + S, "ratio", "{}", 0.5)]
    )
    rows = by_series(sut_metrics_table(con))
    assert set(rows) == {("lat_count", "{}"), ("ratio", "{}")}
    assert rows[("lat_count", "{}")]["kind"] == "counter"
    assert rows[("ratio", "{}")]["samples"] == 1


def test_no_samples_or_no_metrics_table_is_an_empty_table():
    assert sut_metrics_table(db([])) == []
    assert sut_metrics_table(duckdb.connect()) == []
    with pytest.raises(ValueError, match="limit"):
        sut_metrics_table(db([]), limit=0)


def test_without_a_run_window_the_runs_start_and_end_bound_the_load():
    con = db(series("x_total", {}, [0, 100, 110, 500]))
    con.execute("CREATE TABLE runs (t_start BIGINT, t_end BIGINT)")
    con.execute("INSERT INTO runs VALUES (?, ?)", [T0 + S, T0 + 3 * S])
    (row,) = sut_metrics_table(con)
    assert (row["first"], row["last"], row["samples"]) == (100.0, 110.0, 2)


def test_a_run_database_built_from_the_metrics_shard_gives_the_table(tmp_path):
    samples = series("router_requests_total", {"outcome": "ok"}, [5, 9], start_s=1)
    samples += series("router_requests_total", {"outcome": "ok"}, [1], start_s=-5)  # before t0
    run = make_run(
        tmp_path,
        {"metrics": [dict(zip(SCHEMAS["metrics"], row, strict=True)) for row in samples]},
    )
    con = duckdb.connect(str(ingest(run)), read_only=True)
    try:
        (row,) = sut_metrics_table(con)
    finally:
        con.close()
    assert (row["name"], row["first"], row["last"], row["delta"]) == (
        "router_requests_total",
        5.0,
        9.0,
        4.0,
    )
