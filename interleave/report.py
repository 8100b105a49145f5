"""What an exploration reports: the campaign's outcome, its figures and its failures.

These are plain data, made by the campaign (:mod:`interleave.campaign`) and read by the
CLI, the pytest plugin and the API; the CLI's ``--json`` writes the fields of
:class:`Report`.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .program import target_path
from .strategies.base import PctFigures

if TYPE_CHECKING:
    from .story import TraceRecorder

#: :attr:`FailureReport.not_shrunk` when a Ctrl-C (or SIGTERM, SIGHUP at the command) stopped shrinking.
INTERRUPTED = "interrupted"
#: :attr:`FailureReport.not_shrunk` of a failure reported before its shrinking starts.
PENDING = "not shrunk yet"


class Outcome(enum.Enum):
    """Why a campaign stopped, the most telling reason first (see :attr:`Report.outcome`)."""

    #: A run used something interleave cannot control (real sockets, processes...).
    UNCONTROLLED = "uncontrolled"
    #: The program did not repeat itself under the same choices.
    NONDETERMINISTIC = "nondeterministic"
    #: A schedule failed.
    FAILED = "failed"
    #: Ctrl-C (or SIGTERM, SIGHUP at the command) stopped it.
    INTERRUPTED = "interrupted"
    #: Some workers' shares of the search were not run (their processes kept dying).
    LOST_WORKERS = "lost workers"
    #: No run completed within the budget.
    NO_RUN = "no run"
    #: The search ran out of schedules to run (the enumeration finished).
    EXHAUSTED = "exhausted"
    #: The budget of runs or time was spent.
    BUDGET = "budget spent"

    @property
    def verdict(self) -> bool:
        """Whether "no failure" can be said (when no failure was found)."""
        return self in (Outcome.EXHAUSTED, Outcome.BUDGET)


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
    #: The search ran one schedule per order of conflicting steps (dpor): ``exhausted`` then
    #: says every such order was run.
    partial_order: bool = False
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
    #: Data races seen (one per pair of locations) in the runs checked for them (every run
    #: with races on, else every ``every``-th): ``{"seen", "runs_checked", "every", "places"}``.
    races: dict[str, Any] = field(default_factory=dict)
    #: The time limit kept the search from runs before where it would have ended (with the
    #: budget, or at the failure): what was run, and so what was found, is what this machine
    #: and this number of workers had time for.
    time_limited: bool = False
    #: The most threads a run started besides the program's main thread, and the most steps in
    #: the user's code (with ``granularity`` access, its shared accesses and synchronizations;
    #: else every step) those threads took in one run.
    threads_started: int = 0
    thread_user_steps: int = 0

    @property
    def outcome(self) -> Outcome:
        """Why the campaign stopped: the first that holds of :class:`Outcome`'s reasons, in order."""
        if self.uncontrolled is not None:
            return Outcome.UNCONTROLLED
        if self.nondeterministic is not None:
            return Outcome.NONDETERMINISTIC
        if self.failure is not None:
            return Outcome.FAILED
        if self.interrupted:
            return Outcome.INTERRUPTED
        if self.lost_workers:
            return Outcome.LOST_WORKERS
        if self.runs == 0:
            return Outcome.NO_RUN
        return Outcome.EXHAUSTED if self.exhausted else Outcome.BUDGET

    def unbacked(self) -> str | None:
        """Why "no failure" cannot be said of what ran (None when it can, or something else is said)."""
        outcome = self.outcome
        if outcome is Outcome.LOST_WORKERS:
            which = ", ".join(map(str, self.lost_workers))
            return (f"the share of worker{'s' if len(self.lost_workers) > 1 else ''} {which} of the search was not run "
                    f"(their processes kept dying); {self.runs:,} runs completed")
        if outcome is Outcome.NO_RUN:
            return "no run completed within the budget"
        return None

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


@dataclass(frozen=True)
class Cost:
    """What a schedule takes against the default order: preemptions, pauses, faults, changed draws."""

    switches: int = 0
    pauses: int = 0
    faults: int = 0
    draws: int = 0

    def words(self) -> str:
        """``1 preemption``, ``1 preemption + 1 pause``, ``1 fault``; ``0 preemptions`` for none."""
        parts = [f"{n} {word}{'' if n == 1 else 's'}" for n, word in (
            (self.switches, "preemption"), (self.pauses, "pause"), (self.faults, "fault"),
            (self.draws, "changed draw")) if n]
        return " + ".join(parts) or "0 preemptions"


@dataclass(frozen=True)
class ShrinkProgress:
    """How the shrinking of a failure goes (``failure`` of ``of``, from 1): the schedule's cost
    when found and now, the replays run so far, the seconds spent; ``done`` at its end, with
    ``minimal`` False when the shrink time or the stall limit stopped it."""

    failure: int
    of: int
    found: Cost
    now: Cost
    replays: int
    elapsed_s: float
    done: bool = False
    minimal: bool = True

    def text(self) -> str:
        """``shrinking: 5 -> 2 preemptions, 12 replays, 3.1 s``."""
        found, now = self.found, self.now
        if found.pauses == found.faults == found.draws == now.pauses == now.faults == now.draws == 0:
            change = f"{found.switches} -> {now.words()}"
        else:
            change = f"{found.words()} -> {now.words()}"
        which = f" {self.failure}/{self.of}" if self.of > 1 else ""
        stopped = ", stopped by the shrink time or the stall limit" if self.done and not self.minimal else ""
        return (f"shrinking{which}: {change}, {self.replays:,} replay{'' if self.replays == 1 else 's'}, "
                f"{self.elapsed_s:.1f} s{stopped}")


def confidence_from(pct: Iterable[PctFigures]) -> dict[str, Any]:
    """The report's confidence figures from PCT members' (of one process or several: the most seen wins)."""
    by_depth: dict[int, PctFigures] = {}
    for figures in pct:
        seen = by_depth.get(figures.depth, figures)
        by_depth[figures.depth] = PctFigures(figures.depth, max(seen.threads, figures.threads),
                                             max(seen.steps_k, figures.steps_k))
    confidence = {}
    for entry in by_depth.values():
        p = entry.per_run_probability
        needed = math.ceil(math.log(0.01) / math.log1p(-p)) if 0 < p < 1 else 1
        confidence[f"pct_depth_{entry.depth}"] = {
            "threads": entry.threads,
            "steps_k": entry.steps_k,
            "per_run_probability": p,
            "runs_for_99_percent": needed,
        }
    return confidence


def race_place_text(place: tuple[Any, ...]) -> str:
    """``a.py:5 (write) / a.py:7 (read)``: a race's pair of locations, for reports."""
    return " / ".join(f"{target_path(f)}:{line} ({'write' if w else 'read'})" for f, line, w in place[1:])
