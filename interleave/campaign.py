"""The campaign: the one loop over runs, how it is told to stop, and one report from what it ran.

A campaign searches a program's schedules under a strategy until a failure, the budget, or
the end of what the strategy can explore, then describes what it found
(:mod:`interleave.describe`). The search is split into :data:`SLOTS` *slots*, whatever the
number of processes: each slot is a share of the strategy (:meth:`Strategy.shares`) whose
runs depend on nothing but the seed and the slot's own runs. The loop (:func:`search`)
searches some of the slots side by side: all of them in this process (:func:`run_here`),
or one worker's deal of them, in a worker process or a Dask task (:mod:`interleave.workers`).
A :class:`Control` is all that differs: how the loop hears that it may stop early and where
it says what it is doing.

Slot ``s``'s ``r``-th run (from 0) has the *key* ``r*SLOTS + s``, and a process runs its
slots' runs in the order of their keys. The campaign's failure is the one with the smallest
key, whatever finished first: when a slot fails, the others are told to stop at that key,
and every slot runs each key below it; a budget of runs is the runs of the smallest keys.
So the same seed gives the same failure and token with any number of workers (up to
``SLOTS``), and :func:`merge` trims the counts at the failing key, so they repeat too. Only a
time limit, and an interruption, cut the search where the machine's speed says.
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


#: With races off, one run in this many is checked for races (a run that notes its accesses
#: costs more than one that does not): slot s checks its runs s, s + 16, ..., so that the runs
#: checked are spread over the slots and the first few runs in key order are among them.
RACE_CHECK_EVERY = 16


class RaceCount:
    """The races seen in the runs checked for them while races are not failures."""

    def __init__(self) -> None:
        #: Per run checked: its position among the slot's runs, and the places of the races it saw.
        self.checks: list[tuple[int, tuple[Any, ...]]] = []
        self.every = RACE_CHECK_EVERY

    def due(self, slot: int, run: int, runner: Runner) -> bool:
        """Whether the slot's run ``run`` is checked: every run with races on (it is anyway), else one in N."""
        if runner.config.races:
            self.every = 1
        return runner.accesses and (runner.config.races or (run - slot) % RACE_CHECK_EVERY == 0)

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


class ThreadCount:
    """The most threads a slot's runs started besides the main one, and the most steps of the
    program's own code those threads took in one run: kept as they rose, so that merging can
    take them over the runs it counts only."""

    def __init__(self) -> None:
        #: ``(run, threads, steps)`` at each run (its position among the slot's runs) that raised a figure.
        self.rises: list[tuple[int, int, int]] = []

    def add(self, run: int, result: RunResult) -> None:
        threads, steps = self.rises[-1][1:] if self.rises else (0, 0)
        started = result.threads - 1  # the first is the program's main thread
        user_steps = sum(result.extra["user_steps"][1:])
        if started > threads or user_steps > steps:
            self.rises.append((run, max(started, threads), max(user_steps, steps)))

    def before(self, limit: int) -> tuple[int, int]:
        """``(threads, steps)`` over the slot's runs before its run ``limit``."""
        below = [(threads, steps) for run, threads, steps in self.rises if run < limit]
        return below[-1] if below else (0, 0)


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
    #: The slots searched here, of a split ``slots`` ways.
    own: tuple[int, ...]
    slots: int
    runs: int | None  # the campaign's, not this job's: the runs of the smallest keys
    time_limit: float | None
    keep_going: bool
    #: Runs not to run, as (slot, run): r >= 1 the slot's r-th run, -d its d-th shared run.
    skip: frozenset[tuple[int, int]] = frozenset()
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
    #: Its number among the campaign's runs (from 1), in the order of their keys: set by :func:`merge`.
    run: int = 0


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
    #: The key of the first run the time limit kept this slot from (None: it did not).
    timed_out_at: int | None = None
    #: The key from which on this slot's share of the portfolio's enumeration was complete
    #: (see _note_complete; None: it was not).
    enumerated_at: int | None = None
    enumeration: Enumeration | None = None
    pct: tuple[PctFigures, ...] = ()
    census: Census | None = None  # see interleave.census
    races: RaceCount = field(default_factory=RaceCount)  # the runs checked for races (see RaceCount)
    threads: ThreadCount = field(default_factory=ThreadCount)  # what the runs' threads did (see ThreadCount)
    coverage: dict[str, list[int]] | None = None  # with Job.coverage: {filename: [line, ...]}


#: Slots a campaign's search is split into, whatever the number of processes searching them
#: (so at most this many worker processes are of use).
SLOTS = 16


def key_of(slot: int, run: int, slots: int) -> int:
    """The key of slot ``slot``'s ``run``-th run (from 0)."""
    return run * slots + slot


def runs_below(key: int, slot: int, slots: int, runs: int) -> int:
    """How many of a slot's first ``runs`` runs have keys below ``key``."""
    return max(0, min(runs, (key - slot + slots - 1) // slots))


class Control(Protocol):
    """How a searching process hears when to stop and says what it is doing."""

    def limit(self) -> int:
        """Keys at or above this are not to be run."""

    def lower(self, key: int) -> None:
        """A run with this key failed (or must end the campaign): nobody needs keys above it."""

    def running(self, slot: int, run: int, member: int) -> None:
        """About to start slot ``slot``'s run ``run`` (``-d``: its d-th shared run) of strategy member ``member``."""

    def counted(self, slot: int, runs: int, steps: int) -> None:
        """Slot ``slot`` has made ``runs`` runs (``steps`` steps) so far."""

    def runs_before(self, key: int) -> int:
        """At least this many of the campaign's runs have keys below ``key`` (every slot's, as far as is known)."""

    def share_complete(self, slot: int, key: int) -> None:
        """Slot ``slot``'s share of the enumeration was complete after its runs of keys below ``key``.

        When every slot's is, nobody needs keys from the greatest such key on."""


class InProcess:
    """The control of slots searched in this process, with nobody else to hear from.

    ``whole``: the slots are the whole search (else shares of a split whose other shares
    run elsewhere, so their enumeration's being complete is not the program's).
    """

    def __init__(self, on_progress: Callable[[Progress], None] | None = None, whole: bool = True,
                 slots: int = SLOTS) -> None:
        self.stop = NO_LIMIT
        self.on_progress = on_progress
        self.whole = whole
        self.slots = slots
        self.runs = [0] * slots
        self.steps = [0] * slots
        self.complete: dict[int, int] = {}
        self.started = self.last_progress = time.monotonic()

    def limit(self) -> int:
        return self.stop

    def lower(self, key: int) -> None:
        self.stop = min(self.stop, key)

    def running(self, slot: int, run: int, member: int) -> None:
        pass

    def counted(self, slot: int, runs: int, steps: int) -> None:
        self.runs[slot], self.steps[slot] = runs, steps
        if self.on_progress is not None and time.monotonic() - self.last_progress > PROGRESS_EVERY_S:
            self.last_progress = time.monotonic()
            self.on_progress(Progress(sum(self.runs), sum(self.steps), self.last_progress - self.started))

    def runs_before(self, key: int) -> int:
        return sum(runs_below(key, slot, self.slots, runs) for slot, runs in enumerate(self.runs))

    def share_complete(self, slot: int, key: int) -> None:
        self.complete[slot] = key
        if self.whole and len(self.complete) == self.slots:
            self.lower(max(self.complete.values()))


@dataclass
class _Slot:
    """A slot being searched here: its share of the strategy, what it did so far."""

    slot: int
    chooser: strategies.Strategy
    out: SlotResult
    seen_places: set[tuple[Any, ...]] = field(default_factory=set)
    run: int = 0  # runs so far (shared runs not counted)
    shared: int = 0  # shared (uncounted) enumeration runs so far
    steps: int = 0


def _note_complete(here: _Slot, key: int, control: Control) -> None:
    """Once a slot's share of the enumeration is complete, say so, with the key from which on it is.

    Asked before the first run of every slot (``key`` 0), before each of a slot's runs (its
    key) and after each (just past its key): so the key a slot says depends on its own runs
    only, and it is said before the search passes it. Every slot that says a key below a
    failing run's does so before the campaign ends, with any workers, and the campaign's end
    (every share complete) is the same.
    """
    out = here.out
    if out.enumerated_at is None and here.chooser.share_complete():
        out.enumerated_at = key
        control.share_complete(here.slot, key)


def search(job: Job, control: Control, runner: Runner | None = None) -> list[SlotResult]:
    """Search ``job``'s slots, in the order of their runs' keys, until the budget, the campaign's
    stop key, or (unless keep_going) a failure; one result per slot, in ``job.own``'s order.

    ``runner``: run in this one (left open, for describing what was found); else in a new one.
    """
    program = job.load()
    if program.fingerprint != job.fingerprint:
        raise BadInput(f"{program.display} differs here from the file the campaign started with; "
                       "every worker must see the same files")
    whole = strategies.make(job.strategy, seed=job.seed, depth=job.depth, max_preemptions=job.max_preemptions)
    choosers = whole.shares(job.slots, job.own) if job.slots > 1 else [whole]
    slots = [_Slot(slot, chooser, SlotResult(slot)) for slot, chooser in zip(job.own, choosers)]
    own_runner = runner is None
    if runner is None:
        runner = Runner(program, job.config)
    collector = LineCollector() if job.coverage else None
    started = time.monotonic()
    runner.deadline = None if job.time_limit is None else started + job.time_limit
    active = sorted(slots, key=lambda s: s.slot)
    current: _Slot | None = None
    for one in slots:
        _note_complete(one, 0, control)  # a share dealt nothing
    try:
        while active:
            current = here = min(active, key=lambda s: s.run)  # the smallest key (ties: the lowest slot)
            chooser, out = here.chooser, here.out
            key = key_of(here.slot, here.run, job.slots)
            # Every other slot's next key is greater: what stops this run stops them all.
            if key >= control.limit():
                break
            if job.runs is not None and control.runs_before(key) >= job.runs:
                break
            if job.time_limit is not None and time.monotonic() - started >= job.time_limit:
                for other in active:
                    other.out.timed_out_at = key_of(other.slot, other.run, job.slots)
                break
            # A share of the portfolio's enumeration may be complete while the program's is not:
            # the slot samples on until every share is (see _note_complete).
            _note_complete(here, key, control)
            if key >= control.limit():
                break
            if not chooser.begin_run(key):
                out.exhausted = True
                active.remove(here)
                continue
            is_shared = chooser.shared_run()
            label = -(here.shared + 1) if is_shared else here.run + 1
            control.running(here.slot, label, chooser.member())
            if (here.slot, label) in job.skip:
                chooser.skip_run()
                if is_shared:
                    here.shared += 1
                else:
                    out.steps.append(SKIPPED)
                    out.schedules.append(0)
                    here.run += 1
                continue
            counting = not is_shared and out.races.due(here.slot, here.run, runner)
            try:
                # A shared run is another slot's run, whose lines that slot's run covers.
                result = runner.run(chooser, line_observer=None if is_shared else collector, check_races=counting,
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
                out.races.add(here.run, result)
            if is_shared:
                here.shared += 1
                continue
            out.threads.add(here.run, result)
            here.run += 1
            here.steps += result.steps
            out.steps.append(result.steps)
            out.schedules.append(hash(schedule_id(result.deviations)))
            control.counted(here.slot, here.run, here.steps)
            _note_complete(here, key + 1, control)
            if result.uncontrolled is not None:
                out.uncontrolled = result.uncontrolled
                out.stopped_at = key
                control.lower(key)
                break
            if result.failure is not None:
                where = (result.failure.kind, result.failure.place)
                if where not in here.seen_places:
                    here.seen_places.add(where)
                    out.found.append(Found(key, result.failure, list(result.deviations),
                                           time.monotonic() - started))
                if not job.keep_going:
                    control.lower(key)
                    break
    except KeyboardInterrupt:
        for one in slots:
            one.out.interrupted = True
        if current is not None:
            # The signal may land between a run's two records: the run is kept only if both were made.
            out = current.out
            kept = min(len(out.steps), len(out.schedules))
            del out.steps[kept:], out.schedules[kept:]
    finally:
        runner.deadline = None  # describing keeps to its own time
        if own_runner:
            runner.close()
    for one in slots:
        summary = one.chooser.summary()
        one.out.enumeration, one.out.pct = summary.enumeration, summary.pct
        one.out.census = runner.census
    if collector is not None and slots:
        slots[0].out.coverage = collector.as_json()  # the lines of every slot searched here
    return [one.out for one in slots]


@dataclass
class Campaign:
    """What the slots returned, for merging into one report."""

    results: list[SlotResult]
    deaths: list[str]
    lost_slots: list[int]
    elapsed_s: float
    interrupted: bool = False
    granularity: str = "access"
    #: The worker processes whose slots were given up (their processes kept dying).
    lost_workers: list[int] = field(default_factory=list)


#: Describes the chosen failures (not shrinking them when the campaign was interrupted).
Describe = Callable[[list[Found], bool], list[FailureReport]]


def as_found_failure(found: Found) -> FoundFailure:
    """A slot's failing run as :mod:`interleave.describe` takes it."""
    return FoundFailure(found.run or found.key + 1, found.failure, found.deviations, found.elapsed_s)


def run_here(job: Job, display: str, shrink_time: float, on_progress: Callable[[Progress], None] | None = None,
             on_found: Callable[[list[FailureReport]], None] | None = None,
             on_shrinking: Callable[[ShrinkProgress], None] | None = None) -> Report:
    """The campaign of ``job``'s slots in this process: search, merge, describe in one runner."""
    program = job.program
    assert program is not None, "a campaign in this process has its program"
    runner = Runner(program, job.config)
    try:
        started = time.monotonic()
        control = InProcess(on_progress, whole=len(job.own) == job.slots, slots=job.slots)
        results = search(job, control, runner)
        campaign = Campaign(results, [], [], time.monotonic() - started, granularity=job.config.granularity)

        def describe(found: list[Found], interrupted: bool) -> list[FailureReport]:
            return describe_failures(runner, program, [as_found_failure(f) for f in found],
                                     None if interrupted else shrink_time, on_found, on_shrinking=on_shrinking)

        return merge(display, job, campaign, describe, workers=1)
    finally:
        runner.close()


class _Made:
    """The runs the slots made, by key: each slot's are its first ones, in the order of their keys."""

    def __init__(self, results: list[SlotResult], slots: int) -> None:
        self.made = [(r.slot, len(r.steps)) for r in results]
        self.slots = slots

    def below(self, key: int) -> int:
        """Runs made with keys below ``key``."""
        return sum(runs_below(key, slot, self.slots, runs) for slot, runs in self.made)

    def end_of_first(self, count: int) -> int:
        """The key just past the first ``count`` runs (NO_LIMIT: fewer were made)."""
        if self.below(NO_LIMIT) < count:
            return NO_LIMIT
        low, high = 0, max(key_of(slot, runs, self.slots) for slot, runs in self.made)
        while low < high:  # the least key with ``count`` runs below it
            middle = (low + high) // 2
            if self.below(middle) >= count:
                high = middle
            else:
                low = middle + 1
        return low


def merge(display: str, job: Job, campaign: Campaign, describe: Describe, workers: int | None = None) -> Report:
    """One report from the slots' results: counts trimmed where one process would have stopped, failures
    described by ``describe``.

    ``job``: any worker's (the split is ``job.slots`` ways); ``workers``: the processes that ran them.
    """
    slots, keep_going = job.slots, job.keep_going
    report = Report(target=display, strategy=job.strategy, seed=job.seed,
                    workers=1 if workers is None else workers, worker_deaths=list(campaign.deaths),
                    lost_workers=sorted(campaign.lost_workers), granularity=campaign.granularity)
    results = campaign.results
    made = _Made(results, slots)
    # ``end``: keys from here on were not to be run by one process in the order of the keys.
    end = NO_LIMIT
    if len(results) == slots and not campaign.lost_slots and all(r.enumerated_at is not None for r in results):
        # Every share of the portfolio's enumeration complete: the search stopped at the last key where one was.
        end = max(r.enumerated_at or 0 for r in results)
    if job.runs is not None:
        end = min(end, made.end_of_first(job.runs))
    found = sorted((f for r in results for f in r.found if f.key < end), key=lambda f: f.key)
    first_end = min(((r.stopped_at, r) for r in results if r.stopped_at is not None and r.stopped_at < end),
                    key=lambda e: e[0], default=None)
    if first_end is not None:
        # One process would have stopped there: what it would have found after does not count.
        end_key, first = first_end
        end = end_key + 1
        found = [f for f in found if f.key < end_key]
        if keep_going or not found:
            report.uncontrolled, report.nondeterministic = first.uncontrolled, first.nondeterministic
    if found and not keep_going:
        end = min(end, found[0].key + 1)
    seen: set[int] = set()
    races: list[tuple[RaceCount, int]] = []
    for r in results:
        keep = runs_below(end, r.slot, slots, len(r.steps))
        races.append((r.races, keep))
        ran = [i for i in range(keep) if r.steps[i] != SKIPPED]
        report.runs += len(ran)
        report.steps += sum(r.steps[i] for i in ran)
        seen.update(r.schedules[i] for i in ran)
        threads, user_steps = r.threads.before(keep)
        report.threads_started = max(report.threads_started, threads)
        report.thread_user_steps = max(report.thread_user_steps, user_steps)
    report.distinct_schedules = len(seen)
    report.elapsed_s = campaign.elapsed_s
    report.interrupted = campaign.interrupted or any(r.interrupted for r in results)
    # A time limit that kept a slot from a run below the end: what was run is what this machine had time for.
    report.time_limited = any(r.timed_out_at is not None and r.timed_out_at < end for r in results)
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
    for f in chosen:
        f.run = made.below(f.key + 1)  # its number in the order of the keys, the same with any workers
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
