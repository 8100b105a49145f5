"""Whether a program is getting anywhere: a snapshot of the state its threads can see.

A hang is a run in which nothing changes, not a run that is long. The scheduler takes a
:func:`snapshot` of the program every so often; two equal snapshots with no thread
started, ended or woken by another in between mean no thread made progress there.

A snapshot holds, for each live thread, its state and the user frames on its stack
(outermost first), each with the values of its locals, and the globals of those frames'
modules, followed a few levels into lists, dicts, sets and objects. It never runs code
of the program (no ``__eq__``, ``__len__``, property or ``__getattr__`` of its classes)
and holds no ``id()``, so equal states give equal snapshots in every process. Where the
sampled threads stand in their loops does not matter: frames deeper than those both
snapshots share (a helper called from the loop) are left out of the comparison.
"""

from __future__ import annotations

import sys
import types
import weakref
from collections import deque
from itertools import islice
from typing import Any

from .files import is_user_file
from .runview import RunView, ThreadView

#: How far into containers and objects a snapshot looks, and how much it takes in all.
LOCALS_DEPTH = 3
GLOBALS_DEPTH = 2
ITEMS = 32
BUDGET = 4000

_SIMPLE = frozenset({int, float, complex, str, bytes, bool, type(None)})
#: Values kept by kind only: their contents are code, not state.
_OPAQUE = frozenset({
    types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType, types.CodeType,
    types.FrameType, types.GeneratorType, types.CoroutineType, types.MethodWrapperType,
    types.WrapperDescriptorType, types.GetSetDescriptorType, types.MemberDescriptorType, property,
    staticmethod, classmethod,
})
#: Modules whose objects are the machinery of the run, not the program's state.
_MACHINERY = frozenset({"interleave.scheduler", "interleave.clock", "interleave.story", "interleave.events", "greenlet",
                        "_greenlet"})
_qualname = type.__dict__["__qualname__"].__get__
_module = type.__dict__["__module__"].__get__
_mro = type.__dict__["__mro__"].__get__
_type_dict = type.__dict__["__dict__"].__get__


class _Walk:
    __slots__ = ("out",)

    def __init__(self) -> None:
        self.out: list[Any] = []

    def value(self, v: Any, depth: int) -> None:
        out = self.out
        if len(out) >= BUDGET:
            return
        t = type(v)
        if t in _SIMPLE:
            out.append(v)
            return
        out.append(_qualname(t))
        if t is bytearray:
            out.append(bytes(v[:ITEMS * 8]))
            return
        if depth <= 0 or t in _OPAQUE or issubclass(t, type) or _module(t) in _MACHINERY:
            return
        if issubclass(t, list):
            out.append(list.__len__(v))
            items: Any = list.__getitem__(v, slice(ITEMS))
        elif issubclass(t, tuple):
            out.append(tuple.__len__(v))
            items = tuple.__getitem__(v, slice(ITEMS))
        elif issubclass(t, deque):
            out.append(deque.__len__(v))
            items = islice(deque.__iter__(v), ITEMS)
        elif issubclass(t, dict):
            out.append(dict.__len__(v))
            for k, x in islice(dict.items(v), ITEMS):
                self.value(k, 0)
                self.value(x, depth - 1)
            return
        elif issubclass(t, (set, frozenset)):
            base = set if issubclass(t, set) else frozenset
            n = base.__len__(v)
            out.append(n)
            if n <= ITEMS:
                members = list(base.__iter__(v))
                if all(type(m) in _SIMPLE for m in members):
                    out.append(frozenset(members))  # compared unordered: iteration order is not state
            return
        else:
            self.fields(v, t, depth)
            return
        for x in items:
            self.value(x, depth - 1)

    def fields(self, v: Any, t: type, depth: int) -> None:
        """An object's ``__dict__`` and ``__slots__`` values, read through the type's own
        C descriptors (a user's property of that name is not called)."""
        for name, desc in _readers(t):
            try:
                x = desc.__get__(v, t)
            except (AttributeError, TypeError):
                continue  # a slot never set
            if name == "__dict__":
                if type(x) is dict:
                    self.value(x, depth)
            else:
                self.value(name, 0)
                self.value(x, depth - 1)


_reader_cache: weakref.WeakKeyDictionary[type, list[tuple[str, Any]]] = weakref.WeakKeyDictionary()


def _readers(t: type) -> list[tuple[str, Any]]:
    """The slot descriptors and the instance-dict descriptor of a type, by its MRO."""
    found = _reader_cache.get(t)
    if found is None:
        found = []
        for klass in _mro(t):
            for name, desc in _type_dict(klass).items():
                kind = type(desc)
                if kind is types.MemberDescriptorType or (kind is types.GetSetDescriptorType and name == "__dict__"):
                    found.append((name, desc))
        _reader_cache[t] = found
    return found


def _user_frames(vt: ThreadView, sched: RunView) -> list[Any]:
    frame: types.FrameType | None
    if vt is sched.current:
        frame = sys._getframe(1)
    else:
        g = vt.greenlet
        frame = g.gr_frame if g is not None else None
    frames = []
    while frame is not None:
        if is_user_file(frame.f_code.co_filename):
            frames.append(frame)
        frame = frame.f_back
    frames.reverse()
    return frames


class Snapshot:
    """The visible state of a program at one moment (see the module's docstring)."""

    __slots__ = ("threads", "globals")

    def __init__(self, threads: list[tuple[int, str, list[tuple[Any, tuple[Any, ...]]]]],
                 globals_: tuple[Any, ...]) -> None:
        self.threads = threads
        self.globals = globals_

    def same_as(self, other: Snapshot | None) -> bool:
        if other is None or self.globals != other.globals or len(self.threads) != len(other.threads):
            return False
        for (index, state, frames), (index2, state2, frames2) in zip(self.threads, other.threads):
            if index != index2 or state != state2:
                return False
            shared = 0
            for (code, _), (code2, _) in zip(frames, frames2):
                if code is not code2:
                    break
                shared += 1
            if shared == 0 and (frames or frames2):
                return False
            if any(a[1] != b[1] for a, b in zip(frames[:shared], frames2[:shared])):
                return False
        return True


def snapshot(sched: RunView) -> Snapshot:
    """The state of every live thread of the run (see :class:`Snapshot`)."""
    threads = []
    modules: dict[int, dict[str, Any]] = {}
    for vt in sched.threads:
        if vt.state == "finished":
            continue
        frames = []
        for frame in _user_frames(vt, sched):
            walk = _Walk()
            for name, value in frame.f_locals.items():
                walk.value(name, 0)
                walk.value(value, LOCALS_DEPTH)
            frames.append((frame.f_code, tuple(walk.out)))
            modules.setdefault(id(frame.f_globals), frame.f_globals)
        threads.append((vt.index, vt.state, frames))
    walk = _Walk()
    for namespace in modules.values():
        for name, value in list(namespace.items()):
            if not (name.startswith("__") and name.endswith("__")):
                walk.value(name, 0)
                walk.value(value, GLOBALS_DEPTH)
    return Snapshot(threads, tuple(walk.out))
