"""Decisions: what a run's schedule is made of, and the question a strategy answers.

At a *decision point* the scheduler offers typed options: run a thread (:class:`RunThread`),
let virtual time pass to the next deadline while threads are still runnable (:data:`PAUSE`),
a simulated fault's option (:class:`Fault`, option 0 is "no fault"), or the value a draw of
``random`` returns (:class:`Draw`, 0 is the seeded draw). A strategy sees only the
:class:`DecisionPoint` and answers with one of its options.

The options taken that differ from the default are the run's schedule: each a
:class:`Decision` with its :class:`Key` (where in the run it was made) and whether it was
paid (a preemption, a pause, a fault, a changed draw) or free (who runs when the current
thread cannot go on). Keys stay meaningful when other decisions are removed, so replay
(:class:`Plan`), shrinking, the replay token and the workers all work on that list alone.

The token's integer form of an option (:meth:`RunThread.code`, :func:`option_from_code`)
lives here too, so that nothing else decodes options by sign.

This module sits below the scheduler and imports nothing of the package.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import CodeType
from typing import Any, NamedTuple, Protocol, TypeAlias

#: Fault decisions are keyed apart from scheduling decisions (``sub`` from this base), so
#: removing a decision that changes how many threads were runnable at a fault's step
#: (hence whether a scheduling decision came first there) does not move the fault's key.
FAULT_SUB = 1 << 16
#: Draws of ``random`` (see :mod:`interleave.draws`) are keyed apart again, from this base.
DRAW_SUB = 2 << 16


#: A place in the program's code: a code object and a line of it.
Where: TypeAlias = tuple[CodeType, int]


class Key(NamedTuple):
    """Where a decision was made: the thread running, the steps it had taken, and the
    how-many-th decision of its kind at that step (``sub``, from :data:`FAULT_SUB` for
    faults and :data:`DRAW_SUB` for draws)."""

    thread: int
    steps: int
    sub: int


@dataclass(frozen=True, slots=True, eq=False)
class RunThread:
    """Run thread ``thread`` (its creation index) next.

    One object per thread (:func:`run_thread`), unpickled as that same object, so equal
    means identical: comparing options, made at every decision, costs no Python call."""

    thread: int

    def __hash__(self) -> int:
        return self.thread

    def __reduce__(self) -> tuple[Any, tuple[int]]:
        return run_thread, (self.thread,)

    def code(self) -> int:
        return self.thread

    def __str__(self) -> str:
        return f"thread {self.thread}"


@dataclass(frozen=True, slots=True)
class Pause:
    """Let virtual time jump to the next deadline now, while threads are still runnable."""

    def __reduce__(self) -> str:
        return "PAUSE"  # unpickled as the one pause, so that ``is PAUSE`` holds in every process

    def code(self) -> int:
        return -1

    def __str__(self) -> str:
        return "a pause"


#: The one pause option.
PAUSE = Pause()


@dataclass(frozen=True, slots=True)
class Fault:
    """Option ``option`` of the fault decision ``label`` (0: no fault). The label is what
    the program called the decision; a token does not carry it, so options compare by number."""

    option: int
    label: str = field(default="", compare=False)

    def code(self) -> int:
        return -2 - self.option

    def __str__(self) -> str:
        return f"fault option {self.option}"


@dataclass(frozen=True, slots=True)
class Draw:
    """A draw of ``random`` returns its ``value``-th alternative (0: the seeded draw)."""

    value: int

    def code(self) -> int:
        return -2 - self.value

    def __str__(self) -> str:
        return f"draw {self.value}"


Option: TypeAlias = RunThread | Pause | Fault | Draw

#: The option of running each thread, by index: one object per thread, made once (options
#: are made at every decision). Grown by :func:`run_thread`.
RUN_THREADS: list[RunThread] = []


def run_thread(thread: int) -> RunThread:
    """The option of running ``thread``."""
    while len(RUN_THREADS) <= thread:
        RUN_THREADS.append(RunThread(len(RUN_THREADS)))
    return RUN_THREADS[thread]


def options_text(options: Iterable[Option]) -> str:
    """``thread 0, thread 2, a pause``: options for messages."""
    return ", ".join(map(str, options))


def option_from_code(sub: int, code: int) -> Option:
    """The option a token's integer stands for at a decision keyed with ``sub``."""
    if sub >= DRAW_SUB:
        return Draw(-2 - code)
    if sub >= FAULT_SUB:
        return Fault(-2 - code)
    if code == -1:
        return PAUSE
    if code < 0:
        raise ValueError(f"no scheduling option has the code {code}")
    return run_thread(code)


class Decision(NamedTuple):
    """One option taken that differs from the default, where it was taken, and its cost:
    paid (a preemption, a pause, a fault, a changed draw) or free."""

    key: Key
    option: Option
    paid: bool

    def code(self) -> tuple[int, int, int, int]:
        """The decision as the token's four integers: thread, steps, sub, option."""
        return (*self.key, self.option.code())


def schedule_id(deviations: Iterable[Decision]) -> tuple[tuple[int, int, int, int], ...]:
    """What tells two runs' schedules apart (their decisions' keys and options)."""
    return tuple(d.code() for d in deviations)


class DecisionPoint(NamedTuple):
    """What a strategy sees at a decision: everything it may base its answer on.

    A named tuple (immutable, and made at every decision: cheap to make; so is its key, a
    plain ``(thread, steps, sub)`` tuple, equal to the :class:`Key` a decision made here has).
    """

    key: tuple[int, int, int]
    #: What may happen next, in the scheduler's order (threads by index, then the pause).
    options: tuple[Option, ...]
    #: The option of the default order (see :mod:`interleave.scheduler`).
    default: Option
    #: Switching away from the running thread preempts it: it could go on.
    preemptive: bool
    #: The running thread yielded, polled and found nothing, or used up its time slice.
    yielding: bool
    #: Steps each thread (by creation index) has taken so far. Read it while choosing: it is
    #: a view of the run as it stands (copied at every decision, it would cost every run).
    thread_steps: Sequence[int]
    #: Where in the program's own code a thread is: its innermost frame of the user's code
    #: as ``(code object, line)``, None when it has none. Asked, not kept, since finding it
    #: walks the thread's frames.
    where: Callable[[int], Where | None]
    #: The scheduling decisions the run made before this one (those not asked included, see
    #: :attr:`interleave.strategies.base.Strategy.steady`).
    decisions_before: int

    @property
    def thread(self) -> int:
        """The thread running at this decision."""
        return self.key[0]

    @property
    def steps(self) -> int:
        """The steps the running thread has taken."""
        return self.key[1]

    def paid(self, option: Option) -> bool:
        """Whether taking ``option`` here counts against a preemption bound (the scheduler
        counts the same way): a pause, a fault, a changed draw, or a switch away from a
        thread that could go on."""
        if option is self.default or option == self.default:
            return False
        if isinstance(option, RunThread):
            return self.preemptive and option.thread != self.key[0]
        return True

    def is_scheduling(self) -> bool:
        """Whether this decides who runs (or a pause), not a fault or a draw."""
        return self.key[2] < FAULT_SUB


class Chooser(Protocol):
    """What the scheduler asks at every decision (see :mod:`interleave.strategies`)."""

    def choose(self, point: DecisionPoint) -> Option:
        ...


class Plan(dict[tuple[int, int, int], Option]):
    """Replay by key: the options a schedule took, by where it took them.

    The one place a schedule is followed: replay, the steering strategy's corpus and the
    shrinker's search that keeps a schedule's pauses and faults all ask it. A dict, so that
    the lookup at every decision of a replay is one.
    """

    __slots__ = ()

    def __init__(self, deviations: Iterable[Decision] = ()) -> None:
        super().__init__((d.key, d.option) for d in deviations)

    def follow(self, point: DecisionPoint) -> Option | None:
        """The planned option if the point offers it (the point's own, with its label);
        None where the plan says nothing or its option is not possible here."""
        option = self.get(point.key)
        if option is None:
            return None
        options = point.options
        return options[options.index(option)] if option in options else None


class FinishedRun(Protocol):
    """What a strategy learns from a run that ended (:class:`interleave.scheduler.RunResult` is one)."""

    @property
    def deviations(self) -> list[Decision]: ...

    @property
    def decisions(self) -> int: ...

    @property
    def threads(self) -> int: ...

    @property
    def extra(self) -> dict[str, Any]: ...

    #: When the run noted what its steps touched (a strategy with ``needs_accesses``): one
    #: ``(thread, object key, field, write, site)`` per shared access, one ``(accesses noted
    #: before it, thread, kind, object)`` per synchronization, and per decision asked, in
    #: order, ``(len(accesses), len(syncs))`` as they stood then. A switch point comes before
    #: its step, so what follows a decision's mark is what the step chosen there did.

    @property
    def accesses(self) -> list[tuple[int, Any, Any, bool, int]]: ...

    @property
    def syncs(self) -> list[tuple[int, int, str, int]]: ...

    @property
    def marks(self) -> list[tuple[int, int]]: ...
