"""Loads the named queries of `queries.sql`."""

from __future__ import annotations

from functools import cache
from importlib import resources

__all__ = ["query", "query_names"]


@cache
def _queries() -> dict[str, str]:
    text = resources.files(__package__).joinpath("queries.sql").read_text()
    named: dict[str, str] = {}
    name = None
    for line in text.splitlines():
        if line.startswith("-- name:"):
            name = line.removeprefix("-- name:").strip()
            named[name] = ""
        elif name is not None and not line.startswith("--"):
            named[name] += line + "\n"
    return {k: v.strip() for k, v in named.items()}


def query(name: str) -> str:
    """The SQL text of the named query."""
    try:
        return _queries()[name]
    except KeyError:
        raise ValueError(f"no query named {name!r}; known: {sorted(_queries())}") from None


def query_names() -> list[str]:
    """Every named query, in file order."""
    return list(_queries())
