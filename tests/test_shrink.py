"""The shrinker against a made-up program whose smallest failing schedule is known, then a real one.

The made-up program meets the same decision points whatever is chosen (three threads of
twenty steps; thread 0 blocks at its step 8, where who runs next is a free choice; thread 2
calls something that may fault at its step 10). It fails when its recorded schedule holds
one of two sets of deviations; the smaller in the shrinker's order is the only minimum.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from interleave import describe, explore, replay
from interleave.failures import Failure
from interleave.decisions import FAULT_SUB, Decision, DecisionPoint, Key, option_from_code
from interleave.scheduler import RunResult
from interleave import shrink as shrink_module
from interleave.shrink import (
    SEARCH_SHARE,
    MetPoint,
    Shrinker,
    ShrinkInterrupted,
    _identity,
    is_paid,
    schedule_order,
    shrink,
)
from interleave.strategies.replay import Replay

ROOT = Path(__file__).resolve().parent.parent
#: Options are written as the token's integers here (thread index, -1 a pause, -2 - k fault option k).
JUMP = -1
BOOM = Failure("exception", "boom", "", place=("prog.py", 1))
OTHER = Failure("exception", "other", "", place=("prog.py", 2))


def _point(key: tuple[int, int, int], codes: tuple[int, ...], default: int, preemptive: bool) -> MetPoint:
    def option(code: int):
        return option_from_code(key[2], code)
    return MetPoint(key, tuple(map(option, codes)), option(default), preemptive)


def _points() -> list[MetPoint]:
    points = []
    for step in range(20):
        for thread in range(3):
            if thread == 0 and step == 8:
                points.append(_point((0, 8, 1), (1, 2), 1, False))  # thread 0 blocked: free
            options = (0, 1, 2, JUMP) if (thread, step) == (1, 2) else (0, 1, 2)
            points.append(_point((thread, step, 0), options, thread, True))
            if (thread, step) == (2, 10):
                points.append(_point((2, 10, FAULT_SUB), (-2, -3), -2, False))
    return points


POINTS = _points()
FAULT = ((2, 10, FAULT_SUB), -3)
#: Two preemptions and the fault (the first at any of thread 0's steps 3 to 6)...
VIA_PREEMPTIONS = {((0, 4, 0), 2), ((1, 7, 0), 0), FAULT}
#: ...or the same failure with one of them a free choice instead: the minimum.
MINIMUM = {((0, 8, 1), 2), ((1, 7, 0), 0), FAULT}
NOISE = [((2, 3, 0), 1), ((1, 12, 0), 2), ((0, 15, 0), 1), ((1, 2, 0), JUMP), ((2, 14, 0), 0), ((0, 1, 0), 1)]


class FakeProgram:
    """Stands for a Runner: drives the chooser over :data:`POINTS` and fails by the rule above."""

    def __init__(self, interrupt_at: int | None = None) -> None:
        self.replayed: list[tuple] = []
        self.interrupt_at = interrupt_at

    def run_or_raise(self, chooser) -> RunResult:
        if self.interrupt_at is not None and len(self.replayed) >= self.interrupt_at:
            raise KeyboardInterrupt
        chooser.begin_run(len(self.replayed))
        deviations = []
        for index, point in enumerate(POINTS):
            asked = DecisionPoint(point.key, point.options, point.default, point.preemptive, False, (), lambda t: None,
                                  index)
            choice = chooser.choose(asked)
            if choice != point.default:
                deviations.append(Decision(Key(*point.key), choice, point.costs(choice)))
        if isinstance(getattr(chooser, "inner", chooser), Replay):  # not the enumeration's runs
            self.replayed.append(_identity(deviations))
        run = RunResult(self.failure_of(_chosen(deviations)), deviations, steps=100 + 3 * len(deviations),
                        decisions=len(POINTS), threads=3, preemptions=sum(bool(d.paid) for d in deviations))
        chooser.end_run(run)
        return run

    def failure_of(self, chosen: set[tuple[tuple[int, int, int], int]]) -> Failure | None:
        if MINIMUM <= chosen or any(VIA_PREEMPTIONS - {((0, 4, 0), 2)} | {((0, s, 0), 2)} <= chosen for s in range(3, 7)):
            return BOOM
        if ((1, 2, 0), JUMP) in chosen:
            return OTHER  # fails, but not the same way
        return None


#: Two preemptions that no other schedule can do without.
BOTH_PREEMPTIONS = {((0, 4, 0), 2), ((1, 7, 0), 0)}


class FakeClock:
    """Stands for the ``time`` module in :mod:`interleave.shrink`: a clock only the program moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now


class NeedsBothPreemptions(FakeProgram):
    """Fails only with both of :data:`BOTH_PREEMPTIONS`; each run takes ``seconds`` on ``clock``."""

    def __init__(self, clock: FakeClock, seconds: float) -> None:
        super().__init__()
        self.clock, self.seconds, self.runs = clock, seconds, 0

    def run_or_raise(self, chooser) -> RunResult:
        self.clock.now += self.seconds
        self.runs += 1
        return super().run_or_raise(chooser)

    def failure_of(self, chosen: set[tuple[tuple[int, int, int], int]]) -> Failure | None:
        return BOOM if BOTH_PREEMPTIONS <= chosen else None


def _chosen(deviations: list[Decision]) -> set[tuple[tuple[int, int, int], int]]:
    """A schedule in this file's notation: (key, option's integer) per decision."""
    return {(tuple(d.key), d.option.code()) for d in deviations}


def _schedule(choices) -> list[Decision]:
    points = {p.key: p for p in POINTS}
    decisions = []
    for key, code in sorted(choices):
        option = option_from_code(key[2], code)
        decisions.append(Decision(Key(*key), option, points[key].costs(option)))
    return decisions


def _found(program: FakeProgram, choices) -> RunResult:
    run = program.run_or_raise(Replay(_schedule(choices), strict=True))
    program.replayed.clear()  # the run as found: not one of the shrinker's
    return run


def test_the_known_minimum_is_reached_with_no_schedule_run_twice_and_the_order_falling_at_every_step():
    program = FakeProgram()
    found = _found(program, VIA_PREEMPTIONS | set(NOISE))
    assert found.failure is BOOM and sum(map(is_paid, found.deviations)) == 7
    kept = []
    shrinker = Shrinker(lambda candidate: _keep(kept, program, candidate), BOOM, found, deadline=float("inf"))
    assert shrinker.shrink_passes()
    assert _chosen(shrinker.best) == MINIMUM
    assert len(program.replayed) == len(set(program.replayed)) == shrinker.attempts
    orders = shrinker.accepted
    assert len(orders) >= 3 and all(a > b for a, b in itertools.pairwise(orders))
    assert orders[-1] == schedule_order(shrinker.best, shrinker.best_run.steps)
    assert all(run.failure is BOOM for run in kept)


def _keep(kept: list[RunResult], program: FakeProgram, candidate: list[Decision]):
    from interleave.shrink import _Recording
    recording = _Recording(Replay(candidate, strict=False))
    run = program.run_or_raise(recording)
    if BOOM.same_as(run.failure):
        kept.append(run)
    return run, recording.points


def test_shrink_from_a_runner_reaches_the_minimum_and_says_it_is_minimal():
    program = FakeProgram()
    found = _found(program, VIA_PREEMPTIONS | set(NOISE))
    result = shrink(program, BOOM, found.deviations, found, time_budget=60.0)
    assert _chosen(result.deviations) == MINIMUM
    assert result.minimal and result.result.failure is BOOM
    assert len(program.replayed) == len(set(program.replayed))


def test_the_removal_pass_goes_on_where_it_is_after_a_success():
    """Needed and removable deviations mixed: each is tried once (starting over after each
    success would try the needed ones before it again)."""
    program = FakeProgram()
    found = _found(program, VIA_PREEMPTIONS | set(NOISE[:3]))
    shrinker = Shrinker(lambda candidate: _keep([], program, candidate), BOOM, found, deadline=float("inf"))
    shrinker.remove_each()
    assert _chosen(shrinker.best) == VIA_PREEMPTIONS
    assert shrinker.attempts == len(VIA_PREEMPTIONS) + 3


def test_the_stall_limit_stops_shrinking_after_that_many_replays_that_kept_nothing():
    program = FakeProgram()
    found = _found(program, VIA_PREEMPTIONS)  # no removal keeps the failure
    result = shrink(program, BOOM, found.deviations, found, time_budget=60.0, stall_limit=4)
    assert len(program.replayed) == 4
    assert not result.minimal and result.deviations == found.deviations
    unlimited = FakeProgram()
    assert shrink(unlimited, BOOM, found.deviations, found, time_budget=60.0).minimal
    assert len(unlimited.replayed) > 4


def test_a_ctrl_c_while_shrinking_carries_the_best_schedule_so_far():
    program = FakeProgram(interrupt_at=12)
    found = _found(program, VIA_PREEMPTIONS | set(NOISE))
    with pytest.raises(KeyboardInterrupt) as caught:
        shrink(program, BOOM, found.deviations, found, time_budget=60.0)
    assert isinstance(caught.value, ShrinkInterrupted) and not caught.value.best.minimal
    best = caught.value.best
    assert best.result.failure is BOOM and len(best.deviations) < len(found.deviations)
    assert len(program.replayed) == 12


def test_a_slow_machine_runs_the_same_search_for_fewer_preemptions(monkeypatch):
    """The search is bounded by the steps it runs, not by seconds: where every run takes 0.1 s
    it runs the schedules it runs where runs take no time, and reports the same schedule."""
    outcomes = []
    for seconds in (0.0, 0.1):
        clock = FakeClock()
        monkeypatch.setattr(shrink_module, "time", clock)
        program = NeedsBothPreemptions(clock, seconds)
        found = _found(program, BOTH_PREEMPTIONS | set(NOISE))
        result = shrink(program, BOOM, found.deviations, found, time_budget=60.0)
        searched = program.runs - 1 - len(program.replayed)  # less the run as found and the replays
        outcomes.append((searched, _chosen(result.deviations), result.minimal))
    assert outcomes[0] == outcomes[1]
    searched, chosen, minimal = outcomes[0]
    assert chosen == BOTH_PREEMPTIONS and minimal
    assert searched * 0.1 > 60.0 * SEARCH_SHARE  # the slow search took more than its share of the budget in seconds


def test_v3_4_10_shrinks_to_its_stall_and_one_preemption():
    """The search finds it with the stall and two preemptions; moving one of them to where
    its thread blocks makes it free (the docstring's free choice), and one is left."""
    report = explore(str(ROOT / "targets" / "final_request_processor.py") + "::v3_4_10", seed=0, runs=600,
                     shrink_time=120.0)
    failure = report.failure
    assert failure is not None and "CancelledKeyException" in failure.message
    assert (failure.faults, failure.switches, failure.pauses) == (1, 1, 0), failure.trace


def test_a_failure_not_shrunk_is_replayed_once(monkeypatch):
    # With no time to shrink, the schedule shown is the one found: its recorded replay serves both
    # the report as found and the final one (each replay of a long failing run costs the whole run).
    replays = []
    real = describe._replay_recorded

    def counted(runner, found, deviations):
        replays.append(list(deviations))
        return real(runner, found, deviations)

    monkeypatch.setattr(describe, "_replay_recorded", counted)
    # Nor is its report made twice: the trace of a long run is dear to render.
    reports = []
    real_report = describe._failure_report

    def made(*args, **kwargs):
        reports.append(args[3])
        return real_report(*args, **kwargs)

    monkeypatch.setattr(describe, "_failure_report", made)
    races = str(Path(__file__).with_name("one_line_races.py"))
    failure = explore(f"{races}::attribute", runs=2000, seed=0, shrink_time=0).failure
    assert failure is not None and failure.kind == "exception"
    assert len(replays) == 1 and len(reports) == 1
    assert failure.not_shrunk is None and failure.shrink_attempts == 0
    assert "reads Stats.hits -> 0" in failure.trace
    assert replay(f"{races}::attribute", failure.replay).failure.message == failure.message
