"""A priority JSON-RPC router on aiohttp (server and client), written without looking at
examples/reference_router, so that Battle is proven on a router it did not shape.

    python tests/routers/aio_priority.py --listen 127.0.0.1:0 \
        --upstream A=http://127.0.0.1:8101/,ws://127.0.0.1:8101/ \
        --upstream B=http://127.0.0.1:8102/ [--defect NAME]... [--set KEY=VALUE]...
    python tests/routers/aio_priority.py --config router.json   (tests/routers/aio_priority.json.j2)

Policy (each number a setting, see SETTINGS):
- Upstreams in the order given; the first one available serves (available: breaker not
  open, not inside a rate-limit back-off, head neither lagging nor ahead).
- Head tracking: every 1 s the router asks each upstream for eth_blockNumber itself
  (its own traffic, JSON-RPC id "head-poll"). A poll's failure counts for nothing but
  that poll (not against the breaker, no client back-off): the upstream's head is then
  unknown, and an unknown head is not judged. A poll's rate limit holds that
  upstream's polls back; a client rate limit holds them back too. The consensus head
  is the upper median of the known polled heads (one upstream misreporting far ahead
  cannot make the others look behind). An upstream whose polled head is more than 2
  blocks behind it lags, one more than 3 blocks past it is ahead: either is tried only
  after every upstream that is neither (the nearest to the consensus first: when every
  available upstream is off, the nearest serves), and a lagging one keeps its head
  through failed polls until a poll shows it within 2 blocks again. A client's head
  (eth_blockNumber, a block asked by latest or pending; also in a batch) is never
  answered lower than the highest head the router has already returned, nor more
  than 3 blocks past the consensus: such an answer is not served and the next upstream
  is tried (the upstream that gave it, if more than 2 blocks low or past the
  consensus, counts as off until the next poll round); when no upstream answers at
  least that head, the client gets the highest head already returned (a block below
  it is not served at all). A safe or finalized block is never answered lower than one
  already returned for it or for the tag trailing it (finalized <= safe): such an
  answer is not served either. The first poll round also asks each upstream its
  eth_chainId; the fleet's chain id is the one more than half of the answers give.
  An eth_chainId answer of another id, or an eth_syncing answer other than false (also
  in a batch), is not served: the next upstream is tried.
- Each attempt within 1 s, the whole request within 3 s. An attempt fails on a
  connection error, a timeout, HTTP 5xx or 429 (any non-2xx), a body that is not JSON,
  an answer whose ids do not match, or a JSON-RPC error that is the provider's fault
  (-32005, -32007, -32603, -32002, 429, -32000 "header not found"); the next upstream
  is then tried. Execution errors (-32000 "execution reverted", -32602, ...) are answers and go
  back to the client.
- Circuit breaker per upstream: opens after 5 consecutive failures or 2 consecutive
  timeouts, stays open 5 s, then lets one real client call through as a probe; a failed
  probe opens it again for twice as long (at most 60 s), a success closes it and resets
  the open time.
- HTTP 429 (Retry-After: seconds or a date) or a JSON-RPC rate limit (Infura's -32005,
  QuickNode's -32007, Alchemy's 429: Infura's data.rate.backoff_seconds,
  data.try_again_in, else 1 s) skips the upstream until the back-off ends; it does not
  count against the breaker.
- Batches go upstream as one batch; answers are matched back by id and returned in the
  request's order. JSON-RPC ids are rewritten on the way up (the router's own counter)
  and mapped back. The X-Battle-Tag header is NOT forwarded: Battle has to correlate
  this router's attempts by time, which is what this router is for.
- WebSocket on the same port (GET / with an upgrade): eth_subscribe newHeads gets a
  router-made id; one upstream newHeads subscription (the first available upstream with
  a ws_url) is fanned out to every client. On its close, or 3 s of silence, it moves to
  the next upstream, and blocks missed meanwhile are fetched with eth_getBlockByNumber,
  so clients see every block once, in order. Other calls over the socket go through
  the HTTP path.
- GET /health answers 200. Prints `ready http://HOST:PORT` once serving; exits 0 on
  SIGTERM or SIGINT; bad arguments: one line on stderr, exit 2.

DEFECTS (all off by default) switch one piece of the policy off or wrong, so that a test
or a Battle SLO has something real to catch.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email.utils
import itertools
import json
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

DEFECTS = {
    "no_failover": "one attempt only: the first upstream's failure goes to the client",
    "no_breaker": "the breaker never opens: a failing upstream is tried first on every call",
    "breaker_never_closes": "once open a breaker never half-opens: the upstream never comes back",
    "ignore_retry_after": "rate limits are not honoured: a limited upstream keeps getting calls",
    "retry_storm": "a failed attempt is repeated 5 more times on the same upstream first",
    "no_ws_resubscribe": "after the upstream newHeads socket closes or stalls, no resubscribe",
    "no_gap_fill": "resubscribes, but blocks missed meanwhile are not backfilled",
    "alive_by_answers": "pings the upstream socket with eth_chainId each second and counts"
    " the answers as life: a socket that answers calls but sends no notification is kept",
    "duplicate_notifications": "every newHeads notification is sent to clients twice",
    "head_backwards": "every 2nd eth_blockNumber answer is lowered by 3 blocks",
    "no_head_tracking": "no head polls, no lag check, no floor: a lagging upstream serves",
    "no_head_consensus": "the best head is the highest polled, and no head is too far"
    " ahead: an upstream misreporting 1,000 blocks ahead serves, the others look lagging",
    "no_tag_floor": "safe and finalized blocks served as they come, even below earlier ones",
    "slow_leak": "keeps 1 KB resident per JSON-RPC call (each batch element) forever",
    "swallow_errors": "when every attempt failed: HTTP 200 with result null, not an error",
    "add_latency_15ms": "sleeps 15 ms in every client request",
    "batch_wrong_ids": "batch answers rotated onto the wrong ids",
    "attempt_timeout_30s": "attempt timeout 30 s and deadline 35 s: a hung upstream hangs calls",
}

SETTINGS: dict[str, float] = {
    "attempt_timeout_s": 1.0,
    "deadline_s": 3.0,
    "failure_threshold": 5,
    "timeout_threshold": 2,
    "breaker_open_s": 5.0,
    "breaker_max_open_s": 60.0,
    "default_retry_after_s": 1.0,
    "stall_s": 3.0,
    "backfill_limit": 64,
    "client_queue": 256,
    "head_poll_s": 1.0,
    "max_head_lag_blocks": 2,
    "max_head_ahead_blocks": 3,
}

PROG = "aio_priority"
HEAD_POLL_ID = "head-poll"
LEAK_BYTES = 1024
PROVIDER_FAULT_CODES = {-32603, -32002, -32005, -32007, 429}
# Infura's -32005, QuickNode's -32007 ("request limit reached"), Alchemy's 429.
RATE_LIMIT_CODES = {-32005, -32007, 429}
# The tag a block request asks by, as the floor it answers for (pending: the head).
BLOCK_TAGS = {"latest": "latest", "pending": "latest", "safe": "safe", "finalized": "finalized"}
# -32000 is both geth's execution error and its "header not found" (a node behind the
# head); only the latter is the provider's fault.
PROVIDER_FAULT_MESSAGES = re.compile(
    r"header not found|missing trie node|rate limit|too many", re.I
)


class UsageError(Exception):
    pass


@dataclass(frozen=True)
class Upstream:
    name: str
    url: str
    ws_url: str | None


@dataclass
class Config:
    host: str
    port: int
    upstreams: list[Upstream]
    defects: set[str]
    settings: dict[str, float]


def _upstream_from_flag(text: str) -> Upstream:
    name, sep, urls = text.partition("=")
    if not sep or not name or not urls:
        raise UsageError(f"--upstream {text!r}: expected NAME=HTTP_URL[,WS_URL]")
    url, _, ws_url = urls.partition(",")
    return Upstream(name, url, ws_url or None)


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise UsageError(f"listen {text!r}: expected HOST:PORT")
    return host or "127.0.0.1", int(port)


def load_config(argv: list[str]) -> Config:
    """Config file first, then the flags: --listen replaces, --upstream (any) replaces
    the file's list, --defect and --set add.

    Raises:
        UsageError: with the one line to print.
    """
    parser = argparse.ArgumentParser(prog=PROG, add_help=True)
    parser.add_argument("--config")
    parser.add_argument("--listen")
    parser.add_argument("--upstream", action="append", default=[])
    parser.add_argument("--defect", action="append", default=[])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    data: dict[str, Any] = {}
    if args.config:
        try:
            data = json.loads(Path(args.config).read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"--config {args.config}: {exc}") from None
    listen = args.listen or data.get("listen") or "127.0.0.1:0"
    host, port = _listen(listen)
    upstreams = [_upstream_from_flag(u) for u in args.upstream] or [
        Upstream(u["name"], u["url"], u.get("ws_url")) for u in data.get("upstreams", [])
    ]
    if not upstreams:
        raise UsageError("no upstreams: give --upstream NAME=URL or a config with upstreams")
    defects = set(data.get("defects", []))
    for item in args.defect:
        defects.update(d for d in item.split(",") if d)
    unknown = sorted(defects - set(DEFECTS))
    if unknown:
        raise UsageError(f"unknown defect {unknown[0]!r}; known: {', '.join(DEFECTS)}")
    settings = dict(SETTINGS)
    given = dict(data.get("settings", {}))
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--set {item!r}: expected KEY=VALUE")
        given[key] = value
    for key, value in given.items():
        if key not in SETTINGS:
            raise UsageError(f"unknown setting {key!r}; known: {', '.join(SETTINGS)}")
        try:
            settings[key] = float(value)
        except (TypeError, ValueError):
            raise UsageError(f"setting {key}: not a number: {value!r}") from None
    if "attempt_timeout_30s" in defects:
        settings["attempt_timeout_s"], settings["deadline_s"] = 30.0, 35.0
    return Config(host, port, upstreams, defects, settings)


# ---------------------------------------------------------------------------------------
# Health: breaker and rate-limit back-off per upstream
# ---------------------------------------------------------------------------------------


@dataclass
class Health:
    settings: dict[str, float]
    defects: set[str]
    state: str = "closed"  # closed | open | half_open
    failures: int = 0
    timeouts: int = 0
    opened_at: float = 0.0
    open_s: float = 0.0
    probing: bool = False
    limited_until: float = 0.0

    def __post_init__(self) -> None:
        self.open_s = self.settings["breaker_open_s"]

    def available(self, now: float) -> bool:
        """Could serve now (no side effect: the feed uses it to pick a socket)."""
        if now < self.limited_until:
            return False
        if self.state == "closed":
            return True
        if self.state == "open":
            return (
                "breaker_never_closes" not in self.defects and now >= self.opened_at + self.open_s
            )
        return not self.probing

    def acquire(self, now: float) -> bool:
        """Takes the upstream for one attempt; an open breaker past its time lets this one
        call through as the probe."""
        if not self.available(now):
            return False
        if self.state != "closed":
            self.state, self.probing = "half_open", True
        return True

    def release(self) -> None:
        self.probing = False

    def success(self) -> None:
        self.failures = self.timeouts = 0
        if self.state != "closed":
            self.state, self.open_s = "closed", self.settings["breaker_open_s"]

    def failure(self, now: float, timeout: bool) -> None:
        if "no_breaker" in self.defects:
            return
        if self.state == "half_open":
            self.open_s = min(self.open_s * 2, self.settings["breaker_max_open_s"])
            self.state, self.opened_at = "open", now
            return
        self.failures += 1
        self.timeouts = self.timeouts + 1 if timeout else 0
        if (
            self.failures >= self.settings["failure_threshold"]
            or self.timeouts >= self.settings["timeout_threshold"]
        ):
            self.state, self.opened_at = "open", now

    def rate_limited(self, now: float, seconds: float) -> None:
        if "ignore_retry_after" not in self.defects:
            self.limited_until = max(self.limited_until, now + seconds)


# ---------------------------------------------------------------------------------------
# Classifying an upstream's answer
# ---------------------------------------------------------------------------------------


class AttemptFailed(Exception):
    """An attempt the next upstream should get. `answer`: what to give the client if it
    is the last one (an HTTP status and body), None for a transport failure."""

    def __init__(self, why: str, *, timeout: bool = False, limit_s: float | None = None,
                 answer: tuple[int, Any] | None = None) -> None:  # fmt: skip
        super().__init__(why)
        self.timeout, self.limit_s, self.answer = timeout, limit_s, answer


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        m = re.fullmatch(r"\s*([0-9.]+)\s*(ms|s)?\s*", value)
        if m:
            n = float(m.group(1))
            return n / 1000 if m.group(2) == "ms" else n
        with contextlib.suppress(TypeError, ValueError, IndexError):
            return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    return None


def _rate_hint(error: dict[str, Any]) -> float | None:
    data = error.get("data")
    if isinstance(data, dict):
        rate = data.get("rate")
        if isinstance(rate, dict) and _seconds(rate.get("backoff_seconds")):
            return _seconds(rate.get("backoff_seconds"))
        if _seconds(data.get("try_again_in")):
            return _seconds(data.get("try_again_in"))
    return None


def _fault(error: Any) -> tuple[bool, bool]:
    """(provider's fault, rate limit) for one JSON-RPC error object."""
    if not isinstance(error, dict):
        return False, False
    code, message = error.get("code"), str(error.get("message", ""))
    limit = code in RATE_LIMIT_CODES or (code == -32000 and "rate limit" in message.lower())
    fault = code in PROVIDER_FAULT_CODES or bool(
        code == -32000 and PROVIDER_FAULT_MESSAGES.search(message)
    )
    return fault or limit, limit


# ---------------------------------------------------------------------------------------
# The router
# ---------------------------------------------------------------------------------------


@dataclass
class Outgoing:
    """One client request, rewritten for upstream: our ids, and the way back."""

    payload: Any  # dict or list, with our ids
    back: dict[int, Any]  # our id -> the client's id
    order: list[int | None]  # our ids in the client's order (None: a notification)
    batch: bool


class Router:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.settings = config.settings
        self.defects = config.defects
        self.health = {u.name: Health(self.settings, self.defects) for u in config.upstreams}
        self.ids = itertools.count(1)
        self.session: aiohttp.ClientSession | None = None
        self.leak: list[bytearray] = []
        self.block_number_calls = 0
        self.feed: Feed | None = None
        self.tracking = not self.has("no_head_tracking")
        self.heads: dict[str, int | None] = {u.name: None for u in config.upstreams}
        self.behind: set[str] = set()  # answered a client a head off the consensus
        self.poll_limited_until = {u.name: 0.0 for u in config.upstreams}
        self.returned = -1  # the highest head given to a client
        self.tag_returned = {"safe": -1, "finalized": -1}  # the highest of each tag given
        self.chain_id: int | None = None  # the fleet's, from the first poll round
        self.poller: asyncio.Task[None] | None = None

    def has(self, defect: str) -> bool:
        return defect in self.defects

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=64, keepalive_timeout=30)
        self.session = aiohttp.ClientSession(connector=connector, auto_decompress=True)
        if self.tracking:
            self.poller = asyncio.get_running_loop().create_task(self.poll_heads())

    async def close(self) -> None:
        if self.poller is not None:
            self.poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.poller
        if self.session is not None:
            await self.session.close()

    # -- head tracking ------------------------------------------------------------------

    async def poll_heads(self) -> None:
        """Every head_poll_s (or as soon as the last round ended, if it took longer):
        each upstream's eth_blockNumber, all at once. One round replaces every head and
        clears `behind`; an upstream whose poll failed keeps its head if that head lagged
        (it stays out until a poll shows it caught up), else its head becomes unknown."""
        loop = asyncio.get_running_loop()
        every = max(0.05, self.settings["head_poll_s"])
        while True:
            started = loop.time()
            if self.chain_id is None:
                ids = await asyncio.gather(
                    *(self.poll(u, "eth_chainId") for u in self.config.upstreams),
                    return_exceptions=True,
                )
                known = [i for i in ids if isinstance(i, int)]
                top = max(set(known), key=known.count, default=None)
                if top is not None and 2 * known.count(top) > len(known):
                    self.chain_id = top
            polled = await asyncio.gather(
                *(self.poll(u) for u in self.config.upstreams), return_exceptions=True
            )
            heads: dict[str, int | None] = {}
            for u, head in zip(self.config.upstreams, polled, strict=True):
                if isinstance(head, int):
                    heads[u.name] = head
                else:
                    heads[u.name] = self.heads[u.name] if self.polled_lag(u.name) else None
            self.heads = heads
            self.behind.clear()
            await asyncio.sleep(max(0.0, started + every - loop.time()))

    async def poll(self, upstream: Upstream, method: str = "eth_blockNumber") -> int | None:
        """One upstream's head (or the quantity another `method` answers), or None
        (failed, rate limited, not asked)."""
        assert self.session is not None
        loop = asyncio.get_running_loop()
        now = loop.time()
        if now < self.poll_limited_until[upstream.name] or (
            now < self.health[upstream.name].limited_until
        ):
            return None  # a provider that asked for room is not polled meanwhile
        body = {"jsonrpc": "2.0", "id": HEAD_POLL_ID, "method": method, "params": []}
        timeout = self.settings["attempt_timeout_s"]
        try:
            async with self.session.post(
                upstream.url, json=body, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as response:
                raw = await response.read()
                status, retry_after = response.status, response.headers.get("Retry-After")
        except (TimeoutError, aiohttp.ClientError, OSError):
            return None
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = None
        error = answer.get("error") if isinstance(answer, dict) else None
        limit = _fault(error)[1] if error is not None else False
        if status == 429 or limit:
            hint = (_seconds(retry_after) if retry_after else None) or (
                _rate_hint(error) if isinstance(error, dict) else None
            )
            self.poll_limited_until[upstream.name] = loop.time() + (
                hint or self.settings["default_retry_after_s"]
            )
            return None
        result = answer.get("result") if isinstance(answer, dict) else None
        if status != 200 or not isinstance(result, str):
            return None
        try:
            return int(result, 16)
        except ValueError:
            return None

    def consensus(self) -> int | None:
        """The upper median of the known polled heads (defect no_head_consensus: the
        highest); None when no head is known."""
        known = sorted(h for h in self.heads.values() if h is not None)
        if not known:
            return None
        return known[-1] if self.has("no_head_consensus") else known[len(known) // 2]

    def polled_lag(self, name: str) -> bool:
        """The upstream's polled head is beyond the lag behind the consensus head."""
        head, best = self.heads.get(name), self.consensus()
        return head is not None and best - head > self.settings["max_head_lag_blocks"]

    def too_high(self, block: int) -> bool:
        """A head more than the allowed distance past the consensus head."""
        best = self.consensus()
        return (
            not self.has("no_head_consensus")
            and best is not None
            and block - best > self.settings["max_head_ahead_blocks"]
        )

    def off_head(self, name: str) -> bool:
        """Lagging behind the consensus head or ahead of it (polled, or by an answer)."""
        if name in self.behind or self.polled_lag(name):
            return True
        head = self.heads.get(name)
        return head is not None and self.too_high(head)

    def in_order(self) -> list[Upstream]:
        """The priority order with every upstream off the head moved behind the others
        (nearest the consensus first: when every upstream is off, the nearest serves)."""
        upstreams = self.config.upstreams
        if not self.tracking:
            return upstreams
        off = [u for u in upstreams if self.off_head(u.name)]
        if not off:
            return upstreams
        best = self.consensus()
        # Stable: ties keep the priority order. An unknown head goes last.
        off.sort(key=lambda u: abs(best - h) if (h := self.heads.get(u.name)) is not None
                 and best is not None else float("inf"))  # fmt: skip
        return [u for u in upstreams if u not in off] + off

    def block_answers(self, request: Any, answer: Any) -> list[tuple[int, str, int, bool]]:
        """(position in the answer, tag, block number, is an eth_blockNumber) of each
        answer for a tagged block: eth_blockNumber (latest) and eth_getBlockByNumber by
        latest, pending, safe or finalized."""
        asked = [e for e in (request if isinstance(request, list) else [request])
                 if isinstance(e, dict) and "id" in e]  # fmt: skip
        items = answer if isinstance(answer, list) else [answer]
        out = []
        for i, (element, item) in enumerate(zip(asked, items, strict=False)):
            result = item.get("result") if isinstance(item, dict) else None
            method, params = element.get("method"), element.get("params")
            if method == "eth_blockNumber":
                tag, number = "latest", result
            elif method == "eth_getBlockByNumber" and isinstance(params, list) and params:
                tag = BLOCK_TAGS.get(params[0]) if isinstance(params[0], str) else None
                number = result.get("number") if isinstance(result, dict) else None
            else:
                continue
            if tag is not None and isinstance(number, str):
                with contextlib.suppress(ValueError):
                    out.append((i, tag, int(number, 16), method == "eth_blockNumber"))
        return out

    def tag_floor(self, tag: str) -> int:
        """The lowest block a safe or finalized answer may give: the highest returned
        for it or for the tag trailing it (finalized trails safe)."""
        if self.has("no_tag_floor"):
            return -1
        finalized = self.tag_returned["finalized"]
        return finalized if tag == "finalized" else max(finalized, self.tag_returned["safe"])

    def state_lie(self, request: Any, answer: Any) -> str | None:
        """Why an eth_chainId or eth_syncing answer (also one in a batch) must not be
        served: another chain's id than the fleet's, a sync in progress."""
        asked = [e for e in (request if isinstance(request, list) else [request])
                 if isinstance(e, dict) and "id" in e]  # fmt: skip
        items = answer if isinstance(answer, list) else [answer]
        for element, item in zip(asked, items, strict=False):
            if not isinstance(item, dict) or "result" not in item:
                continue
            method, result = element.get("method"), item["result"]
            if method == "eth_syncing" and result is not False:
                return "upstream is syncing"
            if (
                method == "eth_chainId"
                and self.chain_id is not None
                and (result != hex(self.chain_id))
            ):
                return f"chain id {result!s:.20} is not the fleet's {hex(self.chain_id)}"
        return None

    def untrue(self, request: Any, answer: Any) -> tuple[str | None, bool]:
        """Why an answer must not be served as it is (None: it may), and whether it may
        still be served raised to the floor (only eth_blockNumber answers can be)."""
        lie = self.state_lie(request, answer)
        if lie is not None:
            return lie, False
        low: str | None = None
        for _, tag, n, is_number in self.block_answers(request, answer):
            if tag != "latest":
                if n < self.tag_floor(tag):
                    return f"{tag} block {n} below one already returned", False
            elif self.too_high(n):
                return f"head {n} past the consensus {self.consensus()}", False
            elif n < self.returned:
                if not is_number:
                    return f"latest block {n} below {self.returned}, already returned", False
                low = f"head {n} below {self.returned}, already returned"
        return low, True

    # -- id rewriting -------------------------------------------------------------------

    def rewrite(self, request: Any) -> Outgoing:
        batch = isinstance(request, list)
        elements = request if batch else [request]
        back: dict[int, Any] = {}
        order: list[int | None] = []
        out = []
        for element in elements:
            if isinstance(element, dict) and "id" in element:
                ours = next(self.ids)
                back[ours] = element["id"]
                order.append(ours)
                out.append({**element, "id": ours})
            else:
                order.append(None)
                out.append(element)
        return Outgoing(out if batch else out[0], back, order, batch)

    def map_back(self, outgoing: Outgoing, answer: Any) -> Any:
        """The upstream's answer with the client's ids, in the client's order.

        Raises:
            AttemptFailed: the answer does not answer what was asked.
        """
        items = answer if isinstance(answer, list) else [answer]
        if outgoing.batch != isinstance(answer, list) and outgoing.back:
            # A single error object for a whole batch (rate limiters do this) is a
            # provider answer, not a batch answer.
            if isinstance(answer, dict) and "error" in answer:
                fault, limit = _fault(answer["error"])
                if fault:
                    raise AttemptFailed(
                        "collapsed error", limit_s=self._limit(answer["error"]) if limit else None,
                        answer=(200, answer),
                    )  # fmt: skip
            raise AttemptFailed("answer shape does not match the request")
        by_id: dict[int, dict[str, Any]] = {}
        for item in items:
            if not isinstance(item, dict) or item.get("id") not in outgoing.back:
                raise AttemptFailed("answer with an id that was not asked")
            by_id[item["id"]] = item
        if set(by_id) != set(outgoing.back):
            raise AttemptFailed("answer misses ids")
        mapped = [
            {**by_id[ours], "id": outgoing.back[ours]}
            for ours in outgoing.order
            if ours is not None
        ]
        return mapped if outgoing.batch else mapped[0]

    def _limit(self, error: dict[str, Any]) -> float:
        return _rate_hint(error) or self.settings["default_retry_after_s"]

    # -- attempts -----------------------------------------------------------------------

    async def attempt(self, upstream: Upstream, outgoing: Outgoing, timeout: float) -> Any:
        assert self.session is not None
        body = json.dumps(outgoing.payload, separators=(",", ":")).encode()
        try:
            async with self.session.post(
                upstream.url,
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                raw = await response.read()
                status = response.status
                retry_after = response.headers.get("Retry-After")
        except TimeoutError:
            raise AttemptFailed("timeout", timeout=True) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise AttemptFailed(f"connection: {exc!r}") from None
        try:
            answer = json.loads(raw) if raw else None
        except ValueError:
            answer = None
        if not outgoing.back and 200 <= status < 300:
            return None  # notifications only: there is no answer to give
        if status == 429:
            limit = _seconds(retry_after) if retry_after else None
            if limit is None and isinstance(answer, dict):
                limit = _rate_hint(answer.get("error") or {})
            raise AttemptFailed(
                "HTTP 429", limit_s=limit or self.settings["default_retry_after_s"],
                answer=(status, answer),
            )  # fmt: skip
        if not 200 <= status < 300:
            raise AttemptFailed(f"HTTP {status}", answer=(status, answer))
        if answer is None:
            raise AttemptFailed("not JSON")
        mapped = self.map_back(outgoing, answer)
        for item in mapped if isinstance(mapped, list) else [mapped]:
            fault, limit = _fault(item.get("error"))
            if fault:
                hint = _seconds(retry_after) if retry_after else None
                raise AttemptFailed(
                    f"provider error {item['error'].get('code')}",
                    limit_s=(hint or self._limit(item["error"])) if limit else None,
                    answer=(200, mapped),
                )
        return mapped

    async def route(self, request: Any) -> tuple[int, Any]:
        """One client request (object or batch) to (HTTP status, JSON answer)."""
        if self.has("slow_leak"):
            for _ in request if isinstance(request, list) else [request]:
                # Filled with a non-zero byte so that every page is written, hence resident.
                self.leak.append(bytearray(b"\x01") * LEAK_BYTES)
        if self.has("add_latency_15ms"):
            await asyncio.sleep(0.015)
        outgoing = self.rewrite(request)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings["deadline_s"]
        last: AttemptFailed | None = None
        held: Any = None  # an answer whose head was lower than one already returned
        tried: set[str] = set()
        repeats = 5 if self.has("retry_storm") else 0
        while True:
            now = loop.time()
            remaining = deadline - now
            if remaining <= 0:
                break
            upstream = next(
                (u for u in self.in_order()
                 if u.name not in tried and self.health[u.name].acquire(now)),
                None,
            )  # fmt: skip
            if upstream is None:
                break
            tried.add(upstream.name)
            health = self.health[upstream.name]
            for _ in range(1 + repeats):
                timeout = min(self.settings["attempt_timeout_s"], deadline - loop.time())
                if timeout <= 0:
                    break
                try:
                    answer = await self.attempt(upstream, outgoing, timeout)
                except AttemptFailed as exc:
                    last = exc
                    if exc.limit_s is not None:
                        # ignore_retry_after: no back-off, so the next call asks again.
                        health.rate_limited(loop.time(), exc.limit_s)
                        # A limit is the provider asking for room, not a failure: the
                        # breaker leaves it alone; a probe that got one ends unjudged.
                        if health.state == "half_open":
                            health.state = "open"
                            health.opened_at = loop.time()
                        break
                    health.failure(loop.time(), exc.timeout)
                    continue
                except asyncio.CancelledError:
                    health.release()
                    raise
                else:
                    health.success()
                    health.release()
                    why, raisable = self.untrue(request, answer) if self.tracking else (None, True)
                    if why is None:
                        return 200, self.finish(request, answer)
                    # Off the head or below a block already returned: another upstream
                    # is asked, and this one, when off the head, waits for the next poll.
                    heads = [n for _, tag, n, _ in self.block_answers(request, answer)
                             if tag == "latest"]  # fmt: skip
                    if any(self.too_high(n) or self.returned - n
                           > self.settings["max_head_lag_blocks"] for n in heads):  # fmt: skip
                        self.behind.add(upstream.name)
                    if raisable:
                        held = answer
                    last = AttemptFailed(why)
                    break
            health.release()
            if self.has("no_failover"):
                break
        if held is not None:
            return 200, self.finish(request, held)  # raised to the highest returned
        return self.give_up(request, outgoing, last)

    def finish(self, request: Any, answer: Any) -> Any:
        if isinstance(answer, list) and self.has("batch_wrong_ids") and len(answer) > 1:
            ids = [item.get("id") for item in answer]
            answer = [{**item, "id": ids[(i + 1) % len(ids)]} for i, item in enumerate(answer)]
        if self.tracking:
            blocks = self.block_answers(request, answer)
            low = [i for i, tag, n, _ in blocks if tag == "latest" and n < self.returned]
            if low:  # only eth_blockNumber answers are held (see untrue)
                floor = hex(self.returned)
                items = list(answer) if isinstance(answer, list) else [answer]
                for i in low:
                    items[i] = {**items[i], "result": floor}
                answer = items if isinstance(answer, list) else items[0]
            for _, tag, n, _ in blocks:
                if tag == "latest":
                    self.returned = max(self.returned, n)
                elif n > self.tag_returned[tag]:
                    self.tag_returned[tag] = n
        if isinstance(request, dict) and request.get("method") == "eth_blockNumber":
            self.block_number_calls += 1
            if (
                self.has("head_backwards")
                and self.block_number_calls % 2 == 0
                and isinstance(answer, dict)
                and isinstance(answer.get("result"), str)
            ):
                n = int(answer["result"], 16)
                answer = {**answer, "result": hex(max(0, n - 3))}
        return answer

    def give_up(
        self, request: Any, outgoing: Outgoing, last: AttemptFailed | None
    ) -> tuple[int, Any]:
        ids = [outgoing.back[o] for o in outgoing.order if o is not None]
        if self.has("swallow_errors"):
            results = [{"jsonrpc": "2.0", "id": i, "result": None} for i in ids]
            return 200, results if outgoing.batch else results[0]
        if last is not None and last.answer is not None and last.answer[0] == 200:
            # The last upstream answered with a JSON-RPC error: that answer, our ids undone.
            return 200, last.answer[1]
        why = str(last) if last is not None else "no upstream available"
        status = 503 if last is None else 502
        errors = [
            {"jsonrpc": "2.0", "id": i, "error": {"code": -32603, "message": f"router: {why}"}}
            for i in ids
        ] or [{"jsonrpc": "2.0", "id": None, "error": {"code": -32603, "message": why}}]
        return status, errors if outgoing.batch else errors[0]


# ---------------------------------------------------------------------------------------
# WebSocket: one upstream newHeads feed, fanned out
# ---------------------------------------------------------------------------------------


@dataclass(eq=False)  # kept in a set: hashed by identity
class Client:
    ws: web.WebSocketResponse
    queue: asyncio.Queue[str]
    subscriptions: set[str] = field(default_factory=set)


class Feed:
    def __init__(self, router: Router) -> None:
        self.router = router
        self.clients: dict[str, Client] = {}  # router subscription id -> client
        self.sub_ids = itertools.count(1)
        self.task: asyncio.Task[None] | None = None
        self.last: int | None = None
        self.upstream: str | None = None

    def subscribe(self, client: Client) -> str:
        sub = f"0x{next(self.sub_ids):032x}"
        client.subscriptions.add(sub)
        self.clients[sub] = client
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self.run())
        return sub

    def unsubscribe(self, sub: str) -> bool:
        client = self.clients.pop(sub, None)
        if client is None:
            return False
        client.subscriptions.discard(sub)
        return True

    def deliver(self, header: dict[str, Any]) -> None:
        times = 2 if self.router.has("duplicate_notifications") else 1
        for sub, client in list(self.clients.items()):
            note = json.dumps(
                {"jsonrpc": "2.0", "method": "eth_subscription",
                 "params": {"subscription": sub, "result": header}}
            )  # fmt: skip
            for _ in range(times):
                try:
                    client.queue.put_nowait(note)
                except asyncio.QueueFull:
                    # A client this far behind would only see ever older blocks.
                    asyncio.get_running_loop().create_task(
                        client.ws.close(code=1008, message=b"too slow")
                    )
                    break

    async def backfill(self, upto: int) -> None:
        """Blocks after the last delivered one and before `upto`, over HTTP."""
        assert self.last is not None
        first = max(self.last + 1, upto - int(self.router.settings["backfill_limit"]))
        for n in range(first, upto):
            request = {"jsonrpc": "2.0", "id": 1, "method": "eth_getBlockByNumber",
                       "params": [hex(n), False]}  # fmt: skip
            status, answer = await self.router.route(request)
            block = answer.get("result") if status == 200 and isinstance(answer, dict) else None
            if not isinstance(block, dict):
                return  # the rest is left to the feed: never deliver out of order
            header = {k: v for k, v in block.items() if k not in ("transactions", "uncles")}
            self.deliver(header)
            self.last = n

    async def on_header(self, header: dict[str, Any]) -> None:
        try:
            n = int(header["number"], 16)
        except (KeyError, TypeError, ValueError):
            return
        if self.last is not None:
            if n <= self.last:
                return  # seen (a new socket repeats the head), or older than seen
            if n > self.last + 1 and not self.router.has("no_gap_fill"):
                await self.backfill(n)
        self.deliver(header)
        self.last = n if self.last is None else max(self.last, n)

    def pick(self, avoid: str | None) -> Upstream | None:
        now = asyncio.get_running_loop().time()
        with_ws = [u for u in self.router.in_order() if u.ws_url]
        healthy = [u for u in with_ws if self.router.health[u.name].available(now)]
        for group in ([u for u in healthy if u.name != avoid], healthy, with_ws):
            if group:
                return group[0]
        return None

    async def run(self) -> None:
        avoid: str | None = None
        while True:
            upstream = self.pick(avoid)
            if upstream is None:
                return
            self.upstream = upstream.name
            try:
                await self.follow(upstream)
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
                pass
            self.upstream = None
            if self.router.has("no_ws_resubscribe"):
                return
            avoid = upstream.name
            await asyncio.sleep(0.05)  # a dead fleet is not hammered in a tight loop

    async def follow(self, upstream: Upstream) -> None:
        """Subscribes on `upstream` and hands its headers on until it closes or stalls."""
        assert self.router.session is not None and upstream.ws_url
        stall = self.router.settings["stall_s"]
        async with self.router.session.ws_connect(
            upstream.ws_url, timeout=aiohttp.ClientWSTimeout(ws_close=1)
        ) as ws:
            await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe",
                                          "params": ["newHeads"]}))  # fmt: skip
            pinger = (
                asyncio.create_task(self._ping(ws)) if self.router.has("alive_by_answers") else None
            )
            try:
                await self._headers(ws, stall)
            finally:
                if pinger is not None:
                    pinger.cancel()

    async def _ping(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        ping = json.dumps({"jsonrpc": "2.0", "id": "ws-ping", "method": "eth_chainId"})
        while True:
            await asyncio.sleep(1.0)
            await ws.send_str(ping)

    async def _headers(self, ws: aiohttp.ClientWebSocketResponse, stall: float) -> None:
        """Hands the subscription's headers on until the socket closes or stays quiet for
        `stall` (any message counts as life, a ping's answer too)."""
        sub: str | None = None
        while True:
            message = await asyncio.wait_for(ws.receive(), stall)
            if message.type != aiohttp.WSMsgType.TEXT:
                return  # closed, closing or an error
            data = json.loads(message.data)
            if sub is None:
                if data.get("id") == 1:
                    if "result" not in data:
                        return
                    sub = data["result"]
                continue
            params = data.get("params") or {}
            if data.get("method") == "eth_subscription" and params.get("subscription") == sub:
                await self.on_header(params.get("result") or {})


# ---------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------


def _parse_error() -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "parse error"}}


def _invalid(request: Any) -> bool:
    return not isinstance(request, dict | list) or request == []


async def handle_post(request: web.Request) -> web.StreamResponse:
    router: Router = request.app["router"]
    try:
        body = json.loads(await request.read())
    except ValueError:
        return web.json_response(_parse_error())
    if _invalid(body):
        error = {
            "jsonrpc": "2.0",
            "id": None,
            "error": {"code": -32600, "message": "invalid request"},
        }
        return web.json_response(error)
    status, answer = await router.route(body)
    if answer is None:
        return web.Response(status=204)
    return web.json_response(
        answer, status=status, dumps=lambda o: json.dumps(o, separators=(",", ":"))
    )


async def handle_get(request: web.Request) -> web.StreamResponse:
    if request.headers.get("Upgrade", "").lower() != "websocket":
        return web.Response(status=405, text="POST JSON-RPC here, or upgrade to a WebSocket\n")
    return await handle_ws(request)


async def handle_ws(request: web.Request) -> web.StreamResponse:
    router: Router = request.app["router"]
    assert router.feed is not None
    feed = router.feed
    ws = web.WebSocketResponse(max_msg_size=16 * 1024 * 1024)
    await ws.prepare(request)
    client = Client(ws, asyncio.Queue(int(router.settings["client_queue"])))
    request.app["clients"].add(client)

    async def writer() -> None:
        while True:
            await ws.send_str(await client.queue.get())

    async def call(message: Any) -> None:
        method = message.get("method") if isinstance(message, dict) else None
        if method == "eth_subscribe":
            params = message.get("params") or []
            if params[:1] == ["newHeads"]:
                answer: Any = {
                    "jsonrpc": "2.0",
                    "id": message.get("id"),
                    "result": feed.subscribe(client),
                }
            else:
                error = {"code": -32602, "message": "only newHeads is supported"}
                answer = {"jsonrpc": "2.0", "id": message.get("id"), "error": error}
        elif method == "eth_unsubscribe":
            params = message.get("params") or [None]
            answer = {
                "jsonrpc": "2.0",
                "id": message.get("id"),
                "result": feed.unsubscribe(params[0]),
            }
        else:
            _, answer = await router.route(message)
            if answer is None:
                return
        with contextlib.suppress(asyncio.QueueFull):
            client.queue.put_nowait(json.dumps(answer))

    tasks: set[asyncio.Task[None]] = set()
    writing = asyncio.get_running_loop().create_task(writer())
    try:
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            try:
                data = json.loads(message.data)
            except ValueError:
                client.queue.put_nowait(json.dumps(_parse_error()))
                continue
            task = asyncio.get_running_loop().create_task(call(data))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    finally:
        for sub in list(client.subscriptions):
            feed.unsubscribe(sub)
        for task in [*tasks, writing]:
            task.cancel()
        request.app["clients"].discard(client)
    return ws


async def handle_health(request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "ok"})


async def serve(config: Config, stop: asyncio.Event) -> None:
    router = Router(config)
    router.feed = Feed(router)
    await router.start()
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app["router"] = router
    app["clients"] = set()
    app.router.add_get("/health", handle_health)
    app.router.add_post("/{tail:.*}", handle_post)
    app.router.add_get("/{tail:.*}", handle_get)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port, reuse_address=True)
    await site.start()
    host, port = runner.addresses[0][:2]
    print(f"ready http://{host}:{port}", flush=True)
    try:
        await stop.wait()
    finally:
        if router.feed.task is not None:
            router.feed.task.cancel()
        for client in list(app["clients"]):
            await client.ws.close(code=1001, message=b"router stopping")
        await runner.cleanup()
        await router.close()


def main(argv: list[str] | None = None) -> int:
    try:
        config = load_config(sys.argv[1:] if argv is None else argv)
    except UsageError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(config, stop)

    try:
        asyncio.run(run())
    except OSError as exc:
        print(f"{PROG}: cannot listen on {config.host}:{config.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
