"""The same seed gives the same answer with any number of workers (interleave.campaign's slots).

Run ``i`` of a search is the same run whichever process makes it, and the campaign reports
the failure of the smallest key: so the failure's run number, its shrunk token and its
trace, and the counts, do not depend on ``workers``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from interleave import explore

# Two updates of three must be lost: a failure a few runs in, found by samplers and the
# enumeration alike, whose runs before it differ from split to split unless the split is fixed.
RARE_LOST_UPDATE = """
    import threading

    def main():
        box = [0]

        def work():
            n = box[0]
            box[0] = n + 1

        threads = [threading.Thread(target=work) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert box[0] != 1, "two updates lost"

    def fixed():
        lock = threading.Lock()
        box = [0]

        def work():
            with lock:
                box[0] += 1

        threads = [threading.Thread(target=work) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
"""


@pytest.fixture
def target(tmp_path):
    path = tmp_path / "target.py"
    path.write_text(textwrap.dedent(RARE_LOST_UPDATE))
    return str(path)


def _answer(report):
    failure = report.failure
    assert failure is not None
    return failure.run, failure.replay, failure.trace, report.runs, report.steps, report.distinct_schedules


ROOT = Path(__file__).resolve().parent.parent
#: A check-then-act whose first failures, found in different runs, shrink to different schedules.
CHECK_THEN_ACT = str(ROOT / "examples" / "check_then_act.py")


@pytest.mark.parametrize("program, strategy, seed", [
    (None, "surw", 1), (None, "pct", 1), (None, "dfs", 0), (CHECK_THEN_ACT, "portfolio", 0), (CHECK_THEN_ACT, "pct", 0),
])
def test_the_first_failure_does_not_depend_on_the_workers(target, program, strategy, seed):
    reports = [explore(program or target, strategy=strategy, seed=seed, runs=5000, workers=workers, shrink_time=10)
               for workers in (1, 2, 3)]
    assert [r.workers for r in reports] == [1, 2, 3]
    first = _answer(reports[0])
    assert [_answer(r) for r in reports[1:]] == [first, first]
    assert first[0] > 3  # runs of several slots came before it


def test_a_budget_of_runs_is_the_same_runs_with_any_workers(target):
    """No failure within the budget: the same runs (counts, steps, schedules) whatever the split."""
    reports = [explore(f"{target}::fixed", strategy="portfolio", runs=50, workers=workers) for workers in (1, 2, 3)]
    assert all(r.failure is None and r.runs == 50 for r in reports)
    assert len({(r.steps, r.distinct_schedules) for r in reports}) == 1


def test_a_time_limit_says_that_it_decided_what_was_run(target):
    cut = explore(f"{target}::fixed", strategy="random", time_limit=0.3, runs=None, workers=1)
    assert cut.time_limited and cut.failure is None  # the budget was not reached: the machine's speed decided
    counted = explore(f"{target}::fixed", strategy="random", runs=20, time_limit=60, workers=2)
    assert not counted.time_limited


# Failures dpor finds after its common search was dealt among the slots (session_lock's in run 67
# and final_request_processor's in run 104, both dealt after 32 common runs: measured), and a twin
# it exhausts in 138 schedules unbounded and 157 at bound 2, 100 and 125 of them after the deal.
@pytest.mark.parametrize("spec, bound", [("targets/session_lock.py::main", None),
                                         ("targets/final_request_processor.py::main", None)])
def test_dpor_finds_the_same_first_failure_with_any_workers(spec, bound, monkeypatch):
    monkeypatch.chdir(ROOT)
    reports = [explore(spec, strategy="dpor", max_preemptions=bound, runs=3000, workers=workers, shrink_time=10)
               for workers in (1, 2, 3)]
    first = _answer(reports[0])
    assert [_answer(r) for r in reports[1:]] == [first, first]
    assert first[0] > 32  # after the deal


@pytest.mark.parametrize("bound", [None, 2])
def test_dpor_exhausts_a_twin_alike_with_any_workers(bound, monkeypatch):
    monkeypatch.chdir(ROOT)
    reports = [explore("examples/pool_race.py::fixed", strategy="dpor", max_preemptions=bound, runs=3000,
                       workers=workers) for workers in (1, 2, 3)]
    assert all(r.failure is None and r.exhausted and r.partial_order and r.bound == bound for r in reports)
    assert len({(r.runs, r.steps, r.distinct_schedules) for r in reports}) == 1
