"""Keeps a run from hanging the process: a real OS thread that watches the run's OS thread.

Every thread of a run is a greenlet of one OS thread, so a call that blocks in C (a real
lock, ``os.read`` on a pipe nobody writes, ``input()``, a C extension) blocks them all,
and the scheduler never gets control back. The watchdog samples that OS thread's running
frame; when one bytecode instruction (a call) has not finished for a while it sends the
thread a private signal. Blocking calls give way to signals (a lock's acquire, reads,
sleeps), and the handler ends the run as one the program did not let interleave control,
naming the call: the exploration then ends with what it found (exit 2 if nothing).

When it acts:

* a call acquiring a lock (``with x:``, ``x.acquire()``) that has not returned after
  :data:`LOCK_STALL`: every thread of the run is a greenlet of this OS thread, so it waits
  for a real lock that nobody can release (made before the run where it cannot be swapped,
  or held by a thread outside the run); the lock is named when it is one the patcher found;
* past the exploration's deadline: a run that has not come back to the scheduler (taken a
  step) for :data:`STUCK`, in one call or in code without switch points;
* with no deadline, a call that has not returned for :data:`STALL`.

A call that holds the interpreter lock (a regex that backtracks, a C extension's loop) keeps
the watching thread from running at all. For those, a timer of the process's CPU time
(``SIGVTALRM``) ticks while a run is armed; the tick's handler runs in the run's thread as
soon as the call checks for signals (the regex engine does), and stops the run as the
watching thread would have.

The signal handlers stay installed once set (they do nothing outside a watched run), so a
signal sent just as a run ends can never meet the default action, which would kill the process.
"""

from __future__ import annotations

import _thread
import dis
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import greenlet

from .failures import _short, innermost_user_frame, source_line
from .files import is_user_file
from .scheduler import Scheduler, active

LOCK_STALL = 0.25
STUCK = 1.0
#: Seconds of CPU time between ticks of the timer for calls that hold the interpreter.
CPU_TICK = 0.5
STALL = 30.0
POLL = 0.1

_SIGNAL = getattr(signal, "SIGRTMIN", 0) + 6 if hasattr(signal, "SIGRTMIN") else signal.SIGUSR2
_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
_real_sleep = time.sleep
_real_monotonic = time.monotonic
_LOCK_METHODS = frozenset({"acquire", "__enter__", "acquire_lock", "_acquire_restore"})


@dataclass
class _Watch:
    sched: Scheduler
    deadline: float | None
    real_locks: Callable[[], list[tuple[Any, str]]]


@dataclass
class _Order:
    """What the handler is to do: stop this run if it is still in this frame at this instruction."""

    sched: Scheduler
    frame: Any
    lasti: int
    message: str


class Watchdog:
    """One per process (:func:`shared`); :meth:`arm` for the length of each run.

    Its thread runs from the first run until :meth:`close` (at the end of an exploration),
    never ending during a run: a thread that ended in the middle of one would look like a
    thread started behind threading's back.
    """

    def __init__(self) -> None:
        self._lock = _thread.allocate_lock()
        self._watch: _Watch | None = None
        self._order: _Order | None = None
        self._thread: threading.Thread | None = None
        self._stop = False
        self._usable = False
        self._ticking = False
        #: The run's steps at the last tick, and when they last changed.
        self._tick_steps = -1
        self._tick_since = 0.0

    def ready(self) -> None:
        """Outside any run: make sure the watching thread runs (it is a real thread)."""
        if threading.current_thread() is not threading.main_thread() or not _install_handler():
            self._usable = False
            return
        self._usable = True
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop = False
            self._thread = threading.Thread(target=self._loop, name="interleave-watchdog", daemon=True)
            self._thread.start()

    def arm(self, sched: Scheduler, deadline: float | None, real_locks: Callable[[], list[tuple[Any, str]]]) -> None:
        if self._usable:
            _watchdogs[id(sched)] = self
            self._watch = _Watch(sched, deadline, real_locks)
            self._tick_steps = -1
            self._ticking = _install_tick_handler()
            if self._ticking:
                signal.setitimer(signal.ITIMER_VIRTUAL, CPU_TICK, CPU_TICK)

    def disarm(self) -> None:
        if self._ticking:
            signal.setitimer(signal.ITIMER_VIRTUAL, 0)
            self._ticking = False
        with self._lock:  # never while the watching thread is about to signal this run
            watch, self._watch, self._order = self._watch, None, None
        if watch is not None:
            _watchdogs.pop(id(watch.sched), None)

    def close(self) -> None:
        """End the watching thread now (outside any run)."""
        with self._lock:
            self._stop = True
            thread = self._thread
            self._thread = None
        if thread is not None:
            thread.join()

    # ------------------------------------------------------------------ the watching thread

    def _loop(self) -> None:
        seen: tuple[Any, int, int] | None = None
        since = steps_since = signalled = 0.0
        while True:
            _real_sleep(POLL)
            now = _real_monotonic()
            with self._lock:
                watch = self._watch
                if self._stop:
                    return
            if watch is None:
                seen = None
                continue
            frame = sys._current_frames().get(watch.sched.os_ident)
            if frame is None:
                continue
            sample = (frame, frame.f_lasti, watch.sched.steps)
            if seen is None or sample[2] != seen[2]:
                steps_since = now
            if seen is None or sample[0] is not seen[0] or sample[1:] != seen[1:]:
                seen, since = sample, now
            message = self._verdict(watch, frame, now - since, now - steps_since, now)
            del frame
            if message is None or now - signalled < STUCK:
                continue
            with self._lock:
                if self._watch is not watch:
                    continue
                stuck_frame = seen[0] if message[1] else None
                self._order = _Order(watch.sched, stuck_frame, seen[1], message[0])
                signalled = now
                signal.pthread_kill(watch.sched.os_ident, _SIGNAL)

    def _verdict(self, watch: _Watch, frame: Any, stuck: float, away: float, now: float) -> tuple[str, bool] | None:
        """(the run's end, whether it is tied to this very call), or None: let it go on.

        ``stuck``: seconds in this one instruction; ``away``: seconds since the run last
        came back to the scheduler (a step).
        """
        if stuck >= LOCK_STALL and _acquiring(frame):
            return self._blocked_on_lock(watch, frame), True
        if stuck >= STUCK and _calling(frame):
            # A call that acquires no lock by name (a partial of lock.acquire, a C object's
            # method) while a real lock the run may meet is held: it waits for that lock.
            named = self._held_real_lock(watch, frame)
            if named is not None:
                return named, True
        deadline = watch.deadline
        if deadline is not None:
            if now >= deadline and away >= STUCK:
                if stuck >= STUCK:
                    return f"a call that did not return by the time limit: {_call_site(frame)}", True
                return (f"code that did not come back to the scheduler by the time limit (it was at "
                        f"{_call_site(frame)})"), False
        elif stuck >= STALL:
            return f"a call that did not return in {STALL:g}s: {_call_site(frame)}", True
        return None

    @staticmethod
    def _held_real_lock(watch: _Watch, frame: Any) -> str | None:
        """The held real lock the run may meet, named, with where the run blocked on it; or None."""
        from .patching import _held

        try:
            for lock, description in watch.real_locks():
                if _held(lock):
                    return f"{description} (a thread of the run blocked on it at {_call_site(frame)})"
        except Exception:  # noqa: BLE001 - naming the lock is a courtesy; the stop is what matters
            pass
        return None

    @staticmethod
    def _blocked_on_lock(watch: _Watch, frame: Any) -> str:
        named = Watchdog._held_real_lock(watch, frame)
        if named is not None:
            return named
        return f"a real lock interleave does not control, made outside the run and not found among the program's " \
               f"objects (a thread of the run blocked on it at {_call_site(frame)})"

    # ------------------------------------------------------------------ in the run's thread

    def on_tick(self, sched: Scheduler, frame: Any) -> None:
        """A tick of CPU time in the run's thread: a run that has taken no step since long
        enough is stopped here (the watching thread may be kept from running)."""
        watch = self._watch
        if watch is None or watch.sched is not sched:
            return
        now = _real_monotonic()
        if sched.steps != self._tick_steps:
            self._tick_steps, self._tick_since = sched.steps, now
            return
        away = now - self._tick_since
        past_limit = watch.deadline is not None and now >= watch.deadline and away >= STUCK
        if past_limit or away >= STALL:
            when = "by the time limit" if past_limit else f"in {STALL:g}s"
            self._order = _Order(sched, None, 0, f"a call that did not return {when}, holding the interpreter "
                                                 f"(the watchdog could not run): {_call_site(frame)}")
            self.on_signal(frame)

    def on_signal(self, frame: Any) -> None:
        order = self._order
        sched = active()
        if order is None or sched is None or sched is not order.sched or greenlet.getcurrent() is sched.hub:
            return
        if sched.tearing_down:
            raise greenlet.GreenletExit  # stuck again in a finally block while the run unwinds
        if order.frame is not None and (frame is not order.frame or frame.f_lasti != order.lasti):
            return  # the call returned after all; the watching thread looks again
        if order.frame is None and frame.f_code.co_filename.startswith(_PACKAGE):
            return  # never stop inside interleave's own code: the next signal lands elsewhere
        self._order = None
        if sched.uncontrolled is None:
            sched.uncontrolled = order.message
        sched.abort()


#: id(scheduler) -> the watchdog watching it: the signal handler finds its run's watchdog here.
_watchdogs: dict[int, Watchdog] = {}
_installed = False
_shared: Watchdog | None = None


def shared() -> Watchdog:
    """The process's watchdog."""
    global _shared
    if _shared is None:
        _shared = Watchdog()
    return _shared


def _handler(signum: int, frame: Any) -> None:
    sched = active()
    watchdog = _watchdogs.get(id(sched)) if sched is not None else None
    if watchdog is not None and frame is not None:
        watchdog.on_signal(frame)


def _tick(signum: int, frame: Any) -> None:
    sched = active()
    watchdog = _watchdogs.get(id(sched)) if sched is not None else None
    if sched is not None and watchdog is not None and frame is not None:
        watchdog.on_tick(sched, frame)


_tick_installed = False


def _install_tick_handler() -> bool:
    """The CPU timer's handler, unless the program or its harness has one of its own."""
    global _tick_installed
    if not _tick_installed:
        try:
            if signal.getsignal(signal.SIGVTALRM) not in (signal.SIG_DFL, None):
                return False
            signal.signal(signal.SIGVTALRM, _tick)
        except (ValueError, OSError, AttributeError):  # no such signal here
            return False
        _tick_installed = True
    return signal.getsignal(signal.SIGVTALRM) is _tick


def _install_handler() -> bool:
    global _installed
    if not _installed:
        try:
            previous = signal.getsignal(_SIGNAL)
            if previous not in (signal.SIG_DFL, None):
                return False  # the program's own: leave it be
            signal.signal(_SIGNAL, _handler)
        except (ValueError, OSError):
            return False
        _installed = True
    return signal.getsignal(_SIGNAL) is _handler


def _reset_after_fork() -> None:
    """In a forked child the watching thread is gone, and its lock may have been held."""
    _watchdogs.clear()
    if _shared is not None:
        _shared._lock = _thread.allocate_lock()
        _shared._watch = _shared._order = _shared._thread = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


# ------------------------------------------------------------------ reading the stuck frame


@lru_cache(maxsize=4096)
def _instructions(code: Any) -> dict[int, tuple[int, list[dis.Instruction]]]:
    instructions = list(dis.get_instructions(code))
    return {ins.offset: (i, instructions) for i, ins in enumerate(instructions)}


def _acquiring(frame: Any) -> bool:
    """The frame is inside ``with x:`` or a call of ``x.acquire()`` (or ``__enter__``)."""
    try:
        at = _instructions(frame.f_code).get(frame.f_lasti)
    except Exception:  # noqa: BLE001
        return False
    if at is None:
        return False
    i, instructions = at
    name = instructions[i].opname
    if name in ("BEFORE_WITH", "SETUP_WITH"):
        return True
    if not name.startswith("CALL"):
        return False
    for ins in reversed(instructions[max(0, i - 12):i]):
        if ins.opname.startswith("CALL") and not ins.opname.startswith("CALL_INTRINSIC"):
            return False
        if ins.opname in ("LOAD_METHOD", "LOAD_ATTR") and ins.argval in _LOCK_METHODS:
            return True
    return False


def _calling(frame: Any) -> bool:
    """The frame is in a call (a CALL instruction)."""
    try:
        at = _instructions(frame.f_code).get(frame.f_lasti)
    except Exception:  # noqa: BLE001
        return False
    return at is not None and at[1][at[0]].opname.startswith("CALL") and not at[1][at[0]].opname.startswith(
        "CALL_INTRINSIC")


def _call_site(frame: Any) -> str:
    """``file:line `source``` of the call, and the user's line it came from if it is not one."""
    code = frame.f_code
    here = f"{_short(code.co_filename)}:{frame.f_lineno} `{source_line(code.co_filename, frame.f_lineno)}`"
    if is_user_file(code.co_filename):
        return here
    user = innermost_user_frame(frame)
    if user is None:
        return here
    return f"{here}, called from {_short(user.f_code.co_filename)}:{user.f_lineno} " \
           f"`{source_line(user.f_code.co_filename, user.f_lineno)}`"
