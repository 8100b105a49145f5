"""The text trace of a recorded run, so a person can follow it.

It renders the run's :class:`~interleave.story.Story`: one line per step (thread,
file:line and source); preemptions, pauses, clock jumps, blocks and thread starts are
marked; runs of steps in one thread are folded; the run's failure comes last. The words for the
scheduler's events (:mod:`interleave.events`) are made here, and the timeline uses them too.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import click

from .clock import MONOTONIC_START
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
from .failures import _short, loop_lines, source_line
from .story import Event, Step, Suspension, TraceRecorder, repeats


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
        return f"{what.name} is held while time passes"
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
#: Events that are something their thread does: a thread held by a preemption or a pause has resumed.
_ACTS = {"preempt", "fault", "draw", "start", "exit", "block"}

#: Lines of the text trace (after folding repeats) past which its middle is left out.
TRACE_LIMIT = 200
#: What a cut trace says gives the whole of it (the command line's options; other faces say theirs).
MORE = "--full prints the whole trace, --html FILE draws the timeline"

#: Colours of thread names, by thread index (on a terminal).
_PALETTE = ("cyan", "magenta", "blue", "green", "bright_cyan", "bright_magenta", "bright_blue", "bright_green")
#: Colours of whole lines, by what they tell.
_TONES: dict[str, dict[str, Any]] = {
    "fail": {"fg": "red", "bold": True}, "race": {"fg": "red"}, "preempt": {"fg": "yellow", "bold": True},
    "resume": {"fg": "yellow"}, "fold": {"dim": True},
}


@dataclass
class Row:
    """One line of the text trace, with what folding, cutting and colouring need to know of it."""

    text: str
    #: What makes two rows the same row again (a repeat folds); None: it never folds.
    sig: Hashable | None = None
    #: The steps it tells of (indices) and its virtual time, for what a fold or a cut says.
    first: int | None = None
    last: int | None = None
    clock: float | None = None
    #: Kept when the middle of a long trace is left out: preemptions, pauses, faults, draws,
    #: resumptions and races (what the failure needs).
    keep: bool = False


def render(trace: TraceRecorder, *, skip_setup: int = 0, full: bool = False, limit: int | None = TRACE_LIMIT,
           more: str = MORE, color: bool = False) -> str:
    """The trace as text: one line per step, folded, with markers and the run's failure last.

    Stretches of one thread next to a preemption, pause, fault or clock jump, and the
    last one, are shown step by step (long ones folded in the middle); the other stretches
    shrink to one summary line each; lines that repeat (a polling loop) fold into one that
    says how often; past ``limit`` lines the middle is left out, but for the preemptions,
    pauses, faults and their resumptions, with a line saying ``more``. ``full``: every step,
    nothing folded or left out. ``color``: thread names and the failure in colour (ANSI).
    """
    rows = _Renderer(trace, skip_setup, full, color).rows()
    if not full:
        rows = fold(rows, color)
        if limit is not None:
            rows = cut(rows, limit, more, color)
    return "\n".join(row.text for row in rows)


def fold(rows: list[Row], color: bool = False) -> list[Row]:
    """Each stretch of rows that repeats (:func:`interleave.story.repeats`): its first period
    stays, the rest becomes one line with the count."""
    out: list[Row] = []
    i = 0
    for rep in repeats([row.sig for row in rows]):
        k, more = rep.period, rep.times - 1
        out += rows[i:rep.start + k]
        body = rows[rep.start + k:rep.end]
        lines = "line" if k == 1 else f"{k} lines"
        text = f"{'':>8}^^ the {lines} above repeat{'s' if k == 1 else ''} {more:,} more time{'s' if more > 1 else ''}"
        out.append(Row(_tone(text + _span(body), "fold", color), None, *_extent(body)))
        i = rep.end
    return out + rows[i:]


def cut(rows: list[Row], limit: int, more: str, color: bool = False) -> list[Row]:
    """At most ``limit`` rows: the first quarter and the last half kept, and in between the
    rows that must be kept (as many as fit), each stretch left out told in one line."""
    if len(rows) <= limit:
        return rows
    head, tail = limit // 4, limit // 2
    middle = [i for i in range(head, len(rows) - tail) if rows[i].keep]
    room = (limit - head - tail - 1) // 2  # a kept row may need a line for the stretch before it
    shown = set(range(head)) | set(range(len(rows) - tail, len(rows))) | set(middle[:room])
    out: list[Row] = []
    gap: list[Row] = []
    for i, row in enumerate(rows):
        if i not in shown:
            gap.append(row)
            continue
        if gap:  # the first such line says how to see them
            text = f"{'':>8}... {len(gap):,} lines left out here{_span(gap)}" + (f": {more}" if more else "")
            out.append(Row(_tone(text, "fold", color), None, *_extent(gap)))
            gap, more = [], ""
        out.append(row)
    return out


def _extent(rows: list[Row]) -> tuple[int | None, int | None, float | None]:
    firsts = [r.first for r in rows if r.first is not None]
    lasts = [r.last for r in rows if r.last is not None]
    clocks = [r.clock for r in rows if r.clock is not None]
    return min(firsts, default=None), max(lasts, default=None), min(clocks, default=None)


def _span(rows: list[Row]) -> str:
    """`` (steps 26-100,491, t=0.011s to 100.48s)``: what ``rows`` cover."""
    first, last, _ = _extent(rows)
    clocks = [r.clock for r in rows if r.clock is not None]
    parts = []
    if first is not None and last is not None:
        parts.append(f"step {first + 1:,}" if first == last else f"steps {first + 1:,}-{last + 1:,}")
    if clocks and max(clocks) > min(clocks):
        parts.append(f"t={_t(min(clocks))}s to {_t(max(clocks))}s")
    return f" ({', '.join(parts)})" if parts else ""


def _t(clock: float) -> str:
    return f"{clock - MONOTONIC_START:g}"


def _tone(text: str, tone: str, color: bool) -> str:
    return click.style(text, **_TONES[tone]) if color else text


class _Renderer:
    """The rows of one recorded run's trace, before folding and cutting."""

    def __init__(self, trace: TraceRecorder, skip_setup: int, full: bool, color: bool) -> None:
        self.story = story = trace.story()
        self.skip_setup = skip_setup
        self.full = full
        self.color = color
        self.steps = story.steps
        self.width = max((len(s.name) for s in self.steps), default=6)
        self.out: list[Row] = []
        self.events_at: dict[int, list[Event]] = {}
        for ev in story.events:
            if ev.kind in _SHOWN:
                self.events_at.setdefault(ev.at_step, []).append(ev)
        self.marked = {ev.at_step for ev in story.events if ev.kind in _MARKS}
        # A data race's two accesses: their steps are shown, each with a note saying what raced.
        self.race_at = story.marks
        # Lock operations of locks the program made itself are shown on the step they happen in.
        self.ops_at = {i: [f"{kind} {lock}" for kind, lock in ops] for i, ops in story.lock_ops.items()}
        self.suspended = {id(story.events[n]): s for n, s in story.suspensions.items()}
        #: Threads held by a preemption or a pause, until they next do something: where each was.
        self.held: dict[int, tuple[Step | None, str]] = {}
        self.consumed: set[int] = set()

    # -- the words

    def who(self, thread: int, name: str, pad: bool = False) -> str:
        """A thread's name, in its colour on a terminal; padded to the name column."""
        shown = click.style(name, fg=_PALETTE[thread % len(_PALETTE)]) if self.color else name
        return shown + " " * (self.width - len(name)) if pad else shown

    def tone(self, text: str) -> str:
        """The words that mark a preemption, a pause, a fault, a draw."""
        return _tone(text, "preempt", self.color)

    def where_held(self, held: Suspension) -> tuple[str, Step | None]:
        """Where a thread was stopped: after its last step (that line runs, or the rest of it
        when its wait there was over, when it resumes), or before its first."""
        at = held.step
        if at is None:
            return " before its first step", None
        if at < self.skip_setup:
            return "", None
        step = self.steps[at]
        where = f"{_short(step.filename)}:{step.lineno}"
        if held.inside:
            return f" in {where} (its wait there is over)", step
        if step.accesses:
            return f" after it {step.accesses[-1]} ({where})", step
        return f" before {where}", step

    def event_text(self, ev: Event) -> str:
        detail = event_detail(ev)
        name = self.who(ev.thread, ev.name)
        what = ev.what
        if isinstance(what, ClockAdvanced):
            return f"clock {detail} (now t={_t(ev.clock)}s)"
        if isinstance(what, Preempted):
            where, step = self.where_held(self.suspended[id(ev)])
            self.held[ev.thread] = step, where
            return f"{self.tone('preemption:')} {name} is paused{where}; {self.who(what.to, what.to_name)} runs"
        if isinstance(what, Paused):
            where, step = self.where_held(self.suspended[id(ev)])
            self.held[what.thread] = step, where
            return f"{self.tone('pause:')} {self.who(what.thread, what.name)} is held{where} while time passes"
        if ev.kind == "block":
            return f"{name} blocks {detail}"
        if ev.kind == "start":
            assert isinstance(what, ThreadStarted)
            return f"{name} starts {self.who(what.child, what.name)}"
        if ev.kind == "exit":
            return f"{name} ends"
        if ev.kind == "draw":
            return f"{name}: {detail}"
        return detail

    def event_row(self, ev: Event) -> Row:
        kind = ev.kind
        # The thread acts: if it was held, it resumed first.
        if kind in _ACTS and ev.thread in self.held:
            self.resume(ev.thread, ev.name)
        if kind in _MARKS:  # the marker in colour (the names in the text have theirs)
            return Row(f"{'':>8}{self.tone(_SHOWN[kind])} {self.event_text(ev)}", clock=ev.clock, keep=True)
        text = f"{'':>8}{_SHOWN[kind]} {self.event_text(ev)}"
        what = ev.what
        sig = ("clock", what.seconds) if isinstance(what, ClockAdvanced) else (kind, ev.thread, text)
        return Row(text, sig, clock=ev.clock)

    def resume(self, thread: int, name: str) -> None:
        step = self.held.pop(thread)[0]
        where = f" at {_short(step.filename)}:{step.lineno}  {source_line(step.filename, step.lineno)}" \
            if step is not None else ""
        self.out.append(Row(_tone(f"{'':>8}<< ", "resume", self.color) + self.who(thread, name)
                            + _tone(f" resumes{where}", "resume", self.color), keep=True))

    def emit_events(self, i: int) -> None:
        for ev in self.events_at.get(i, ()):
            if id(ev) not in self.consumed:
                self.out.append(self.event_row(ev))

    # -- the rows

    def rows(self) -> list[Row]:
        steps, out = self.steps, self.out
        segments = self.story.segments(self.skip_setup, set(self.events_at))
        if self.skip_setup:
            out.append(Row(f"{'':>8}.. {self.skip_setup} steps loading the program"))
        for n, (seg_start, seg_end) in enumerate(segments):
            self.emit_events(seg_start)
            first = steps[seg_start]
            resumed = first.thread in self.held
            if resumed:
                self.resume(first.thread, first.name)
            racing = any(seg_start <= i < seg_end for i in self.race_at)
            detailed = (self.full or resumed or n == len(segments) - 1 or seg_start in self.marked
                        or seg_end in self.marked or racing)
            if detailed:
                self.detailed(seg_start, seg_end, racing)
            else:
                then = self.absorb(self.events_at.get(seg_end, ()), first.thread)
                out.append(self.summary_row(seg_start, seg_end, then))
        self.emit_events(len(steps))
        failure = self.story.failure
        if failure is None:
            return out
        for thread in list(self.held):  # held to the end: say so, so that no preemption is left hanging
            where = self.held.pop(thread)[1]
            out.append(Row(_tone(f"{'':>8}<< ", "resume", self.color) + self.who(thread, self.story.names[thread])
                           + _tone(f" never resumes: it is still paused{where}", "resume", self.color), keep=True))
        out.append(Row(_tone(f"{'':>8}XX {failure.message}", "fail", self.color), keep=True))
        if failure.kind == "hang":
            out.append(Row(f"{'':>8}lines executed most at the end of the run:", keep=True))
            out += [Row("   " + row, keep=True) for row in loop_lines([(s.name, s.filename, s.lineno) for s in steps])]
        return out

    def detailed(self, seg_start: int, seg_end: int, racing: bool) -> None:
        steps, count = self.steps, seg_end - seg_start
        shown: list[int] | range = range(seg_start, seg_end)
        if not self.full and not racing and count > _KEEP_HEAD + _KEEP_TAIL + 2:  # fold only what saves lines
            for i in range(seg_start, seg_start + _KEEP_HEAD):
                self.out.append(self.step_row(i))
            hidden = count - _KEEP_HEAD - _KEEP_TAIL
            name = steps[seg_start].name
            text = f"{'':>9} {'':<{self.width}}  ... {hidden} more steps of {self.who(steps[seg_start].thread, name)}"
            self.out.append(Row(text, ("more", steps[seg_start].thread, hidden), seg_start + _KEEP_HEAD,
                                seg_end - _KEEP_TAIL - 1, steps[seg_start + _KEEP_HEAD].clock))
            shown = range(seg_end - _KEEP_TAIL, seg_end)
        for i in shown:
            self.out.append(self.step_row(i))
            if i in self.race_at:
                self.out.append(Row(_tone(f"{'':>8}!! {self.race_at[i]}", "race", self.color), None, i, i,
                                    keep=True))

    def absorb(self, events: Any, thread: int) -> str:
        """Blocks and ends of a summarised stretch's own thread, told on its summary line."""
        own = [ev for ev in events if ev.thread == thread and ev.kind in ("block", "exit")]
        for ev in own:
            self.consumed.add(id(ev))
        return "; ".join(("ends" if ev.kind == "exit" else f"blocks {event_detail(ev)}") for ev in own)

    def summary_row(self, seg_start: int, seg_end: int, then: str) -> Row:
        stretch = self.steps[seg_start:seg_end]
        step = stretch[0]
        numbers = [s.lineno for s in stretch if s.filename == step.filename]
        where = f"{_short(step.filename)}:{min(numbers)}-{max(numbers)}" if len(set(numbers)) > 1 else \
            f"{_short(step.filename)}:{step.lineno}"
        span = f"{seg_start + 1}-{seg_end}" if len(stretch) > 1 else f"{seg_start + 1}"
        told = f"{len(stretch)} step{'s' if len(stretch) > 1 else ''}" + (f", then {then}" if then else "")
        text = f"{span:>9} {self.who(step.thread, step.name, pad=True)}  {where:<24} ({told})"
        return Row(text, ("summary", step.thread, where, told), seg_start, seg_end - 1, step.clock)

    def step_row(self, i: int) -> Row:
        step = self.steps[i]
        where = f"{_short(step.filename)}:{step.lineno}"
        line = f"{i + 1:9d} {self.who(step.thread, step.name, pad=True)}  {where:<24} " \
               f"{source_line(step.filename, step.lineno)}"
        notes = (step.accesses or []) + (self.ops_at.get(i) or [])
        text = f"{line}    [{', '.join(notes)}]" if notes else line
        return Row(text, ("step", step.thread, where, tuple(notes)), i, i, step.clock)
