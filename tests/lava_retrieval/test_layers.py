"""The package reads as the pipeline: every subpackage imports only the layers below it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import lava_retrieval

PACKAGE = Path(lava_retrieval.__file__).parent

# What each subpackage may import (besides itself), as its docstring says.
ALLOWED = {
    "common": set(),
    "data": {"common"},
    "ann": {"common", "data"},
    "snn": {"common"},
    "loihi": {"common", "snn"},
    "conversion": {"common", "data", "ann", "snn", "loihi", "exports"},
    "engines": {"common", "snn"},
    "backends": {"common", "snn", "loihi"},
    "exports": {"common", "snn", "loihi"},
    "lava_graph": {"common", "snn", "loihi", "backends", "exports", "engines"},
    "embedding": {"common", "snn", "loihi", "backends", "engines", "lava_graph"},
    "search": {"common", "data", "snn", "backends", "engines", "lava_graph", "embedding"},
}
BELOW_EVALUATION = set(ALLOWED) | {"ann", "conversion"}
ALLOWED["evaluation"] = BELOW_EVALUATION
ALLOWED["apps"] = BELOW_EVALUATION | {"evaluation"}
ALLOWED["reproduce"] = ALLOWED["apps"] | {"apps"}
ALLOWED["cli"] = ALLOWED["reproduce"] | {"reproduce"}
TOP_LEVEL = {"__init__.py", "__main__.py"}


def _imported_subpackages(path: Path) -> set[str]:
    """The ``lava_retrieval`` subpackages a module imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "lava_retrieval" and len(parts) > 1 and parts[1] in ALLOWED:
                found.add(parts[1])
    return found


def test_every_module_is_in_a_subpackage_with_a_docstring_naming_its_imports():
    loose = sorted(p.name for p in PACKAGE.glob("*.py") if p.name not in TOP_LEVEL)
    assert loose == []
    for name in ALLOWED:
        doc = ast.get_docstring(ast.parse((PACKAGE / name / "__init__.py").read_text()))
        assert doc and "May import:" in doc, name
    assert {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()} == set(ALLOWED)


@pytest.mark.parametrize("subpackage", sorted(ALLOWED))
def test_no_layer_imports_a_higher_one(subpackage):
    wrong = {
        str(path.relative_to(PACKAGE)): sorted(bad)
        for path in sorted((PACKAGE / subpackage).rglob("*.py"))
        if (bad := _imported_subpackages(path) - ALLOWED[subpackage] - {subpackage})
    }
    assert wrong == {}


PROCS = PACKAGE.parent / "procs"
#: What the Lava processes of ``procs/`` may import: nothing above the Lava graph's floor (the
#: graph builds them; the kNN process gets its searchable corpus passed in).
PROCS_ALLOWED = {"common", "snn", "loihi", "engines"}


def test_procs_import_nothing_above_the_graphs_floor():
    wrong = {
        str(path.relative_to(PROCS)): sorted(bad)
        for path in sorted(PROCS.rglob("*.py"))
        if (bad := _imported_subpackages(path) - PROCS_ALLOWED)
    }
    assert wrong == {}


def _runtime_nodes(tree: ast.AST):
    """Every node of ``tree`` but those under ``if TYPE_CHECKING:`` (imports for annotations
    alone, which never run)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))


def _module_imports() -> dict[str, set[str]]:
    """Every module of ``lava_retrieval`` and ``procs`` and the modules of both it imports,
    anywhere in it (an import inside a function is an edge too; one for annotations alone,
    under ``if TYPE_CHECKING:``, is not)."""
    modules = {}
    for root in (PACKAGE, PROCS):
        for path in root.rglob("*.py"):
            parts = path.relative_to(root.parent).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    edges = {}
    for name, path in modules.items():
        found = set()
        for node in _runtime_nodes(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            found.update(t for t in targets if t in modules and t != name)
        edges[name] = found
    return edges


def test_no_import_cycle_between_modules():
    """No module imports, directly or through others, a module that imports it."""
    edges = _module_imports()
    assert len(edges) > 100  # the walk saw the package
    cycles = []
    for start in sorted(edges):
        seen, todo = set(), list(edges[start])
        while todo:
            name = todo.pop()
            if name == start:
                cycles.append(start)
                break
            if name not in seen:
                seen.add(name)
                todo.extend(edges[name])
    assert cycles == []


#: The one function allowed past 100 lines: numba compiles it as one loop nest (its comment
#: says why).
LONG_FUNCTIONS = {"lava_retrieval/engines/events.py:_kernel"}


def test_no_module_over_600_lines_and_no_function_over_100():
    root = PACKAGE.parent
    files = [*PACKAGE.rglob("*.py"), *PROCS.rglob("*.py"), *(root / "scripts").glob("*.py")]
    assert len(files) > 100
    long_modules, long_functions = [], []
    for path in files:
        text = path.read_text()
        name = str(path.relative_to(root))
        if text.count("\n") > 600:
            long_modules.append(name)
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if node.end_lineno - node.lineno + 1 > 100:
                    long_functions.append(f"{name}:{node.name}")
    assert long_modules == []
    assert set(long_functions) == LONG_FUNCTIONS
