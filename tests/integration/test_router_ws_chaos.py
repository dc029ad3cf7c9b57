"""The router's WebSocket feed through the chaos proxy, against real mock providers:
with WebSocket faults on the provider it is subscribed to, the client still sees every
block once, in order (each block's parent the block before) — and with the matching
behaviour switched off, the client sees the fault. Real processes on loopback."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio_websocket

from examples.reference_router import RouterConfig, UpstreamConfig, WebSocketSettings, serve
from scenarios.processes import ProcessGroup, free_ports, wait_until

BLOCK_MS = 200
HEADS = 15


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.TransportError:
        return False


def start_stack(run_dir: Path, fault: dict[str, Any]) -> tuple[ProcessGroup, list[str]]:
    """Providers A and B, each behind a chaos-proxy listener; the fault on A from t0."""
    genesis_ns = time.time_ns() - 10 * BLOCK_MS * 1_000_000
    pa, pb, la, lb, control = free_ports(5)
    faults = [{"fault_id": "a-ws", "provider": "A", "start_s": 0, "duration_s": 600, **fault}]
    (run_dir / "faults.json").write_text(json.dumps(faults))
    group = ProcessGroup(run_dir / "logs")
    try:
        for name, port in (("A", pa), ("B", pb)):
            group.start(
                f"provider-{name}",
                "provider",
                [
                    "-m",
                    "providers.mock",
                    "--name",
                    name,
                    "--port",
                    str(port),
                    "--seed",
                    "3",
                    "--genesis-ns",
                    str(genesis_ns),
                    "--block-time-ms",
                    str(BLOCK_MS),
                ],
            )
        group.start(
            "proxy",
            "proxy",
            [
                "-m",
                "chaosproxy",
                "--proxy-id",
                "p0",
                "--run-dir",
                str(run_dir),
                "--control-port",
                str(control),
                "--faults",
                str(run_dir / "faults.json"),
                f"--listen=A={la}=http://127.0.0.1:{pa}",
                f"--listen=B={lb}=http://127.0.0.1:{pb}",
            ],
        )
        for port in (pa, pb, control):
            wait_until(
                lambda p=port: _ok(f"http://127.0.0.1:{p}/health"), timeout=30, what=str(port)
            )
        response = httpx.post(
            f"http://127.0.0.1:{control}/start", json={"t0_ns": time.time_ns()}, timeout=5
        )
        assert response.status_code == 200, response.text
    except BaseException:
        group.stop_all()
        raise
    return group, [f"http://127.0.0.1:{la}", f"http://127.0.0.1:{lb}"]


async def collect_heads(urls: list[str], settings: WebSocketSettings) -> list[dict[str, Any]]:
    """Subscribe through the router; the heads received until HEADS arrived or the
    connection closed."""
    config = RouterConfig(
        host="127.0.0.1",
        port=0,
        upstreams=(UpstreamConfig("A", urls[0]), UpstreamConfig("B", urls[1])),
        strategy="priority",
        websocket=settings,
    )
    heads: list[dict[str, Any]] = []
    async with trio.open_nursery() as nursery:
        host, port = await nursery.start(serve, config)
        ws = await trio_websocket.connect_websocket_url(nursery, f"ws://{host}:{port}/")
        request = {"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]}
        await ws.send_message(json.dumps(request))
        with trio.move_on_after(HEADS * BLOCK_MS / 1000 + 8):
            assert isinstance(json.loads(await ws.get_message())["result"], str)
            try:
                while len(heads) < HEADS:
                    heads.append(json.loads(await ws.get_message())["params"]["result"])
            except trio_websocket.ConnectionClosed:
                pass
        await ws.aclose()
        nursery.cancel_scope.cancel()
    return heads


def numbers(heads: list[dict[str, Any]]) -> list[int]:
    return [int(h["number"], 16) for h in heads]


def exactly_once_in_order(heads: list[dict[str, Any]]) -> bool:
    n = numbers(heads)
    linked = all(b["parentHash"] == a["hash"] for a, b in itertools.pairwise(heads))
    return len(heads) == HEADS and n == list(range(n[0], n[0] + HEADS)) and linked


STALL = WebSocketSettings(stall_timeout_s=3 * BLOCK_MS / 1000)

CASES = [
    # (id, fault, router settings, expectation on the heads the client saw)
    ("drop-backfilled", {"kind": "ws_drop", "params": {"every_k": 3}}, STALL, "ok"),
    (
        "drop-without-backfill",
        {"kind": "ws_drop", "params": {"every_k": 3}},
        WebSocketSettings(stall_timeout_s=0.6, backfill_limit=0),
        "gaps",
    ),
    ("duplicate-dropped", {"kind": "ws_duplicate", "params": {"every_k": 2}}, STALL, "ok"),
    (
        "duplicate-without-dedupe",
        {"kind": "ws_duplicate", "params": {"every_k": 2}},
        WebSocketSettings(stall_timeout_s=0.6, dedupe=False),
        "repeats",
    ),
    ("stall-resubscribed", {"kind": "ws_stall", "params": {}}, STALL, "ok"),
    (
        "stall-without-resubscribe",
        {"kind": "ws_stall", "params": {}},
        WebSocketSettings(stall_timeout_s=0.6, resubscribe=False),
        "ended",
    ),
]


@pytest.mark.parametrize(("case", "fault", "settings", "expect"), CASES, ids=[c[0] for c in CASES])
async def test_websocket_faults_on_the_subscribed_provider(tmp_path, case, fault, settings, expect):
    group, urls = start_stack(tmp_path, fault)
    try:
        heads = await collect_heads(urls, settings)
    finally:
        group.stop_all()
    seen = numbers(heads)
    if expect == "ok":
        assert exactly_once_in_order(heads), seen
    elif expect == "gaps":
        assert len(heads) == HEADS and any(b - a > 1 for a, b in itertools.pairwise(seen)), seen
    elif expect == "repeats":
        assert len(set(seen)) < len(seen), seen
    else:  # ended: the feed stopped and the router closed the client's connection
        assert len(heads) < HEADS, seen
