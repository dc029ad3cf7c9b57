"""The command line: every bad argument is one stderr line and exit 2."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from chaosproxy.addons.paths import join_path
from chaosproxy.app import _Redacting, _secrets
from chaosproxy.cli import main, parse_args
from chaosproxy.config import Config, Listener, parse_listen, with_ws_url
from chaosproxy.errors import ConfigError


def argv(tmp_path, *extra, listen=("A=18001=http://127.0.0.1:9001",), control="18000"):
    out = ["--proxy-id", "P0", "--run-dir", str(tmp_path / "run"), "--control-port", control]
    for spec in listen:
        out += ["--listen", spec]
    return out + list(extra)


def test_valid_arguments_are_parsed(tmp_path):
    faults = tmp_path / "f.json"
    faults.write_text(
        json.dumps(
            [{"fault_id": "x", "provider": "B", "kind": "reset", "start_s": 0, "duration_s": 1}]
        )
    )
    config = parse_args(
        argv(
            tmp_path,
            "--faults",
            str(faults),
            listen=("A=18001=http://127.0.0.1:9001", "B=18002=https://example.com/"),
        )
    )
    assert config.proxy_id == "P0"
    assert config.control_port == 18000
    assert config.listeners == (
        Listener("A", 18001, "http://127.0.0.1:9001"),
        Listener("B", 18002, "https://example.com"),
    )
    assert config.listeners[0].mode == "reverse:http://127.0.0.1:9001@127.0.0.1:18001"
    assert [f.fault_id for f in config.faults] == ["x"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("A=1", "--listen must be NAME=PORT=UPSTREAM_URL"),
        ("A b=1=http://h", "--listen NAME must match [A-Za-z0-9_-]+, got 'A b'"),
        ("A=x=http://h", "--listen A: PORT must be an integer port, got 'x'"),
        ("A=0=http://h", "--listen A: PORT must be in [1, 65535], got 0"),
        ("A=1=ftp://h", "--listen A: UPSTREAM_URL must be http|https://host[:port][/path]"),
        (
            "A=1=http://u:secretpass@h/",
            "--listen A: UPSTREAM_URL: credentials before the host are not supported",
        ),
        ("A=1=http://h:70000", "--listen A: UPSTREAM_URL port must be in [1, 65535], got 70000"),
    ],
)
def test_bad_listen_specs_name_the_part(spec, message):
    with pytest.raises(ConfigError) as info:
        parse_listen(spec)
    assert str(info.value).startswith(message)


def test_an_upstream_path_and_query_are_kept_apart_from_the_mode_and_redacted():
    lst = parse_listen("A=1=https://mainnet.example/v3/KEY0123456789abcdef?x=1")
    assert lst.mode == "reverse:https://mainnet.example@127.0.0.1:1"
    assert lst.path == "/v3/KEY0123456789abcdef?x=1"
    assert lst.redacted == "https://mainnet.example/***"
    assert parse_listen("A=1=http://h:8545/").path is None


def test_a_bad_upstream_url_is_reported_without_its_path():
    with pytest.raises(ConfigError) as info:
        parse_listen("A=1=ftp://h/v3/KEY0123456789abcdef")
    assert "KEY0123456789abcdef" not in str(info.value)
    assert "'ftp://h/***'" in str(info.value)


def test_a_ws_url_gives_the_handshake_path_on_the_same_host():
    lst = with_ws_url(parse_listen("A=1=https://h/v3/K"), "wss://h/ws/v3/K")
    assert (lst.path, lst.ws_path) == ("/v3/K", "/ws/v3/K")
    with pytest.raises(ConfigError, match="--listen-ws A: WS_URL must be on the upstream's host"):
        with_ws_url(parse_listen("A=1=https://h/v3/K"), "ws://h/ws/v3/K")


def test_join_path_puts_the_client_path_under_the_upstream_path():
    assert join_path("/v3/K", "/") == "/v3/K"
    assert join_path("/v3/K?a=1", "/x?b=2") == "/v3/K/x?a=1&b=2"
    assert join_path("/v3/K/", "/x") == "/v3/K/x"


@pytest.mark.parametrize(
    ("kwargs", "extra", "message"),
    [
        ({"control": "abc"}, (), "--control-port must be an integer port, got 'abc'"),
        ({"listen": ("A=1=http://h", "A=2=http://h")}, (), "--listen name 'A' is given twice"),
        (
            {"listen": ("A=18000=http://h",)},
            (),
            "--listen A: PORT 18000 is also used by --control-port",
        ),
        ({}, ("--bogus",), "unrecognized arguments: --bogus"),
    ],
)
def test_bad_arguments_raise_config_error(tmp_path, kwargs, extra, message):
    with pytest.raises(ConfigError) as info:
        parse_args(argv(tmp_path, *extra, **kwargs))
    assert str(info.value).startswith(message)


def test_bad_proxy_id_is_refused(tmp_path):
    args = argv(tmp_path)
    args[1] = "a.b"
    with pytest.raises(ConfigError, match="--proxy-id must be non-empty"):
        parse_args(args)


def test_missing_required_argument_is_named(tmp_path):
    with pytest.raises(ConfigError, match="--control-port"):
        parse_args(["--proxy-id", "P0", "--run-dir", str(tmp_path), "--listen", "A=1=http://h"])


def test_run_dir_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "run").write_text("")
    with pytest.raises(ConfigError, match=r"--run-dir .* exists and is not a directory"):
        parse_args(argv(tmp_path))


def test_main_prints_one_line_and_exits_2_for_a_bad_fault_file(tmp_path, capsys):
    faults = tmp_path / "f.json"
    faults.write_text(
        json.dumps(
            [{"fault_id": "x", "provider": "A", "kind": "reset", "start_s": 0, "duration_s": -1}]
        )
    )
    assert main(argv(tmp_path, "--faults", str(faults))) == 2
    err = capsys.readouterr().err
    assert err == "chaosproxy: faults[0].duration_s must be > 0, got -1\n"
    assert not (tmp_path / "run").exists()


def test_main_exits_2_for_an_unknown_provider(tmp_path, capsys):
    faults = tmp_path / "f.json"
    faults.write_text(
        json.dumps(
            [{"fault_id": "x", "provider": "Z", "kind": "reset", "start_s": 0, "duration_s": 1}]
        )
    )
    assert main(argv(tmp_path, "--faults", str(faults))) == 2
    assert (
        capsys.readouterr().err == "chaosproxy: faults[0].provider must be one of ['A'], got 'Z'\n"
    )


def test_the_proxy_log_masks_upstream_paths_and_their_key_like_parts():
    key = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
    lst = with_ws_url(parse_listen(f"A=1=https://h/v3/{key}?key=zz99zz99"), f"wss://h/ws/{key}")
    config = Config("P0", Path("/tmp"), 2, (lst,), ())
    fmt = _Redacting("%(message)s", _secrets(config))

    def shown(message: str) -> str:
        return fmt.format(logging.LogRecord("x", logging.WARNING, "f", 1, message, None, None))

    assert shown(f"error on GET /ws/{key}") == "error on GET ***"
    assert shown(f"token {key} seen") == "token *** seen"
    assert shown("key=zz99zz99") == "key=***"
    assert shown("nothing secret here") == "nothing secret here"
