"""`battle sql RUN` without a query: a small interactive SQL shell over the run
database. Statements end with `;`; dot-commands list what there is to ask."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TextIO

import duckdb

from .queries import query, query_names

__all__ = ["EXAMPLES", "run_query", "run_shell"]

# The questions router teams ask, as queries over the run database (docs/ARCHITECTURE.md).
EXAMPLES = {
    "Did the router fail over, and where to?": (
        "SELECT first_provider, served_by, count(*) FROM ("
        "SELECT a.tag, arg_min(provider, attempt) AS first_provider, served_by FROM attempts a"
        " JOIN request_attempts r USING (tag) WHERE r.failed_over GROUP BY a.tag, served_by)"
        " GROUP BY ALL ORDER BY 3 DESC;"
    ),
    "How long did it keep sending to a dead provider?": "SELECT * FROM breaker;",
    "Which seconds did clients see failures in?": (
        "SELECT second, requests, success_rate FROM success_by_second"
        " WHERE success_rate < 1 ORDER BY second;"
    ),
    "Latency per method and phase": (
        "SELECT p.phase, r.method, count(*) AS n, quantile_cont(r.latency_ms, 0.95) AS p95_ms"
        " FROM requests_x r JOIN phases p ON r.t_intended >= p.t_from AND r.t_intended < p.t_to"
        " GROUP BY ALL ORDER BY ALL;"
    ),
    "Traffic share per provider": (
        "SELECT provider, count(*), count(*) / sum(count(*)) OVER () AS share"
        " FROM upstream GROUP BY ALL ORDER BY ALL;"
    ),
    "Errors the client saw, by kind": (
        "SELECT outcome, http_status, rpc_code, count(*) FROM requests WHERE outcome <> 'ok'"
        " GROUP BY ALL ORDER BY 4 DESC;"
    ),
}

HELP = """\
Statements end with ';'. Commands:
  .tables            tables and views of the run database
  .schema NAME       the columns of a table or view
  .queries           the named queries (metric definitions) of analysis/queries.sql
  .query NAME        run a named query
  .examples          example questions, with their SQL
  .help              this text
  .quit              leave (or end of input)"""


# The statements whose result is rows to show. For the others (CREATE, INSERT, SET,
# COPY, ...) DuckDB 1.x returns no relation and 2.x one with a `Count` or `Success`
# column: showing nothing for them keeps the output the same on both.
_ROW_STATEMENTS = frozenset({"SELECT", "EXPLAIN", "PRAGMA", "CALL", "EXECUTE"})


def run_query(con: duckdb.DuckDBPyConnection, sql: str, max_rows: int = 100) -> str | None:
    """Runs `sql` (one statement, or several: the last one's rows are shown) and
    returns its rows as a text table of at most `max_rows` rows (all if `max_rows` is
    0 or less); None for a statement without rows.

    The table is drawn here rather than by DuckDB (`relation.show()`), whose drawing
    and whose rules for a connection's open results changed between 1.x and 2.x: the
    same query prints the same text on either.

    Raises:
        duckdb.Error: the query does not parse or bind, or fails while it runs.
    """
    relation = con.sql(sql)
    if relation is None:
        return None
    if duckdb.extract_statements(sql)[-1].type.name not in _ROW_STATEMENTS:
        return None
    return _render(relation, max_rows)


def _show(con: duckdb.DuckDBPyConnection, sql: str, out: TextIO, max_rows: int) -> None:
    try:
        text = run_query(con, sql, max_rows)
    except duckdb.Error as exc:
        # Binding fails in con.sql, a cast or a division only once rows are read: both
        # are the user's query going wrong, not the shell.
        out.write(f"error: {exc}\n")
        return
    if text is not None:
        out.write(text + "\n")


def _render(relation: duckdb.DuckDBPyRelation, max_rows: int) -> str:
    columns = relation.columns
    limited = relation if max_rows <= 0 else relation.limit(max_rows + 1)
    rows = limited.fetchall()
    shown = rows if max_rows <= 0 else rows[:max_rows]
    cells = [[str(c) for c in columns]] + [
        ["NULL" if v is None else str(v) for v in row] for row in shown
    ]
    widths = [
        max(len(line) for r in cells for line in r[i].split("\n")) for i in range(len(columns))
    ]
    lines = [line for r in cells for line in _lines(r, widths)]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if len(rows) > len(shown):
        lines.append(f"(first {max_rows} rows)")
    else:
        lines.append(f"({len(shown)} row{'' if len(shown) == 1 else 's'})")
    return "\n".join(lines)


def _lines(row: list[str], widths: list[int]) -> list[str]:
    """One row as text lines: a cell with line breaks (an EXPLAIN plan) spans several,
    each in its own column."""
    split = [cell.split("\n") for cell in row]
    height = max(len(c) for c in split)
    return [
        "  ".join(
            (c[i] if i < len(c) else "").ljust(w) for c, w in zip(split, widths, strict=True)
        ).rstrip()
        for i in range(height)
    ]


def _command(con: duckdb.DuckDBPyConnection, line: str, out: TextIO, max_rows: int) -> bool:
    """Runs one dot-command; returns False to leave."""
    word, _, arg = line.partition(" ")
    arg = arg.strip()
    if word in (".quit", ".exit", ".q"):
        return False
    if word == ".tables":
        _show(
            con,
            "SELECT table_name AS name, table_type AS kind FROM information_schema.tables"
            " ORDER BY ALL",
            out,
            max_rows,
        )
    elif word == ".schema" and arg:
        _show(con, f"DESCRIBE {arg}", out, 1000)
    elif word == ".queries":
        out.write("\n".join(query_names()) + "\n")
    elif word == ".query" and arg:
        try:
            _show(con, query(arg), out, max_rows)
        except ValueError as exc:
            out.write(f"error: {exc}\n")
    elif word == ".examples":
        for question, sql in EXAMPLES.items():
            out.write(f"-- {question}\n{sql}\n\n")
    else:
        out.write(HELP + "\n")
    return True


def run_shell(
    con: duckdb.DuckDBPyConnection,
    lines: Iterable[str] | None = None,
    out: TextIO | None = None,
    *,
    max_rows: int = 100,
    prompt: bool = True,
) -> None:
    """Reads statements from `lines` (stdin by default) until `.quit` or the end, and
    writes their results to `out` (stdout by default)."""
    out = sys.stdout if out is None else out
    if lines is None:
        lines = _stdin_lines(prompt)
    if prompt:
        out.write("battle sql: statements end with ';', .help for commands\n")
    buffer: list[str] = []
    for raw in lines:
        line = raw.rstrip("\n")
        if not buffer and line.strip().startswith("."):
            if not _command(con, line.strip(), out, max_rows):
                return
            continue
        buffer.append(line)
        if line.rstrip().endswith(";"):
            _show(con, "\n".join(buffer), out, max_rows)
            buffer = []
    if any(s.strip() for s in buffer):
        _show(con, "\n".join(buffer), out, max_rows)


def _stdin_lines(prompt: bool):
    interactive = prompt and sys.stdin.isatty()
    if interactive:
        import readline  # noqa: F401  (line editing and history for input())
    while True:
        try:
            yield input("sql> ") if interactive else sys.stdin.readline() or _eof()
        except EOFError:
            return


def _eof() -> str:
    raise EOFError
