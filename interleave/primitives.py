"""Controlled stand-ins for the lowest layer of Python threading: ``_thread`` and ``time``.

The standard library builds Condition, Event, Semaphore, Barrier, Timer, Thread, the
queues and ThreadPoolExecutor in pure Python on top of a handful of ``_thread``
functions and the clock. Replacing only that layer (see :mod:`interleave.patching`) gives
every higher-level primitive its exact stdlib semantics (FIFO notify, Barrier breaking,
queue timeouts...) while every block, wake-up and timeout goes through the scheduler.

Each stand-in works in two modes: inside a run it talks to the active scheduler; outside
any run (an object made at import time and used later) it behaves exactly like the real
primitive, which it creates lazily.
"""

from __future__ import annotations

import _thread
import operator
import os
import sys
import time as _time
from collections.abc import Callable
from types import FrameType
from typing import Any, Protocol

from . import access, events
from .failures import user_location
from .files import CodeFacts, is_threading_internal, is_user_file
from .scheduler import Scheduler, VThread, active

_real_allocate_lock = _thread.allocate_lock
_real_rlock = _thread.RLock
_real_get_ident = _thread.get_ident
#: ``_thread`` for what exists on some versions only (the stubs declare each per version).
_thread_of_this_version: Any = _thread

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep

REAL_TIME = {
    name: getattr(_time, name)
    for name in ("sleep", "monotonic", "monotonic_ns", "time", "time_ns", "perf_counter", "perf_counter_ns")
}


class _RealLock(Protocol):
    """A real ``_thread`` lock or RLock, as a stand-in uses it outside runs."""

    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...
    def release(self) -> None: ...
    def locked(self) -> bool: ...  # a real RLock has it from 3.14 on; before, calling it fails as it would


class _RealRLock(_RealLock, Protocol):
    """A real ``_thread.RLock`` with the private protocol ``threading.Condition`` uses (not in its stubs)."""

    def _is_owned(self) -> bool: ...
    def _release_save(self) -> Any: ...
    def _acquire_restore(self, state: Any) -> None: ...
    def _recursion_count(self) -> int: ...


def _label(sched: Scheduler, kind: str) -> str:
    n = sched.extra.get(kind, 0) + 1
    sched.extra[kind] = n
    return f"{kind}-{n}"


class Lock:
    """A non-reentrant lock, like ``threading.Lock`` (any thread may release it)."""

    __slots__ = ("_real", "_run", "_locked", "holder", "_waiters", "label", "__weakref__")

    def __init__(self) -> None:
        self._real: Any = None  # the real lock (or RLock), made the first time it is used outside a run
        self._run: Scheduler | None = None
        self._locked = False
        self.holder: VThread | None = None
        self._waiters: list[VThread] = []
        self.label = "Lock"
        sched = active()
        if sched is not None:
            self._fresh(sched)
            caller: FrameType | None = sys._getframe(1)
            while caller is not None and caller.f_code.co_filename == __file__:  # RLock.__init__ calling this one
                caller = caller.f_back
            if caller is not None and is_user_file(caller.f_code.co_filename):
                # Made by the program itself (not inside Condition or Queue): traces name it.
                self.label += f" (made at {user_location(caller)})"

    def _fresh(self, sched: Scheduler) -> None:
        # Made before this run (or in an earlier one): it starts this run free.
        self._run = sched
        self._locked = False
        self.holder = None
        self._waiters = []
        self.label = _label(sched, type(self).__name__)

    def _outside(self) -> _RealLock:
        if self._real is None:
            self._real = _real_allocate_lock()
        real: _RealLock = self._real
        return real

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        sched = active()
        if sched is None:
            return self._outside().acquire(blocking, timeout)
        if self._run is not sched:
            self._fresh(sched)
        if timeout != -1:
            seconds_checked(timeout)
        if not blocking and timeout != -1:
            raise ValueError("can't specify a timeout for a non-blocking call")
        if timeout < 0 and timeout != -1:
            raise ValueError("timeout value must be a non-negative number")
        before_lock_operation(sched, sys._getframe(1))
        cur = sched.current
        timed = False
        if self._locked:
            if not blocking or timeout == 0:
                if not _called_from_threading(sys._getframe(1)):
                    sched.polled()  # the program polls the lock: the others run before it tries again
                if sched.noting:
                    sched.note_sync("try", self)  # it saw the lock held: ordered against its acquire
                return False
            deadline = None if timeout == -1 else sched.clock.now + timeout
            timed = deadline is not None
            while self._locked:
                if sched.noting:
                    sched.note_sync("block", self)  # it waits because the lock is held
                self._waiters.append(cur)
                try:
                    woken = sched.block(self, deadline)
                finally:
                    self._waiters.remove(cur)
                if not woken and self._locked:
                    if sched.noting:
                        sched.note_sync("try", self)  # timed out: it saw the lock held
                    return False
        self._locked = True
        self.holder = cur
        if sched.noting:
            if timed:
                sched.note_sync("timed", self)  # the release it waited for might have come after its timeout
            sched.note_sync("acquire", self)
        if sched.observer is not None:
            sched.observer.event(sched, events.Acquired(self.label))
        return True

    def release(self) -> None:
        sched = active()
        if sched is None:
            self._outside().release()
            return
        if self._run is not sched:
            self._fresh(sched)
        if not self._locked:
            raise RuntimeError("release unlocked lock")
        before_lock_operation(sched, sys._getframe(1))
        self._locked = False
        self.holder = None
        if sched.noting:
            sched.note_sync("release", self)
        if sched.observer is not None:
            sched.observer.event(sched, events.Released(self.label))
        for waiter in self._waiters:
            sched.wake(waiter)

    def locked(self) -> bool:
        sched = active()
        if sched is None:
            return self._outside().locked()
        return self._locked if self._run is sched else False

    def _at_fork_reinit(self) -> None:
        self._real = None
        self._run = None
        self._locked = False

    __enter__ = acquire
    acquire_lock = acquire
    release_lock = release
    locked_lock = locked

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        state = "locked" if self.locked() else "unlocked"
        return f"<interleave {self.label} {state}>"


class RLock(Lock):
    """A reentrant lock, like ``threading.RLock``: only its owner may release it."""

    __slots__ = ("_count",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._count = 0
        super().__init__()

    def _fresh(self, sched: Scheduler) -> None:
        super()._fresh(sched)
        self._count = 0

    def _outside(self) -> _RealRLock:
        if self._real is None:
            self._real = _real_rlock()
        real: _RealRLock = self._real
        return real

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        sched = active()
        if sched is None:
            return self._outside().acquire(blocking, timeout)
        if self._run is not sched:
            self._fresh(sched)
        if self._locked and self.holder is sched.current:
            self._count += 1
            return True
        if not super().acquire(blocking, timeout):
            return False
        self._count = 1
        return True

    __enter__ = acquire

    def release(self) -> None:
        sched = active()
        if sched is None:
            self._outside().release()
            return
        if self._run is not sched:
            self._fresh(sched)
        if not self._locked or self.holder is not sched.current:
            raise RuntimeError("cannot release un-acquired lock")
        self._count -= 1
        if self._count == 0:
            super().release()

    def __exit__(self, *exc: object) -> None:
        self.release()

    # The protocol threading.Condition uses to wait on an RLock held several times.
    def _is_owned(self) -> bool:
        sched = active()
        if sched is None:
            return self._outside()._is_owned()
        return self._run is sched and self._locked and self.holder is sched.current

    def _release_save(self) -> Any:
        sched = active()
        if sched is None:
            return self._outside()._release_save()
        if not self._is_owned():
            raise RuntimeError("cannot release un-acquired lock")
        count = self._count
        self._count = 1
        self.release()
        return count

    def _acquire_restore(self, state: Any) -> None:
        sched = active()
        if sched is None:
            self._outside()._acquire_restore(state)
            return
        self.acquire()
        self._count = state

    def _recursion_count(self) -> int:
        sched = active()
        if sched is None:
            return self._outside()._recursion_count()
        return self._count if self._is_owned() else 0


def before_lock_operation(sched: Scheduler, frame: Any) -> None:
    """The switch point a lock operation gets, if any.

    With line steps, the program's own lines are switch points already and so are the
    stdlib's calls made from them: only an operation called from installed library code
    needs one of its own. With shared accesses as the steps, every operation the program or
    a library makes is one; the lock operations inside one stdlib call (``Queue.put``,
    ``Condition.wait``, ``Thread.join``) are that call's one step.
    """
    while frame.f_code.co_filename == __file__:
        frame = frame.f_back
    if frame.f_code.co_filename == _SCHEDULER_FILE:
        return  # the scheduler's own bookkeeping (a finished thread's sentinel): no step
    if not sched.accesses:
        if _called_from_library(frame):
            sched.op_point()
        return
    known, learn = _stdlib_internal.known, _stdlib_internal.learn  # the walk below is on every lock operation
    code = frame.f_code
    internal = known.get(id(code))
    if not (learn(code) if internal is None else internal):
        sched.sync_point(None, frame)
        return
    # The outermost frame of the stdlib call this operation is part of, and its caller. A
    # pool worker's whole stack is the stdlib's, so the walk would go to its bottom every
    # time: a frame two calls out from the last walk's start is kept with that walk's answer,
    # and a walk that meets it stops there (the frame is on the stack, and so are its
    # callers: the answer from there out is the same).
    cur = sched.current
    last = cur.sync_known
    stop = None if last is None else last[0]
    entry, outer = frame, frame.f_back
    mark = None
    walked = 0
    while outer is not None:
        if outer is stop:
            assert last is not None
            entry, outer = last[1], last[2]
            break
        code = outer.f_code
        internal = known.get(id(code))
        if not (learn(code) if internal is None else internal):
            break
        entry, outer = outer, outer.f_back
        walked += 1
        if walked == 2:
            mark = entry
    if mark is not None:
        cur.sync_known = (mark, entry, outer)
    # With no caller outside the stdlib (a thread's own start-up, a pool worker between
    # tasks) the operation is a step all the same: ``Thread.start`` waits for it.
    sched.sync_point(entry, outer)


_SCHEDULER_FILE = sys.modules[Scheduler.__module__].__file__


@CodeFacts
def _stdlib_internal(code: Any) -> bool:
    """True for the code of threading's internals or of interleave itself (asked of a few
    frames at every step that takes a lock)."""
    filename = code.co_filename
    return is_threading_internal(filename) or filename.startswith(_PACKAGE)


def _called_from_library(frame: Any) -> bool:
    """True when a lock operation comes from installed library code (not the program's own
    lines, which are switch points already, nor the stdlib's threading internals): such an
    operation is a switch point of its own."""
    return _library_code(frame.f_code)


@CodeFacts
def _library_code(code: Any) -> bool:
    filename = code.co_filename
    return not (is_user_file(filename) or is_threading_internal(filename) or filename.startswith(_PACKAGE)
                or filename.startswith("<"))


def _called_from_threading(frame: Any) -> bool:
    """True when a lock operation comes from the stdlib's threading internals (Condition
    tries its lock to learn whether it owns it: no poll of the program's)."""
    while frame.f_code.co_filename == __file__:
        frame = frame.f_back
    return is_threading_internal(frame.f_code.co_filename)


def allocate_lock() -> Lock:
    return Lock()


def get_ident() -> int:
    sched = active()
    return sched.current.ident if sched is not None else _real_get_ident()


def start_new_thread(function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any] | None = None) -> int:
    """``_thread.start_new_thread``: a new virtual thread (a real one outside a run)."""
    sched = active()
    if sched is None:
        return _thread.start_new_thread(function, args, kwargs or {})
    thread_obj = getattr(function, "__self__", None)
    name = getattr(thread_obj, "name", None)
    daemon = getattr(thread_obj, "daemon", True)
    vt = sched.spawn(function, args, kwargs, name=name, daemon=bool(daemon))
    return vt.ident


def set_sentinel() -> Lock | _RealLock:
    """``_thread._set_sentinel`` (3.11, 3.12): a lock released when the calling thread ends."""
    sched = active()
    if sched is None:
        sentinel: _RealLock = _thread_of_this_version._set_sentinel()
        return sentinel
    lock = Lock()
    sched.current.sentinel = lock
    return lock


class ThreadHandle:
    """``_thread._ThreadHandle`` (3.13): what ``Thread.join`` and ``is_alive`` consult."""

    def __init__(self) -> None:
        self.ident: int | None = None
        self._done = Lock()  # held until the thread ends: the scheduler releases it then
        self._done.acquire()

    def is_done(self) -> bool:
        return not self._done.locked()

    def _set_done(self) -> None:
        if self._done.locked():
            self._done.release()

    def join(self, timeout: float | None = None) -> None:
        if self.is_done():
            sched = active()
            if sched is not None and sched.noting:
                sched.note_sync("acquire", self._done)  # joined: ordered after the thread's end
            return
        if timeout is None or timeout < 0:
            timeout = -1
        if self._done.acquire(True, timeout):
            self._done.release()


def start_joinable_thread(function: Callable[..., Any], handle: Any = None, daemon: bool = True) -> Any:
    """``_thread.start_joinable_thread`` (3.13)."""
    sched = active()
    if sched is None:
        return _thread_of_this_version.start_joinable_thread(function, handle=handle, daemon=daemon)
    thread_obj: Any = getattr(function, "__self__", None)
    if handle is not None and not isinstance(handle, ThreadHandle):
        if getattr(thread_obj, "_handle", None) is not handle:
            sched.fail_uncontrolled("_thread.start_joinable_thread with a handle made before the run")
        # A Thread made before the run and started in it (as 3.11 and 3.12 allow): its
        # unused real handle is swapped for a controlled one, which join and is_alive read.
        handle = thread_obj._handle = ThreadHandle()
    if handle is None:
        handle = ThreadHandle()
    vt = sched.spawn(function, (), None, name=getattr(thread_obj, "name", None), daemon=bool(daemon))
    vt.sentinel = handle._done
    handle.ident = vt.ident
    return handle


def excepthook(args: Any) -> None:
    """``threading.excepthook`` during a run: an uncaught exception in a thread is a failure."""
    sched = active()
    if sched is None or args.exc_type is SystemExit:
        return
    sched.fail_with_exception(args.exc_value)


# ----------------------------------------------------------------------------- time


#: The longest duration the interpreter converts (its clock counts nanoseconds in 64 bits).
_MAX_SECONDS = (2**63 - 1) / 1e9


def seconds_checked(value: Any) -> float:
    """A duration converted as the interpreter converts it, with the same errors."""
    if not isinstance(value, (int, float)):
        raise TypeError(f"'{type(value).__name__}' object cannot be interpreted as an integer")
    if value != value:
        raise ValueError("Invalid value NaN (not a number)")
    if abs(value) > _MAX_SECONDS:
        raise OverflowError("timestamp out of range for platform time_t")
    return value


def sleep(seconds: float) -> None:
    sched = active()
    if sched is None:
        REAL_TIME["sleep"](seconds)
        return
    if seconds_checked(seconds) < 0:
        raise ValueError("sleep length must be non-negative")
    sched.sleep(seconds)


_real_os_exit = os._exit


def os_exit(status: int) -> None:
    """``os._exit`` during a run: the run ends, as the process would (see :meth:`Scheduler.exit_process`)."""
    sched = active()
    if sched is None:
        _real_os_exit(status)
    sched.exit_process(operator.index(status), sys._getframe(1))


def _virtual(name: str, read: Callable[[Scheduler], float]) -> Callable[[], Any]:
    """``time.<name>`` reading the virtual clock during a run, the real one outside."""
    real = REAL_TIME[name]
    nanoseconds = name.endswith("_ns")

    def clock() -> Any:
        sched = active()
        if sched is None:
            return real()
        return int(read(sched) * 1e9) if nanoseconds else read(sched)

    clock.__name__ = clock.__qualname__ = name
    return clock


def _monotonic(sched: Scheduler) -> float:
    if sched.noting:
        sched.note_sync("clock", sched.clock)  # a read of the time, ordered against the clock's jumps
    return sched.clock.now


def _wall(sched: Scheduler) -> float:
    if sched.noting:
        sched.note_sync("clock", sched.clock)
    return sched.clock.wall()


monotonic = _virtual("monotonic", _monotonic)
monotonic_ns = _virtual("monotonic_ns", _monotonic)
perf_counter = _virtual("perf_counter", _monotonic)
perf_counter_ns = _virtual("perf_counter_ns", _monotonic)
time = _virtual("time", _wall)
time_ns = _virtual("time_ns", _wall)


CONTROLLED_TIME = {
    "sleep": sleep,
    "monotonic": monotonic,
    "monotonic_ns": monotonic_ns,
    "time": time,
    "time_ns": time_ns,
    "perf_counter": perf_counter,
    "perf_counter_ns": perf_counter_ns,
}

PY313 = sys.version_info >= (3, 13)
access.register_locks(Lock, RLock)  # their methods are synchronization steps, not accesses

__all__ = [
    "Lock", "RLock", "allocate_lock", "get_ident", "start_new_thread", "set_sentinel",
    "ThreadHandle", "start_joinable_thread", "excepthook", "CONTROLLED_TIME", "REAL_TIME",
]
