"""`battle fleet up` as a real process: providers behind chaos-proxy listeners, URLs
printed, HTTP and WebSocket served through the listeners, nothing left after Ctrl-C."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Message, Request, TextMessage

from providers.anvil import find_anvil

pytestmark = pytest.mark.timeout(90)

BATTLE = str(Path(sys.executable).with_name("battle"))
LINE = re.compile(r"^(\w+)\s+http (\S+)\s+ws (\S+)\s+\(\w+ at (\S+)\)$")


def _refused(url: str) -> bool:
    host, port = url.split("//")[1].strip("/").split(":")
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, int(port))) != 0


def _ws_block_number(ws_url: str) -> str:
    host, port = ws_url.split("//")[1].strip("/").split(":")
    client = WSConnection(ConnectionType.CLIENT)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(client.send(Request(host=host, target="/")))
        msg = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}
        accepted = False
        while True:
            client.receive_data(s.recv(65536))
            for ev in client.events():
                if isinstance(ev, AcceptConnection):
                    accepted = True
                    s.sendall(client.send(Message(data=json.dumps(msg))))
                elif isinstance(ev, TextMessage):
                    assert accepted
                    return json.loads(ev.data)["result"]


def test_fleet_up_serves_every_provider_through_its_listener_and_stops_on_ctrl_c():
    # Started with SIGINT ignored, as a background job of a non-interactive shell is
    # (CI scripts, `make ... &`): Ctrl-C must stop it all the same.
    proc = subprocess.Popen(
        ["sh", "-c", 'trap "" INT; exec "$0" "$@"', BATTLE, "fleet", "up", "--count", "2",
         "--behaviour", 'B={"head_lag": 5}'],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        header = proc.stdout.readline()
        assert header.startswith("fleet: 2 mock providers"), header + proc.stderr.read()
        members = [LINE.match(proc.stdout.readline().strip()).groups() for _ in range(2)]
        assert [m[0] for m in members] == ["A", "B"]
        heads = {}
        for name, http_url, ws_url, _ in members:
            r = httpx.post(http_url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber"})
            heads[name] = int(r.json()["result"], 16)
            assert int(_ws_block_number(ws_url), 16) >= heads[name]
        assert 3 <= heads["A"] - heads["B"] <= 6, heads  # B lags 5 blocks
        proc.send_signal(signal.SIGINT)
        # Each child gets SIGTERM and up to 5 s (then SIGKILL), one after another: on a
        # busy box stopping three may take most of that; 60 s bounds a hang, not speed.
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    for _, http_url, _, provider_url in members:
        assert _refused(http_url) and _refused(provider_url)


def test_fleet_up_refuses_a_bad_behaviour_in_one_line():
    r = subprocess.run(
        [BATTLE, "fleet", "up", "--behaviour", "A=nope"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 2
    assert "--behaviour" in r.stderr


@pytest.mark.skipif(find_anvil() is None, reason="anvil not installed (make installs it)")
def test_an_anvil_fleet_serves_one_chain_through_the_listeners_and_ends_by_itself():
    proc = subprocess.Popen(
        [BATTLE, "fleet", "up", "--kind", "anvil", "--count", "2", "--duration", "6"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        header = proc.stdout.readline()
        assert header.startswith("fleet: 2 anvil providers"), header + proc.stderr.read()
        members = [LINE.match(proc.stdout.readline().strip()).groups() for _ in range(2)]
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "eth_getBlockByNumber",
            "params": ["0x1", False],
        }
        blocks = []
        for m in members:  # anvil mines block 1 one block time after it starts
            deadline = time.monotonic() + 10
            while (block := httpx.post(m[1], json=body).json()["result"]) is None:
                assert time.monotonic() < deadline, "anvil mined no block in 10 s"
                time.sleep(0.2)
            blocks.append(block["hash"])
        assert blocks[0] == blocks[1]
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    for _, http_url, _, provider_url in members:
        assert _refused(http_url) and _refused(provider_url)
