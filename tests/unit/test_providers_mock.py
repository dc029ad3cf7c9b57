"""Pins the providers.mock command line and the package's public surface."""

import pytest

import providers
from providers.chain import DEFAULT_CHAIN_ID
from providers.mock import parse_args


def test_the_chain_and_the_node_come_from_their_modules():
    assert providers.Chain.__module__ == "providers.chain"
    assert providers.MockNode.__module__ == "providers.jsonrpc"


def test_arguments_parse_with_their_defaults():
    a = parse_args(["--name", "A", "--port", "0", "--seed", "7", "--genesis-ns", "123"])
    assert (a.name, a.port, a.seed, a.genesis_ns) == ("A", 0, 7, 123)
    assert (a.block_time_ms, a.chain_id) == (1000, DEFAULT_CHAIN_ID)


def test_genesis_defaults_to_a_whole_second_of_now():
    a = parse_args(["--port", "0"])
    assert a.genesis_ns > 0 and a.genesis_ns % 1_000_000_000 == 0


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        ([], "the following arguments are required: --port"),
        (["--port", "70000"], "argument --port: must be in 0..65535, got 70000"),
        (["--port", "x"], "argument --port: expected an integer, got 'x'"),
        (["--port", "0", "--block-time-ms", "0"], "argument --block-time-ms: must be >= 1, got 0"),
        (["--port", "0", "--genesis-ns", "-1"], "argument --genesis-ns: must be >= 0, got -1"),
        (["--port", "0", "--chain-id", "0"], "argument --chain-id: must be >= 1, got 0"),
        (["--port", "0", "--name", ""], "argument --name: must not be empty"),
        (["--port", "0", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_arguments_exit_2_with_one_line_on_stderr(capsys, argv, fragment):
    with pytest.raises(SystemExit) as exc:
        parse_args(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("providers.mock: error: ") and fragment in err
