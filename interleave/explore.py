"""Exploration: run a program under a strategy until a failure or the budget, then report.

A failure is shrunk, replayed once more with a recorder (which also checks that the
program repeats itself), and described with its trace and replay token. The token holds
digests of the user files that final run executed besides the target (the target's own
edits are the fingerprint's): a replay names those that changed since, before its result,
so a run of an edited helper is never taken for a replay of the same program.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable

from . import strategies
from .census import Census
from .failures import Failure, _short
from .files import is_user_file
from .linecoverage import LineCollector
from .program import BadInput, Program, load, target_path
from .runner import DEFAULT_MAX_STEPS, RunConfig, Runner
from .schedule import PYTHON, Token, file_digest, steps_checksum
from .scheduler import DRAW_SUB, JUMP, Deviation, RunResult
from .shrink import shrink
from .strategies.dfs import Nondeterminism
from .strategies.replay import Replay, ScheduleMismatch
from .story import TraceRecorder
from .trace import render

DEFAULT_RUNS = 10_000
DEFAULT_TIME_LIMIT = 60.0
#: :attr:`FailureReport.not_shrunk` when a Ctrl-C (or SIGTERM, SIGHUP at the command) stopped shrinking.
INTERRUPTED = "interrupted"
#: :attr:`FailureReport.not_shrunk` of a failure reported before its shrinking starts.
PENDING = "not shrunk yet"


@dataclass
class FailureReport:
    kind: str
    message: str
    details: str
    run: int
    elapsed_s: float
    replay: str
    steps: int
    preemptions: int
    original_steps: int
    original_preemptions: int
    shrink_attempts: int
    minimal: bool
    trace: str
    thread: str | None = None
    #: The shrunk schedule's paid decisions by kind: ``preemptions`` counts them all.
    switches: int = 0
    pauses: int = 0
    faults: int = 0
    draws: int = 0
    #: What the failing run's steps read and wrote, in the program's terms: one entry per
    #: step that touched shared memory (``{"step", "thread", "where", "accesses"}``).
    accesses: list[dict[str, Any]] = field(default_factory=list)
    #: Why this is the schedule as found, not shrunk (:data:`INTERRUPTED`, or the shrinking
    #: process died); with ``replay`` empty when not even its token could be made.
    not_shrunk: str | None = None
    #: The final replay's steps and events (for ``--html``); left out of :meth:`Report.to_json`.
    recorder: TraceRecorder | None = field(default=None, repr=False, compare=False)


@dataclass
class Report:
    """The outcome of an exploration (the CLI's ``--json`` writes these fields)."""

    target: str
    strategy: str
    seed: int
    runs: int = 0
    steps: int = 0
    elapsed_s: float = 0.0
    exhausted: bool = False
    bound: int | None = None
    complete: bool = False
    distinct_schedules: int = 0
    failure: FailureReport | None = None
    interrupted: bool = False
    uncontrolled: str | None = None
    nondeterministic: str | None = None
    confidence: dict[str, Any] = field(default_factory=dict)
    coverage: dict[str, list[int]] | None = None
    workers: int = 1
    #: Every distinct failure (kind and place) with ``keep_going``; else the failure, if any.
    failures: list[FailureReport] = field(default_factory=list)
    #: One line per worker process that died, saying what it was running.
    worker_deaths: list[str] = field(default_factory=list)
    #: Where threads could switch: ``access`` (every shared access), ``line`` or ``opcode``.
    granularity: str = "access"
    #: Installed packages the program's code called that ran without switch points, with
    #: the number of calls in a run in the default order (``--include`` explores inside).
    uninstrumented: dict[str, int] = field(default_factory=dict)
    #: False when no code of the user's ran with switch points (nothing could be explored).
    user_code_ran: bool = True
    #: Workers given up after their processes kept dying: their share of the search was not run.
    lost_workers: list[int] = field(default_factory=list)

    def unbacked(self) -> str | None:
        """Why "no failure" cannot be said of what ran (None when it can, or something else is said)."""
        if self.failure is not None or self.interrupted or self.uncontrolled or self.nondeterministic:
            return None
        if self.lost_workers:
            which = ", ".join(map(str, self.lost_workers))
            return (f"the share of worker{'s' if len(self.lost_workers) > 1 else ''} {which} of the search was not run "
                    f"(their processes kept dying); {self.runs:,} runs completed")
        if self.runs == 0:
            return "no run completed within the budget"
        return None
    #: Data races seen (one per pair of locations) in the runs checked for them (every run
    #: with races on, else every ``every``-th): ``{"seen", "runs_checked", "every", "places"}``.
    races: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = asdict(replace(self, failure=None, failures=[]))
        if self.failure is not None:
            out["failure"] = asdict(replace(self.failure, recorder=None))
            del out["failure"]["recorder"]
        out["failures"] = [{k: v for k, v in asdict(replace(f, recorder=None)).items() if k != "recorder"}
                           for f in self.failures]
        return out


@dataclass
class Progress:
    runs: int
    steps: int
    elapsed_s: float


def explore(
    target: str | Callable[[], Any] | Program,
    *,
    runs: int | None = None,
    time_limit: float | None = None,
    seed: int = 0,
    strategy: str = "portfolio",
    depth: int = 3,
    max_preemptions: int = 2,
    max_steps: int | None = None,
    max_pauses: int | None = None,
    max_faults: int | None = None,
    granularity: str = "access",
    include: tuple[str, ...] | list[str] = (),
    shrink_time: float = 30.0,
    on_progress: Callable[[Progress], None] | None = None,
    partition: tuple[int, int] = (0, 1),
    workers: int | str | Any = 1,
    keep_going: bool = False,
    coverage: bool = False,
    on_found: Callable[[list[FailureReport]], None] | None = None,
    races: bool = False,
) -> Report:
    """Explore schedules of ``target`` (``"path.py::func"`` or a callable) for a failure.

    The budget is ``runs`` and/or ``time_limit`` (seconds), whichever ends first; with
    neither, 10,000 runs or 60 seconds. Raises :class:`BadInput` for unusable input.

    ``coverage=True`` collects the lines of the user's code run over all runs into
    ``Report.coverage`` (``{filename: [line, ...]}``).

    ``partition=(i, n)`` explores only worker ``i``'s share of an ``n``-way split: run
    indices ``i, i+n, i+2n...`` for sampling strategies (so seeds never overlap).

    ``workers``: split the search among this many processes, or run it on the Dask
    cluster at this scheduler address (or behind this ``distributed.Client``); see
    :mod:`interleave.workers`. ``include``: installed modules or packages (or paths)
    whose code gets switch points like the user's own. ``keep_going``: do not stop at the
    first failure; report every distinct one. ``on_found``: called with the failures as
    found (replayed, with their tokens), before shrinking starts.

    A failure found is reported even when shrinking it is interrupted: as found, with
    ``not_shrunk`` set and ``interrupted`` true. ``races``: a data race
    (see :mod:`interleave.races`) is a failure; without it, some runs are checked for races
    all the same and ``Report.races`` counts what they saw.
    """
    _check_numbers(runs=(runs, 1), max_steps=(max_steps, 1), max_pauses=(max_pauses, 0),
                   max_faults=(max_faults, 0), depth=(depth, 1), max_preemptions=(max_preemptions, 0))
    _check_seconds(time_limit=time_limit, shrink_time=shrink_time)
    program = target if isinstance(target, Program) else load(target)
    if races and granularity != "access":
        raise BadInput("races are found from the shared accesses: use them with --granularity access")
    if coverage and (workers != 1 or keep_going):
        raise BadInput("coverage is collected in one process: use it with --workers 1")
    if workers != 1 or keep_going:
        from .workers import explore_parallel

        if partition != (0, 1):
            raise BadInput("partition and workers cannot be combined")
        if runs is None and time_limit is None:
            runs, time_limit = DEFAULT_RUNS, DEFAULT_TIME_LIMIT
        return explore_parallel(program, workers=workers, keep_going=keep_going, runs=runs, time_limit=time_limit,
                                seed=seed, strategy=strategy, depth=depth, max_preemptions=max_preemptions,
                                max_steps=max_steps, max_pauses=max_pauses, max_faults=max_faults,
                                granularity=granularity, include=tuple(include), shrink_time=shrink_time,
                                on_progress=on_progress, on_found=on_found, races=races)
    config = _config(program, max_steps, max_pauses, max_faults, granularity, tuple(include), races)
    if runs is None and time_limit is None:
        runs, time_limit = DEFAULT_RUNS, DEFAULT_TIME_LIMIT
    try:
        chooser = strategies.make(strategy, seed=seed, depth=depth, max_preemptions=max_preemptions)
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    runner = Runner(program, config)
    try:
        return _explore_here(program, runner, chooser, runs, time_limit, seed, strategy, shrink_time, on_progress,
                             partition, coverage, on_found)
    finally:
        runner.close()


def _explore_here(program: Program, runner: Runner, chooser: strategies.Strategy, runs: int | None,
                  time_limit: float | None, seed: int, strategy: str, shrink_time: float,
                  on_progress: Callable[[Progress], None] | None, partition: tuple[int, int],
                  coverage: bool, on_found: Callable[[list[FailureReport]], None] | None) -> Report:
    report = Report(target=program.display, strategy=strategy, seed=seed, granularity=runner.config.granularity)
    collector = LineCollector() if coverage else None
    started = time.monotonic()
    runner.deadline = None if time_limit is None else started + time_limit
    last_progress = started
    seen: set[int] = set()
    found: FoundFailure | None = None
    race_count = RaceCount()
    try:
        while runs is None or report.runs < runs:
            elapsed = time.monotonic() - started
            if time_limit is not None and elapsed >= time_limit:
                break
            if not chooser.begin_run(partition[0] + report.runs * partition[1]):
                break
            counting = race_count.due(report.runs, runner)
            try:
                result = runner.run(chooser, observer=collector, check_races=counting)
            except Nondeterminism as exc:
                report.nondeterministic = f"the program did not repeat itself under the same choices ({exc})"
                break
            chooser.end_run(result)
            if counting:
                race_count.add(result)
            report.runs += 1
            report.steps += result.steps
            seen.add(hash(tuple((d.thread, d.steps, d.sub, d.choice) for d in result.deviations)))
            if result.extra.get("interrupted"):
                report.interrupted = True
                break
            if result.uncontrolled is not None:
                report.uncontrolled = result.uncontrolled
                break
            if result.failure is not None:
                found = FoundFailure(report.runs, result.failure, list(result.deviations), time.monotonic() - started)
                break
            if on_progress is not None and time.monotonic() - last_progress > 0.25:
                last_progress = time.monotonic()
                on_progress(Progress(report.runs, report.steps, last_progress - started))
    except KeyboardInterrupt:
        report.interrupted = True
    runner.deadline = None  # shrinking keeps to its own time
    report.elapsed_s = time.monotonic() - started
    report.distinct_schedules = len(seen)
    apply_census(report, runner.census)
    report.races = race_count.summary()
    if collector is not None:
        report.coverage = collector.as_json()
    _summarize_search(report, chooser)
    if found is not None:
        report.failures = describe_failures(runner, program, [found], shrink_time, on_found)
        report.failure = report.failures[0]
        report.interrupted = report.interrupted or report.failure.not_shrunk == INTERRUPTED
    return report


def _check_numbers(**values: tuple[Any, int]) -> None:
    """Each ``name=(value, least)``: None, or an int (not a bool) of at least ``least``."""
    for name, (value, least) in values.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
            raise BadInput(f"{name.replace('_', ' ')} must be a whole number of at least {least}, not {value!r}")


def _check_seconds(**values: Any) -> None:
    for name, value in values.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or value < 0):
            raise BadInput(f"{name.replace('_', ' ')} must be a finite number of seconds, 0 or more, not {value!r}")


#: ``__interleave__`` settings a target may give, with their defaults and least values.
_SETTINGS = {"max_steps": (DEFAULT_MAX_STEPS, 1), "max_pauses": (2, 0), "max_faults": (2, 0), "max_draws": (2, 0)}


#: With races off, run 0 and every this-many-th run after it are checked for races: a
#: run that notes its accesses costs more than one that does not.
RACE_CHECK_EVERY = 16


class RaceCount:
    """The races seen in the runs checked for them while races are not failures."""

    def __init__(self) -> None:
        self.places: dict[tuple, None] = {}
        self.runs = 0
        self.every = RACE_CHECK_EVERY

    def due(self, run: int, runner: Runner) -> bool:
        """Whether this run is checked: every run with races on (it is anyway), else every N-th."""
        if runner.config.races:
            self.every = 1
        return runner.accesses and (runner.config.races or run % RACE_CHECK_EVERY == 0)

    def add(self, result: RunResult) -> None:
        if "races" in result.extra:
            self.runs += 1
            self.places.update(dict.fromkeys(result.extra["races"]))

    def summary(self) -> dict[str, Any]:
        """``{"seen", "runs_checked", "places"}``; empty when no run was checked."""
        if not self.runs:
            return {}
        return {"seen": len(self.places), "runs_checked": self.runs, "every": self.every,
                "places": [race_place_text(p) for p in self.places]}


def race_place_text(place: tuple) -> str:
    """``a.py:5 (write) / a.py:7 (read)``: a race's pair of locations, for reports."""
    return " / ".join(f"{target_path(f)}:{line} ({'write' if w else 'read'})" for f, line, w in place[1:])


def merge_races(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two processes' race counts as one (the places, deduplicated)."""
    if not a:
        return b
    places = list(dict.fromkeys(a["places"] + b["places"]))
    return {"seen": len(places), "runs_checked": a["runs_checked"] + b["runs_checked"], "every": a["every"],
            "places": places}


def _config(program: Program, max_steps: int | None, max_pauses: int | None, max_faults: int | None,
            granularity: str, include: tuple[str, ...] = (), races: bool = False) -> RunConfig:
    """Command-line values win; then the target's ``__interleave__`` settings; then defaults."""
    settings = program.config or {}
    for name, value in settings.items():
        if name not in _SETTINGS:
            raise BadInput(f"__interleave__ of {program.display}: unknown setting {name!r} "
                           f"(known: {', '.join(_SETTINGS)})")
        least = _SETTINGS[name][1]
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise BadInput(f"__interleave__ of {program.display}: {name} must be a whole number of at least "
                           f"{least}, not {value!r}")

    def pick(given: int | None, name: str) -> int:
        return given if given is not None else settings.get(name, _SETTINGS[name][0])

    return RunConfig(max_steps=pick(max_steps, "max_steps"), max_pauses=pick(max_pauses, "max_pauses"),
                     max_faults=pick(max_faults, "max_faults"), granularity=granularity,
                     max_draws=pick(None, "max_draws"),  # draws of random a run may change (interleave.draws)
                     include=tuple(include), races=races)


def apply_census(report: Report, census: Census | None) -> None:
    if census is not None:
        report.uninstrumented = dict(census.uninstrumented)
        report.user_code_ran = census.user_calls > 0


def _summarize_search(report: Report, chooser: strategies.Strategy) -> None:
    summary = chooser.summary()
    dfs = summary.get("dfs", summary if isinstance(chooser, strategies.BoundedDFS) else None)
    if dfs and report.user_code_ran:  # with no code of the user's run, nothing was explored
        report.exhausted = chooser.exhausted()
        report.bound = dfs.get("bound")
        report.complete = bool(dfs.get("complete"))
    pct = summary.get("pct") or ([summary] if isinstance(chooser, strategies.PCT) else [])
    report.confidence = confidence_from(pct)


def confidence_from(pct: list[dict[str, Any]]) -> dict[str, Any]:
    """The report's confidence figures from PCT members' summaries."""
    confidence = {}
    for entry in pct:
        p = entry["per_run_probability"]
        needed = math.ceil(math.log(0.01) / math.log1p(-p)) if 0 < p < 1 else 1
        confidence[f"pct_depth_{entry['depth']}"] = {
            "threads": entry["threads"],
            "steps_k": entry["steps_k"],
            "per_run_probability": p,
            "runs_for_99_percent": needed,
        }
    return confidence


@dataclass
class FoundFailure:
    """A failing run as the search saw it: its number (from 1), failure and schedule."""

    run: int
    failure: Failure
    deviations: list[Deviation]
    elapsed_s: float


def describe_failures(runner: Runner, program: Program, found: list[FoundFailure], shrink_time: float | None,
                      on_found: Callable[[list[FailureReport]], None] | None = None,
                      on_shrunk: Callable[[list[FailureReport]], None] | None = None) -> list[FailureReport]:
    """Each failure replayed and given its token; then (``on_found`` told) each shrunk, ``on_shrunk`` told.

    The token comes first, so that a Ctrl-C while shrinking leaves the failure as found,
    with a token that replays it, marked ``not_shrunk``. ``shrink_time`` None: interrupted
    already, do not shrink. Raises :class:`NondeterministicProgram` when a replay does not
    fail the same way.
    """
    reports: list[FailureReport] = []
    runs: list[RunResult] = []
    for f in found:
        try:
            report, run = _as_found(runner, program, f)
        except KeyboardInterrupt:
            reports += [unreplayed(g, INTERRUPTED) for g in found[len(reports):]]
            return reports
        reports.append(report)
        runs.append(run)
    interrupted, shrunk = shrink_time is None, 0
    try:
        if on_found is not None:
            on_found(list(reports))
        if shrink_time is not None:
            for i, f in enumerate(found):
                reports[i] = _shrunk(runner, program, f, runs[i], shrink_time)
                shrunk = i + 1
                if on_shrunk is not None:
                    on_shrunk(list(reports))
    except KeyboardInterrupt:
        interrupted = True
    if interrupted:
        for report in reports[shrunk:]:
            report.not_shrunk = INTERRUPTED
    return reports


def _as_found(runner: Runner, program: Program, found: FoundFailure) -> tuple[FailureReport, RunResult]:
    recorder = TraceRecorder()
    try:
        run = runner.run_or_raise(Replay(found.deviations, strict=True), recorder)
    except ScheduleMismatch:
        run = None
    if run is None or not found.failure.same_as(run.failure):
        raise_nondeterministic(found.failure, run.failure if run is not None else None)
    report = _failure_report(program, runner, found, found.deviations, run, recorder, run, attempts=0, minimal=False)
    report.not_shrunk = PENDING
    return report, run


def _shrunk(runner: Runner, program: Program, found: FoundFailure, run: RunResult, shrink_time: float) -> FailureReport:
    shrunk = shrink(runner, found.failure, run.deviations, run, shrink_time)
    recorder = TraceRecorder()
    try:
        final = runner.run_or_raise(Replay(shrunk.deviations, strict=True), recorder)
    except ScheduleMismatch:
        final = None
    if final is None or not found.failure.same_as(final.failure):
        raise_nondeterministic(found.failure, final.failure if final is not None else None)
    return _failure_report(program, runner, found, shrunk.deviations, final, recorder, run, shrunk.attempts,
                           shrunk.minimal)


def _failure_report(program: Program, runner: Runner, found: FoundFailure, deviations: list[Deviation],
                    final: RunResult, recorder: TraceRecorder, original: RunResult, attempts: int,
                    minimal: bool) -> FailureReport:
    """The failure as ``final`` (the recorded replay of ``deviations``) shows it."""
    files = frozenset(d for d in map(file_digest, executed_files(program, recorder)) if d is not None)
    token = Token(PYTHON, program.fingerprint, runner.config, tuple(deviations), steps_checksum(recorder.path()),
                  files)
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
        switches=sum(1 for d in final.deviations if d.cost and d.choice >= 0),
        pauses=sum(1 for d in final.deviations if d.choice == JUMP),
        faults=sum(1 for d in final.deviations if d.cost and d.choice <= -2 and d.sub < DRAW_SUB),
        draws=sum(1 for d in final.deviations if d.cost and d.sub >= DRAW_SUB),
        trace=render(recorder, shown, skip_setup=setup_steps(recorder)),
        thread=shown.thread,
        recorder=recorder,
        accesses=access_records(recorder),
    )


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
    paid = [d for d in found.deviations if d.cost]
    return FailureReport(
        kind=failure.kind, message=failure.message, details=failure.details, run=found.run,
        elapsed_s=found.elapsed_s, replay="", steps=0, preemptions=len(paid), original_steps=0,
        original_preemptions=len(paid), shrink_attempts=0, minimal=False, trace="", thread=failure.thread,
        switches=sum(1 for d in paid if d.choice >= 0), pauses=sum(1 for d in paid if d.choice == JUMP),
        faults=sum(1 for d in paid if d.choice <= -2 and d.sub < DRAW_SUB),
        draws=sum(1 for d in paid if d.sub >= DRAW_SUB), not_shrunk=why,
    )


def setup_steps(recorder: TraceRecorder) -> int:
    for ev in recorder.events:
        if ev.kind == "enter":
            return ev.at_step
    return 0


class NondeterministicProgram(Exception):
    """Replaying the same choices did not give the same run."""


def raise_nondeterministic(expected: Failure, got: Failure | None) -> None:
    seen = got.message if got else "no failure"
    raise NondeterministicProgram(
        f"the program is not deterministic: replaying the failing schedule gave {seen!r} "
        f"instead of {expected.message!r} (hash order, real I/O, randomness or a thread interleave does not control?)"
    )


@dataclass
class ReplayOutcome:
    failure: Failure | None
    trace: str
    steps: int
    preemptions: int
    recorder: TraceRecorder
    #: User files that changed since the token was made (see :func:`changed_files`).
    changed: list[str] = field(default_factory=list)


def replay(target: str | Callable[[], Any] | Program, token: str) -> ReplayOutcome:
    """Run exactly the schedule in ``token``; raises :class:`BadInput` if it does not fit."""
    decoded = Token.decode(token)
    program = target if isinstance(target, Program) else load(target)
    recorder = TraceRecorder()

    def misfit(reason: str) -> BadInput:
        changed = changed_files(program, recorder, decoded)
        note = f" (changed since the token was made: {', '.join(changed)})" if changed else ""
        if decoded.python != PYTHON:  # line events differ between versions: say so, whatever broke
            return BadInput(
                f"this token was made on Python {decoded.python[0]}.{decoded.python[1:]} and does not replay "
                f"the same on {PYTHON[0]}.{PYTHON[1:]}; explore again on this version{note}"
            )
        return BadInput(f"the schedule no longer fits the program: {reason}{note}")

    if decoded.fingerprint != program.fingerprint:
        if decoded.python != PYTHON and program.path is None:
            raise misfit("")  # a function's fingerprint is its bytecode, which each version compiles anew
        raise BadInput(
            f"the replay token was made for another version of {program.display} "
            f"(fingerprint {decoded.fingerprint}, now {program.fingerprint}); explore again"
        )
    runner = Runner(program, decoded.config)
    chooser = Replay(list(decoded.deviations), strict=True)
    try:
        result = runner.run(chooser, recorder)
    except ScheduleMismatch as exc:
        raise misfit(str(exc)) from None
    finally:
        runner.close()
    if result.uncontrolled is not None:
        raise BadInput(f"cannot replay: the program used {result.uncontrolled}")
    if not chooser.all_used():
        raise misfit("some of its decisions were never reached")
    if steps_checksum(recorder.path()) != decoded.checksum:
        raise misfit("the replay took a different path (the program changed or is not deterministic)")
    failure = result.failure
    return ReplayOutcome(failure, render(recorder, failure, skip_setup=setup_steps(recorder)),
                         result.steps, result.preemptions, recorder, changed_files(program, recorder, decoded))


__all__ = ["explore", "replay", "Report", "FailureReport", "ReplayOutcome", "Progress", "BadInput",
           "NondeterministicProgram", "Deviation"]
