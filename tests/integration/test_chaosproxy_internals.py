"""Loud failure if a mitmproxy upgrade moves the internals `chaosproxy.mitm_internals`
relies on. The behaviour itself (ws_disconnect with a code, abnormal close, refuse) is
proven end to end in test_chaosproxy_fidelity.py; this names the broken piece."""

from __future__ import annotations

import dataclasses
import inspect
from importlib.metadata import version

import mitmproxy.http
import mitmproxy.proxy.utils
from mitmproxy.addonmanager import AddonManager
from mitmproxy.addons.proxyserver import Proxyserver, Servers
from mitmproxy.proxy.mode_servers import ProxyConnectionHandler
from mitmproxy.proxy.server import ConnectionHandler, ConnectionIO

WRITTEN_AGAINST = "12.2"
HINT = (
    "mitmproxy internals moved: update chaosproxy/mitm_internals.py and the pin in pyproject.toml"
)


def test_mitmproxy_is_the_minor_version_the_workaround_was_written_against():
    assert version("mitmproxy").startswith(WRITTEN_AGAINST + "."), HINT


def test_proxyserver_still_maps_client_ids_to_connection_handlers():
    assert "connections" in Proxyserver.__annotations__, HINT
    assert hasattr(Proxyserver(), "connections"), HINT


def test_connection_handlers_still_keep_their_transports_with_writer_and_task():
    assert "transports" in ConnectionHandler.__annotations__, HINT
    fields = {f.name for f in dataclasses.fields(ConnectionIO)}
    assert {"handler", "reader", "writer"} <= fields, HINT


def test_servers_update_is_still_an_awaitable_taking_modes():
    assert inspect.iscoroutinefunction(Servers.update), HINT
    assert list(inspect.signature(Servers.update).parameters) == ["self", "modes"], HINT


def test_connection_handlers_still_dispatch_hooks_through_handle_lifecycle():
    # fast_hooks replaces AddonManager.handle_lifecycle on the instance; the proxy's
    # connection handlers must still call it (not trigger_event) for every hook.
    assert inspect.iscoroutinefunction(AddonManager.handle_lifecycle), HINT
    assert list(inspect.signature(AddonManager.handle_lifecycle).parameters) == [
        "self",
        "event",
    ], HINT
    assert "addons.handle_lifecycle(" in inspect.getsource(ProxyConnectionHandler.handle_hook), HINT


def test_mitmproxy_debug_checks_are_still_the_ones_python_dash_o_turns_off():
    # python -m chaosproxy re-executes under -O for these; if mitmproxy moves them out
    # of `__debug__`, the measured gain is gone (bench/chaosproxy_throughput.py).
    assert "if __debug__:" in inspect.getsource(mitmproxy.http.MessageData), HINT
    assert "__debug__" in inspect.getsource(mitmproxy.proxy.utils.expect), HINT
