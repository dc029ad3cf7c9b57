"""Transports: how a worker puts one request on the wire.

A transport takes the encoded body and headers and returns the status and body, or
raises. `outcome_of_exception` is the one place where transport exceptions become the
`outcome` vocabulary of the requests table.
"""

from __future__ import annotations

from typing import Protocol

import httpx

__all__ = ["HttpxTransport", "Transport", "outcome_of_exception"]


class Transport(Protocol):
    async def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]: ...

    async def aclose(self) -> None: ...


class HttpxTransport:
    """HTTP/1.1 keep-alive POSTs through one httpx client."""

    def __init__(self, url: str, *, max_connections: int = 256) -> None:
        self.url = url
        # Deadlines are enforced by the worker around the whole call, so httpx's own
        # timeouts are off: they apply per phase and would not bound a call in total.
        self._client = httpx.AsyncClient(
            timeout=None,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )

    async def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        response = await self._client.post(self.url, content=body, headers=headers)
        return response.status_code, response.content

    async def aclose(self) -> None:
        await self._client.aclose()


def outcome_of_exception(exc: BaseException) -> str:
    """Maps a transport failure onto the requests table's outcome vocabulary."""
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return "timeout"
    return "conn_error"
