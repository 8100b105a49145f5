"""targets/nio_throttle.py, final_request_processor.py, session_lock.py: every buggy
variant fails the way its docstring says, every fixed variant survives the same search.

Budgets are runs (not seconds) so the outcome does not depend on the machine; shrinking
gets a few seconds only, except for nio_throttle, whose shrunk schedule is checked.
"""
from pathlib import Path

import pytest

from interleave import explore, replay
from interleave.decisions import Fault
from interleave.program import load
from interleave.runner import RunConfig, Runner
from interleave.schedule import Token
from interleave.strategies.replay import Replay

ROOT = Path(__file__).resolve().parent.parent
QUICK_SHRINK = 3.0

BUGGY = [
    # (target, failure kind, text of the failure message, budget in runs)
    ("nio_throttle.py::main", "exception", "C1 is throttled with 0 outstanding requests", 200),
    ("final_request_processor.py::main", "exception", "CancelledKeyException", 300),
    ("final_request_processor.py::v3_4_10", "exception", "CancelledKeyException", 600),
    ("session_lock.py::main", "exception", "StaleWrite: A wrote with lock token 0", 300),
    ("session_lock.py::with_listener", "exception", "StaleWrite: A wrote with lock token 0", 300),
]

FIXED = [
    ("final_request_processor.py::fixed", 120),
    ("session_lock.py::fixed", 120),
]


def _target(spec):
    return str(ROOT / "targets" / spec)


@pytest.mark.parametrize("spec,kind,text,runs", BUGGY, ids=[b[0] for b in BUGGY])
def test_buggy_variant_fails(spec, kind, text, runs):
    report = explore(_target(spec), runs=runs, seed=0, shrink_time=QUICK_SHRINK)
    assert report.failure is not None, f"{spec}: no failure in {report.runs} runs"
    assert report.failure.kind == kind
    assert text in report.failure.message, report.failure.message


@pytest.mark.parametrize("spec,runs", FIXED, ids=[f[0] for f in FIXED])
def test_fixed_variant_survives_the_same_search(spec, runs):
    report = explore(_target(spec), runs=runs, seed=0)
    assert report.failure is None, report.failure and report.failure.message
    assert report.runs == runs


def test_nio_throttle_shrinks_to_one_preemption_of_the_io_worker_and_replays():
    report = explore(_target("nio_throttle.py::main"), runs=200, seed=0)
    failure = report.failure
    assert failure is not None and failure.preemptions == 1
    assert failure.switches == 1 and failure.faults == 0 and failure.pauses == 0
    assert failure.minimal
    # the one preemption: the I/O worker stopped after handing the request to the
    # pipeline and before counting it on the connection
    assert "preemption: io_worker is paused before targets/nio_throttle.py" in failure.trace
    assert "pipeline runs" in failure.trace
    again = replay(_target("nio_throttle.py::main"), failure.replay)
    assert again.failure is not None and again.failure.message == failure.message
    assert again.preemptions == 1


def test_nio_throttle_fixed_has_no_failing_schedule_within_one_preemption():
    report = explore(_target("nio_throttle.py::fixed"), strategy="dfs", max_preemptions=1, runs=5000, seed=0)
    assert report.failure is None, report.failure and report.failure.message
    assert report.exhausted and report.bound == 1


def _faults_only(spec, token):
    """Replay only the fault decisions of a token (every thread order left to the default)."""
    decoded = Token.decode(token)
    faults = [d for d in decoded.deviations if isinstance(d.option, Fault)]
    return faults, Runner(load(_target(spec)), decoded.config).run(Replay(faults, strict=False))


def test_final_request_processor_main_fails_with_the_stall_alone_and_v3_4_10_does_not():
    spec = "final_request_processor.py::main"
    report = explore(_target(spec), runs=300, seed=0, shrink_time=QUICK_SHRINK)
    failure = report.failure
    assert failure is not None and "F1.CommitProcessor" in failure.message
    assert "fsync stall on F1" in failure.trace
    again = replay(_target(spec), failure.replay)
    assert again.failure is not None and again.failure.message == failure.message
    faults, run = _faults_only(spec, failure.replay)
    assert len(faults) == 1 and run.failure is not None and run.failure.message == failure.message
    # 3.4.10's isValid() check: the same stall on the default schedule fails no more
    _, run = _faults_only("final_request_processor.py::v3_4_10", failure.replay)
    assert [d.option for d in run.deviations] == [faults[0].option]  # the stall did happen
    assert run.failure is None, run.failure.message


def test_a_majority_stall_stops_writes():
    # B2 holds for one stalled follower (the fixed variant is clean above); with both
    # followers' fsyncs stalled the leader cannot commit, and the check says so.
    report = explore(_target("final_request_processor.py::fixed"), max_faults=2, runs=400, seed=0,
                     shrink_time=QUICK_SHRINK)
    assert report.failure is not None and "QuorumLost" in report.failure.message


def test_session_lock_pause_is_found_and_the_token_replays():
    report = explore(_target("session_lock.py::main"), runs=300, seed=0, shrink_time=QUICK_SHRINK)
    failure = report.failure
    assert failure is not None and "pause A: stop-the-world GC" in failure.trace
    again = replay(_target("session_lock.py::main"), failure.replay)
    assert again.failure is not None and again.failure.message == failure.message


def test_session_lock_fixed_rejects_the_stale_write_under_the_pause():
    # The fenced resource is what saves it: with the same pause, main fails and fixed
    # does not (the search above finds the pause for main within its budget).
    report = explore(_target("session_lock.py::fixed"), strategy="random", runs=150, seed=5)
    assert report.failure is None, report.failure and report.failure.message


# A chooser compiled from a string: code of a test file would be traced as the program's.
_ONE_PREEMPTION = compile('''
from interleave.clock import MONOTONIC_START
from interleave.decisions import Fault, RunThread
from interleave.scheduler import active
from interleave.strategies.base import Strategy


class OnePreemption(Strategy):
    """F1's first fsync stalls; at the drop instant the CommitProcessor runs first (a free
    choice) and is preempted between is_valid() and interest_ops()."""

    def __init__(self, path, check_line, drop_at):
        self.path, self.check_line, self.drop_at = path, check_line, drop_at
        self.faulted = self.chose = self.preempted = False

    def _line(self):
        frame = sys._getframe()
        while frame is not None and frame.f_code.co_filename != self.path:
            frame = frame.f_back
        return frame.f_lineno if frame is not None else None

    def choose(self, point):
        sched = active()  # names and the clock: this test's chooser looks past its decision point
        if isinstance(point.default, Fault):
            if not self.faulted and sched.current.name.startswith("F1."):
                self.faulted = True
                return point.options[1]
            return point.default
        if sched.clock.now - MONOTONIC_START != self.drop_at:
            return point.default
        names = {sched.threads[o.thread].name: o for o in point.options if isinstance(o, RunThread)}
        if not self.chose and not point.preemptive and "F1.CommitProcessor" in names:
            self.chose = True
            return names["F1.CommitProcessor"]
        if (self.chose and not self.preempted and sched.current.name == "F1.CommitProcessor"
                and self._line() == self.check_line and "leader.lead" in names):
            self.preempted = True
            return names["leader.lead"]
        return point.default
''', "<one-preemption chooser>", "exec")


def test_v3_4_10_fails_with_the_stall_a_free_choice_and_one_preemption():
    path = _target("final_request_processor.py")
    source = Path(path).read_text().splitlines()
    check_line = next(i for i, line in enumerate(source, 1) if "cnxn.key.interest_ops() & WRITE == 0" in line)
    namespace = {"sys": __import__("sys")}
    exec(_ONE_PREEMPTION, namespace)
    chooser = namespace["OnePreemption"](path, check_line, drop_at=2.25)
    program = load(path + "::v3_4_10")
    run = Runner(program, RunConfig(**program.config)).run(chooser)
    assert chooser.faulted and chooser.chose and chooser.preempted
    assert run.preemptions == 2  # the stall and the one preemption; the free choice is free
    assert run.failure is not None and "CancelledKeyException" in run.failure.message
