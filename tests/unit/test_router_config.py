"""Router configuration: validation errors name the field; the template round-trips."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import jinja2
import pytest

from examples.reference_router import (
    ConfigError,
    RouterConfig,
    UpstreamConfig,
    load_config,
    parse_config,
    render_config,
)

REPO = Path(__file__).resolve().parents[2]

UPSTREAMS = [{"name": "A", "url": "http://127.0.0.1:9001"}]
DROP = object()  # a field left out of the document


def raw(**overrides: object) -> dict[str, object]:
    doc: dict[str, object] = {"listen": "127.0.0.1:8545", "upstreams": list(UPSTREAMS)}
    doc.update(overrides)
    return {k: v for k, v in doc.items() if v is not DROP}


def test_minimal_config_fills_the_defaults():
    config = parse_config(raw())
    assert config == RouterConfig(
        host="127.0.0.1",
        port=8545,
        upstreams=(UpstreamConfig("A", "http://127.0.0.1:9001"),),
        strategy="round_robin",
        failover=True,
        request_timeout_s=5.0,
        attempt_timeout_s=2.0,
        max_attempts=3,
    )
    assert config.listen == "127.0.0.1:8545"


def test_port_zero_and_ipv6_listen_are_accepted():
    assert parse_config(raw(listen="127.0.0.1:0")).port == 0
    config = parse_config(raw(listen="[::1]:8545"))
    assert (config.host, config.port, config.listen) == ("::1", 8545, "[::1]:8545")


BAD = [
    (raw(listen=DROP), "listen is required"),
    (raw(listen=8545), "listen must be a string"),
    (raw(listen="127.0.0.1"), "listen must be HOST:PORT"),
    (raw(listen="127.0.0.1:70000"), "listen must be HOST:PORT"),
    (raw(listen=":80"), "listen must be HOST:PORT"),
    (raw(strategy="random"), "strategy must be one of round_robin, priority, got 'random'"),
    (raw(failover="yes"), "failover must be true or false"),
    (raw(request_timeout_s=0), "request_timeout_s must be > 0, got 0"),
    (raw(request_timeout_s="5"), "request_timeout_s must be a number"),
    (raw(attempt_timeout_s=-1.5), "attempt_timeout_s must be > 0, got -1.5"),
    (raw(attempt_timeout_s=True), "attempt_timeout_s must be a number"),
    (raw(max_attempts=0), "max_attempts must be >= 1, got 0"),
    (raw(max_attempts=2.0), "max_attempts must be an integer"),
    (raw(upstreams=DROP), "upstreams is required"),
    (raw(upstreams=[]), "upstreams must be a non-empty array"),
    (raw(upstreams=["http://x"]), "upstreams[0] must be a table"),
    (raw(upstreams=[{"url": "http://x"}]), "upstreams[0].name must be a non-empty string"),
    (
        raw(upstreams=[*UPSTREAMS, {"name": "A", "url": "http://x"}]),
        "upstreams[1].name must be unique",
    ),
    (raw(upstreams=[{"name": "A"}]), "upstreams[0].url must be a string"),
    (raw(upstreams=[{"name": "A", "url": "ftp://x"}]), "upstreams[0].url must start with http://"),
    (
        raw(upstreams=[{"name": "A", "url": "http://x", "w": 1}]),
        "upstreams[0].w is not a known field",
    ),
    (raw(stratgey="priority"), "stratgey is not a known field"),
]


@pytest.mark.parametrize(("doc", "message"), BAD, ids=[m for _, m in BAD])
def test_invalid_config_error_names_the_field(doc, message):
    with pytest.raises(ConfigError) as info:
        parse_config(doc)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_load_config_reports_unreadable_and_invalid_toml(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("listen = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


VALUES = {
    "listen": "127.0.0.1:0",
    "upstreams": [
        {"name": "A", "url": "http://127.0.0.1:9001"},
        {"name": 'B "quoted" \\ ü', "url": "http://127.0.0.1:9002/rpc?k=v"},
    ],
    "strategy": "priority",
    "failover": False,
    "request_timeout_s": 5.0,
    "attempt_timeout_s": 0.25,
    "max_attempts": 2,
}


def test_rendered_template_round_trips_through_tomllib():
    text = render_config(**VALUES)
    assert "failover = false" in text
    doc = tomllib.loads(text)
    assert doc == VALUES
    config = parse_config(doc)
    assert config.strategy == "priority" and config.failover is False
    assert [u.name for u in config.upstreams] == ["A", 'B "quoted" \\ ü']


def test_rendering_true_failover_writes_toml_true():
    assert "failover = true" in render_config(**{**VALUES, "failover": True})


def test_rendering_without_a_variable_fails():
    values = dict(VALUES)
    del values["max_attempts"]
    with pytest.raises(jinja2.UndefinedError, match="max_attempts"):
        render_config(**values)


def test_rendering_an_invalid_value_fails_with_the_field():
    with pytest.raises(ConfigError, match="max_attempts must be >= 1"):
        render_config(**{**VALUES, "max_attempts": 0})


def test_cli_prints_one_line_and_exits_2_on_a_bad_config(tmp_path):
    path = tmp_path / "router.toml"
    path.write_text(render_config(**VALUES).replace('strategy = "priority"', 'strategy = "x"'))
    proc = subprocess.run(
        [sys.executable, "-m", "examples.reference_router", "--config", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "strategy must be one of" in lines[0]
