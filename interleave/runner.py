"""One run of a program: patching on, scheduler, tracer, and the main thread's life.

The main virtual thread executes the target's module afresh, calls FUNC, then does what
the interpreter does at exit: ThreadPoolExecutor workers left running are told to stop
and joined, and the run lasts until every non-daemon thread has finished.
"""

from __future__ import annotations

import _thread
import os
import sys
import threading
from dataclasses import dataclass
from typing import Any

from . import tracing, watchdog
from .patching import Patcher
from .program import Program
from .scheduler import Chooser, Recorder, RunResult, Scheduler, active

DEFAULT_MAX_STEPS = 100_000


@dataclass(frozen=True)
class RunConfig:
    """Everything besides the choices that decides how a run goes."""

    max_steps: int = DEFAULT_MAX_STEPS
    max_pauses: int = 2
    max_faults: int = 2
    granularity: str = tracing.LINE

    def code(self) -> str:
        """Compact form for replay tokens."""
        g = "o" if self.granularity == tracing.OPCODE else "l"
        return f"{g}{self.max_steps}p{self.max_pauses}f{self.max_faults}"

    @classmethod
    def from_code(cls, code: str) -> RunConfig:
        granularity = tracing.OPCODE if code[0] == "o" else tracing.LINE
        steps, rest = code[1:].split("p")
        pauses, faults = rest.split("f")
        return cls(int(steps), int(pauses), int(faults), granularity)


class Runner:
    """Runs a program again and again, each time under the chooser it is given."""

    def __init__(self, program: Program, config: RunConfig) -> None:
        self.program = program
        self.config = config
        self.patcher = Patcher(program.roots())
        self._install = tracing.installer(config.granularity)
        self.watchdog = watchdog.shared()
        #: ``time.monotonic()`` past which a run that does not come back is stopped (None: no limit).
        self.deadline: float | None = None

    def run(self, chooser: Chooser, recorder: Recorder | None = None) -> RunResult:
        sched = Scheduler(
            chooser,
            max_steps=self.config.max_steps,
            max_pauses=self.config.max_pauses,
            max_faults=self.config.max_faults,
            recorder=recorder,
            install_tracer=self._install,
        )
        main_name, main_ident = threading.current_thread().name, _thread.get_ident()
        self.watchdog.ready()
        threads_before = _os_threads()
        self.patcher.apply()
        try:
            self.watchdog.arm(sched, self.deadline, self.patcher.real_locks)
            try:
                result = sched.run(self._main, main_ident=main_ident, main_name=main_name)
            finally:
                self.watchdog.disarm()
        finally:
            self.patcher.restore(sched)
        if result.uncontrolled is None and _os_threads() > threads_before:
            result.uncontrolled = ("a real OS thread that threading does not know of (started by a C extension?), "
                                   "which interleave cannot schedule")
        return result

    def close(self) -> None:
        """Done with runs for now: the watchdog's thread ends (the next run starts it again)."""
        self.watchdog.close()

    def _main(self) -> Any:
        function = self.program.entry()
        sched = active()
        if sched is not None and sched.recorder is not None:
            sched.recorder.event(sched, "enter", self.program.func_name)
        function()
        _stop_pool_workers_like_the_interpreter(sched)


def _os_threads() -> int:
    """OS threads of this process not registered with ``threading`` (so: unknown to it).

    A thread that a C extension starts does not register; one that another part of the
    process starts through ``threading`` does, and is not counted. Linux only; elsewhere 0.
    """
    try:
        tasks = os.stat("/proc/self/task").st_nlink - 2
    except OSError:
        return 0
    return tasks - len(threading._active)


def _stop_pool_workers_like_the_interpreter(sched: Scheduler | None) -> None:
    """What interpreter exit does for ThreadPoolExecutor workers left running, for this
    run's workers only (executors of the process outside the run are not touched)."""
    futures_thread = sys.modules.get("concurrent.futures.thread")
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
