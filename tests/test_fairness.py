"""Fair like real time: a program that ends on a real machine ends under every strategy.

A thread that polls (sleep(0), short sleeps, a non-blocking acquire, Event.is_set(),
get_nowait(), a bare spin on a flag) cannot starve the others, and virtual time reaches
the deadlines they wait for. A hang is a run in which nothing changes, reported with the
threads that loop, the lines they repeat and a short token; a long run that keeps
changing its state is no hang.
"""

from __future__ import annotations

import re

import queue
import threading
import time
from pathlib import Path

import pytest

from interleave import explore
from interleave.strategies import NAMES

SEEDS = (0, 1)
ROOT = Path(__file__).resolve().parent.parent


def sleep0_poll():
    ready = []

    def later():
        time.sleep(0.02)
        ready.append(True)

    t = threading.Thread(target=later)
    t.start()
    while not ready:
        time.sleep(0)
    t.join()


def short_sleep_poll():
    ready = []

    def later():
        time.sleep(10)  # 10,000 polls of 1 ms: 20,000 steps in which nothing changes
        ready.append(True)

    t = threading.Thread(target=later)
    t.start()
    while not ready:
        time.sleep(0.001)
    t.join()


def nonblocking_acquire_loop():
    lock = threading.Lock()
    held = threading.Event()

    def holder():
        with lock:
            held.set()
            time.sleep(0.01)

    t = threading.Thread(target=holder)
    t.start()
    held.wait()
    while not lock.acquire(blocking=False):
        pass
    lock.release()
    t.join()


def event_is_set_poll():
    ev = threading.Event()

    def setter():
        time.sleep(0.01)
        ev.set()

    t = threading.Thread(target=setter)
    t.start()
    while not ev.is_set():
        pass
    t.join()


def get_nowait_poll():
    q = queue.Queue()

    def producer():
        for i in range(3):
            time.sleep(0.01)
            q.put(i)

    t = threading.Thread(target=producer)
    t.start()
    got = []
    while len(got) < 3:
        try:
            got.append(q.get_nowait())
        except queue.Empty:
            pass
    t.join()
    assert got == [0, 1, 2]


def flag_spin_on_a_sleeper():
    flag = []

    def setter():
        time.sleep(0.01)
        flag.append(1)

    t = threading.Thread(target=setter)
    t.start()
    while not flag:
        pass
    t.join()


def flag_spin_on_a_runnable_thread():
    flag = []

    def setter():
        for _ in range(3):
            pass
        flag.append(1)

    t = threading.Thread(target=setter)
    t.start()
    while not flag:
        pass
    t.join()


def daemons_loop_while_main_returns():
    def loop():
        while True:
            time.sleep(0)

    def spin():
        while True:
            pass

    threading.Thread(target=loop, daemon=True).start()
    threading.Thread(target=spin, daemon=True).start()
    time.sleep(0.01)


POLLERS = [sleep0_poll, short_sleep_poll, nonblocking_acquire_loop, event_is_set_poll, get_nowait_poll,
           flag_spin_on_a_sleeper, flag_spin_on_a_runnable_thread, daemons_loop_while_main_returns]


@pytest.mark.parametrize("strategy", NAMES)
@pytest.mark.parametrize("program", POLLERS, ids=lambda p: p.__name__)
def test_a_polling_program_is_never_a_hang(program, strategy):
    """Whatever the strategy chooses, with paid pauses or none (time passes anyway) and
    with a no-progress bound far below the length of the poll."""
    # dfs and dpor take no seed (strategies.make gives it to the sampling strategies only): a second
    # seed ran the very same runs again (measured: the same runs and steps for every program here).
    for seed in SEEDS if strategy not in ("dfs", "dpor") else SEEDS[:1]:
        for config in ({}, {"max_pauses": 0, "max_steps": 5000}):
            report = explore(program, strategy=strategy, seed=seed, runs=15, shrink_time=1, **config)
            assert report.failure is None, (seed, config, report.failure.message)
            assert report.runs >= 1


def test_long_locked_increments_are_no_hang():
    def program():
        lock = threading.Lock()
        count = [0]

        def work():
            for _ in range(2_000):
                with lock:
                    count[0] += 1

        threads = [threading.Thread(target=work) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert count[0] == 4_000

    # The no-progress bound lowered further than the program (10 times fewer increments, a bound 20 times
    # lower than the default 100,000): each run is 3.2 times the bound (it was 1.6 times).
    for strategy in ("portfolio", "pct"):
        report = explore(program, strategy=strategy, runs=2, shrink_time=1, max_steps=5_000)
        assert report.failure is None, report.failure.message
        assert report.steps > 2 * 5_000  # both runs went far past the no-progress bound


def test_a_long_computation_is_no_hang():
    def program():
        total = [0]  # shared memory: each turn is a read and a write, two steps
        for i in range(30_000):
            total[0] += i
        assert total[0] == 30_000 * 29_999 // 2

    report = explore(program, runs=1, max_steps=10_000)
    assert report.failure is None, report.failure.message
    assert report.steps > 60_000


def test_time_reaches_a_deadline_further_than_the_bound():
    """A poller of 1 ms waits for a thread that sleeps 10 s: 20,000 steps of polling with
    nothing changing, past a bound of 5,000; the clock goes to the sleeper's deadline."""

    def program():
        done = []

        def worker():
            time.sleep(10)
            done.append(1)

        t = threading.Thread(target=worker)
        t.start()
        while not done:
            time.sleep(0.001)
        t.join()

    report = explore(program, runs=5, max_steps=5000)
    assert report.failure is None, report.failure.message


def test_a_race_as_a_poll_ends_is_still_found():
    """Time passing for a spinner gives the woken thread's next steps back to the strategy."""

    def program():
        box = {"ready": False, "x": 0}

        def writer():
            time.sleep(0.01)
            box["ready"] = True
            box["x"] = 1  # a reader that saw ready may run before this

        t = threading.Thread(target=writer)
        t.start()
        while not box["ready"]:
            pass
        assert box["x"] == 1
        t.join()

    for strategy in ("portfolio", "dfs"):
        report = explore(program, strategy=strategy, runs=200, max_pauses=0)
        assert report.failure is not None and report.failure.kind == "exception", strategy
        assert "AssertionError" in report.failure.message


def two_spinners_nobody_releases():
    flag = []

    def poll():
        while not flag:
            time.sleep(0)

    def spin():
        while not flag:
            pass

    threads = [threading.Thread(target=poll, name="poller"), threading.Thread(target=spin, name="spinner")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


@pytest.mark.parametrize("strategy", NAMES)
def test_a_real_busy_wait_hang_names_its_loops_and_has_a_short_token(strategy):
    # Line steps: both loops' lines are steps (with access steps the poller's loop is one read a turn).
    report = explore(two_spinners_nobody_releases, strategy=strategy, runs=5, max_steps=20_000, shrink_time=2,
                     granularity="line")
    failure = report.failure
    assert failure is not None and failure.kind == "hang", failure and failure.message
    assert "no thread made progress in 20000 steps" in failure.message
    assert "poller loops at" in failure.message and "spinner loops at" in failure.message
    assert "--max-steps" in failure.message and "max_steps=" in failure.message
    assert "interleave_max_steps" in failure.message
    assert "while not flag:" in failure.details and "time.sleep(0)" in failure.details
    assert len(failure.replay) < 200, len(failure.replay)  # the choices that made it, not one per step
    assert report.runs == 1  # the first run hangs: the fair default does not hide it


def test_the_busy_wait_example_is_still_a_hang_with_a_short_token(monkeypatch):
    monkeypatch.chdir(ROOT)
    # A lower no-progress bound than the default 100,000: the same run 4 hangs at the same loop (every
    # hanging run and every replay of the shrinker spun 100,000 steps, about 20 s in all); a token with a
    # choice per step of the spin would still be thousands of characters long.
    report = explore("examples/busy_wait.py::main", runs=2000, time_limit=30, seed=1, shrink_time=2, max_steps=5000)
    failure = report.failure
    assert failure is not None and failure.kind == "hang", failure and failure.message
    assert re.search(r"MainThread loops at examples/busy_wait.py:35(-36)?\b", failure.message), failure.message
    assert len(failure.replay) < 200, len(failure.replay)


def test_a_loop_that_keeps_changing_stops_at_the_hard_bound_and_says_how_to_raise_it():
    def program():
        i = 0
        while True:
            i += 1

    failure = explore(program, runs=1, max_steps=100, shrink_time=0).failure
    assert failure is not None and failure.kind == "hang"
    assert "still running after 10000 steps" in failure.message  # 100 times the no-progress bound
    assert "--max-steps" in failure.message and "interleave_max_steps" in failure.message
