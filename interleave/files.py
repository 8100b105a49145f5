"""Which source files are the user's: those get line switch points and show in traces.

Everything else (the standard library, installed packages, interleave itself, greenlet,
frozen modules, code compiled from strings) runs atomically between switch points.
"""

from __future__ import annotations

import os
import sysconfig
from collections.abc import Callable
from functools import cache
from types import CodeType
from typing import Generic, TypeVar

_Fact = TypeVar("_Fact")

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _system_prefixes() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    prefixes = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    prefixes |= {os.path.realpath(p) for p in prefixes}
    return tuple(os.path.join(p, "") for p in prefixes) + (_PACKAGE_DIR,)


_SYSTEM = _system_prefixes()


@cache
def is_user_file(filename: str) -> bool:
    """True for a real source file of the program under test."""
    if not filename or filename.startswith("<"):
        return False
    if "site-packages" in filename or "dist-packages" in filename:
        return False
    absolute = os.path.abspath(filename)
    return not absolute.startswith(_SYSTEM) and not os.path.realpath(absolute).startswith(_SYSTEM)


@cache
def is_library_file(filename: str) -> bool:
    """True for a source file of an installed package (not the stdlib, not interleave)."""
    if not filename or filename.startswith("<") or filename.startswith(_PACKAGE_DIR):
        return False
    if "site-packages" in filename or "dist-packages" in filename:
        return True
    absolute = os.path.realpath(os.path.abspath(filename))
    return absolute.startswith(_INSTALLED) and not absolute.startswith(_PACKAGE_DIR)


def _installed_prefixes() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    prefixes = {paths[k] for k in ("purelib", "platlib") if k in paths}
    return tuple(os.path.join(os.path.realpath(p), "") for p in prefixes)


_INSTALLED = _installed_prefixes()


@cache
def is_threading_internal(filename: str) -> bool:
    """True for the stdlib modules whose primitives we build on (no switch points inside)."""
    base = os.path.basename(filename)
    return base in _INTERNAL_BASENAMES and not is_user_file(filename)


_INTERNAL_BASENAMES = {"threading.py", "queue.py", "thread.py", "_base.py", "_threading_local.py"}


class CodeFacts(Generic[_Fact]):
    """``fact`` of a code object, worked out once per code object and looked up by its id.

    Hashing a code object hashes its bytecode and constants (a microsecond on 3.13), and
    these facts are asked at every step; each code object looked up is kept, so its id
    is never another's. A loop over a stack's frames reads :attr:`known` itself (a dict
    lookup, no call) and calls :meth:`learn` for a code object not met before.
    """

    def __init__(self, fact: Callable[[CodeType], _Fact]) -> None:
        self._fact = fact
        self.known: dict[int, _Fact] = {}
        self._kept: list[CodeType] = []

    def __call__(self, code: CodeType) -> _Fact:
        try:
            return self.known[id(code)]
        except KeyError:
            return self.learn(code)

    def learn(self, code: CodeType) -> _Fact:
        answer = self.known[id(code)] = self._fact(code)
        self._kept.append(code)
        return answer


#: Whether a code object is the user's (its file is), by code object.
is_user_code = CodeFacts(lambda code: is_user_file(code.co_filename))
