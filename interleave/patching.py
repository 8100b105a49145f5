"""Installs the controlled primitives for the length of one run, and takes them out again.

What is replaced, and why at that level:

* ``threading``'s private bindings of ``_thread`` (thread start, locks, identity, the
  tstate sentinel or 3.13's thread handle) and of the clock: every stdlib primitive is
  built on them, so Condition, Event, Semaphore, Barrier, Timer, the queues and
  ThreadPoolExecutor keep their exact stdlib code and semantics.
* ``time``'s clock functions, ``queue``'s import-time binding of ``monotonic``, and any
  name the user's modules bound before the run (``from time import sleep``).
* Real locks made before the run, wherever the program keeps them (see
  :mod:`interleave.reallocks`), are swapped for controlled twins, the same twin every run,
  and so are names bound to real lock factories and clock functions in the user's modules
  and installed packages (``from threading import RLock``).
* Draws of the shared ``random`` generator become scheduler choices, from the seeded
  state every run (:mod:`interleave.draws`).
* Things that cannot be controlled (real sockets, processes, ``select``) are replaced by
  tripwires that stop the run with a message naming them.

Outside a run nothing here is installed: the stdlib behaves exactly as usual.
"""

from __future__ import annotations

import _thread
import ctypes
import gc
import os
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from itertools import chain, count
from typing import Any

from . import draws, filejournal, filelocks
from . import primitives as P
from .reallocks import REAL_LOCAL, REAL_LOCK_TYPES, Finder, Found, RunLocal, Slot, describe, module_roots
from .scheduler import Scheduler, active

_threading_local = __import__("_threading_local")  # bind its helpers now, outside any run
import queue  # noqa: E402  (imported after _threading_local on purpose: both are patched)

_MISSING = object()
PY313 = sys.version_info >= (3, 13)
#: The pure-Python ``SimpleQueue`` (made of a lock the run patches), private: not in the stubs.
_PY_SIMPLE_QUEUE: type = queue._PySimpleQueue  # type: ignore[attr-defined]  # (see above)
#: ``threading`` with its private registries, which its stubs do not declare.
_threading: Any = threading

#: ``(module, attribute)`` pairs replaced in every run, with their controlled values.
_STATIC: list[tuple[Any, str, Any]] = [
    *[(time, name, fn) for name, fn in P.CONTROLLED_TIME.items()],
    (threading, "_time", P.monotonic),
    (threading, "_allocate_lock", P.allocate_lock),
    (threading, "Lock", P.Lock),
    (threading, "RLock", P.RLock),
    (threading, "get_ident", P.get_ident),
    (threading, "get_native_id", P.get_ident),
    (threading, "excepthook", P.excepthook),
    (threading, "local", _threading_local.local),
    (threading, "_trace_hook", None),
    (threading, "_profile_hook", None),
    (_thread, "start_new_thread", P.start_new_thread),
    (_thread, "start_new", P.start_new_thread),
    (_thread, "allocate_lock", P.allocate_lock),
    (_thread, "allocate", P.allocate_lock),
    (_thread, "RLock", P.RLock),
    (_thread, "get_ident", P.get_ident),
    (queue, "time", P.monotonic),
    (queue, "SimpleQueue", _PY_SIMPLE_QUEUE),
    (os, "_exit", P.os_exit),
]
if PY313:
    _STATIC += [
        (threading, "_start_joinable_thread", P.start_joinable_thread),
        (threading, "_ThreadHandle", P.ThreadHandle),
        (_thread, "start_joinable_thread", P.start_joinable_thread),
    ]
else:
    _STATIC += [
        (threading, "_start_new_thread", P.start_new_thread),
        (threading, "_set_sentinel", P.set_sentinel),
    ]

#: Stdlib objects a module may have bound by name before the run (``from threading import
#: Lock``), and what such a name points to during a run.
_REBOUND = [
    (threading.Lock, P.Lock),
    (threading.RLock, P.RLock),
    (_thread.RLock, P.RLock),
    (_thread.allocate_lock, P.allocate_lock),
    (threading.get_ident, P.get_ident),
    (threading.local, _threading_local.local),
    (queue.SimpleQueue, _PY_SIMPLE_QUEUE),
    *filelocks.REBOUND,
    *filejournal.REBOUND,
]

_BUILTIN_METHOD = type(_thread.allocate_lock().acquire)
_REAL_RLOCK = _thread.RLock  # (patched in runs)
_ATOMIC = (str, bytes, int, float, bool, type(None))


def _held(lock: Any) -> bool:
    """Held now, by this OS thread or another (``_thread.RLock`` has no ``locked()``)."""
    if type(lock) is not _REAL_RLOCK:
        return bool(lock.locked())
    if lock._is_owned():  # type: ignore[attr-defined]  # the C RLock's own check, not in its stubs
        return True
    if not lock.acquire(False):
        return True
    lock.release()
    return False


def _tripwire(what: str, why: str = "real I/O or a real process",
              real: Callable[..., Any] | None = None) -> Callable[..., Any]:
    def tripwire(*args: Any, **kwargs: Any) -> Any:
        sched = active()
        if sched is None:  # another OS thread of the process (a Dask client's), not the run's
            if real is None:
                raise RuntimeError(f"interleave tripwire for {what} called outside a run")
            return real(*args, **kwargs)
        sched.fail_uncontrolled(f"{what} ({why}, which interleave cannot schedule)")

    return tripwire


_real_os_read = os.read


def _os_read(fd: int, n: int) -> bytes:
    """``os.read`` during a run: files read as usual; a pipe, a terminal or a socket could block for real."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        mode = 0
    if (fd == 0 or stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISSOCK(mode)) and active() is not None:
        _tripwire("os.read", "a read from a pipe, a terminal or stdin")()
    return _real_os_read(fd, n)


#: C functions that start OS threads: looked up through ctypes during a run, they stop it.
_THREAD_STARTERS = frozenset({"pthread_create", "thrd_create", "clone", "clone3", "PyThread_start_new_thread",
                              "PyThread_start_joinable_thread", "CreateThread", "_beginthread", "_beginthreadex"})
_real_cdll_getitem = ctypes.CDLL.__getitem__


def _cdll_getitem(self: Any, name: Any) -> Any:
    if name in _THREAD_STARTERS and active() is not None:
        _tripwire(f"ctypes {name}", "a real OS thread")()
    return _real_cdll_getitem(self, name)


_STATIC += [(os, "read", _os_read), (ctypes.CDLL, "__getitem__", _cdll_getitem), *filelocks.STATIC,
            *filejournal.STATIC]


_UNCONTROLLED = {
    "socket": ["socket", "create_connection", "socketpair", "create_server"],
    "subprocess": ["Popen", "run", "call", "check_call", "check_output"],
    "select": ["select", "poll", "epoll"],
    "selectors": ["DefaultSelector"],
    "os": ["fork", "system", "popen", "wait", "waitpid", "kill", "killpg"],
    "multiprocessing": ["Process", "Pool"],
    "signal": ["alarm", "setitimer", "pause", "raise_signal", "pthread_kill", "sigwait", "sigwaitinfo",
               "sigtimedwait"],
    "builtins": ["input"],
}
_WHY = {"signal": ("a real signal or timer",), "builtins": ("a read from stdin",)}


def _serial_hash(serials: Iterator[int]) -> Callable[[Any], int]:
    """A ``__hash__`` that numbers objects in the order the run first hashes them."""

    def __hash__(self: Any) -> int:
        stamp: tuple[Iterator[int], int] | None = self.__dict__.get("_interleave_serial")
        if stamp is None or stamp[0] is not serials:  # unhashed, or numbered by an earlier run
            stamp = self.__dict__["_interleave_serial"] = (serials, next(serials))
        return stamp[1]

    return __hash__


def _acquire_in_serial_order(self: Any, futures: Any) -> None:
    self.futures = sorted(futures, key=hash)


#: ``(module name, name) -> (real, tripwire)``, made the first time a run replaces it.
_TRIPWIRES: dict[tuple[str, str], tuple[Any, Callable[..., Any]]] = {}


def _tripwire_for(module_name: str, name: str, real: Any) -> Callable[..., Any]:
    made = _TRIPWIRES.get((module_name, name))
    if made is None or made[0] is not real:
        what = f"{name}()" if module_name == "builtins" else f"{module_name}.{name}"
        why = _WHY.get(module_name, ("real I/O or a real process",))
        made = _TRIPWIRES[module_name, name] = (real, _tripwire(what, *why, real=real))
    return made[1]


class _PerRunThread:
    """Attributes per thread of a run for the instances of a subclass of the C
    ``threading.local`` defined before the run (a library's context class).

    Its instances keep their attributes per OS thread, which all of a run's threads share.
    During a run the class's attribute access goes to a namespace per instance and thread
    instead, as threads of their own would have: the run's main thread starts with a copy of
    what the OS thread held when runs began (what import set), every other thread afresh,
    with the class's ``__init__`` run again with the arguments the instance was made with,
    as ``threading.local`` does. Outside a run the class is as it was.
    """

    def __init__(self, klass: type) -> None:
        self.klass = klass
        self._real_get: Callable[[Any, str], Any] = _class_attribute(klass, "__getattribute__")
        self._real_set: Callable[[Any, str, Any], None] = _class_attribute(klass, "__setattr__")
        self._real_del: Callable[[Any, str], None] = _class_attribute(klass, "__delattr__")
        self._at_start: dict[int, tuple[Any, dict[str, Any]]] = {}  # id -> (instance, the OS thread's attributes)
        self._run: Scheduler | None = None
        self._namespaces: dict[tuple[int, int], tuple[Any, dict[str, Any]]] = {}  # (id, thread) -> (instance, ns)

    def install(self) -> list[tuple[str, Any]]:
        """Puts the per-thread access on the class; returns what it replaced."""
        # Functions, not bound methods: the class binds them to its instance as methods.
        def __getattribute__(instance: Any, name: str) -> Any:
            return self._get(instance, name)

        def __setattr__(instance: Any, name: str, value: Any) -> None:
            self._set(instance, name, value)

        def __delattr__(instance: Any, name: str) -> None:
            self._del(instance, name)

        replaced = []
        for method in (__getattribute__, __setattr__, __delattr__):
            replaced.append((method.__name__, self.klass.__dict__.get(method.__name__, _MISSING)))
            type.__setattr__(self.klass, method.__name__, method)
        return replaced

    def _namespace(self, sched: Scheduler, instance: Any) -> dict[str, Any]:
        if self._run is not sched:
            self._run, self._namespaces = sched, {}
        thread = sched.current
        key = (id(instance), thread.index)
        entry = self._namespaces.get(key)
        if entry is not None and entry[0] is instance:
            return entry[1]
        namespace: dict[str, Any] = {}
        self._namespaces[key] = (instance, namespace)
        if _inside_own_init(instance):
            pass  # made by this thread, now: its ``__init__`` fills it
        elif thread.index == 0:
            start = self._at_start.get(id(instance))
            if start is None or start[0] is not instance:
                start = self._at_start[id(instance)] = (instance, dict(self._real_get(instance, "__dict__")))
            namespace.update(start[1])
        else:
            args, kwargs = _made_with(instance)
            if type(instance).__init__ is not REAL_LOCAL.__init__:
                type(instance).__init__(instance, *args, **kwargs)
        return namespace

    def _get(self, instance: Any, name: str) -> Any:
        sched = active()
        if sched is None or name == "__class__":
            return self._real_get(instance, name)
        namespace = self._namespace(sched, instance)
        if name == "__dict__":
            return namespace
        attribute = _class_attribute(type(instance), name)
        getter = getattr(type(attribute), "__get__", None)
        if getter is not None and hasattr(type(attribute), "__set__"):  # a data descriptor comes first
            return getter(attribute, instance, type(instance))
        try:
            return namespace[name]
        except KeyError:
            pass
        if attribute is not _MISSING:
            return attribute if getter is None else getter(attribute, instance, type(instance))
        raise AttributeError(f"{type(instance).__name__!r} object has no attribute {name!r}")

    def _set(self, instance: Any, name: str, value: Any) -> None:
        sched = active()
        if sched is None:
            self._real_set(instance, name, value)
            return
        if name == "__dict__":
            raise AttributeError(f"{type(instance).__name__!r} object attribute '__dict__' is read-only")
        attribute = _class_attribute(type(instance), name)
        setter = getattr(type(attribute), "__set__", None)
        if setter is not None:
            setter(attribute, instance, value)
            return
        self._namespace(sched, instance)[name] = value

    def _del(self, instance: Any, name: str) -> None:
        sched = active()
        if sched is None:
            self._real_del(instance, name)
            return
        attribute = _class_attribute(type(instance), name)
        deleter = getattr(type(attribute), "__delete__", None)
        if deleter is not None:
            deleter(attribute, instance)
            return
        try:
            del self._namespace(sched, instance)[name]
        except KeyError:
            raise AttributeError(name) from None


def _class_attribute(klass: type, name: str) -> Any:
    """What ``name`` is on the class (its own or inherited), as attribute lookup finds it."""
    for base in klass.__mro__:
        if name in base.__dict__:
            return base.__dict__[name]
    return _MISSING


def _inside_own_init(instance: Any) -> bool:
    """The instance is being made now, by this thread (its first ``__init__`` is the one running)."""
    frame: Any = sys._getframe(3)
    for _ in range(8):
        if frame is None:
            return False
        if frame.f_code.co_name == "__init__" and frame.f_locals.get("self") is instance:
            return True
        frame = frame.f_back
    return False


def _made_with(instance: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The arguments a C ``threading.local`` was made with: it keeps them to run ``__init__``
    again in each new thread, and shows them only to the garbage collector (its type, the
    arguments, the keyword arguments when there were any, then its per-thread bookkeeping;
    an instance dict of the subclass may come first)."""
    referents = gc.get_referents(instance)
    at = next((i for i, referent in enumerate(referents) if referent is type(instance)), len(referents))
    args, kwargs = (referents[at + 1:at + 3] + [(), {}])[:2]
    if type(args) is not tuple:
        args = ()
    if type(kwargs) is not dict or not all(type(key) is str for key in kwargs):
        kwargs = {}  # the bookkeeping: no keyword arguments
    return args, kwargs


class Patcher:
    """Applies and undoes the run-time replacements; one instance serves many runs."""

    def __init__(self, roots: Iterable[tuple[Any, str]] = ()) -> None:
        for module_name in _UNCONTROLLED:
            if module_name != "multiprocessing":  # heavy; tripped only if the program imported it
                __import__(module_name)
        self._saved: list[tuple[Any, str, Any]] = []
        self._adopted: dict[int, tuple[Any, Any]] = {}  # id(real lock) -> (real, twin)
        self._locals: dict[int, tuple[Any, RunLocal]] = {}  # id(real threading.local) -> (real, stand-in)
        self._per_thread: dict[type, _PerRunThread] = {}
        self._scanned_modules = -1
        self._roots = list(roots)
        self._replacements: dict[int, Any] = {}
        self._found = Found()
        self._swaps: list[tuple[Slot, Any, Any]] = []
        #: Real locks found held when the run began (they stay real).
        self.held_outside: list[Any] = []
        self._random_state: Any = None
        self._shutdown_lock = P.Lock()
        self._gc_was_enabled = True

    # ------------------------------------------------------------- objects made before the run

    def _scan(self) -> None:
        """Find every slot of the program's objects holding a real lock, clock or lock factory."""
        if len(sys.modules) == self._scanned_modules:
            return
        self._scanned_modules = len(sys.modules)
        replacements = {id(P.REAL_TIME[name]): fn for name, fn in P.CONTROLLED_TIME.items()}
        replacements.update({id(real): controlled for real, controlled in _REBOUND + draws.REBOUND})
        self._replacements = replacements
        self._found = Finder(replacements).walk(chain(module_roots(), self._roots))

    def _replacement(self, value: Any, memo: dict[int, Any]) -> Any:
        """What a slot holding ``value`` holds during the run; None: it stays as it is."""
        key = id(value)
        if key in memo:
            return memo[key]
        kind = type(value)
        new: Any = None
        if kind in REAL_LOCK_TYPES:
            new = self._twin(value)
        elif kind is REAL_LOCAL:
            new = self._local_twin(value)
        elif kind is _BUILTIN_METHOD and type(getattr(value, "__self__", None)) in REAL_LOCK_TYPES:
            twin = self._twin(value.__self__)
            new = None if twin is None else getattr(twin, value.__name__, None)
        elif isinstance(value, tuple):
            items = [self._replacement(item, memo) if type(item) not in _ATOMIC else None for item in value]
            if any(item is not None for item in items):
                rebuilt = [old if item is None else item for old, item in zip(value, items)]
                new = tuple(rebuilt) if kind is tuple else kind._make(rebuilt)
        else:
            new = self._replacements.get(key)
        memo[key] = new
        return new

    def _twin(self, real: Any) -> Any:
        """The controlled twin of a real lock (the same one every run); None while it is held."""
        if _held(real):
            if real not in self.held_outside:
                self.held_outside.append(real)
            return None
        entry = self._adopted.get(id(real))
        if entry is None:
            twin = REAL_LOCK_TYPES[type(real)]()
            twin._real = real  # outside a run the twin is the real lock itself
            entry = self._adopted[id(real)] = (real, twin)
        return entry[1]

    def _local_twin(self, real: Any) -> RunLocal:
        """The stand-in for a real ``threading.local`` (the same one every run, started afresh)."""
        entry = self._locals.get(id(real))
        if entry is None or entry[0] is not real:
            entry = self._locals[id(real)] = (real, RunLocal(real))
        RunLocal.reset(entry[1])
        return entry[1]

    def real_locks(self) -> list[tuple[Any, str]]:
        """Real locks a run may meet, each with how the program reaches it and why it stays real."""
        found = self._found
        out = [(lock, f"{describe(lock, path)}, which interleave cannot swap (it is not in a slot it can write)")
               for lock, path in found.unswappable.values()]
        for lock in self.held_outside:
            path = found.names.get(id(lock), (lock, "made before the run"))[1]
            out.append((lock, f"{describe(lock, path)}, held outside the run by a thread interleave does not control"))
        return out

    # ------------------------------------------------------------- apply/undo

    def apply(self, keep_input: bool = False) -> None:
        """The run's replacements; ``keep_input``: reads of stdin stay real (someone answers them)."""
        saved = self._saved
        for module, name, value in _STATIC:
            if keep_input and value is _os_read:
                continue
            saved.append((module, name, getattr(module, name, _MISSING)))
            setattr(module, name, value)
        saved.append((threading, "_counter", _threading._counter))
        _threading._counter = count(1).__next__
        # Sets of threads (ThreadPoolExecutor joins its workers from one) and of futures
        # iterate in hash order; identity hashes follow memory addresses. Numbering objects
        # in the order each run first hashes them makes that order repeat.
        serial_hash = _serial_hash(count())
        saved.append((threading.Thread, "__hash__", threading.Thread.__dict__.get("__hash__", _MISSING)))
        threading.Thread.__hash__ = serial_hash  # type: ignore[method-assign,assignment]  # undo() puts it back
        futures_thread: Any = sys.modules.get("concurrent.futures.thread")
        if futures_thread is not None:
            saved.append((futures_thread, "_global_shutdown_lock", futures_thread._global_shutdown_lock))
            saved.append((futures_thread, "_shutdown", futures_thread._shutdown))
            futures_thread._global_shutdown_lock = self._shutdown_lock
            executor = futures_thread.ThreadPoolExecutor
            saved.append((executor, "_counter", executor.__dict__["_counter"]))
            executor._counter = count().__next__
        futures_base = sys.modules.get("concurrent.futures._base")
        if futures_base is not None:
            saved.append((futures_base.Future, "__hash__", futures_base.Future.__dict__.get("__hash__", _MISSING)))
            futures_base.Future.__hash__ = serial_hash
            # wait() and as_completed() also lock futures in id() order: use the same numbering.
            acquire = futures_base._AcquireFutures
            saved.append((acquire, "__init__", acquire.__init__))
            acquire.__init__ = _acquire_in_serial_order
        for module_name, names in _UNCONTROLLED.items():
            module = sys.modules.get(module_name)
            if module is None or (keep_input and module_name == "builtins"):
                continue
            for name in names:
                real = getattr(module, name, _MISSING)
                if real is _MISSING:
                    continue
                saved.append((module, name, real))
                setattr(module, name, _tripwire_for(module_name, name, real))
        self._scan()
        self.held_outside = []
        memo: dict[int, Any] = {}
        swaps = self._swaps
        for slot, value in self._found.slots:
            new = self._replacement(value, memo)
            if new is not None and slot.get() is value:
                slot.set(new)
                swaps.append((slot, value, new))
        for klass in self._found.local_classes:
            per_thread = self._per_thread.get(klass)
            if per_thread is None:
                per_thread = self._per_thread[klass] = _PerRunThread(klass)
            saved += [(klass, name, old) for name, old in per_thread.install()]
        self._random_state = draws.install()
        # The cycle collector runs finalizers and weakref callbacks at moments that depend on
        # everything allocated so far: off during a run, so runs repeat exactly.
        self._gc_was_enabled = gc.isenabled()
        gc.disable()

    def restore(self, sched: Scheduler | None = None) -> None:
        # First, while Thread.__hash__ is still the run's: _limbo and _threads_queues are keyed by it.
        self._forget_run_threads(sched)
        for slot, old, new in reversed(self._swaps):
            if slot.get() is new:  # unless the run put something of its own there
                slot.set(old)
        self._swaps.clear()
        for module, name, value in reversed(self._saved):
            if value is _MISSING:
                delattr(module, name)
            else:
                setattr(module, name, value)
        self._saved.clear()
        draws.uninstall(self._random_state)
        if self._gc_was_enabled:
            gc.enable()

    def _forget_run_threads(self, sched: Scheduler | None) -> None:
        """Remove the run's threads from threading's registries so nothing outlives the run."""
        if sched is None:
            return
        run_threads = {vt.ident for vt in sched.threads[1:]}
        with _threading._active_limbo_lock:
            for ident in [i for i in _threading._active if i in run_threads]:
                del _threading._active[ident]
            limbo = _threading._limbo
            for thread in [t for t in limbo if getattr(t, "_ident", None) in run_threads or t._ident is None]:
                del limbo[thread]
        if not PY313:
            with _threading._shutdown_locks_lock:
                _threading._shutdown_locks.difference_update(
                    [lock for lock in _threading._shutdown_locks if isinstance(lock, P.Lock)]
                )
        futures_thread = sys.modules.get("concurrent.futures.thread")
        if futures_thread is not None:
            for thread in [t for t in list(futures_thread._threads_queues) if t.ident in run_threads]:
                futures_thread._threads_queues.pop(thread, None)
