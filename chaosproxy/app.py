"""The lean mitmproxy `Master` of the chaos proxy and its run loop.

Only the addons a reverse chaos proxy needs: `Core` (option checks), `Proxyserver`
(the listeners), `NextLayer` (picks the reverse-proxy layer stack), `TlsConfig` (TLS
to https upstreams), then ours. Left out on purpose: termlog and dumper (no
per-request logging), errorcheck and keepserving (we check our own start-up and run
until told to stop), script loading, flow storage, the web and console UIs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
import sys

from mitmproxy import master, options
from mitmproxy.addons import core, next_layer, proxyserver, tlsconfig

from chaosproxy import mitm_internals
from chaosproxy.addons import (
    ControlApi,
    Health,
    HttpFaults,
    Lifecycle,
    Providers,
    Recorder,
    RefuseListeners,
    Scheduler,
    WsFaults,
)
from chaosproxy.addons.paths import UpstreamPaths
from chaosproxy.config import Config
from chaosproxy.errors import ConfigError
from chaosproxy.recording import Shards
from chaosproxy.schedule import Timeline

__all__ = ["serve"]


class _Redacting(logging.Formatter):
    """Masks the upstream paths (API keys live there) in every record it formats."""

    def __init__(self, fmt: str, secrets: list[str]) -> None:
        super().__init__(fmt)
        # Longest first, so a path is masked whole before its segments are.
        self.secrets = sorted(set(secrets), key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def _secrets(config: Config) -> list[str]:
    """The upstream paths and queries, and each of their parts long enough to be a key
    (6+ characters, as `providers.remote.Redactor` judges)."""
    out: list[str] = []
    for lst in config.listeners:
        for path in (lst.path, lst.ws_path):
            if path:
                out.append(path)
                out += [p for p in re.split(r"[/?&=]", path) if len(p) >= 6]
    return out


def _quiet_logging(secrets: list[str]) -> None:
    # mitmproxy logs every connection at INFO/DEBUG; keep only warnings and errors, on
    # stderr, so the hot path does not even format log records.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Redacting("chaosproxy: %(levelname)s %(name)s: %(message)s", secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)


async def serve(config: Config) -> int:
    """Runs the proxy until shut down; returns the exit code."""
    _quiet_logging(_secrets(config))
    try:
        shards = Shards(config.run_dir, config.proxy_id)
    except OSError as e:
        raise ConfigError(f"--run-dir {config.run_dir}: cannot write shards: {e}") from e
    try:
        listeners = {lst.name: lst.port for lst in config.listeners}
        shards.lifecycle_event(
            "started",
            json.dumps(
                {lst.name: {"port": lst.port, "upstream": lst.redacted} for lst in config.listeners}
            ),
        )
        opts = options.Options()
        m = master.Master(opts, with_termlog=False)
        providers = Providers({lst.port: lst.name for lst in config.listeners})
        timeline = Timeline(list(config.faults))
        scheduler = Scheduler(timeline, providers, shards.fault_events)
        recorder = Recorder(config.proxy_id, providers, shards.upstream)
        ws = WsFaults(config.proxy_id, providers, timeline, shards.upstream_ws, shards.upstream)
        refuse = RefuseListeners(
            {lst.name: lst.mode for lst in config.listeners}, listeners, shards
        )
        scheduler.on_transition += [ws.on_transition, refuse.on_transition]
        health = Health(
            config.proxy_id,
            shards.proxy_health,
            lambda: recorder.in_flight,
            lambda: scheduler.exchanges,
        )
        control = ControlApi(
            scheduler, config.control_port, providers.names, lambda: recorder.in_flight
        )
        lifecycle = Lifecycle(listeners, control, shards, config.start_now)
        paths = {
            lst.port: (lst.path, lst.ws_path)
            for lst in config.listeners
            if lst.path is not None or lst.ws_path is not None
        }
        m.addons.add(
            core.Core(),
            proxyserver.Proxyserver(),
            next_layer.NextLayer(),
            tlsconfig.TlsConfig(),
            *([UpstreamPaths(paths)] if paths else []),
            scheduler,
            HttpFaults(),
            recorder,
            ws,
            refuse,
            health,
            control,
            lifecycle,
        )
        # After every addon is in: events then reach only the addons implementing them.
        mitm_internals.fast_hooks(m.addons)
        opts.update(
            mode=[lst.mode for lst in config.listeners],
            listen_host="127.0.0.1",
            connection_strategy="lazy",
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, m.shutdown)
        # A router that hangs up mid-write must not kill the proxy.
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        await m.run()
        return lifecycle.exit_code
    finally:
        # Normally closed by Lifecycle.done; this covers a shutdown before `running`.
        shards.close()
