"""The text trace of a recorded run, so a person can follow it.

It renders the run's :class:`~interleave.story.Story`: one line per step (thread,
file:line and source); preemptions, pauses, clock jumps, blocks and thread starts are
marked; runs of steps in one thread are folded; the failure comes last. The words for the
scheduler's events (:mod:`interleave.events`) are made here, and the timeline uses them too.
"""

from __future__ import annotations

from typing import Any

from .events import (
    Blocked,
    ClockAdvanced,
    Drew,
    Faulted,
    Paused,
    Preempted,
    ThreadEnded,
    ThreadsCrashed,
    ThreadsFrozen,
    ThreadStarted,
    ThreadsThawed,
)
from .failures import Failure, _short, loop_lines, source_line
from .story import Event, Step, TraceRecorder


def wait_text(block: Blocked) -> str:
    """``in Thread.join``, ``in Lock.acquire: Lock-1 is held by Thread-2``, ``in sleep(0.5)``."""
    if block.sleep is not None:
        return f"in sleep({block.sleep:g})"
    if block.api.endswith(".acquire") and block.holder_name is not None:
        return f"in {block.api}: {block.lock} is held by {block.holder_name}"
    return f"in {block.api}"


def event_detail(ev: Event) -> str:
    """What an event says, in a few words (the trace's line and the timeline's marker build on it)."""
    what = ev.what
    if isinstance(what, ClockAdvanced):
        return f"+{what.seconds:g}s"
    if isinstance(what, Preempted):
        return f"{ev.name} -> {what.to_name}"
    if isinstance(what, Paused):
        return f"{ev.name} paused while time passes"
    if isinstance(what, Faulted):
        return f"{what.label}: option {what.option}"
    if isinstance(what, Drew):
        return f"{what.what} gives {what.value!r} in place of the seeded {what.seeded!r}"
    if isinstance(what, ThreadStarted):
        return what.name
    if isinstance(what, ThreadEnded):
        return ev.name
    if isinstance(what, Blocked):
        return wait_text(what)
    if isinstance(what, (ThreadsCrashed, ThreadsFrozen, ThreadsThawed)):
        return ", ".join(what.names)
    return ""


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
    story = trace.story()
    steps = story.steps
    width = max((len(s.name) for s in steps), default=6)
    lines: list[str] = []
    events_at: dict[int, list[Event]] = {}
    for ev in story.events:
        if ev.kind in _SHOWN:
            events_at.setdefault(ev.at_step, []).append(ev)
    marked = {ev.at_step for ev in story.events if ev.kind in _MARKS}
    # A data race's two accesses: their steps are shown, each with a note saying what raced.
    race_at = story.marks
    # Lock operations of locks the program made itself are shown on the step they happen in.
    ops_at = {i: [f"{kind} {lock}" for kind, lock in ops] for i, ops in story.lock_ops.items()}
    suspended = {id(story.events[n]): s for n, s in story.suspensions.items()}

    def event_text(ev: Event) -> str:
        detail = event_detail(ev)
        if ev.kind == "clock":
            return f"clock {detail} (now t={ev.clock - 10_000.0:g}s)"
        if isinstance(ev.what, Preempted):
            where = ""
            at = suspended[id(ev)].step
            step = steps[at] if at is not None and at >= skip_setup else None
            if step is not None:
                where = f" before {_short(step.filename)}:{step.lineno}"
                if step.accesses:
                    where = f" after it {step.accesses[-1]} ({_short(step.filename)}:{step.lineno})"
            paused[ev.thread] = step
            return f"preemption: {ev.name} is paused{where}; {ev.what.to_name} runs"
        if ev.kind == "block":
            return f"{ev.name} blocks {detail}"
        if ev.kind == "start":
            return f"{ev.name} starts {detail}"
        if ev.kind == "exit":
            return f"{detail} ends"
        if ev.kind == "draw":
            return f"{ev.name}: {detail}"
        return detail

    def emit_events(i: int) -> None:
        for ev in events_at.get(i, ()):
            if id(ev) not in consumed:
                lines.append(f"{'':>8}{_SHOWN[ev.kind]} {event_text(ev)}")

    paused: dict[int, Step | None] = {}
    consumed: set[int] = set()
    segments = story.segments(skip_setup, set(events_at))
    if skip_setup:
        lines.append(f"{'':>8}.. {skip_setup} steps loading the program")
    for n, (seg_start, seg_end) in enumerate(segments):
        emit_events(seg_start)
        first = steps[seg_start]
        resumed = paused.pop(first.thread, None)
        if resumed is not None:
            lines.append(f"{'':>8}<< {first.name} resumes at {_short(resumed.filename)}:{resumed.lineno}  "
                         f"{source_line(resumed.filename, resumed.lineno)}")
        racing = any(seg_start <= i < seg_end for i in race_at)
        detailed = (full or resumed is not None or n == len(segments) - 1 or seg_start in marked or seg_end in marked
                    or racing)
        if not detailed:
            lines.append(_summary_line(steps[seg_start:seg_end], seg_start, width,
                                       _absorb(events_at.get(seg_end, ()), first.thread, consumed, event_text)))
            continue
        count = seg_end - seg_start
        shown: list[int] | range = range(seg_start, seg_end)
        if not full and not racing and count > _KEEP_HEAD + _KEEP_TAIL + 2:  # fold only what saves lines
            head = list(range(seg_start, seg_start + _KEEP_HEAD))
            tail = list(range(seg_end - _KEEP_TAIL, seg_end))
            for i in head:
                lines.append(_step_line(i, steps[i], width, ops_at.get(i)))
            hidden = count - len(head) - len(tail)
            lines.append(f"{'':>9} {'':<{width}}  ... {hidden} more steps of {steps[seg_start].name}")
            shown = tail
        for i in shown:
            lines.append(_step_line(i, steps[i], width, ops_at.get(i)))
            if i in race_at:
                lines.append(f"{'':>8}!! {race_at[i]}")
    emit_events(len(steps))
    if failure is not None:
        lines.append(f"{'':>8}XX {failure.message}")
        if failure.kind == "hang":
            lines.append(f"{'':>8}lines executed most at the end of the run:")
            lines += ["   " + row for row in loop_lines([(s.name, s.filename, s.lineno) for s in steps])]
    return "\n".join(lines)


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
