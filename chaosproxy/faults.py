"""Fault specs: parsing and validating the fault file. Pure: no I/O beyond `load_faults`.

A fault file is a JSON list of objects::

    {"fault_id": "a-down", "provider": "A", "kind": "reset",
     "start_s": 10, "duration_s": 10, "params": {},
     "match": {"methods": ["eth_call"], "probability": 0.5},
     "schedule": {"flap": {"down_s": 2, "up_s": 3, "count": 4}}}

`match` (see `chaosproxy.matching`) and `schedule` (see `chaosproxy.schedule`) are
optional. Each kind has a parameter parser in `PARAM_PARSERS`; adding a kind is one
parser here plus its handling in `chaosproxy.addons.faults` (HTTP) or
`chaosproxy.addons.websocket` (WebSocket). `KIND_ROLES` says how a kind composes with
the others on one exchange (documented in docs/ARCHITECTURE.md, "Fault file").
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from chaosproxy.errors import ConfigError
from chaosproxy.presets import Preset, load_presets

__all__ = [
    "FAULT_FIELDS",
    "KIND_ROLES",
    "PARAM_PARSERS",
    "SUBSCRIPTION_KINDS",
    "WS_CALL_KINDS",
    "WS_NOTIFICATION_KINDS",
    "WS_SOCKET_KINDS",
    "CorruptParams",
    "FaultSpec",
    "HangParams",
    "HeadLieParams",
    "HttpErrorParams",
    "LatencyParams",
    "MatchSpec",
    "RateLimitParams",
    "RpcErrorParams",
    "ScheduleSpec",
    "StaleParams",
    "WsDisconnectParams",
    "WsEveryParams",
    "answer_record",
    "load_faults",
    "parse_fault",
    "parse_faults",
]

Role = Literal["delay", "outcome", "modify", "listener", "ws"]

# How each kind composes on one exchange (see `chaosproxy.compose`):
#   delay    adds time before the request goes upstream or before the answer goes back;
#            every matching delay fault applies and their delays add up.
#   outcome  decides the exchange (answer locally, kill, withhold); the first matching
#            one in plan order applies, the rest do not.
#   modify   rewrites the request or the upstream's answer; the first matching one.
#   listener acts on the provider's listener, not on exchanges.
#   ws       acts on the provider's WebSocket connections and notifications.
KIND_ROLES: dict[str, Role] = {
    "latency": "delay",
    "http_error": "outcome",
    "rpc_error": "outcome",
    "rate_limit": "outcome",
    "reset": "outcome",
    "hang": "outcome",
    "blackhole": "outcome",
    "refuse": "listener",
    "corrupt": "modify",
    "stale": "modify",
    "head_lie": "modify",
    "ws_disconnect": "ws",
    "ws_drop": "ws",
    "ws_delay": "ws",
    "ws_duplicate": "ws",
    "ws_reorder": "ws",
    "ws_stall": "ws",
    "ws_silence": "ws",
}


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _number(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where} must be a number, got {_describe(value)}")
    if not math.isfinite(value):
        raise ConfigError(f"{where} must be finite, got {value!r}")
    return float(value)


def _nonneg(where: str, value: Any) -> float:
    x = _number(where, value)
    if x < 0:
        raise ConfigError(f"{where} must be >= 0, got {value!r}")
    return x


def _positive(where: str, value: Any) -> float:
    x = _number(where, value)
    if x <= 0:
        raise ConfigError(f"{where} must be > 0, got {value!r}")
    return x


def _int(where: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where} must be an integer, got {_describe(value)}")
    if value < minimum:
        raise ConfigError(f"{where} must be >= {minimum}, got {value!r}")
    return value


def _probability(where: str, value: Any) -> float:
    p = _number(where, value)
    if not 0 <= p <= 1:
        raise ConfigError(f"{where} must be in [0, 1], got {value!r}")
    return p


def _allowed(where: str, kind: str, params: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    for key in params:
        if key not in allowed:
            if not allowed:
                raise ConfigError(
                    f"{where}.{key} is not a parameter of kind {kind!r} (it takes none)"
                )
            raise ConfigError(
                f"{where}.{key} is not a parameter of kind {kind!r} "
                f"(expected one of {list(allowed)})"
            )


def _headers(where: str, headers: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(headers, dict):
        raise ConfigError(f"{where} must be an object, got {_describe(headers)}")
    pairs = []
    for name, value in headers.items():
        if not name or any(c in name for c in " :\r\n"):
            raise ConfigError(f"{where} has an invalid header name {name!r}")
        if not isinstance(value, str) or any(c in value for c in "\r\n"):
            raise ConfigError(f"{where}.{name} must be a single-line string, got {value!r}")
        pairs.append((name, value))
    return tuple(pairs)


def _preset(where: str, name: Any, wanted: Collection[str]) -> Preset:
    presets = load_presets()
    if not isinstance(name, str) or name not in presets:
        raise ConfigError(
            f"{where} must name a preset of chaosproxy/presets.json, got {name!r} "
            f"(e.g. {sorted(n for n, p in presets.items() if p.as_ in wanted)[:3]})"
        )
    preset = presets[name]
    if preset.as_ not in wanted:
        raise ConfigError(
            f"{where} {name!r} is a {preset.as_!r} preset; this kind takes {sorted(wanted)}"
        )
    return preset


# -- params per kind --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LatencyParams:
    """`latency`: `ms` plus a random jitter, optionally ramping to `ramp_to_ms`.

    The delay of one exchange is ``base + jitter`` where ``base`` is `ms`, or moves
    linearly from `ms` to `ramp_to_ms` across the fault's window, and ``jitter`` is drawn
    from `jitter` (``uniform``: in [0, jitter_ms]; ``exponential``: mean jitter_ms;
    ``normal``: |N(0, jitter_ms)|). `where` is ``request`` (before the request goes
    upstream) or ``response`` (before the answer goes back to the client).
    """

    ms: float = 0.0
    jitter_ms: float = 0.0
    jitter: Literal["uniform", "exponential", "normal"] = "uniform"
    ramp_to_ms: float | None = None
    where: Literal["request", "response"] = "request"

    def sample_ns(self, rng: random.Random, progress: float) -> int:
        """One delay in ns; `progress` in [0, 1] is how far through its window."""
        base = self.ms
        if self.ramp_to_ms is not None:
            base += (self.ramp_to_ms - self.ms) * min(1.0, max(0.0, progress))
        extra = 0.0
        if self.jitter_ms > 0:
            if self.jitter == "uniform":
                extra = rng.random() * self.jitter_ms
            elif self.jitter == "exponential":
                extra = rng.expovariate(1.0 / self.jitter_ms)
            else:
                extra = abs(rng.gauss(0.0, self.jitter_ms))
        return round((base + extra) * 1_000_000)


def _parse_latency(where: str, params: Mapping[str, Any]) -> LatencyParams:
    _allowed(where, "latency", params, ("ms", "jitter_ms", "jitter", "ramp_to_ms", "where"))
    if "ms" not in params:
        raise ConfigError(f"{where}.ms is required for kind 'latency'")
    ms = _nonneg(f"{where}.ms", params["ms"])
    jitter_ms = _nonneg(f"{where}.jitter_ms", params.get("jitter_ms", 0))
    jitter = params.get("jitter", "uniform")
    if jitter not in ("uniform", "exponential", "normal"):
        raise ConfigError(
            f"{where}.jitter must be one of ['exponential', 'normal', 'uniform'], got {jitter!r}"
        )
    ramp = params.get("ramp_to_ms")
    ramp_to = None if ramp is None else _nonneg(f"{where}.ramp_to_ms", ramp)
    side = params.get("where", "request")
    if side not in ("request", "response"):
        raise ConfigError(f"{where}.where must be 'request' or 'response', got {side!r}")
    return LatencyParams(ms, jitter_ms, jitter, ramp_to, side)


# Default of http_error.status: 503 is what load balancers and most hosted providers
# send when a backend is unavailable.
DEFAULT_HTTP_ERROR_STATUS = 503


@dataclass(frozen=True, slots=True)
class HttpErrorParams:
    """`http_error`: answer from the proxy with `status`, without going upstream.

    `body` None means a JSON-RPC error object (`code`, `message`, `data`) echoing the
    request's id, one per element of a batch.
    """

    status: int = DEFAULT_HTTP_ERROR_STATUS
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    code: int = -32603
    message: str | None = None
    data: Any = None


def _rpc_code(where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where} must be an integer, got {_describe(value)}")
    return value


def _body(raw: Any) -> bytes | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        return raw.encode()
    # Any other JSON value is sent as its JSON text.
    return json.dumps(raw, separators=(",", ":")).encode()


def _from_preset_http(preset: Preset) -> dict[str, Any]:
    out: dict[str, Any] = {"headers": dict(preset.headers)}
    if preset.http_status is not None:
        out["status"] = preset.http_status
    if preset.rpc_code is None:
        # No JSON-RPC error in the original: its body was the message, as text.
        out["body"] = preset.message
    else:
        out.update(code=preset.rpc_code, message=preset.message, data=preset.data)
    return out


def _parse_http_error(where: str, params: Mapping[str, Any]) -> HttpErrorParams:
    allowed = ("status", "body", "headers", "code", "message", "data", "preset")
    _allowed(where, "http_error", params, allowed)
    merged: dict[str, Any] = {}
    if "preset" in params:
        merged.update(
            _from_preset_http(_preset(f"{where}.preset", params["preset"], ("http_error",)))
        )
    merged.update({k: v for k, v in params.items() if k != "preset"})
    status = merged.get("status", DEFAULT_HTTP_ERROR_STATUS)
    if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
        raise ConfigError(f"{where}.status must be an integer in [200, 599], got {status!r}")
    code = _rpc_code(f"{where}.code", merged.get("code", -32603))
    message = merged.get("message")
    if message is not None and not isinstance(message, str):
        raise ConfigError(f"{where}.message must be a string, got {_describe(message)}")
    return HttpErrorParams(
        status=status,
        body=_body(merged.get("body")),
        headers=_headers(f"{where}.headers", merged.get("headers", {})),
        code=code,
        message=message,
        data=merged.get("data"),
    )


@dataclass(frozen=True, slots=True)
class RpcErrorParams:
    """`rpc_error`: HTTP 200 with a JSON-RPC error object echoing each request's id.

    In a batch only the elements whose method the fault's `match.methods` names get the
    error (all elements when it names none); the other elements are answered by the
    upstream. `collapse` answers a batch with one non-array error object (id null), as
    Infura and erigon do.
    """

    code: int = -32005
    message: str = "limit exceeded"
    data: Any = None
    collapse: bool = False


def _parse_rpc_error(where: str, params: Mapping[str, Any]) -> RpcErrorParams:
    _allowed(where, "rpc_error", params, ("code", "message", "data", "preset", "collapse"))
    merged: dict[str, Any] = {}
    if "preset" in params:
        p = _preset(f"{where}.preset", params["preset"], ("rpc_error_200", "http_error"))
        if p.rpc_code is None:
            raise ConfigError(f"{where}.preset {p.id!r} carries no JSON-RPC error code")
        merged.update(code=p.rpc_code, message=p.message, data=p.data)
    merged.update({k: v for k, v in params.items() if k != "preset"})
    code = _rpc_code(f"{where}.code", merged.get("code", -32005))
    message = merged.get("message", "limit exceeded")
    if not isinstance(message, str):
        raise ConfigError(f"{where}.message must be a string, got {_describe(message)}")
    collapse = merged.get("collapse", False)
    if not isinstance(collapse, bool):
        raise ConfigError(f"{where}.collapse must be true or false, got {collapse!r}")
    return RpcErrorParams(code, message, merged.get("data"), collapse)


@dataclass(frozen=True, slots=True)
class RateLimitParams:
    """`rate_limit`: a token bucket of `rate_per_s` refilling up to `burst`; an exchange
    finding it short of its cost is answered with `answer` (default: Infura's 429 +
    -32005).

    `rate_per_min` is the same bucket counted per minute, full at a minute's quota by
    default (a per-minute plan lets the whole minute's calls through at once). Without
    `costs` an exchange costs one token, as proxyd, nginx and HAProxy count requests;
    with it, each call in the exchange costs its method's units (`default_cost` for the
    others), as credit and compute-unit plans count (a batch costs the sum).
    """

    rate_per_s: float
    burst: float
    answer: HttpErrorParams
    costs: Mapping[str, float] | None = None
    default_cost: float = 1.0

    def cost_of(self, methods: Sequence[str | None]) -> float:
        """The tokens one exchange takes."""
        costs = self.costs
        if costs is None:
            return 1.0
        default = self.default_cost
        return sum(costs.get(m, default) if m is not None else default for m in methods)

    def quota_record(self) -> dict[str, float]:
        """The bucket as recorded in `chaos_events` (`params.quota`): analysis tells a
        window whose traffic stayed within it (the router kept under the limit) from one
        the proxy failed to apply. `least_cost` is the fewest tokens any exchange takes."""
        least = 1.0 if self.costs is None else min(self.default_cost, *self.costs.values())
        return {"rate_per_s": self.rate_per_s, "burst": self.burst, "least_cost": least}


def _parse_costs(where: str, raw: Any) -> dict[str, float]:
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(
            f"{where} must be a non-empty object of method to units, got {_describe(raw)}"
        )
    return {str(m): _positive(f"{where}.{m}", units) for m, units in raw.items()}


def _parse_rate_limit(where: str, params: Mapping[str, Any]) -> RateLimitParams:
    quota = ("rate_per_s", "rate_per_min", "burst", "costs", "default_cost")
    allowed = (*quota, "status", "body", "headers", "code", "message", "data")
    _allowed(where, "rate_limit", (p for p in params if p != "preset"), allowed)
    given = [k for k in ("rate_per_s", "rate_per_min") if k in params]
    if len(given) != 1:
        raise ConfigError(
            f"{where} needs exactly one of rate_per_s or rate_per_min for kind 'rate_limit'"
            + (", got both" if given else "")
        )
    if given[0] == "rate_per_s":
        rate = _positive(f"{where}.rate_per_s", params["rate_per_s"])
        full = max(1.0, rate)
    else:
        per_min = _positive(f"{where}.rate_per_min", params["rate_per_min"])
        rate, full = per_min / 60.0, max(1.0, per_min)
    burst = _positive(f"{where}.burst", params.get("burst", full))
    costs = _parse_costs(f"{where}.costs", params["costs"]) if "costs" in params else None
    default_cost = _positive(f"{where}.default_cost", params.get("default_cost", 1.0))
    answer_params = {k: v for k, v in params.items() if k not in quota}
    if "preset" not in answer_params:
        answer_params = {"preset": "infura_project_rate_exceeded", **answer_params}
    return RateLimitParams(
        rate, burst, _parse_http_error(where, answer_params), costs, default_cost
    )


def answer_record(answer: HttpErrorParams) -> dict[str, Any]:
    """The answer a fault sends, as recorded beside its params in `chaos_events`
    (`params.answer`): what a preset resolves to, so that analysis reads the status,
    headers and error the router was given rather than the preset's name."""
    return {
        "status": answer.status,
        "headers": dict(answer.headers),
        "body": None if answer.body is None else answer.body.decode("utf-8", "replace"),
        "code": None if answer.body is not None else answer.code,
        "message": None
        if answer.body is not None
        else answer.message or f"chaosproxy: injected HTTP {answer.status}",
        "data": None if answer.body is not None else answer.data,
    }


@dataclass(frozen=True, slots=True)
class HangParams:
    """`hang` and `blackhole`: the client gets no answer until it gives up, or until
    `close_after_s`, when the proxy closes the connection. `hang` sends the request
    upstream and withholds the answer; `blackhole` never sends it upstream."""

    close_after_s: float | None = None


def _parse_hang(kind: str) -> Callable[[str, Mapping[str, Any]], HangParams]:
    def parse(where: str, params: Mapping[str, Any]) -> HangParams:
        _allowed(where, kind, params, ("close_after_s",))
        raw = params.get("close_after_s")
        return HangParams(None if raw is None else _positive(f"{where}.close_after_s", raw))

    return parse


CORRUPT_MODES = ("truncate", "invalid_json", "wrong_id", "null_result")


@dataclass(frozen=True, slots=True)
class CorruptParams:
    """`corrupt`: the upstream's answer, damaged. ``truncate``: the first half of the
    body (Content-Length matches the shortened body); ``invalid_json``: the body with
    its closing bracket replaced by garbage; ``wrong_id``: every id shifted by
    ``wrong`` (numbers + 1_000_000, strings prefixed); ``null_result``: every result null."""

    mode: str


def _parse_corrupt(where: str, params: Mapping[str, Any]) -> CorruptParams:
    _allowed(where, "corrupt", params, ("mode",))
    mode = params.get("mode")
    if mode not in CORRUPT_MODES:
        raise ConfigError(f"{where}.mode must be one of {list(CORRUPT_MODES)}, got {mode!r}")
    return CorruptParams(mode)


@dataclass(frozen=True, slots=True)
class StaleParams:
    """`stale`: the provider lies about its head, `lag_blocks` behind the truth."""

    lag_blocks: int


def _parse_stale(where: str, params: Mapping[str, Any]) -> StaleParams:
    _allowed(where, "stale", params, ("lag_blocks",))
    if "lag_blocks" not in params:
        raise ConfigError(f"{where}.lag_blocks is required for kind 'stale'")
    return StaleParams(_int(f"{where}.lag_blocks", params["lag_blocks"], 1))


HEAD_LIE_MODES = ("ahead", "zero", "tags", "chain_id", "syncing")
# ahead: far past any propagation lag, as a provider on another chain (or a testnet
# fork) reports; tags: below mainnet's finalized depth (64), so the lowered safe and
# finalized blocks land under the finalized one the provider answered before; syncing:
# a node 100 blocks short of the head it has heard of.
_HEAD_LIE_BLOCKS = {"ahead": 1000, "tags": 100, "syncing": 100}


@dataclass(frozen=True, slots=True)
class HeadLieParams:
    """`head_lie`: the provider misreports its head or its state. ``ahead``:
    `eth_blockNumber` and blocks answering a ``latest`` tag raised by `blocks`; ``zero``:
    head ``0x0`` and ``latest`` answered with the genesis block; ``tags``: ``safe`` and
    ``finalized`` answered with the block `blocks` below the last head seen (they
    regress, and safe drops under the finalized block answered before); ``chain_id``:
    `eth_chainId` answers `chain_id` (None: mainnet's, or Sepolia's where the truth is
    mainnet's); ``syncing``: `eth_syncing` answers that the node is syncing, `blocks`
    short of the last head seen."""

    mode: str
    blocks: int
    chain_id: int | None = None


def _parse_head_lie(where: str, params: Mapping[str, Any]) -> HeadLieParams:
    _allowed(where, "head_lie", params, ("mode", "blocks", "chain_id"))
    mode = params.get("mode")
    if mode not in HEAD_LIE_MODES:
        raise ConfigError(f"{where}.mode must be one of {list(HEAD_LIE_MODES)}, got {mode!r}")
    if "chain_id" in params and mode != "chain_id":
        raise ConfigError(f"{where}.chain_id applies to mode 'chain_id' only")
    if mode in ("zero", "chain_id"):
        if "blocks" in params:
            raise ConfigError(f"{where}.blocks does not apply to mode {mode!r}")
        chain_id = params.get("chain_id")
        if chain_id is not None:
            chain_id = _int(f"{where}.chain_id", chain_id, 1)
        return HeadLieParams(mode, 0, chain_id)
    blocks = _int(f"{where}.blocks", params.get("blocks", _HEAD_LIE_BLOCKS[mode]), 1)
    return HeadLieParams(mode, blocks)


@dataclass(frozen=True, slots=True)
class WsDisconnectParams:
    """`ws_disconnect`: close the provider's WebSockets. `code` None: abnormal closure
    (the TCP connection reset, no close frame; the client sees 1006); else a close
    frame with `code` and `reason`, then the TCP close."""

    code: int | None = None
    reason: str = ""


def _parse_ws_disconnect(where: str, params: Mapping[str, Any]) -> WsDisconnectParams:
    _allowed(where, "ws_disconnect", params, ("code", "reason", "preset"))
    merged: dict[str, Any] = {}
    if "preset" in params:
        p = _preset(f"{where}.preset", params["preset"], ("ws_close",))
        merged["code"] = None if p.ws_close_code == 1006 else p.ws_close_code
        merged["reason"] = "" if p.ws_close_code == 1006 else p.message[:120]
    merged.update({k: v for k, v in params.items() if k != "preset"})
    code = merged.get("code")
    if code is not None:
        code = _int(f"{where}.code", code, 1000)
        # 1005, 1006 and 1015 must never be sent in a close frame (RFC 6455 7.4.1).
        if code > 4999 or code in (1004, 1005, 1006, 1015):
            raise ConfigError(
                f"{where}.code must be a sendable close code (1000-4999 except 1004-1006, "
                f"1015), got {code}; omit it for an abnormal close"
            )
    reason = merged.get("reason", "")
    if not isinstance(reason, str) or len(reason.encode()) > 123:
        raise ConfigError(f"{where}.reason must be a string of at most 123 bytes")
    return WsDisconnectParams(code, reason)


@dataclass(frozen=True, slots=True)
class WsEveryParams:
    """Which notifications a `ws_drop` / `ws_duplicate` / `ws_reorder` / `ws_delay`
    fault touches: each with `probability`, or every `every_k`-th; `ms` is the delay
    of `ws_delay`."""

    probability: float | None = None
    every_k: int | None = None
    ms: float = 0.0


def _parse_ws_every(kind: str) -> Callable[[str, Mapping[str, Any]], WsEveryParams]:
    def parse(where: str, params: Mapping[str, Any]) -> WsEveryParams:
        allowed = (
            ("probability", "every_k", "ms")
            if kind == "ws_delay"
            else (
                "probability",
                "every_k",
            )
        )
        _allowed(where, kind, params, allowed)
        prob = params.get("probability")
        every = params.get("every_k")
        if prob is not None and every is not None:
            raise ConfigError(f"{where}: give probability or every_k, not both")
        p = None if prob is None else _probability(f"{where}.probability", prob)
        k = None if every is None else _int(f"{where}.every_k", every, 1)
        if p is None and k is None:
            if kind == "ws_reorder":
                k = 2  # swap neighbours: the smallest reorder
            else:
                p = 1.0
        ms = 0.0
        if kind == "ws_delay":
            if "ms" not in params:
                raise ConfigError(f"{where}.ms is required for kind 'ws_delay'")
            ms = _positive(f"{where}.ms", params["ms"])
        return WsEveryParams(p, k, ms)

    return parse


def _parse_none(kind: str) -> Callable[[str, Mapping[str, Any]], None]:
    def parse(where: str, params: Mapping[str, Any]) -> None:
        _allowed(where, kind, params, ())
        return None

    return parse


# kind -> parser(where, params) returning the kind's parsed params.
PARAM_PARSERS: dict[str, Callable[[str, Mapping[str, Any]], Any]] = {
    "latency": _parse_latency,
    "http_error": _parse_http_error,
    "rpc_error": _parse_rpc_error,
    "rate_limit": _parse_rate_limit,
    "reset": _parse_none("reset"),
    "refuse": _parse_none("refuse"),
    "hang": _parse_hang("hang"),
    "blackhole": _parse_hang("blackhole"),
    "corrupt": _parse_corrupt,
    "stale": _parse_stale,
    "head_lie": _parse_head_lie,
    "ws_disconnect": _parse_ws_disconnect,
    "ws_drop": _parse_ws_every("ws_drop"),
    "ws_delay": _parse_ws_every("ws_delay"),
    "ws_duplicate": _parse_ws_every("ws_duplicate"),
    "ws_reorder": _parse_ws_every("ws_reorder"),
    "ws_stall": _parse_none("ws_stall"),
    "ws_silence": _parse_none("ws_silence"),
}
assert set(PARAM_PARSERS) == set(KIND_ROLES)


# -- match ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class MatchSpec:
    """Which exchanges (or WebSocket sockets / notifications) of the provider an active
    fault applies to (all by default).

    `methods`: the JSON-RPC method, or for a batch any element's; `transport`: ``http``
    or ``ws`` (JSON-RPC calls over a WebSocket), both when None; `subscriptions`: the
    subscription kinds a notification fault touches (``newHeads``, ``logs``, ...);
    `header`: a request header (for a WebSocket: of its handshake) that must be present
    (`header_value` None) or equal; `first_n` / `after_n`: only the first N, or all but
    the first N, exchanges that passed the filters above while the fault was active;
    `probability`: drawn per exchange (`per` ``request``) or once per client connection
    (`per` ``connection``), from `seed`.
    """

    methods: frozenset[str] | None = None
    header: str | None = None
    header_value: str | None = None
    first_n: int | None = None
    after_n: int | None = None
    probability: float = 1.0
    per: Literal["request", "connection"] = "request"
    seed: int = 0
    transport: Literal["http", "ws"] | None = None
    subscriptions: frozenset[str] | None = None

    @property
    def everything(self) -> bool:
        return self == MATCH_ALL


MATCH_ALL = MatchSpec()
MATCH_FIELDS = (
    "methods",
    "transport",
    "subscriptions",
    "header",
    "first_n",
    "after_n",
    "probability",
    "per",
    "seed",
)
# Subscription kinds of `eth_subscribe` (geth's and every provider's set).
SUBSCRIPTION_KINDS = ("newHeads", "logs", "newPendingTransactions", "syncing")
# Kinds acting on a whole WebSocket (decided once per socket) and on its notifications.
# `ws_silence` is the zombie socket: socket, pings and calls alive, no notification.
WS_SOCKET_KINDS = frozenset({"ws_disconnect", "ws_stall", "ws_silence"})
WS_NOTIFICATION_KINDS = frozenset({"ws_drop", "ws_delay", "ws_duplicate", "ws_reorder"})
# HTTP kinds that also act on JSON-RPC calls over a WebSocket; `http_error` has no
# meaning there (a socket carries no status) and `refuse` acts on the listener.
WS_CALL_KINDS = frozenset(
    {"latency", "rpc_error", "rate_limit", "reset", "hang", "blackhole", "corrupt", "stale"}
)
# Match fields each group of kinds takes; the rest are refused naming the field.
_MATCH_FIELDS_BY_GROUP = {
    "listener": (),
    "ws_socket": ("header", "first_n", "after_n", "probability", "per", "seed"),
    "ws_notification": (
        "subscriptions",
        "header",
        "first_n",
        "after_n",
        "probability",
        "per",
        "seed",
    ),
    "call": ("methods", "transport", "header", "first_n", "after_n", "probability", "per", "seed"),
}


def _match_group(kind: str) -> str:
    if kind == "refuse":
        return "listener"
    if kind in WS_SOCKET_KINDS:
        return "ws_socket"
    if kind in WS_NOTIFICATION_KINDS:
        return "ws_notification"
    return "call"


def _parse_match(where: str, raw: Any, kind: str) -> MatchSpec:
    if raw is None:
        return MATCH_ALL
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be an object, got {_describe(raw)}")
    allowed = _MATCH_FIELDS_BY_GROUP[_match_group(kind)]
    for key in raw:
        if key not in MATCH_FIELDS:
            raise ConfigError(
                f"{where}.{key} is not a match field (expected one of {list(MATCH_FIELDS)})"
            )
        if key not in allowed:
            if not allowed:
                raise ConfigError(
                    f"{where}.{key}: kind {kind!r} takes no match (it acts on the whole listener)"
                )
            raise ConfigError(
                f"{where}.{key} does not apply to kind {kind!r} (it takes {list(allowed)})"
            )
    methods = raw.get("methods")
    if methods is not None:
        if (
            not isinstance(methods, list)
            or not methods
            or not all(isinstance(m, str) and m for m in methods)
        ):
            raise ConfigError(f"{where}.methods must be a non-empty list of method names")
        methods = frozenset(methods)
    transport = raw.get("transport")
    if transport is not None:
        if transport not in ("http", "ws"):
            raise ConfigError(f"{where}.transport must be 'http' or 'ws', got {transport!r}")
        if transport == "ws" and kind not in WS_CALL_KINDS:
            raise ConfigError(
                f"{where}.transport 'ws' does not apply to kind {kind!r} (a WebSocket call "
                f"takes {sorted(WS_CALL_KINDS)})"
            )
    subscriptions = raw.get("subscriptions")
    if subscriptions is not None:
        if (
            not isinstance(subscriptions, list)
            or not subscriptions
            or not all(s in SUBSCRIPTION_KINDS for s in subscriptions)
        ):
            raise ConfigError(
                f"{where}.subscriptions must be a non-empty list of {list(SUBSCRIPTION_KINDS)},"
                f" got {subscriptions!r}"
            )
        subscriptions = frozenset(subscriptions)
    header = raw.get("header")
    header_name = header_value = None
    if header is not None:
        if not isinstance(header, str) or not header.strip():
            raise ConfigError(f"{where}.header must be 'Name' or 'Name: value', got {header!r}")
        name, sep, value = header.partition(":")
        header_name = name.strip()
        if not header_name or " " in header_name:
            raise ConfigError(f"{where}.header has an invalid header name {name!r}")
        header_value = value.strip() if sep else None
    first_n = raw.get("first_n")
    after_n = raw.get("after_n")
    if first_n is not None:
        first_n = _int(f"{where}.first_n", first_n, 1)
    if after_n is not None:
        after_n = _int(f"{where}.after_n", after_n, 0)
    probability = _probability(f"{where}.probability", raw.get("probability", 1.0))
    per = raw.get("per", "request")
    if per not in ("request", "connection"):
        raise ConfigError(f"{where}.per must be 'request' or 'connection', got {per!r}")
    seed = _int(f"{where}.seed", raw.get("seed", 0), 0)
    return MatchSpec(
        methods=methods,
        header=header_name,
        header_value=header_value,
        first_n=first_n,
        after_n=after_n,
        probability=probability,
        per=per,
        seed=seed,
        transport=transport,
        subscriptions=subscriptions,
    )


# -- schedule ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    """How the fault's `[start_s, start_s + duration_s)` span is cut into windows.

    ``once`` (default): one window, the whole span. ``flap``: `count` windows of `down_s`
    separated by `up_s`, from `start_s` (duration_s must cover them). ``random``:
    windows of `down_s` whose starts are a Poisson process with mean gap `mtbf_s`
    (seeded by `seed`), within the span.
    """

    kind: Literal["once", "flap", "random"] = "once"
    down_s: float = 0.0
    up_s: float = 0.0
    count: int = 1
    mtbf_s: float = 0.0
    seed: int = 0


SCHEDULE_ONCE = ScheduleSpec()


def _parse_schedule(where: str, raw: Any, duration_s: float) -> ScheduleSpec:
    if raw is None:
        return SCHEDULE_ONCE
    if not isinstance(raw, dict) or len(raw) != 1 or next(iter(raw)) not in ("flap", "random"):
        raise ConfigError(
            f'{where} must be {{"flap": {{...}}}} or {{"random": {{...}}}}, got {raw!r}'
        )
    kind, body = next(iter(raw.items()))
    where = f"{where}.{kind}"
    if not isinstance(body, dict):
        raise ConfigError(f"{where} must be an object, got {_describe(body)}")
    if kind == "flap":
        _allowed(where, "flap", body, ("down_s", "up_s", "count"))
        for key in ("down_s", "up_s", "count"):
            if key not in body:
                raise ConfigError(f"{where}.{key} is required")
        down = _positive(f"{where}.down_s", body["down_s"])
        up = _positive(f"{where}.up_s", body["up_s"])
        count = _int(f"{where}.count", body["count"], 1)
        needed = count * down + (count - 1) * up
        if needed > duration_s + 1e-9:
            raise ConfigError(
                f"{where}: {count} x down_s {down:g} + up_s gaps need {needed:g} s, "
                f"more than duration_s {duration_s:g}"
            )
        return ScheduleSpec("flap", down_s=down, up_s=up, count=count)
    _allowed(where, "random", body, ("mtbf_s", "down_s", "seed"))
    for key in ("mtbf_s", "down_s"):
        if key not in body:
            raise ConfigError(f"{where}.{key} is required")
    return ScheduleSpec(
        "random",
        down_s=_positive(f"{where}.down_s", body["down_s"]),
        mtbf_s=_positive(f"{where}.mtbf_s", body["mtbf_s"]),
        seed=_int(f"{where}.seed", body.get("seed", 0), 0),
    )


# -- the fault --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultSpec:
    """One validated fault of the fault file (or of a control API apply)."""

    fault_id: str
    provider: str
    kind: str
    start_s: float
    duration_s: float
    # The params exactly as given (JSON-serialisable), for events and the control API.
    raw_params: Mapping[str, Any] = field(default_factory=dict)
    # The parsed, kind-specific params (None for kinds without params).
    params: Any = None
    match: MatchSpec = MATCH_ALL
    schedule: ScheduleSpec = SCHEDULE_ONCE
    # The whole fault object as given, for idempotent re-apply and the control API.
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s

    @property
    def role(self) -> Role:
        return KIND_ROLES[self.kind]


FAULT_FIELDS = (
    "fault_id",
    "provider",
    "kind",
    "start_s",
    "duration_s",
    "params",
    "match",
    "schedule",
)


def parse_fault(where: str, item: Any, providers: Collection[str]) -> FaultSpec:
    """Validates one fault object; `where` prefixes every error (e.g. ``faults[3]``)."""
    if not isinstance(item, dict):
        raise ConfigError(f"{where} must be an object, got {_describe(item)}")
    for key in item:
        if key not in FAULT_FIELDS:
            raise ConfigError(
                f"{where}.{key} is not a fault field (expected one of {list(FAULT_FIELDS)})"
            )
    for key in FAULT_FIELDS[:5]:
        if key not in item:
            raise ConfigError(f"{where}.{key} is required")
    fault_id = item["fault_id"]
    if not isinstance(fault_id, str) or not fault_id.strip() or "#" in fault_id:
        raise ConfigError(
            f"{where}.fault_id must be a non-empty string without '#', got {fault_id!r}"
        )
    provider = item["provider"]
    if not isinstance(provider, str) or provider not in providers:
        raise ConfigError(f"{where}.provider must be one of {sorted(providers)}, got {provider!r}")
    kind = item["kind"]
    if not isinstance(kind, str) or kind not in PARAM_PARSERS:
        raise ConfigError(f"{where}.kind must be one of {sorted(PARAM_PARSERS)}, got {kind!r}")
    start_s = _number(f"{where}.start_s", item["start_s"])
    if start_s < 0:
        raise ConfigError(f"{where}.start_s must be >= 0, got {item['start_s']!r}")
    duration_s = _number(f"{where}.duration_s", item["duration_s"])
    if duration_s <= 0:
        raise ConfigError(f"{where}.duration_s must be > 0, got {item['duration_s']!r}")
    raw_params = item.get("params", {})
    if raw_params is None:
        raw_params = {}
    if not isinstance(raw_params, dict):
        raise ConfigError(f"{where}.params must be an object, got {_describe(raw_params)}")
    params = PARAM_PARSERS[kind](f"{where}.params", raw_params)
    match = _parse_match(f"{where}.match", item.get("match"), kind)
    schedule = _parse_schedule(f"{where}.schedule", item.get("schedule"), duration_s)
    return FaultSpec(
        fault_id=fault_id,
        provider=provider,
        kind=kind,
        start_s=start_s,
        duration_s=duration_s,
        raw_params=raw_params,
        params=params,
        match=match,
        schedule=schedule,
        raw=item,
    )


def parse_faults(data: Any, providers: Collection[str]) -> list[FaultSpec]:
    """Validates the decoded fault file.

    Args:
        data: the decoded JSON document.
        providers: the listener names a fault may target.

    Returns:
        The faults in file order.

    Raises:
        ConfigError: naming the first bad field, e.g. ``faults[0].duration_s must be > 0``.
    """
    if not isinstance(data, list):
        raise ConfigError(f"faults must be a JSON list, got {_describe(data)}")
    faults: list[FaultSpec] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(data):
        fault = parse_fault(f"faults[{i}]", item, providers)
        if fault.fault_id in seen:
            raise ConfigError(
                f"faults[{i}].fault_id {fault.fault_id!r} duplicates faults[{seen[fault.fault_id]}]"
            )
        seen[fault.fault_id] = i
        faults.append(fault)
    return faults


def load_faults(path: Path, providers: Collection[str]) -> list[FaultSpec]:
    """Reads and validates a fault file; errors name the file or the field."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ConfigError(f"--faults {path}: cannot read: {e.strerror or e}") from e
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(
            f"--faults {path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}"
        ) from e
    return parse_faults(data, providers)
