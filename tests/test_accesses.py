"""Shared accesses are the steps: one-line races are found, locals are free, and every
step says what it touched in the program's terms (see interleave/instrument.py)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from interleave import explore
from interleave.instrument import rewrite
from interleave.program import load
from interleave.runner import RunConfig, Runner
from interleave.strategies import RandomWalk, Replay
from interleave.story import TraceRecorder

RACES = str(Path(__file__).with_name("one_line_races.py"))

#: Each one-line race, and what its trace must name: the read and the write of the field.
SHAPES = {
    "attribute": ("reads Stats.hits -> 0", "writes Stats.hits = 1"),
    "subscript": ("reads counts['a'] (get) -> 0", "writes counts['a'] = 1"),
    "global_pool": ("reads the global served -> 0", "writes the global served = 1"),
    "cell": ("reads the cell total -> 0", "writes the cell total = 1"),
    "check_then_act": ("reads c['x'] -> False", "writes c['x'] (setdefault)"),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_a_one_line_race_is_found_with_default_options_and_shrunk_to_one_preemption(shape):
    for seed in range(3):  # found within the budget whatever the seed, not in one stream only
        report = explore(f"{RACES}::{shape}", runs=2000, seed=seed)
        failure = report.failure
        assert failure is not None and failure.kind == "exception", (shape, seed)
        assert failure.switches == 1 and failure.preemptions == 1
        read, write = SHAPES[shape]
        assert read in failure.trace and write in failure.trace
        # The preemption that matters sits between the read and the write.
        preempt = next(line for line in failure.trace.splitlines() if ">> preemption" in line)
        assert f"is paused after it {read}" in preempt
        lines = failure.trace.splitlines()
        assert lines.index(preempt) < next(i for i, line in enumerate(lines) if write in line)
    again = explore(f"{RACES}::{shape}", runs=2000, seed=seed)  # the same seed: the same search
    assert (again.failure.run, again.failure.replay, again.runs) == (failure.run, failure.replay, report.runs)


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_the_locked_twin_is_clean_and_exhausts_bound_two(shape):
    report = explore(f"{RACES}::{shape}_locked", strategy="dfs", runs=20_000, seed=0)
    assert report.failure is None and report.exhausted and report.bound == 2
    assert report.distinct_schedules > 1  # the search really interleaved the threads


def test_line_steps_miss_what_access_steps_find():
    by_line = explore(f"{RACES}::attribute", strategy="dfs", runs=5000, granularity="line")
    assert by_line.failure is None and by_line.exhausted
    assert explore(f"{RACES}::attribute", strategy="dfs", runs=5000).failure is not None


def test_container_methods_and_len_are_switch_points():
    failure = explore(f"{RACES}::deque_check_then_pop", runs=2000).failure
    assert failure is not None and "IndexError" in failure.message
    assert "is paused after it reads q (len) -> 1" in failure.trace
    assert "q.popleft()" in failure.trace


def test_a_frames_own_locals_are_not_steps():
    program = load(f"{RACES}::only_locals")
    by_access = Runner(program, RunConfig()).run(Replay([]))
    by_line = Runner(program, RunConfig(granularity="line")).run(Replay([]))
    assert by_line.steps > 8000  # two threads of 2,000 turns of a two-line loop
    assert by_access.steps < by_line.steps / 10  # only loop ticks and the threads' own start and end


#: Loop bodies, and whether the loop keeps its tick: a loop that stores to shared memory on
#: every turn makes a step on every turn, one that might not needs the tick to be seen running.
LOOP_BODIES = {
    "a store first": ("box.n = 1", False),
    "a store after locals": ("k = 1\nbox[k] = k", False),
    "an augmented store": ("box.n += 1", False),
    "only locals": ("k = 1", True),
    "only reads (of a tuple, say: no step)": ("k = box[0]", True),
    "a store under an if": ("if k:\n    box.n = 1", True),
    "a continue before the store": ("if k:\n    continue\nbox.n = 1", True),
    "a continue in an inner loop's else clause": ("for j in k:\n    pass\nelse:\n    continue\nbox.n = 1", True),
    "a continue of an inner loop only": ("for j in k:\n    continue\nbox.n = 1", False),
}


@pytest.mark.parametrize("body", sorted(LOOP_BODIES))
def test_a_loop_that_stores_to_shared_memory_every_turn_needs_no_tick(body):
    source, ticks = LOOP_BODIES[body]
    for loop in ("for _ in range(3):", "while box:"):
        text = f"def f(box, k):\n    {loop}\n" + textwrap.indent(source, " " * 8) + "\n"
        function = rewrite(ast.parse(text), "/x/loops.py").body[0]
        first = function.body[0].body[0]
        is_tick = isinstance(first, ast.Expr) and ast.unparse(first).endswith(".tick()")
        assert is_tick is ticks, (loop, ast.unparse(function))


def test_a_spin_that_only_stores_is_still_seen_as_a_hang():
    def spin():
        class Box:
            n = 0

        box = Box()

        def worker():
            while True:
                box.n = 1

        t = threading.Thread(target=worker)
        t.start()
        t.join()

    failure = explore(spin, runs=1, max_steps=2000, shrink_time=0).failure
    assert failure is not None and failure.kind == "hang", failure
    assert "no thread made progress in 2000 steps" in failure.message and "(worker) loops at" in failure.message


def test_object_identities_are_the_same_in_every_run_of_the_same_schedule():
    program = load(f"{RACES}::attribute")
    runner = Runner(program, RunConfig())
    walk = RandomWalk(3)
    walk.begin_run(0)
    first = runner.run(walk, track_accesses=True)
    logs = [runner.run(Replay(first.deviations), (TraceRecorder(),)) for _ in range(2)]
    assert logs[0].accesses and len({tuple(a[:4] for a in log.accesses) for log in logs}) == 1
    # Numbered in the order the run touches them, not by memory address.
    assert {entry[1] for entry in logs[0].accesses} <= set(range(len(logs[0].accesses)))


def test_the_json_report_and_the_timeline_carry_the_access_records(tmp_path):
    result = subprocess.run([sys.executable, "-m", "interleave", "explore", f"{RACES}::attribute", "--workers", "1",
                             "--json", "report.json", "--html", "run.html"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    records = json.loads((tmp_path / "report.json").read_text())["failure"]["accesses"]
    texts = [text for record in records for text in record["accesses"]]
    assert "reads Stats.hits -> 0" in texts and "writes Stats.hits = 1" in texts
    assert all(record["where"].endswith(tuple(f":{n}" for n in range(1, 200))) for record in records)
    page = (tmp_path / "run.html").read_text()
    assert "writes Stats.hits = 1" in page


INSTALLED = """
class Tally:
    def __init__(self):
        self.count = 0

    def bump(self):
        self.count += 1
"""

USES_INSTALLED = """
import os
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "site-packages"))
import tallylib


def main():
    tally = tallylib.Tally()
    threads = [threading.Thread(target=tally.bump) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert tally.count == 2, tally.count
"""


@pytest.fixture
def installed(tmp_path):
    package = tmp_path / "site-packages" / "tallylib"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent(INSTALLED))
    (tmp_path / "uses.py").write_text(textwrap.dedent(USES_INSTALLED))
    return tmp_path


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "interleave", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def test_installed_code_runs_without_switch_points_and_the_summary_says_so(installed):
    result = _cli("explore", "uses.py", "--strategy", "dfs", "--workers", "1", "--json", "r.json", cwd=installed)
    assert result.returncode == 0, result.stderr
    assert "tallylib (3 calls) ran without switch points; --include tallylib explores inside it" in result.stdout
    report = json.loads((installed / "r.json").read_text())
    assert report["uninstrumented"] == {"tallylib": 3} and report["granularity"] == "access"
    assert "switch points at every shared access" in result.stdout


def test_include_gives_installed_code_switch_points(installed):
    result = _cli("explore", "uses.py", "--include", "tallylib", "--workers", "1", cwd=installed)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "writes Tally.count = 1" in result.stdout
    token = result.stdout.split("Replay it:\n", 1)[1].split()[-1]
    replayed = _cli("replay", "uses.py", token, cwd=installed)  # the token carries --include
    assert replayed.returncode == 1, replayed.stdout + replayed.stderr


def test_code_without_a_source_file_is_never_called_exhausted():
    namespace: dict = {}
    exec(compile(textwrap.dedent("""
        import threading
        def program():
            box = [0]
            def bump():
                box[0] += 1
            threads = [threading.Thread(target=bump) for _ in range(2)]
            for t in threads: t.start()
            for t in threads: t.join()
            assert box[0] == 2
    """), "<stdin>", "exec"), namespace)
    report = explore(namespace["program"], strategy="dfs", runs=100)
    assert report.failure is None and not report.user_code_ran
    assert not report.exhausted and not report.complete
