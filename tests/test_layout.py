"""The house drawn from the code's own imports: no module of interleave imports itself back.

Every import counts, a function's as much as a module's (it runs the first time the function
does), except those under ``if TYPE_CHECKING:``, which never run. Importing ``a.b.c`` runs
``a.b`` too, so a module's package is among what it imports (the top package, whose
``__init__`` only gathers the API, aside).
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import interleave

PACKAGE = Path(interleave.__file__).parent


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """What the module's code imports (absolute names), wherever the import statement is."""
    found: set[str] = set()
    here = module.split(".") if is_package else module.split(".")[:-1]

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = here[:len(here) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)  # kept if it is a module
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the modules of the package under ``root`` it imports (and their packages)."""
    files = {_module_name(root, p): p for p in sorted(root.rglob("*.py"))}
    top = root.name
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        imported = _imports(ast.parse(path.read_text()), name, path.name == "__init__.py")
        edges = set()
        for target in imported:
            if target not in files:
                continue
            parts = target.split(".")
            edges.update(".".join(parts[:i]) for i in range(2, len(parts) + 1))  # the packages on the way
        # The packages holding this module are imported before it runs: no edge back to them.
        here = name.split(".")
        edges -= {".".join(here[:i]) for i in range(1, len(here) + 1)}
        edges.discard(top)
        graph[name] = {e for e in edges if e in files}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return groups


def test_no_module_of_interleave_imports_itself_back():
    assert cycles(import_graph(PACKAGE)) == []


def test_the_api_sits_above_the_campaign_and_the_workers():
    graph = import_graph(PACKAGE)
    assert "interleave.campaign" in graph["interleave.explore"]
    assert "interleave.workers" in graph["interleave.explore"]
    below = {"interleave.campaign", "interleave.workers", "interleave.describe", "interleave.report"}
    for name in below:
        assert "interleave.explore" not in graph[name], name


def test_a_cycle_through_a_function_level_import_is_found(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from .a import f\n")
    (package / "a.py").write_text("from .sub.b import g\ndef f():\n    return g()\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "b.py").write_text(textwrap.dedent("""
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            from .. import c  # never runs: no edge
        def g():
            from ..a import f  # runs when g does: an edge
            return f
        """))
    (package / "c.py").write_text("from .sub import b\n")
    graph = import_graph(package)
    assert graph["pkg.sub.b"] == {"pkg.a"}
    assert graph["pkg.c"] == {"pkg.sub", "pkg.sub.b"}
    assert cycles(graph) == [["pkg.a", "pkg.sub.b"]]
