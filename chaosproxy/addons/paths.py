"""Upstream paths addon: sends each request to the path of its listener's upstream URL.

mitmproxy's reverse mode forwards the client's path unchanged to the upstream's host;
a remote provider wants its own path (``https://mainnet.example/v3/KEY``). A client
path ``/`` becomes the upstream's path; any other is appended to it; the queries are
joined. A WebSocket handshake goes to the listener's `ws_path` when it has one. The
addon is loaded only when a listener has a path, so other runs pay nothing for it.
"""

from __future__ import annotations

from mitmproxy import http

__all__ = ["UpstreamPaths", "join_path"]


def join_path(base: str, client: str) -> str:
    """The upstream request path: `base` (path and query of the upstream URL) joined
    with the client's request path."""
    b_path, _, b_query = base.partition("?")
    c_path, _, c_query = client.partition("?")
    path = b_path if c_path in ("", "/") else b_path.rstrip("/") + c_path
    query = "&".join(q for q in (b_query, c_query) if q)
    return path + ("?" + query if query else "")


class UpstreamPaths:
    def __init__(self, paths: dict[int, tuple[str | None, str | None]]) -> None:
        # listen port -> (path for HTTP requests, path for WebSocket handshakes)
        self.paths = paths

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        sockname = flow.client_conn.sockname
        entry = self.paths.get(sockname[1]) if sockname else None
        if entry is None:
            return
        request = flow.request
        path, ws_path = entry
        base = ws_path if ws_path is not None and "upgrade" in request.headers else path
        if base is not None:
            request.path = join_path(base, request.path)
