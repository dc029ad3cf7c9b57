"""Control API addon: a tiny HTTP/1.1 JSON server on 127.0.0.1, started in `running`.

    GET  /health  -> 200 {"ok": true}
    POST /start   {"t0_ns": int} -> 200 {"ok": true, "t0_ns": ...}; 409 when already started
    GET  /faults  -> 200 [ {fault_id, provider, kind, params, start_s, duration_s, state,
                            planned_start, planned_end, actual_start, actual_end, applied} ]

Bad input -> 400 {"error": "..."}; unknown path -> 404; wrong method -> 405. Each
response closes the connection (`Connection: close`): the runner makes a handful of
calls per run, so keep-alive would buy nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from chaosproxy.addons.scheduler import Scheduler
from chaosproxy.schedule import Timeline

__all__ = ["ControlApi", "HttpError"]

logger = logging.getLogger(__name__)

# Limits for a control request: generous for {"t0_ns": ...}, small enough that a
# stray client cannot make the proxy buffer much.
MAX_HEADER_LINES = 100
MAX_BODY = 64 * 1024
READ_TIMEOUT_S = 10.0

REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    500: "Internal Server Error",
}


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ControlApi:
    def __init__(self, scheduler: Scheduler, port: int) -> None:
        self.scheduler = scheduler
        self.port = port
        self.server: asyncio.Server | None = None
        self.error: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def running(self) -> None:
        try:
            self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        except OSError as e:
            self.error = f"control API cannot listen on 127.0.0.1:{self.port}: {e.strerror or e}"

    async def done(self) -> None:
        if self.server is not None:
            self.server.close()

    # -- routes ------------------------------------------------------------------------

    def handle(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        """Routes one request; returns (status, JSON document). No I/O."""
        routes = {
            "/health": ("GET", self._health),
            "/start": ("POST", self._start),
            "/faults": ("GET", self._faults),
        }
        path = path.split("?", 1)[0]
        if path not in routes:
            raise HttpError(404, f"unknown path {path!r}; expected one of {sorted(routes)}")
        allowed, fn = routes[path]
        if method != allowed:
            raise HttpError(405, f"{path} takes {allowed}, got {method}")
        return 200, fn(body)

    def _health(self, body: bytes) -> Any:
        return {"ok": True}

    def _start(self, body: bytes) -> Any:
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise HttpError(400, f'body must be JSON like {{"t0_ns": 17...}}: {e}') from e
        if not isinstance(doc, dict) or "t0_ns" not in doc:
            raise HttpError(400, "body must be an object with t0_ns")
        t0 = doc["t0_ns"]
        if isinstance(t0, bool) or not isinstance(t0, int) or t0 <= 0:
            raise HttpError(400, f"t0_ns must be a positive integer (ns since epoch), got {t0!r}")
        try:
            self.scheduler.start(t0)
        except Timeline.AlreadyStarted as e:
            raise HttpError(409, str(e)) from e
        return {"ok": True, "t0_ns": t0}

    def _faults(self, body: bytes) -> Any:
        return [
            {
                "fault_id": rt.spec.fault_id,
                "provider": rt.spec.provider,
                "kind": rt.spec.kind,
                "params": dict(rt.spec.raw_params),
                "start_s": rt.spec.start_s,
                "duration_s": rt.spec.duration_s,
                "state": rt.state,
                "planned_start": rt.planned_start,
                "planned_end": rt.planned_end,
                "actual_start": rt.actual_start,
                "actual_end": rt.actual_end,
                "applied": rt.applied,
            }
            for rt in self.scheduler.timeline.faults
        ]

    # -- HTTP/1.1 framing ----------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                method, path, body = await asyncio.wait_for(self._read(reader), READ_TIMEOUT_S)
                status, doc = self.handle(method, path, body)
            except HttpError as e:
                status, doc = e.status, {"error": str(e)}
            except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                return
            except Exception as e:  # a bug must not kill the proxy; say what it was
                logger.exception("control API error")
                status, doc = 500, {"error": f"internal error: {e}"}
            payload = json.dumps(doc).encode()
            head = (
                f"HTTP/1.1 {status} {REASONS.get(status, '')}\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\n"
                "Connection: close\r\n\r\n"
            ).encode()
            writer.write(head + payload)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _read(self, reader: asyncio.StreamReader) -> tuple[str, str, bytes]:
        line = await reader.readline()
        if not line:
            raise asyncio.IncompleteReadError(b"", None)
        parts = line.decode("latin-1").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise HttpError(400, f"bad request line {line[:100]!r}")
        method, path, _ = parts
        length = 0
        for _ in range(MAX_HEADER_LINES):
            header = await reader.readline()
            if header in (b"\r\n", b"\n", b""):
                break
            name, sep, value = header.decode("latin-1").partition(":")
            if not sep:
                raise HttpError(400, f"bad header line {header[:100]!r}")
            if name.strip().lower() == "content-length":
                try:
                    length = int(value.strip())
                except ValueError:
                    raise HttpError(400, f"bad Content-Length {value.strip()!r}") from None
                if length < 0:
                    raise HttpError(400, f"bad Content-Length {length}")
            elif name.strip().lower() == "transfer-encoding":
                raise HttpError(400, "Transfer-Encoding is not supported; send Content-Length")
        else:
            raise HttpError(400, f"more than {MAX_HEADER_LINES} header lines")
        if length > MAX_BODY:
            raise HttpError(413, f"body must be at most {MAX_BODY} bytes, got {length}")
        body = await reader.readexactly(length) if length else b""
        return method, path, body
