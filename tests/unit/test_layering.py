"""The design's one-way dependency rule, pinned on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCERS = ("loadgen", "chaosproxy", "providers")
PACKAGES = (*PRODUCERS, "analysis", "scenarios", "examples")


def imported_top_modules(package: str) -> dict[str, set[str]]:
    """Maps each module path of `package` to the dotted names it imports absolutely."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize("producer", PRODUCERS)
def test_a_producer_imports_no_other_package_but_the_shard_contract(producer):
    for module, names in imported_top_modules(producer).items():
        for name in names:
            top = name.split(".")[0]
            if top in PACKAGES and top != producer:
                assert name == "analysis.shards", f"{module} imports {name}"


def test_analysis_imports_no_producer_and_no_scenario():
    for module, names in imported_top_modules("analysis").items():
        tops = {n.split(".")[0] for n in names}
        assert not tops & {*PRODUCERS, "scenarios", "examples"}, module


def test_the_shard_contract_needs_only_the_standard_library():
    names = imported_top_modules("analysis")["analysis/shards.py"]
    assert {n.split(".")[0] for n in names} <= {
        "__future__",
        "csv",
        "io",
        "os",
        "threading",
        "collections",
        "pathlib",
    }
