"""JSON-RPC facts, tags and outcomes of one exchange, from bytes."""

from __future__ import annotations

import pytest

from chaosproxy.exchange import (
    RequestInfo,
    classify_error,
    classify_response,
    extract_tag,
    parse_request,
    rpc_id_text,
)


def test_single_request_is_parsed():
    info = parse_request(b'{"jsonrpc":"2.0","id":"bt-1-2","method":"eth_blockNumber"}')
    assert info == RequestInfo(
        "eth_blockNumber", 1, "bt-1-2", ("bt-1-2",), False, ("eth_blockNumber",)
    )


def test_batch_takes_first_elements_method_and_id():
    info = parse_request(
        b'[{"jsonrpc":"2.0","id":7,"method":"eth_chainId"},{"id":8,"method":"eth_call"}]'
    )
    assert (info.method, info.batch_size, info.rpc_id, info.ids, info.is_batch) == (
        "eth_chainId",
        2,
        7,
        (7, 8),
        True,
    )


@pytest.mark.parametrize("body", [b"", b"not json", b"\xff\xfe", b"42", b'{"method": 5}', b"[]"])
def test_non_json_rpc_bodies_yield_nones(body):
    info = parse_request(body)
    assert info.method is None
    assert info.rpc_id is None


@pytest.mark.parametrize(
    ("header", "body", "tag"),
    [
        ("bt-0-1", b'{"id":"bt-9-9","method":"m"}', "bt-0-1"),  # header first
        (None, b'{"id":"bt-9-9","method":"m"}', "bt-9-9"),  # then a bt- string id
        (None, b'{"id":"other","method":"m"}', None),
        (None, b'{"id":5,"method":"m"}', None),
        ("", b'{"id":"bt-1-1","method":"m"}', "bt-1-1"),
        (None, b'[{"id":"bt-2-1","method":"m"},{"id":"bt-2-2","method":"m"}]', "bt-2-1"),
        (None, b'[{"id":1,"method":"m"},{"id":"bt-2-2","method":"m"}]', None),
    ],
)
def test_tag_is_header_then_string_id(header, body, tag):
    assert extract_tag(header, parse_request(body)) == tag


@pytest.mark.parametrize(
    ("rpc_id", "text"), [(None, None), ("bt-1", "bt-1"), (7, "7"), (1.5, "1.5")]
)
def test_rpc_id_is_recorded_as_text(rpc_id, text):
    assert rpc_id_text(rpc_id) == text


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, b'{"jsonrpc":"2.0","id":1,"result":"0x1"}', ("ok", None)),
        (200, b'{"jsonrpc":"2.0","id":1,"result":{"error":"x"}}', ("ok", None)),
        (
            200,
            b'{"jsonrpc":"2.0","id":1,"error":{"code":-32005,"message":"limit"}}',
            ("rpc_error", -32005),
        ),
        (200, b'{"jsonrpc":"2.0","id":1,"error":null,"result":"0x1"}', ("ok", None)),
        (
            200,
            b'[{"id":1,"result":"0x1"},{"id":2,"error":{"code":-32000,"message":"x"}}]',
            ("rpc_error", -32000),
        ),
        (200, b'[{"id":1,"result":"0x1"},{"id":2,"result":"0x2"}]', ("ok", None)),
        (200, b'{"id":1,"error":{"message":"no code"}}', ("rpc_error", None)),
        (200, b'{"id":1,"error":"just a string"}', ("rpc_error", None)),
        (200, b'{"error" broken', ("ok", None)),
        (429, b"Too Many Requests", ("http_error", None)),
        (
            503,
            b'{"jsonrpc":"2.0","id":1,"error":{"code":-32603,"message":"x"}}',
            ("http_error", -32603),
        ),
        (400, b"", ("http_error", None)),
    ],
)
def test_response_outcome(status, body, expected):
    assert classify_response(status, body) == expected


@pytest.mark.parametrize(
    ("message", "killed", "connected", "outcome"),
    [
        ("Connection killed.", True, False, "reset"),
        ("Connection killed.", True, True, "reset"),
        ("Connect call failed ('127.0.0.1', 1)", False, False, "conn_error"),
        ("[Errno 111] Connection refused", False, False, "conn_error"),
        ("Server disconnected.", False, True, "reset"),
        ("connection timed out", False, False, "timeout"),
    ],
)
def test_error_outcome(message, killed, connected, outcome):
    assert classify_error(message, killed_by_fault=killed, upstream_connected=connected) == outcome
