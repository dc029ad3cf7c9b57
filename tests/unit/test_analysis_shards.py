"""The shard format: batches of whole lines, readable after a kill."""

from __future__ import annotations

import pytest

from analysis.shards import SCHEMAS, ShardWriter, readable_prefix, shard_path


def test_rows_are_written_under_a_header_with_none_as_empty(tmp_path):
    path = shard_path(tmp_path, "metrics", "m0")
    with ShardWriter(path, "metrics") as w:
        w.append((1, "up", None, 1.5))
        w.append((2, "x,y", '{"a": "b"}', 2.0))
    assert path.read_text().splitlines() == [
        "t,name,labels,value",
        "1,up,,1.5",
        '2,"x,y","{""a"": ""b""}",2.0',
    ]


def test_rows_reach_the_file_within_the_flush_interval(tmp_path):
    import time

    path = shard_path(tmp_path, "metrics", "m0")
    w = ShardWriter(path, "metrics", flush_interval=0.05)
    try:
        w.append((1, "up", None, 1.0))
        deadline = time.monotonic() + 2
        while path.read_text().count("\n") < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert path.read_text().count("\n") == 2
    finally:
        w.close()


def test_readable_prefix_ends_at_the_last_whole_line(tmp_path):
    path = tmp_path / "x.csv"
    path.write_bytes(b"a,b\n1,2\n3,")
    assert readable_prefix(path) == len(b"a,b\n1,2\n")
    path.write_bytes(b"")
    assert readable_prefix(path) == 0
    path.write_bytes(b"x" * 100_000 + b"\n" + b"y" * 70_000)
    assert readable_prefix(path) == 100_001


def test_bad_names_and_widths_are_refused(tmp_path):
    with pytest.raises(ValueError, match="table must be one of"):
        shard_path(tmp_path, "nope", "a")
    with pytest.raises(ValueError, match="producer must be"):
        shard_path(tmp_path, "metrics", "a.b")
    with pytest.raises(ValueError, match="flush_interval must be in"):
        ShardWriter(tmp_path / "m.csv", "metrics", flush_interval=2)
    with ShardWriter(tmp_path / "m.csv", "metrics") as w:
        with pytest.raises(ValueError, match="metrics rows have 4 columns, got 1"):
            w.append((1,))


def test_every_table_of_the_design_has_a_schema():
    assert {
        "requests",
        "upstream",
        "ws_notifications",
        "ws_sessions",
        "upstream_ws",
        "system",
        "metrics",
    } <= set(SCHEMAS)
