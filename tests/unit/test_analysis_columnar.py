"""Parquet parts of the CSV shards: incremental, idempotent, whole lines only."""

from __future__ import annotations

import json
import time

import duckdb
import pytest

from analysis.columnar import COLUMNAR_DIR, Converter, convert, parts
from analysis.database import ingest
from analysis.shards import SCHEMAS, ShardWriter, shard_path

COLS = list(SCHEMAS["metrics"])


def metric_line(i: int) -> bytes:
    return f'{i},m{i},"{{""k"": ""v,{i}""}}",{i}.5\n'.encode()


def shard(tmp_path, rows=range(3)):
    """A run directory with one metrics shard of `rows`, as a producer writes it."""
    path = shard_path(tmp_path / "run" / "system", "metrics", "m0")
    with ShardWriter(path, "metrics") as w:
        for i in rows:
            w.append((i, f"m{i}", json.dumps({"k": f"v,{i}"}), i + 0.5))
    return tmp_path / "run", path


def read(run, table="metrics"):
    files = [str(p) for p in parts(run, table)]
    if not files:
        return []
    con = duckdb.connect()
    try:
        return con.execute(f"SELECT * FROM read_parquet({files!r}) ORDER BY t").fetchall()
    finally:
        con.close()


def test_parts_hold_every_whole_line_with_its_values_and_nulls(tmp_path):
    run, _ = shard(tmp_path)
    with ShardWriter(shard_path(run / "system", "metrics", "m1"), "metrics") as w:
        w.append((9, "up", None, None))
    assert convert(run) == 2
    assert read(run) == [
        (0, "m0", '{"k": "v,0"}', 0.5),
        (1, "m1", '{"k": "v,1"}', 1.5),
        (2, "m2", '{"k": "v,2"}', 2.5),
        (9, "up", None, None),
    ]


def test_converting_again_writes_nothing_and_reads_the_same(tmp_path):
    run, _ = shard(tmp_path)
    assert convert(run) == 1
    before = read(run)
    assert convert(run) == 0
    assert read(run) == before and len(before) == 3


def test_a_torn_last_line_waits_until_it_is_whole(tmp_path):
    run, path = shard(tmp_path)
    line = metric_line(3)
    with open(path, "ab") as f:
        f.write(line[:7])  # a producer killed, or caught, mid-write
    assert convert(run) == 1
    assert [r[0] for r in read(run)] == [0, 1, 2]
    with open(path, "ab") as f:
        f.write(line[7:])
    assert convert(run) == 1
    assert [r[0] for r in read(run)] == [0, 1, 2, 3]
    assert len(parts(run, "metrics")) == 2


def test_a_field_holding_newlines_is_never_cut(tmp_path):
    rows = [(i, "m", f'line one\nline "two"\n{i}', 1.0) for i in range(20)]
    run, path = shard(tmp_path, rows=[])
    with ShardWriter(path, "metrics") as w:
        for row in rows:
            w.append(row)
    # Parts far smaller than a record's lines would allow, then a batch torn right
    # after a newline inside a quoted field.
    with open(path, "ab") as f:
        f.write(b'20,m,"line one\nline ""tw')
    convert(run, max_bytes=30)
    assert read(run) == rows
    with open(path, "ab") as f:
        f.write(b'o""\n20",1.0\n')
    convert(run)
    assert read(run)[-1] == (20, "m", 'line one\nline "two"\n20', 1.0)


def test_new_lines_become_new_parts_that_chain(tmp_path):
    run, path = shard(tmp_path)
    convert(run)
    with open(path, "ab") as f:
        f.write(b"".join(metric_line(i) for i in range(3, 6)))
    convert(run)
    chain = parts(run, "metrics")
    ranges = [tuple(map(int, p.name.split(".")[3].split("-"))) for p in chain]
    assert ranges[0][0] == len(",".join(COLS)) + 1  # after the header
    assert ranges[0][1] == ranges[1][0] and ranges[1][1] == path.stat().st_size
    assert [r[0] for r in read(run)] == list(range(6))


def test_min_bytes_waits_for_enough_new_data_and_max_bytes_cuts_at_line_ends(tmp_path):
    run, path = shard(tmp_path, rows=range(100))
    size = path.stat().st_size
    assert convert(run, min_bytes=size) == 0
    assert parts(run, "metrics") == []
    written = convert(run, min_bytes=1000, max_bytes=1000)
    assert written >= 2
    chain = parts(run, "metrics")
    ends = [int(p.name.split(".")[3].split("-")[1]) for p in chain]
    data = path.read_bytes()
    assert all(data[end - 1 : end] == b"\n" for end in ends)
    # What is left is under min_bytes; the final conversion takes it.
    assert 0 < size - ends[-1] < 1000
    convert(run)
    assert [r[0] for r in read(run)] == list(range(100))


def test_stale_parts_are_dropped_and_their_range_converted_again(tmp_path):
    run, path = shard(tmp_path)
    convert(run)
    (good,) = parts(run, "metrics")
    table, producer, ino, _, _ = good.name.split(".")[:5]
    out = good.parent
    # A part past the shard's end and one of another file (another inode).
    beyond = out / f"{table}.{producer}.{ino}.{path.stat().st_size:012d}-999999999999.parquet"
    other = out / f"{table}.{producer}.1.000000000001-000000000002.parquet"
    for p in (beyond, other):
        p.write_bytes(good.read_bytes())
    good.unlink()
    assert convert(run) == 1
    assert not beyond.exists() and not other.exists()
    assert [r[0] for r in read(run)] == [0, 1, 2]


def test_a_replaced_shard_is_converted_anew(tmp_path):
    run, path = shard(tmp_path)
    convert(run)
    path.unlink()
    shard(tmp_path, rows=range(10, 12))
    convert(run)
    assert [r[0] for r in read(run)] == [10, 11]


def test_parts_of_another_schema_are_dropped(tmp_path):
    run, _ = shard(tmp_path)
    convert(run)
    (run / COLUMNAR_DIR / "schema.json").write_text("{}")
    assert convert(run) == 1
    assert len(read(run)) == 3


def test_a_shard_whose_header_is_not_its_tables_is_refused_by_name(tmp_path):
    run, path = shard(tmp_path)
    path.write_bytes(b"t,name,value\n1,x,2\n")
    with pytest.raises(ValueError, match=r"metrics\.m0\.csv has header 't,name,value'"):
        convert(run)


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match="min_bytes must be >= 0"):
        convert(tmp_path, min_bytes=-1)
    with pytest.raises(ValueError, match="max_bytes must be > 0"):
        convert(tmp_path, max_bytes=0)
    with pytest.raises(ValueError, match="interval must be > 0"):
        Converter(tmp_path, interval=0)
    with pytest.raises(ValueError, match="table must be one of"):
        parts(tmp_path, "nope")


def test_the_converter_converts_while_the_producer_writes(tmp_path, monkeypatch):
    monkeypatch.setattr("analysis.columnar.DURING_RUN_MIN_BYTES", 1)
    path = shard_path(tmp_path / "run" / "system", "metrics", "m0")
    run = tmp_path / "run"
    converter = Converter(run, interval=0.05)
    with ShardWriter(path, "metrics", flush_interval=0.05) as w:
        converter.start()
        try:
            for i in range(5):
                w.append((i, "m", None, 1.0))
                deadline = time.monotonic() + 10
                while len(read(run)) < i + 1 and time.monotonic() < deadline:
                    time.sleep(0.02)
                assert len(read(run)) == i + 1
        finally:
            converter.stop()
    assert converter.error is None and converter.parts_written >= 5


def test_ingest_reads_the_parts_and_keeps_the_big_tables_as_views(tmp_path):
    run, _ = shard(tmp_path)
    req = shard_path(run / "client", "requests", "w0")
    with ShardWriter(req, "requests") as w:
        w.append((0, 0, "bt-0-0", "http", "eth_blockNumber", 1, 1, 2, 3, "ok", 200) + (None,) * 6)
    db = ingest(run)
    con = duckdb.connect(str(db), read_only=True)
    try:
        kinds = dict(
            con.execute(
                "SELECT table_name, table_type FROM information_schema.tables"
                " WHERE table_name IN ('requests', 'metrics')"
            ).fetchall()
        )
        assert kinds == {"requests": "VIEW", "metrics": "BASE TABLE"}
        assert con.execute("SELECT count(*) FROM requests").fetchone() == (1,)
        assert con.execute("SELECT count(*) FROM metrics").fetchone() == (3,)
    finally:
        con.close()
