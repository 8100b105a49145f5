"""Twin tests: a race-free program's "no failure" counts only if the search really
interleaved it. Each lock-protected program is run under every strategy and must come out
clean after more than one distinct schedule; its twin without the lock must fail under the
same search; and the enumeration of the smallest one runs exactly the schedules counted
by hand.
"""

from __future__ import annotations

import threading

import pytest

from interleave import explore
from interleave.strategies import NAMES


def counter(locked: bool, main_adds: int = 1, worker_adds: int = 1):
    """Main and a worker each add to a counter under a lock (or, the twin, without it)."""
    def program():
        lock = threading.Lock()
        box = [0]

        def add():
            if locked:
                with lock:
                    box[0] += 1
            else:
                box[0] += 1

        def worker():
            for _ in range(worker_adds):
                add()

        t = threading.Thread(target=worker)
        t.start()
        for _ in range(main_adds):
            add()
        t.join()
        assert box[0] == main_adds + worker_adds, f"lost update: {box[0]}"
    return program


def check_then_act(locked: bool):
    """Two threads each claim a slot if it is free: exactly one may win it."""
    def program():
        lock = threading.Lock()
        slot: dict[str, str] = {}
        winners: list[str] = []

        def claim(name):
            if locked:
                with lock:
                    if "owner" not in slot:
                        slot["owner"] = name
                        winners.append(name)
            elif "owner" not in slot:
                slot["owner"] = name
                winners.append(name)

        threads = [threading.Thread(target=claim, args=(n,)) for n in "ab"]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(winners) == 1, f"both claimed the slot: {winners}"
    return program


def handoff(locked: bool):
    """A producer fills a box and says so under a condition; the consumer waits for it."""
    def program():
        ready = threading.Condition()
        box: dict[str, int] = {}
        got: list[int] = []

        def producer():
            if locked:
                with ready:
                    box["n"] = 1
                    box["m"] = 2
                    ready.notify()
            else:
                box["n"] = 1
                box["m"] = 2

        def consumer():
            if locked:
                with ready:
                    ready.wait_for(lambda: "n" in box)
                    got.append(box["n"] + box.get("m", 0))
            elif "n" in box:
                got.append(box["n"] + box.get("m", 0))
            else:
                got.append(3)

        threads = [threading.Thread(target=consumer), threading.Thread(target=producer)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert got == [3], f"the consumer saw a half-filled box: {got}"
    return program


PROGRAMS = {"counter": lambda locked: counter(locked, 2, 2), "check_then_act": check_then_act, "handoff": handoff}


@pytest.mark.parametrize("strategy", NAMES)
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_a_lock_protected_program_is_clean_after_many_distinct_schedules(name, strategy):
    report = explore(PROGRAMS[name](True), strategy=strategy, runs=5000 if strategy == "dfs" else 200, seed=0)
    assert report.failure is None
    assert report.distinct_schedules > 1  # the search really interleaved the threads
    if strategy == "dfs":
        assert report.exhausted and report.distinct_schedules == report.runs


@pytest.mark.parametrize("name", sorted(PROGRAMS))
@pytest.mark.parametrize("strategy", ["dfs", "portfolio"])
def test_its_twin_without_the_lock_fails_under_the_same_search(name, strategy):
    report = explore(PROGRAMS[name](False), strategy=strategy, runs=200, seed=0, shrink_time=0)
    assert report.failure is not None and report.failure.kind == "exception"


def test_the_locked_counter_runs_exactly_the_schedules_counted_by_hand():
    """Main: lock, read, write, unlock, join (5 steps); the worker: lock, read, write, unlock (4).

    The worker runs first by default. Counted by where the other thread's lock comes:
    * worker first, its section whole before main's: 1 schedule, 0 preemptions;
    * worker first, main trying the lock inside the worker's section (after its lock, read
      or write): 3, 1 preemption each (main blocks, the worker goes on for free);
    * main first (the worker preempted before its lock, 1), main's section whole, then its
      join before the worker's lock (1 preemption), after its lock, read or write (3 each:
      to the worker and back), or after it ends (2): 5 schedules;
    * main first, the worker trying the lock inside main's section (3 places, 2 preemptions
      so far); after main's unlock, its join straight away (2), or after the worker's read
      or write (4 each; the worker resumes inside its lock call, so no choice before its
      read), or after it ends (3): 3 x 4 = 12 schedules.
    21 in all; by bound 0..4: 1, 1 + 4, 5 + 4, 9 + 6, 15 + 6.
    """
    counts = []
    for bound in range(6):
        report = explore(counter(True), strategy="dfs", max_preemptions=bound, runs=1000, seed=0)
        assert report.failure is None and report.exhausted and report.distinct_schedules == report.runs
        assert report.complete == (bound >= 4)
        counts.append(report.runs)
    assert counts == [1, 5, 9, 15, 21, 21]
