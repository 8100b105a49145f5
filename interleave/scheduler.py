"""The scheduler: one run of a program, every thread a greenlet, every switch decided here.

Each virtual thread is a greenlet whose parent is the *hub* (the greenlet that called
:meth:`Scheduler.run`). Threads hand control to each other directly at switch points;
when a thread finishes its greenlet returns to the hub, which picks the next one.

At every switch point where more than one thing could happen next, the scheduler asks
the strategy (:mod:`interleave.strategies`) to choose among the *options* of a
:class:`~interleave.decisions.DecisionPoint`: run one of the runnable threads, or pause
(let virtual time pass to the next deadline while threads are still runnable) when a timer
is pending and the pause budget allows. Choices that differ from the *default* (keep
running the current thread; when it cannot continue, yields or has used up its time slice,
the next runnable thread in round-robin order) are recorded as typed
:class:`~interleave.decisions.Decision` s, keyed by ``(thread index, steps that thread has
taken, sub-decision)``. Those keys stay meaningful when other decisions are removed, which
is what replay and shrinking need. Fault decisions (:meth:`Scheduler.fault_choice`) and
draws of ``random`` (:meth:`Scheduler.draw_choice`) are decisions too, each kind keyed apart.

The scheduler knows nothing about the CLI, pytest or how programs are loaded.
"""

from __future__ import annotations

import bisect
import ctypes
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, overload

import greenlet

from . import access, events
from .clock import Clock
from .decisions import (
    DRAW_SUB,
    FAULT_SUB,
    PAUSE,
    RUN_THREADS,
    Chooser,
    Decision,
    DecisionPoint,
    Draw,
    Fault,
    Key,
    Option,
    RunThread,
    Where,
    run_thread,
)
from .failures import (
    RUN_STEPS_FACTOR,
    Failure,
    blocked_thread_report,
    blocking_call,
    exception_failure,
    exit_failure,
    hang_failure,
    innermost_user_frame,
    user_location,
)
from .files import is_user_file
from .progress import Snapshot, snapshot

#: Identities of virtual threads: far below any real thread's (a pthread address), so a
#: virtual thread never shadows a real one in ``threading._active``.
VIRTUAL_IDENT_BASE = 0x4000_0000

RUNNABLE, BLOCKED, FINISHED = "runnable", "blocked", "finished"

#: After this many consecutive steps of one thread, it hands over to the other runnable
#: threads (as an OS scheduler would), whatever the strategy prefers: a spin cannot starve them.
TIME_SLICE = 1000

#: A loop that touches nothing shared is seen running once every this many turns.
TICK_SLICE = 16

#: How often (in steps) the scheduler looks whether the program's state changed; two equal
#: looks in a row with nothing started or ended in between make the run *stalled*.
STALL_SAMPLE = 500

#: While every look finds the state changed, the looks grow twice as far apart, up to this
#: many times :data:`STALL_SAMPLE` (and never past an eighth of ``max_steps``): a look walks
#: the program's state, dear on a long run of a large one, while a stall is still seen at
#: the second look after it begins. The first look that finds no change brings them back.
STALL_SAMPLE_GROWTH = 16

#: Polls (a ``sleep(0)``, a failed try-acquire, a long streak) by every runnable thread
#: since anything woke, started or ended, after which real time would have passed: the
#: clock jumps to the next deadline, even if the pollers change state as they look.
SPINS_BEFORE_TIME_PASSES = 200

#: Keys and decision points are made at every decision: built as the tuples they are, directly.
_new_tuple = tuple.__new__

_pythonapi = ctypes.pythonapi
_pythonapi.PyThreadState_Get.restype = ctypes.c_void_p
_leave_tracing = _pythonapi.PyThreadState_LeaveTracing
_leave_tracing.argtypes = [ctypes.c_void_p]
_leave_tracing.restype = None
_enter_tracing = _pythonapi.PyThreadState_EnterTracing
_enter_tracing.argtypes = [ctypes.c_void_p]
_enter_tracing.restype = None


@dataclass
class RunResult:
    """What one run did: how it ended and the choices that made it."""

    failure: Failure | None
    deviations: list[Decision]
    steps: int
    decisions: int
    threads: int
    preemptions: int
    uncontrolled: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: ``(thread, object key, field, write, site)`` per shared access, when the run noted them.
    accesses: list[tuple[int, Any, Any, bool, int]] = field(default_factory=list)
    #: ``(accesses noted before it, thread, kind, object)`` per synchronization, when noting
    #: (see :meth:`Scheduler.note_sync`): what :mod:`interleave.races` orders accesses by.
    syncs: list[tuple[int, int, str, int]] = field(default_factory=list)
    #: Per decision asked, in order, when noting: ``(len(accesses), len(syncs))`` at that moment,
    #: so that a strategy can tell what each step after a decision touched.
    marks: list[tuple[int, int]] = field(default_factory=list)


class VThread:
    """A virtual thread: one greenlet and its scheduling state."""

    __slots__ = (
        "index", "ident", "name", "daemon", "greenlet", "state", "steps", "streak",
        "waiting_on", "timer_generation", "timed_out", "sentinel", "frozen",
        "group", "decided_at", "decisions_here", "faulted_at", "faults_here", "ops", "quiet", "sync_entry",
        "sync_pending", "sync_known", "drew_at", "draws_here", "user_steps", "timed_wait_at",
    )

    def __init__(self, index: int, ident: int, name: str, daemon: bool) -> None:
        self.index = index
        self.ident = ident
        self.name = name
        self.daemon = daemon
        self.greenlet: greenlet.greenlet | None = None
        self.state = RUNNABLE
        self.steps = 0
        self.streak = 0
        self.waiting_on: Any = None
        self.timer_generation = 0
        self.timed_out = False
        self.sentinel: Any = None
        self.frozen = False
        self.group: str | None = None
        # Decisions are keyed (thread, steps, n-th decision at that step): a thread can
        # decide twice without stepping (at a line, then blocking on that same line).
        self.decided_at = -1
        self.decisions_here = 0
        self.faulted_at = -1
        self.faults_here = 0
        # Visible operations since this thread's last switch point: the first one after a
        # switch point needs none of its own (see Scheduler.access_point).
        self.ops = 0
        self.quiet = 0  # loop turns without a visible operation
        self.sync_entry: Any = None  # the stdlib call (its frame) whose lock operations are one step
        self.sync_pending = False  # a call of a synchronization object's method was announced
        #: A frame of this thread's stack met by the last walk for a lock operation, with that
        #: walk's answer (see primitives.before_lock_operation), or None.
        self.sync_known: tuple[Any, Any, Any] | None = None
        self.user_steps = 0  # steps taken in the program's own code (not the stdlib's on its behalf)
        self.drew_at = -1
        self.draws_here = 0
        #: The run's step count when it last waited with a deadline (it lets time pass itself).
        self.timed_wait_at = -1

    def __repr__(self) -> str:
        return f"<VThread {self.index} {self.name} {self.state}>"


class Observer(Protocol):
    """Who watches a run: each step (the thread, the program's frame) and each typed event
    (:mod:`interleave.events`). The scheduler only reports; what is made of it is the observer's."""

    def step(self, sched: Scheduler, thread: VThread, frame: Any) -> None: ...
    def event(self, sched: Scheduler, event: events.RunEvent) -> None: ...


class _Observers:
    """Several observers as one: each is told every step and event, in the order given."""

    __slots__ = ("_each",)

    def __init__(self, each: tuple[Observer, ...]) -> None:
        self._each = each

    def step(self, sched: Scheduler, thread: VThread, frame: Any) -> None:
        for observer in self._each:
            observer.step(sched, thread, frame)

    def event(self, sched: Scheduler, event: events.RunEvent) -> None:
        for observer in self._each:
            observer.event(sched, event)


_active: Scheduler | None = None
_get_real_ident = __import__("_thread").get_ident


def active() -> Scheduler | None:
    """The scheduler running on this OS thread, or None outside a run."""
    sched = _active
    if sched is not None and sched.os_ident == _get_real_ident():
        return sched
    return None


class Scheduler:
    """Runs one program once under a chooser and records what happened."""

    def __init__(
        self,
        chooser: Chooser,
        *,
        max_steps: int = 100_000,
        max_pauses: int = 2,
        max_faults: int = 2,
        max_draws: int = 2,
        observers: Sequence[Observer] = (),
        install_tracer: Callable[[Scheduler], Callable[[], None]] | None = None,
        accesses: bool = False,
        track_accesses: bool = False,
    ) -> None:
        self.chooser = chooser
        self.max_steps = max_steps
        self.pauses_left = max_pauses
        self.faults_left = max_faults
        self.draws_left = max_draws
        #: Who observes the run, as one: None without observers (every step looks, so that
        #: exploration pays one test for them), the observer itself, or all of them together.
        self.observer: Observer | None = (None if not observers else observers[0] if len(observers) == 1
                                          else _Observers(tuple(observers)))
        self._install_tracer = install_tracer
        self.clock = Clock()
        self.threads: list[VThread] = []
        self.runnable: list[int] = []
        # The running thread. None only until run() spawns the main thread (spawn looks); every
        # other reader runs inside the run, so it is typed as always set: the switch points,
        # the hottest code here, read it with no check.
        self.current: VThread = None  # type: ignore[assignment]
        self.steps = 0
        self.decisions = 0
        self.preemptions = 0
        self.deviations: list[Decision] = []
        self.failure: Failure | None = None
        self.uncontrolled: str | None = None
        self.tearing_down = False
        self.os_ident = _get_real_ident()
        self.hub: greenlet.greenlet | None = None
        self._tstate = _pythonapi.PyThreadState_Get()
        self.extra: dict[str, Any] = {}
        self.internal_error: Exception | None = None
        #: Shared accesses are the steps (the program's code is instrumented), not lines.
        self.accesses = accesses
        #: Whether instrumented accesses note what they touched (an observer, or a strategy asked).
        self.noting = accesses and (self.observer is not None or track_accesses)
        #: ``(thread, object key, field, write, site)`` per noted access, in order.
        self.access_log: list[tuple[int, Any, Any, bool, int]] = []
        self._object_keys: dict[int, Any] = {}
        self._keepalive: list[Any] = []
        # Fairness: a thread that yielded waits until the threads runnable then have run.
        self._deferred: dict[int, set[int]] = {}
        self._options_made: dict[tuple[int, ...], tuple[Option, ...]] = {}
        self._options_with_pause: dict[tuple[int, ...], tuple[Option, ...]] = {}
        #: The options of running each runnable thread, made when the set last changed (None:
        #: changed since); kept apart from the dicts above since it is asked at every step.
        self._runnable_options: tuple[Option, ...] | None = None
        # What every decision point shows besides its options, made once: points are many. The
        # place asker is the scheduler's own until the run ends (then it would keep it in a cycle).
        self._thread_steps = _ThreadSteps(self.threads)
        self._ask_where: Callable[[int], Where | None] = self._where
        #: Scheduling decisions made so far, asked or not (a point's ``decisions_before``).
        self._scheduling_decisions = 0
        # A strategy's promise (see Strategy.steady): the next plain decisions (the running thread
        # can go on, the same options) of the same thread take the default without being asked.
        # Read from whoever answers (a portfolio's member); not kept when the run notes its
        # accesses, since what a strategy learns of them is marked at every decision asked.
        answerer = getattr(chooser.choose, "__self__", chooser)
        self._steady_source: Any = answerer if hasattr(answerer, "steady") and not self.noting else None
        self._steady_left = 0
        self._steady_options: tuple[Option, ...] | None = None
        self._steady_thread: VThread | None = None
        # Polls per thread since anything woke, started or ended (see _spun_out).
        self._spins: dict[int, int] = {}
        # Progress: see _sample. While stalled, the fair default schedule runs, time passes.
        self.progress_at = 0
        self.stalled = False
        self._sample_every = self._sample_base = max(1, min(STALL_SAMPLE, max_steps // 4))
        self._sample_most = max(self._sample_base, min(STALL_SAMPLE * STALL_SAMPLE_GROWTH, max_steps // 8))
        self._next_sample = self._sample_every
        self._snapshot: Snapshot | None = None
        self._loop_lines: dict[tuple[int, str, int], int] | None = None
        #: Synchronizations in the same order (see :meth:`note_sync`).
        self.sync_log: list[tuple[int, int, str, int]] = []
        self._sync_keepalive: list[Any] = []
        #: Where the logs stood at each decision (see :attr:`RunResult.marks`).
        self.marks: list[tuple[int, int]] = []

    # ------------------------------------------------------------------ threads

    def spawn(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        name: str | None = None,
        daemon: bool = True,
        ident: int | None = None,
    ) -> VThread:
        """Create a runnable virtual thread that will call ``fn(*args, **kwargs)``."""
        index = len(self.threads)
        vt = VThread(
            index,
            ident if ident is not None else VIRTUAL_IDENT_BASE + index,
            name or f"thread-{index}",
            daemon,
        )
        run_thread(index)  # its option exists from now on
        if self.current is not None:
            vt.group = self.current.group
        vt.greenlet = greenlet.greenlet(lambda: self._thread_body(vt, fn, args, kwargs or {}), parent=self.hub)
        self.threads.append(vt)
        self._add_runnable(index)
        self._progress()
        self._spins.clear()
        if self.noting and self.current is not None:
            self.sync_log.append((len(self.access_log), self.current.index, "spawn", index))
        if self.observer is not None and self.current is not None:
            self.observer.event(self, events.ThreadStarted(vt.index, vt.name, vt.group))
        return vt

    def _thread_body(self, vt: VThread, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        try:
            fn(*args, **kwargs)
        except greenlet.GreenletExit:
            pass
        except SystemExit as exc:
            # As the interpreter: ignored in a thread; from the main thread, an exit status
            # (None and 0 are success; any other int, or any other object, printed, a failure).
            success = exc.code is None or (isinstance(exc.code, int) and exc.code == 0)
            if vt.index == 0 and not success and not self.tearing_down:
                self.fail_with_exception(exc, vt)
        except BaseException as exc:  # noqa: BLE001 - any exception of the program is a finding
            if not self.tearing_down:
                self.fail_with_exception(exc, vt)
        finally:
            if not self.tearing_down:
                self._on_exit(vt)

    def _on_exit(self, vt: VThread) -> None:
        vt.state = FINISHED
        self._progress()
        self._spins.clear()
        self._drop_runnable(vt.index)
        if vt.sentinel is not None and vt.sentinel.locked():
            vt.sentinel.release()
        if self.observer is not None:
            self.observer.event(self, events.ThreadEnded())

    # ---------------------------------------------------------------- the run

    def run(self, main: Callable[[], Any], *, main_ident: int, main_name: str = "MainThread") -> RunResult:
        """Run ``main`` as virtual thread 0 until every non-daemon thread is done or a failure."""
        global _active
        if _active is not None and _active.os_ident == self.os_ident:
            raise RuntimeError("an interleave run is already active on this thread")
        self.hub = greenlet.getcurrent()
        main_vt = self.spawn(main, name=main_name, daemon=False, ident=main_ident)
        assert main_vt.greenlet is not None  # spawn made it
        self.current = main_vt
        _active = self
        if self.accesses:
            access.RUN.sched, access.RUN.os_ident = self, self.os_ident
        uninstall = None
        try:
            uninstall = self._install_tracer(self) if self._install_tracer else None
            main_vt.greenlet.switch()
            while (self.failure is None and self.uncontrolled is None and self.internal_error is None
                   and not self._done() and "interrupted" not in self.extra and "exit_status" not in self.extra):
                nxt = self._pick_next(in_trace=False, hub=True)
                if nxt is None:
                    break
                self.current = nxt
                nxt.streak = 0
                nxt.ops = 0
                self._ran(nxt)
                assert nxt.greenlet is not None  # each thread has its greenlet until teardown, below
                nxt.greenlet.switch()
        finally:
            if uninstall is not None:
                uninstall()
            # Per thread, its steps in the program's own code (with lines as the steps, every step is
            # one); counted before teardown, whose finally blocks are no steps of the run.
            self.extra["user_steps"] = [vt.user_steps if self.accesses else vt.steps for vt in self.threads]
            self._teardown()
            self._let_go()
            self._ask_where = _nowhere
            if access.RUN.sched is self:
                access.RUN.sched = None
            _active = None
        if self.internal_error is not None:
            raise self.internal_error
        self.extra["thread_steps"] = [vt.steps for vt in self.threads]
        return RunResult(
            failure=self.failure,
            deviations=self.deviations,
            steps=self.steps,
            decisions=self.decisions,
            threads=len(self.threads),
            preemptions=self.preemptions,
            uncontrolled=self.uncontrolled,
            extra=self.extra,
            accesses=self.access_log,
            syncs=self.sync_log,
            marks=self.marks,
        )

    def _done(self) -> bool:
        return all(vt.state == FINISHED or vt.daemon for vt in self.threads)

    def _let_go(self) -> None:
        """Drop what ties the run's threads back to it (the locks a thread waits on or ends
        with refer to this scheduler; the frames kept for the lock walk, to whole stacks), so
        that the run is freed by reference counting when it ends, not left to the cycle
        collector, whose passes over every run's leftovers cost more than a short run."""
        for vt in self.threads:
            vt.waiting_on = vt.sentinel = vt.sync_known = vt.sync_entry = None

    def _teardown(self) -> None:
        """Stop every thread still alive, running its ``finally`` blocks without switching."""
        self.tearing_down = True
        if self.observer is not None:
            self.observer.event(self, events.TearingDown())  # any step after this is a finally block, not the run
        alive = []
        for vt in self.threads:
            if vt.greenlet:  # started and not dead
                alive.append(vt)
            else:
                vt.greenlet = None
        if not alive:
            return  # the usual end of a run: no tracer to set (it costs more than the rest of teardown on 3.12+)
        logging = sys.modules.get("logging")
        if logging is not None:
            # Threads stopped here may log their own death (a pool worker does): not the program's story.
            previous_disable = logging.root.manager.disable
            logging.disable(logging.CRITICAL)
        budget = _TeardownBudget()
        previous = sys.gettrace()
        sys.settrace(budget.trace)
        try:
            for vt in alive:
                g = vt.greenlet
                if g:  # still alive: stopping an earlier one may have ended it
                    self.current = vt  # it unwinds as itself: get_ident() and friends must say so
                    try:
                        g.throw(greenlet.GreenletExit)
                    except BaseException:  # noqa: BLE001 - a dying thread's last words are ignored
                        pass
                    if g:
                        _graveyard.append(g)  # refuses to die: keep it from running at GC time
                vt.greenlet = None
        finally:
            sys.settrace(previous)
            if logging is not None:
                logging.disable(previous_disable)

    # ------------------------------------------------------------ switch points

    def line(self, frame: Any) -> None:
        """Switch point for a traced line (or opcode) of the program; called from the tracer."""
        if self.tearing_down:
            return  # a stopped thread's except/finally lines at teardown are not steps of the run
        cur = self.current
        cur.steps += 1
        self.steps += 1
        if self.observer is not None:
            self.observer.step(self, cur, frame)
        if self.steps >= self._next_sample:
            self._sample(frame, in_trace=True)
        if self._loop_lines is not None:
            key = (cur.index, frame.f_code.co_filename, frame.f_lineno)
            self._loop_lines[key] = self._loop_lines.get(key, 0) + 1
        if len(self.runnable) == 1 and not ((self.pauses_left > 0 or self.stalled) and self.clock.has_timers()):
            cur.streak += 1
            return
        self._switch_point(in_trace=True, yielding=False)

    def yield_point(self) -> None:
        """A point where the current thread offers to let others run (``sleep(0)``): the
        threads runnable now run before it does again."""
        self.steps += 1
        self.current.steps += 1
        if self.steps >= self._next_sample:
            self._sample()
        self.polled()
        self._switch_point(in_trace=False, yielding=True)
        self.current.ops = 0

    def access_point(self) -> None:
        """Switch point before a shared access of instrumented code (see :mod:`interleave.access`).

        Every visible operation is a step. The first one after a switch point needs no
        switch point of its own: nothing the other threads could see happened in between.
        (:meth:`_visible_step` written out: this is the path of every access.)
        """
        cur = self.current
        cur.quiet = 0
        cur.user_steps += 1
        switch = cur.ops > 0 or cur.sync_pending
        cur.sync_pending = False
        if self.tearing_down:
            return
        cur.steps += 1
        self.steps += 1
        if self.steps >= self._next_sample or self._loop_lines is not None:
            self._look(cur, sys._getframe(2))
        if switch and (len(self.runnable) > 1 or ((self.pauses_left > 0 or self.stalled) and self.clock.has_timers())):
            self._switch_point(False, False)  # not in a tracer, not yielding (positional: a cheaper call)
        cur.ops = 1
        if self.observer is not None and not self.tearing_down:
            self.observer.step(self, cur, sys._getframe(2))

    def sync_call(self) -> None:
        """A method of a synchronization object is about to be called from instrumented code:
        the step is here; the lock operations inside that call are part of it."""
        cur = self.current
        cur.quiet = 0
        cur.user_steps += 1
        self._visible_step(cur, cur.ops > 0 or cur.sync_pending)
        cur.sync_pending = True
        cur.sync_entry = None
        if self.observer is not None and not self.tearing_down:
            self.observer.step(self, cur, sys._getframe(2))

    def sync_point(self, entry: Any, frame: Any) -> None:
        """Switch point before a lock operation, when shared accesses are the steps.

        ``entry`` is the frame of the stdlib call the operation is part of (None when the
        program or a library called the lock itself): one stdlib call is one step.
        """
        cur = self.current
        if entry is not None:
            if entry is cur.sync_entry:
                return
            cur.sync_entry = entry
        if cur.sync_pending:  # announced by sync_call, which made this call's step
            cur.sync_pending = False
            return
        cur.quiet = 0
        user = frame is not None and is_user_file(frame.f_code.co_filename)
        if user:
            cur.user_steps += 1
        self._visible_step(cur, cur.ops > 0, frame)
        if self.observer is not None and not self.tearing_down:
            user = innermost_user_frame(frame)
            if user is not None:
                self.observer.step(self, cur, user)

    def _visible_step(self, cur: VThread, switch: bool, frame: Any = None) -> None:
        """One step; ``frame`` is the program's (by default three calls up: the helper's caller)."""
        if self.tearing_down:
            return
        cur.steps += 1
        self.steps += 1
        if self.steps >= self._next_sample or self._loop_lines is not None:
            self._look(cur, frame or sys._getframe(3))
        if switch and (len(self.runnable) > 1 or ((self.pauses_left > 0 or self.stalled) and self.clock.has_timers())):
            self._switch_point(False, False)  # not in a tracer, not yielding (positional: a cheaper call)
        cur.ops = 1

    def _look(self, cur: VThread, frame: Any) -> None:
        """The hang detector's look at a step: a sample when one is due, the line counted
        while the run is stalled."""
        if self.steps >= self._next_sample:
            self._sample(frame)
        if self._loop_lines is not None:
            key = (cur.index, frame.f_code.co_filename, frame.f_lineno)
            self._loop_lines[key] = self._loop_lines.get(key, 0) + 1

    def tick(self) -> None:
        """A loop turned; every :data:`TICK_SLICE` turns without a visible operation is a step."""
        cur = self.current
        cur.quiet += 1
        if cur.quiet >= TICK_SLICE:
            cur.quiet = 0
            self._visible_step(cur, True)  # a step of its own, even with nothing visible since the last
            if self.observer is not None and not self.tearing_down:
                self.observer.step(self, cur, sys._getframe(2))

    def note(self, site: int, obj: Any, field: Any, write: bool, value: Any) -> None:
        """What the access just made touched (when this run keeps records)."""
        if self.tearing_down:
            return  # a stopped thread's finally block: not a step of the run
        # Each thread's own attribute of a thread-local: a field of its own in the record.
        logged = (field, self.current.index) if isinstance(obj, access.per_thread_types) else field
        self.access_log.append((self.current.index, self.object_key(obj), logged, write, site))
        if self.observer is not None and not self.tearing_down:
            self.observer.event(self, events.Accessed(site, obj, field, write, value))

    def object_key(self, obj: Any) -> Any:
        """The run's name for an object: numbered in the order the run first touches them,
        the same in every run that follows the same schedule prefix (ids of memory are not)."""
        key = access.stable_name(obj)
        if key is None:
            key = self._object_keys.get(id(obj))
            if key is None:
                key = self._object_keys[id(obj)] = len(self._object_keys)
                self._keepalive.append(obj)
        return key

    def note_sync(self, kind: str, obj: Any, thread: int | None = None) -> None:
        """A lock was acquired or released (``kind``), when this run keeps records: the
        synchronization every stdlib primitive is built of, in order with the accesses.
        ``thread``: by another thread than the current one (a file closed unseen)."""
        if not self.tearing_down:
            self.sync_log.append((len(self.access_log), self.current.index if thread is None else thread, kind,
                                  id(obj)))
            self._sync_keepalive.append(obj)  # its id names it for the whole run

    def polled(self) -> None:
        """The current thread polled and found nothing (a yield, a failed non-blocking
        acquire): it may not run again before the threads runnable now have run."""
        cur = self.current
        self._spins[cur.index] = self._spins.get(cur.index, 0) + 1
        others = {i for i in self.runnable if i != cur.index}
        if others:
            self._deferred[cur.index] = others

    def op_point(self) -> None:
        """Switch point before an operation on a primitive called from untraced code."""
        self.steps += 1
        self.current.steps += 1
        if self.steps >= self._next_sample:
            self._sample()
        if len(self.runnable) > 1:
            self._switch_point(in_trace=False, yielding=False)

    def _switch_point(self, in_trace: bool, yielding: bool) -> None:
        cur = self.current
        cur.streak += 1
        runnable = self.runnable
        # Nearly every step comes here with the running thread free to go on, nobody polling
        # or waiting for others to run, and no pause to offer: :meth:`_pick_next`'s answer
        # for that case, written out, since it is the cost of every step.
        if (not yielding and cur.streak < TIME_SLICE and len(runnable) > 1 and cur.state == RUNNABLE
                and not cur.frozen and not self.stalled and not self._spins and not self._deferred
                and not (self.pauses_left > 0 and self.clock.deadlines and self.clock.has_timers())):
            options = self._runnable_options
            if options is None:
                options = self._runnable_options = self._options_made.get(tuple(runnable)) or self._options(
                    runnable, False)
            if self._steady_left and options is self._steady_options and cur is self._steady_thread:
                # The strategy said it would answer this decision with the default: not asked.
                self._steady_left -= 1
                if cur.decided_at == cur.steps:
                    cur.decisions_here += 1
                else:
                    cur.decided_at = cur.steps
                    cur.decisions_here = 0
                self.decisions += 1
                self._scheduling_decisions += 1
                return
            default = RUN_THREADS[cur.index]
            choice = self._decide(options, default, True, False, in_trace)
            if choice is default:
                if self._steady_source is not None:
                    self._steady_left = self._steady_source.steady
                    self._steady_options, self._steady_thread = options, cur
            elif isinstance(choice, RunThread):
                self._switch(self.threads[choice.thread], in_trace)
            return
        nxt = self._pick_next(in_trace=in_trace, yielding=yielding)
        if nxt is not None and nxt is not cur:
            self._switch(nxt, in_trace)

    def _pick_next(self, *, in_trace: bool, yielding: bool = False, hub: bool = False) -> VThread | None:
        """Decide who runs next; jumps the clock when nobody can run. None: the run is over.

        Fair like real time: a thread past its time slice, or one that yielded, is no option
        until the others runnable then have run (a forced choice, not a deviation); while
        the run is stalled the default is taken, and time passes if the runnable threads
        only spin (see :meth:`_time_passes`)."""
        cur = self.current
        while True:
            runnable = self.runnable
            if not runnable:
                if self.clock.has_timers():
                    self._advance_clock()
                    continue
                self.fail_deadlock()
                return None
            if self.stalled and self._time_passes():
                continue
            spins = self._spins
            if spins and spins.get(cur.index, 0) >= SPINS_BEFORE_TIME_PASSES and self._spun_out(runnable):
                continue
            cur_live = cur.state == RUNNABLE and not cur.frozen and not hub
            if cur_live and cur.streak >= TIME_SLICE and len(runnable) > 1:
                self.polled()
                yielding = True
            if self._deferred:
                runnable = self._eligible(runnable)
            cur_runnable = cur_live and cur.index in runnable
            jump_ok = self.pauses_left > 0 and not self.stalled and self.clock.has_timers()
            if cur_runnable and not yielding:
                default = cur.index
            else:
                i = bisect.bisect_right(runnable, cur.index)
                default = runnable[i] if i < len(runnable) else runnable[0]
            if len(runnable) == 1 and not jump_ok:
                return self.threads[runnable[0]]
            if self.stalled:
                return self.threads[default]
            # The same few sets of options come again and again: each is made once.
            options = (self._options_with_pause if jump_ok else self._options_made).get(tuple(runnable))
            if options is None:
                options = self._options(runnable, jump_ok)
            preemptive = cur_runnable and not yielding
            choice = self._decide(options, RUN_THREADS[default], preemptive, cur_live and not preemptive, in_trace)
            if not isinstance(choice, RunThread):
                self.pauses_left -= 1
                self._advance_clock()
                continue
            return self.threads[choice.thread]

    def _add_runnable(self, index: int) -> None:
        """Thread ``index`` can run (again)."""
        runnable = self.runnable
        i = bisect.bisect_left(runnable, index)
        if i == len(runnable) or runnable[i] != index:
            runnable.insert(i, index)
            self._runnable_options = None

    def _drop_runnable(self, index: int) -> None:
        """Thread ``index`` cannot run (blocked, ended, frozen)."""
        runnable = self.runnable
        i = bisect.bisect_left(runnable, index)
        if i < len(runnable) and runnable[i] == index:
            del runnable[i]
            self._runnable_options = None

    def _options(self, runnable: list[int], jump_ok: bool) -> tuple[Option, ...]:
        """The options of a scheduling decision: the threads, then the pause if it may be taken."""
        threads = RUN_THREADS
        if jump_ok:
            options = self._options_with_pause[tuple(runnable)] = (*[threads[i] for i in runnable], PAUSE)
        else:
            options = self._options_made[tuple(runnable)] = tuple([threads[i] for i in runnable])
        return options

    def _eligible(self, runnable: list[int]) -> list[int]:
        """The runnable threads not waiting for others to run first (all, if none is left);
        asked only while some thread waits."""
        deferred = self._deferred
        threads = self.threads
        eligible = [i for i in runnable if i not in deferred
                    or not any(threads[j].state == RUNNABLE and not threads[j].frozen for j in deferred[i])]
        return eligible or runnable

    def _ran(self, vt: VThread) -> None:
        """``vt`` was switched to: nobody waits for it to run any more."""
        if self._deferred:
            index = vt.index
            for waiter, others in list(self._deferred.items()):
                others.discard(index)
                if not others or waiter == index:
                    del self._deferred[waiter]

    def _time_passes(self) -> bool:
        """While the run is stalled and its runnable threads only spin (none of them waited
        with a deadline since the last progress), real time would pass: jump the clock to
        the next deadline, free (no pause), and let the woken threads run first."""
        if not self.clock.has_timers():
            return False
        threads = self.threads
        spinning = list(self.runnable)
        if any(threads[i].timed_wait_at >= self.progress_at for i in spinning):
            return False
        woken = {vt.index for vt in self._advance_clock()}
        for i in spinning:
            self._deferred.setdefault(i, set()).update(woken)
        # What the woken threads do next is explored again: a race as a poll ends is a finding.
        self.stalled = False
        return True

    def _spun_out(self, runnable: list[int]) -> bool:
        """Every runnable thread has polled long enough that real time would pass: jump the
        clock to the next deadline, free, and let the woken threads run first."""
        spins = self._spins
        if not self.clock.has_timers() or any(spins.get(i, 0) < SPINS_BEFORE_TIME_PASSES for i in runnable):
            return False
        woken = {vt.index for vt in self._advance_clock()}
        for i in runnable:
            if i not in woken:
                self._deferred.setdefault(i, set()).update(woken)
        return True

    def _progress(self) -> None:
        """Something happened that changes what the program can do (a thread started or
        ended, the state changed): the no-progress count starts again."""
        self.progress_at = self.steps
        self.extra["progress_deviations"] = len(self.deviations)
        self.stalled = False
        self._snapshot = None
        self._loop_lines = None

    def _sample(self, frame: Any = None, in_trace: bool = False) -> None:
        """Every few steps: did the program's state change since the last look? Not for
        ``max_steps`` steps is a hang (unless a thread that did not loop waits for a deadline
        still to come: then the clock goes there first)."""
        self._next_sample = self.steps + self._sample_every
        if self.tearing_down:
            return
        if self.steps > self.max_steps * RUN_STEPS_FACTOR:
            self.fail_hang(frame, in_trace, still_changing=True)
        now = snapshot(self)
        if self._snapshot is None:  # the first look since the last progress
            self._snapshot = now
            return
        if not now.same_as(self._snapshot):
            self._progress()
            self._snapshot = now
            self._sample_every = min(self._sample_every * 2, self._sample_most)
            return
        self._sample_every = self._sample_base
        if not self.stalled:
            self.stalled = True
            self._loop_lines = {}
        if self.steps - self.progress_at > self.max_steps:
            if not self._wake_a_sleeper():
                self.fail_hang(frame, in_trace)

    def _wake_a_sleeper(self) -> bool:
        """At a would-be hang: a thread that did not loop and waits for a deadline (a long
        sleep, a timeout) would see it come in real time; jump there. False if none waits."""
        loopers = {thread for thread, _, _ in self._loop_lines or ()}
        sleepers = [vt for _, vt in self.clock.pending() if vt.index not in loopers and vt.state == BLOCKED]
        if not sleepers:
            return False
        target = sleepers[0]
        woken: set[int] = set()
        while target.state == BLOCKED and self.clock.has_timers():
            woken |= {vt.index for vt in self._advance_clock()}
        for i in self.runnable:
            if i not in woken:
                self._deferred.setdefault(i, set()).update(woken)
        self._progress()
        return True

    def _decide(self, options: tuple[Option, ...], default: RunThread, preemptive: bool, yielding: bool,
                in_trace: bool = False) -> Option:
        cur = self.current
        # The how-many-th decision at this step (the key's sub), written out: this is every step's path.
        steps = cur.steps
        if cur.decided_at == steps:
            cur.decisions_here += 1
        else:
            cur.decided_at = steps
            cur.decisions_here = 0
        self.decisions += 1
        index = self._scheduling_decisions
        self._scheduling_decisions = index + 1
        self._steady_left = 0  # a promise covers only the plain decisions right after its answer
        point = _new_tuple(DecisionPoint, ((cur.index, steps, cur.decisions_here), options, default, preemptive,
                                           yielding, self._thread_steps, self._ask_where, index))
        choice = self._ask(point, in_trace)
        if choice is default:  # nearly every answer
            return choice
        # Costs as DecisionPoint.paid gives them, without its calls.
        if isinstance(choice, RunThread):
            if choice.thread == default.thread:
                return choice
            paid = preemptive and choice.thread != cur.index
        else:
            paid = True  # a pause
        self.preemptions += paid
        self.deviations.append(_new_tuple(Decision, (_new_tuple(Key, point[0]), choice, paid)))
        if self.observer is not None:
            if choice is PAUSE:
                self.observer.event(self, events.Paused(default.thread, self.threads[default.thread].name))
            elif paid and isinstance(choice, RunThread):
                self.observer.event(self, events.Preempted(choice.thread, self.threads[choice.thread].name))
        return choice

    def _point(self, key: tuple[int, int, int], options: tuple[Option, ...]) -> DecisionPoint:
        """A fault's or a draw's decision point (the first option is the default)."""
        return DecisionPoint(key, options, options[0], False, False, self._thread_steps, self._ask_where,
                             self._scheduling_decisions)

    def _ask(self, point: DecisionPoint, in_trace: bool) -> Option:
        """The chooser's answer; an error of the chooser ends the run and is re-raised by :meth:`run`."""
        if self.noting:
            self.marks.append((len(self.access_log), len(self.sync_log)))
        try:
            return self.chooser.choose(point)
        except RecursionError:
            raise  # the program's stack is full: its own RecursionError, a few frames early
        except Exception as exc:  # not the program's failure: handed to the caller
            self.internal_error = exc
            self.abort(in_trace)
            raise

    def _where(self, thread: int) -> Where | None:
        """Where in the program's own code ``thread`` is (None when nowhere): the running
        thread's from this call's stack, another's from its greenlet's frame."""
        vt = self.threads[thread]
        frame: Any = None
        if vt is self.current:
            frame = sys._getframe(1)
        elif vt.greenlet is not None:
            frame = vt.greenlet.gr_frame
        user = innermost_user_frame(frame) if frame is not None else None
        return (user.f_code, user.f_lineno) if user is not None else None

    def _advance_clock(self) -> list[VThread]:
        """Jump to the next deadline; the threads it woke."""
        before = self.clock.now
        if self.noting:
            self.note_sync("jump", self.clock)  # what read the clock before and after is ordered by it
        due = self.clock.advance_to_next()
        for vt in due:
            vt.timed_out = True
            self.wake(vt)
        if self.observer is not None:
            self.observer.event(self, events.ClockAdvanced(self.clock.now - before))
        return due

    def _switch(self, target: VThread, in_trace: bool) -> None:
        self.current = target
        target.streak = 0
        target.ops = 0
        self._ran(target)
        g = target.greenlet
        assert g is not None  # a thread keeps its greenlet until teardown, after the last switch
        if in_trace:
            _leave_tracing(self._tstate)
            try:
                g.switch()
            finally:
                _enter_tracing(self._tstate)
        else:
            g.switch()

    # --------------------------------------------------------------- blocking

    def block(self, waiting_on: Any, deadline: float | None = None) -> bool:
        """Block the current thread until :meth:`wake`; False if the deadline passed first."""
        if self.tearing_down:
            raise greenlet.GreenletExit
        cur = self.current
        cur.state = BLOCKED
        cur.waiting_on = waiting_on
        cur.timed_out = False
        self._drop_runnable(cur.index)
        if deadline is not None:
            cur.timer_generation += 1
            cur.timed_wait_at = self.steps
            self.clock.add(deadline, cur, cur.timer_generation)
        if self.observer is not None:
            holder = getattr(waiting_on, "holder", None)
            self.observer.event(self, events.Blocked(
                blocking_call(sys._getframe(1), waiting_on), getattr(waiting_on, "label", None),
                holder.index if holder else None, holder.name if holder else None,
                waiting_on.seconds if isinstance(waiting_on, _Sleep) else None))
        nxt = self._pick_next(in_trace=False)
        if nxt is None:
            self.abort()  # returns only on the hub, where there is nothing to switch from
        elif nxt is not cur:
            self._switch(nxt, in_trace=False)
        if self.tearing_down:
            raise greenlet.GreenletExit
        cur.waiting_on = None
        return not cur.timed_out

    def wake(self, vt: VThread) -> None:
        """Make a blocked thread runnable again (its timer, if any, is cancelled)."""
        if vt.state != BLOCKED:
            return
        vt.state = RUNNABLE
        vt.timer_generation += 1
        self._spins.clear()
        if self.observer is not None:
            self.observer.event(self, events.Woken(vt.index, vt.name, vt.timed_out))
        if not vt.frozen:
            self._add_runnable(vt.index)

    def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            self.yield_point()
            return
        self.block(_Sleep(seconds), self.clock.now + seconds)

    # ---------------------------------------------------------------- faults

    def fault_choice(self, label: str, options: int) -> int:
        """A fault decision (0 = no fault): explored, shrunk and replayed like a preemption."""
        if self.faults_left <= 0 or options < 2 or self.stalled:
            return 0
        cur = self.current
        if cur.faulted_at == cur.steps:
            cur.faults_here += 1
        else:
            cur.faulted_at = cur.steps
            cur.faults_here = 0
        sub = FAULT_SUB + cur.faults_here
        self.decisions += 1
        faults: tuple[Option, ...] = tuple([Fault(k, label) for k in range(options)])
        point = self._point((cur.index, cur.steps, sub), faults)
        choice = self._ask(point, False)
        picked = choice.option if isinstance(choice, Fault) else 0
        if picked != 0:
            self.faults_left -= 1
            self.preemptions += 1
            self.deviations.append(Decision(Key(*point.key), choice, True))
            if self.observer is not None:
                self.observer.event(self, events.Faulted(label, picked))
        return picked

    def draw_choice(self, options: int) -> int:
        """Which of ``options`` values a draw of ``random`` returns: 0, the seeded draw, is
        the default and free; another is paid like a fault (explored, shrunk, replayed)."""
        if self.draws_left <= 0 or options < 2 or self.tearing_down:
            return 0
        cur = self.current
        if cur.drew_at == cur.steps:
            cur.draws_here += 1
        else:
            cur.drew_at = cur.steps
            cur.draws_here = 0
        sub = DRAW_SUB + cur.draws_here
        self.decisions += 1
        draws: tuple[Option, ...] = tuple([Draw(k) for k in range(options)])
        point = self._point((cur.index, cur.steps, sub), draws)
        choice = self._ask(point, False)
        picked = choice.value if isinstance(choice, Draw) else 0
        if picked != 0:
            self.draws_left -= 1
            self.preemptions += 1
            self.deviations.append(Decision(Key(*point.key), choice, True))
        return picked

    def freeze(self, threads: list[VThread], frozen: bool) -> None:
        """Hold threads out of scheduling (a paused process) or release them."""
        for vt in threads:
            if vt.state == FINISHED:
                continue
            vt.frozen = frozen
            if frozen:
                self._drop_runnable(vt.index)
            elif vt.state == RUNNABLE:
                self._add_runnable(vt.index)
        if frozen and self.current in threads:
            nxt = self._pick_next(in_trace=False)
            if nxt is None:
                self.abort()  # returns only on the hub, where there is nothing to switch from
            else:
                self._switch(nxt, in_trace=False)

    def kill(self, threads: list[VThread]) -> None:
        """Crash threads: they never run again (their greenlets are stopped at teardown)."""
        for vt in threads:
            if self.noting and self.current is not None and vt is not self.current:
                # What a crashed thread did happens before what its killer does next (as a
                # join would, also for one that had already ended).
                self.sync_log.append((len(self.access_log), self.current.index, "outlive", vt.index))
            if vt.state == FINISHED:
                continue
            vt.state = FINISHED
            vt.timer_generation += 1
            self._drop_runnable(vt.index)
            if vt.sentinel is not None and vt.sentinel.locked():
                vt.sentinel.release()
        if self.current in threads:
            nxt = self._pick_next(in_trace=False)
            if nxt is None:
                self.abort()  # returns only on the hub, where there is nothing to switch from
            else:
                self._switch(nxt, in_trace=False)

    # --------------------------------------------------------------- failures

    def abort(self, in_trace: bool = False) -> None:
        """Leave the current thread for good and hand control back to the hub."""
        if greenlet.getcurrent() is self.hub:
            return
        if self.tearing_down:
            # Stopped by teardown (which threw into this thread): unwind and die here, so
            # the greenlet ends instead of waiting forever for a switch back.
            raise greenlet.GreenletExit
        hub = self.hub
        assert hub is not None  # set by run() before any thread runs
        if in_trace:
            _leave_tracing(self._tstate)
            try:
                hub.switch()
            finally:
                _enter_tracing(self._tstate)
        else:
            hub.switch()
        raise greenlet.GreenletExit

    def fail(self, failure: Failure, in_trace: bool = False) -> None:
        if self.failure is None and not self.tearing_down:
            self.failure = failure
        self.abort(in_trace)

    def fail_with_exception(self, exc: BaseException, vt: VThread | None = None) -> None:
        if self.extra.get("interrupted") and _interrupted(exc):
            pass  # a real Ctrl-C (the campaign's SIGINT handler said so): no finding
        elif self.failure is None and not self.tearing_down:
            self.failure = exception_failure(exc, (vt or self.current).name)
        if vt is None:
            self.abort()

    def exit_process(self, status: int, frame: Any) -> None:
        """``os._exit(status)`` in the current thread: the run ends here, as the process would;
        a non-zero status is a failure."""
        self.extra["exit_status"] = status
        if status != 0:
            self.fail(exit_failure(status, self.current.name, frame))
        self.abort()

    def fail_deadlock(self) -> None:
        blocked = [vt for vt in self.threads if vt.state == BLOCKED or vt.frozen]
        if self.failure is None:
            self.failure = blocked_thread_report(self, blocked)
            if self.observer is not None:
                self.observer.event(self, events.Deadlocked(tuple(
                    events.Wait(vt.index, self._holder_index(vt), getattr(vt.waiting_on, "label", None), vt.frozen)
                    for vt in blocked)))

    def _holder_index(self, vt: VThread) -> int | None:
        """Who a blocked thread waits for (for the timeline): a joined thread, or the lock's holder."""
        for other in self.threads:
            if other.sentinel is not None and other.sentinel is vt.waiting_on and other is not vt:
                return other.index  # a join (on 3.13 the joiner itself holds the thread handle's lock)
        holder = getattr(vt.waiting_on, "holder", None)
        return holder.index if holder is not None else None

    def fail_hang(self, frame: Any = None, in_trace: bool = False, still_changing: bool = False) -> None:
        loops = None if still_changing else self._loop_lines or {}
        self.fail(hang_failure(self, self.current, frame or sys._getframe(1), loops), in_trace)

    def fail_uncontrolled(self, what: str) -> None:
        if self.uncontrolled is None and not self.tearing_down:
            where = user_location(sys._getframe(1))
            self.uncontrolled = f"{what} at {where}" if where else what
        self.abort()


def _interrupted(exc: BaseException | None) -> bool:
    """A KeyboardInterrupt, or an error it caused: a ``finally`` in threading's thread bootstrap
    that it cut short raises ``KeyError`` in its place (seen on 3.13). Whoever runs the
    scheduler sets ``extra["interrupted"]`` when a real Ctrl-C arrives; without that, a
    KeyboardInterrupt is the program's own exception, and a finding."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__context__
    return False


def _nowhere(thread: int) -> Where | None:
    return None


class _ThreadSteps(Sequence[int]):
    """The steps each thread has taken, by index, as the run stands: what a decision point shows."""

    __slots__ = ("_threads",)

    def __init__(self, threads: list[VThread]) -> None:
        self._threads = threads

    def __len__(self) -> int:
        return len(self._threads)

    @overload
    def __getitem__(self, index: int) -> int: ...

    @overload
    def __getitem__(self, index: slice) -> list[int]: ...

    def __getitem__(self, index: int | slice) -> int | list[int]:
        if isinstance(index, slice):
            return [vt.steps for vt in self._threads[index]]
        return self._threads[index].steps


class _Sleep:
    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __repr__(self) -> str:
        return f"sleep({self.seconds:g})"


class _TeardownBudget:
    """A tracer for teardown: a thread that loops in its ``finally`` blocks is stopped."""

    LIMIT = 10_000

    def __init__(self) -> None:
        self.lines = 0

    def trace(self, frame: Any, event: str, arg: Any) -> Any:
        return self._local

    def _local(self, frame: Any, event: str, arg: Any) -> Any:
        if event == "line":
            self.lines += 1
            if self.lines > self.LIMIT:
                raise greenlet.GreenletExit
        return self._local


#: Greenlets that would not die at teardown; kept alive so the GC never resumes them.
_graveyard: list[greenlet.greenlet] = []
