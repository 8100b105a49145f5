"""targets/nio_throttle.py, final_request_processor.py, session_lock.py: every buggy
variant fails the way its docstring says, every fixed variant survives the same search.

Budgets are runs (not seconds) so the outcome does not depend on the machine; shrinking
gets a few seconds only, except for nio_throttle, whose shrunk schedule is checked.
"""
from pathlib import Path

import pytest

from interleave import explore, replay
from interleave.program import load
from interleave.runner import Runner
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
    faults = [d for d in decoded.deviations if d.choice <= -2]
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
    assert [d.choice for d in run.deviations] == [faults[0].choice]  # the stall did happen
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
