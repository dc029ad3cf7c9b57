"""WebSocket call probes keep their schedule from t0, pinned on trio's MockClock."""

from __future__ import annotations

import json
from contextlib import asynccontextmanager

import pytest
import trio

from loadgen.schedule import Probes
from loadgen.worker import Clock
from loadgen.ws import WsConfig, run_ws_clients

T0 = 1_700_000_000_000_000_000
SEC = 1_000_000_000
MS = 1_000_000


def test_probe_k_is_meant_for_t0_plus_k_intervals():
    probes = Probes(T0, 100 * MS)
    assert [probes.at(k) for k in (1, 2, 10)] == [T0 + 100 * MS, T0 + 200 * MS, T0 + SEC]


def test_a_socket_opened_between_slots_starts_at_the_next_slot_after_the_last_probe_sent():
    probes = Probes(T0, 100 * MS)
    assert probes.next(T0) == 1  # the first probe is one interval after t0
    assert probes.next(T0 + 250 * MS) == 3
    assert probes.next(T0 + 300 * MS) == 3  # a slot due right now is still sent
    assert probes.next(T0 + 250 * MS, after=7) == 8  # never one already sent
    with pytest.raises(ValueError, match="interval_ns must be > 0"):
        Probes(T0, 0)


class StallingSocket:
    """A WebSocket JSON-RPC server on the test's clock: eth_subscribe answered at once,
    eth_blockNumber after 1 ms, except that a call sent in [stall_from, stall_to) is
    answered at stall_to."""

    def __init__(self, clock: Clock, nursery, stall_from: int, stall_to: int) -> None:
        self.clock, self.nursery = clock, nursery
        self.stall_from, self.stall_to = stall_from, stall_to
        self.inbox, self.outbox = trio.open_memory_channel(1000)

    async def send_message(self, text: str) -> None:
        msg = json.loads(text)
        now = self.clock.now_ns()
        if msg["method"] == "eth_subscribe":
            due, result = now, "0xsub"
        else:
            due = self.stall_to if self.stall_from <= now < self.stall_to else now + MS
            result = "0x64"
        reply = json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": result})
        self.nursery.start_soon(self._later, due, reply)

    async def _later(self, due: int, reply: str) -> None:
        await trio.sleep_until(self.clock.deadline(due))
        await self.inbox.send(reply)

    async def get_message(self) -> str:
        return await self.outbox.receive()


async def test_a_stalled_probe_delays_the_next_ones_whose_latency_counts_from_their_slots(
    autojump_clock, nursery
):
    clock = Clock(T0)
    socket = StallingSocket(clock, nursery, T0 + SEC, T0 + 2 * SEC)

    @asynccontextmanager
    async def connect(url, **_):
        yield socket

    requests: list[tuple] = []
    config = WsConfig(
        worker=1,
        url="ws://127.0.0.1:1/",
        t0_ns=T0,
        duration_s=2.95,
        subscriptions={"newHeads": 1},
        call_interval_s=0.1,
    )
    await run_ws_clients(config, [], [], requests, clock=clock, connect=connect)
    # Every slot of the schedule from t0 was probed once, in order: 0.1 s .. 2.9 s.
    intended = [r[6] for r in requests]
    assert intended == [T0 + k * 100 * MS for k in range(1, 30)]
    latency = {(r[6] - T0) // MS: r[8] - r[6] for r in requests}
    late = {(r[6] - T0) // MS: r[7] - r[6] for r in requests}
    # The probe of 1.0 s waited the whole stall; those of 1.1 .. 1.9 s could only go
    # after it, at 2.0 s, one after the other, and their latency counts from their slot.
    assert latency[1000] == SEC
    for slot in range(1100, 2000, 100):
        assert late[slot] >= (2000 - slot) * MS
        assert latency[slot] > late[slot]
    # Before and after, probes go at their slots and take 1 ms.
    assert {late[s] for s in (*range(100, 1100, 100), *range(2100, 3000, 100))} == {0}
    assert {latency[s] for s in range(100, 1000, 100)} == {MS}
    assert {r[9] for r in requests} == {"ok"} and {r[3] for r in requests} == {"ws"}
