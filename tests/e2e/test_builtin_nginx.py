"""http_failover's fast form against nginx (examples/nginx, Debian's nginx-light),
managed by the runner: it passes with failover on, and fails with failover off and
passive health off (`max_fails = 0`: otherwise nginx routes away after one reset even
without retrying), the report naming the SLO that caught it: the invariant
`no_unrescued_failure` (clients got A's failures with B and C untried)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from battle_cli import (
    assert_caught,
    assert_no_process_left,
    assert_passed,
    only_run,
    report_of,
    run_battle,
    slo,
)
from matrix import SEARCH_PATH

TEMPLATE = Path(__file__).resolve().parents[2] / "examples" / "nginx" / "nginx.conf.j2"


@pytest.fixture
def nginx() -> str:
    path = shutil.which("nginx", path=SEARCH_PATH)
    if path is None:
        reason = "nginx not installed (apt-get install --no-install-recommends nginx-light)"
        if os.environ.get("BATTLE_REQUIRE_SUTS") == "1":
            pytest.fail(f"{reason}, and BATTLE_REQUIRE_SUTS=1 requires it")
        pytest.skip(f"{reason}; BATTLE_REQUIRE_SUTS=1 turns this into a failure")
    return path


def nginx_sut(binary: str, options: str) -> list[str]:
    """`--set sut=...`: nginx managed by the runner with `options` (a TOML inline table)."""
    command = json.dumps([binary, "-p", "{run_dir}", "-e", "stderr", "-c", "{config}"])
    sut = (
        f'{{kind = "managed", command = {command}, template = {json.dumps(str(TEMPLATE))},'
        f' config_name = "nginx.conf", ready = "rpc eth_chainId", metrics_path = "",'
        f' ws_path = "/", options = {options}}}'
    )
    return ["--set", f"sut={sut}"]


def test_http_failover_passes_against_nginx_configured_to_fail_over(tmp_path, nginx):
    # fail_timeout_s 2 (default 10): nginx's passive health is its breaker; 10 s out of
    # rotation, plus the outage, would leave little of http_failover's come-back limit
    # (expect.come_back_s, 15 s).
    sut = nginx_sut(nginx, "{failover = true, fail_timeout_s = 2}")
    result = run_battle(["run", "http_failover", *sut, "--runs-dir", str(tmp_path)])
    assert result.returncode == 0, result.stdout + result.stderr
    report = report_of(tmp_path)
    assert_passed(report)
    run = only_run(tmp_path)
    assert "proxy_next_upstream error timeout" in (run / "nginx.conf").read_text()
    assert_no_process_left(run)


def test_http_failover_fails_against_nginx_without_proxy_next_upstream(tmp_path, nginx):
    sut = nginx_sut(nginx, "{failover = false, max_fails = 0}")
    result = run_battle(["run", "http_failover", *sut, "--runs-dir", str(tmp_path)])
    assert result.returncode == 1, result.stdout + result.stderr
    report = report_of(tmp_path)
    caught_by = {"no_unrescued_failure"}
    assert_caught(report, caught_by)
    # nginx balances round robin: a third of the calls go to A, 40 per 3 s outage at
    # 40 req/s, under expect.wasted_attempts_per_outage (60). Not routing away is
    # reported, not failed on; returning A's failures to the clients is what fails.
    assert slo(report, "wasted_attempts")["observed"] > 0
    run = only_run(tmp_path)
    assert "proxy_next_upstream off" in (run / "nginx.conf").read_text()
    markdown = (run / "report.md").read_text()
    for name in caught_by:
        assert f"FAIL SLO {slo(report, name)['expression']}" in result.stdout
        assert slo(report, name)["expression"] in markdown
    assert_no_process_left(run)
