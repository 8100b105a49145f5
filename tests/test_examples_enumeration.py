"""The enumeration's schedule counts, derived by hand and checked exactly.

The program: the main thread starts a worker, makes ``a - 1`` appends to a shared list and
joins it; the worker makes ``b`` appends. With shared accesses as the steps (the default
granularity), main takes ``a`` steps (its appends and the join) and the worker ``b``
(its appends); starting the worker makes no decision, since nothing else can run then.
A schedule is therefore a word of ``a`` letters ``M`` and ``b`` letters ``W``, every such
word is one schedule, and so with no preemption bound there are ``C(a + b, b)`` of them:
``C(2n, n)`` for two threads of ``n`` steps each.

What a word costs against the bound (see interleave/strategies/dfs.py): a switch away
from a thread that could go on is a preemption; one made because a thread blocks (main's
join while the worker still runs) or ends is free. The worker runs first by default (main
blocks in ``Thread.start`` until the worker is under way, then the running thread goes
on). A word of ``r`` blocks has ``r - 1`` switches; exactly one of them follows the
last step of the thread that is done first (its end, or main's join, which blocks), and is
free. So a word starting with ``W`` costs ``r - 2`` preemptions; one starting with ``M``
costs one more, the worker preempted before its first append.

The number of words of ``r`` blocks starting with ``X`` (``x`` letters; ``Y`` has ``y``):
``X`` falls into ``ceil(r / 2)`` non-empty blocks and ``Y`` into ``floor(r / 2)``, and a
run of ``x`` letters splits into ``p`` non-empty blocks in ``C(x - 1, p - 1)`` ways.
"""

from __future__ import annotations

import itertools
import threading
from math import comb

import pytest

from interleave import explore


def words_of_blocks(x: int, y: int, r: int) -> int:
    """Words of ``x`` X and ``y`` Y letters in exactly ``r`` blocks, starting with X."""
    return comb(x - 1, (r + 1) // 2 - 1) * comb(y - 1, r // 2 - 1)


def schedules_within(a: int, b: int, bound: int) -> int:
    """Schedules of main (``a`` steps) and the worker (``b``) with at most ``bound`` preemptions."""
    total = 0
    for r in range(2, a + b + 1):
        if r - 2 <= bound:
            total += words_of_blocks(b, a, r)  # the worker first: r - 2 preemptions
        if r - 1 <= bound:
            total += words_of_blocks(a, b, r)  # main first: one more
    return total


def most_preemptions(a: int, b: int) -> int:
    """The costliest word: main first, alternating as long as both have letters (``MWMW..M``
    when main has more, ``MWMW..W`` else, one preemption fewer than its blocks)."""
    return 2 * b if a > b else 2 * a - 1


def by_brute_force(a: int, b: int, bound: int) -> int:
    """The same count from the rule itself, over every word (a check of the formula)."""
    count = 0
    for places in itertools.combinations(range(a + b), b):
        word = ["M"] * (a + b)
        for i in places:
            word[i] = "W"
        blocks = 1 + sum(1 for x, y in itertools.pairwise(word) if x != y)
        if blocks - 2 + (word[0] == "M") <= bound:
            count += 1
    return count


def two_threads(a: int, b: int):
    """Main: ``a - 1`` appends and a join; the worker: ``b`` appends. Race-free: an append is atomic."""
    def program():
        log: list[str] = []

        def worker():
            for _ in range(b):
                log.append("w")

        t = threading.Thread(target=worker)
        t.start()
        for _ in range(a - 1):
            log.append("m")
        t.join()
        assert sorted(log) == ["m"] * (a - 1) + ["w"] * b
    return program


def enumerate_all(a: int, b: int, bound: int):
    return explore(two_threads(a, b), strategy="dfs", max_preemptions=bound, runs=10_000, seed=0)


def test_the_formula_agrees_with_the_rule_it_was_derived_from():
    for a, b in [(1, 1), (2, 2), (3, 2), (3, 3), (4, 4), (5, 4), (2, 5)]:
        assert schedules_within(a, b, a + b) == comb(a + b, b)
        most = most_preemptions(a, b)
        assert schedules_within(a, b, most) == comb(a + b, b) > schedules_within(a, b, most - 1)
        for k in range(a + b + 1):
            assert schedules_within(a, b, k) == by_brute_force(a, b, k), (a, b, k)


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_two_threads_of_n_steps_have_c_2n_n_schedules(n):
    report = enumerate_all(n, n, bound=2 * n)
    assert report.failure is None and report.exhausted and report.complete
    assert report.runs == report.distinct_schedules == comb(2 * n, n)


@pytest.mark.parametrize("a, b", [(2, 2), (3, 3), (4, 4), (5, 4)])
def test_the_schedules_within_each_preemption_bound(a, b):
    """Each bound 0..max runs exactly the schedules of that cost or less, each once."""
    counts = []
    for k in range(most_preemptions(a, b) + 2):
        report = enumerate_all(a, b, bound=k)
        # Past the costliest schedule there is no bound left to open: the last one run is named.
        assert report.failure is None and report.exhausted and report.bound == min(k, most_preemptions(a, b))
        assert report.distinct_schedules == report.runs
        # complete: no schedule needs more preemptions than the bound allowed.
        assert report.complete == (k >= most_preemptions(a, b))
        counts.append(report.runs)
    assert counts == [schedules_within(a, b, k) for k in range(len(counts))]
