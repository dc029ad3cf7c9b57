"""classify(): which upstream outcomes the reference router retries on another upstream."""

from __future__ import annotations

import json

import pytest

from examples.reference_router import (
    RETRIABLE_RPC_ERRORS,
    UpstreamFailure,
    UpstreamResponse,
    classify,
)


def rpc(payload: object, status: int = 200) -> UpstreamResponse:
    return UpstreamResponse(status, "application/json", json.dumps(payload).encode())


def err(code: int, message: str, id_: object = 1) -> dict[str, object]:
    return {"jsonrpc": "2.0", "id": id_, "error": {"code": code, "message": message}}


OK = {"jsonrpc": "2.0", "id": 1, "result": "0x10"}

CASES = [
    # (case, result, retriable, reason contains)
    (
        "connection reset",
        UpstreamFailure("conn_error", "RemoteProtocolError: Server disconnected"),
        True,
        "Server disconnected",
    ),
    ("attempt timeout", UpstreamFailure("timeout", "timed out after 2s"), True, "timed out"),
    ("http 500", UpstreamResponse(500, "text/plain", b"boom"), True, "HTTP 500"),
    ("http 503", UpstreamResponse(503, None, b""), True, "HTTP 503"),
    ("http 429", UpstreamResponse(429, None, b"slow down"), True, "HTTP 429"),
    ("limit exceeded -32005", rpc(err(-32005, "rate limited")), True, "-32005"),
    ("internal error -32603", rpc(err(-32603, "internal error")), True, "-32603"),
    (
        "QuickNode's request limit -32007",
        rpc(err(-32007, "100/second request limit reached")),
        True,
        "-32007",
    ),
    ("QuickNode's credits -32012", rpc(err(-32012, "credits limited to 6000/sec")), True, ""),
    ("proxyd's rate limit -32016", rpc(err(-32016, "over rate limit")), True, "-32016"),
    ("another -32007 is the client's", rpc(err(-32007, "Request is too big")), False, ""),
    ("header not found -32000", rpc(err(-32000, "Header not found")), True, "Header not found"),
    ("other -32000 is the client's", rpc(err(-32000, "execution reverted")), False, ""),
    ("invalid params -32602", rpc(err(-32602, "invalid argument 0")), False, ""),
    (
        "anvil's block out of range -32602",
        rpc(err(-32602, "BlockOutOfRangeError: block height is 23 but requested was 22")),
        True,
        "BlockOutOfRangeError",
    ),
    ("method not found -32601", rpc(err(-32601, "the method does not exist")), False, ""),
    ("revert code 3", rpc(err(3, "execution reverted")), False, ""),
    ("200 ok", rpc(OK), False, ""),
    ("batch all ok", rpc([OK, {**OK, "id": 2}]), False, ""),
    ("batch with a retriable element", rpc([OK, err(-32005, "limit", 2)]), True, "-32005"),
    ("batch with a non-retriable element", rpc([OK, err(-32602, "bad", 2)]), False, ""),
    ("result mentioning error is not an error", rpc({**OK, "result": '"error"'}), False, ""),
    ("200 body that is not JSON goes back", UpstreamResponse(200, None, b'"error" <'), False, ""),
    ("http 400 goes back", UpstreamResponse(400, None, b"bad request"), False, ""),
    ("http 404 goes back", UpstreamResponse(404, None, b""), False, ""),
    ("bool code is not a code", rpc({"id": 1, "error": {"code": True, "message": "x"}}), False, ""),
]


@pytest.mark.parametrize(
    ("result", "retriable", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_classify_decides_retriable_by_the_table(result, retriable, reason):
    verdict = classify(result)
    assert verdict.retriable is retriable
    assert reason in verdict.reason
    if not retriable:
        assert verdict.reason == ""


def test_retriable_rpc_error_table_is_the_documented_one():
    assert dict(RETRIABLE_RPC_ERRORS) == {
        -32005: None,
        429: None,
        -32603: None,
        -32000: "header not found",
        -32602: "blockoutofrangeerror",
        -32007: "limit",
        -32012: "credits",
        -32016: "rate limit",
    }
