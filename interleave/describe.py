"""A failing run made into a report: replayed for its token, shrunk, replayed again with a recorder.

The token holds digests of the user files that final run executed besides the target
(the target's own edits are the fingerprint's): a replay names those that changed since,
before its result, so a run of an edited helper is never taken for a replay of the same
program. A replay that does not fail the same way raises :class:`NondeterministicProgram`.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any, NoReturn

from .decisions import PAUSE, Decision, Draw, Fault, RunThread
from .failures import Failure, _short
from .files import is_user_file
from .places import Place, Spot
from .program import Program, target_path
from .report import INTERRUPTED, PENDING, Cost, FailureReport, ShrinkProgress
from .runner import Runner
from .schedule import PYTHON, UNKNOWN_PLACE, Token, file_digest, steps_checksum
from .scheduler import RunResult
from .shrink import Shrinker, ShrinkResult, shrink
from .story import TraceRecorder
from .strategies.replay import Locating, Replay, ScheduleMismatch
from .trace import render


@dataclass
class FoundFailure:
    """A failing run as the search saw it: its number (from 1), failure and schedule."""

    run: int
    failure: Failure
    deviations: list[Decision]
    elapsed_s: float


def describe_failures(runner: Runner, program: Program, found: list[FoundFailure], shrink_time: float | None,
                      on_found: Callable[[list[FailureReport]], None] | None = None,
                      on_shrunk: Callable[[list[FailureReport]], None] | None = None,
                      on_shrinking: Callable[[ShrinkProgress], None] | None = None) -> list[FailureReport]:
    """Each failure replayed and given its token; then (``on_found`` told) each shrunk, ``on_shrunk`` told.

    The token comes first, so that a Ctrl-C while shrinking leaves the failure as found,
    with a token that replays it, marked ``not_shrunk``. ``shrink_time`` None: interrupted
    already, do not shrink. ``on_shrinking`` hears how each shrinking goes, every
    :data:`SHRINK_PROGRESS_EVERY_S` at most, and once at its end (``done``). Raises
    :class:`NondeterministicProgram` when a replay does not fail the same way.
    """
    reports: list[FailureReport] = []
    replays: list[_Recorded] = []
    for f in found:
        try:
            report, recorded = _as_found(runner, program, f)
        except KeyboardInterrupt:
            reports += [unreplayed(g, INTERRUPTED) for g in found[len(reports):]]
            return reports
        reports.append(report)
        replays.append(recorded)
    interrupted, shrunk = shrink_time is None, 0
    try:
        if on_found is not None:
            on_found(list(reports))
        if shrink_time is not None:
            for i, f in enumerate(found):
                watch = _ShrinkWatch(on_shrinking, i + 1, len(found), cost(replays[i].run.deviations))
                reports[i] = _shrunk(runner, program, f, reports[i], replays[i], shrink_time, watch)
                shrunk = i + 1
                if on_shrunk is not None:
                    on_shrunk(list(reports))
    except KeyboardInterrupt:
        interrupted = True
    if interrupted:
        for report in reports[shrunk:]:
            report.not_shrunk = INTERRUPTED
    return reports


@dataclass
class _Recorded:
    """A schedule replayed with a recorder, and where each of its decisions was made."""

    run: RunResult
    recorder: TraceRecorder
    spots: dict[tuple[int, int, int], tuple[int, Spot]]


def _replay_recorded(runner: Runner, found: FoundFailure, deviations: list[Decision]) -> _Recorded:
    """``deviations`` replayed exactly, with a recorder; it must fail as ``found`` did."""
    recorder = TraceRecorder()
    locating = Locating(Replay(deviations, strict=True), (d.key for d in deviations))
    try:
        run: RunResult | None = runner.run_or_raise(locating, (recorder,))
    except ScheduleMismatch:
        run = None
    if run is None or not found.failure.same_as(run.failure):
        raise_nondeterministic(found.failure, run.failure if run is not None else None)
    return _Recorded(run, recorder, locating.spots)


def _as_found(runner: Runner, program: Program, found: FoundFailure) -> tuple[FailureReport, _Recorded]:
    recorded = _replay_recorded(runner, found, found.deviations)
    report = _failure_report(program, runner, found, found.deviations, recorded, recorded.run, attempts=0,
                             minimal=False)
    report.not_shrunk = PENDING
    return report, recorded


#: Seconds between two reports of how a shrinking goes.
SHRINK_PROGRESS_EVERY_S = 0.25


def cost(deviations: list[Decision]) -> Cost:
    """The paid decisions of a schedule, by kind."""
    return Cost(switches=sum(1 for d in deviations if d.paid and isinstance(d.option, RunThread)),
                pauses=sum(1 for d in deviations if d.option is PAUSE),
                faults=sum(1 for d in deviations if isinstance(d.option, Fault)),
                draws=sum(1 for d in deviations if isinstance(d.option, Draw)))


class _ShrinkWatch:
    """Tells ``tell`` how the shrinking of failure ``number`` of ``of`` goes (now and then, and at its end)."""

    def __init__(self, tell: Callable[[ShrinkProgress], None] | None, number: int, of: int, found: Cost) -> None:
        self.tell, self.number, self.of, self.found = tell, number, of, found
        self.started = self.last = time.monotonic()

    def __call__(self, shrinker: Shrinker) -> None:
        now = time.monotonic()
        if self.tell is not None and now - self.last >= SHRINK_PROGRESS_EVERY_S:
            self.last = now
            self.tell(ShrinkProgress(self.number, self.of, self.found, cost(shrinker.best), shrinker.attempts,
                                     now - self.started))

    def done(self, shrunk: ShrinkResult) -> None:
        if self.tell is not None:
            self.tell(ShrinkProgress(self.number, self.of, self.found, cost(shrunk.deviations), shrunk.attempts,
                                     time.monotonic() - self.started, done=True, minimal=shrunk.minimal))


def _shrunk(runner: Runner, program: Program, found: FoundFailure, report: FailureReport, as_found: _Recorded,
            shrink_time: float, watch: _ShrinkWatch | None = None) -> FailureReport:
    run = as_found.run
    shrunk = shrink(runner, found.failure, run.deviations, run, shrink_time, on_replay=watch)
    if watch is not None:
        watch.done(shrunk)
    # Nothing removed (no time to shrink, or nothing could go): the replay as found is the
    # shrunk one's, and so is the report made of it (a long run's trace is dear to make twice).
    same = list(shrunk.deviations) == list(run.deviations)
    if same and list(run.deviations) == list(found.deviations):
        return replace(report, shrink_attempts=shrunk.attempts, minimal=shrunk.minimal, not_shrunk=None)
    recorded = as_found if same else _replay_recorded(runner, found, shrunk.deviations)
    return _failure_report(program, runner, found, shrunk.deviations, recorded, run, shrunk.attempts,
                           shrunk.minimal)


def _failure_report(program: Program, runner: Runner, found: FoundFailure, deviations: list[Decision],
                    recorded: _Recorded, original: RunResult, attempts: int, minimal: bool) -> FailureReport:
    """The failure as ``recorded`` (the recorded replay of ``deviations``) shows it."""
    final, recorder = recorded.run, recorded.recorder
    token = _token(program, runner, deviations, recorded)
    shown = final.failure or found.failure
    return FailureReport(
        kind=shown.kind,
        message=shown.message,
        details=shown.details,
        run=found.run,
        elapsed_s=found.elapsed_s,
        replay=token.encode(),
        steps=final.steps,
        preemptions=final.preemptions,
        original_steps=original.steps,
        original_preemptions=original.preemptions,
        shrink_attempts=attempts,
        minimal=minimal,
        **asdict(cost(final.deviations)),
        trace=render(recorder, skip_setup=setup_steps(recorder)),
        thread=shown.thread,
        recorder=recorder,
        accesses=access_records(recorder),
    )


def _token(program: Program, runner: Runner, deviations: list[Decision], recorded: _Recorded) -> Token:
    """The token of a recorded replay: its decisions in the order the run met them, each with its place."""
    recorder, spots = recorded.recorder, recorded.spots
    files = frozenset(d for d in map(file_digest, executed_files(program, recorder)) if d is not None)
    met = sorted(deviations, key=lambda d: spots[d.key][0] if d.key in spots else len(spots))
    token = Token(PYTHON, program.fingerprint, runner.config, tuple(met), steps_checksum(recorder.path()), files)
    return replace(token, places=tuple(_place(program, token, spots.get(d.key)) for d in met))


def _place(program: Program, token: Token, met: tuple[int, Spot] | None) -> Place:
    if met is None:
        return UNKNOWN_PLACE
    spot = met[1]
    if spot.where is None:
        return Place(spot.text, spot.seen, 0, -1)
    code, line = spot.where
    path = os.path.abspath(code.co_filename)
    file = 0 if path == program.fingerprinted else token.file_index(file_digest(path))
    return Place(spot.text, spot.seen, line, file)


def executed_files(program: Program, recorder: TraceRecorder) -> list[str]:
    """The user files a recorded run executed, besides the one the fingerprint covers: those
    it stepped through, and those of the user modules the program imported (at load or in a
    run), whose top-level code may be all a run depends on."""
    found = {s.filename for s in recorder.steps}
    if program.modules_before is not None:
        for name, module in list(sys.modules.items()):
            filename = getattr(module, "__file__", None)
            if name not in program.modules_before and isinstance(filename, str):
                found.add(filename)
    files = {os.path.abspath(f) for f in found if is_user_file(f)}
    files.discard(program.fingerprinted)
    return sorted(files)


def changed_files(program: Program, recorder: TraceRecorder, token: Token) -> list[str]:
    """The files the run executed whose digest the token does not hold (edited, or new to
    the run), then a count of the token's files the run no longer executed."""
    current = {path: file_digest(path) for path in executed_files(program, recorder)}
    changed = [_short(path) for path, digest in current.items() if digest not in token.files]
    gone = len(token.files - set(current.values())) - len(changed)
    if gone > 0:
        changed.append(f"{gone} file{'s' if gone > 1 else ''} it executed that this run did not")
    return changed


#: Access records a report carries at most (a hang's run can have a hundred thousand).
MAX_ACCESS_RECORDS = 5_000


def access_records(recorder: TraceRecorder) -> list[dict[str, Any]]:
    """The steps that touched shared memory, for the JSON report."""
    records = []
    for index, step in enumerate(recorder.steps):
        if step.accesses:
            records.append({"step": index + 1, "thread": step.name,
                            "where": f"{target_path(step.filename)}:{step.lineno}", "accesses": list(step.accesses)})
    return records[-MAX_ACCESS_RECORDS:]


def unreplayed(found: FoundFailure, why: str) -> FailureReport:
    """A failure as the search saw it, when it could not even be replayed for its token."""
    failure = found.failure
    paid = [d for d in found.deviations if d.paid]
    return FailureReport(
        kind=failure.kind, message=failure.message, details=failure.details, run=found.run,
        elapsed_s=found.elapsed_s, replay="", steps=0, preemptions=len(paid), original_steps=0,
        original_preemptions=len(paid), shrink_attempts=0, minimal=False, trace="", thread=failure.thread,
        switches=sum(1 for d in paid if isinstance(d.option, RunThread)),
        pauses=sum(1 for d in paid if d.option is PAUSE),
        faults=sum(1 for d in paid if isinstance(d.option, Fault)),
        draws=sum(1 for d in paid if isinstance(d.option, Draw)), not_shrunk=why,
    )


def setup_steps(recorder: TraceRecorder) -> int:
    for ev in recorder.events:
        if ev.kind == "enter":
            return ev.at_step
    return 0


class NondeterministicProgram(Exception):
    """Replaying the same choices did not give the same run."""


def raise_nondeterministic(expected: Failure, got: Failure | None) -> NoReturn:
    seen = got.message if got else "no failure"
    raise NondeterministicProgram(
        f"the program is not deterministic: replaying the failing schedule gave {seen!r} "
        f"instead of {expected.message!r} (hash order, real I/O, randomness or a thread interleave does not control?)"
    )
