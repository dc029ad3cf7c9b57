"""The chaos proxy's configuration: its listeners (one per provider) and the `Config`
that `cli` parses from the command line and `app` serves. Pure."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

from chaosproxy.errors import ConfigError
from chaosproxy.faults import FaultSpec

__all__ = ["Config", "Listener", "parse_listen", "parse_port", "with_ws_url"]

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
        parse_port(f"{where} port", m.group("port"))
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


def parse_port(where: str, text: str) -> int:
    """`text` as a TCP port; `where` names it in the error."""
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
    port = parse_port(f"--listen {name}: PORT", port_text)
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
