"""Recording a run step by step, and printing it so a person can follow it.

Only replays record (exploration runs do not pay for it). The printed trace has one line
per step: thread, file:line and source; preemptions, pauses, clock jumps, blocks and thread
starts are marked; runs of steps in one thread are folded; the failure comes last.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from .access import NOTHING, describe
from .failures import Failure, _short, loop_lines, source_line
from .files import is_user_file


@dataclass
class Step:
    thread: int
    name: str
    filename: str
    lineno: int
    clock: float
    #: What the step touched, in the program's terms (``reads Stats.hits -> 0``), when known.
    accesses: list[str] | None = None
    #: The same as data: ``(object key, field, write)`` per access, for the timeline and races.
    touched: list[tuple[Any, Any, bool]] | None = None


@dataclass
class Event:
    at_step: int  # index of the next step (events sit between steps)
    kind: str
    detail: str
    thread: int
    name: str
    clock: float
    #: Structured facts for the HTML timeline (who was woken, which lock, a note's fields).
    data: dict[str, Any] | None = None


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

    def step(self, sched: Any, thread: Any, frame: Any) -> None:
        if sched.tearing_down:
            return
        self.steps.append(Step(thread.index, thread.name, frame.f_code.co_filename, frame.f_lineno, sched.clock.now))

    def access(self, sched: Any, site: int, obj: Any, field: Any, write: bool, value: Any) -> None:
        index = len(sched.access_log) - 1
        self.stacks[index] = user_stack(sys._getframe(1))
        if not self.steps:
            return
        self.access_steps[index] = len(self.steps) - 1
        step = self.steps[-1]
        what = describe(site, obj, field)
        if write:
            text = f"writes {what}" + (f" = {_value(value)}" if value is not NOTHING else "")
        else:
            text = f"reads {what}" + (f" -> {_value(value)}" if value is not NOTHING else "")
        if step.accesses is None:
            step.accesses, step.touched = [], []
        step.accesses.append(text)
        assert step.touched is not None
        step.touched.append((sched.access_log[-1][1], field, write))

    def event(self, sched: Any, kind: str, detail: str, data: dict[str, Any] | None = None) -> None:
        cur = sched.current
        if kind in ("acquire", "release", "wake", "block"):
            # The library call the program made (Lock.acquire, Condition.notify...): the timeline
            # draws hand-offs of the program's own locks, not of the locks inside Condition or Thread.
            data = {**(data or {}), "api": library_call(sys._getframe(1))}
        self.events.append(Event(len(self.steps), kind, detail, cur.index, cur.name, sched.clock.now, data))

    def mark_race(self, failure: Any) -> None:
        """Note the two accesses of the run's race (a :class:`~interleave.races.RaceFailure`) on their steps."""
        self.marks = failure.marks(self.access_steps, lambda at, thread, key, fld: _touched_after(self, at, thread, key, fld))

    def path(self) -> list[tuple[int, int]]:
        return [(s.thread, s.lineno) for s in self.steps]


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
    return getattr(outer.f_code, "co_qualname", outer.f_code.co_name)


#: Events shown in the text trace (lock acquire/release are for the timeline only).
_SHOWN = {"preempt": ">>", "pause": "~~", "clock": "~~", "fault": "!!", "draw": "??", "start": "++", "exit": "--",
          "block": ".."}
_KEEP_HEAD, _KEEP_TAIL = 1, 3


#: Events that make the steps around them worth showing in full.
_MARKS = {"preempt", "pause", "fault", "draw"}


def render(trace: TraceRecorder, failure: Failure | None, *, skip_setup: int = 0, full: bool = False) -> str:
    """The trace as text: one line per step, folded, with markers and the failure last.

    Stretches of one thread next to a preemption, pause, fault or clock jump, and the
    last one, are shown step by step (long ones folded in the middle); the other stretches
    shrink to one summary line each, unless ``full``.
    """
    width = max((len(s.name) for s in trace.steps), default=6)
    lines: list[str] = []
    events_at: dict[int, list[Event]] = {}
    # After the teardown mark come the finally blocks of stopped threads: not the run.
    teardown = next((i for i, ev in enumerate(trace.events) if ev.kind == "teardown"), len(trace.events))
    run_events = trace.events[:teardown]
    for ev in run_events:
        if ev.kind in _SHOWN:
            events_at.setdefault(ev.at_step, []).append(ev)
    marked = {ev.at_step for ev in run_events if ev.kind in _MARKS}
    # A data race's two accesses: their steps are shown, each with a note saying what raced.
    race_at = trace.marks

    # Lock operations of locks the program made itself are shown on the step they happen in.
    ops_at: dict[int, list[str]] = {}
    for ev in run_events:
        if ev.kind in ("acquire", "release") and "(made at" in ev.detail and ev.at_step:
            ops_at.setdefault(ev.at_step - 1, []).append(f"{ev.kind} {ev.detail.split(' (made at')[0]}")

    def event_text(ev: Event) -> str:
        if ev.kind == "clock":
            return f"clock {ev.detail} (now t={ev.clock - 10_000.0:g}s)"
        if ev.kind == "preempt":
            before, after = ev.detail.split(" -> ")
            step = last_step.get(ev.thread)
            where = f" before {_short(step.filename)}:{step.lineno}" if step else ""
            if step is not None and step.accesses:
                where = f" after it {step.accesses[-1]} ({_short(step.filename)}:{step.lineno})"
            paused[ev.thread] = step
            return f"preemption: {before} is paused{where}; {after} runs"
        if ev.kind == "block":
            return f"{ev.name} blocks {ev.detail}"
        if ev.kind == "start":
            return f"{ev.name} starts {ev.detail}"
        if ev.kind == "exit":
            return f"{ev.detail} ends"
        if ev.kind == "draw":
            return f"{ev.name}: {ev.detail}"
        return ev.detail

    def emit_events(i: int) -> None:
        for ev in events_at.get(i, ()):
            if id(ev) not in consumed:
                lines.append(f"{'':>8}{_SHOWN[ev.kind]} {event_text(ev)}")

    last_step: dict[int, Step] = {}
    paused: dict[int, Step | None] = {}
    consumed: set[int] = set()
    segments: list[tuple[int, int]] = []
    start = skip_setup
    for i in range(skip_setup, len(trace.steps) + 1):
        boundary = i == len(trace.steps) or (i > start and (trace.steps[i].thread != trace.steps[start].thread or i in events_at))
        if boundary and i > start:
            segments.append((start, i))
            start = i
    if skip_setup:
        lines.append(f"{'':>8}.. {skip_setup} steps loading the program")
    for n, (seg_start, seg_end) in enumerate(segments):
        emit_events(seg_start)
        first = trace.steps[seg_start]
        resumed = paused.pop(first.thread, None)
        if resumed is not None:
            lines.append(f"{'':>8}<< {first.name} resumes at {_short(resumed.filename)}:{resumed.lineno}  "
                         f"{source_line(resumed.filename, resumed.lineno)}")
        last_step[first.thread] = trace.steps[seg_end - 1]
        racing = any(seg_start <= i < seg_end for i in race_at)
        detailed = (full or resumed is not None or n == len(segments) - 1 or seg_start in marked or seg_end in marked
                    or racing)
        if not detailed:
            lines.append(_summary_line(trace.steps[seg_start:seg_end], seg_start, width,
                                       _absorb(events_at.get(seg_end, ()), first.thread, consumed, event_text)))
            continue
        count = seg_end - seg_start
        shown = range(seg_start, seg_end)
        if not full and not racing and count > _KEEP_HEAD + _KEEP_TAIL + 2:  # fold only what saves lines
            head = list(range(seg_start, seg_start + _KEEP_HEAD))
            tail = list(range(seg_end - _KEEP_TAIL, seg_end))
            for i in head:
                lines.append(_step_line(i, trace.steps[i], width, ops_at.get(i)))
            lines.append(f"{'':>9} {'':<{width}}  ... {count - len(head) - len(tail)} more steps of {trace.steps[seg_start].name}")
            shown = tail
        for i in shown:
            lines.append(_step_line(i, trace.steps[i], width, ops_at.get(i)))
            if i in race_at:
                lines.append(f"{'':>8}!! {race_at[i]}")
    emit_events(len(trace.steps))
    if failure is not None:
        lines.append(f"{'':>8}XX {failure.message}")
        if failure.kind == "hang":
            lines.append(f"{'':>8}lines executed most at the end of the run:")
            lines += ["   " + row for row in loop_lines([(s.name, s.filename, s.lineno) for s in trace.steps])]
    return "\n".join(lines)


def _touched_after(trace: TraceRecorder, at: int, thread: int, key: Any, fld: Any) -> int | None:
    """The first step after ``at`` in which ``thread`` touches ``fld`` of object ``key``."""
    for i in range(at + 1, len(trace.steps)):
        step = trace.steps[i]
        if step.thread == thread and step.touched and any(k == key and f == fld for k, f, _ in step.touched):
            return i
    return None


def _absorb(events: Any, thread: int, consumed: set[int], text: Any) -> str:
    """Blocks and ends of a summarised stretch's own thread, told on its summary line."""
    own = [ev for ev in events if ev.thread == thread and ev.kind in ("block", "exit")]
    for ev in own:
        consumed.add(id(ev))
    return "; ".join(text(ev).replace(f"{ev.name} ", "", 1) for ev in own)


def _summary_line(steps: list[Step], first: int, width: int, then: str) -> str:
    step = steps[0]
    numbers = [s.lineno for s in steps if s.filename == step.filename]
    where = f"{_short(step.filename)}:{min(numbers)}-{max(numbers)}" if len(set(numbers)) > 1 else \
        f"{_short(step.filename)}:{step.lineno}"
    span = f"{first + 1}-{first + len(steps)}" if len(steps) > 1 else f"{first + 1}"
    told = f"{len(steps)} step{'s' if len(steps) > 1 else ''}" + (f", then {then}" if then else "")
    return f"{span:>9} {step.name:<{width}}  {where:<24} ({told})"


def _step_line(i: int, step: Step, width: int, ops: list[str] | None = None) -> str:
    where = f"{_short(step.filename)}:{step.lineno}"
    line = f"{i + 1:9d} {step.name:<{width}}  {where:<24} {source_line(step.filename, step.lineno)}"
    notes = (step.accesses or []) + (ops or [])
    return f"{line}    [{', '.join(notes)}]" if notes else line
