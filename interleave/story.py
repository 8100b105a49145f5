"""The story of one recorded run: recorded once, modelled once, told by two renderers.

:class:`TraceRecorder` is the scheduler's observer in a replay (exploration runs do not pay
for it): it keeps each step (thread, file:line, virtual time, what it touched) and each
typed event (:mod:`interleave.events`) with the step it came before. :class:`Story` is the
model built from that once: the run's own part (not the program's loading, not teardown),
the threads and their groups, each preemption and pause with where its thread stopped,
the lock operations of the program's own locks, the arrows between threads (hand-offs,
wake-ups, thread starts, messages), a deadlock's wait-for graph and the run's failure
(from the event that ends the run). The text trace
(:mod:`interleave.trace`) and the HTML timeline (:mod:`interleave.html`) render it.
"""

from __future__ import annotations

import ast
import re
import sys
import threading
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .access import NOTHING, describe
from .events import (
    Accessed,
    Acquired,
    Blocked,
    Deadlocked,
    Entered,
    Grouped,
    Noted,
    Paused,
    Preempted,
    Released,
    RunEnded,
    RunEvent,
    TearingDown,
    ThreadStarted,
    Wait,
    Woken,
)
from .failures import Failure, innermost_user_frame, source_line
from .files import is_user_file
from .primitives import Lock
from .races import RaceFailure


@dataclass
class Step:
    thread: int
    name: str
    filename: str
    lineno: int
    clock: float
    #: What the step touched, in the program's terms (``reads Stats.hits -> 0``), when known.
    accesses: list[str] | None = None
    #: The same as data: ``(object key, field, write, what)`` per access (``what``: the field in
    #: the program's terms, ``Stats.hits``), for the timeline and races.
    touched: list[tuple[Any, Any, bool, str]] | None = None


@dataclass
class Event:
    """A typed event as recorded: before which step, in which thread, at what virtual time."""

    at_step: int  # index of the next step (events sit between steps)
    thread: int
    name: str
    clock: float
    what: RunEvent
    #: For lock operations, blocks and wake-ups: the library call the program made
    #: (``Lock.acquire``, ``Condition.notify``...), None when no code of the program was on the stack.
    api: str | None = None

    @property
    def kind(self) -> str:
        return self.what.kind


#: Events made by a call of the program's: which library function it was is worth keeping.
_CALLS = (Acquired, Released, Woken, Blocked)


@dataclass
class TraceRecorder:
    """Collects the steps and scheduler events of one run."""

    steps: list[Step] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    #: Per noted access (its index in the run's access log): the step it was made in, and
    #: the user's frames it was made from, innermost last (what a race report shows).
    access_steps: dict[int, int] = field(default_factory=dict)
    stacks: dict[int, list[tuple[str, int]]] = field(default_factory=dict)
    #: Step index -> a note the trace and the timeline put there (a data race's two accesses).
    marks: dict[int, str] = field(default_factory=dict)
    #: Lock label -> the variable the program keeps that lock in (``Account.lock``), from the
    #: accesses that read or wrote it.
    held_in: dict[str, str] = field(default_factory=dict)
    #: Lock label -> the expression the program's first ``with`` or ``acquire`` of it took it by
    #: (``cond`` in ``with cond:``); "" when that line says none.
    acquired_as: dict[str, str] = field(default_factory=dict)
    #: Locks seen in a variable before their first use in this run (their label is not this run's yet).
    _unlabelled: dict[int, tuple[Lock, str]] = field(default_factory=dict, repr=False, compare=False)
    _story: Story | None = field(default=None, repr=False, compare=False)

    def step(self, sched: Any, thread: Any, frame: Any) -> None:
        if sched.tearing_down:
            return
        self.steps.append(Step(thread.index, thread.name, frame.f_code.co_filename, frame.f_lineno, sched.clock.now))

    def _access(self, sched: Any, made: Accessed, frame: Any) -> None:
        """An access is kept on its step (not as an event): its text, its data, and the user's stack."""
        index = len(sched.access_log) - 1
        self.stacks[index] = user_stack(frame)
        # Described now: the object and the value may change later in the run.
        what = describe(made.site, made.obj, made.field)
        value = made.value
        lock = _lock_in(value)
        if lock is not None:
            self._name_lock(sched, lock, what)
        if not self.steps:
            return
        self.access_steps[index] = len(self.steps) - 1
        step = self.steps[-1]
        if made.write:
            text = f"writes {what}" + (f" = {_value(value)}" if value is not NOTHING else "")
        else:
            text = f"reads {what}" + (f" -> {_value(value)}" if value is not NOTHING else "")
        if step.accesses is None:
            step.accesses, step.touched = [], []
        step.accesses.append(text)
        assert step.touched is not None
        step.touched.append((sched.access_log[-1][1], made.field, made.write, what))

    def _name_lock(self, sched: Any, lock: Lock, what: str) -> None:
        name = _variable(what)
        if getattr(lock, "_run", None) is sched:
            self.held_in.setdefault(lock.label, name)
        else:  # made before this run and not used in it yet: its label is given at its first use
            self._unlabelled.setdefault(id(lock), (lock, name))

    def _label_pending(self, sched: Any) -> None:
        for key, (lock, name) in list(self._unlabelled.items()):
            if getattr(lock, "_run", None) is sched:
                self.held_in.setdefault(lock.label, name)
                del self._unlabelled[key]

    def event(self, sched: Any, what: RunEvent) -> None:
        if isinstance(what, Accessed):
            self._access(sched, what, sys._getframe(1))
            return
        if isinstance(what, RunEnded) and isinstance(what.failure, RaceFailure):
            self._mark_race(what.failure)
        cur = sched.current
        # The library call the program made (Lock.acquire, Condition.notify...): the timeline
        # draws hand-offs of the program's own locks, not of the locks inside Condition or Thread.
        api = library_call(sys._getframe(1)) if isinstance(what, _CALLS) else None
        if self._unlabelled and isinstance(what, (Acquired, Released, Blocked)):
            self._label_pending(sched)
        if isinstance(what, Acquired) and what.lock not in self.acquired_as and lock_acquire(api or ""):
            # Taken by the program's own ``with x:`` or ``x.acquire()``: ``x`` names it, if nothing better does.
            self.acquired_as[what.lock] = _acquired_as(sys._getframe(1))
        self.events.append(Event(len(self.steps), cur.index, cur.name, sched.clock.now, what, api))

    def _mark_race(self, failure: RaceFailure) -> None:
        """Note the two accesses of the run's race on their steps."""
        self.marks = failure.marks(self.access_steps,
                                   lambda at, thread, key, fld: _touched_after(self, at, thread, key, fld))

    def path(self) -> list[tuple[int, int]]:
        return [(s.thread, s.lineno) for s in self.steps]

    def story(self) -> Story:
        """The model of the recorded run (built on first use, once the run is over)."""
        if self._story is None:
            self._story = Story(self)
        return self._story


@dataclass(frozen=True)
class Suspension:
    """A thread that could have gone on was stopped by the schedule (a preemption or a pause)."""

    event: int  # its event's index in Story.events
    thread: int
    #: The thread's last step before it: that line runs (or finishes) when the thread resumes.
    step: int | None
    #: The thread had blocked in that line and its wait was over: the rest of the line is pending.
    inside: bool


@dataclass(frozen=True)
class Conflict:
    """Accesses of two threads to one field that explain a failure: a data race's two
    accesses, or a lost update (a thread reads a field, another writes it, the first writes
    it back over that write)."""

    #: Step index -> what the access there did, in a sentence.
    notes: dict[int, str]
    #: The conflict in one line:
    #: ``Thread-2 writes Stats.hits between Thread-1's read (step 9) and its write (step 14)``.
    summary: str


@dataclass(frozen=True)
class Link:
    """An arrow between threads: a lock hand-off, a wake-up, a thread start, a message."""

    kind: str  # "handoff", "wake", "spawn" or "msg"
    start: int  # the event it starts at (an index in Story.events)
    #: The event it ends at; None: it ends at whatever thread ``lane`` does next.
    end: int | None
    lane: int | None
    #: The lock handed off, the waking call's method, the message's text.
    what: str
    #: For a wake-up: the woken thread's block it ends (an index in Story.events), if seen.
    waited: int | None = None


#: Library calls whose lock operations are the program's own (hand-offs are drawn for these).
_LOCK_CLASSES = ("Lock", "RLock", "Condition")
_LOCK_METHODS = ("acquire", "release", "__enter__", "__exit__", "wait", "wait_for")


def own_lock_call(api: str) -> bool:
    cls, _, method = api.rpartition(".")
    return cls in _LOCK_CLASSES and method in _LOCK_METHODS


def lock_acquire(api: str) -> bool:
    cls, _, method = api.rpartition(".")
    return cls in _LOCK_CLASSES and method in ("acquire", "__enter__")


def starting_thread(block: Event | None) -> bool:
    """A block in Thread.start (which waits for the new thread to be up), even via a helper."""
    if block is None:
        return False
    what = block.what
    return block.api == "Thread.start" or (isinstance(what, Blocked) and what.sleep is None
                                           and what.api.startswith("Thread.start"))


class Story:
    """The model of one recorded run, built once (:meth:`TraceRecorder.story`)."""

    def __init__(self, rec: TraceRecorder) -> None:
        self.steps = rec.steps
        cut = next((n for n, e in enumerate(rec.events) if isinstance(e.what, TearingDown)), len(rec.events))
        #: The run's events: after teardown began come the finally blocks of stopped threads.
        self.events = rec.events[:cut]
        #: The run's steps are ``steps[:end]`` (the same reason).
        self.end = rec.events[cut].at_step if cut < len(rec.events) else len(rec.steps)
        #: Steps loading the program (its module-level code) before the entry function.
        self.setup = next((e.at_step for e in self.events if isinstance(e.what, Entered)), 0)
        #: How the run failed (None: it passed, or its end was not recorded), as its last event says.
        self.failure: Failure | None = next((e.what.failure for e in reversed(rec.events)
                                             if isinstance(e.what, RunEnded)), None)
        #: Step index -> the note a data race puts there.
        self.marks = rec.marks
        self.names: dict[int, str] = {}
        #: Groups set by ``control.set_group`` (and inherited by the threads started after).
        self.groups: dict[int, str | None] = {}
        self._threads()
        #: Event index -> the preemption or pause it is.
        self.suspensions: dict[int, Suspension] = {}
        self._suspensions()
        #: Step index -> ``(kind, lock)`` of the operations of locks the program made, done in that step.
        self.lock_ops: dict[int, list[tuple[str, str]]] = {}
        for e in self.events:
            if isinstance(e.what, (Acquired, Released)) and "(made at" in e.what.lock and e.at_step:
                self.lock_ops.setdefault(e.at_step - 1, []).append((e.kind, e.what.lock.split(" (made at")[0]))
        self.links: list[Link] = []
        self._links()
        deadlock = next((e.what for e in self.events if isinstance(e.what, Deadlocked)), None)
        #: A deadlock's blocked threads, and the wait-for graph among them (thread -> whom it waits for).
        self.waits: list[Wait] = list(deadlock.waits) if deadlock is not None else []
        self.wait_for = {w.thread: w.holder for w in self.waits if w.holder not in (None, w.thread)}
        self.in_cycle = self._cycle()
        #: Per thread, its last block in the run (an index in events).
        self.last_block = {e.thread: n for n, e in enumerate(self.events) if isinstance(e.what, Blocked)}
        #: Lock label -> the variable the program keeps it in (``Account.lock``; ``Account.lock #2``
        #: when several locks of the run are kept in variables of that name).
        self.lock_names = _lock_names(rec.held_in, rec.acquired_as, self._lock_labels())

    def _lock_labels(self) -> list[str]:
        labels: dict[str, None] = {}
        for e in self.events:
            what = e.what
            if isinstance(what, (Acquired, Released)):
                labels[what.lock] = None
            elif isinstance(what, Blocked) and what.lock is not None:
                labels[what.lock] = None
            elif isinstance(what, Deadlocked):
                labels.update((w.lock, None) for w in what.waits if w.lock is not None)
        return list(labels)

    def lock_name(self, label: str) -> str:
        """What the timeline calls a lock: its variable, else its label without where it was made."""
        return self.lock_names.get(label) or label.split(" (")[0]

    def conflict(self) -> Conflict | None:
        """The conflicting accesses to show: the data race's, else those around a preemption."""
        if self.marks:
            notes = {i: note for i, note in self.marks.items() if i < self.end}
            return Conflict(notes, notes[max(notes)]) if notes else None
        return self._across_suspension()

    def _across_suspension(self) -> Conflict | None:
        """Around the run's last preemption or pause that another thread's write came into: a
        field that thread wrote while the held thread was stopped, which the held thread touches
        when it goes on (and, when it did, last touched before it was stopped): the lost update's
        read, write and write back, or an order violated."""
        steps = self.steps
        suspended = sorted(self.suspensions.items(), reverse=True)[:_SUSPENSIONS_LOOKED_AT]
        for n, sus in suspended:
            held, start = sus.thread, self.events[n].at_step
            resumed = next((i for i in range(start, self.end) if steps[i].thread == held), None)
            if resumed is None:
                continue
            written: dict[Any, tuple[int, int, str]] = {}  # field -> the last write of another thread meanwhile
            for i in range(start, resumed):
                for place, write, what in _places(steps[i]):
                    if write:
                        written[place] = (i, steps[i].thread, what)
            after = next(((i, place, write) for i in range(resumed, self.end) if steps[i].thread == held
                          for place, write, _ in _places(steps[i]) if place in written), None)
            if after is None:
                continue
            x, place, x_writes = after
            w, other, what = written[place]
            before = None  # its last access to that field in its run of steps before it was stopped
            for i in range(start - 1, self.setup - 1, -1):
                if steps[i].thread != held:
                    break
                before = next(((i, write) for p, write, _ in _places(steps[i]) if p == place), None)
                if before is not None:
                    break
            a, b = self.names[held], self.names[other]
            how = "paused" if isinstance(self.events[n].what, Paused) else "preempted"
            x_verb, x_noun = ("writes", "write") if x_writes else ("reads", "read")
            notes = {w: "", x: f"{a} {x_verb} {what} here, after {b}'s write (step {w + 1})"}
            if before is not None:
                r, r_writes = before
                r_noun = "write" if r_writes else "read"
                summary = (f"{b} writes {what} between {a}'s {r_noun} (step {r + 1}) "
                           f"and its {x_noun} (step {x + 1})")
                notes[r] = f"{a} {'writes' if r_writes else 'reads'} {what} here, then is {how}"
                if x_writes:
                    notes[x] += ": that write is lost"
            else:
                summary = f"{b} writes {what} (step {w + 1}) while {a} is {how}, and {a} {x_verb} it (step {x + 1})"
            notes[w] = summary
            return Conflict(dict(sorted(notes.items())), summary)
        return None

    def _threads(self) -> None:
        for s in self.steps[: self.end]:
            self.names.setdefault(s.thread, s.name)
        for e in self.events:
            self.names.setdefault(e.thread, e.name)
            what = e.what
            if isinstance(what, ThreadStarted):
                self.names.setdefault(what.child, what.name)
                self.groups[what.child] = what.group
            elif isinstance(what, Grouped):
                self.groups[e.thread] = what.name
            elif isinstance(what, Woken):
                self.names.setdefault(what.thread, what.name)

    def _suspensions(self) -> None:
        last: dict[int, int] = {}
        waited: set[int] = set()  # threads that blocked since their last step
        i = 0
        for n, e in enumerate(self.events):
            while i < e.at_step and i < len(self.steps):
                last[self.steps[i].thread] = i
                waited.discard(self.steps[i].thread)
                i += 1
            if isinstance(e.what, Blocked):
                waited.add(e.thread)
            elif isinstance(e.what, (Preempted, Paused)):
                # A pause holds the thread that would have run, which need not be the one running.
                held = e.what.thread if isinstance(e.what, Paused) else e.thread
                self.suspensions[n] = Suspension(n, held, last.get(held), held in waited)

    def _links(self) -> None:
        last_release: dict[str, int] = {}
        last_block: dict[int, int] = {}
        sends: dict[str, tuple[int, Any]] = {}  # msg -> (event number, what) of its send
        sent_at: dict[int, int] = {}  # thread -> the step position of its last send
        events = self.events
        for n, e in enumerate(events):
            what = e.what
            if isinstance(what, Blocked):
                last_block[e.thread] = n
            elif isinstance(what, Released) and own_lock_call(e.api or ""):
                last_release[what.lock] = n
            elif isinstance(what, Acquired):
                released = last_release.pop(what.lock, None)
                if released is not None and events[released].thread != e.thread and own_lock_call(e.api or ""):
                    self.links.append(Link("handoff", released, n, None, what.lock))
            elif isinstance(what, Woken) and not what.timeout:
                to = what.thread
                waited = last_block.get(to)
                block = events[waited] if waited is not None else None
                if starting_thread(block) or to == e.thread:
                    continue  # thread start-up handshakes: the start link shows it
                if sent_at.get(e.thread) == e.at_step:
                    continue  # delivering the message just sent: the message link shows it
                if lock_acquire((block.api if block else None) or ""):
                    continue  # a contended lock: the hand-off link shows it
                verb = (e.api or "").rpartition(".")[2] or "exit"  # no program code on the stack: the thread is ending
                self.links.append(Link("wake", n, None, to, verb, waited))
            elif isinstance(what, ThreadStarted):
                self.links.append(Link("spawn", n, None, what.child, what.name))
            elif isinstance(what, Noted) and what.name in ("send", "recv") and "msg" in what.fields:
                fields = what.fields
                key = repr(fields["msg"])
                if what.name == "send":
                    sends[key] = (n, fields.get("what"))
                    sent_at[e.thread] = e.at_step
                elif key in sends:
                    sent, said = sends.pop(key)
                    text = str(said if said is not None else fields.get("what", fields["msg"]))
                    self.links.append(Link("msg", sent, n, None, text))

    def _cycle(self) -> set[int]:
        """The threads on a cycle of the wait-for graph."""
        in_cycle: set[int] = set()
        for start in self.wait_for:
            seen: list[int] = []
            node: int | None = start
            while node in self.wait_for and node not in seen:
                seen.append(node)
                node = self.wait_for[node]
            if node in seen:
                in_cycle |= set(seen[seen.index(node):])
        return in_cycle

    def segments(self, start: int = 0, cuts: set[int] | frozenset[int] = frozenset()) -> list[tuple[int, int]]:
        """``(first, end)`` of each run of consecutive steps of one thread from step ``start``
        on, also cut before each step in ``cuts`` (where an event worth its own line sits)."""
        steps = self.steps
        found: list[tuple[int, int]] = []
        for i in range(start, len(steps) + 1):
            boundary = i == len(steps) or (i > start and (steps[i].thread != steps[start].thread or i in cuts))
            if boundary and i > start:
                found.append((start, i))
                start = i
        return found

    def last_steps(self) -> dict[int, int]:
        """Per thread, its last step of the run."""
        last: dict[int, int] = {}
        for i, s in enumerate(self.steps[: self.end]):
            last[s.thread] = i
        return last

    def preemptions(self) -> int:
        return sum(1 for e in self.events if isinstance(e.what, Preempted))


#: Folding repeated rows (a polling loop, a lock ping-pong): the longest period looked for,
#: and the fewest repeats folded.
MAX_PERIOD, MIN_REPEATS = 8, 3


@dataclass(frozen=True)
class Repeat:
    """Rows ``start`` on are ``times`` copies of the ``period`` rows from ``start``."""

    start: int
    period: int
    times: int

    @property
    def end(self) -> int:
        return self.start + self.period * self.times


def repeats(signatures: Sequence[Hashable | None]) -> list[Repeat]:
    """Where a stretch of rows repeats, left to right: at each row, the period (up to
    :data:`MAX_PERIOD`) whose repeats cover the most rows, if it repeats at least
    :data:`MIN_REPEATS` times. A row whose signature is None never repeats. The text trace
    and the timeline fold their rows by this (each its own rows, one way of finding them)."""
    sig = signatures
    found: list[Repeat] = []
    i = 0
    while i < len(sig):
        best = (1, 1)
        if sig[i] is not None:
            for k in range(1, MAX_PERIOD + 1):
                if None in sig[i:i + k]:
                    break
                n = 1
                while i + (n + 1) * k <= len(sig) and sig[i + n * k:i + (n + 1) * k] == sig[i:i + k]:
                    n += 1
                if n >= MIN_REPEATS and n * k > best[0] * best[1]:
                    best = (n, k)
        n, k = best
        if n == 1:
            i += 1
            continue
        found.append(Repeat(i, k, n))
        i += n * k
    return found


_PLAIN = (int, float, complex, str, bytes, bool, type(None))


def _value(value: Any) -> str:
    """A value as a trace shows it, cut short. Only plain values are shown by their repr:
    another object's ``__repr__`` is code of the program's or the stdlib's, and running it
    here would take steps (``Thread.__repr__`` takes a lock) the run never took."""
    if type(value) in _PLAIN:
        text = repr(value)
    elif type(value) in (list, tuple, set, frozenset, dict):
        parts = [p for pair in value.items() for p in pair] if isinstance(value, dict) else list(value)
        plain = len(parts) <= 16 and all(type(p) in _PLAIN for p in parts)
        text = repr(value) if plain else f"<{type(value).__name__} of {len(value)}>"
    else:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 40 else text[:37] + "..."


#: Frames of the user's code kept per access.
STACK_DEPTH = 8


def user_stack(frame: Any) -> list[tuple[str, int]]:
    """``(file, line)`` of the user's frames from ``frame`` outwards, innermost last."""
    found: list[tuple[str, int]] = []
    while frame is not None and len(found) < STACK_DEPTH:
        if is_user_file(frame.f_code.co_filename):
            found.append((frame.f_code.co_filename, frame.f_lineno))
        frame = frame.f_back
    return found[::-1]


def library_call(frame: Any) -> str | None:
    """The outermost library function the program's code called (``Lock.acquire``,
    ``Condition.notify``...); None when no code of the program is on the stack."""
    outer = None
    while frame is not None and not is_user_file(frame.f_code.co_filename):
        outer = frame
        frame = frame.f_back
    if frame is None or outer is None:
        return None
    name: str = getattr(outer.f_code, "co_qualname", outer.f_code.co_name)
    return name


#: How many of the run's last preemptions and pauses are looked at for conflicting accesses.
_SUSPENSIONS_LOOKED_AT = 20


def _places(step: Step) -> list[tuple[Any, bool, str]]:
    """``(field, write, what)`` of each access of a step whose field can be a dict key."""
    found = []
    for key, fld, write, what in step.touched or ():
        try:
            hash(fld)
        except TypeError:  # a slice before 3.12
            continue
        found.append(((key, fld), write, what))
    return found


def _lock_in(value: Any) -> Lock | None:
    """The lock a value is, or that ``with value:`` takes (a Condition's); by type only, so
    that no code of the program's runs here."""
    kind = type(value)
    if issubclass(kind, Lock):
        return value  # type: ignore[no-any-return]
    if issubclass(kind, (threading.Semaphore, threading.Event, threading.Barrier)):
        value, kind = vars(value).get("_cond"), type(vars(value).get("_cond"))  # built on a Condition
    if issubclass(kind, threading.Condition):
        inner = vars(value).get("_lock")
        return inner if isinstance(inner, Lock) else None
    return None


def _variable(what: str) -> str:
    """A field as a variable's name: ``the global lock`` is ``lock``."""
    for prefix in ("the global ", "the cell "):
        if what.startswith(prefix):
            return what[len(prefix):]
    return what


_MADE_AT = re.compile(r"\(made at (.+):(\d+)\)$")
_NUMBERED = re.compile(r"^\D*?(\d+)")


def _made_into(label: str) -> str | None:
    """The variable a lock was stored in where it was made: ``self.lock`` for a lock made by
    ``self.lock = threading.Lock()``; None when its line is not such an assignment."""
    made = _MADE_AT.search(label)
    if made is None:
        return None
    try:
        tree = ast.parse(source_line(made.group(1), int(made.group(2))))
    except SyntaxError:
        return None
    stmt = tree.body[0] if len(tree.body) == 1 else None
    targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target] if isinstance(stmt, ast.AnnAssign) else []
    if len(targets) == 1 and isinstance(targets[0], (ast.Name, ast.Attribute, ast.Subscript)):
        return ast.unparse(targets[0])
    return None


def _acquired_as(frame: Any) -> str:
    """The lock the program's line takes: ``cond`` in ``with cond:``, ``self.lock`` in
    ``self.lock.acquire()``; "" when the line is not one of these."""
    frame = innermost_user_frame(frame)
    if frame is None:
        return ""
    line = source_line(frame.f_code.co_filename, frame.f_lineno)
    for text in (line, line + "\n    pass"):  # a ``with`` line is parsed with a body
        try:
            stmt = ast.parse(text).body[0]
        except (SyntaxError, IndexError):
            continue
        if isinstance(stmt, ast.With) and len(stmt.items) == 1:
            return ast.unparse(stmt.items[0].context_expr)
        call = stmt.value if isinstance(stmt, ast.Expr) else None
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "acquire":
            return ast.unparse(call.func.value)
        return ""
    return ""


def _lock_names(held_in: dict[str, str], acquired_as: dict[str, str], labels: list[str]) -> dict[str, str]:
    """Each lock's variable (from its accesses, else from the line that made it, else from the
    line that first took it), numbered in the order the locks were made when several share one name."""
    named = {}
    for label in labels:
        name = held_in.get(label) or _made_into(label) or acquired_as.get(label)
        if name:
            named[label] = name
    by_name: dict[str, list[str]] = {}
    for label, name in named.items():
        by_name.setdefault(name, []).append(label)
    for name, same in by_name.items():
        if len(same) > 1:
            for n, label in enumerate(sorted(same, key=_label_number), 1):
                named[label] = f"{name} #{n}"
    return named


def _label_number(label: str) -> tuple[str, int]:
    number = _NUMBERED.match(label)
    return (label.split("-")[0], int(number.group(1)) if number else 0)


def _touched_after(trace: TraceRecorder, at: int, thread: int, key: Any, fld: Any) -> int | None:
    """The first step after ``at`` in which ``thread`` touches ``fld`` of object ``key``."""
    for i in range(at + 1, len(trace.steps)):
        step = trace.steps[i]
        if step.thread == thread and step.touched and any(k == key and f == fld for k, f, _, _ in step.touched):
            return i
    return None
