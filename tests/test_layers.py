"""The layers of the core hold: no import cycles between its parts, no plugin imported from the
core, no private name imported across modules, and `pc3d.ops` never importing `pc3d.structures`.

The graph is read from the source with `ast` (every import statement, including those inside
functions, except those under ``if TYPE_CHECKING:``), so a lazy import cannot hide a cycle.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "pc3d"
PLUGIN_PACKAGES = sorted(
    {path.parent.name for path in (ROOT / "plugins").glob("*/*/__init__.py")}
    | {path.parent.name for path in (ROOT / "examples").glob("*/*/__init__.py")}
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[tuple[ast.stmt, str, list[str]]]:
    """Yield (statement, imported module, imported names) for every runtime import."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                stack.extend(child.orelse)
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield child, alias.name, []
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                yield child, child.module, [alias.name for alias in child.names]
            stack.append(child)


def _core_modules() -> dict[str, ast.AST]:
    return {
        _module_name(path): ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for path in sorted(CORE.rglob("*.py"))
    }


def _part(module: str) -> str:
    """The layer a module belongs to: `pc3d.io.points` -> `pc3d.io`, `pc3d.errors` -> itself."""
    parts = module.split(".")
    return ".".join(parts[:2])


def _resolve(imported: str, names: list[str], modules: dict[str, ast.AST]) -> list[str]:
    """The core modules an import statement loads (`from pc3d.io import atomic` loads
    `pc3d.io.atomic`)."""
    targets = [imported] if imported in modules else []
    targets += [f"{imported}.{name}" for name in names if f"{imported}.{name}" in modules]
    return targets


def _part_graph(modules: dict[str, ast.AST]) -> dict[str, dict[str, str]]:
    graph: dict[str, dict[str, str]] = {}
    for module, tree in modules.items():
        for stmt, imported, names in _imports(tree):
            if not imported.startswith("pc3d"):
                continue
            for target in _resolve(imported, names, modules):
                src, dst = _part(module), _part(target)
                if src != dst:
                    graph.setdefault(src, {}).setdefault(dst, f"{module}:{stmt.lineno} imports {target}")
    return graph


def _find_cycle(graph: dict[str, dict[str, str]]) -> list[str] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in graph.get(node, {}):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def test_find_cycle_sees_a_cycle() -> None:
    graph = {"a": {"b": "a->b"}, "b": {"c": "b->c"}, "c": {"a": "c->a"}}
    assert _find_cycle(graph) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b": "x"}, "b": {}}) is None


def test_lazy_import_counts() -> None:
    tree = ast.parse("def f():\n    from pc3d.structures import Boxes3D\n")
    assert [imported for _, imported, _ in _imports(tree)] == ["pc3d.structures"]
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pc3d.vis\n")
    assert [imported for _, imported, _ in _imports(tree)] == ["typing"]


def test_core_parts_form_no_cycle() -> None:
    graph = _part_graph(_core_modules())
    cycle = _find_cycle(graph)
    if cycle:
        edges = [graph[a][b] for a, b in zip(cycle, cycle[1:])]
        pytest.fail("import cycle between parts of pc3d: " + " -> ".join(cycle) + "\n" + "\n".join(edges))


def test_ops_never_imports_structures() -> None:
    offending = [
        f"{module}:{stmt.lineno}"
        for module, tree in _core_modules().items()
        if module.startswith("pc3d.ops")
        for stmt, imported, _ in _imports(tree)
        if imported.startswith("pc3d.structures")
        or (imported == "pc3d" and any(a.name == "structures" for a in getattr(stmt, "names", [])))
    ]
    assert offending == []


def test_core_imports_no_plugin() -> None:
    assert PLUGIN_PACKAGES, "no plugin packages found under plugins/"
    offending = [
        f"{module}:{stmt.lineno} imports {imported}"
        for module, tree in _core_modules().items()
        for stmt, imported, _ in _imports(tree)
        if imported.split(".")[0] in PLUGIN_PACKAGES
    ]
    assert offending == []


def test_no_private_name_imported_across_modules() -> None:
    modules = _core_modules()
    offending = [
        f"{module}:{stmt.lineno} imports {name} from {imported}"
        for module, tree in modules.items()
        for stmt, imported, names in _imports(tree)
        if imported.startswith("pc3d") and imported != module
        for name in names
        if name.startswith("_") and not name.startswith("__") and f"{imported}.{name}" not in modules
    ]
    assert offending == []


def test_the_package_ships_its_type_marker() -> None:
    # setup.py declares py.typed as package data: type checkers then read pc3d's hints.
    assert (CORE / "py.typed").is_file()
    assert '"pc3d": ["py.typed"]' in (ROOT / "setup.py").read_text()  # package data, with the zoo


def test_spconv_is_imported_by_one_module() -> None:
    """`pc3d.ops.spconv_module` alone imports spconv (by statement or `importlib`)."""
    owner = "pc3d.ops.spconv_module"
    modules = _core_modules()
    offending = [
        f"{module}:{stmt.lineno} imports {imported}"
        for module, tree in modules.items()
        for stmt, imported, _ in _imports(tree)
        if imported.split(".")[0] == "spconv"
    ]
    # A module name in a string (what `importlib.import_module` takes).
    dynamic = {
        module
        for module, tree in modules.items()
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and re.fullmatch(r"spconv(\.\w+)+", node.value)
    }
    assert offending == [] and dynamic == {owner}
