"""rate_steps and highest_holding_rate on literal rows: the steps come from the
scenario's arrival, each is judged on the requests intended in it, and the figure is
the last step before the first that failed."""

from __future__ import annotations

import duckdb
import pytest
from analysis_rows import make_run, req

from analysis.database import ingest

STEPS = {"duration_s": 6, "workloads": [
    {"kind": "ws", "subscriptions": "newHeads=1"},
    {"kind": "http", "arrival": "steps:10@2, 20@2,40@2"},
]}  # fmt: skip


def load(latency_ms_per_step: list[float], *, failed_in_step: int | None = None) -> list[dict]:
    """Each step's rate of requests (10, 20, 40 per second, two seconds each) with the
    step's latency; with `failed_in_step`, a tenth of that step's requests time out."""
    rows, seq = [], 0
    for step, (rate, latency) in enumerate(zip((10, 20, 40), latency_ms_per_step, strict=True)):
        for k in range(2 * rate):
            at_ms = step * 2000 + k * 1000 / rate
            outcome = "timeout" if step == failed_in_step and k % 10 == 0 else "ok"
            rows.append(req(seq, at_ms, latency_ms=latency, outcome=outcome))
            seq += 1
    return rows


def con_for(tmp_path, rows, scenario=STEPS, name="run"):
    run = make_run(tmp_path, {"requests": rows}, scenario=scenario, name=name)
    return duckdb.connect(str(ingest(run)))


def holding(con, success_min=0.99, p95_max_ms=300):
    return con.execute("SELECT highest_holding_rate(?, ?)", [success_min, p95_max_ms]).fetchone()[0]


def test_steps_are_read_from_the_first_http_workload_and_judged_on_their_own_requests(tmp_path):
    con = con_for(tmp_path, load([5, 50, 400]))
    steps = con.execute(
        "SELECT step, rate, (t_to - t_from) / 1e9, requests, success_rate, p95_ms"
        " FROM rate_steps ORDER BY step"
    ).fetchall()
    assert steps == [
        (1, 10.0, 2.0, 20, 1.0, pytest.approx(5)),
        (2, 20.0, 2.0, 40, 1.0, pytest.approx(50)),
        (3, 40.0, 2.0, 80, 1.0, pytest.approx(400)),
    ]


def test_every_step_holding_gives_the_top_rate(tmp_path):
    assert holding(con_for(tmp_path, load([5, 5, 5]))) == 40


def test_slow_answers_in_a_step_stop_the_figure_below_it(tmp_path):
    assert holding(con_for(tmp_path, load([5, 50, 400]))) == 20


def test_failed_requests_in_a_step_stop_the_figure_below_it(tmp_path):
    assert holding(con_for(tmp_path, load([5, 5, 5], failed_in_step=1))) == 10


def test_a_step_passing_after_a_failed_one_does_not_count(tmp_path):
    assert holding(con_for(tmp_path, load([400, 5, 5]))) == 0


def test_a_constant_rate_is_one_step_over_the_whole_load(tmp_path):
    scenario = {"duration_s": 2, "workloads": [{"kind": "http", "rate": 10}]}
    rows = [req(k, k * 100, latency_ms=5) for k in range(20)]
    con = con_for(tmp_path, rows, scenario)
    assert con.execute("SELECT rate, requests FROM rate_steps").fetchall() == [(10.0, 20)]
    assert holding(con) == 10
    assert holding(con, p95_max_ms=5) == 0


def test_a_load_without_steps_has_no_figure(tmp_path):
    scenario = {"duration_s": 2, "workloads": [{"kind": "http", "arrival": "ramp:10,20"}]}
    con = con_for(tmp_path, [req(k, k * 100) for k in range(20)], scenario)
    assert holding(con) is None
