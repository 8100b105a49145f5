"""Line and branch coverage (coverage.py) of the code a marked test runs under interleave."""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Callable
from typing import Any

from ..files import is_user_file


class CoverageBridge:
    """Keeps line (and branch) coverage of code run under interleave.

    coverage.py measures through a ``sys.settrace`` tracer (its default before Python
    3.14) that cannot follow interleave's threads: on 3.11 a run replaces it with
    interleave's own tracer, so it sees nothing; on 3.12 and later interleave uses
    ``sys.monitoring`` and coverage's tracer would stay on, mixing up the lines of
    threads that switch in mid-function. So for the length of each run the bridge takes
    coverage's place: it records the lines (or arcs, in branch mode) of the user's code
    that the run executes, per frame, and after the test adds them to the active
    ``coverage.Coverage``'s data, for the files coverage already measures. Files coverage
    has not seen outside the runs (a module first imported inside the test body) are not
    added. Coverage through ``sys.monitoring`` (``COVERAGE_CORE=sysmon``) needs none of
    this: it is left alone.
    """

    def __init__(self, coverage: Any, outside_tracer: Any) -> None:
        self.coverage = coverage
        self.outside_tracer = outside_tracer
        self.arcs = bool(coverage.get_option("run:branch"))
        self.seen: dict[str, set[Any]] = {}
        self._suspended: dict[Any, int] = {}  # generator frame -> its last line when it yielded
        self._recording_only: Callable[..., Any] | None = None

    @classmethod
    def if_measuring(cls) -> CoverageBridge | None:
        """A bridge when coverage.py measures this thread through ``sys.settrace``, else None."""
        tracer = sys.gettrace()
        if tracer is None or "coverage" not in sys.modules:
            return None
        coverage = sys.modules["coverage"].Coverage.current()
        return cls(coverage, tracer) if coverage is not None else None

    def start_run(self) -> None:
        """Inside a run, before the test is called: record in place of coverage's tracer."""
        self._suspended.clear()
        current: Any = sys.gettrace()
        if current is None or current is self.outside_tracer or current is self._recording_only:
            # The run left sys.settrace alone (it steps through sys.monitoring): take
            # coverage's place ourselves until the test is over (see :meth:`merge`).
            sys.settrace(self._recorder())
            return
        record = self._frame_recorder

        def on_call(frame: Any, event: str, arg: Any) -> Any:
            local = current(frame, event, arg)
            return None if local is None else record(frame, local)

        sys.settrace(on_call)  # the run puts its own tracer's predecessor back when it ends

    def _recorder(self) -> Callable[..., Any]:
        if self._recording_only is None:
            record = self._frame_recorder

            def on_call(frame: Any, event: str, arg: Any) -> Any:
                return record(frame, None) if is_user_file(frame.f_code.co_filename) else None

            self._recording_only = on_call
        return self._recording_only

    def _frame_recorder(self, frame: Any, engine_local: Callable[..., Any] | None) -> Callable[..., Any]:
        code = frame.f_code
        seen = self.seen.setdefault(code.co_filename, set())
        entry = -code.co_firstlineno  # coverage.py's convention for "entering the code object"
        suspendable = bool(code.co_flags & _GENERATOR_FLAGS)
        last = self._suspended.pop(frame, entry) if suspendable else entry
        arcs = self.arcs

        def local(frame: Any, event: str, arg: Any) -> Any:
            nonlocal last
            if event == "line":
                lineno = frame.f_lineno
                seen.add((last, lineno) if arcs else lineno)
                last = lineno
            elif event == "return":
                if suspendable:
                    self._suspended[frame] = last  # it may be resumed: continue from this line
                elif arcs:
                    seen.add((last, entry))
            if engine_local is not None:
                engine_local(frame, event, arg)  # may switch to another thread; comes back here later
            return local

        return local

    def merge(self) -> None:
        """After the test, outside the runs: coverage's tracer back, and what the runs executed added."""
        if sys.gettrace() is self._recording_only:
            sys.settrace(self.outside_tracer)
        self._suspended.clear()
        if not self.seen:
            return
        data = self.coverage.get_data()
        measured = {_canonical(f): f for f in data.measured_files()}
        chosen = {measured[_canonical(f)]: items for f, items in self.seen.items() if _canonical(f) in measured}
        if chosen:
            if self.arcs:
                data.add_arcs(chosen)
            else:
                data.add_lines(chosen)
        self.seen = {}


_GENERATOR_FLAGS = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR


def _canonical(filename: str) -> str:
    return os.path.normcase(os.path.realpath(filename))
