"""A load worker's rows whose numbers do not fit their columns still reach analysis."""

from __future__ import annotations

import duckdb

from analysis.columnar import convert, parts
from analysis.database import ingest
from analysis.shards import SCHEMAS

HEADER = ",".join(SCHEMAS["requests"]) + "\n"
# Literal rows as a load worker wrote them before result_block was bounded: an
# eth_getBalance answer (1000 ETH in wei) landed on an eth_blockNumber call of a
# rotated batch; and a torn number in bytes_in.
FORGED = (
    "0,7,bt-0-7,http,batch,2,1000,1001,1002,invalid,200,,"
    "call 0 (eth_blockNumber): head 0x3635c9adc5dea00000 is ahead,80,120,"
    "1000000000000000000000,\n"
)
TORN = "0,8,bt-0-8,http,eth_blockNumber,1,2000,2001,2002,ok,200,,,60,12x,300,latest\n"
FINE = "0,9,bt-0-9,http,eth_blockNumber,1,3000,3001,3002,ok,200,,,60,45,301,latest\n"


def run_dir(tmp_path, *lines: str):
    run = tmp_path / "run"
    (run / "client").mkdir(parents=True)
    (run / "client" / "requests.w0.csv").write_text(HEADER + "".join(lines))
    return run


def rows(run) -> list[tuple]:
    files = [str(p) for p in parts(run, "requests")]
    con = duckdb.connect()
    try:
        return con.execute(
            f"SELECT seq, bytes_in, result_block FROM read_parquet({files!r}) ORDER BY seq"
        ).fetchall()
    finally:
        con.close()


def test_a_number_too_large_for_its_column_is_kept_as_null_with_the_rest_of_its_row(tmp_path):
    run = run_dir(tmp_path, FORGED, TORN, FINE)
    assert convert(run) == 1
    assert rows(run) == [(7, 120, None), (8, None, 300), (9, 45, 301)]


def test_a_run_with_a_forged_row_is_ingested_and_its_other_rows_keep_their_types(tmp_path):
    run = run_dir(tmp_path, FORGED, FINE)
    con = duckdb.connect(str(ingest(run)), read_only=True)
    try:
        got = con.execute(
            "SELECT seq, outcome, result_block, typeof(result_block) FROM requests ORDER BY seq"
        ).fetchall()
    finally:
        con.close()
    assert got == [(7, "invalid", None, "BIGINT"), (9, "ok", 301, "BIGINT")]
