"""Which upstream outcomes are worth another upstream: a pure rule, no I/O.

An attempt ends either with an HTTP response (:class:`UpstreamResponse`) or without one
(:class:`UpstreamFailure`: connection error, reset, protocol error, attempt timeout).
:func:`classify` turns that into a :class:`Verdict`: retriable failures are worth the
next upstream, everything else goes back to the client unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "RETRIABLE_RPC_ERRORS",
    "AttemptResult",
    "UpstreamFailure",
    "UpstreamResponse",
    "Verdict",
    "classify",
    "is_retriable_rpc_error",
]

# JSON-RPC error codes another provider may well answer, and the text the message must
# contain (case-insensitive) for the code to count; None means any message.
RETRIABLE_RPC_ERRORS: Mapping[int, str | None] = {
    # EIP-1474 "limit exceeded": provider rate limits and range caps; another one may serve.
    -32005: None,
    # Alchemy's rate limit carries the HTTP status as its JSON-RPC code.
    429: None,
    # QuickNode's "100/second request limit reached" (reth uses -32007 for "Request is
    # too big", answered with HTTP 413, which is not retried).
    -32007: "limit",
    # QuickNode's "credits limited to 6000/sec".
    -32012: "credits",
    # proxyd's "over rate limit", from a proxyd in front of the provider.
    -32016: "rate limit",
    # JSON-RPC "internal error": the node failed, not the request.
    -32603: None,
    # geth's generic server error; "header not found" means this node is behind the head.
    -32000: "header not found",
    # anvil's answer to a call on "latest" that met a block being mined while older
    # state is pruned: this node's state, not the request ("block height is 23 but
    # requested was 22"); another node answers it.
    -32602: "blockoutofrangeerror",
}

# HTTP statuses retried besides 5xx: 429 is a provider's rate limit (RFC 6585).
RETRIABLE_HTTP_STATUSES = frozenset({429})


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    """An HTTP response from an upstream, body fully read; ``retry_after`` is the raw
    ``Retry-After`` header when there was one."""

    status: int
    content_type: str | None
    body: bytes
    retry_after: str | None = None


@dataclass(frozen=True, slots=True)
class UpstreamFailure:
    """An attempt that produced no response.

    ``kind`` is ``"conn_error"`` (refused, reset, closed without answer, protocol error)
    or ``"timeout"`` (the attempt's time ran out); ``detail`` says what happened.
    """

    kind: Literal["conn_error", "timeout"]
    detail: str


type AttemptResult = UpstreamResponse | UpstreamFailure


@dataclass(frozen=True, slots=True)
class Verdict:
    """What an attempt means for the router: ``reason`` is empty when it is not retriable."""

    retriable: bool
    reason: str = ""


_PASS = Verdict(False)


def is_retriable_rpc_error(code: object, message: object) -> bool:
    """Whether a JSON-RPC error with this ``code`` and ``message`` is worth another upstream."""
    if not isinstance(code, int) or isinstance(code, bool) or code not in RETRIABLE_RPC_ERRORS:
        return False
    needle = RETRIABLE_RPC_ERRORS[code]
    if needle is None:
        return True
    return isinstance(message, str) and needle in message.lower()


def _retriable_error_in(element: Any) -> str | None:
    if not isinstance(element, dict):
        return None
    error = element.get("error")
    if not isinstance(error, dict):
        return None
    code, message = error.get("code"), error.get("message")
    if is_retriable_rpc_error(code, message):
        return f"JSON-RPC error {code}: {message}"
    return None


def classify(result: AttemptResult) -> Verdict:
    """Classify one attempt's result.

    Retriable: no response at all, HTTP 5xx, HTTP 429, or a 2xx JSON-RPC body (single, or
    a batch with at least one such element) carrying an error listed in
    :data:`RETRIABLE_RPC_ERRORS`. Everything else,
    including non-retriable JSON-RPC errors (-32602, -32601, 3 revert) and other 4xx, is
    the client's answer.

    Args:
        result: the attempt's response or failure.

    Returns:
        The verdict, with a short reason when retriable.
    """
    if isinstance(result, UpstreamFailure):
        return Verdict(True, result.detail)
    status = result.status
    if status >= 500 or status in RETRIABLE_HTTP_STATUSES:
        return Verdict(True, f"HTTP {status}")
    if not 200 <= status < 300:
        return _PASS
    # Fast path: a body without the key "error" cannot carry one, so skip parsing it.
    if b'"error"' not in result.body:
        return _PASS
    try:
        payload = json.loads(result.body)
    except ValueError:
        # Not JSON-RPC at all: nothing to judge it by, so it goes back as it came.
        return _PASS
    elements = payload if isinstance(payload, list) else [payload]
    for element in elements:
        reason = _retriable_error_in(element)
        if reason is not None:
            return Verdict(True, reason)
    return _PASS
