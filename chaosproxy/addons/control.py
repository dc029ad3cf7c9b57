"""Control API addon: a tiny HTTP/1.1 JSON server on 127.0.0.1, started in `running`.

    GET  /health  -> 200 {"ok": true}
    POST /start   {"t0_ns": int} -> 200 {"ok": true, "t0_ns": ...}; 409 when already started
    GET  /faults  -> 200 [ {fault_id (the window), spec_id, provider, kind, params, match,
                            start_s, duration_s (the window's), state, planned_start,
                            planned_end, actual_start, actual_end, applied} ]
    POST /faults  a fault object or a list of them -> 200 {"added": [ids], "unchanged": [ids]}
                  Idempotent: re-applying an identical fault changes nothing; all or
                  none are applied. `start_s` is relative to t0; omitted means now (0
                  before start). 400 names the bad field; 409 when an id is taken by a
                  different fault.
    DELETE /faults/<id>            -> 200 {"ended": [window ids ended now]}; 404 unknown id
    POST /clear  {"fault_ids": [...]} (omitted: all) -> 200 {"ended": [...]}
    POST /reset   -> clears every fault and zeroes the counters -> 200 {"ended": [...]}
    GET  /counters -> 200 {"exchanges": n, "in_flight": n, "applied": {window id: n}}

Bad input -> 400 {"error": "..."}; unknown path -> 404; wrong method -> 405. Each
response closes the connection (`Connection: close`): the runner makes a handful of
calls per run, so keep-alive would buy nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Collection
from typing import Any

from chaosproxy.addons.scheduler import Scheduler
from chaosproxy.errors import ConfigError
from chaosproxy.faults import parse_fault
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
    def __init__(
        self,
        scheduler: Scheduler,
        port: int,
        providers: Collection[str] = (),
        in_flight: Callable[[], int] = lambda: 0,
    ) -> None:
        self.scheduler = scheduler
        self.port = port
        self.providers = tuple(providers) or scheduler.providers.names
        self.in_flight = in_flight
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
        routes: dict[str, dict[str, Callable[[bytes], Any]]] = {
            "/health": {"GET": self._health},
            "/start": {"POST": self._start},
            "/faults": {"GET": self._faults, "POST": self._apply},
            "/clear": {"POST": self._clear},
            "/reset": {"POST": self._reset},
            "/counters": {"GET": self._counters},
        }
        path = path.split("?", 1)[0]
        if path.startswith("/faults/") and len(path) > len("/faults/"):
            if method != "DELETE":
                raise HttpError(405, f"/faults/<id> takes DELETE, got {method}")
            return 200, self._clear_ids([path[len("/faults/") :]], status=404)
        if path not in routes:
            raise HttpError(404, f"unknown path {path!r}; expected one of {sorted(routes)}")
        allowed = routes[path]
        if method not in allowed:
            raise HttpError(405, f"{path} takes {' or '.join(allowed)}, got {method}")
        return 200, allowed[method](body)

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

    def _json(self, body: bytes, example: str) -> Any:
        try:
            return json.loads(body) if body.strip() else None
        except (ValueError, UnicodeDecodeError) as e:
            raise HttpError(400, f"body must be JSON like {example}: {e}") from e

    def _apply(self, body: bytes) -> Any:
        doc = self._json(body, '[{"fault_id": ..., "provider": ..., "kind": ...}]')
        items = doc if isinstance(doc, list) else [doc]
        timeline = self.scheduler.timeline
        now_s = 0.0
        if timeline.t0_ns is not None:
            now_s = max(0.0, (time.time_ns() - timeline.t0_ns) / 1e9)
        specs = []
        for i, item in enumerate(items):
            if isinstance(item, dict) and "start_s" not in item:
                item = {**item, "start_s": round(now_s, 9)}
            try:
                specs.append(parse_fault(f"faults[{i}]", item, self.providers))
            except ConfigError as e:
                raise HttpError(400, str(e)) from e
        ids = [s.fault_id for s in specs]
        if len(set(ids)) != len(ids):
            raise HttpError(400, "fault_id values must be unique within one apply")
        try:
            added, unchanged = self.scheduler.add(specs)
        except Timeline.Conflict as e:
            raise HttpError(409, str(e)) from e
        return {"added": added, "unchanged": unchanged}

    def _clear_ids(self, ids: list[str] | None, status: int = 400) -> Any:
        try:
            return {"ended": self.scheduler.clear(ids)}
        except KeyError as e:
            raise HttpError(status, f"unknown fault_id {e.args[0]!r}") from None

    def _clear(self, body: bytes) -> Any:
        doc = self._json(body, '{"fault_ids": ["a-down"]}')
        if doc is None or (isinstance(doc, dict) and "fault_ids" not in doc):
            return self._clear_ids(None)
        ids = doc.get("fault_ids") if isinstance(doc, dict) else None
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise HttpError(400, "fault_ids must be a list of fault ids")
        return self._clear_ids(ids)

    def _reset(self, body: bytes) -> Any:
        out = self._clear_ids(None)
        for rt in self.scheduler.timeline.faults:
            rt.applied = 0
        self.scheduler.exchanges = 0
        return out

    def _counters(self, body: bytes) -> Any:
        return {
            "exchanges": self.scheduler.exchanges,
            "in_flight": self.in_flight(),
            "applied": {rt.window_id: rt.applied for rt in self.scheduler.timeline.faults},
        }

    def _faults(self, body: bytes) -> Any:
        return [
            {
                "fault_id": rt.window_id,
                "spec_id": rt.spec.fault_id,
                "provider": rt.spec.provider,
                "kind": rt.spec.kind,
                "params": dict(rt.spec.raw_params),
                "match": rt.spec.raw.get("match"),
                "start_s": rt.offset_start_s,
                "duration_s": rt.offset_end_s - rt.offset_start_s,
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
