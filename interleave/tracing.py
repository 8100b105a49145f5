"""Switch points in the user's own code: one per executed line (or per opcode).

The tracer is installed for the length of a run. It is shared by every greenlet of the
OS thread, so a single installation covers all virtual threads. The trap of switching
greenlets from inside a trace callback (tracing silently stops for the other greenlets)
is handled in :meth:`Scheduler._switch`, which leaves and re-enters the tracing state
around the switch.

On 3.12 and later ``sys.settrace`` is implemented on top of ``sys.monitoring`` by
CPython itself; a native ``sys.monitoring`` tracer is the faster path there.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

from .files import is_user_file
from .scheduler import Scheduler

LINE, OPCODE = "line", "opcode"


def installer(granularity: str = LINE) -> Callable[[Scheduler], Callable[[], None]]:
    """Return a function that installs the tracer for a scheduler and returns its undo."""
    if granularity not in (LINE, OPCODE):
        raise ValueError(f"unknown granularity {granularity!r}")

    def install(sched: Scheduler) -> Callable[[], None]:
        on_step = sched.line
        user_code: dict[Any, bool] = {}
        opcodes = granularity == OPCODE

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
            code = frame.f_code
            mine = user_code.get(code)
            if mine is None:
                mine = user_code[code] = is_user_file(code.co_filename)
            if not mine:
                return None
            if opcodes:
                frame.f_trace_opcodes = True
                frame.f_trace_lines = False
            return local

        previous = sys.gettrace()
        sys.settrace(on_call)

        def uninstall() -> None:
            sys.settrace(previous)

        return uninstall

    return install
