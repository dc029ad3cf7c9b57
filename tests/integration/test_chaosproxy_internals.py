"""Loud failure if a mitmproxy upgrade moves the internals `chaosproxy.mitm_internals`
relies on. The behaviour itself (ws_disconnect with a code, abnormal close, refuse) is
proven end to end in test_chaosproxy_fidelity.py; this names the broken piece."""

from __future__ import annotations

import dataclasses
import inspect
from importlib.metadata import version

from mitmproxy.addons.proxyserver import Proxyserver, Servers
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
