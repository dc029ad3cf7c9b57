"""Fault-file validation: every bad field is named in the message."""

from __future__ import annotations

import json

import pytest

from chaosproxy.errors import ConfigError
from chaosproxy.faults import HttpErrorParams, load_faults, parse_faults

PROVIDERS = ("A", "B")


def fault(**overrides):
    base = {
        "fault_id": "a-down",
        "provider": "A",
        "kind": "reset",
        "start_s": 10,
        "duration_s": 5,
        "params": {},
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not DROP}


DROP = object()

BAD_CASES = [
    ({"x": 1}, "faults must be a JSON list, got an object"),
    ([[1]], "faults[0] must be an object, got a list"),
    ([fault(extra=1)], "faults[0].extra is not a fault field"),
    ([fault(fault_id=DROP)], "faults[0].fault_id is required"),
    ([fault(provider=DROP)], "faults[0].provider is required"),
    ([fault(kind=DROP)], "faults[0].kind is required"),
    ([fault(start_s=DROP)], "faults[0].start_s is required"),
    ([fault(duration_s=DROP)], "faults[0].duration_s is required"),
    ([fault(fault_id="")], "faults[0].fault_id must be a non-empty string without '#', got ''"),
    ([fault(fault_id=3)], "faults[0].fault_id must be a non-empty string without '#', got 3"),
    ([fault(provider="C")], "faults[0].provider must be one of ['A', 'B'], got 'C'"),
    ([fault(provider={"a": 1})], "faults[0].provider must be one of ['A', 'B'], got {'a': 1}"),
    (
        [fault(kind="slow")],
        "faults[0].kind must be one of ['blackhole', 'corrupt', 'hang', 'head_lie', 'http_error', ",
    ),
    ([fault(start_s="1")], "faults[0].start_s must be a number, got '1'"),
    ([fault(start_s=True)], "faults[0].start_s must be a number, got True"),
    ([fault(start_s=-1)], "faults[0].start_s must be >= 0, got -1"),
    ([fault(duration_s=-1)], "faults[0].duration_s must be > 0, got -1"),
    ([fault(duration_s=0)], "faults[0].duration_s must be > 0, got 0"),
    ([fault(duration_s=float("inf"))], "faults[0].duration_s must be finite, got inf"),
    ([fault(params=[])], "faults[0].params must be an object, got a list"),
    ([fault(params={"x": 1})], "faults[0].params.x is not a parameter of kind 'reset'"),
    (
        [fault(kind="http_error", params={"colour": 1})],
        "faults[0].params.colour is not a parameter of kind 'http_error'",
    ),
    (
        [fault(kind="http_error", params={"status": 99})],
        "faults[0].params.status must be an integer in [200, 599], got 99",
    ),
    (
        [fault(kind="http_error", params={"status": "503"})],
        "faults[0].params.status must be an integer in [200, 599], got '503'",
    ),
    (
        [fault(kind="http_error", params={"headers": []})],
        "faults[0].params.headers must be an object, got a list",
    ),
    (
        [fault(kind="http_error", params={"headers": {"Retry-After": 5}})],
        "faults[0].params.headers.Retry-After must be a single-line string, got 5",
    ),
    (
        [fault(kind="http_error", params={"headers": {"a b": "x"}})],
        "faults[0].params.headers has an invalid header name 'a b'",
    ),
    ([fault(), fault(provider="B")], "faults[1].fault_id 'a-down' duplicates faults[0]"),
]


@pytest.mark.parametrize(("data", "message"), BAD_CASES)
def test_invalid_fault_file_names_the_bad_field(data, message):
    with pytest.raises(ConfigError) as info:
        parse_faults(data, PROVIDERS)
    assert str(info.value).startswith(message)


def test_valid_faults_are_parsed_in_file_order():
    faults = parse_faults(
        [
            fault(),
            fault(
                fault_id="b-503",
                provider="B",
                kind="http_error",
                start_s=0,
                duration_s=0.5,
                params={"status": 429, "body": {"error": "x"}, "headers": {"Retry-After": "1"}},
            ),
            fault(fault_id="c", params=DROP),
        ],
        PROVIDERS,
    )
    assert [f.fault_id for f in faults] == ["a-down", "b-503", "c"]
    assert faults[0].params is None
    assert faults[0].end_s == 15.0
    assert faults[1].params == HttpErrorParams(429, b'{"error":"x"}', (("Retry-After", "1"),))
    assert faults[1].raw_params["status"] == 429
    assert faults[2].raw_params == {}


def test_http_error_defaults_to_503_with_generated_body():
    (f,) = parse_faults([fault(kind="http_error")], PROVIDERS)
    assert f.params == HttpErrorParams(503, None, ())


def test_http_error_string_body_is_sent_as_is():
    (f,) = parse_faults([fault(kind="http_error", params={"body": "nope"})], PROVIDERS)
    assert f.params.body == b"nope"


def test_load_faults_reports_invalid_json_with_position(tmp_path):
    path = tmp_path / "f.json"
    path.write_text('[{"fault_id": }]')
    with pytest.raises(ConfigError, match=r"--faults .*f.json: invalid JSON at line 1 column 15"):
        load_faults(path, PROVIDERS)


def test_load_faults_reports_a_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"--faults .*missing.json: cannot read"):
        load_faults(tmp_path / "missing.json", PROVIDERS)


def test_load_faults_reads_a_valid_file(tmp_path):
    path = tmp_path / "f.json"
    path.write_text(json.dumps([fault()]))
    assert [f.fault_id for f in load_faults(path, PROVIDERS)] == ["a-down"]
