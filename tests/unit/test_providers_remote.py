"""Pins providers.remote: provider definitions, and API keys redacted from every form a
run writes (the definition in scenario.json, any text, any file)."""

from __future__ import annotations

import json

import pytest

from providers.remote import (
    MASK,
    ProviderDef,
    Redactor,
    parse_provider,
    redact_url,
    secrets_in_headers,
    secrets_in_url,
)

INFURA_KEY = "9aa3d95b3bc440fa88ea12eaa4456161"
ALCHEMY_KEY = "Zx8rT2kLmN4pQ7sV1wY3aB5cD6eF9gH0"


@pytest.mark.parametrize(
    ("url", "secret", "public"),
    [
        (
            f"https://mainnet.infura.io/v3/{INFURA_KEY}",
            INFURA_KEY,
            "https://mainnet.infura.io/v3/***",
        ),
        (
            f"wss://eth-mainnet.g.alchemy.com/v2/{ALCHEMY_KEY}",
            ALCHEMY_KEY,
            "wss://eth-mainnet.g.alchemy.com/v2/***",
        ),
        (
            "https://lb.drpc.org/ogrpc?network=ethereum&dkey=Ak80gSCleU2sAb4dx9ILtPLo",
            "Ak80gSCleU2sAb4dx9ILtPLo",
            "https://lb.drpc.org/ogrpc?network=ethereum&dkey=***",
        ),
        (
            "https://rpc.example.com/?apikey=s3cr3tvalue",
            "s3cr3tvalue",
            "https://rpc.example.com/?apikey=***",
        ),
        (
            "https://user:hunter2pass@node.example.com/rpc",
            "hunter2pass",
            "https://user:***@node.example.com/rpc",  # a 4-letter user name is no key
        ),
        (
            "https://young-wild-sea.quiknode.pro/0f4c2ab81e2d4b7f9e3f1a2b3c4d5e6f7a8b9c0d/",
            "0f4c2ab81e2d4b7f9e3f1a2b3c4d5e6f7a8b9c0d",
            "https://young-wild-sea.quiknode.pro/***/",
        ),
    ],
)
def test_keys_in_urls_are_found_and_masked(url, secret, public):
    assert secret in secrets_in_url(url)
    assert redact_url(url) == public
    assert secret not in redact_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://ethereum-rpc.publicnode.com",
        "https://eth.llamarpc.com/",
        "https://rpc.ankr.com/eth",
        "http://127.0.0.1:8545/?network=mainnet",
    ],
)
def test_urls_without_keys_are_left_alone(url):
    assert secrets_in_url(url) == []
    assert redact_url(url) == url


def test_credential_headers_are_found_bearer_tokens_too():
    headers = {
        "Authorization": "Bearer tok_abcdef123456",
        "X-Api-Key": "k-987654321",
        "Accept": "x",
    }
    found = secrets_in_headers(headers)
    assert "tok_abcdef123456" in found and "k-987654321" in found
    assert "x" not in found


def test_a_redactor_scrubs_text_json_and_files(tmp_path):
    r = Redactor([INFURA_KEY, "short"])  # too short to be a key: never masked
    line = f"2024 upstream https://mainnet.infura.io/v3/{INFURA_KEY} failed; short"
    assert r.text(line) == "2024 upstream https://mainnet.infura.io/v3/*** failed; short"
    doc = {"providers": [{"url": f"x/{INFURA_KEY}"}], INFURA_KEY: 1}
    assert INFURA_KEY not in json.dumps(r.value(doc))
    (tmp_path / "logs").mkdir()
    leaky = tmp_path / "logs" / "router.log"
    leaky.write_text(f"GET /v3/{INFURA_KEY}\n")
    clean = tmp_path / "report.md"
    clean.write_text("nothing to hide\n")
    (tmp_path / "run.duckdb").write_bytes(b"\x00\xff\xfe")
    assert r.tree(tmp_path) == [leaky]
    assert INFURA_KEY not in leaky.read_text()
    assert not Redactor([])


def test_a_definitions_public_form_carries_no_secret():
    p = parse_provider(
        {
            "name": "infura",
            "url": f"https://mainnet.infura.io/v3/{INFURA_KEY}",
            "ws_url": f"wss://mainnet.infura.io/ws/v3/{INFURA_KEY}",
            "headers": {"Authorization": "Bearer tok_abcdef123456"},
        }
    )
    assert p.kind == "remote"
    text = json.dumps(p.public())
    assert INFURA_KEY not in text and "tok_abcdef123456" not in text
    assert MASK in text and "mainnet.infura.io" in text
    assert Redactor(p.secrets()).text(f"/v3/{INFURA_KEY}") == "/v3/***"


def test_mock_and_anvil_definitions():
    assert parse_provider({"name": "A"}) == ProviderDef("A", "mock")
    m = parse_provider({"name": "B", "behaviour": {"head_lag": 2}})
    assert m.public() == {"name": "B", "kind": "mock", "behaviour": {"head_lag": 2}}
    assert parse_provider({"name": "C", "kind": "anvil"}).kind == "anvil"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": ""}, "providers[0].name must be"),
        ({"name": "A", "kind": "geth"}, "providers[0].kind must be one of"),
        ({"name": "A", "url": "ftp://x"}, "providers[0].url must be a http/https URL"),
        (
            {"name": "A", "url": f"http://mainnet.infura.io/v3/{INFURA_KEY}"},
            "must use https/wss for a non-loopback host, got 'http://mainnet.infura.io/v3/***'",
        ),
        ({"name": "A", "url": "https://x.io", "ws_url": "https://x.io"}, "ws_url must be a ws/wss"),
        ({"name": "A", "kind": "mock", "url": "https://x.io"}, "url is only for kind 'remote'"),
        ({"name": "A", "kind": "anvil", "behaviour": {}}, "behaviour is only for kind 'mock'"),
        ({"name": "A", "behaviour": {"head_lag": -1}}, "providers[0].behaviour.head_lag"),
        ({"name": "A", "url": "https://x.io", "headers": {"a": 1}}, "headers must be an object"),
        ({"name": "A", "colour": 1}, "providers[0].colour is not a known key"),
    ],
)
def test_bad_definitions_are_refused_naming_the_field_without_leaking_keys(spec, message):
    with pytest.raises(ValueError) as e:
        parse_provider(spec)
    assert message in str(e.value)
    assert INFURA_KEY not in str(e.value)
