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
from examples.reference_router._config import SECTIONS

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
    (raw(circuit_breaker={"foo": 1}), "circuit_breaker.foo is not a known field"),
    (raw(circuit_breaker={"recovery_s": -1}), "circuit_breaker.recovery_s must be a number > 0"),
    (
        raw(circuit_breaker={"recovery_s": 60}),
        "circuit_breaker: max_recovery_s must be >= recovery_s (60), got 30.0",
    ),
    (raw(rate_limit={"max_backoff_s": "1m"}), "rate_limit.max_backoff_s must be a number > 0"),
    (raw(head_tracking={"enabled": "no"}), "head_tracking.enabled must be true or false"),
    (raw(head_tracking={"max_lag_blocks": 1.5}), "head_tracking.max_lag_blocks must be an integer"),
    (raw(websocket={"backfill_limit": -1}), "websocket.backfill_limit must be an integer >= 0"),
    (raw(websocket={"dedupe": 1}), "websocket.dedupe must be true or false, got 1"),
    (raw(metrics=True), "metrics must be a table ([metrics]), got True"),
    (
        raw(upstreams=[{"name": "A", "url": "http://a", "ws_url": "http://a"}]),
        "upstreams[0].ws_url must start with ws:// or wss://",
    ),
    (raw(listen=DROP), "listen is required"),
    (raw(listen=8545), "listen must be a string"),
    (raw(listen="127.0.0.1"), "listen must be HOST:PORT"),
    (raw(listen="127.0.0.1:70000"), "listen must be HOST:PORT"),
    (raw(listen=":80"), "listen must be HOST:PORT"),
    (
        raw(strategy="random"),
        "strategy must be one of round_robin, priority, fastest, got 'random'",
    ),
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
    # The skeleton's keys come back as given; every behaviour section defaults to on.
    assert {k: v for k, v in doc.items() if k not in SECTIONS} == VALUES
    assert {k: doc[k] for k in SECTIONS} == {k: {"enabled": True} for k in SECTIONS}
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


def test_every_behaviour_is_on_by_default_and_each_can_be_switched_off():
    config = parse_config(raw())
    assert config.circuit_breaker is not None and config.rate_limit is not None
    assert config.head_tracking is not None and config.websocket is not None
    assert config.metrics is True
    off = parse_config(raw(**{name: {"enabled": False} for name in SECTIONS}))
    assert (off.circuit_breaker, off.rate_limit, off.head_tracking, off.websocket) == (
        None,
        None,
        None,
        None,
    )
    assert off.metrics is False


def test_section_settings_are_read():
    config = parse_config(
        raw(
            circuit_breaker={"failure_threshold": 7, "recovery_s": 3},
            head_tracking={"max_lag_blocks": 0},
            websocket={"stall_timeout_s": 0.5, "backfill_limit": 0, "resubscribe": False},
        )
    )
    assert config.circuit_breaker is not None and config.circuit_breaker.failure_threshold == 7
    assert config.circuit_breaker.recovery_s == 3
    assert config.head_tracking is not None and config.head_tracking.max_lag_blocks == 0
    ws = config.websocket
    assert ws is not None and (ws.stall_timeout_s, ws.backfill_limit, ws.resubscribe) == (
        0.5,
        0,
        False,
    )


def test_ws_url_defaults_to_the_http_url_with_a_ws_scheme():
    assert UpstreamConfig("A", "http://h:1/x").websocket_url == "ws://h:1/x"
    assert UpstreamConfig("A", "https://h/x").websocket_url == "wss://h/x"
    assert UpstreamConfig("A", "http://h", "ws://other:2/").websocket_url == "ws://other:2/"


def test_rendering_switches_and_settings():
    text = render_config(
        **VALUES,
        circuit_breaker=False,
        websocket={"backfill_limit": 4},
        head_tracking={"enabled": False},
    )
    config = parse_config(tomllib.loads(text))
    assert config.circuit_breaker is None and config.head_tracking is None
    assert config.websocket is not None and config.websocket.backfill_limit == 4
    assert config.rate_limit is not None and config.metrics
