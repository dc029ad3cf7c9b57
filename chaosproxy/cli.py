"""`python -m chaosproxy`: parse and validate the command line, then run the proxy.

    python -m chaosproxy --proxy-id P0 --run-dir D --control-port C \
        --listen NAME=PORT=UPSTREAM_URL [--listen ...] [--listen-ws NAME=WS_URL ...] \
        [--faults FILE.json] [--start-now]

An upstream URL may carry a path and query (``https://mainnet.example/v3/KEY``): the
listener forwards to it, and `--listen-ws` gives the WebSocket endpoint's path on the
same host (``wss://mainnet.example/ws/v3/KEY``). The path and query are treated as
secret: nothing the proxy writes or prints contains them (see `Listener.redacted`).

`--start-now` starts the fault timeline (t0) as soon as the proxy is ready, for
standalone use (`battle proxy`); a scenario runner instead POSTs /start with its t0.

Exit codes: 0 clean shutdown (SIGTERM / SIGINT); 1 a listener or the control API could
not bind; 2 bad arguments or fault file, reported in one line naming the field.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from chaosproxy.errors import ConfigError
from chaosproxy.faults import FaultSpec, load_faults

__all__ = ["Config", "Listener", "main", "parse_args", "parse_listen", "with_ws_url"]

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_URL_RE = re.compile(
    r"^(?P<scheme>https?|wss?)://(?P<userinfo>[^@/?#]*@)?"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[^:/?#@\[\]]+)(?::(?P<port>\d+))?"
    r"(?P<path>/[^?#]*)?(?:\?(?P<query>[^#]*))?$"
)
_WS_SCHEME = {"ws": "http", "wss": "https"}


@dataclass(frozen=True, slots=True)
class Listener:
    """One provider: the proxy listens on 127.0.0.1:`port` and forwards to `upstream`
    (``scheme://host[:port]``), to the path `path` (with its query) when given, and a
    WebSocket handshake to `ws_path` when given (else to `path`)."""

    name: str
    port: int
    upstream: str
    path: str | None = None
    ws_path: str | None = None

    @property
    def mode(self) -> str:
        """The mitmproxy mode spec of this listener."""
        return f"reverse:{self.upstream}@127.0.0.1:{self.port}"

    @property
    def redacted(self) -> str:
        """The upstream as the proxy may write it: the path and query (where keys
        live) replaced by ``***``."""
        return self.upstream + ("/***" if self.path or self.ws_path else "")


def _split_url(where: str, url: str, schemes: tuple[str, ...]) -> tuple[str, str, str | None]:
    """(scheme, origin ``host[:port]``, path with query or None) of an upstream URL.
    Errors never echo the path or query: they may hold an API key."""
    m = _URL_RE.match(url)
    origin_only = url.split("?", 1)[0].split("#", 1)[0]
    shown = re.sub(r"^([a-z]+://[^/]*)/.*$", r"\1/***", origin_only)
    if not m or m.group("scheme") not in schemes:
        raise ConfigError(
            f"{where} must be {'|'.join(schemes)}://host[:port][/path][?query], got {shown!r}"
        )
    if m.group("userinfo"):
        raise ConfigError(
            f"{where}: credentials before the host are not supported; put the key in the path"
        )
    if m.group("port") is not None:
        _port(f"{where} port", m.group("port"))
    origin = m.group("host") + (f":{m.group('port')}" if m.group("port") else "")
    path = m.group("path") or ""
    query = m.group("query")
    if path in ("", "/") and not query:
        return m.group("scheme"), origin, None
    return m.group("scheme"), origin, (path or "/") + (f"?{query}" if query else "")


@dataclass(frozen=True, slots=True)
class Config:
    proxy_id: str
    run_dir: Path
    control_port: int
    listeners: tuple[Listener, ...]
    faults: tuple[FaultSpec, ...]
    start_now: bool = False


def _port(where: str, text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise ConfigError(f"{where} must be an integer port, got {text!r}") from None
    if not 1 <= port <= 65535:
        raise ConfigError(f"{where} must be in [1, 65535], got {port}")
    return port


def parse_listen(spec: str) -> Listener:
    """Parses ``NAME=PORT=UPSTREAM_URL``; the URL is ``http(s)://host[:port][/path][?q]``."""
    parts = spec.split("=", 2)
    if len(parts) != 3:
        raise ConfigError("--listen must be NAME=PORT=UPSTREAM_URL")
    name, port_text, url = parts
    if not _NAME_RE.match(name):
        raise ConfigError(f"--listen NAME must match [A-Za-z0-9_-]+, got {name!r}")
    port = _port(f"--listen {name}: PORT", port_text)
    scheme, origin, path = _split_url(f"--listen {name}: UPSTREAM_URL", url, ("http", "https"))
    return Listener(name, port, f"{scheme}://{origin}", path)


def with_ws_url(listener: Listener, url: str) -> Listener:
    """`listener` with the WebSocket endpoint ``ws(s)://host[:port]/path``: same host
    and port as its upstream, ``wss`` for an ``https`` upstream."""
    where = f"--listen-ws {listener.name}: WS_URL"
    scheme, origin, path = _split_url(where, url, ("ws", "wss"))
    if f"{_WS_SCHEME[scheme]}://{origin}" != listener.upstream:
        raise ConfigError(
            f"{where} must be on the upstream's host and port ({listener.redacted} as "
            f"{'wss' if listener.upstream.startswith('https') else 'ws'}://)"
        )
    return dataclasses.replace(listener, ws_path=path or "/")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, as every configuration error (DESIGN.md: exit 2, one clear line).
        raise ConfigError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m chaosproxy",
        description="Chaos proxy: one reverse listener "
        "per provider, faults on a schedule, every exchange recorded.",
    )
    p.add_argument("--proxy-id", required=True, help="name of this proxy process in shards")
    p.add_argument("--run-dir", required=True, type=Path, help="the run directory")
    p.add_argument("--control-port", required=True, help="control API port on 127.0.0.1")
    p.add_argument(
        "--listen",
        action="append",
        required=True,
        metavar="NAME=PORT=UPSTREAM_URL",
        help="a provider listener; repeat for each provider",
    )
    p.add_argument(
        "--listen-ws",
        action="append",
        default=[],
        metavar="NAME=WS_URL",
        help="the WebSocket endpoint of listener NAME when its path differs from the URL's",
    )
    p.add_argument("--faults", type=Path, help="fault file (JSON list)")
    p.add_argument("--start-now", action="store_true", help="start the fault timeline when ready")
    return p


def parse_args(argv: Sequence[str]) -> Config:
    """Validates the command line and the fault file.

    Raises:
        ConfigError: naming the bad argument or fault field.
    """
    args = _parser().parse_args(list(argv))
    proxy_id = args.proxy_id
    if not proxy_id or any(c in proxy_id for c in "/. "):
        raise ConfigError(f"--proxy-id must be non-empty without '/', '.' or ' ', got {proxy_id!r}")
    control_port = _port("--control-port", args.control_port)
    listeners = tuple(parse_listen(s) for s in args.listen)
    for spec in args.listen_ws:
        name, sep, url = spec.partition("=")
        index = next((i for i, lst in enumerate(listeners) if lst.name == name), None)
        if not sep or index is None:
            raise ConfigError(
                f"--listen-ws must be NAME=WS_URL with NAME one of "
                f"{[lst.name for lst in listeners]}, got name {name!r}"
            )
        listeners = (
            *listeners[:index],
            with_ws_url(listeners[index], url),
            *listeners[index + 1 :],
        )
    names: set[str] = set()
    ports = {control_port: "--control-port"}
    for lst in listeners:
        if lst.name in names:
            raise ConfigError(f"--listen name {lst.name!r} is given twice")
        names.add(lst.name)
        if lst.port in ports:
            raise ConfigError(
                f"--listen {lst.name}: PORT {lst.port} is also used by {ports[lst.port]}"
            )
        ports[lst.port] = f"--listen {lst.name}"
    run_dir: Path = args.run_dir
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--run-dir {run_dir} exists and is not a directory")
    faults: tuple[FaultSpec, ...] = ()
    if args.faults is not None:
        faults = tuple(load_faults(args.faults, names))
    return Config(proxy_id, run_dir, control_port, listeners, faults, args.start_now)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the chaos proxy until SIGTERM / SIGINT; returns the exit code."""
    try:
        config = parse_args(sys.argv[1:] if argv is None else argv)
    except ConfigError as e:
        print(f"chaosproxy: {e}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    # Imported here so that `--help` and argument errors do not pay for mitmproxy.
    import asyncio

    from chaosproxy.app import serve

    try:
        # uvloop's C transports cut the per-exchange cost of mitmproxy's I/O (see
        # bench/chaosproxy_throughput.py); the standard loop when it is not installed.
        try:
            import uvloop

            loop_factory = uvloop.new_event_loop
        except ImportError:
            loop_factory = None
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(serve(config))
    except ConfigError as e:
        print(f"chaosproxy: {e}", file=sys.stderr, flush=True)
        return EXIT_USAGE
