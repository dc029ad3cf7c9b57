"""WebSocket subscriptions: a thin trio driver around :class:`HeadSequencer`.

Clients connect to the router's HTTP port with ``Upgrade: websocket`` (the server hands
the connection over, see ``_server``) and speak JSON-RPC: ``eth_subscribe`` with
``newHeads`` or ``logs`` (a filter), ``eth_unsubscribe``, and any other call, which goes
through :meth:`Router.forward` like an HTTP request.

All client subscriptions share ONE upstream ``newHeads`` subscription (the
:class:`HeadFeed`), opened while at least one client subscription exists. When it drops
or stalls it moves to the next upstream in the router's order (open breakers skipped),
the blocks missed meanwhile are fetched over HTTP, and repeats are dropped, so every
client sees each block once, in order. ``logs`` subscriptions ride on the same feed: for
each block delivered the router asks ``eth_getLogs`` with the client's filter and that
block's hash, so logs inherit the same exactly-once, in-order guarantee.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

import trio
import trio_websocket

from ._config import WebSocketSettings
from ._gapfill import HeadSequencer
from ._router import Router

__all__ = ["HeadFeed", "serve_websocket"]

# A subscription confirmation longer than this means the upstream is unwell.
SUBSCRIBE_TIMEOUT_S = 5.0
# Pause after every upstream failed in a row, so a dead fleet is not hammered.
ALL_FAILED_PAUSE_S = 0.5
# newHeads fields geth sends; a block fetched over HTTP carries more (transactions...).
_BLOCK_ONLY_FIELDS = ("transactions", "uncles", "size", "totalDifficulty")


def _dumps(payload: Any) -> str:
    return json.dumps(payload, separators=(",", ":"))


@dataclass(eq=False)
class _Subscriber:
    sid: str
    send: trio.MemorySendChannel[str]
    overflowed: trio.Event
    log_filter: dict[str, Any] | None = None  # None: newHeads
    sent: int = field(default=0)


class HeadFeed:
    """The one upstream newHeads subscription behind every client subscription."""

    def __init__(self, router: Router, settings: WebSocketSettings, urls: tuple[str, ...]) -> None:
        self._router = router
        self._settings = settings
        self._urls = urls
        self._subscribers: dict[str, _Subscriber] = {}
        self._wake = trio.Event()
        self.sequencer = HeadSequencer(
            backfill_limit=settings.backfill_limit, dedupe=settings.dedupe
        )
        self.upstream: int | None = None  # index of the upstream subscribed to now
        self.resubscribes = 0
        self.ended = False  # resubscribe off and the upstream went away
        self.last_error = ""  # why the last upstream subscription ended, for debugging
        metrics = router.metrics
        metrics.gauge(
            "router_ws_subscriptions",
            "Client subscriptions.",
            (),
            lambda: [((), len(self._subscribers))],
        )
        metrics.gauge(
            "router_ws_upstream_resubscribes_total",
            "Times the upstream newHeads subscription moved after a drop or stall.",
            (),
            lambda: [((), self.resubscribes)],
            kind="counter",
        )
        seq = self.sequencer
        for name, what, attr in (
            ("backfilled_blocks", "Blocks fetched over HTTP to fill a gap.", "backfilled"),
            ("duplicates_dropped", "Headers dropped as already delivered.", "duplicates"),
            ("skipped_blocks", "Blocks given up (gap over the limit, fetch failed).", "skipped"),
        ):
            metrics.gauge(
                f"router_ws_{name}_total",
                what,
                (),
                lambda a=attr: [((), getattr(seq, a))],
                kind="counter",
            )

    # ------------------------------------------------------------------ subscribers

    def add(self, sub: _Subscriber) -> None:
        self._subscribers[sub.sid] = sub
        self._wake.set()

    def remove(self, sid: str) -> bool:
        removed = self._subscribers.pop(sid, None) is not None
        if removed and not self._subscribers:
            # Nobody listens: the next subscriber starts at the head of that moment, not
            # with a backfill of what happened meanwhile.
            self.sequencer.restart()
        return removed

    def _push(self, sub: _Subscriber, result: Any) -> None:
        message = {
            "jsonrpc": "2.0",
            "method": "eth_subscription",
            "params": {"subscription": sub.sid, "result": result},
        }
        try:
            sub.send.send_nowait(_dumps(message))
            sub.sent += 1
        except trio.WouldBlock:
            # A client this far behind would see a gap anyway: end its connection instead.
            self.remove(sub.sid)
            sub.overflowed.set()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.remove(sub.sid)

    async def _deliver(self, headers: list[dict[str, Any]]) -> None:
        for header in headers:
            subscribers = list(self._subscribers.values())
            for sub in subscribers:
                if sub.log_filter is None:
                    self._push(sub, header)
            for sub in subscribers:
                if sub.log_filter is not None:
                    logs = await self._router.call(
                        "eth_getLogs", [{**sub.log_filter, "blockHash": header.get("hash")}]
                    )
                    for log in logs if isinstance(logs, list) else []:
                        self._push(sub, log)

    # ------------------------------------------------------------------ upstream side

    async def _fetch(self, number: int) -> dict[str, Any] | None:
        block = await self._router.call("eth_getBlockByNumber", [hex(number), False])
        if not isinstance(block, dict):
            return None
        return {k: v for k, v in block.items() if k not in _BLOCK_ONLY_FIELDS}

    async def offer(self, header: dict[str, Any]) -> None:
        """One header from the upstream: backfill what it reveals missing, then deliver."""
        seq = self.sequencer
        for number in seq.offer(header):
            seq.fetched(number, await self._fetch(number))
        await self._deliver(seq.ready())

    async def _follow(self, index: int) -> None:
        """Subscribe on upstream ``index`` and pass its headers on until it drops or stalls."""
        settings = self._settings
        async with trio_websocket.open_websocket_url(
            self._urls[index], connect_timeout=SUBSCRIBE_TIMEOUT_S
        ) as ws:
            request = {"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]}
            await ws.send_message(_dumps(request))
            with trio.fail_after(SUBSCRIBE_TIMEOUT_S):
                while True:
                    reply = json.loads(await ws.get_message())
                    if reply.get("id") == 1:
                        break
            if not isinstance(reply.get("result"), str):
                raise ConnectionError(f"eth_subscribe refused: {reply.get('error')}")
            self.upstream = index
            while self._subscribers:
                with trio.move_on_after(settings.stall_timeout_s) as stall:
                    message = json.loads(await ws.get_message())
                if stall.cancelled_caught:
                    return  # stalled: no newHeads for stall_timeout_s
                params = message.get("params") if isinstance(message, dict) else None
                if message.get("method") == "eth_subscription" and isinstance(params, dict):
                    header = params.get("result")
                    if isinstance(header, dict):
                        await self.offer(header)

    async def run(self) -> None:
        """Keep one upstream subscription while clients want one; until cancelled."""
        last: int | None = None
        failures_in_row = 0
        while True:
            if not self._subscribers:
                self._wake = trio.Event()
                await self._wake.wait()
                continue
            if self.ended:
                for sub in list(self._subscribers.values()):
                    self.remove(sub.sid)
                    sub.overflowed.set()  # nothing will come: end the clients' connections
                self.ended = False  # a later subscriber gets a subscription of its own
                continue
            plan = self._router.plan(trio.current_time()) or list(range(len(self._urls)))
            # Move on from the upstream that just failed when there is another one.
            index = next((i for i in plan if i != last), plan[0])
            try:
                await self._follow(index)
            except Exception as exc:
                # Whatever ended it (refused, handshake, closed, bad JSON, an exception
                # group from trio-websocket's nursery), the feed itself must live on.
                self.last_error = f"{self._urls[index]}: {type(exc).__name__}: {exc}"
                failures_in_row += 1
            else:
                failures_in_row = 0
            if not self._subscribers:
                continue
            self.upstream, last = None, index
            self.resubscribes += 1
            if not self._settings.resubscribe:
                self.ended = True
            elif failures_in_row >= len(self._urls):
                failures_in_row = 0
                await trio.sleep(ALL_FAILED_PAUSE_S)


# ---------------------------------------------------------------------- client side

_subscription_ids = itertools.count(1)


async def serve_websocket(
    ws: trio_websocket.WebSocketConnection, router: Router, feed: HeadFeed, queue: int
) -> None:
    """Serve one client WebSocket connection until it closes."""
    send, receive = trio.open_memory_channel[str](queue)
    overflowed = trio.Event()
    mine: list[str] = []

    async def writer() -> None:
        async for text in receive:
            await ws.send_message(text)

    async def watchdog(cancel: trio.CancelScope) -> None:
        await overflowed.wait()
        await ws.aclose(code=1008, reason="client too slow or upstream feed ended")
        cancel.cancel()

    async def answer(raw: str | bytes) -> None:
        body = raw.encode() if isinstance(raw, str) else raw
        reply = await router.forward(body)
        try:
            send.send_nowait(reply.body.decode())
        except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
            overflowed.set()

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer)
            nursery.start_soon(watchdog, nursery.cancel_scope)
            while True:
                raw = await ws.get_message()
                try:
                    request = json.loads(raw)
                except ValueError:
                    request = None
                method = request.get("method") if isinstance(request, dict) else None
                params = request.get("params") if isinstance(request, dict) else None
                params = params if isinstance(params, list) and params else [None]
                if method == "eth_subscribe":
                    kind = params[0]
                    if kind not in ("newHeads", "logs"):
                        error = {"code": -32602, "message": f"unsupported subscription {kind!r}"}
                        reply = {"jsonrpc": "2.0", "id": request.get("id"), "error": error}
                        await send.send(_dumps(reply))
                        continue
                    sid = hex(next(_subscription_ids))
                    log_filter = None
                    if kind == "logs":
                        log_filter = (
                            params[1] if len(params) > 1 and isinstance(params[1], dict) else {}
                        )
                        log_filter = {
                            k: v for k, v in log_filter.items() if k in ("address", "topics")
                        }
                    # Reply first, then register: the id must reach the client before the
                    # first notification that names it.
                    await send.send(
                        _dumps({"jsonrpc": "2.0", "id": request.get("id"), "result": sid})
                    )
                    feed.add(_Subscriber(sid, send.clone(), overflowed, log_filter))
                    mine.append(sid)
                elif method == "eth_unsubscribe":
                    done = params[0] in mine and feed.remove(params[0])
                    await send.send(
                        _dumps({"jsonrpc": "2.0", "id": request.get("id"), "result": done})
                    )
                else:
                    nursery.start_soon(answer, raw)
    except* (trio_websocket.ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # the client went away (trio wraps it in an ExceptionGroup from the nursery)
    finally:
        for sid in mine:
            feed.remove(sid)
