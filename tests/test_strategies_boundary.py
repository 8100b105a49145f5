"""The strategy boundary is data: a strategy sees a decision point, never the scheduler,
and the schedule it makes is typed decisions with their costs."""

from __future__ import annotations

import ast
import itertools
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from interleave import explore
from interleave.decisions import (
    DRAW_SUB,
    FAULT_SUB,
    PAUSE,
    Decision,
    DecisionPoint,
    Draw,
    Fault,
    Key,
    Plan,
    RunThread,
    option_from_code,
    run_thread,
)
from interleave.program import load
from interleave.runner import RunConfig, Runner
from interleave.schedule import Token
from interleave.strategies.pct import PCT
from interleave.strategies.replay import Replay, ScheduleMismatch

STRATEGIES = Path(__file__).resolve().parent.parent / "interleave" / "strategies"


def _imports(path: Path) -> list[str]:
    """Every module a file imports (TYPE_CHECKING blocks included), as absolute names."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                found.append(node.module or "")
            else:
                package = ["interleave", "strategies"][: 3 - node.level]
                found.append(".".join(package + ([node.module] if node.module else [])))
    return found


def test_strategies_import_only_the_decision_point_types_and_each_other():
    files = sorted(STRATEGIES.glob("*.py"))
    assert len(files) >= 8
    for path in files:
        ours = [name for name in _imports(path) if name.split(".")[0] == "interleave"]
        # interleave.places finds a decision point's place from the point alone (replay by place).
        wrong = [name for name in ours if name not in ("interleave.decisions", "interleave.places")
                 and not name.startswith("interleave.strategies")]
        assert wrong == [], f"{path.name} imports {wrong}"


# A chooser compiled from a string: code of a test file would get switch points of its own.
_RECORDING = compile('''
import random

from interleave.decisions import PAUSE, RunThread


class Recording:
    """Random answers (seeded); keeps every decision point it was shown, its answer, and
    the threads' steps as the point showed them (a view of the run: read while choosing)."""

    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.seen = []
        self.steps = []

    def choose(self, point):
        choice = self.rng.choice(point.options) if self.rng.random() < 0.5 else point.default
        self.seen.append((point, choice))
        self.steps.append(tuple(point.thread_steps))
        return choice
''', "<recording chooser>", "exec")


def _recording(seed: int) -> Any:
    namespace: dict[str, Any] = {}
    exec(_RECORDING, namespace)  # noqa: S102 - a chooser of this test's own, see above
    return namespace["Recording"](seed)


def _polling_program() -> None:
    box = [0]
    done = threading.Event()

    def worker() -> None:
        time.sleep(0.01)  # a timer pending while the poller runs: a pause is an option
        box[0] += 1
        done.set()

    def poller() -> None:
        while not done.is_set():
            time.sleep(0)  # a yield: whoever runs next, this thread is not preempted

    threads = [threading.Thread(target=poller), threading.Thread(target=worker)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()  # main blocks: who runs next is a free choice
    assert box[0] == 1


def test_every_decision_point_is_data_and_its_costs_are_the_schedules():
    runner = Runner(load(_polling_program), RunConfig())
    try:
        kinds = set()
        for seed in range(12):
            chooser = _recording(seed)
            result = runner.run(chooser)
            assert result.failure is None
            recorded = {d.key: d for d in result.deviations}
            taken = {}
            for (point, choice), steps in zip(chooser.seen, chooser.steps):
                assert isinstance(point, DecisionPoint)
                assert point.default in point.options
                assert all(isinstance(o, (RunThread, type(PAUSE))) for o in point.options)
                assert len(steps) > point.thread
                if choice != point.default:
                    taken[point.key] = Decision(Key(*point.key), choice, point.paid(choice))
                # What a point says of itself holds together.
                if point.yielding:
                    kinds.add("yielding")
                    assert not point.preemptive
                    assert not any(point.paid(o) for o in point.options if isinstance(o, RunThread))
                elif point.preemptive:
                    kinds.add("preemptive")
                    assert point.default == run_thread(point.thread)
                    assert all(point.paid(o) for o in point.options if o != point.default)
                else:
                    kinds.add("free")  # the running thread cannot go on (it joins, or ended)
                    assert run_thread(point.thread) not in point.options
                if PAUSE in point.options:
                    kinds.add("pause")
                    assert point.paid(PAUSE)
            # The run's schedule is exactly the non-default answers, with the costs the points gave.
            assert recorded == taken
            assert result.preemptions == sum(1 for d in result.deviations if d.paid)
        assert kinds == {"yielding", "preemptive", "free", "pause"}
    finally:
        runner.close()


def test_the_steps_a_point_shows_are_the_threads_steps_so_far():
    runner = Runner(load(_polling_program), RunConfig())
    try:
        chooser = _recording(3)
        result = runner.run(chooser)
    finally:
        runner.close()
    assert len(chooser.seen) > 10
    for (point, _), steps in zip(chooser.seen, chooser.steps):
        assert steps[point.thread] == point.steps  # the key counts the running thread's steps
    steps = chooser.steps
    for earlier, later in itertools.pairwise(steps):
        assert len(later) >= len(earlier)
        assert all(b >= a for a, b in zip(earlier, later))
    assert all(s <= f for s, f in zip(steps[-1], result.extra["thread_steps"]))


RACE = """
import threading

box = [0]

def add():
    value = box[0]
    box[0] = value + 1

def main():
    box[0] = 0
    threads = [threading.Thread(target=add) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert box[0] == 3
"""


def test_a_decoded_token_has_each_decisions_cost_as_its_replay_has_it(tmp_path):
    path = tmp_path / "race.py"
    path.write_text(textwrap.dedent(RACE))
    target = f"{path}::main"
    free_switches = 0
    for seed in range(4):
        report = explore(target, strategy="random", runs=300, seed=seed, shrink_time=0)
        assert report.failure is not None
        decoded = Token.decode(report.failure.replay)
        runner = Runner(load(target), decoded.config)
        try:
            chooser = Replay(list(decoded.deviations))
            run = runner.run(chooser)
        finally:
            runner.close()
        assert chooser.all_used() and run.failure is not None
        # The replay's schedule is the token's, costs included...
        assert list(run.deviations) == list(decoded.deviations)
        free_switches += sum(isinstance(d.option, RunThread) and d.option.thread != d.key.thread and not d.paid
                             for d in decoded.deviations)
        # ...and the figures the report gives are the replay's.
        assert run.preemptions == report.failure.preemptions
    assert free_switches  # free switches to another thread were among them: their cost came from the token


def test_options_have_one_integer_form_in_each_kind_of_decision():
    for sub, options in ((0, [run_thread(0), run_thread(7), PAUSE]), (FAULT_SUB + 1, [Fault(0), Fault(3, "crash")]),
                         (DRAW_SUB, [Draw(0), Draw(2)])):
        codes = [o.code() for o in options]
        assert len(set(codes)) == len(codes)
        assert [option_from_code(sub, c) for c in codes] == options
    assert Fault(3, "crash") == Fault(3)  # a token does not carry the label: options compare by number
    assert Fault(1) != Draw(1) and run_thread(1) != Fault(1)
    with pytest.raises(ValueError):
        option_from_code(0, -2)  # no scheduling option has that code


def test_a_plan_follows_a_schedule_by_key_and_only_where_its_option_is_offered():
    key = Key(1, 4, 0)
    plan = Plan([Decision(key, run_thread(2), True)])

    def point(at: Key, options: list[Any]) -> DecisionPoint:
        return DecisionPoint(at, options, options[0], True, False, (0, 4, 0), lambda thread: None, 0)

    assert plan.follow(point(key, [run_thread(1), run_thread(2)])) == run_thread(2)
    assert plan.follow(point(key, [run_thread(1), run_thread(3)])) is None  # not possible there
    assert plan.follow(point(Key(1, 5, 0), [run_thread(1), run_thread(2)])) is None  # not this key
    strict = Replay([Decision(key, run_thread(2), True)])
    with pytest.raises(ScheduleMismatch, match="chooses thread 2, which is not possible there "
                                               r"\(options thread 1, thread 3\)"):
        strict.choose(point(key, [run_thread(1), run_thread(3)]))
    lenient = Replay([Decision(key, run_thread(2), True)], strict=False)
    assert lenient.choose(point(key, [run_thread(1), run_thread(3)])) == run_thread(1)


# Choosers compiled from a string, as above: one that forwards every decision to a strategy (so the
# strategy's promises are not seen: it is asked at every decision), and a PCT that counts its asks.
_ASKING = compile('''
from interleave.strategies.pct import PCT


class EveryDecision:
    def __init__(self, inner):
        self.inner = inner
        self.asked = 0

    def choose(self, point):
        self.asked += 1
        return self.inner.choose(point)


class CountedPCT(PCT):
    asked = 0

    def choose(self, point):
        self.asked += 1
        return super().choose(point)
''', "<asking choosers>", "exec")


@pytest.mark.parametrize("target", ["benchmarks/programs/long_run.py::fixed", "examples/producer_consumer.py::main",
                                    "examples/timeout_race.py::fixed"])
def test_a_strategys_promise_spares_the_asking_and_changes_no_run(target):
    namespace: dict[str, Any] = {}
    exec(_ASKING, namespace)  # noqa: S102 - choosers of this test's own, see above
    runner = Runner(load(str(Path(__file__).parents[1] / target)), RunConfig())
    try:
        spared = 0
        for seed, depth in itertools.product(range(4), (2, 3)):
            promising = namespace["CountedPCT"](seed, depth)
            every = namespace["EveryDecision"](PCT(seed, depth))
            promising.begin_run(0)
            every.inner.begin_run(0)
            with_promises, asked_each_time = runner.run(promising), runner.run(every)
            assert with_promises.deviations == asked_each_time.deviations, (seed, depth)
            assert (with_promises.decisions, with_promises.steps, str(with_promises.failure)) == (
                asked_each_time.decisions, asked_each_time.steps, str(asked_each_time.failure))
            assert every.asked == asked_each_time.decisions  # no faults or draws here: every decision asked
            spared += every.asked - promising.asked
        assert spared > 0
        if "long_run" in target:  # long stretches of one thread: nearly no decision is asked
            assert promising.asked < with_promises.decisions / 10, (promising.asked, with_promises.decisions)
    finally:
        runner.close()
