"""The one place that reaches into mitmproxy internals (written against 12.2.x).

mitmproxy has no public API to close a client connection from an addon (with or
without a WebSocket close frame), nor to await a listener being taken down and up.
Everything that relies on non-public names lives here, and
tests/integration/test_chaosproxy_internals.py fails loudly if an upgrade moves them:

- `Proxyserver.connections`: client id -> `ConnectionHandler`;
- `ConnectionHandler.transports[handler.client]`: a `ConnectionIO` with `writer`
  (an `asyncio.StreamWriter`) and `handler` (the task reading the client);
- `Proxyserver.servers.update(modes)`: awaitable; starts and stops listeners;
- `AddonManager.trigger_event(event)`, `.handle_lifecycle(event)`, `.chain`, `.add`,
  `.remove` and `addonmanager.traverse`: `fast_hooks` replaces the per-event walk over
  every addon (mitmproxy calls each addon for each event through a generator and a
  context manager each, builds the event's argument list with `dataclasses.fields`,
  and fires an `update` event after every flow event) with a cached list of the
  callables that implement the event, a cached list of the event's field names, and no
  `update` event when no addon implements it. Same semantics: chain order, awaitable
  results awaited, `AddonHalt` stops the event, other exceptions are logged, not raised.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import socket
import struct
import types
from collections.abc import Callable, Iterable

from mitmproxy import addonmanager, ctx, exceptions, flow, hooks
from mitmproxy.proxy.mode_specs import ProxyMode

from chaosproxy.rewrite import ws_close_frame

__all__ = ["abort_client", "close_client", "fast_hooks", "set_listeners"]

logger = logging.getLogger(__name__)


def fast_hooks(manager: addonmanager.AddonManager) -> None:
    """Makes `manager.trigger_event` call only the addons implementing each event, and
    `manager.handle_lifecycle` skip the `update` event nobody implements."""
    cache: dict[str, list[Callable]] = {}
    # Hook class -> its dataclass field names, in order: what `Hook.args()` returns the
    # values of, without calling `dataclasses.fields` per event.
    arg_names: dict[type, tuple[str, ...]] = {}

    def build(name: str) -> list[Callable]:
        funcs = []
        for addon in addonmanager.traverse(manager.chain):
            func = getattr(addon, name, None)
            if func is not None and callable(func) and not isinstance(func, types.ModuleType):
                funcs.append(func)
        return funcs

    async def trigger_event(event: hooks.Hook) -> None:
        funcs = cache.get(event.name)
        if funcs is None:
            funcs = cache[event.name] = build(event.name)
        if not funcs:
            return
        names = arg_names.get(type(event))
        if names is None:
            names = arg_names[type(event)] = tuple(f.name for f in dataclasses.fields(event))
        args = [getattr(event, n) for n in names]
        for func in funcs:
            try:
                res = func(*args)
                if res is not None and inspect.isawaitable(res):
                    await res
            except exceptions.AddonHalt:
                return
            except Exception:
                logger.exception("addon error in %s", event.name)

    async def handle_lifecycle(event: hooks.Hook) -> None:
        await trigger_event(event)
        funcs = cache.get("update")
        if funcs is None:
            funcs = cache["update"] = build("update")
        if funcs:
            message = getattr(event, dataclasses.fields(event)[0].name)
            if isinstance(message, flow.Flow):
                await trigger_event(hooks.UpdateHook([message]))

    add, remove = manager.add, manager.remove

    def add_and_forget(*addons: object) -> None:
        cache.clear()
        add(*addons)
        cache.clear()

    def remove_and_forget(addon: object) -> None:
        cache.clear()
        remove(addon)
        cache.clear()

    manager.trigger_event = trigger_event  # type: ignore[method-assign]
    manager.handle_lifecycle = handle_lifecycle  # type: ignore[method-assign]
    manager.add = add_and_forget  # type: ignore[method-assign]
    manager.remove = remove_and_forget  # type: ignore[method-assign]


def _proxyserver():
    return ctx.master.addons.get("proxyserver")


def _client_io(client_id: str):
    handler = _proxyserver().connections.get(client_id)
    if handler is None:
        return None
    return handler.transports.get(handler.client)


def abort_client(client_id: str) -> bool:
    """Closes the client connection at once with a TCP RST and no further bytes, as a
    dead host or a crashed provider would; False when it is already gone."""
    io = _client_io(client_id)
    if io is None or io.writer is None:
        return False
    sock = io.writer.get_extra_info("socket")
    if sock is not None:
        try:
            # Linger 0: close() sends RST instead of FIN, and drops unsent data.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    io.writer.transport.abort()
    if io.handler is not None:
        io.handler.cancel("chaosproxy: aborted")
    return True


def close_client(client_id: str, ws_code: int, reason: str) -> bool:
    """Sends a WebSocket close frame with `ws_code` and `reason`, then closes the TCP
    connection (FIN after the frame is flushed); mitmproxy then closes the upstream
    side. False when the connection is already gone."""
    io = _client_io(client_id)
    if io is None or io.writer is None:
        return False
    io.writer.write(ws_close_frame(ws_code, reason))
    if io.handler is not None:
        # The handler's cleanup calls writer.close(), which flushes the frame first.
        io.handler.cancel("chaosproxy: closed")
    else:
        io.writer.close()
    return True


async def set_listeners(modes: Iterable[str]) -> bool:
    """Runs exactly the listeners of `modes` (mitmproxy mode specs): missing ones are
    started, others stopped; returns when done. False when one failed (logged by
    mitmproxy). The `mode` option is left as configured."""
    return await _proxyserver().servers.update([ProxyMode.parse(m) for m in modes])
