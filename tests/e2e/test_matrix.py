"""The verdict matrix, each cell of the routers written for it once but their findings
(tests/e2e/matrix.py; `make matrix` adds those, nginx and HAProxy): every correct
router Battle did not write passes every built-in it can run; every defect planted in
them fails the built-in that names it, on the SLO that names it, in a valid run, with
witnesses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from battle_cli import slo
from matrix import CI_CELLS, run_cell


@pytest.mark.parametrize("cell", CI_CELLS, ids=[c.id for c in CI_CELLS])
def test_the_matrix_cell_holds_its_claim(cell, tmp_path):
    out = run_cell(cell, tmp_path)
    assert not out.invalid_because, f"{cell.id}: the run came out invalid: {out.summary()}"
    if not cell.must_fail:
        assert out.verdict == "passed", f"false alarm on {cell.id}: {out.summary()}"
        return
    assert out.verdict == "failed", f"{cell.id} missed: {out.summary()}"
    assert cell.caught_by <= out.failing, f"{cell.id} caught by other SLOs: {out.summary()}"
    report = json.loads((Path(out.run_dir) / "report.json").read_text())
    for name in cell.caught_by:
        assert slo(report, name)["witnesses"], f"{name} failed without a witness"
