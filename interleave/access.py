"""The calls that instrumented code makes at each shared access (see :mod:`interleave.instrument`).

Each helper makes the switch point *before* the access, then performs it exactly as the
original code would, then (when the run keeps records) notes what it touched. Outside a
run, or on an OS thread other than the run's, a helper only performs the access.

What counts as shared: attributes and items of objects, the contents of builtin
containers (their read-only methods read them, every other method writes them), rebound
globals and closure cells. What does not: reading a method or a function (code, not
state), anything of an immutable object, a frame's own locals. A call of a method of a
synchronization object (``Event.is_set``, ``Queue.put``...) is a synchronization step.
"""

from __future__ import annotations

import _thread
import builtins
import collections
import queue
import sys
import threading
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

#: The name a module's helper is injected under (see :func:`inject`).
HELPER = "_interleave_access_"

READ, WRITE = False, True


@dataclass(frozen=True)
class Site:
    """One access in the program's source: where, what kind, and its text."""

    filename: str
    lineno: int
    kind: str  # read, write, call, iterate
    text: str


#: Every site of every instrumented module of this process, by index.
SITES: list[Site] = []


def register_site(filename: str, lineno: int, kind: str, text: str) -> int:
    SITES.append(Site(filename, lineno, kind, text))
    return len(SITES) - 1


class _Run:
    """The run being made on this process's scheduling thread (set by the scheduler)."""

    sched: Any = None
    os_ident: int = -1


RUN = _Run()
_get_ident = _thread.get_ident

# ------------------------------------------------------------------ what is shared

_CONTAINERS = (list, dict, set, bytearray, collections.deque)
_IMMUTABLE = frozenset({str, bytes, tuple, int, float, complex, bool, frozenset, range, type(None), slice,
                        types.FunctionType, types.BuiltinFunctionType, types.MethodType, types.CodeType})
_VIEWS: tuple[type, ...] = (type({}.keys()), type({}.values()), type({}.items()))

_READ_METHODS: dict[type, frozenset[str]] = {
    list: frozenset({"index", "count", "copy", "__len__", "__contains__", "__getitem__", "__iter__", "__reversed__"}),
    dict: frozenset({"get", "keys", "values", "items", "copy", "__contains__", "__getitem__", "__len__", "__iter__",
                     "__reversed__", "__missing__"}),
    set: frozenset({"copy", "issubset", "issuperset", "isdisjoint", "union", "intersection", "difference",
                    "symmetric_difference", "__contains__", "__len__", "__iter__"}),
    bytearray: frozenset({"count", "find", "index", "rfind", "rindex", "startswith", "endswith", "decode", "hex",
                          "copy", "__len__", "__contains__", "__getitem__", "__iter__"}),
    collections.deque: frozenset({"count", "index", "copy", "__len__", "__contains__", "__getitem__", "__iter__"}),
}
#: Methods whose first argument names the item they touch (a finer field than the whole).
_KEYED = frozenset({"get", "setdefault", "pop", "__getitem__", "__setitem__", "__delitem__", "__contains__"})


#: The controlled locks: :mod:`interleave.primitives` registers them when it loads (it sits
#: above this module, which the scheduler imports).
_LOCK_TYPES: tuple[type, ...] = ()


def register_locks(*types: type) -> None:
    """Name the lock types whose methods are synchronization, not accesses."""
    global _LOCK_TYPES
    _LOCK_TYPES = types


def _sync_types() -> tuple[type, ...]:
    from concurrent.futures import Future

    assert _LOCK_TYPES, "interleave.primitives registers its locks before the first run"
    return (threading.Event, threading.Condition, threading.Semaphore, threading.Barrier, threading.Thread,
            queue.Queue, queue.SimpleQueue, getattr(queue, "_PySimpleQueue", queue.Queue), *_LOCK_TYPES, Future)


_SYNC: tuple[type, ...] | None = None


def prepare() -> None:
    """Do outside any run what a run must not do the first time only (an import takes locks)."""
    global _SYNC
    if _SYNC is None:
        _SYNC = _sync_types()

STATIC, FIELD, CONTAINER_READ, CONTAINER_WRITE, SYNC, SPECULATE = range(6)
_kinds: dict[tuple[type, str], int] = {}


def _static_value(value: Any) -> bool:
    """Code, not state: reading it is no shared access."""
    return isinstance(value, (types.FunctionType, types.BuiltinFunctionType, types.MethodType, type,
                              types.ModuleType, staticmethod, classmethod, types.MethodDescriptorType,
                              types.WrapperDescriptorType, types.MethodWrapperType, types.ClassMethodDescriptorType))


def _kind(tp: type, name: str) -> int:
    kind = _kinds.get((tp, name))
    if kind is not None:
        return kind
    assert _SYNC is not None, "access.prepare() runs before the first run"
    if issubclass(tp, (type, types.ModuleType)):
        kind = SPECULATE  # a class or a module: what the name holds decides
    elif tp in _IMMUTABLE:
        kind = STATIC
    elif issubclass(tp, _CONTAINERS):
        base = next(b for b in tp.__mro__ if b in _READ_METHODS)
        defined = next((k.__dict__[name] for k in tp.__mro__ if name in k.__dict__), None)
        if defined is not None and not (base.__dict__.get(name) is defined or _static_value(defined)):
            kind = FIELD
        else:
            kind = CONTAINER_READ if name in _READ_METHODS[base] else CONTAINER_WRITE
    elif issubclass(tp, _SYNC) and not name.startswith("_"):
        kind = SYNC
    else:
        defined = next((k.__dict__[name] for k in tp.__mro__ if name in k.__dict__), None)
        kind = STATIC if defined is not None and _static_value(defined) else FIELD
    _kinds[(tp, name)] = kind
    return kind


def _sched() -> Any:
    """The run's scheduler when called on its thread (written out in the item and attribute
    helpers and ``tick``: the path of nearly every access)."""
    sched = RUN.sched
    if sched is not None and _get_ident() == RUN.os_ident:
        return sched
    return None


def _field(key: Any) -> Any:
    """An item's key as a field: the key itself when it is a plain value, else the whole."""
    return key if type(key) in (str, int, bytes, bool, float, type(None)) else None


class _ContainerCall:
    """A bound method of a builtin container: the switch point comes right before the call."""

    __slots__ = ("obj", "name", "bound", "write", "site")

    def __init__(self, obj: Any, name: str, bound: Any, write: bool, site: int) -> None:
        self.obj, self.name, self.bound, self.write, self.site = obj, name, bound, write, site

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        sched = _sched()
        if sched is None:
            return self.bound(*args, **kwargs)
        sched.access_point()
        result = self.bound(*args, **kwargs)
        if sched.noting:
            field = _field(args[0]) if args and self.name in _KEYED and isinstance(self.obj, dict) else None
            sched.note(self.site, self.obj, field, self.write, result if not self.write else NOTHING)
        return result


NOTHING = object()


class ModuleAccess:
    """The helper injected into an instrumented module: one per module (its globals)."""

    __slots__ = ("globals", "module", "compiled", "__weakref__")

    slice = builtins.slice

    def __init__(self, namespace: dict[str, Any], compiled: bool) -> None:
        self.globals = namespace
        self.module = namespace.get("__name__", "?")
        #: The module's code was compiled instrumented (else its functions get swapped twins).
        self.compiled = compiled

    # -- attributes

    def get_attr(self, obj: Any, name: str, site: int) -> Any:
        sched = RUN.sched
        if sched is not None and _get_ident() != RUN.os_ident:
            sched = None
        if sched is None:
            return getattr(obj, name)
        kind = _kind(type(obj), name)
        if kind == STATIC or kind == CONTAINER_READ or kind == CONTAINER_WRITE:
            return getattr(obj, name)
        if kind == SPECULATE and _static_value(getattr(obj, name)):
            return getattr(obj, name)
        sched.access_point()
        value = getattr(obj, name)
        if sched.noting:
            sched.note(site, obj, name, READ, value)
        return value

    def set_attr(self, obj: Any, name: str, value: Any, site: int) -> None:
        sched = RUN.sched
        if sched is not None and _get_ident() != RUN.os_ident:
            sched = None
        if sched is None:
            setattr(obj, name, value)
            return
        sched.access_point()
        setattr(obj, name, value)
        if sched.noting:
            sched.note(site, obj, name, WRITE, value)

    def del_attr(self, obj: Any, name: str, site: int) -> None:
        sched = _sched()
        if sched is not None:
            sched.access_point()
        delattr(obj, name)
        if sched is not None and sched.noting:
            sched.note(site, obj, name, WRITE, NOTHING)

    def method(self, obj: Any, name: str, site: int) -> Any:
        """``obj.name`` about to be called."""
        sched = _sched()
        if sched is None:
            return getattr(obj, name)
        kind = _kind(type(obj), name)
        if kind == STATIC:
            return getattr(obj, name)
        if kind == CONTAINER_READ or kind == CONTAINER_WRITE:
            return _ContainerCall(obj, name, getattr(obj, name), kind == CONTAINER_WRITE, site)
        if kind == SYNC:
            sched.sync_call()
            if sched.noting and not isinstance(obj, _LOCK_TYPES):
                # What the call reads of the object without a lock (Event.is_set) is in no lock's record.
                sched.note_sync("call", obj)
            return getattr(obj, name)
        if kind == SPECULATE:
            value = getattr(obj, name)
            if _static_value(value):
                return value
        sched.access_point()
        value = getattr(obj, name)
        if sched.noting:
            sched.note(site, obj, name, READ, value)
        return value

    # -- items

    def get_item(self, obj: Any, key: Any, site: int) -> Any:
        sched = RUN.sched
        if sched is not None and _get_ident() != RUN.os_ident:
            sched = None
        if sched is None or type(obj) in _IMMUTABLE:
            return obj[key]
        sched.access_point()
        value = obj[key]
        if sched.noting:
            sched.note(site, obj, _field(key), READ, value)
        return value

    def set_item(self, obj: Any, key: Any, value: Any, site: int) -> None:
        sched = RUN.sched
        if sched is not None and _get_ident() != RUN.os_ident:
            sched = None
        if sched is None:
            obj[key] = value
            return
        sched.access_point()
        obj[key] = value
        if sched.noting:
            sched.note(site, obj, _field(key), WRITE, value)

    def del_item(self, obj: Any, key: Any, site: int) -> None:
        sched = _sched()
        if sched is not None:
            sched.access_point()
        del obj[key]
        if sched is not None and sched.noting:
            sched.note(site, obj, _field(key), WRITE, NOTHING)

    # -- containers read whole

    def call_reading(self, function: Callable[..., Any], site: int, *args: Any, **kwargs: Any) -> Any:
        """``len(c)``, ``sorted(c)``...: a read of the container passed first."""
        sched = _sched()
        if sched is None or not isinstance(args[0], _CONTAINERS + _VIEWS):
            return function(*args, **kwargs)
        sched.access_point()
        result = function(*args, **kwargs)
        if sched.noting:
            sched.note(site, args[0], None, READ, result)
        return result

    def contains(self, item: Any, container: Any, site: int) -> bool:
        sched = _sched()
        if sched is None or type(container) in _IMMUTABLE:
            return item in container
        sched.access_point()
        result = item in container
        if sched.noting:
            field = _field(item) if isinstance(container, (dict, set)) else None
            sched.note(site, container, field, READ, result)
        return result

    def iterate(self, iterable: Any, site: int) -> Any:
        """``for x in c``: each step of the iteration reads the container."""
        if not isinstance(iterable, _CONTAINERS + _VIEWS) or _sched() is None:
            return iterable
        return _iterate(iterable, site)

    def truth(self, value: Any, site: int) -> bool:
        """The truth of a tested value: for a container, a read of it."""
        sched = _sched()
        if sched is None or not isinstance(value, _CONTAINERS):
            return bool(value)
        sched.access_point()
        result = bool(value)
        if sched.noting:
            sched.note(site, value, None, READ, result)
        return result

    # -- globals and cells

    def read_global(self, name: str, site: int) -> Any:
        sched = _sched()
        if sched is not None:
            sched.access_point()
        try:
            value = self.globals[name]
        except KeyError:
            try:
                value = getattr(builtins, name)
            except AttributeError:
                raise NameError(f"name {name!r} is not defined") from None
        if sched is not None and sched.noting:
            sched.note(site, _ModuleKey(self.module), name, READ, value)
        return value

    def write_global(self, value: Any, name: str, site: int) -> None:
        sched = _sched()
        if sched is not None:
            sched.access_point()
        self.globals[name] = value
        if sched is not None and sched.noting:
            sched.note(site, _ModuleKey(self.module), name, WRITE, value)

    def read_cell(self, name: str, site: int) -> None:
        """The switch point before a cell is read (the load itself follows in the caller)."""
        sched = _sched()
        if sched is not None:
            sched.access_point()
            if sched.noting:
                # The value the caller's load will find, for the record (NOTHING: the cell is empty).
                value = sys._getframe(1).f_locals.get(name, NOTHING)
                sched.note(site, _CellKey(SITES[site].filename, name), name, READ, value)

    def write_cell(self, value: Any, name: str, site: int) -> Any:
        sched = _sched()
        if sched is not None:
            sched.access_point()
            if sched.noting:
                sched.note(site, _CellKey(SITES[site].filename, name), name, WRITE, value)
        return value

    # -- loops

    def tick(self) -> None:
        """Top of a loop body: lets a loop that touches nothing shared be seen running."""
        sched = RUN.sched
        if sched is not None and _get_ident() != RUN.os_ident:
            sched = None
        if sched is not None:
            sched.tick()


def _iterate(iterable: Any, site: int) -> Iterator[Any]:
    iterator = iter(iterable)
    while True:
        sched = _sched()
        if sched is not None:
            sched.access_point()
        try:
            item = next(iterator)
        except StopIteration:
            return
        if sched is not None and sched.noting:
            sched.note(site, iterable, None, READ, item)
        yield item


@dataclass(frozen=True)
class _ModuleKey:
    """A module's globals, as an object of their own (the same every run)."""

    name: str


@dataclass(frozen=True)
class _CellKey:
    """A closure variable, by file and name: every closure of it counts as one."""

    filename: str
    name: str


#: Objects of which each thread has its own attributes (``threading.local``, its subclasses
#: and the run's stand-ins, added by :mod:`interleave.reallocks`): what a thread touches of
#: them is its own, recorded per thread, and never races.
per_thread_types: tuple[type, ...] = (_thread._local, __import__("_threading_local").local)


def stable_name(obj: Any) -> Any:
    """A name for objects that exist apart from any one run (modules, cells), else None."""
    if isinstance(obj, (_ModuleKey, _CellKey)):
        return obj
    if isinstance(obj, types.ModuleType):
        return _ModuleKey(obj.__name__)
    return None


def describe(site: int, obj: Any, field: Any) -> str:
    """What an access touched, in the program's terms: ``Stats.hits``, ``counts['a']``,
    ``the global served``, ``the cell total``."""
    text = SITES[site].text
    if isinstance(obj, _ModuleKey):
        return f"the global {field}"
    if isinstance(obj, _CellKey):
        return f"the cell {obj.name}"
    if isinstance(obj, types.ModuleType):
        return f"{obj.__name__}.{field}"
    if isinstance(obj, type):
        return f"{obj.__name__}.{field}"
    kind = SITES[site].kind
    if kind in ("read", "write") and isinstance(field, str) and "[" not in text and text.endswith("." + field):
        return f"{type(obj).__name__}.{field}"
    if kind == "call" and "." in text and "(" not in text:
        base, method = text.rsplit(".", 1)  # a container's method: what it touched, then how
        return (f"{base}[{field!r}]" if field is not None else base) + f" ({method})"
    if kind == "call":
        return text
    base = text.split("[", 1)[0] if "[" in text else text
    if field is not None:
        return f"{base}[{field!r}]"
    return base


def inject(namespace: dict[str, Any], compiled: bool = True) -> None:
    """Give a module's namespace its helper (instrumented code calls it by this name).

    It stays after the campaign: a generator made from instrumented code (a fixture's
    teardown) may resume later, and outside a run the helper only performs the access."""
    helper = namespace.get(HELPER)
    if not isinstance(helper, ModuleAccess) or helper.globals is not namespace:
        namespace[HELPER] = ModuleAccess(namespace, compiled)
    elif compiled:
        helper.compiled = True
