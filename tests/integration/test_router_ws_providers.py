"""The router's WebSocket feed against real mock providers on loopback: a client's
newHeads stay consecutive (each block's parent is the block before) with no repeat,
across the loss of the provider the router was subscribed to."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import trio
import trio_websocket

from examples.reference_router import RouterConfig, UpstreamConfig, WebSocketSettings, serve
from scenarios.processes import free_ports

REPO = Path(__file__).resolve().parents[2]
BLOCK_MS = 200


async def start_provider(name: str, port: int, genesis_ns: int) -> trio.Process:
    process = await trio.lowlevel.open_process(
        [
            sys.executable,
            "-m",
            "providers.mock",
            "--name",
            name,
            "--port",
            str(port),
            "--seed",
            "7",
            "--genesis-ns",
            str(genesis_ns),
            "--block-time-ms",
            str(BLOCK_MS),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    with trio.fail_after(20):
        line = b""
        while not line.endswith(b"\n"):
            chunk = await process.stdout.receive_some(1024)
            assert chunk, "provider exited before it was ready"
            line += chunk
    return process


async def test_new_heads_stay_consecutive_when_the_subscribed_provider_dies():
    genesis_ns = time.time_ns() - 10 * BLOCK_MS * 1_000_000
    ports = free_ports(2)
    processes: list[trio.Process] = []
    try:
        for name, port in zip("AB", ports, strict=True):
            processes.append(await start_provider(name, port, genesis_ns))
        config = RouterConfig(
            host="127.0.0.1",
            port=0,
            upstreams=tuple(
                UpstreamConfig(n, f"http://127.0.0.1:{p}") for n, p in zip("AB", ports, strict=True)
            ),
            strategy="priority",
            websocket=WebSocketSettings(stall_timeout_s=5 * BLOCK_MS / 1000),
        )
        async with trio.open_nursery() as nursery:
            host, port = await nursery.start(serve, config)
            ws = await trio_websocket.connect_websocket_url(nursery, f"ws://{host}:{port}/")
            subscribe = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "eth_subscribe",
                "params": ["newHeads"],
            }
            await ws.send_message(json.dumps(subscribe))
            heads = []
            with trio.fail_after(15):
                reply = json.loads(await ws.get_message())
                assert isinstance(reply["result"], str)
                while len(heads) < 12:
                    heads.append(json.loads(await ws.get_message())["params"]["result"])
                    if len(heads) == 4:
                        processes[0].terminate()  # provider A, the one subscribed to
            await ws.aclose()
            async with httpx.AsyncClient() as client:
                metrics = (await client.get(f"http://{host}:{port}/metrics")).text
            nursery.cancel_scope.cancel()
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
            await process.wait()
    numbers = [int(h["number"], 16) for h in heads]
    assert numbers == list(range(numbers[0], numbers[0] + 12))
    for before, after in itertools.pairwise(heads):
        assert after["parentHash"] == before["hash"]
    assert "router_ws_upstream_resubscribes_total 1\n" in metrics  # it did move to B
