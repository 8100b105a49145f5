"""Real locks made before a run, wherever the program keeps them, and where they were made.

A run's threads are greenlets of one OS thread: a real ``_thread.lock`` one of them holds
across a switch point blocks the whole process when another acquires it, and a real
``RLock`` lets every thread in at once. Objects made at import or by a wide fixture hold
such locks (directly, inside a ``Condition``, ``Event`` or ``Queue``, in a dict, a list,
a closure, a default argument, a class attribute...).

:class:`Finder` walks the object graph reachable from the user's modules, installed
packages' modules and any extra roots (a callable target, a pytest fixture's value), the
same way every time, and lists every *slot* that holds a real lock, a bound method of one
(``Condition`` keeps ``lock.acquire``), a factory that makes real ones (``from threading
import RLock``, a ``defaultdict(threading.Lock)``) or a real clock function, or a tuple
holding any of these (rebuilt around the twin). :mod:`interleave.patching` swaps them for
the length of each run. A lock that no slot can reach writably (in a frozenset, a dict
key, a C object) stays real and is listed with a name and, when known, the line that made
it, so a run blocked on it can say which one it is.

A ``threading.local()`` made before the run is found the same way: its attributes belong
to the OS thread, which every thread of a run shares, so during the run the slot holds a
:class:`RunLocal` instead, which gives each of the run's threads its own attributes.

The standard library's modules are not walked: their locks serve the process (imports,
logging's registry, threading's own tables) and other OS threads use them during a run.
"""

from __future__ import annotations

import _thread
import collections
import sys
import threading
import tracemalloc
import types
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from . import access
from . import primitives as P
from .failures import _short
from .files import is_library_file, is_user_file
from .scheduler import active

_REAL_RLOCK = _thread.RLock  # (patched in runs)
REAL_LOCK_TYPES: dict[type, type] = {type(_thread.allocate_lock()): P.Lock, _REAL_RLOCK: P.RLock}
#: The C ``threading.local`` (``threading.local`` itself is patched in runs).
REAL_LOCAL = _thread._local

#: Installed packages that run threads of their own beside a run (a Dask worker's event
#: loop, xdist's channel, coverage's tracer): their objects are theirs, never swapped.
_HOSTS = frozenset({"distributed", "tornado", "dask", "execnet", "xdist", "coverage", "pytest_cov", "greenlet",
                    # and the tools that run the program (their objects are not the program's)
                    "_pytest", "pytest", "pluggy", "hypothesis", "_hypothesis_pytestplugin", "click", "pygments",
                    "iniconfig", "packaging", "_distutils_hack", "setuptools", "pkg_resources", "pip", "mypy"})

_ATOMIC = frozenset({str, bytes, int, float, complex, bool, type(None), bytearray, range, slice,
                     type(Ellipsis), type(NotImplemented), memoryview})
_OPAQUE = (types.ModuleType, types.CodeType, types.FrameType, types.GeneratorType, types.CoroutineType,
           types.AsyncGeneratorType, weakref.ref, weakref.ProxyType, weakref.CallableProxyType,
           threading.Thread, P.Lock, types.TracebackType)
#: The type of a C object's bound method (``lock.acquire``); any such method, whatever its signature.
_BUILTIN_METHOD: type = type(_thread.allocate_lock().acquire)
_GETSET = types.GetSetDescriptorType
_MEMBER = types.MemberDescriptorType

#: Objects walked at most, so a huge heap costs a bounded time (the walk is breadth first:
#: what is near a module is seen first).
MAX_OBJECTS = 2_000_000


#: How the program reaches an object: a root's name, or (parent path, format, argument);
#: rendered only when a lock is named.
Path = Any


def render(path: Path) -> str:
    chain = []
    while isinstance(path, tuple):
        chain.append(path)
        path = path[0]
    text = str(path)
    for _, fmt, arg in reversed(chain):
        text = fmt.format(text, arg)
    return text


class Slot:
    """A place that holds a value and can be given another: ``get`` and ``set``."""

    __slots__ = ("owner", "key", "kind")

    def __init__(self, kind: str, owner: Any, key: Any) -> None:
        self.kind, self.owner, self.key = kind, owner, key

    def get(self) -> Any:
        kind, owner, key = self.kind, self.owner, self.key
        try:
            if kind == "dict":
                return dict.__getitem__(owner, key)
            if kind == "list":
                return list.__getitem__(owner, key)
            if kind == "deque":
                return owner[key]
            if kind == "cell":
                return owner.cell_contents
            if kind == "member":
                return key.__get__(owner, type(owner))
            if kind == "class":
                return owner.__dict__.get(key, _GONE)
            return getattr(owner, key)
        except (KeyError, IndexError, ValueError, AttributeError):
            return _GONE

    def set(self, value: Any) -> None:
        kind, owner, key = self.kind, self.owner, self.key
        if kind == "dict":
            dict.__setitem__(owner, key, value)
        elif kind == "list":
            list.__setitem__(owner, key, value)
        elif kind == "deque":
            owner[key] = value
        elif kind == "cell":
            owner.cell_contents = value
        elif kind == "member":
            key.__set__(owner, value)
        elif kind == "class":
            type.__setattr__(owner, key, value)
        else:
            object.__setattr__(owner, key, value)


_GONE = object()
#: The slot of a tuple's item: the tuple is rebuilt (or listed as unswappable) as a whole.
_IN_TUPLE = Slot("tuple", None, None)


@dataclass
class Found:
    """What one walk found."""

    #: (slot, value now in it): values that are real locks, their methods, factories, tuples.
    slots: list[tuple[Slot, Any]] = field(default_factory=list)
    #: id(real lock) -> (the lock, how the program reaches it), for locks that stay real.
    unswappable: dict[int, tuple[Any, Path]] = field(default_factory=dict)
    #: id(real lock) -> (the lock, how the program reaches it), for every real lock seen.
    names: dict[int, tuple[Any, Path]] = field(default_factory=dict)
    objects: int = 0
    #: Subclasses of the C ``threading.local`` defined before the run (their instances cannot be swapped).
    local_classes: list[type] = field(default_factory=list)


class Finder:
    """One walk of the graph of objects made before the run."""

    def __init__(self, replaceable: dict[int, Any]) -> None:
        self._replaceable = replaceable  # id(real function or factory) -> its controlled stand-in
        self._seen: set[int] = set()
        self._keep: list[Any] = []  # what was seen stays alive, so its id is not reused mid-walk
        self._lockish: dict[int, bool] = {}
        self._namespaces: set[int] = set()  # dicts whose keys are attribute names (modules', objects')
        self._queue: collections.deque[tuple[Any, Slot | None, Path]] = collections.deque()
        self.found = Found()

    def walk(self, roots: Iterator[tuple[Any, str]]) -> Found:
        for value, name in roots:
            if type(value) is dict:
                self._namespaces.add(id(value))
            self._queue.append((value, None, name))
        queue = self._queue
        while queue and self.found.objects < MAX_OBJECTS:
            value, slot, path = queue.popleft()
            self._visit(value, slot, path)
        self._keep.clear()
        return self.found

    # --------------------------------------------------------------- one value

    def _visit(self, value: Any, slot: Slot | None, path: Path) -> None:
        kind = type(value)
        if kind in _ATOMIC:
            return
        if self._special(value, slot, path):
            return
        if _rebuildable(value):
            if self._tuple_is_lockish(value, path) and slot is not _IN_TUPLE:
                if slot is not None:
                    self.found.slots.append((slot, value))
                else:
                    self._unswappable_in(value, path)
        key = id(value)
        if key in self._seen:
            return
        self._seen.add(key)
        self._keep.append(value)
        self.found.objects += 1
        self._children(value, path)

    def _special(self, value: Any, slot: Slot | None, path: Path) -> bool:
        """Real locks, their bound methods and replaceable functions: recorded, not walked into."""
        kind = type(value)
        if kind in REAL_LOCK_TYPES:
            self._lock_in(value, value, slot, path)
            return True
        if kind is _BUILTIN_METHOD and type(getattr(value, "__self__", None)) in REAL_LOCK_TYPES:
            self._lock_in(value, value.__self__, slot, path)
            return True
        if kind is REAL_LOCAL:  # its attributes are the OS thread's: not walked, swapped as a whole
            if slot is not None and slot is not _IN_TUPLE:
                self.found.slots.append((slot, value))
            return True
        if id(value) in self._replaceable:
            if slot is not None and slot is not _IN_TUPLE:
                self.found.slots.append((slot, value))
            return True
        return False

    def _lock_in(self, value: Any, lock: Any, slot: Slot | None, path: Path) -> None:
        self.found.names.setdefault(id(lock), (lock, path))
        if slot is None:
            self.found.unswappable.setdefault(id(lock), (lock, path))
        elif slot is not _IN_TUPLE:  # else the enclosing tuple is rebuilt, or listed as unswappable
            self.found.slots.append((slot, value))

    def _tuple_is_lockish(self, value: tuple[Any, ...], path: Path) -> bool:
        """A tuple holding (perhaps in nested tuples) something swapped: it is rebuilt."""
        key = id(value)
        answer = self._lockish.get(key)
        if answer is None:
            answer = False
            for i, item in enumerate(value):
                if type(item) in _ATOMIC:
                    continue
                inner = (path, "{}[{}]", i)
                if type(item) in REAL_LOCK_TYPES or (type(item) is _BUILTIN_METHOD
                                                     and type(getattr(item, "__self__", None)) in REAL_LOCK_TYPES):
                    lock = item if type(item) in REAL_LOCK_TYPES else item.__self__
                    self.found.names.setdefault(id(lock), (lock, inner))
                    answer = True
                elif isinstance(item, tuple):
                    answer = self._tuple_is_lockish(item, inner) or answer
                else:
                    try:
                        answer = id(item) in self._replaceable or answer
                    except TypeError:
                        pass
            self._lockish[key] = answer
            self._keep.append(value)
        return answer

    def _unswappable_in(self, value: tuple[Any, ...], path: Path) -> None:
        for i, item in enumerate(value):
            inner = (path, "{}[{}]", i)
            if type(item) in REAL_LOCK_TYPES:
                self.found.unswappable.setdefault(id(item), (item, inner))
            elif type(item) is _BUILTIN_METHOD and type(owner := getattr(item, "__self__", None)) in REAL_LOCK_TYPES:
                self.found.unswappable.setdefault(id(owner), (owner, inner))
            elif isinstance(item, tuple):
                self._unswappable_in(item, inner)

    # --------------------------------------------------------------- its insides

    def _children(self, value: Any, path: Path) -> None:
        push = self._queue.append
        if isinstance(value, _OPAQUE) or _not_the_programs(value):
            return
        if isinstance(value, type):
            if value is not REAL_LOCAL and issubclass(value, REAL_LOCAL) and _walked_class(value):
                self.found.local_classes.append(value)
            if _walked_class(value):
                for name, inner in list(value.__dict__.items()):
                    if name not in ("__dict__", "__weakref__", "__doc__", "__module__", "__slots__"):
                        push((inner, Slot("class", value, name), (path, "{}.{}", name)))
            return
        if isinstance(value, dict):
            attributes = id(value) in self._namespaces
            for name, inner in list(dict.items(value)):
                push((name, None, (path, "{} (a key)", None)))
                inner_path = (path, "{}.{}" if attributes and isinstance(name, str) else "{}[{!r}]", name)
                push((inner, Slot("dict", value, name), inner_path))
            if isinstance(value, collections.defaultdict):
                push((value.default_factory, Slot("attr", value, "default_factory"),
                      (path, "{}.default_factory", None)))
        elif isinstance(value, list):
            for i, inner in enumerate(list(value)):
                push((inner, Slot("list", value, i), (path, "{}[{}]", i)))
        elif isinstance(value, collections.deque):
            for i, inner in enumerate(list(value)):
                push((inner, Slot("deque", value, i), (path, "{}[{}]", i)))
        elif isinstance(value, tuple):
            in_tuple = _IN_TUPLE if _rebuildable(value) else None  # else what it holds cannot be swapped
            for i, inner in enumerate(value):
                push((inner, in_tuple, (path, "{}[{}]", i)))
        elif isinstance(value, (set, frozenset)):
            for inner in list(value):
                push((inner, None, (path, "{} (a member)", None)))
        elif isinstance(value, types.FunctionType):
            for name, cell in zip(value.__code__.co_freevars, value.__closure__ or ()):
                try:
                    inner = cell.cell_contents
                except ValueError:
                    continue
                push((inner, Slot("cell", cell, None), (path, "{} (its closure's {})", name)))
            if value.__defaults__:
                push((value.__defaults__, Slot("attr", value, "__defaults__"), (path, "{} (its defaults)", None)))
            if value.__kwdefaults__:
                push((value.__kwdefaults__, None, (path, "{} (its keyword defaults)", None)))
            if value.__dict__:
                self._namespaces.add(id(value.__dict__))
                push((value.__dict__, None, path))
            return
        elif isinstance(value, types.MethodType):
            push((value.__self__, None, (path, "{}.__self__", None)))
            push((value.__func__, None, path))
            return
        elif type(value) is _BUILTIN_METHOD:
            owner = getattr(value, "__self__", None)
            if owner is not None and not isinstance(owner, types.ModuleType):
                push((owner, None, (path, "{}.__self__", None)))
            return
        if type(value) in _CONTAINERS:
            return  # a subclass of one may have attributes of its own as well
        self._attributes(value, path)

    def _attributes(self, value: Any, path: Path) -> None:
        kind = type(value)
        if not kind.__flags__ & _HEAPTYPE:
            if kind in (staticmethod, classmethod, property):
                # The functions inside: their defaults and closure cells are slots to swap.
                for name in ("__func__",) if kind is not property else ("fget", "fset", "fdel"):
                    inner = getattr(value, name, None)
                    if inner is not None:
                        self._queue.append((inner, None, (path, f"{{}} (its {name})", None)))
                return
            if kind in (types.CellType, types.MappingProxyType, _GETSET, _MEMBER):
                return
            try:
                referents = __import__("gc").get_referents(value)
            except Exception:  # noqa: BLE001 - an object that cannot say what it holds holds nothing we swap
                return
            for inner in referents:
                if not isinstance(inner, type):
                    self._queue.append((inner, None, (path, "{} (inside a {})", kind.__name__)))
            return
        namespace = _instance_dict(value)
        covered = {id(kind), id(namespace)}
        if namespace is not None:
            self._namespaces.add(id(namespace))
            self._queue.append((namespace, None, path))
        for klass in kind.__mro__:
            names = klass.__dict__.get("__slots__", ())
            for name in (names,) if isinstance(names, str) else names if isinstance(names, (tuple, list)) else ():
                private = name.startswith("__") and not name.endswith("__")
                stored = f"_{klass.__name__.lstrip('_')}{name}" if private else name
                descriptor = klass.__dict__.get(stored)
                if type(descriptor) is _MEMBER:
                    try:
                        inner = descriptor.__get__(value, kind)
                    except AttributeError:
                        continue
                    covered.add(id(inner))
                    self._queue.append((inner, Slot("member", value, descriptor), (path, "{}.{}", name)))
        # What a C type made at run time (``functools.partial``, an extension's class) holds in
        # fields of its own: no slot can be written, but a lock there is named when a run blocks on it.
        try:
            referents = __import__("gc").get_referents(value)
        except Exception:  # noqa: BLE001
            return
        for inner in referents:
            if id(inner) not in covered and not isinstance(inner, type):
                self._queue.append((inner, None, (path, "{} (inside a {})", kind.__name__)))


_HEAPTYPE = 1 << 9
_CONTAINERS = frozenset({dict, list, tuple, set, frozenset, collections.deque, collections.defaultdict,
                         collections.OrderedDict})


def _rebuildable(value: Any) -> bool:
    """A tuple, or a named tuple: one with a lock in it can be made again around the twin."""
    kind = type(value)
    return kind is tuple or (isinstance(value, tuple) and any("_make" in k.__dict__ for k in kind.__mro__))


def _instance_dict(value: Any) -> dict[str, Any] | None:
    """The object's ``__dict__``, read without running any code of its class."""
    for klass in type(value).__mro__:
        descriptor = klass.__dict__.get("__dict__")
        if descriptor is not None:
            if type(descriptor) is not _GETSET:
                return None
            try:
                namespace = descriptor.__get__(value, type(value))
            except Exception:  # noqa: BLE001
                return None
            return namespace if type(namespace) is dict else None
    return None


def _not_the_programs(value: Any) -> bool:
    """Functions and objects of interleave itself (a program may hold a Runner) or of a host
    package (a test module's functions lead to pytest's whole session): what they hold is
    the machinery around the run (the real clock behind the controlled one), never swapped."""
    module = value.__module__ if isinstance(value, types.FunctionType) else type(value).__module__
    if not isinstance(module, str):
        return False
    package = module.partition(".")[0]
    return package == "interleave" or package in _HOSTS


def _walked_class(klass: type) -> bool:
    """Classes of the user's modules and installed packages (not the stdlib's, not C types')."""
    if not klass.__flags__ & _HEAPTYPE:
        return False
    module = sys.modules.get(getattr(klass, "__module__", None) or "")
    return module is not None and walked_module(module)


def walked_module(module: Any) -> bool:
    filename = getattr(module, "__file__", None)
    if not isinstance(filename, str) or not filename:
        return False
    if is_user_file(filename):
        return True
    if not is_library_file(filename):
        return False
    name = getattr(module, "__name__", "") or ""
    return name.partition(".")[0] not in _HOSTS


def library_module(module: Any) -> bool:
    """An installed package's module whose objects the walk covers (not the stdlib's, not a host's)."""
    return isinstance(module, types.ModuleType) and walked_module(module) and not is_user_file(
        getattr(module, "__file__", "") or "")


def module_roots() -> Iterator[tuple[Any, str]]:
    """The namespaces of the user's modules and installed packages' modules, in import order."""
    for name, module in list(sys.modules.items()):
        if isinstance(module, types.ModuleType) and walked_module(module):
            namespace = getattr(module, "__dict__", None)
            if isinstance(namespace, dict):
                yield namespace, name


# ----------------------------------------------------------------- thread-locals made before the run


class RunLocal:
    """Stands in for a ``threading.local()`` made before the run, for the length of one run.

    Each thread of the run has its own attributes: the run's main thread starts with a copy
    of those the real one held for the OS thread (what it set at import), every other thread
    with none, as with real threads. Outside a run (another OS thread) it is the real one.
    """

    __slots__ = ("_interleave_real", "_interleave_dicts", "__weakref__")

    def __init__(self, real: Any) -> None:
        object.__setattr__(self, "_interleave_real", real)
        object.__setattr__(self, "_interleave_dicts", {})

    def reset(self) -> None:
        """A new run: every thread starts again from the real one's attributes (call it on the class:
        ``RunLocal.reset(stand_in)``; on the instance the name is the program's)."""
        object.__getattribute__(self, "_interleave_dicts").clear()

    def _namespace(self) -> dict[str, Any]:
        real = object.__getattribute__(self, "_interleave_real")
        sched = active()
        if sched is None:
            namespace: dict[str, Any] = real.__dict__
            return namespace
        dicts = object.__getattribute__(self, "_interleave_dicts")
        current = sched.current
        entry = dicts.get(id(current))
        if entry is None or entry[0] is not current:
            fresh = dict(real.__dict__) if sched.threads and current is sched.threads[0] else {}
            entry = dicts[id(current)] = (current, fresh)
        return entry[1]  # type: ignore[no-any-return]

    def __getattribute__(self, name: str) -> Any:
        namespace = RunLocal._namespace(self)
        if name == "__dict__":
            return namespace
        try:
            return namespace[name]
        except KeyError:
            pass
        if name == "__class__":
            return REAL_LOCAL
        raise AttributeError(f"'_thread._local' object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "__dict__":
            raise AttributeError("'_thread._local' object attribute '__dict__' is read-only")
        RunLocal._namespace(self)[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del RunLocal._namespace(self)[name]
        except KeyError:
            raise AttributeError(name) from None


access.per_thread_types += (RunLocal,)


# ----------------------------------------------------------------- where a lock was made

#: id(real lock) -> (the lock, "file:line" that made it): recorded while a target loads.
_origins: dict[int, tuple[Any, str]] = {}


def origin(lock: Any) -> str | None:
    entry = _origins.get(id(lock))
    if entry is not None and entry[0] is lock:
        return entry[1]
    if tracemalloc.is_tracing():
        return _made_at(lock)
    return None


def _made_at(lock: Any) -> str | None:
    trace = tracemalloc.get_object_traceback(lock)
    if trace is None:
        return None
    for frame in reversed(list(trace)):  # innermost first
        if is_user_file(frame.filename) or is_library_file(frame.filename):
            return f"{_short(frame.filename)}:{frame.lineno}"
    return None


class RecordOrigins:
    """While a target loads, remember the line that made each real lock it keeps."""

    FRAMES = 8

    def __enter__(self) -> RecordOrigins:
        self._before = set(sys.modules)
        self._started = not tracemalloc.is_tracing()
        if self._started:
            tracemalloc.start(self.FRAMES)
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._started:
            return
        try:
            if exc[0] is None:
                # Only what this load imported: only objects made while tracing have a traceback
                # (walking every module again at each load grows with the process).
                found = Finder({}).walk(root for root in module_roots() if root[1] not in self._before)
                for lock, _ in found.names.values():
                    where = _made_at(lock)
                    if where is not None:
                        _origins[id(lock)] = (lock, where)
        finally:
            tracemalloc.stop()


def describe(lock: Any, path: str) -> str:
    kind = "RLock" if type(lock) is _REAL_RLOCK else "Lock"
    made = origin(lock)
    return f"real {kind} {render(path)}" + (f" (made at {made})" if made else "")


__all__ = ["Finder", "Found", "Slot", "REAL_LOCK_TYPES", "REAL_LOCAL", "RunLocal", "library_module", "module_roots",
           "RecordOrigins", "describe", "origin"]
