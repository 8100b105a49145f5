"""What a run tells its observers, as data: the scheduler and the primitives emit these.

Each event is a small frozen dataclass of facts (thread indices, names, labels, numbers);
the words a person reads are made by the renderers (:mod:`interleave.trace`,
:mod:`interleave.html`) from the model :mod:`interleave.story` builds. The thread an event
is about, unless it says otherwise, is the one running when it was emitted; the observer
notes it with the step count and the virtual time. ``kind`` names the event for renderers
that sort events by it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .failures import Failure


@dataclass(frozen=True)
class Entered:
    """The program's entry function is called: the steps before it loaded the program."""

    kind: ClassVar[str] = "enter"
    function: str


@dataclass(frozen=True)
class ThreadStarted:
    kind: ClassVar[str] = "start"
    child: int
    name: str
    group: str | None


@dataclass(frozen=True)
class ThreadEnded:
    kind: ClassVar[str] = "exit"


@dataclass(frozen=True)
class Preempted:
    """The running thread could go on, and the schedule runs ``to`` instead (a paid switch)."""

    kind: ClassVar[str] = "preempt"
    to: int
    to_name: str


@dataclass(frozen=True)
class Paused:
    """A thread could go on, and the schedule lets virtual time pass first: ``thread``, the
    one that would have run (the running thread, or when it blocked or yielded the next in
    turn), is held."""

    kind: ClassVar[str] = "pause"
    thread: int
    name: str


@dataclass(frozen=True)
class ClockAdvanced:
    kind: ClassVar[str] = "clock"
    seconds: float


@dataclass(frozen=True)
class Blocked:
    """The running thread waits: in the library call ``api`` (``Lock.acquire``, ``Thread.join``,
    ``sleep``...), on the lock labelled ``lock`` held by ``holder``, or for ``sleep`` seconds."""

    kind: ClassVar[str] = "block"
    api: str
    lock: str | None = None
    holder: int | None = None
    holder_name: str | None = None
    sleep: float | None = None


@dataclass(frozen=True)
class Woken:
    """Thread ``thread`` is runnable again: woken by the running thread, or by the clock."""

    kind: ClassVar[str] = "wake"
    thread: int
    name: str
    timeout: bool


@dataclass(frozen=True)
class Acquired:
    kind: ClassVar[str] = "acquire"
    lock: str


@dataclass(frozen=True)
class Released:
    kind: ClassVar[str] = "release"
    lock: str


@dataclass(frozen=True)
class Faulted:
    """A fault decision took option ``option`` (not 0: no fault is no event)."""

    kind: ClassVar[str] = "fault"
    label: str
    option: int


@dataclass(frozen=True)
class Drew:
    """A draw of ``random`` returned ``value`` where the seeded generator gave ``seeded``."""

    kind: ClassVar[str] = "draw"
    what: str
    value: Any
    seeded: Any


@dataclass(frozen=True)
class Accessed:
    """The running thread's step touched shared memory (instrumented code, when the run notes
    accesses): ``field`` of ``obj`` (an attribute, an item, the whole container), written or
    read, and the value (``access.NOTHING`` when none goes with it). The object and the value
    are the live ones: an observer that keeps them describes them now."""

    kind: ClassVar[str] = "access"
    site: int
    obj: Any
    field: Any
    write: bool
    value: Any


@dataclass(frozen=True)
class Wait:
    """One blocked thread of a deadlock: who it waits for (a lock's holder, a joined thread)."""

    thread: int
    holder: int | None
    lock: str | None
    frozen: bool


@dataclass(frozen=True)
class Deadlocked:
    kind: ClassVar[str] = "deadlock"
    waits: tuple[Wait, ...]


@dataclass(frozen=True)
class TearingDown:
    """The run is over; what follows is the ``finally`` blocks of the threads stopped."""

    kind: ClassVar[str] = "teardown"


@dataclass(frozen=True)
class RunEnded:
    """The run is over, and this is how: its ``failure`` (its kind, message, thread and place;
    a data race's too, found after the scheduler's part), or None when it passed; what stopped
    it that interleave cannot control, if anything; whether a Ctrl-C cut it short. The last
    event of a run, after the teardown's."""

    kind: ClassVar[str] = "end"
    failure: Failure | None
    uncontrolled: str | None
    interrupted: bool


@dataclass(frozen=True)
class ThreadsCrashed:
    kind: ClassVar[str] = "crash"
    threads: tuple[int, ...]
    names: tuple[str, ...]


@dataclass(frozen=True)
class ThreadsFrozen:
    kind: ClassVar[str] = "freeze"
    threads: tuple[int, ...]
    names: tuple[str, ...]


@dataclass(frozen=True)
class ThreadsThawed:
    kind: ClassVar[str] = "unfreeze"
    threads: tuple[int, ...]
    names: tuple[str, ...]


@dataclass(frozen=True)
class Grouped:
    """The running thread joined group ``name`` (a simulated node)."""

    kind: ClassVar[str] = "group"
    name: str


@dataclass(frozen=True)
class Noted:
    """An annotation of a simulated system (``control.annotate(name, **fields)``)."""

    kind: ClassVar[str] = "note"
    name: str
    fields: dict[str, Any]


RunEvent = (Entered | ThreadStarted | ThreadEnded | Preempted | Paused | ClockAdvanced | Blocked | Woken | Acquired
            | Released | Accessed | Faulted | Drew | Deadlocked | TearingDown | RunEnded | ThreadsCrashed
            | ThreadsFrozen | ThreadsThawed | Grouped | Noted)
