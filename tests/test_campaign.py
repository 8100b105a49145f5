"""The campaign (interleave.campaign): one loop whether in this process or among workers, and why it stopped."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from interleave import explore
from interleave.report import Outcome

ONE_THREAD = """
    box = [0]

    def main():
        box[0] += 1

    def broken():
        box[0] += 1
        assert box[0] == 0, "one thread, one schedule, and it fails"
"""

BRANCHES = """
    import threading

    def main():
        box = [0]

        def add(k):
            n = box[0]
            box[0] = n + k

        threads = [threading.Thread(target=add, args=(k,)) for k in (1, 10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if box[0] == 11:
            note = "both"
        else:
            note = "one lost"  # only some schedules come here
        return note
"""


@pytest.fixture
def program(tmp_path: Path):
    def write(source: str, name: str = "target") -> str:
        path = tmp_path / f"{name}.py"
        path.write_text(textwrap.dedent(source))
        return str(path)

    return write


def _line_of(path: str, text: str) -> int:
    return next(i for i, line in enumerate(Path(path).read_text().splitlines(), 1) if text in line)


@pytest.mark.parametrize("strategy", ["portfolio", "dfs"])
def test_more_workers_than_schedules(program, strategy):
    """Seven of eight enumeration shares are dealt nothing: each ends, and counts are those of one process."""
    target = program(ONE_THREAD)
    one = explore(target, strategy=strategy, runs=1000)
    many = explore(target, strategy=strategy, runs=1000, workers=8)
    assert not many.worker_deaths and not many.lost_workers and many.workers == 8
    # The portfolio's enumerating slots hear that the 0-preemption tree dealt them nothing at
    # their first turn, and the sampling slots' runs of smaller keys count (as in one process).
    assert (many.distinct_schedules, many.complete, many.outcome) == (1, True, Outcome.EXHAUSTED)
    assert many.runs == (1 if strategy == "dfs" else 10)
    assert (many.runs, many.steps, many.bound, many.complete) == (one.runs, one.steps, one.bound, one.complete)
    # Races are counted over the runs the report counts, not those a share sampled while the others finished.
    assert many.races["runs_checked"] <= many.runs
    failing = explore(f"{target}::broken", strategy=strategy, runs=1000, workers=8, shrink_time=5)
    assert (failing.outcome, failing.runs, failing.failure.run) == (Outcome.FAILED, 1, 1)


def test_coverage_is_the_same_in_one_process_and_among_workers(program):
    target = program(BRANCHES)
    one = explore(target, strategy="dfs", runs=10_000, coverage=True)
    two = explore(target, strategy="dfs", runs=10_000, coverage=True, workers=2)
    every = explore(target, strategy="dfs", runs=10_000, coverage=True, keep_going=True)
    lines = one.coverage[target]
    assert _line_of(target, '"one lost"') in lines and _line_of(target, '"both"') in lines
    assert two.coverage == one.coverage == every.coverage
    assert two.runs == one.runs == every.runs and one.exhausted


def test_cli_coverage_with_all_and_with_workers(program):
    target = program(BRANCHES)
    for flags in (["--all", "--workers", "1"], ["--workers", "2"]):
        done = subprocess.run([sys.executable, "-m", "interleave", "explore", target, "--coverage", "--strategy",
                               "dfs", *flags], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, (flags, done.stderr)
        assert "Line coverage over all explored runs:" in done.stdout and "100%" in done.stdout, flags


def test_the_outcome_says_why_the_campaign_stopped(program):
    target = program(BRANCHES)
    assert explore(target, strategy="dfs", runs=10_000).outcome is Outcome.EXHAUSTED
    assert explore(target, strategy="random", runs=20).outcome is Outcome.BUDGET
    assert explore(target, strategy="random", time_limit=0).outcome is Outcome.NO_RUN
    broken = program(ONE_THREAD, "broken") + "::broken"
    assert explore(broken, runs=10, shrink_time=1).outcome is Outcome.FAILED
    # The outcome is the report's, not a field of its JSON (which stays as the CLI has always written it).
    assert "outcome" not in explore(target, runs=5).to_json()
    assert [o for o in Outcome if o.verdict] == [Outcome.EXHAUSTED, Outcome.BUDGET]


def test_a_share_searched_in_this_process_is_not_the_whole_search(program):
    target = program(BRANCHES)
    whole = explore(target, strategy="dfs", runs=10_000)
    shares = [explore(target, strategy="dfs", runs=10_000, partition=(i, 2)) for i in range(2)]
    assert sum(s.runs for s in shares) == whole.runs  # the enumeration's subtrees dealt out, none run twice
    assert not any(s.exhausted for s in shares) and whole.exhausted  # a share cannot speak for the program
    with pytest.raises(Exception, match="share 2 of 2 does not exist"):
        explore(target, partition=(2, 2))


def test_strategies_tell_the_campaign_what_they_searched(program):
    """The typed summary the report is made from: the enumeration's figures, PCT's, the members' names."""
    from interleave import strategies
    from interleave.campaign import InProcess, Job, run_config, search
    from interleave.program import load

    prog = load(program(BRANCHES))
    assert strategies.make("portfolio").member_names() == ("enumeration", "pct d=2", "pct d=3", "surw")
    assert strategies.make("random").member_names() == ("random walk",)

    def slot(strategy: str, runs: int | None):
        job = Job(program=prog, spec=None, fingerprint=prog.fingerprint, config=run_config(prog, None, None, None,
                  "access"), strategy=strategy, seed=0, depth=3, max_preemptions=2, own=(0,), slots=1, runs=runs,
                  time_limit=None, keep_going=True)
        return search(job, InProcess(slots=1))[0]

    dfs = slot("dfs", None)
    figures = dfs.enumeration
    assert dfs.exhausted and (figures.exhausted, figures.completed_bound, figures.max_bound) == (True, 2, 2)
    assert not figures.complete  # some schedule needs more than 2 preemptions
    assert dfs.enumeration.schedules == len(dfs.steps) and dfs.pct == ()
    mixed = slot("portfolio", 8)
    assert [p.depth for p in mixed.pct] == [2, 3] and mixed.enumeration.schedules == 2  # members take turns
    assert all(p.per_run_probability == 1 / (p.threads * p.steps_k ** (p.depth - 1)) for p in mixed.pct)
    assert slot("random", 3).enumeration is None
