"""Data races: two threads' accesses to one field, at least one a write, that no
synchronization orders.

Happens-before comes from the controlled locks alone: every stdlib primitive (Condition,
Event, Semaphore, Barrier, the queues, ``Thread.join``, futures) is built on them, so a
release ordering the next acquire of the same lock carries every hand-off those make. A
thread's start orders what its parent did before it; its end releases the lock that
``join`` acquires. The detector reads a run's access and synchronization records
(``RunResult.accesses`` and ``syncs``) with plain vector clocks: runs are short.

One call of a builtin container's method (``items.append(x)``, ``len(items)``,
``counts.get(k)``) is atomic in CPython: two such calls never race with each other; a
plain read or write of the same container's items does race with them.

A line of the program marked ``# interleave: racy`` is racy by design: no race with an
access there is reported. So is a field passed to :func:`racy` during the run.
"""

from __future__ import annotations

import linecache
from dataclasses import dataclass
from typing import Any

from . import access
from .failures import Failure, _short, source_line
from .files import is_threading_internal

RACE = "race"

#: The comment that marks a line racy by design.
RACY_MARK = "interleave: racy"

@dataclass(frozen=True)
class Access:
    """One side of a race: which access of the run's log, by whom, where."""

    index: int  # in the run's access log
    thread: int
    site: int
    write: bool

    @property
    def where(self) -> tuple[str, int]:
        site = access.SITES[self.site]
        return site.filename, site.lineno


@dataclass(frozen=True)
class Race:
    """Two unordered conflicting accesses to one field; ``first`` came first in the run."""

    first: Access
    second: Access
    key: Any
    field: Any

    def place(self) -> tuple[Any, ...]:
        """The pair of locations, in either order: a race is reported once per pair."""
        ends = sorted(((*self.first.where, self.first.write), (*self.second.where, self.second.write)))
        return (RACE, *ends)


class RaceFailure(Failure):
    """A data race found in a run: a failure like any other (shrunk, replayed, traced)."""

    def __init__(self, race: Race, what: str, names: tuple[str, str], message: str, details: str) -> None:
        super().__init__(RACE, message, details, race.place(), names[1])
        self.race = race
        self.what = what  # the field, in the program's terms
        self.names = names  # the first access's thread's, then the second's

    def marks(self, step_of: dict[int, int], touched_after: Any) -> dict[int, str]:
        """The notes a trace puts under the two accesses' steps (``step_of``: access index
        to step index; ``touched_after(step, thread, key, field)``: the next step of that
        thread touching that field, or None)."""
        first, second = self.race.first, self.race.second
        a, b = self.names
        at_first, at_second = step_of.get(first.index), step_of.get(second.index)
        if at_first is None or at_second is None:
            return {}
        notes = {at_first: f"race: {a} {_verb(first)} {self.what} here, unordered with {b}'s {_noun(second)} "
                           f"at step {at_second + 1}"}
        later = touched_after(at_second, first.thread, self.race.key, self.race.field)
        if later is not None:
            notes[at_second] = (f"race: {b} {_verb(second)} {self.what} between {a}'s {_noun(first)} "
                                f"(step {at_first + 1}) and its next access (step {later + 1}), unordered with both")
        else:
            notes[at_second] = (f"race: {b} {_verb(second)} {self.what} here, unordered with {a}'s {_noun(first)} "
                                f"at step {at_first + 1}")
        return notes


def find(accesses: list[tuple[int, Any, Any, bool, int]], syncs: list[tuple[int, int, str, int]],
         ignored: frozenset[tuple[Any, Any]] = frozenset()) -> list[Race]:
    """Every race of one run, one per pair of locations, in the order the run met them.

    ``ignored`` holds ``(object key, field)`` pairs (field None: every field) not to check.
    """
    clocks: dict[int, dict[int, int]] = {}
    released: dict[int, dict[int, int]] = {}
    # Per object, per field: the last epoch of each (thread, site, write) that touched it.
    last: dict[Any, dict[Any, dict[tuple[int, int, bool], tuple[int, int]]]] = {}
    found: dict[tuple[Any, ...], Race] = {}
    pending = 0

    def clock(thread: int) -> dict[int, int]:
        vc = clocks.get(thread)
        if vc is None:
            vc = clocks[thread] = {thread: 1}
        return vc

    def synchronize(upto: int) -> None:
        nonlocal pending
        while pending < len(syncs) and syncs[pending][0] <= upto:
            _, thread, kind, obj = syncs[pending]
            pending += 1
            vc = clock(thread)
            if kind == "acquire":
                _join(vc, released.get(obj))
            elif kind == "release":
                released[obj] = dict(vc)
                vc[thread] += 1
            elif kind == "spawn":
                _join(clock(obj), vc)
                vc[thread] += 1
            elif kind == "outlive":  # the thread killed another one, which never runs again
                _join(vc, clocks.get(obj))

    for index, (thread, key, field, write, site) in enumerate(accesses):
        synchronize(index)
        if (key, field) in ignored or (key, None) in ignored or _racy_site(site):
            continue
        vc = clock(thread)
        atomic = access.SITES[site].kind == "call"
        fields = last.setdefault(key, {})
        if field is None:
            checked = list(fields.items())  # the whole object: every field of it conflicts
        else:
            checked = [(f, fields[f]) for f in (field, None) if f in fields]
        for _, seen in checked:
            for (other, other_site, other_write), (epoch, other_index) in seen.items():
                if other == thread or not (write or other_write) or epoch <= vc.get(other, 0):
                    continue
                if atomic and access.SITES[other_site].kind == "call":
                    continue
                race = Race(Access(other_index, other, other_site, other_write), Access(index, thread, site, write),
                            key, field if field is not None else accesses[other_index][2])
                found.setdefault(race.place(), race)
        fields.setdefault(field, {})[(thread, site, write)] = (vc[thread], index)
    return list(found.values())


def _join(into: dict[int, int], other: dict[int, int] | None) -> None:
    if other:
        for thread, time in other.items():
            if into.get(thread, 0) < time:
                into[thread] = time


#: Per site (sites are registered anew when a file is instrumented again): racy by design?
_racy_sites: dict[int, bool] = {}


def _racy_site(site: int) -> bool:
    """A site on a line marked racy by design, or in the stdlib's synchronized code."""
    answer = _racy_sites.get(site)
    if answer is None:
        where = access.SITES[site]
        linecache.checkcache(where.filename)  # the file may have been edited since it was cached
        answer = _racy_sites[site] = (is_threading_internal(where.filename)
                                      or RACY_MARK in linecache.getline(where.filename, where.lineno))
    return answer


def racy(obj: Any, field: str | None = None) -> None:
    """Mark ``obj``'s ``field`` (every field, with None) racy by design for this run: call it
    where the object is made. Outside a run it does nothing."""
    sched = access._sched()
    if sched is None or not sched.noting:
        return
    sched.extra.setdefault("racy", set()).add((sched.object_key(obj), field))


def failure(race: Race, names: list[str], objects: list[Any], stacks: dict[int, list[tuple[str, int]]]) -> RaceFailure:
    """The race as a failure: the field in the program's terms, both threads, both places."""
    first, second = race.first, race.second
    obj = objects[race.key] if isinstance(race.key, int) and race.key < len(objects) else race.key
    # Named from the write's site where it has one (a container's read-only test has no name of its own).
    named = [access.describe(side.site, obj, race.field) for side in sorted((first, second), key=lambda s: not s.write)]
    what = next((name for name in named if access.HELPER not in name), named[0])
    a, b = names[first.thread], names[second.thread]
    message = (f"data race on {what}: {b} {_verb(second)} it at {_where(second)} and {a} "
               f"{_verb(first)} it at {_where(first)}, with no synchronization between them")
    lines = [f"Data race on {what}: two threads access it, at least one writes, and no lock, join, queue, "
             "event or other synchronization orders the two accesses.", ""]
    for name, side in ((a, first), (b, second)):
        filename, lineno = side.where
        lines.append(f"  {name} {_verb(side)} {what} at {_short(filename)}:{lineno}: {source_line(filename, lineno)}")
        for frame_file, frame_line in stacks.get(side.index, [])[:-1][::-1]:
            lines.append(f"      called from {_short(frame_file)}:{frame_line}: {source_line(frame_file, frame_line)}")
    lines += ["", f"Racy by design? End the line with  # {RACY_MARK}  (or call interleave.racy(obj, 'field'))."]
    return RaceFailure(race, what, (a, b), message, "\n".join(lines))


def _verb(side: Access) -> str:
    return "writes" if side.write else "reads"


def _noun(side: Access) -> str:
    return "write" if side.write else "read"


def _where(side: Access) -> str:
    filename, lineno = side.where
    return f"{_short(filename)}:{lineno}"


def check(sched: Any) -> list[Race]:
    """The races of the run ``sched`` just made (it noted its accesses)."""
    return find(sched.access_log, sched.sync_log, frozenset(sched.extra.get("racy", ())))


def first_failure(sched: Any, races: list[Race], stacks: dict[int, list[tuple[str, int]]]) -> RaceFailure:
    return failure(races[0], [vt.name for vt in sched.threads], sched._keepalive, stacks)
