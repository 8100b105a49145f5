"""Hooks for programs that model faults (see ``interleave.sim`` and ``targets/``).

These let a simulated system make its faults scheduler choices: explored, counted
against the fault budget, shrunk and replayed like preemptions, and tell the HTML
timeline what happened (:func:`set_group`, :func:`annotate`; docs/timeline.md). Outside
a run they are inert (no fault happens), so the same code runs as ordinary Python.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from . import events
from .scheduler import Scheduler, VThread, active


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
    """Stop these threads for good, wherever they are (a crashed process). What they did, also
    those that had already ended, happens before what the caller does next."""
    sched = active()
    if sched is not None:
        vts = _vthreads(threads)
        _record(sched, events.ThreadsCrashed, vts)
        sched.kill(vts)


def freeze(threads: Iterable[threading.Thread]) -> None:
    """Hold these threads still while others run and time passes (a paused process)."""
    sched = active()
    if sched is not None:
        vts = _vthreads(threads)
        _record(sched, events.ThreadsFrozen, vts)
        sched.freeze(vts, True)


def unfreeze(threads: Iterable[threading.Thread]) -> None:
    sched = active()
    if sched is not None:
        vts = _vthreads(threads)
        _record(sched, events.ThreadsThawed, vts)
        sched.freeze(vts, False)


def _record(sched: Scheduler, kind: type[events.ThreadsCrashed | events.ThreadsFrozen | events.ThreadsThawed],
            vts: list[VThread]) -> None:
    if sched.observer is not None:
        sched.observer.event(sched, kind(tuple(vt.index for vt in vts), tuple(vt.name for vt in vts)))


def set_group(name: str) -> None:
    """Put the calling thread in group ``name`` (a simulated node or process).

    Threads it starts from now on inherit the group. The HTML timeline draws the lanes of
    one group side by side under the group's name. Inert outside a run.
    """
    sched = active()
    if sched is not None:
        sched.current.group = name
        if sched.observer is not None:
            sched.observer.event(sched, events.Grouped(name))


def annotate(kind: str, **fields: Any) -> None:
    """Record an event of the simulated system for the HTML timeline (docs/timeline.md).

    Costs nothing unless the run is being recorded (a replay, or the final run of an
    exploration). Kinds the timeline draws specially: ``send`` and ``recv`` (matched by
    ``msg``, drawn as an arrow), ``drop``, ``crash``, ``restart``, ``pause``, ``resume``
    and ``fsync`` (``stall=`` seconds); any other kind is shown as a labelled marker.
    Field values should be str, int, float, bool or None (others are shown with ``str``).
    """
    sched = active()
    if sched is not None and sched.observer is not None:
        sched.observer.event(sched, events.Noted(kind, fields))
