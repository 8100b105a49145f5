"""One run of a program: patching on, scheduler, tracer, and the main thread's life.

The main virtual thread executes the target's module afresh, calls FUNC, then does what
the interpreter does at exit: ThreadPoolExecutor workers left running are told to stop
and joined, and the run lasts until every non-daemon thread has finished.
"""

from __future__ import annotations

import _thread
import base64
import os
import sys
import threading
import types
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import events, races, tracing, watchdog
from .census import Census
from .census import tracer as census_tracer
from .decisions import Chooser, DecisionPoint, Option
from .guard import ProcessGuard
from .instrument import Instrumentation, Scope
from .patching import Patcher
from .program import Program
from .reallocks import library_module
from .scheduler import Observer, RunResult, Scheduler, active
from .story import TraceRecorder

DEFAULT_MAX_STEPS = 100_000


@dataclass(frozen=True)
class RunConfig:
    """Everything besides the choices that decides how a run goes."""

    max_steps: int = DEFAULT_MAX_STEPS
    max_pauses: int = 2
    max_faults: int = 2
    granularity: str = tracing.ACCESS
    #: Draws of ``random`` that a run may change from the seeded value (see interleave.draws).
    max_draws: int = 2
    #: Installed modules, packages or paths whose code gets switch points like the user's.
    include: tuple[str, ...] = ()
    #: A data race (see interleave.races) is a failure of the run.
    races: bool = False

    def code(self) -> str:
        """Compact form for replay tokens (names included as base32: they hold dots)."""
        g = _GRANULARITY_CODES[self.granularity]
        text = f"{g}{self.max_steps}p{self.max_pauses}f{self.max_faults}r{self.max_draws}"
        if self.races:
            text += "d"
        if self.include:
            text += "i" + base64.b32encode("\0".join(self.include).encode()).decode().rstrip("=").lower()
        return text

    @classmethod
    def from_code(cls, code: str) -> RunConfig:
        granularity = {c: g for g, c in _GRANULARITY_CODES.items()}[code[0]]
        code, _, included = code.partition("i")
        steps, rest = code[1:].split("p")
        pauses, rest = rest.split("f")
        faults, draws = rest.split("r")
        races = draws.endswith("d")
        draws = draws.removesuffix("d")
        include: tuple[str, ...] = ()
        if included:
            padded = included.upper() + "=" * (-len(included) % 8)
            include = tuple(base64.b32decode(padded).decode().split("\0"))
        return cls(int(steps), int(pauses), int(faults), granularity, int(draws), include, races)


_GRANULARITY_CODES = {tracing.ACCESS: "a", tracing.LINE: "l", tracing.OPCODE: "o"}


class Runner:
    """Runs a program again and again, each time under the chooser it is given.

    With shared accesses as the steps (the default granularity), the code in scope is
    instrumented while the runner is open; :meth:`close` undoes it.
    """

    def __init__(self, program: Program, config: RunConfig, *, interactive: bool = False) -> None:
        self.program = program
        self.config = config
        #: Runs may read stdin (a replay, where ``breakpoint()`` and ``input()`` have someone to answer).
        self.interactive = interactive
        self.patcher = Patcher(program.roots())
        # A replay's changes to files are the user's to see; an exploration's runs each start
        # from the files the first found (interleave.filejournal).
        self.guard = ProcessGuard(None if interactive else
                                  os.path.abspath(program.path) if program.path else program.display)
        self.accesses = config.granularity == tracing.ACCESS
        self._install = None if self.accesses else tracing.installer(config.granularity)
        self.instrumentation: Instrumentation | None = None
        #: What the first run called without switch points (see :mod:`interleave.census`).
        self.census: Census | None = None
        if self.accesses:
            self.instrumentation = Instrumentation(Scope(config.include))
            self.instrumentation.start()
            program.compiled()  # compiled now: a run does the same work every time
        self.watchdog = watchdog.shared()
        #: ``time.monotonic()`` past which a run that does not come back is stopped (None: no limit).
        self.deadline: float | None = None
        self._warmed = False

    def close(self) -> None:
        """Done with runs for now: the instrumentation is undone, the watchdog's thread ends
        (the next run starts it again)."""
        if self.instrumentation is not None:
            self.instrumentation.stop()
            self.instrumentation = None
        self.watchdog.close()


    def run(self, chooser: Chooser, observers: Sequence[Observer] = (), *, track_accesses: bool = False,
            line_observer: Observer | None = None, tracer: Any = None, check_races: bool = False) -> RunResult:
        """One run, told to each of ``observers``. ``line_observer`` sees every executed line
        without making it a switch point (line coverage when accesses are the steps); ``tracer``
        installs a tracer of its own.

        With races on (the config's), a data race is the run's failure when nothing else
        failed; ``check_races`` only counts them (``result.extra["races"]``, their places)."""
        if not self._warmed:
            # The first run in a process is the only one that finds installed libraries as they
            # were imported: those that set themselves up on first use (a lock made lazily, a
            # monitor thread, a timer that replaces the one started at import) do it in that
            # run. One run in the default order, not counted, does it first, so that every run
            # that counts (in any worker, the shrinker, a fresh process replaying a token)
            # starts from the same state.
            self._warmed = True
            if _uses_libraries(self.program):
                warm = self.run(_DefaultOrder())
                if warm.extra.get("interrupted"):
                    return warm
        check_races = check_races or self.config.races
        track_accesses = track_accesses or check_races
        install = self._install
        if line_observer is not None and self.accesses:
            install = tracing.line_observer(line_observer)
        elif line_observer is not None:  # the lines are the steps: it observes them as the others do
            observers = (*observers, line_observer)
        if tracer is not None and self.accesses:
            install = tracer
        elif install is None and self.census is None and self.instrumentation is not None:
            # The first run also counts the calls into installed code it makes without switch
            # points (a call tracer makes no switch point: the run goes as it would).
            self.census = Census()
            install = census_tracer(self.census, self.instrumentation.scope)
        sched = Scheduler(
            chooser,
            max_steps=self.config.max_steps,
            max_pauses=self.config.max_pauses,
            max_faults=self.config.max_faults,
            max_draws=self.config.max_draws,
            observers=observers,
            install_tracer=install,
            accesses=self.accesses,
            track_accesses=track_accesses,
        )
        main_name, main_ident = threading.current_thread().name, _thread.get_ident()
        self.watchdog.ready()
        threads_before = _os_threads()
        self.guard.enter(sched, keep_stdin=self.interactive)
        try:
            self.patcher.apply(keep_input=self.interactive)
            self.watchdog.arm(sched, self.deadline, self.patcher.real_locks)
            try:
                with self.program.importable():
                    result = sched.run(self._main, main_ident=main_ident, main_name=main_name)
            finally:
                self.watchdog.disarm()
                self.patcher.restore(sched)
        finally:
            self.guard.exit()
        if result.uncontrolled is None and _os_threads() > threads_before:
            result.uncontrolled = ("a real OS thread that threading does not know of (started by a C extension?), "
                                   "which interleave cannot schedule")
        if check_races and self.accesses and result.uncontrolled is None:
            self._check_races(sched, result, observers)
        if sched.observer is not None:  # told here, not by the scheduler: the checks above can still fail the run
            sched.observer.event(sched, events.RunEnded(result.failure, result.uncontrolled,
                                                        bool(result.extra.get("interrupted"))))
        return result

    def run_or_raise(self, chooser: Chooser, observers: Sequence[Observer] = ()) -> RunResult:
        """:meth:`run`, raising the ``KeyboardInterrupt`` a run catches (the run stops, the caller too)."""
        result = self.run(chooser, observers)
        if result.extra.get("interrupted"):
            raise KeyboardInterrupt
        return result

    def _check_races(self, sched: Scheduler, result: RunResult, observers: Sequence[Observer]) -> None:
        found = races.check(sched)
        result.extra["races"] = [race.place() for race in found]
        if found and self.config.races and result.failure is None:
            stacks = next((o.stacks for o in observers if isinstance(o, TraceRecorder)), {})
            result.failure = races.first_failure(sched, found, stacks)

    def _main(self) -> Any:
        function = self.program.entry(instrumented=self.accesses)
        sched = active()
        if sched is not None and sched.observer is not None:
            sched.observer.event(sched, events.Entered(self.program.func_name))
        function()
        _stop_pool_workers_like_the_interpreter(sched)


def _uses_libraries(program: Program) -> bool:
    """Whether the program imported installed code when it loaded (a file target), or its
    function's module refers to some (a callable)."""
    before = program.modules_before
    names = [] if before is None else [name for name in list(sys.modules) if name not in before]
    if program.function is not None:
        for value in list(getattr(program.function, "__globals__", {}).values()):
            name = value.__name__ if isinstance(value, types.ModuleType) else getattr(value, "__module__", None)
            if isinstance(name, str):
                names.append(name)
    return any(library_module(sys.modules.get(name)) for name in names)


class _DefaultOrder:
    """The chooser of the warm-up run: the default order at every decision."""

    def choose(self, point: DecisionPoint) -> Option:
        return point.default


def _os_threads() -> int:
    """OS threads of this process not registered with ``threading`` (so: unknown to it).

    A thread that a C extension starts does not register; one that another part of the
    process starts through ``threading`` does, and is not counted. Linux only; elsewhere 0.
    """
    try:
        tasks = os.stat("/proc/self/task").st_nlink - 2
    except OSError:
        return 0
    return tasks - len(threading._active)  # type: ignore[attr-defined]  # threading's registry, private


def _stop_pool_workers_like_the_interpreter(sched: Scheduler | None) -> None:
    """What interpreter exit does for ThreadPoolExecutor workers left running, for this
    run's workers only (executors of the process outside the run are not touched)."""
    futures_thread: Any = sys.modules.get("concurrent.futures.thread")
    if futures_thread is None or sched is None:
        return
    run_threads = {vt.ident for vt in sched.threads}
    items = [(t, q) for t, q in list(futures_thread._threads_queues.items()) if t.ident in run_threads]
    if not items:
        return
    futures_thread._shutdown = True  # the patcher puts the saved value back after the run
    for _, work_queue in items:
        work_queue.put(None)
    for thread, _ in items:
        thread.join()
