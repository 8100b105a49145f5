"""What a run of the program executed without switch points: installed code it called.

A "no failure" verdict covers the code that had switch points. Code in installed packages
(site-packages) runs atomically between them unless ``--include`` names it, so a race
inside a library cannot be seen; the report must say which libraries ran that way, and
how often. One run in the default order, with a call tracer, counts the calls made
into installed code from outside it, and whether any code of the user's ran at
all (a callable defined at a REPL has no source: nothing of it can be a switch point).
"""

from __future__ import annotations

import os
import sys
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from .instrument import Scope

_INSTALLED = tuple({sysconfig.get_paths()[k] for k in ("purelib", "platlib")})


@cache
def _installed(filename: str) -> bool:
    return filename.startswith(_INSTALLED) or "site-packages" in filename or "dist-packages" in filename


@dataclass
class Census:
    """Calls from the program's code into installed code without switch points, by package."""

    uninstrumented: dict[str, int] = field(default_factory=dict)
    #: Calls of the user's own code (with switch points): 0 means nothing of it ran.
    user_calls: int = 0

    def summary(self) -> list[str]:
        """One line per package, most called first (for the report)."""
        rows = sorted(self.uninstrumented.items(), key=lambda item: (-item[1], item[0]))
        return [f"{name} ({calls} call{'s' if calls != 1 else ''}) ran without switch points; "
                f"--include {name} explores inside it" for name, calls in rows]


def tracer(census: Census, scope: Scope) -> Callable[[Any], Callable[[], None]]:
    """An installer (for :class:`interleave.scheduler.Scheduler`) of the counting tracer."""

    @cache
    def kind(filename: str, module: str) -> str:
        if scope.wants(filename, module):
            return "user"
        if _installed(filename) and not filename.startswith(_PACKAGE):
            return "installed"
        return "other"

    def on_call(frame: Any, event: str, arg: Any) -> None:
        code = frame.f_code
        module = frame.f_globals.get("__name__") or "?"
        what = kind(code.co_filename, module)
        if what == "user":
            census.user_calls += 1
        elif what == "installed":
            # Entered from outside installed code: from the program, or from the stdlib on its
            # behalf (a Thread running a library's method as its target).
            caller = frame.f_back
            caller_module = "?" if caller is None else caller.f_globals.get("__name__") or "?"
            if caller is None or kind(caller.f_code.co_filename, caller_module) != "installed":
                package = module.split(".")[0]
                census.uninstrumented[package] = census.uninstrumented.get(package, 0) + 1
        return None

    def install(sched: Any) -> Callable[[], None]:
        previous = sys.gettrace()
        sys.settrace(on_call)
        return lambda: sys.settrace(previous)

    return install


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
