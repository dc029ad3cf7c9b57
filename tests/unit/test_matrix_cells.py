"""The verdict matrix's claims (tests/e2e/matrix.py) name only what exists: every SLO a
cell must fail is one its built-in judges for that router's declared profile, every
planted defect is one its router has, every sut file loads, every finding is a cell."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from scenarios.builtin import get
from scenarios.loader import load_sut_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
import matrix

ROUTER_SOURCES = {
    "aio": matrix.ROUTERS_DIR / "aio_priority.py",
    "node": matrix.ROUTERS_DIR / "node_roundrobin.mjs",
}


def defects_of(router: str) -> set[str]:
    """The names in the router's DEFECTS table, read from its source."""
    source = ROUTER_SOURCES[router].read_text()
    table = source[source.index("DEFECTS = {") : source.index("}", source.index("DEFECTS = {"))]
    return set(re.findall(r'^\s+"?([a-z0-9_]+)"?:', table, re.M))


@pytest.mark.parametrize("cell", matrix.CELLS, ids=[c.id for c in matrix.CELLS])
def test_every_slo_a_cell_must_fail_is_judged_by_its_built_in(cell):
    _, expect = load_sut_file(matrix.SUT_FILES[cell.router])
    judged = {s.name for s in get(cell.builtin).scenario(expect=expect).slos}
    assert cell.caught_by <= judged, cell.caught_by - judged


@pytest.mark.parametrize("cell", matrix.DEFECTS, ids=[c.id for c in matrix.DEFECTS])
def test_every_planted_defect_is_one_its_router_has_and_must_fail(cell):
    assert cell.defect in defects_of(cell.router)
    assert cell.must_fail and cell.router in matrix.CI_ROUTERS


def test_the_defect_tables_are_read_whole():
    assert {"no_failover", "attempt_timeout_30s", "batch_wrong_ids"} <= defects_of("aio")
    assert {"no_failover", "eject_forever", "attempt_timeout_30s"} <= defects_of("node")


def test_every_finding_is_a_cell_that_runs_and_names_why():
    cells = {(c.router, c.builtin): c for c in matrix.CORRECT}
    for key, (slos, why) in matrix.FINDINGS.items():
        assert key in cells and key not in matrix.CANNOT_RUN
        assert cells[key].caught_by == frozenset(slos) and cells[key].finding == why


def test_ci_runs_every_cell_of_the_routers_written_for_the_matrix_but_their_findings():
    assert {c.router for c in matrix.CI_CELLS} == set(matrix.CI_ROUTERS)
    ours = [c for c in matrix.CELLS if c.router in matrix.CI_ROUTERS]
    assert [c for c in ours if not c.finding] == list(matrix.CI_CELLS)
    assert {c.id for c in ours if c.finding} == {
        "node-correct-rate_limited_provider", "node-correct-stale_head",
        "node-correct-lying_head",
    }  # fmt: skip
    # Each router written for it runs every built-in it can, correct.
    for router in matrix.CI_ROUTERS:
        ran = {c.builtin for c in matrix.CORRECT if c.router == router}
        cannot = {b for r, b in matrix.CANNOT_RUN if r == router}
        assert ran == set(matrix.BUILTINS) - cannot


def test_every_sut_file_loads_with_its_declared_profile():
    for router, path in matrix.SUT_FILES.items():
        sut, expect = load_sut_file(path)
        assert sut["kind"] == "managed", router
        assert expect, f"{router}'s sut file declares no profile"


def test_a_program_that_is_not_installed_is_named_with_its_package(monkeypatch):
    monkeypatch.setattr(matrix, "SEARCH_PATH", "/nonexistent")
    nginx_cells = [c for c in matrix.CELLS if c.router == "nginx"]
    assert matrix.missing_programs(nginx_cells) == [
        "nginx (apt-get install --no-install-recommends nginx-light)"
    ]
    assert matrix.missing_programs(matrix.CI_CELLS) == []
