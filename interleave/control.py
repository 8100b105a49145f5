"""Hooks for programs that model faults (see ``interleave.sim`` and ``targets/``).

These let a simulated system make its faults scheduler choices: explored, counted
against the fault budget, shrunk and replayed like preemptions. Outside a run they are
inert (no fault happens), so the same code runs as ordinary Python.
"""

from __future__ import annotations

import threading
from typing import Iterable

from .scheduler import VThread, active


def controlled() -> bool:
    """True inside an interleave run."""
    return active() is not None


def choose(label: str, options: int = 2) -> int:
    """A fault decision: 0 (no fault) by default; the search explores 1..options-1."""
    sched = active()
    if sched is None:
        return 0
    return sched.fault_choice(label, options)


def _vthreads(threads: Iterable[threading.Thread]) -> list[VThread]:
    sched = active()
    assert sched is not None
    idents = {t.ident for t in threads}
    return [vt for vt in sched.threads if vt.ident in idents]


def crash(threads: Iterable[threading.Thread]) -> None:
    """Stop these threads for good, wherever they are (a crashed process)."""
    sched = active()
    if sched is not None:
        sched.kill(_vthreads(threads))


def freeze(threads: Iterable[threading.Thread]) -> None:
    """Hold these threads still while others run and time passes (a paused process)."""
    sched = active()
    if sched is not None:
        sched.freeze(_vthreads(threads), True)


def unfreeze(threads: Iterable[threading.Thread]) -> None:
    sched = active()
    if sched is not None:
        sched.freeze(_vthreads(threads), False)
