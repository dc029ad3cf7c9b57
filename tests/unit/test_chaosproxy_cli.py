"""The command line: every bad argument is one stderr line and exit 2."""

from __future__ import annotations

import json

import pytest

from chaosproxy.cli import Listener, main, parse_args, parse_listen
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
        ("A=1", "--listen must be NAME=PORT=UPSTREAM_URL, got 'A=1'"),
        ("A b=1=http://h", "--listen NAME must match [A-Za-z0-9_-]+, got 'A b'"),
        ("A=x=http://h", "--listen A: PORT must be an integer port, got 'x'"),
        ("A=0=http://h", "--listen A: PORT must be in [1, 65535], got 0"),
        ("A=1=ftp://h", "--listen A: UPSTREAM_URL must be http(s)://host[:port] without a path"),
        ("A=1=http://h/v3/key", "--listen A: UPSTREAM_URL must be http(s)://host[:port]"),
        ("A=1=http://h:70000", "--listen A: UPSTREAM_URL port must be in [1, 65535], got 70000"),
    ],
)
def test_bad_listen_specs_name_the_part(spec, message):
    with pytest.raises(ConfigError) as info:
        parse_listen(spec)
    assert str(info.value).startswith(message)


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
