"""One marked test under the engine: its kept failures replayed, then its schedules explored.

Every schedule calls the test function again under the scheduler, with its
function-scoped fixtures set up afresh inside that run; the engine (``explore``,
``replay``) does the rest: patching, instrumentation, the search, shrinking.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import pytest

from .. import strategies
from ..explore import NondeterministicProgram, Report, explore, replay
from ..program import BadInput
from ..schedule import Token
from ..settings import explore_arguments
from ..story import TraceRecorder
from ..trace import render
from . import reporting
from .body import TestBody, fingerprint, is_hypothesis_test
from .coverage_bridge import CoverageBridge
from .fixtures import FreshFixtures
from .health import InterleaveHealthWarning, health_warnings
from .options import Budget
from .store import KeptFailures


class TestExploration:
    """Explores (or replays) the schedules of one marked test."""

    __test__ = False  # not a test class, whatever pytest's name patterns say

    def __init__(self, item: pytest.Function, budget: Budget) -> None:
        self.item = item
        self.budget = budget
        self.per_input = is_hypothesis_test(item.obj)
        self.fixtures = FreshFixtures(item)
        self.kept = KeptFailures(Path(str(item.config.rootpath)), self.note)
        self.coverage = CoverageBridge.if_measuring()
        self.outcome: BaseException | None = None  # a skip or xfail raised by the body
        #: Explorations without a failure, for the health warnings and --interleave-stats.
        self.passed: list[Report] = []
        self._fingerprint = fingerprint(item)

    # -- the program the engine runs

    def program(self, call: Callable[[dict[str, Any]], Any]) -> TestBody:
        """The engine's view of the test: in each run, fresh fixtures, then ``call(funcargs)``."""

        def prepare() -> Callable[[], Any]:
            if self.coverage is not None:
                self.coverage.start_run()
            funcargs = self.fixtures.renew()
            return lambda: self._guarded(call, funcargs)

        body = TestBody(display=self.item.nodeid, func_name=self.item.originalname, fingerprint=self._fingerprint,
                        fingerprinted=str(self.item.path), shared=tuple(self.fixtures.shared_values()))
        body.prepare = prepare
        return body

    def _guarded(self, call: Callable[[dict[str, Any]], Any], funcargs: dict[str, Any]) -> None:
        try:
            call(funcargs)
        except (pytest.skip.Exception, pytest.xfail.Exception) as exc:
            # Not a failure of the schedule: pytest reports it once exploring is done.
            self.outcome = exc

    # -- plain tests

    def run_plain_test(self) -> None:
        test = self.item.obj
        argnames = self.item._fixtureinfo.argnames
        program = self.program(lambda funcargs: test(**{name: funcargs[name] for name in argnames}))
        self.fixtures.release_outside_run()
        try:
            self._replay_then_explore(program)
        finally:
            self.merge_coverage()
        self.finish()

    def merge_coverage(self) -> None:
        if self.coverage is not None:
            self.coverage.merge()

    def finish(self) -> None:
        """No schedule failed: a skip or xfail of the body is the outcome; else the test passed."""
        if self.outcome is not None:
            raise self.outcome
        for warning in health_warnings(self.item.nodeid, self.passed):
            self.item.warn(InterleaveHealthWarning(warning))
        if self.passed and self.item.config.getoption("interleave_stats"):
            self.item.user_properties.append((reporting.STATS, reporting.stats_line(self.item.nodeid, self.passed)))

    def _replay_then_explore(self, program: TestBody) -> None:
        budget = self.budget
        if budget.replay is not None:
            if self._replay(program, budget.replay, "the replay token"):
                return
        else:
            for path, token in self.kept.tokens(self.item.nodeid):
                self._replay(program, token, f"the kept failure {self.kept.display(path)}", kept=path)
        self.check_report(self.explore(program))

    def explore(self, program: TestBody, shrink: bool = True) -> Report:
        arguments = explore_arguments(self.budget.settings)
        if not shrink:
            arguments["shrink_time"] = 0.0
        try:
            report = explore(program, **arguments)
            if report.workers != 1 and report.outcome.verdict and self.outcome is None:
                # A skip or xfail the body raised in a worker process stayed there: the default
                # order, run here, raises it again if it raises one at all.
                explore(program, **{**arguments, "runs": 1, "workers": 1, "shrink_time": 0.0})
            return report
        except (BadInput, NondeterministicProgram) as exc:
            pytest.fail(f"interleave: {exc}", pytrace=False)

    def _replay(self, program: TestBody, token: str, what: str, kept: Path | None = None) -> bool:
        """Run one schedule; fail the test if it fails. False (with a note) if it cannot be run.

        On code changed since the token was made, the schedule is followed by place as far as
        it fits (:mod:`interleave.replaying`): a failure fixed since replays and passes, which
        confirms the fix, and the token stays to go on confirming it."""
        try:
            outcome = replay(program, token, go_on=True)
        except BadInput as exc:
            if kept is not None:
                self.kept.drop(kept)
            self.note(f"{what} no longer fits and was dropped; the test was explored instead ({exc})")
            return False
        changed = f" (with {', '.join(outcome.changed)} changed since it was made)" if outcome.changed else ""
        if outcome.failure is None:
            if outcome.diverged is not None:
                self.note(f"{what} ran without failing on the changed code{changed}, though not all of its "
                          f"schedule fits it any more ({outcome.diverged})")
            elif kept is None or outcome.by_place:
                self.note(f"{what} ran without failing ({outcome.steps:,} steps){changed}")
            return True
        failure = outcome.failure
        head = f"replayed {what}: {outcome.preemptions} preemption(s), {outcome.steps:,} steps{changed}"
        self.kept.keep(self.item.nodeid, token)
        self.fail(failure.kind, failure.message, head, self.trace(outcome.recorder), failure.details, token)

    def check_report(self, report: Report) -> None:
        """Fail the test with what the exploration found; keep the report if nothing was."""
        if report.interrupted:
            raise KeyboardInterrupt
        if report.uncontrolled is not None:
            pytest.fail(f"interleave cannot explore this test: it used {report.uncontrolled}", pytrace=False)
        if report.nondeterministic is not None:
            pytest.fail(f"interleave: {report.nondeterministic}", pytrace=False)
        failure = report.failure
        if failure is None:
            self.passed.append(report)
            return
        if failure.run > 1 and _first_run_in_default_order(report.strategy) and _default_order(failure.replay):
            pytest.fail(
                f"interleave: the test does not repeat itself: its first run, in the default order, passed, and "
                f"run {failure.run:,}, in that same order, failed ({failure.message}). Something keeps state from "
                f"one call of the test to the next (a module global, a class attribute, a cache): reset it at the "
                f"start of the test or in a function-scoped fixture.", pytrace=False)
        if not self.per_input:
            self.kept.keep(self.item.nodeid, failure.replay)
        workers = f"{report.workers} worker{'s' if report.workers != 1 else ''}"
        head = (f"found in run {failure.run:,} after {failure.elapsed_s:.2f}s [{report.strategy}, seed {report.seed}, "
                f"{workers}]; shrunk to {failure.preemptions} preemption(s), {failure.steps:,} steps")
        trace = self.trace(failure.recorder) if failure.recorder is not None else failure.trace
        self.fail(failure.kind, failure.message, head, trace, failure.details, failure.replay)

    def trace(self, recorder: TraceRecorder) -> str:
        """The failing run's trace: cut past :data:`~interleave.trace.TRACE_LIMIT` lines, saying how to
        see it whole, or whole with ``--interleave-full``."""
        return render(recorder, skip_setup=recorder.story().setup,
                      full=bool(self.item.config.getoption("interleave_full")),
                      more="--interleave-full prints the whole trace")

    def fail(self, kind: str, message: str, head: str, trace: str, details: str, token: str) -> NoReturn:
        pytest.fail(reporting.failure_text(self.item, kind, message, head, trace, details, token, self.per_input),
                    pytrace=False)

    def note(self, text: str) -> None:
        reporting.note(self.item, text)


def _first_run_in_default_order(strategy: str) -> bool:
    return strategies.make(strategy).first_run_in_default_order


def _default_order(token: str) -> bool:
    return not Token.decode(token).deviations
