"""The programs the benchmark measures: every ``examples/*.py``, ``targets/*.py`` and
``benchmarks/programs/*.py`` file with a buggy ``main`` and a correct ``fixed``."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GROUPS = {"example": ROOT / "examples", "target": ROOT / "targets", "benchmark": ROOT / "benchmarks" / "programs"}


@dataclass(frozen=True)
class Program:
    name: str
    group: str
    path: Path
    expected: str | None

    def target(self, variant: str) -> str:
        """``PATH::FUNC`` relative to the repository root."""
        return f"{self.path.relative_to(ROOT).as_posix()}::{variant}"


def _functions_and_expected(path: Path) -> tuple[set[str], str | None]:
    tree = ast.parse(path.read_text(), filename=str(path))
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    expected = None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "EXPECTED" for t in node.targets):
            try:
                expected = ast.literal_eval(node.value)
            except ValueError:
                expected = None
    return functions, expected


def imports_interleave(program: Program) -> bool:
    """True when the program imports interleave itself (fault hooks, ``interleave.sim``)."""
    tree = ast.parse(program.path.read_text(), filename=str(program.path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "interleave" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "interleave":
            return True
    return False


def discover() -> list[Program]:
    """Every program with both ``main`` and ``fixed``, in group then name order."""
    programs = []
    for group, folder in GROUPS.items():
        for path in sorted(folder.glob("*.py")):
            if path.name.startswith("_"):
                continue
            try:
                functions, expected = _functions_and_expected(path)
            except SyntaxError:
                continue  # a file being written right now; the next run will see it
            if {"main", "fixed"} <= functions:
                programs.append(Program(path.stem, group, path, expected))
    return programs
