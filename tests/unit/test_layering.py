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


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(node: ast.AST, module: str, is_package: bool, modules: set[str]) -> set[str]:
    """The modules of `modules` that `node` imports, wherever it does (a lazy import in
    a function is a dependency too), but under `if TYPE_CHECKING:` (types only). `from
    pkg import sub` depends on `pkg.sub`, and on `pkg` only for names that are not
    modules."""
    found: set[str] = set()
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            found |= {d for n in child.orelse for d in _imports(n, module, is_package, modules)}
            continue
        if isinstance(child, ast.Import):
            found |= {a.name for a in child.names}
        elif isinstance(child, ast.ImportFrom):
            if child.level:
                base = module.split(".")[: None if is_package else -1]
                base = base[: len(base) - (child.level - 1)]
                target = ".".join([*base, *([child.module] if child.module else [])])
            else:
                target = child.module or ""
            subs = {f"{target}.{a.name}" for a in child.names} & modules
            found |= subs
            if len(subs) < len(child.names):
                found.add(target)
        found |= _imports(child, module, is_package, modules)
    return found & modules


def import_graph() -> dict[str, set[str]]:
    """Module → the project's modules it imports (see `_imports`)."""
    paths = {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    modules = set(paths)
    return {
        name: _imports(ast.parse(p.read_text()), name, p.name == "__init__.py", modules) - {name}
        for name, p in paths.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while (w := stack.pop()) != v:
                component.append(w)
            component.append(v)
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_module_imports_one_that_imports_it_back():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_sees_a_cycle_through_a_lazy_import():
    code = {"a": "import b\n", "b": "def f():\n    from c import x\n", "c": "import a\n"}
    modules = set(code)
    graph = {m: _imports(ast.parse(src), m, False, modules) for m, src in code.items()}
    assert cycles(graph) == [["a", "b", "c"]]
    # Types only: no cycle.
    code["c"] = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import a\n"
    graph = {m: _imports(ast.parse(src), m, False, modules) for m, src in code.items()}
    assert cycles(graph) == []
