"""The campaign: the one loop over runs, how it is told to stop, and one report from what it ran.

A campaign searches a program's schedules under a strategy until a failure, the budget, or
the end of what the strategy can explore, then describes what it found
(:mod:`interleave.describe`). The loop (:func:`search`) searches one *slot*: the whole
search in this process (:func:`run_here`), or one worker's share of it, in a worker process
or a Dask task (:mod:`interleave.workers`). A :class:`Control` is all that differs: how the
loop hears that it may stop early and where it says what it is doing.

Slot ``w`` of ``n``'s ``r``-th run (from 0) has the *key* ``r*n + w``, its run index for
the sampling strategies. The campaign's failure is the one with the smallest key, whatever
finished first: when a slot fails, the others are told to stop at that key, and every slot
runs each key below it, so the same seed and the same ``n`` give the same failure and token.
:func:`merge` trims the counts at the failing key, so they repeat too.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import strategies
from .census import Census
from .decisions import Decision, schedule_id
from .describe import FoundFailure, describe_failures
from .failures import Failure
from .linecoverage import LineCollector
from .program import BadInput, Program, load
from .report import INTERRUPTED, FailureReport, Progress, Report, ShrinkProgress, confidence_from, race_place_text
from .runner import DEFAULT_MAX_STEPS, RunConfig, Runner
from .scheduler import RunResult
from .strategies.base import Enumeration, PctFigures
from .strategies.dfs import Nondeterminism

#: A key no run reaches: "nobody has to stop".
NO_LIMIT = 2**62
#: The steps of a run that was skipped (it had killed a worker).
SKIPPED = -1
#: Seconds between two calls of ``on_progress``.
PROGRESS_EVERY_S = 0.25

#: ``__interleave__`` settings a target may give, with their defaults and least values.
_SETTINGS = {"max_steps": (DEFAULT_MAX_STEPS, 1), "max_pauses": (2, 0), "max_faults": (2, 0), "max_draws": (2, 0)}


def run_config(program: Program, max_steps: int | None, max_pauses: int | None, max_faults: int | None,
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


#: With races off, run 0 and every this-many-th run after it are checked for races: a
#: run that notes its accesses costs more than one that does not.
RACE_CHECK_EVERY = 16


class RaceCount:
    """The races seen in the runs checked for them while races are not failures."""

    def __init__(self) -> None:
        #: Per run checked: its position among the slot's runs, and the places of the races it saw.
        self.checks: list[tuple[int, tuple[Any, ...]]] = []
        self.every = RACE_CHECK_EVERY

    def due(self, run: int, runner: Runner) -> bool:
        """Whether this run is checked: every run with races on (it is anyway), else every N-th."""
        if runner.config.races:
            self.every = 1
        return runner.accesses and (runner.config.races or run % RACE_CHECK_EVERY == 0)

    def add(self, run: int, result: RunResult) -> None:
        if "races" in result.extra:
            self.checks.append((run, tuple(result.extra["races"])))


def race_summary(counts: list[tuple[RaceCount, int]]) -> dict[str, Any]:
    """``{"seen", "runs_checked", "every", "places"}`` over each count's runs before its limit; empty: none checked."""
    places: dict[tuple[Any, ...], None] = {}
    checked = 0
    for count, limit in counts:
        for run, seen in count.checks:
            if run < limit:
                checked += 1
                places.update(dict.fromkeys(seen))
    if not checked:
        return {}
    return {"seen": len(places), "runs_checked": checked, "every": counts[0][0].every,
            "places": [race_place_text(p) for p in places]}


@dataclass
class Job:
    """Everything a slot's search needs: the campaign's settings and which share is its own.

    Picklable (for worker processes), except a callable program: a process that cannot
    inherit ``program`` loads it again from ``spec`` and checks its ``fingerprint``.
    """

    program: Program | None
    spec: str | None
    fingerprint: str
    config: RunConfig
    strategy: str
    seed: int
    depth: int
    max_preemptions: int | None
    slot: int
    slots: int
    runs: int | None
    time_limit: float | None
    keep_going: bool
    skip: frozenset[int] = frozenset()  # runs not to run: r >= 1 the r-th run, -d the d-th shared run
    #: Collect the lines of the user's code that the runs executed.
    coverage: bool = False

    def load(self) -> Program:
        """The program: inherited, or loaded again from ``spec``."""
        if self.program is not None:
            return self.program
        assert self.spec is not None, "a job without its program (a callable) names it"
        return load(self.spec)


@dataclass
class Found:
    """A failing run as a slot saw it."""

    key: int
    failure: Failure
    deviations: list[Decision]
    elapsed_s: float


@dataclass
class SlotResult:
    """What one slot did: per-run figures (trimmed when merging), failures, how its search ended."""

    slot: int
    steps: array[int] = field(default_factory=lambda: array("q"))  # per run, in order
    schedules: array[int] = field(default_factory=lambda: array("q"))  # hash of each run's deviations
    found: list[Found] = field(default_factory=list)
    stopped_at: int | None = None  # key of an uncontrolled or nondeterministic run
    uncontrolled: str | None = None
    nondeterministic: str | None = None
    interrupted: bool = False
    exhausted: bool = False
    #: Runs made when this slot's share of the portfolio's enumeration was complete (None: not).
    enumerated_at: int | None = None
    enumeration: Enumeration | None = None
    pct: tuple[PctFigures, ...] = ()
    census: Census | None = None  # see interleave.census
    races: RaceCount = field(default_factory=RaceCount)  # the runs checked for races (see RaceCount)
    coverage: dict[str, list[int]] | None = None  # with Job.coverage: {filename: [line, ...]}


class Control(Protocol):
    """How a searching slot hears when to stop and says what it is doing."""

    def limit(self) -> int:
        """Keys at or above this are not to be run."""

    def lower(self, key: int) -> None:
        """A run with this key failed (or must end the campaign): nobody needs keys above it."""

    def running(self, run: int, member: int) -> None:
        """About to start run ``run`` (``-d``: the d-th shared run) of strategy member ``member``."""

    def progress(self, runs: int, steps: int) -> None:
        """Runs and steps counted so far (for the progress line)."""

    def enumerated(self) -> bool:
        """This slot's share of the enumeration is complete: is every slot's (so no schedule is left)?"""


class InProcess:
    """The control of a slot searched in this process, with nobody else to hear from.

    ``whole``: the slot is the whole search (else one share of a split whose other shares
    run elsewhere, so its enumeration's being complete is not the program's).
    """

    def __init__(self, on_progress: Callable[[Progress], None] | None = None, whole: bool = True) -> None:
        self.stop = NO_LIMIT
        self.on_progress = on_progress
        self.whole = whole
        self.started = self.last_progress = time.monotonic()

    def limit(self) -> int:
        return self.stop

    def lower(self, key: int) -> None:
        self.stop = min(self.stop, key)

    def running(self, run: int, member: int) -> None:
        pass

    def progress(self, runs: int, steps: int) -> None:
        if self.on_progress is not None and time.monotonic() - self.last_progress > PROGRESS_EVERY_S:
            self.last_progress = time.monotonic()
            self.on_progress(Progress(runs, steps, self.last_progress - self.started))

    def enumerated(self) -> bool:
        return self.whole


def search(job: Job, control: Control, runner: Runner | None = None) -> SlotResult:
    """Search one slot until its budget, the campaign's stop key, or (unless keep_going) a failure.

    ``runner``: run in this one (left open, for describing what was found); else in a new one.
    """
    program = job.load()
    if program.fingerprint != job.fingerprint:
        raise BadInput(f"{program.display} differs here from the file the campaign started with; "
                       "every worker must see the same files")
    chooser = strategies.make(job.strategy, seed=job.seed, depth=job.depth, max_preemptions=job.max_preemptions)
    chooser.partition(job.slot, job.slots)
    own_runner = runner is None
    if runner is None:
        runner = Runner(program, job.config)
    collector = LineCollector() if job.coverage else None
    out = SlotResult(job.slot)
    seen_places: set[tuple[Any, ...]] = set()
    race_count = RaceCount()
    started = time.monotonic()
    runner.deadline = None if job.time_limit is None else started + job.time_limit
    run = shared = 0  # runs of this slot so far; shared (uncounted) enumeration runs so far
    total_steps = 0
    try:
        while job.runs is None or run < job.runs:
            key = run * job.slots + job.slot
            if key >= control.limit():
                break
            if job.time_limit is not None and time.monotonic() - started >= job.time_limit:
                break
            # A share of the portfolio's enumeration may be complete while the program's is not:
            # the slot samples on until every share is (one process stops when the whole enumeration is).
            if out.enumerated_at is None and chooser.share_complete():
                out.enumerated_at = run
            if out.enumerated_at is not None and control.enumerated():
                out.exhausted = True
                break
            if not chooser.begin_run(key):
                out.exhausted = True
                break
            is_shared = chooser.shared_run()
            label = -(shared + 1) if is_shared else run + 1
            control.running(label, chooser.member())
            if label in job.skip:
                chooser.skip_run()
                if is_shared:
                    shared += 1
                else:
                    out.steps.append(SKIPPED)
                    out.schedules.append(0)
                    run += 1
                continue
            counting = not is_shared and race_count.due(run, runner)
            try:
                result = runner.run(chooser, observer=collector, check_races=counting,
                                    track_accesses=chooser.needs_accesses)
            except Nondeterminism as exc:
                out.nondeterministic = f"the program did not repeat itself under the same choices ({exc})"
                out.stopped_at = key
                control.lower(key)
                break
            if result.uncontrolled is not None and is_shared:
                # A shared enumeration run that was cut short has no subtree to deal out.
                out.uncontrolled = result.uncontrolled
                out.stopped_at = key
                control.lower(key)
                break
            if result.extra.get("interrupted"):
                out.interrupted = True  # a run cut short is no run of the search: the chooser never hears of it
                break
            chooser.end_run(result)
            if counting:
                race_count.add(run, result)
            if is_shared:
                shared += 1
            else:
                run += 1
                total_steps += result.steps
                out.steps.append(result.steps)
                out.schedules.append(hash(schedule_id(result.deviations)))
                control.progress(run, total_steps)
            if result.uncontrolled is not None:
                out.uncontrolled = result.uncontrolled
                out.stopped_at = key
                control.lower(key)
                break
            if result.failure is not None and not is_shared:
                where = (result.failure.kind, result.failure.place)
                if where not in seen_places:
                    seen_places.add(where)
                    out.found.append(Found(key, result.failure, list(result.deviations),
                                           time.monotonic() - started))
                if not job.keep_going:
                    control.lower(key)
                    break
    except KeyboardInterrupt:
        out.interrupted = True
        # The signal may land between a run's two records: the run is kept only if both were made.
        kept = min(len(out.steps), len(out.schedules))
        del out.steps[kept:], out.schedules[kept:]
    finally:
        runner.deadline = None  # describing keeps to its own time
        if own_runner:
            runner.close()
    out.races = race_count
    summary = chooser.summary()
    out.enumeration, out.pct = summary.enumeration, summary.pct
    out.census = runner.census
    if collector is not None:
        out.coverage = collector.as_json()
    return out


@dataclass
class Campaign:
    """What the slots returned, for merging into one report."""

    results: list[SlotResult]
    deaths: list[str]
    lost_slots: list[int]
    elapsed_s: float
    interrupted: bool = False
    granularity: str = "access"


#: Describes the chosen failures (not shrinking them when the campaign was interrupted).
Describe = Callable[[list[Found], bool], list[FailureReport]]


def as_found_failure(found: Found) -> FoundFailure:
    """A slot's failing run as :mod:`interleave.describe` takes it (runs numbered from 1)."""
    return FoundFailure(found.key + 1, found.failure, found.deviations, found.elapsed_s)


def run_here(job: Job, display: str, shrink_time: float, on_progress: Callable[[Progress], None] | None = None,
             on_found: Callable[[list[FailureReport]], None] | None = None,
             on_shrinking: Callable[[ShrinkProgress], None] | None = None) -> Report:
    """The campaign of ``job``'s slot in this process: search, merge, describe in one runner."""
    program = job.program
    assert program is not None, "a campaign in this process has its program"
    runner = Runner(program, job.config)
    try:
        started = time.monotonic()
        result = search(job, InProcess(on_progress, whole=job.slots == 1), runner)
        campaign = Campaign([result], [], [], time.monotonic() - started, granularity=job.config.granularity)

        def describe(found: list[Found], interrupted: bool) -> list[FailureReport]:
            return describe_failures(runner, program, [as_found_failure(f) for f in found],
                                     None if interrupted else shrink_time, on_found, on_shrinking=on_shrinking)

        return merge(display, job, campaign, describe, workers=1)
    finally:
        runner.close()


def merge(display: str, job: Job, campaign: Campaign, describe: Describe, workers: int | None = None) -> Report:
    """One report from the slots' results: counts trimmed at the failure, failures described by ``describe``.

    ``job``: any slot's (the split is ``job.slots`` ways); ``workers``: the processes that ran them.
    """
    slots, keep_going = job.slots, job.keep_going
    report = Report(target=display, strategy=job.strategy, seed=job.seed,
                    workers=slots if workers is None else workers, worker_deaths=list(campaign.deaths),
                    lost_workers=sorted(campaign.lost_slots), granularity=campaign.granularity)
    results = campaign.results
    found = sorted((f for r in results for f in r.found), key=lambda f: f.key)
    ends = [r.stopped_at for r in results if r.stopped_at is not None]
    cut = min([*ends, *([found[0].key] if found and not keep_going else [])], default=NO_LIMIT)
    seen: set[int] = set()
    # Every share of the portfolio's enumeration complete and no failure: what a slot ran
    # after its share was complete (until it heard that every share was) does not count.
    enumerated = (not found and not campaign.lost_slots and len(results) == slots
                  and all(r.enumerated_at is not None for r in results))
    races: list[tuple[RaceCount, int]] = []
    for r in results:
        keep = len(r.steps) if cut == NO_LIMIT else max(0, (cut - r.slot) // slots + 1)
        if enumerated and r.enumerated_at is not None:
            keep = min(keep, r.enumerated_at)
        races.append((r.races, keep))
        ran = [i for i in range(min(keep, len(r.steps))) if r.steps[i] != SKIPPED]
        report.runs += len(ran)
        report.steps += sum(r.steps[i] for i in ran)
        seen.update(r.schedules[i] for i in ran)
    report.distinct_schedules = len(seen)
    report.elapsed_s = campaign.elapsed_s
    report.interrupted = campaign.interrupted or any(r.interrupted for r in results)
    first_end = min(((r.stopped_at, r) for r in results if r.stopped_at is not None), key=lambda e: e[0],
                    default=None)
    if first_end is not None:
        # One process would have stopped there: what it would have found after does not count.
        end_key, first = first_end
        found = [f for f in found if f.key < end_key]
        if keep_going or not found:
            report.uncontrolled, report.nondeterministic = first.uncontrolled, first.nondeterministic
    _merge_search(report, results, slots, campaign.lost_slots)
    report.races = race_summary(races)  # the runs counted only, as one process would have run them
    if job.coverage:
        lines: dict[str, set[int]] = {}
        for r in results:
            for filename, numbers in (r.coverage or {}).items():
                lines.setdefault(filename, set()).update(numbers)
        report.coverage = {filename: sorted(numbers) for filename, numbers in sorted(lines.items())}
    distinct: dict[tuple[Any, ...], Found] = {}
    for f in found:
        distinct.setdefault((f.failure.kind, f.failure.place), f)
    chosen = list(distinct.values()) if keep_going else found[:1]
    if chosen:
        report.failures = describe(chosen, report.interrupted)
        report.interrupted = report.interrupted or any(f.not_shrunk == INTERRUPTED for f in report.failures)
    report.failure = report.failures[0] if report.failures else None
    return report


def apply_census(report: Report, census: Census | None) -> None:
    if census is not None:
        report.uninstrumented = dict(census.uninstrumented)
        report.user_code_ran = census.user_calls > 0


def _merge_search(report: Report, results: list[SlotResult], slots: int, lost: list[int]) -> None:
    apply_census(report, next((r.census for r in results if r.census is not None), None))
    shares = [r.enumeration for r in results if r.enumeration is not None]
    if shares and report.user_code_ran:  # with no code of the user's run, nothing was explored
        every = len(shares) == slots and not lost
        done = every and all(s.exhausted for s in shares)
        report.exhausted = done
        report.complete = done and all(s.complete for s in shares)
        report.partial_order = all(s.partial_order for s in shares)
        if any(s.truncated for s in shares) or not every or (report.partial_order and not done):
            report.bound = None
        elif report.partial_order:  # dpor: its bound, if it had one
            report.bound = None if shares[0].max_bound < 0 else shares[0].max_bound
        elif done:
            report.bound = max(s.completed_bound for s in shares)
        else:
            # A slot whose share is done has covered every bound; the others, what they finished.
            report.bound = min(s.max_bound if s.done else s.completed_bound for s in shares)
    report.confidence = confidence_from(p for r in results for p in r.pct)
