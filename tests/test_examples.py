"""Every examples/*.py: the engine finds main()'s bug, of the kind the file declares,
and finds nothing wrong with fixed() within a fixed budget.

The example files are discovered, not listed, so a new example is tested as soon
as it is added.  The shape checks (docstring, main/fixed, EXPECTED, stdlib only)
do not need the engine.
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES_DIR = ROOT / "examples"
EXAMPLES = sorted(p for p in EXAMPLES_DIR.glob("*.py") if not p.name.startswith("_"))
KINDS = {"exception", "deadlock", "hang"}
ALLOWED_IMPORTS = {"threading", "queue", "time", "concurrent", "concurrent.futures"}

MAIN_BUDGET = dict(runs=20000, time_limit=20, seed=1)
# A twin is clean over 1,000 runs: over 100 times the runs each main() needs to fail at seed 1
# (measured: run 8 at most, lock_order_deadlock and lost_update). The budget is in runs; the time
# limit is only a backstop for a loaded machine (1,000 runs take about 1.5 s each twin unloaded).
FIXED_BUDGET = dict(runs=1000, time_limit=120, seed=1)
# A hang is reported once no thread has made progress for max_steps steps: at the default
# 100,000 each hanging run spins 100,000 steps (about 15 s a test), at 5,000 the same runs give
# the same hang (measured on busy_wait: found in run 4 at any bound from 1,000 to 100,000).
HANG_STEPS = 5000

params = pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)


def _module(path):
    return ast.parse(path.read_text(), filename=str(path))


def _expected(path):
    for node in _module(path).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "EXPECTED" for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{path.name} has no EXPECTED constant")


def _target(path, func):
    return f"{path.relative_to(ROOT).as_posix()}::{func}"


def _describe(report):
    f = report.failure
    token = getattr(f, "token", None) or getattr(f, "replay", None)
    return f"{f.kind}: {f.message} (token {token!r}, after {report.runs} runs)"


@pytest.fixture
def explore(monkeypatch):
    monkeypatch.chdir(ROOT)  # targets are given relative to the repository root
    from interleave import explore

    return explore


def test_enough_examples():
    assert len(EXAMPLES) >= 10, [p.name for p in EXAMPLES]


@params
def test_example_shape(path):
    tree = _module(path)
    doc = ast.get_docstring(tree)
    assert doc and 3 <= len(doc.strip().splitlines()) <= 8, "module docstring of 3-8 lines"
    funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    for name in ("main", "fixed"):
        assert name in funcs, f"no {name}()"
        args = funcs[name].args
        assert not (args.posonlyargs or args.args or args.kwonlyargs or args.vararg or args.kwarg)
    assert _expected(path) in KINDS
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module]
        else:
            continue
        assert set(names) <= ALLOWED_IMPORTS, f"imports {names}: stdlib threading/queue/time only"
    assert '__name__ == "__main__"' in path.read_text()


@params
def test_main_bug_is_found(path, explore):
    expected = _expected(path)
    budget = dict(MAIN_BUDGET, max_steps=HANG_STEPS) if expected == "hang" else MAIN_BUDGET
    report = explore(_target(path, "main"), **budget)
    assert report.failure is not None, (
        f"no failure found in {report.runs} runs (exhausted={report.exhausted}); "
        f"expected {expected}"
    )
    assert report.failure.kind == expected, f"expected {expected}, got {_describe(report)}"


@params
def test_fixed_twin_is_clean(path, explore):
    report = explore(_target(path, "fixed"), **FIXED_BUDGET)
    assert report.failure is None, f"fixed() failed: {_describe(report)}"
    assert report.runs == FIXED_BUDGET["runs"] or report.exhausted, (report.runs, report.exhausted)
