"""examples/haproxy as a system under test, with real HAProxy, mock providers and the
chaos proxy on loopback: failover on and off against real faults (and the failures
HAProxy 2.6 cannot retry), the correlation header reaching upstream, WebSocket
subscriptions through it, health checks, and a clean SIGTERM stop. Skipped when haproxy
is absent, unless BATTLE_REQUIRE_SUTS=1 (CI)."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jinja2
import pytest
from sut_examples import (
    ROOT,
    Fleet,
    RecordingUpstream,
    alive,
    big_call_statuses,
    closed_by_peer,
    fleet_fixture,
    open_websocket,
    render,
    require_binary,
    rpc,
    start_sut,
    successes,
    wait_for_tag,
    ws_heads,
)

from scenarios.processes import wait_until

TEMPLATE = ROOT / "examples" / "haproxy" / "haproxy.cfg.j2"
# The command line of examples/haproxy/README.md.
COMMAND = ["haproxy", "-db", "-f", "{config}"]
CALLS = 30


@pytest.fixture(scope="module")
def haproxy() -> str:
    return require_binary("haproxy", "haproxy")


@pytest.fixture(scope="module")
def fleet(haproxy: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    yield from fleet_fixture(tmp_path_factory)


@pytest.fixture
def clear_faults(fleet: Fleet) -> Iterator[None]:
    try:
        yield
    finally:
        fleet.clear()


def command(haproxy: str) -> list[str]:
    return [haproxy, *COMMAND[1:]]


# (id, fault kind on A, its params, template options, calls of CALLS that fail). The
# client calls one at a time and round-robin gives A every third call.
FAILOVER_CASES = [
    ("503-failover-on", "http_error", {"status": 503}, {"failover": True}, 0),
    ("502-failover-on", "http_error", {"status": 502}, {"failover": True}, 0),
    ("reset-failover-on", "reset", {}, {"failover": True}, 0),
    ("hang-failover-on", "hang", {}, {"failover": True}, 0),
    ("refused-failover-on", "refuse", {}, {"failover": True}, 0),
    ("503-failover-off", "http_error", {"status": 503}, {"failover": False}, CALLS // 3),
    ("reset-failover-off", "reset", {}, {"failover": False}, CALLS // 3),
    # HAProxy 2.6's retry-on has no 429, and a JSON-RPC error in an HTTP 200 body is an
    # answer to it: both reach the client even with failover on.
    ("429-failover-on", "http_error", {"status": 429}, {"failover": True}, CALLS // 3),
    ("rpc-error-failover-on", "rpc_error", {"code": -32005}, {"failover": True}, CALLS // 3),
]


@pytest.mark.parametrize(
    ("case", "kind", "params", "options", "failures"),
    FAILOVER_CASES,
    ids=[c[0] for c in FAILOVER_CASES],
)
def test_failover_on_hides_a_failing_upstream_and_failover_off_does_not(
    haproxy, fleet, clear_faults, tmp_path, case, kind, params, options, failures
):
    fault_id = fleet.fault("A", kind, params)
    sut = start_sut(
        command(haproxy), TEMPLATE, fleet.upstreams, tmp_path, read_timeout_ms=300, **options
    )
    try:
        ok = successes(sut.url, CALLS)
    finally:
        sut.stop()
    if kind != "refuse":  # a refused connection never becomes an exchange
        assert fleet.applied(fault_id) >= 1, "the fault never reached an exchange"
    assert CALLS - ok == failures


@pytest.mark.parametrize(("bufsize", "failures"), [(None, 2), (262_144, 0)])
def test_a_request_larger_than_the_buffer_is_not_retried(
    haproxy, fleet, clear_faults, tmp_path, bufsize, failures
):
    fleet.fault("A", "http_error", {"status": 503})
    options = {} if bufsize is None else {"bufsize": bufsize}
    sut = start_sut(command(haproxy), TEMPLATE, fleet.upstreams, tmp_path, **options)
    try:
        # An 80 kB body: above HAProxy's default 16 kB buffer, within 256 kB.
        statuses = big_call_statuses(sut.url, calldata_bytes=40_000, calls=6)
    finally:
        sut.stop()
    assert statuses.count(503) == failures, statuses


def test_health_checks_move_primary_backup_traffic_to_the_backup_and_back(
    haproxy, fleet, clear_faults, tmp_path
):
    sut = start_sut(
        command(haproxy),
        TEMPLATE,
        fleet.upstreams,
        tmp_path,
        strategy="primary_backup",
        check_interval_ms=100,
    )

    def served_by(prefix: str) -> set[str]:
        tags = [f"{prefix}-{i}" for i in range(4)]
        with httpx.Client(timeout=10) as client:
            for tag in tags:
                assert rpc(client, sut.url, tag=tag)[0] == 200
        return {row["provider"] for tag in tags for row in wait_for_tag(fleet, tag)}

    prefix = f"bt-haproxy-pb-{time.monotonic_ns()}"
    try:
        assert served_by(f"{prefix}-healthy") == {"A"}
        fleet.fault("A", "http_error", {"status": 503})
        # fall 2 at 100 ms; HAProxy logs each transition to stderr.
        wait_until(
            lambda: "battle_upstreams/A is DOWN" in sut.log.read_text(), timeout=5, what="A down"
        )
        assert served_by(f"{prefix}-a-down") == {"B"}
        fleet.clear()
        wait_until(
            lambda: "battle_upstreams/A is UP" in sut.log.read_text(), timeout=5, what="A up"
        )
        assert served_by(f"{prefix}-a-back") == {"A"}
    finally:
        sut.stop()
    checks = [r for r in fleet.upstream_rows() if r["provider"] == "A" and not r["tag"]]
    assert checks, "no health check reached A"


def test_the_battle_tag_header_reaches_the_upstream(haproxy, fleet, tmp_path):
    sut = start_sut(command(haproxy), TEMPLATE, fleet.upstreams, tmp_path)
    tag = f"bt-haproxy-{os.getpid()}-{time.monotonic_ns()}"
    try:
        with httpx.Client(timeout=10) as client:
            status, body = rpc(client, sut.url, tag=tag)
    finally:
        sut.stop()
    assert status == 200, body
    # The JSON-RPC id is an integer, so only the header can have carried the tag.
    rows = wait_for_tag(fleet, tag)
    assert len(rows) == 1 and rows[0]["method"] == "eth_blockNumber"
    assert f"tag={tag}" in sut.log.read_text()  # HAProxy logs to stderr


async def test_a_websocket_newheads_subscription_gets_notifications_through_haproxy(
    haproxy, fleet, tmp_path
):
    # `timeout server` far below the block time would close an idle WebSocket; once
    # upgraded, `timeout tunnel` applies instead.
    sut = start_sut(command(haproxy), TEMPLATE, fleet.upstreams, tmp_path, read_timeout_ms=100)
    try:
        heads = await ws_heads(f"ws://127.0.0.1:{sut.port}/", 4)
    finally:
        sut.stop()
    numbers = [int(h["number"], 16) for h in heads]
    assert numbers == list(range(numbers[0], numbers[0] + 4)), numbers


def test_sigterm_stops_the_whole_process_tree_and_leaves_nothing_behind(haproxy, fleet, tmp_path):
    sut = start_sut(command(haproxy), TEMPLATE, fleet.upstreams, tmp_path, threads=2)
    assert successes(sut.url, 5) == 5
    # An open WebSocket must not hold the stop up.
    ws = open_websocket(sut.port)
    tree = sut.tree()
    started = time.monotonic()
    # HAProxy's hard stop on SIGTERM ends it by that signal, not with exit status 0.
    assert sut.stop() == -15
    assert time.monotonic() - started < 5
    assert not [pid for pid in tree if alive(pid)]
    assert closed_by_peer(ws), "the WebSocket outlived the SUT"
    ws.close()
    assert {p.name for p in tmp_path.iterdir()} == {"haproxy.cfg", "sut.log"}
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{sut.url}/health", timeout=2)


def test_haproxy_runs_as_an_unprivileged_user_started_from_a_directory_it_may_not_enter(
    haproxy, fleet, monkeypatch
):
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to an unprivileged user (the other tests run as one)")
    nobody = 65534
    run_dir = Path(tempfile.mkdtemp(prefix="battle-haproxy-"))
    # Started from a 0700 directory, as from a clone made in `mktemp -d`: HAProxy
    # chdirs back to its initial directory after reading its configuration.
    private = Path(tempfile.mkdtemp(prefix="battle-private-"))
    monkeypatch.chdir(private)
    try:
        os.chown(run_dir, nobody, nobody)
        sut = start_sut(command(haproxy), TEMPLATE, fleet.upstreams, run_dir, user=nobody)
        try:
            assert successes(sut.url, 3) == 3
        finally:
            sut.stop()
        assert "ALERT" not in sut.log.read_text()
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
        shutil.rmtree(private, ignore_errors=True)


@pytest.mark.parametrize("path", ["/v3/key-1", "/rpc?apikey=k1"])
def test_calls_go_to_the_path_of_the_upstream_urls(haproxy, tmp_path, path):
    # A remote provider's URL carries its key in the path or query; every upstream
    # shares it (the runner's listeners each forward to one provider).
    servers = [RecordingUpstream(), RecordingUpstream()]
    try:
        upstreams = [s.upstream(name, path) for s, name in zip(servers, "AB", strict=True)]
        sut = start_sut(command(haproxy), TEMPLATE, upstreams, tmp_path)
        try:
            assert successes(sut.url, 4) == 4
        finally:
            sut.stop()
    finally:
        for server in servers:
            server.close()
    assert [p for s in servers for p in s.paths] == [path] * 4


def test_upstreams_on_different_paths_fail_the_rendering_naming_the_rule(tmp_path):
    upstreams = [
        RecordingUpstream.entry("A", 1, "/v3/key-1"),
        RecordingUpstream.entry("B", 1, "/v3/key-2"),
    ]
    with pytest.raises(jinja2.UndefinedError, match="upstreams_must_share_one_url_path"):
        render(TEMPLATE, port=2, upstreams=upstreams, run_dir=tmp_path)


def test_an_unknown_strategy_fails_the_rendering_naming_the_option(tmp_path):
    upstreams = [RecordingUpstream.entry("A", 1, "/")]
    with pytest.raises(jinja2.UndefinedError, match="strategy_must_be_round_robin_or_primary"):
        render(TEMPLATE, port=2, upstreams=upstreams, run_dir=tmp_path, strategy="priority")
