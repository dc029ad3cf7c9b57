"""The runner on real processes: a managed SUT from a command and a template, its
process tree sampled and its metrics scraped; a child that dies ends the run as
invalid with nothing left running."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from examples.reference_router import render_config
from scenarios import (
    Fault,
    HttpLoad,
    RunError,
    Scenario,
    WsLoad,
    external,
    managed,
    mock,
    reference_router,
)
from scenarios.processes import free_ports, wait_until

TEMPLATE = """\
listen = "{{ listen }}"
strategy = "{{ strategy }}"
failover = true
request_timeout_s = 5.0
attempt_timeout_s = 2.0
max_attempts = {{ upstreams | length }}
# run_dir {{ run_dir }}, listen_host {{ listen_host }}, listen_port {{ listen_port }}
{% for u in upstreams %}
[[upstreams]]
name = "{{ u.name }}"
url = "{{ u.url }}"
ws_url = "{{ u.ws_url }}"
{% endfor %}
"""


def spawned(run: Path) -> list[int]:
    with open(run / "events" / "lifecycle.runner.csv") as f:
        return [int(r["pid"]) for r in csv.DictReader(f) if r["event"] == "spawned"]


def assert_all_dead(pids: list[int]) -> None:
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def small(tmp_path: Path, command: list[str]) -> Scenario:
    template = tmp_path / "router.toml.j2"
    template.write_text(TEMPLATE)
    return Scenario(
        name="managed",
        providers=[mock("A"), mock("B")],
        sut=managed(command, template=str(template), config_name="router.toml",
                    ready="GET /health", metrics_path="/metrics", strategy="round_robin"),
        workloads=[HttpLoad(rate=20, mix="eth_blockNumber=1")],
        duration_s=4,
        slos=["success_rate >= 0.99"],
    )  # fmt: skip


def test_a_managed_sut_is_started_from_its_template_sampled_scraped_and_stopped(tmp_path):
    scenario = small(
        tmp_path, ["{python}", "-m", "examples.reference_router", "--config", "{config}"]
    )
    result = scenario.run(tmp_path / "runs")
    assert result.verdict == "passed", result.summary
    run = result.run_dir
    assert 'name = "B"' in (run / "router.toml").read_text()
    assert (run / "logs" / "sut.log").exists()
    con = duckdb.connect(str(run / "run.duckdb"), read_only=True)
    sut_samples = con.execute("SELECT count(*) FROM system WHERE role = 'sut'").fetchone()[0]
    assert sut_samples >= 3
    ok = con.execute(
        "SELECT max(value) FROM metrics WHERE name = 'router_requests_total'"
        " AND json_extract_string(labels, '$.outcome') = 'ok'"
    ).fetchone()[0]
    answered = con.execute("SELECT count(*) FROM requests WHERE outcome = 'ok'").fetchone()[0]
    # Scraped while the load ran (the last scrape may come before its last calls on a
    # busy machine): some of the calls, never more than the clients saw answered.
    assert 0 < ok <= answered, "the router's own count of answered calls was scraped"
    assert_all_dead(spawned(run))
    # The host-jitter probe: a row per second of the run, each summarising ~100 sleeps.
    with open(run / "system" / "host_jitter.runner.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) >= 4
    assert all(int(r["interval_ns"]) == 10_000_000 for r in rows)
    assert max(int(r["samples"]) for r in rows) >= 50
    assert all(0 <= int(r["oversleep_p50_ns"]) <= int(r["oversleep_max_ns"]) for r in rows)
    assert all(int(r["t"]) % 1_000_000_000 == 0 for r in rows)


def test_a_sut_dying_mid_run_ends_it_as_invalid_and_stops_everything(tmp_path):
    # The router exits with status 7 four seconds after it starts, mid-load.
    code = (
        "import os, runpy, sys, threading; threading.Timer(4, os._exit, [7]).start();"
        " sys.argv = ['router', '--config', '{config}'];"
        " runpy.run_module('examples.reference_router', run_name='__main__')"
    )
    scenario = small(tmp_path, ["{python}", "-c", code]).replace(duration_s=20)
    with pytest.raises(RunError, match=r"sut \(pid \d+\) exited with 7"):
        scenario.run(tmp_path / "runs")
    (run,) = (tmp_path / "runs").iterdir()
    events = (run / "events" / "lifecycle.runner.csv").read_text()
    assert ",died," in events and ",stopped," in events
    assert_all_dead(spawned(run))


def test_an_external_router_is_loaded_through_fixed_listeners_and_left_running(tmp_path):
    a, b, port = free_ports(3)
    config = tmp_path / "router.toml"
    config.write_text(render_config(
        listen=f"127.0.0.1:{port}", strategy="round_robin", failover=True,
        request_timeout_s=5.0, attempt_timeout_s=2.0, max_attempts=2,
        upstreams=[{"name": n, "url": f"http://127.0.0.1:{p}/"} for n, p in (("A", a), ("B", b))],
    ))  # fmt: skip
    router = subprocess.Popen(
        [sys.executable, "-m", "examples.reference_router", "--config", str(config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        import httpx

        def up() -> bool:
            try:
                return httpx.get(f"{url}/health", timeout=1).status_code < 500
            except httpx.TransportError:
                return False

        wait_until(up, timeout=20, what="router")
        scenario = Scenario(
            name="external",
            providers=[mock("A"), mock("B")],
            sut=external(f"{url}/", listen_ports=[a, b], ready="GET /health",
                         metrics_url=f"{url}/metrics"),
            workloads=[HttpLoad(rate=20, mix="eth_blockNumber=1,eth_getBalance=1")],
            duration_s=5,
            faults=[Fault("A", "reset", start_s=1, duration_s=2)],
            slos=["success_rate >= 0.99", "failovers >= 1", "come_back_max_s <= 5"],
            expect={"come_back_s": 2},
        )  # fmt: skip
        result = scenario.run(tmp_path / "runs")
        assert result.verdict == "passed", result.summary
        # The fault ends at 3 s: the load ran 3 + come_back_s 2 + 2 = 7 s, not 5.
        spec = json.loads((result.run_dir / "scenario.json").read_text())
        assert (spec["duration_s"], spec["duration_s_declared"]) == (7, 5)
        assert spec["expect"]["come_back_s"] == 2 and spec["expect_declared"] == ["come_back_s"]
        con = duckdb.connect(str(result.run_dir / "run.duckdb"), read_only=True)
        assert con.execute("SELECT count(*) FROM metrics").fetchone()[0] > 0
        last = con.execute("SELECT max(t_intended) FROM requests").fetchone()[0]
        assert last - spec["t0_ns"] > 6.5e9, "requests were planned past the declared 5 s"
        pids = spawned(result.run_dir)
        assert len(pids) == 4  # two providers, the proxy, one load worker: not the router
        assert_all_dead(pids)
        assert router.poll() is None, "the runner left the external router alone"
    finally:
        os.killpg(router.pid, signal.SIGKILL)
        router.wait()


def test_http_and_websocket_workloads_run_side_by_side(tmp_path):
    scenario = Scenario(
        name="ws",
        providers=[mock("A"), mock("B")],
        sut=reference_router(),
        workloads=[
            HttpLoad(rate=10, mix="eth_blockNumber=1"),
            WsLoad(subscriptions="newHeads=2", call_interval_s=0.5),
        ],
        duration_s=5,
        slos=[
            {"name": "heads", "sql": "SELECT count(*) FROM ws_notifications", "expect": ">= 6"},
            {"name": "ws_calls", "expect": ">= 8",
             "sql": "SELECT count(*) FROM requests WHERE transport = 'ws' AND outcome = 'ok'"},
            "ws_gap_blocks: count == 0",
        ],
    )  # fmt: skip
    started = time.monotonic()
    result = scenario.run(tmp_path / "runs")
    assert result.verdict == "passed", result.summary
    con = duckdb.connect(str(result.run_dir / "run.duckdb"), read_only=True)
    workers = con.execute("SELECT DISTINCT worker FROM requests ORDER BY 1").fetchall()
    assert workers == [(0,), (1,)]
    assert time.monotonic() - started < 60


def test_a_remote_providers_key_is_in_no_file_the_run_writes(tmp_path):
    # The "remote" provider is a mock on loopback reached with a key in the query (the
    # mock serves only `/`; a key in the path goes to the proxy the same way).
    key = "0123456789abcdef0123456789abcdef"
    (port,) = free_ports(1)
    remote_node = subprocess.Popen(
        [sys.executable, "-m", "providers.mock", "--port", str(port), "--name", "R"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        from scenarios import remote

        scenario = Scenario(
            name="remote",
            providers=[remote("R", f"http://127.0.0.1:{port}/?apikey={key}")],
            workloads=[HttpLoad(rate=10, mix="eth_chainId=1")],
            duration_s=3,
            slos=["success_rate >= 0.99"],
        )
        result = scenario.run(tmp_path / "runs")
        assert result.verdict == "passed", result.summary
        assert key in scenario.to_dict()["providers"][0]["url"]
        written = [p for p in result.run_dir.rglob("*") if p.is_file()]
        # Only the chaos proxy holds the key: the router's upstreams are bare listeners.
        assert "apikey" not in (result.run_dir / "router.toml").read_text()
        for path in written:
            assert key.encode() not in path.read_bytes(), path
    finally:
        os.killpg(remote_node.pid, signal.SIGKILL)
        remote_node.wait()
