"""examples/nginx as a system under test, with real nginx, mock providers and the chaos
proxy on loopback: failover on and off against real faults, the correlation header
reaching upstream, WebSocket subscriptions through it, and a clean SIGTERM stop.
Skipped when nginx is absent, unless BATTLE_REQUIRE_SUTS=1 (CI)."""

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
import sut_examples
from sut_examples import (
    ROOT,
    Fleet,
    RecordingUpstream,
    alive,
    big_call_statuses,
    closed_by_peer,
    descendants,
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

TEMPLATE = ROOT / "examples" / "nginx" / "nginx.conf.j2"
# The command line of examples/nginx/README.md.
COMMAND = ["nginx", "-p", "{run_dir}", "-e", "stderr", "-c", "{config}"]
CALLS = 30


@pytest.fixture(scope="module")
def nginx() -> str:
    return require_binary("nginx", "nginx-light")


@pytest.fixture(scope="module")
def fleet(nginx: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    yield from fleet_fixture(tmp_path_factory)


@pytest.fixture
def clear_faults(fleet: Fleet) -> Iterator[None]:
    try:
        yield
    finally:
        fleet.clear()


def command(nginx: str) -> list[str]:
    return [nginx, *COMMAND[1:]]


# (id, fault kind on A, its params, template options, calls of CALLS that fail). The
# client calls one at a time and round-robin gives A every third call.
FAILOVER_CASES = [
    ("503-failover-on", "http_error", {"status": 503}, {"failover": True}, 0),
    ("reset-failover-on", "reset", {}, {"failover": True}, 0),
    ("429-failover-on", "http_error", {"status": 429}, {"failover": True}, 0),
    ("hang-failover-on", "hang", {}, {"failover": True}, 0),
    (
        "503-primary-backup-failover-on",
        "http_error",
        {"status": 503},
        {"failover": True, "strategy": "primary_backup"},
        0,
    ),
    # Off, a 503 is not a failed attempt to nginx: A keeps its share.
    ("503-failover-off", "http_error", {"status": 503}, {"failover": False}, CALLS // 3),
    # Off, a reset still counts against max_fails (1): A is skipped for fail_timeout
    # after its first failure...
    ("reset-failover-off", "reset", {}, {"failover": False}, 1),
    # ...unless passive health checks are off too.
    ("reset-failover-off-max-fails-0", "reset", {}, {"failover": False, "max_fails": 0}, 10),
    # A JSON-RPC error in an HTTP 200 body is an answer to nginx: never retried.
    ("rpc-error-failover-on", "rpc_error", {"code": -32005}, {"failover": True}, CALLS // 3),
]


@pytest.mark.parametrize(
    ("case", "kind", "params", "options", "failures"),
    FAILOVER_CASES,
    ids=[c[0] for c in FAILOVER_CASES],
)
def test_failover_on_hides_a_failing_upstream_and_failover_off_does_not(
    nginx, fleet, clear_faults, tmp_path, case, kind, params, options, failures
):
    fault_id = fleet.fault("A", kind, params)
    sut = start_sut(
        command(nginx), TEMPLATE, fleet.upstreams, tmp_path, read_timeout_ms=300, **options
    )
    try:
        ok = successes(sut.url, CALLS)
    finally:
        sut.stop()
    assert fleet.applied(fault_id) >= 1, "the fault never reached an exchange"
    assert CALLS - ok == failures


def test_a_large_request_is_retried_too(nginx, fleet, clear_faults, tmp_path):
    fleet.fault("A", "http_error", {"status": 503})
    sut = start_sut(command(nginx), TEMPLATE, fleet.upstreams, tmp_path)
    try:
        # An 800 kB body, held in memory (client_body_buffer_size) for the retry.
        statuses = big_call_statuses(sut.url, calldata_bytes=400_000, calls=6)
    finally:
        sut.stop()
    assert statuses == [200] * 6, statuses


def test_primary_backup_sends_everything_to_the_first_upstream_while_it_is_healthy(
    nginx, fleet, tmp_path
):
    sut = start_sut(command(nginx), TEMPLATE, fleet.upstreams, tmp_path, strategy="primary_backup")
    tags = [f"bt-nginx-pb-{i}" for i in range(6)]
    try:
        with httpx.Client(timeout=10) as client:
            for tag in tags:
                assert rpc(client, sut.url, tag=tag)[0] == 200
    finally:
        sut.stop()
    served = {row["provider"] for tag in tags for row in wait_for_tag(fleet, tag)}
    assert served == {"A"}


def test_the_battle_tag_header_reaches_the_upstream(nginx, fleet, tmp_path):
    sut = start_sut(command(nginx), TEMPLATE, fleet.upstreams, tmp_path)
    tag = f"bt-nginx-{os.getpid()}-{time.monotonic_ns()}"
    try:
        with httpx.Client(timeout=10) as client:
            status, body = rpc(client, sut.url, tag=tag)
    finally:
        sut.stop()
    assert status == 200, body
    # The JSON-RPC id is an integer, so only the header can have carried the tag.
    rows = wait_for_tag(fleet, tag)
    assert len(rows) == 1 and rows[0]["method"] == "eth_blockNumber"
    assert tag in (tmp_path / "nginx-access.log").read_text()


async def test_a_websocket_newheads_subscription_gets_notifications_through_nginx(
    nginx, fleet, tmp_path
):
    # A read timeout far below the block time would close an idle WebSocket; it must
    # not apply to upgraded connections.
    sut = start_sut(command(nginx), TEMPLATE, fleet.upstreams, tmp_path, read_timeout_ms=100)
    try:
        heads = await ws_heads(f"ws://127.0.0.1:{sut.port}/", 4)
    finally:
        sut.stop()
    numbers = [int(h["number"], 16) for h in heads]
    assert numbers == list(range(numbers[0], numbers[0] + 4)), numbers


def test_sigterm_stops_the_whole_process_tree_and_leaves_nothing_behind(nginx, fleet, tmp_path):
    sut = start_sut(command(nginx), TEMPLATE, fleet.upstreams, tmp_path, workers=2)
    assert successes(sut.url, 5) == 5
    # An open WebSocket must not hold the stop up.
    ws = open_websocket(sut.port)
    tree = sut.tree()
    assert len(tree) == 3, tree  # master and two workers
    assert (tmp_path / "nginx.pid").read_text().strip() == str(sut.popen.pid)
    started = time.monotonic()
    assert sut.stop() == 0
    assert time.monotonic() - started < 5
    assert not [pid for pid in tree if alive(pid)]
    assert closed_by_peer(ws), "the WebSocket outlived the SUT"
    ws.close()
    assert not (tmp_path / "nginx.pid").exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{sut.url}/health", timeout=2)


def test_nginx_runs_as_an_unprivileged_user_with_every_file_under_run_dir(nginx, fleet):
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to an unprivileged user (the other tests run as one)")
    nobody = 65534
    # pytest's own temp folders are private to root: the run directory must be the
    # unprivileged user's own.
    run_dir = Path(tempfile.mkdtemp(prefix="battle-nginx-"))
    try:
        os.chown(run_dir, nobody, nobody)
        sut = start_sut(command(nginx), TEMPLATE, fleet.upstreams, run_dir, user=nobody)
        try:
            assert successes(sut.url, 3) == 3
            assert descendants(sut.popen.pid), "no worker started"
        finally:
            assert sut.stop() == 0
        assert "emerg" not in sut.log.read_text()
        assert {p.name for p in run_dir.iterdir()} == {
            "nginx.conf",
            "sut.log",
            "nginx-access.log",
            "nginx-error.log",
            "nginx-temp",
        }
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def test_nginx_as_root_runs_its_workers_unprivileged_and_still_proxies(nginx, fleet, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("only root switches the worker user")
    # tmp_path is private to root, which the workers (nobody) cannot enter: the
    # template keeps them off the disk, so they must not need to.
    sut = start_sut(command(nginx), TEMPLATE, fleet.upstreams, tmp_path)
    try:
        workers = descendants(sut.popen.pid)
        uids = {
            Path(f"/proc/{pid}/status").read_text().split("Uid:")[1].split()[0] for pid in workers
        }
        assert uids and "0" not in uids, uids
        # A 400 kB body, above nginx's default buffer (16 kB) where it would go to a
        # temp file the workers could not write.
        statuses = big_call_statuses(sut.url, calldata_bytes=200_000, calls=1)
    finally:
        sut.stop()
    assert statuses == [200], statuses


@pytest.mark.parametrize("required", [False, True])
def test_a_missing_binary_skips_the_tests_unless_required(monkeypatch, required):
    monkeypatch.setattr(sut_examples, "REQUIRE", required)
    expected = pytest.fail.Exception if required else pytest.skip.Exception
    with pytest.raises(expected, match="battle-no-such-binary not installed"):
        sut_examples.require_binary("battle-no-such-binary", "battle-no-such-package")


@pytest.mark.parametrize("path", ["/v3/key-1", "/rpc?apikey=k1"])
def test_calls_go_to_the_path_of_the_upstream_urls(nginx, tmp_path, path):
    # A remote provider's URL carries its key in the path or query; every upstream
    # shares it (the runner's listeners each forward to one provider).
    servers = [RecordingUpstream(), RecordingUpstream()]
    try:
        upstreams = [s.upstream(name, path) for s, name in zip(servers, "AB", strict=True)]
        sut = start_sut(command(nginx), TEMPLATE, upstreams, tmp_path)
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
