"""Switch points in the user's own code: one per executed line (or per opcode).

A tracer is installed for the length of a run. Both kinds below are shared by every
greenlet of the OS thread, so one installation covers all virtual threads. The trap of
switching greenlets from inside a trace or monitoring callback (CPython skips events
while a callback runs, so the other greenlets would run untraced) is handled in
:meth:`Scheduler._switch`, which leaves and re-enters the tracing state around the switch.

* Python 3.12 and later: ``sys.monitoring`` under a tool id of our own. ``PY_START``
  (and ``PY_RESUME``) decides once per code object whether it is user code: user code gets local ``LINE``
  and ``JUMP`` events (or ``INSTRUCTION`` for opcode granularity), and every code object
  answers ``DISABLE`` so its starts cost nothing afterwards. Monitoring is per
  interpreter, not per OS thread: events from other OS threads are ignored. A tracer
  installed with ``sys.settrace`` (coverage's, a debugger's) keeps running alongside.
* Python 3.11, or when no tool id is free: ``sys.settrace``; the tracer that was
  installed before the run is put back after it (it sees nothing during the run).
  Opcode granularity on 3.12+ needs a tool id: that ``settrace`` misses opcode events.

A step is what ``sys.settrace`` reports as a ``line`` event: a new line starts, or a
backward jump lands on the line it left (each turn of a one-line loop). ``LINE`` events
only cover the first, so same-line backward jumps come from ``JUMP`` events.
"""

from __future__ import annotations

import _thread
import sys
import threading
from collections.abc import Callable
from types import CodeType
from typing import Any

from .files import is_user_code, is_user_file
from .scheduler import Scheduler

ACCESS, LINE, OPCODE = "access", "line", "opcode"
GRANULARITIES = (ACCESS, LINE, OPCODE)

#: Our ``sys.monitoring`` name, and the tool ids we may take, best first. By convention
#: 0 is a debugger's, 1 coverage's, 2 a profiler's and 5 an optimizer's; Hypothesis takes 3.
TOOL_NAME = "interleave"
TOOL_IDS = (4, 3)

_MONITORING = sys.version_info >= (3, 12)
_real_get_ident = _thread.get_ident


def installer(granularity: str = LINE) -> Callable[[Scheduler], Callable[[], None]]:
    """Return a function that installs the tracer for a scheduler and returns its undo."""
    if granularity not in (LINE, OPCODE):
        raise ValueError(f"unknown granularity {granularity!r}")
    opcodes = granularity == OPCODE

    def install(sched: Scheduler) -> Callable[[], None]:
        if _MONITORING:
            tool = free_tool_id()
            if tool is not None:
                return _install_monitoring(sched, tool, opcodes)
            if opcodes:
                # 3.12's and 3.13's sys.settrace miss the opcode events of a function's first
                # call (f_trace_opcodes set in its call event counts from the next call).
                raise RuntimeError(
                    f"opcode granularity needs a free sys.monitoring tool id on Python 3.12 and "
                    f"later ({' or '.join(map(str, TOOL_IDS))}); all are taken"
                )
        return _install_settrace(sched, opcodes)

    return install


def free_tool_id() -> int | None:
    """The first of :data:`TOOL_IDS` no other tool uses (3.12+), or None."""
    if sys.version_info < (3, 12):
        raise RuntimeError("sys.monitoring is new in Python 3.12")
    for tool in TOOL_IDS:
        if sys.monitoring.get_tool(tool) is None:
            return tool
    return None


def _install_monitoring(sched: Scheduler, tool: int, opcodes: bool) -> Callable[[], None]:
    if sys.version_info < (3, 12):
        raise RuntimeError("sys.monitoring is new in Python 3.12")
    mon = sys.monitoring
    events = mon.events
    disable = mon.DISABLE
    on_step = sched.line
    os_ident = sched.os_ident
    get_ident = _real_get_ident
    get_frame = sys._getframe
    local_events = events.INSTRUCTION if opcodes else events.LINE | events.JUMP
    instrumented: list[CodeType] = []
    same_line: dict[tuple[int, int, int], bool] = {}
    jumped_in: list[CodeType] = []

    def on_start(code: CodeType, offset: int) -> Any:
        if is_user_file(code.co_filename):
            mon.set_local_events(tool, code, local_events)
            instrumented.append(code)
        return disable  # user-ness never changes: one look per code object and run

    def on_line(code: CodeType, line: int) -> None:
        if get_ident() == os_ident:
            on_step(get_frame(1))

    def on_instruction(code: CodeType, offset: int) -> None:
        if get_ident() == os_ident:
            on_step(get_frame(1))

    def on_jump(code: CodeType, source: int, destination: int) -> Any:
        if destination > source:
            return disable
        key = (id(code), source, destination)  # a code object's own hash is dear (see files.CodeFacts)
        same = same_line.get(key)
        if same is None:
            same = same_line[key] = _line_at(code, source) == _line_at(code, destination)
            jumped_in.append(code)  # kept, so that its id is no other's
        if not same:
            return disable  # the LINE event at the destination is the step
        if get_ident() == os_ident:
            on_step(get_frame(1))
        return None

    mon.use_tool_id(tool, TOOL_NAME)
    # PY_RESUME too: a generator started before the run and resumed in it has no PY_START.
    callbacks: dict[int, Callable[..., Any]] = {events.PY_START: on_start, events.PY_RESUME: on_start}
    if opcodes:
        callbacks[events.INSTRUCTION] = on_instruction
    else:
        callbacks[events.LINE] = on_line
        callbacks[events.JUMP] = on_jump
    for event, callback in callbacks.items():
        mon.register_callback(tool, event, callback)
    mon.set_events(tool, events.PY_START | events.PY_RESUME)

    def uninstall() -> None:
        # Turning the events off also undoes every DISABLE, so the id is clean for its next user.
        mon.set_events(tool, 0)
        for code in instrumented:
            mon.set_local_events(tool, code, 0)
        for event in callbacks:
            mon.register_callback(tool, event, None)
        mon.free_tool_id(tool)

    return uninstall


def _line_at(code: CodeType, offset: int) -> int | None:
    for start, end, line in code.co_lines():
        if start <= offset < end:
            return line
    return None


def _install_settrace(sched: Scheduler, opcodes: bool) -> Callable[[], None]:
    on_step = sched.line
    def local_line(frame: Any, event: str, arg: Any) -> Any:
        if event == "line":
            on_step(frame)
        return local_line

    def local_opcode(frame: Any, event: str, arg: Any) -> Any:
        if event == "opcode":
            on_step(frame)
        return local_opcode

    local = local_opcode if opcodes else local_line

    def on_call(frame: Any, event: str, arg: Any) -> Any:
        if not is_user_code(frame.f_code):
            return None
        if opcodes:
            frame.f_trace_opcodes = True
            frame.f_trace_lines = False
        return local

    def refusing(name: str, real: Callable[[Any], None]) -> Callable[..., None]:
        def settrace(function: Any) -> None:
            if not is_user_file(sys._getframe(1).f_code.co_filename):
                return real(function)  # a tool's (coverage starting on a thread): as ever
            sched.fail_uncontrolled(f"{name} (a tracer of the program's own would replace interleave's, "
                                    "which makes the switch points)")

        return settrace

    previous, real_settrace, real_thread_settrace = sys.gettrace(), sys.settrace, threading.settrace
    real_settrace(on_call)
    sys.settrace = refusing("sys.settrace", real_settrace)
    threading.settrace = refusing("threading.settrace", real_thread_settrace)

    def uninstall() -> None:
        lost = sys.gettrace() is None  # not "is not on_call": a tool may wrap it (the pytest plugin's coverage)
        sys.settrace, threading.settrace = real_settrace, real_thread_settrace
        real_settrace(previous)
        if lost and sched.failure is None and sched.uncontrolled is None:
            # CPython drops a tracer that raises: a RecursionError at a switch point of a
            # program whose stack was full, which the program then caught. The rest ran unseen.
            sched.uncontrolled = ("a stack so deep that interleave's tracer overflowed it and was dropped "
                                  "(a RecursionError the program caught)")

    return uninstall


def line_observer(observer: Any) -> Callable[[Scheduler], Callable[[], None]]:
    """An installer whose line events only go to ``observer.step`` (no switch points):
    line coverage for runs whose steps are shared accesses."""

    def install(sched: Scheduler) -> Callable[[], None]:
        def local(frame: Any, event: str, arg: Any) -> Any:
            if event == "line" and not sched.tearing_down:
                observer.step(sched, sched.current, frame)
            return local

        def on_call(frame: Any, event: str, arg: Any) -> Any:
            return local if is_user_code(frame.f_code) else None

        previous = sys.gettrace()
        sys.settrace(on_call)

        def uninstall() -> None:
            sys.settrace(previous)

        return uninstall

    return install
