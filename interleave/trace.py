"""Recording a run step by step, and printing it so a person can follow it.

Only replays record (exploration runs do not pay for it). The printed trace has one line
per step: thread, file:line and source; preemptions, pauses, clock jumps, blocks and thread
starts are marked; runs of steps in one thread are folded; the failure comes last.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from .failures import Failure, _short, loop_lines, source_line
from .files import is_user_file


@dataclass
class Step:
    thread: int
    name: str
    filename: str
    lineno: int
    clock: float


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

    def step(self, sched: Any, thread: Any, frame: Any) -> None:
        if sched.tearing_down:
            return
        self.steps.append(Step(thread.index, thread.name, frame.f_code.co_filename, frame.f_lineno, sched.clock.now))

    def event(self, sched: Any, kind: str, detail: str, data: dict[str, Any] | None = None) -> None:
        cur = sched.current
        if kind in ("acquire", "release", "wake", "block"):
            # The library call the program made (Lock.acquire, Condition.notify...): the timeline
            # draws hand-offs of the program's own locks, not of the locks inside Condition or Thread.
            data = {**(data or {}), "api": library_call(sys._getframe(1))}
        self.events.append(Event(len(self.steps), kind, detail, cur.index, cur.name, sched.clock.now, data))

    def path(self) -> list[tuple[int, int]]:
        return [(s.thread, s.lineno) for s in self.steps]


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
_SHOWN = {"preempt": ">>", "pause": "~~", "clock": "~~", "fault": "!!", "start": "++", "exit": "--", "block": ".."}
_KEEP_HEAD, _KEEP_TAIL = 1, 3


def render(trace: TraceRecorder, failure: Failure | None, *, skip_setup: int = 0) -> str:
    """The trace as text: one line per step, folded, with markers and the failure last."""
    width = max((len(s.name) for s in trace.steps), default=6)
    lines: list[str] = []
    events_at: dict[int, list[Event]] = {}
    # After the teardown mark come the finally blocks of stopped threads: not the run.
    teardown = next((i for i, ev in enumerate(trace.events) if ev.kind == "teardown"), len(trace.events))
    run_events = trace.events[:teardown]
    for ev in run_events:
        if ev.kind in _SHOWN:
            events_at.setdefault(ev.at_step, []).append(ev)

    # Lock operations of locks the program made itself are shown on the step they happen in.
    ops_at: dict[int, list[str]] = {}
    for ev in run_events:
        if ev.kind in ("acquire", "release") and "(made at" in ev.detail and ev.at_step:
            ops_at.setdefault(ev.at_step - 1, []).append(f"{ev.kind} {ev.detail.split(' (made at')[0]}")

    def emit_events(i: int) -> None:
        for ev in events_at.get(i, ()):
            if ev.kind == "clock":
                text = f"clock {ev.detail} (now t={ev.clock - 10_000.0:g}s)"
            elif ev.kind == "preempt":
                before, after = ev.detail.split(" -> ")
                step = last_step.get(ev.thread)
                where = f" before {_short(step.filename)}:{step.lineno}" if step else ""
                text = f"preemption: {before} is paused{where}; {after} runs"
                paused[ev.thread] = step
            elif ev.kind == "block":
                text = f"{ev.name} blocks ({ev.detail})"
            elif ev.kind == "start":
                text = f"{ev.name} starts {ev.detail}"
            elif ev.kind == "exit":
                text = f"{ev.detail} ends"
            else:
                text = ev.detail
            lines.append(f"      {_SHOWN[ev.kind]} {text}")

    last_step: dict[int, Step] = {}
    paused: dict[int, Step | None] = {}
    segments: list[tuple[int, int]] = []
    start = skip_setup
    for i in range(skip_setup, len(trace.steps) + 1):
        boundary = i == len(trace.steps) or (i > start and (trace.steps[i].thread != trace.steps[start].thread or i in events_at))
        if boundary and i > start:
            segments.append((start, i))
            start = i
    if skip_setup:
        lines.append(f"      .. {skip_setup} steps loading the program")
    for seg_start, seg_end in segments:
        emit_events(seg_start)
        first = trace.steps[seg_start]
        resumed = paused.pop(first.thread, None)
        if resumed is not None:
            lines.append(f"      << {first.name} resumes at {_short(resumed.filename)}:{resumed.lineno}  "
                         f"{source_line(resumed.filename, resumed.lineno)}")
        last_step[first.thread] = trace.steps[seg_end - 1]
        count = seg_end - seg_start
        shown = range(seg_start, seg_end)
        if count > _KEEP_HEAD + _KEEP_TAIL + 1:
            head = list(range(seg_start, seg_start + _KEEP_HEAD))
            tail = list(range(seg_end - _KEEP_TAIL, seg_end))
            for i in head:
                lines.append(_step_line(i, trace.steps[i], width, ops_at.get(i)))
            lines.append(f"      {'':<{width}}  ... {count - len(head) - len(tail)} more steps of {trace.steps[seg_start].name}")
            shown = tail
        for i in shown:
            lines.append(_step_line(i, trace.steps[i], width, ops_at.get(i)))
    emit_events(len(trace.steps))
    if failure is not None:
        lines.append(f"      XX {failure.message}")
        if failure.kind == "hang":
            lines.append("      lines executed most at the end of the run:")
            lines += ["   " + row for row in loop_lines([(s.name, s.filename, s.lineno) for s in trace.steps])]
    return "\n".join(lines)


def _step_line(i: int, step: Step, width: int, ops: list[str] | None = None) -> str:
    where = f"{_short(step.filename)}:{step.lineno}"
    line = f"{i + 1:5d} {step.name:<{width}}  {where:<24} {source_line(step.filename, step.lineno)}"
    return f"{line}    [{', '.join(ops)}]" if ops else line
