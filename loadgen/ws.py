"""WebSocket subscriptions and JSON-RPC calls over WebSocket, with a reconnect policy.

M clients each hold one WebSocket to the target, subscribe once (`newHeads` or
`logs`), record every notification (`ws_notifications`) and every session event
(`ws_sessions`), and optionally make JSON-RPC calls on the same socket (rows of
`requests` with transport `ws`, judged like HTTP answers). Those call probes keep a
fixed-interval schedule from t0 (`schedule.Probes`): each row's `t_intended` is its
slot, so a stalled probe's wait shows in the latency of every probe it delayed
(coordinated-omission-correct, as the HTTP load).

Session events, one row each: `connect`, `connect_failed`, `subscribe`,
`subscribe_failed`, `disconnect` (the server or the network ended the session:
reason and close code), `reconnect` (a new session after a disconnect, with the outage
in ms as its reason), `close` (the client's own close at the end of the load). With
reconnect off, a disconnect ends that client: the lost subscription is a failure the
analysis counts. With reconnect on, the client reconnects and resubscribes, as a dapp
would, after `RECONNECT_DELAY_S` doubling up to `RECONNECT_MAX_DELAY_S`.

The message handling (`parse_message`) is pure; the trio driver around it only sends,
receives and takes timestamps.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import trio
from trio_websocket import ConnectionClosed, HandshakeError, open_websocket_url

from .schedule import Probes
from .validate import DEFAULT_MAX_LAG_BLOCKS, Truth, judge
from .worker import Clock, Sink

__all__ = [
    "KINDS",
    "WS_SEQ_BASE",
    "Notification",
    "Reply",
    "WsConfig",
    "parse_message",
    "parse_subscriptions",
    "run_ws_clients",
]

KINDS = ("newHeads", "logs")
# A dapp's reconnect: 0.5 s, then doubling up to 8 s (ethers.js' WebSocketProvider
# and viem retry on the order of a second).
RECONNECT_DELAY_S = 0.5
RECONNECT_MAX_DELAY_S = 8.0
# The first seq of calls made over WebSocket (see run_ws_clients).
WS_SEQ_BASE = 1 << 40
# How long a subscribe or a handshake may take before it counts as failed.
SUBSCRIBE_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class Notification:
    subscription: str
    block_number: int | None
    block_hash: str | None
    parent_hash: str | None
    log_index: int | None


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer to a call made on the socket (matched to it by id)."""

    id: object
    raw: bytes


def _int(value: object) -> int | None:
    try:
        return int(value, 16) if isinstance(value, str) else None
    except ValueError:
        return None


def parse_message(text: str | bytes) -> Notification | Reply | None:
    """Classifies one message from the server: a subscription notification, a reply
    to a call, or None (not JSON-RPC: ignored, as a client library would)."""
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    if doc.get("method") == "eth_subscription":
        params = doc.get("params")
        if not isinstance(params, dict):
            return None
        result = params.get("result")
        r = result if isinstance(result, dict) else {}
        is_log = "logIndex" in r
        return Notification(
            subscription=str(params.get("subscription")),
            block_number=_int(r.get("blockNumber") if is_log else r.get("number")),
            block_hash=r.get("blockHash") if is_log else r.get("hash"),
            parent_hash=None if is_log else r.get("parentHash"),
            log_index=_int(r.get("logIndex")) if is_log else None,
        )
    if "id" in doc:
        raw = text if isinstance(text, bytes) else text.encode()
        return Reply(doc["id"], raw)
    return None


def parse_subscriptions(text: str) -> dict[str, int]:
    """Parses `newHeads=2,logs=1` (kind=clients)."""
    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, _, count = part.partition("=")
        if kind not in KINDS:
            raise ValueError(f"ws subscription kind must be one of {list(KINDS)}, got {kind!r}")
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"ws subscriptions of {kind} must be a count >= 1, got {count!r}")
        out[kind] = int(count)
    if not out:
        raise ValueError("ws subscriptions must name at least one kind")
    return out


@dataclass(frozen=True)
class WsConfig:
    """Args:
    url: `ws://` URL of the system under test.
    subscriptions: kind → number of clients subscribing to it.
    reconnect: reconnect and resubscribe after a drop (else the client stops).
    call_interval_s: each client makes an `eth_blockNumber` call this often (0: none),
        at t0 + k * call_interval_s (see `schedule.Probes`).
    timeout_s: a call without a reply this long after its send is a `timeout`.
    """

    worker: int
    url: str
    t0_ns: int
    duration_s: float
    subscriptions: dict[str, int]
    reconnect: bool = False
    call_interval_s: float = 0.0
    timeout_s: float = 5.0
    max_lag_blocks: int = DEFAULT_MAX_LAG_BLOCKS

    def __post_init__(self) -> None:
        if not self.url.startswith(("ws://", "wss://")):
            raise ValueError(f"ws url must be ws:// or wss://, got {self.url!r}")
        if not self.duration_s > 0:
            raise ValueError(f"duration_s must be > 0, got {self.duration_s}")
        if self.call_interval_s < 0:
            raise ValueError(f"call_interval_s must be >= 0, got {self.call_interval_s}")
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")


class _Client:
    """One logical subscriber: its sessions (one per (re)connection) over the run."""

    def __init__(
        self,
        config: WsConfig,
        index: int,
        kind: str,
        clock: Clock,
        sinks: tuple[Sink, Sink, Sink],
        truth: Truth | None,
        seq: Callable[[], int],
        connect: Callable = open_websocket_url,
    ) -> None:
        self.config = config
        self.name = f"w{config.worker}-{kind}-{index}"
        self.kind = kind
        self.clock = clock
        self.notifications, self.sessions, self.requests = sinks
        self.truth = truth
        self.seq = seq
        self.pending: dict[str, tuple[trio.MemorySendChannel, int]] = {}
        self.subscription: str | None = None
        self.produced_at = getattr(truth, "produced_at", None)
        self.connect = connect
        interval = round(config.call_interval_s * 1e9)
        self.probes = Probes(config.t0_ns, interval) if interval > 0 else None
        self.last_probe = 0  # the last probe sent (its number in `probes`)

    def event(self, event: str, reason: str | None = None, code: int | None = None) -> None:
        self.sessions.append(
            (
                self.config.worker,
                self.name,
                event,
                self.clock.now_ns(),
                reason,
                code,
                self.subscription,
            )
        )

    async def run(self, end_ns: int) -> None:
        end = self.clock.deadline(end_ns)
        delay = RECONNECT_DELAY_S
        down_since: int | None = None
        # A hard bound past the end, in case a close handshake hangs.
        with trio.move_on_at(end + SUBSCRIBE_TIMEOUT_S):
            while trio.current_time() < end:
                self.subscription = None
                connected = False
                try:
                    async with self.connect(
                        self.config.url,
                        connect_timeout=SUBSCRIBE_TIMEOUT_S,
                        disconnect_timeout=1.0,
                    ) as ws:
                        connected = True
                        if down_since is not None:
                            outage_ms = (self.clock.now_ns() - down_since) / 1e6
                            self.event("reconnect", f"outage {outage_ms:.1f} ms")
                        else:
                            self.event("connect")
                        with trio.move_on_at(end) as scope:
                            await self.session(ws)
                        if scope.cancelled_caught:
                            self.event("close", "end of load", 1000)
                            return
                except BaseException as exc:
                    why = _why(exc)
                    if why is None:
                        raise
                    if not connected:
                        self.event("connect_failed", f"{type(why).__name__}: {why}"[:200])
                    elif isinstance(why, _SubscribeFailed):
                        self.event("subscribe_failed", str(why)[:200])
                    else:
                        reason = why.reason  # type: ignore[union-attr]
                        self.event(
                            "disconnect",
                            (reason.reason or reason.name) if reason else "closed",
                            reason.code if reason else None,
                        )
                        delay = RECONNECT_DELAY_S
                    down_since = down_since if not connected and down_since else self.clock.now_ns()
                if not self.config.reconnect:
                    return
                await trio.sleep_until(min(trio.current_time() + delay, end))
                delay = min(delay * 2, RECONNECT_MAX_DELAY_S)

    async def session(self, ws) -> None:
        await self._session(ws)

    async def _session(self, ws) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.reader, ws)
            params: list = [self.kind] if self.kind == "newHeads" else ["logs", {}]
            status, raw, _ = await self.call(ws, "eth_subscribe", params, record=False)
            try:
                doc = json.loads(raw)
                result = doc.get("result")
            except (ValueError, AttributeError):
                result = None
            if status != "reply" or not isinstance(result, str):
                raise _SubscribeFailed(f"eth_subscribe {self.kind}: {status} {raw[:120]!r}")
            self.subscription = result
            self.event("subscribe", self.kind)
            if self.probes is not None:
                nursery.start_soon(self.caller, ws)

    async def reader(self, ws) -> None:
        now_ns = self.clock.now_ns
        while True:
            message = await ws.get_message()
            t = now_ns()
            parsed = parse_message(message)
            if isinstance(parsed, Notification):
                produced = (
                    self.produced_at(parsed.block_number)
                    if self.produced_at
                    and parsed.block_number is not None
                    and parsed.log_index is None
                    else None
                )
                self.notifications.append(
                    (
                        self.config.worker,
                        self.name,
                        parsed.subscription,
                        self.kind,
                        parsed.block_number,
                        parsed.block_hash,
                        parsed.parent_hash,
                        parsed.log_index,
                        t,
                        produced,
                    )
                )
            elif isinstance(parsed, Reply) and isinstance(parsed.id, str):
                waiter = self.pending.pop(parsed.id, None)
                if waiter is not None:
                    waiter[0].send_nowait((parsed.raw, t))

    async def call(
        self,
        ws,
        method: str,
        params: list,
        *,
        record: bool = True,
        t_intended: int | None = None,
    ) -> tuple[str, bytes, int]:
        """Sends one call and waits for its reply; records a `requests` row (its
        latency counts from `t_intended`, by default the send)."""
        seq = self.seq()
        tag = f"bt-{self.config.worker}-ws{seq}"
        body = json.dumps({"jsonrpc": "2.0", "id": tag, "method": method, "params": params})
        send, receive = trio.open_memory_channel(1)
        t_sent = self.clock.now_ns()
        self.pending[tag] = (send, t_sent)
        status, raw, t_done = "timeout", b"", 0
        try:
            await ws.send_message(body)
            with trio.move_on_after(self.config.timeout_s):
                raw, t_done = await receive.receive()
                status = "reply"
        finally:
            self.pending.pop(tag, None)
        if not t_done:
            t_done = self.clock.now_ns()
        if record:
            if status == "reply":
                j = judge(
                    method,
                    tag,
                    200,
                    raw,
                    params=params,
                    truth=self.truth,
                    t_sent_ns=t_sent,
                    t_done_ns=t_done,
                    max_lag_blocks=self.config.max_lag_blocks,
                )
                outcome, code, error, block = j.outcome, j.rpc_code, j.error, j.result_block
                tag_of_block = j.block_tag
            else:
                outcome, code, error, block = (
                    "timeout",
                    None,
                    f"no reply within {self.config.timeout_s} s",
                    None,
                )
                tag_of_block = None
            self.requests.append(
                (
                    self.config.worker,
                    seq,
                    tag,
                    "ws",
                    method,
                    1,
                    t_sent if t_intended is None else t_intended,
                    t_sent,
                    t_done,
                    outcome,
                    None,
                    code,
                    error,
                    len(body),
                    len(raw),
                    block,
                    tag_of_block,
                )
            )
        return status, raw, t_done

    async def caller(self, ws) -> None:
        # One probe at a time, each at its slot of the schedule from t0, or as soon as
        # the previous one ended when that is later (then late, and counted from the
        # slot). A new session starts at the next slot: none is sent without a socket.
        probes = self.probes
        assert probes is not None
        k = probes.next(self.clock.now_ns(), self.last_probe)
        while True:
            t_intended = probes.at(k)
            # trio's own sleep: the worker's scheduler owns the clock's precise timer.
            await trio.sleep_until(self.clock.deadline(t_intended))
            self.last_probe = k
            await self.call(ws, "eth_blockNumber", [], t_intended=t_intended)
            k += 1


class _SubscribeFailed(Exception):
    pass


def _why(exc: BaseException) -> BaseException | None:
    """The session-ending error inside `exc` (possibly an exception group), or None
    when it is something else (a cancellation, a bug) that must propagate."""
    expected = (OSError, HandshakeError, ConnectionClosed, _SubscribeFailed, trio.TooSlowError)
    leaves = _leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc]
    return next((e for e in leaves if isinstance(e, expected)), None)


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out


async def run_ws_clients(
    config: WsConfig,
    notifications: Sink,
    sessions: Sink,
    requests: Sink,
    *,
    clock: Clock,
    truth: Truth | None = None,
    connect: Callable = open_websocket_url,
) -> None:
    """Runs every client from `t0_ns` for `duration_s`, then closes them. `connect` is
    trio-websocket's `open_websocket_url` (tests give a fake)."""
    # WS calls share the worker's requests shard: their seq starts far above any HTTP
    # call's, so (worker, seq) stays unique.
    counter = iter(range(WS_SEQ_BASE, 1 << 62))
    end_ns = config.t0_ns + round(config.duration_s * 1e9)
    # trio's own sleep: the worker's scheduler owns the clock's precise timer.
    await trio.sleep_until(clock.deadline(config.t0_ns))
    async with trio.open_nursery() as nursery:
        for kind, count in config.subscriptions.items():
            for i in range(count):
                client = _Client(
                    config,
                    i,
                    kind,
                    clock,
                    (notifications, sessions, requests),
                    truth,
                    lambda: next(counter),
                    connect,
                )
                nursery.start_soon(client.run, end_ns)
