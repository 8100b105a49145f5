"""Liveness: a thread that polls for what another thread will do is never a hang, under any
strategy and seed; the same poll for something nobody does is one (the twin that shows the
hang detector is awake at the same bound).

The pollers count their looks only up to 2: a poll whose state keeps changing is a
different case (see the last test).
"""

from __future__ import annotations

import threading
import time
from unittest import mock

import pytest

from interleave import explore, scheduler
from interleave.strategies import NAMES

#: A bound on steps without progress low enough that a real hang is found at once.
MAX_STEPS = 300


def flag_poll(pause: float, sets: bool, polls: list[int], counts_first: int = 0):
    """The poller sleeps ``pause`` between looks at a flag that the setter sets after 0.5 s
    (after ``counts_first`` turns of a count: a state that changes at every step)."""
    def program():
        flag = {"set": False}
        looks = [0]
        total = [0]

        def setter():
            time.sleep(0.5)
            flag["set"] = True

        def poller():
            for _ in range(counts_first):
                total[0] += 1
            while not flag["set"]:
                looks[0] = min(looks[0] + 1, 2)  # counted up to 2: no change of state after
                time.sleep(pause)

        threads = [threading.Thread(target=poller)] + ([threading.Thread(target=setter)] if sets else [])
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        polls.append(looks[0])
    return program


def event_poll(sets: bool, polls: list[int]):
    """The poller waits on an event with a timeout, again and again, until the setter sets it."""
    def program():
        event = threading.Event()
        looks = [0]

        def setter():
            time.sleep(0.5)
            event.set()

        def poller():
            while not event.wait(timeout=0.1):
                looks[0] = min(looks[0] + 1, 2)

        threads = [threading.Thread(target=poller)] + ([threading.Thread(target=setter)] if sets else [])
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        polls.append(looks[0])
    return program


POLLS = {
    "sleep(0.1)": lambda sets, polls: flag_poll(0.1, sets, polls),
    "sleep(0)": lambda sets, polls: flag_poll(0, sets, polls),
    "Event.wait(timeout)": event_poll,
}


@pytest.mark.parametrize("strategy", NAMES)
@pytest.mark.parametrize("poll", sorted(POLLS))
def test_a_polling_program_is_never_a_hang(poll, strategy):
    # dfs and dpor take no seed (strategies.make gives it to the sampling strategies only): a second
    # seed would run the very same runs again.
    for seed in range(2) if strategy not in ("dfs", "dpor") else range(1):
        polls: list[int] = []
        report = explore(POLLS[poll](True, polls), strategy=strategy, runs=12, seed=seed, max_steps=MAX_STEPS)
        assert report.failure is None, (seed, report.failure.kind, report.failure.message)
        assert report.runs == len(polls) == 12 or (strategy in ("dfs", "dpor") and report.exhausted and report.runs == len(polls))
        assert max(polls) > 1  # it really polled: the flag was not set yet at its first looks


@pytest.mark.parametrize("strategy", NAMES)
@pytest.mark.parametrize("poll", sorted(POLLS))
def test_the_same_poll_for_what_nobody_does_is_a_hang(poll, strategy):
    report = explore(POLLS[poll](False, []), strategy=strategy, runs=30, seed=0, max_steps=MAX_STEPS, shrink_time=0)
    assert report.failure is not None and report.failure.kind == "hang"
    assert report.runs == 1


def test_a_sleep_0_poll_that_counts_every_look_is_no_hang():
    def program():
        flag = {"set": False}
        looks = [0]

        def setter():
            time.sleep(0.5)
            flag["set"] = True

        def poller():
            while not flag["set"]:
                looks[0] += 1
                time.sleep(0)

        threads = [threading.Thread(target=poller), threading.Thread(target=setter)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    report = explore(program, strategy="dfs", runs=1, max_steps=MAX_STEPS, shrink_time=0)
    assert report.failure is None, report.failure.message


def test_looks_at_a_changing_state_grow_apart_and_a_stall_after_them_is_still_a_hang(monkeypatch):
    # A Mock counts the looks: a counter written here would be the program's code, instrumented.
    looks = mock.Mock(wraps=scheduler.snapshot)
    monkeypatch.setattr(scheduler, "snapshot", looks)
    report = explore(flag_poll(0, True, [], counts_first=12_000), strategy="dfs", runs=1, shrink_time=0)
    assert report.failure is None, report.failure.message
    # The count alone is 24,000 steps (a read and a write each turn): 48 looks at the first pace.
    # While the state changes they grow apart, to 16 times that pace.
    assert looks.call_count <= 12, looks.call_count
    looks.reset_mock()
    hang = explore(flag_poll(0, False, [], counts_first=12_000), strategy="dfs", runs=1, shrink_time=0)
    assert hang.failure is not None and hang.failure.kind == "hang", hang.failure
    # Once a look finds nothing changed, they come at the first pace again: the hang is 100,000
    # steps without progress (the default max_steps), 200 looks at that pace.
    assert looks.call_count >= 200, looks.call_count
