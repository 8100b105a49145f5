"""File locks during a run: ``fcntl.flock``, ``fcntl.lockf`` and the locks of ``fcntl.fcntl``, each run's own.

A run's threads are greenlets of one OS thread. Taken for real, an ``flock`` one thread holds
blocks the whole process when another thread of the run asks for it, and between worker
processes exploring the same program at once a lock at a fixed path makes one run wait for
another's (or, polled with ``LOCK_NB`` as the ``filelock`` package does, time out in virtual
time). So during a run no file lock is taken for real: this module keeps them in a table of
the run, with the semantics the kernel gives the threads of one process:

* ``flock`` belongs to the open file (here: its descriptor). Two descriptors of one file
  exclude each other, shared locks share, a descriptor that locks again converts its lock,
  and the lock goes with ``LOCK_UN`` or when the descriptor is closed.
* ``lockf`` and ``fcntl``'s ``F_SETLK``/``F_SETLKW`` (POSIX record locks) belong to the
  process: the threads of one process never exclude each other with them, so during a run
  they only check their descriptor, and ``F_GETLK`` finds no conflicting lock.
* ``fcntl``'s ``F_OFD_SETLK``/``F_OFD_SETLKW`` (open file description locks) belong to the open
  file, as ``flock`` does, in a table of their own (Linux keeps them apart from ``flock``'s).
  A lock of the whole file is kept as ``flock``'s are; one of a byte range stops the run as
  something interleave cannot schedule, rather than be taken for real.

``os.close`` releases at once. A file object closed by its own ``close`` (the end of a
``with open(...)`` block) is not seen closing: a waiting thread looks again whenever the run
would otherwise wait for time to pass, and once nothing but such waits is left and every
lock waited for is still held, the waits stop looking, so a true deadlock is reported as one.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import sys
from dataclasses import dataclass
from typing import Any

from . import primitives as P
from .failures import _short
from .scheduler import Scheduler, VThread, active

_real_flock = fcntl.flock
_real_lockf = fcntl.lockf
_real_fcntl = fcntl.fcntl
_real_close = os.close

#: How long (virtual seconds) a thread waiting for a file lock waits before it looks again
#: whether the holder's file was closed without ``LOCK_UN``.
RECHECK = 0.001

_LOCK_OPERATIONS = (fcntl.LOCK_SH, fcntl.LOCK_EX, fcntl.LOCK_UN)


@dataclass(slots=True)
class _Hold:
    fd: int
    file: Any  # the file object the program passed, or None for a bare descriptor
    exclusive: bool
    thread: VThread


class FileLock:
    """One file's ``flock`` during a run: who holds it and who waits for it."""

    __slots__ = ("identity", "label", "call", "holds", "waiters")

    def __init__(self, identity: tuple[int, int], label: str, call: str = "fcntl.flock") -> None:
        self.identity = identity
        self.label = label
        self.call = call  # how a thread blocked on it is said to wait (reports, timeline)
        self.holds: dict[int, _Hold] = {}  # by descriptor
        self.waiters: list[VThread] = []

    @property
    def holder(self) -> VThread | None:
        """A thread that holds it (the exclusive holder, if any), for reports."""
        holds = sorted(self.holds.values(), key=lambda hold: not hold.exclusive)
        return holds[0].thread if holds else None

    def blockers(self, sched: Scheduler, fd: int, exclusive: bool) -> list[_Hold]:
        """The live holds that keep descriptor ``fd`` from taking it; holds whose file was closed go."""
        for hold in [h for h in self.holds.values() if not _open(h, self.identity)]:
            self.release(sched, hold, seen=False)
        return [h for h in self.holds.values() if h.fd != fd and (exclusive or h.exclusive)]

    def release(self, sched: Scheduler, hold: _Hold, seen: bool) -> None:
        """The hold goes, and its waiters look again. ``seen``: by the current thread now
        (``LOCK_UN``, ``os.close``, a conversion); else its holder's file was found closed, and
        the release is the holder's, ordered where the run noticed it."""
        del self.holds[hold.fd]
        if sched.noting:
            sched.note_sync("release", self, None if seen else hold.thread.index)
        for waiter in self.waiters:
            sched.wake(waiter)


def _open(hold: _Hold, identity: tuple[int, int]) -> bool:
    """The held descriptor still names the same open file."""
    if hold.file is not None and getattr(hold.file, "closed", False):
        return False
    try:
        stat = os.fstat(hold.fd)
    except OSError:
        return False
    return (stat.st_dev, stat.st_ino) == identity


class _RunTable:
    """The file locks of one run, by kind (``flock``'s or open file description locks) and file
    (device and inode)."""

    def __init__(self, sched: Scheduler) -> None:
        self.sched = sched
        self.locks: dict[tuple[str, int, int], FileLock] = {}
        #: Thread index -> the lock it waits for, and whether for an exclusive hold.
        self.waiting: dict[int, tuple[FileLock, bool]] = {}


_table: _RunTable | None = None


def _table_of(sched: Scheduler) -> _RunTable:
    global _table
    if _table is None or _table.sched is not sched:
        _table = _RunTable(sched)
    return _table


def _descriptor(file: Any) -> int:
    """As ``fcntl`` reads its first argument: an int, or an object with ``fileno()``."""
    if isinstance(file, int):
        fd = file
    elif hasattr(file, "fileno"):
        fd = file.fileno()
        if not isinstance(fd, int):
            raise TypeError("fileno() returned a non-integer")
    else:
        raise TypeError("argument must be an int, or have a fileno() method.")
    if fd < 0:
        raise ValueError(f"file descriptor cannot be a negative integer ({fd})")
    return fd


def _label(file: Any, fd: int) -> str:
    name = getattr(file, "name", None)
    if not isinstance(name, str):
        try:
            name = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            name = None
    return f"the file lock on {_short(name)}" if name else f"the file lock on descriptor {fd}"


def _check_operation(operation: Any) -> None:
    """Refuses an operation as the real call does."""
    if not isinstance(operation, int):
        raise TypeError(f"'{type(operation).__name__}' object cannot be interpreted as an integer")
    if operation & ~fcntl.LOCK_NB not in _LOCK_OPERATIONS:
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))


def flock(file: Any, operation: int) -> None:
    sched = active()
    if sched is None:
        _real_flock(file, operation)
        return
    fd = _descriptor(file)
    os.fstat(fd)  # a closed descriptor fails as the real call does
    _check_operation(operation)
    P.before_lock_operation(sched, sys._getframe(1))
    _take(sched, file, fd, operation, "flock")


def _take(sched: Scheduler, file: Any, fd: int, operation: int, kind: str) -> None:
    """``flock(file, operation)`` in the run's table of ``kind``'s locks."""
    table = _table_of(sched)
    stat = os.fstat(fd)
    identity = (stat.st_dev, stat.st_ino)
    lock = table.locks.get((kind, *identity))
    if lock is None:
        label = _label(file, fd)
        lock = table.locks[(kind, *identity)] = (
            FileLock(identity, label) if kind == "flock"
            else FileLock(identity, label.replace("the file lock", "the record lock"), "fcntl.fcntl"))
    cur = sched.current
    own = lock.holds.get(fd)
    if operation & ~fcntl.LOCK_NB == fcntl.LOCK_UN:
        if own is not None:
            lock.release(sched, own, seen=True)
        return
    exclusive = operation & ~fcntl.LOCK_NB == fcntl.LOCK_EX
    if own is not None and (own.thread is not cur or own.exclusive != exclusive):
        # Another thread's descriptor of that number was closed and the number reused (a
        # descriptor shared by threads is ordered as if so), or a conversion, which Linux makes
        # as a release and a new lock: the old hold goes first.
        lock.release(sched, own, seen=own.thread is cur)
    while lock.blockers(sched, fd, exclusive):
        if sched.noting:
            sched.note_sync("try" if operation & fcntl.LOCK_NB else "block", lock)
        if operation & fcntl.LOCK_NB:
            sched.polled()  # the program polls the lock: the others run before it tries again
            raise BlockingIOError(errno.EWOULDBLOCK, os.strerror(errno.EWOULDBLOCK))
        table.waiting[cur.index] = (lock, exclusive)
        lock.waiters.append(cur)
        try:
            sched.block(lock, sched.clock.now + RECHECK if _may_be_released_unseen(table, cur) else None)
        finally:
            lock.waiters.remove(cur)
            del table.waiting[cur.index]
    lock.holds[fd] = _Hold(fd, None if isinstance(file, int) else file, exclusive, cur)
    if sched.noting:
        sched.note_sync("acquire", lock)


def _may_be_released_unseen(table: _RunTable, cur: VThread) -> bool:
    """Whether a file this thread waits for might yet be closed without the run seeing it:
    False only when nothing can happen in the run but waits for file locks, each still held."""
    sched = table.sched
    if any(i != cur.index and i not in table.waiting for i in sched.runnable):
        return True
    if any(vt.frozen for vt in sched.threads):
        return True
    if any(vt.index not in table.waiting for _, vt in sched.clock.pending()):
        return True
    # Another waiter that may take its lock now goes on (and may close a file).
    return any(not lock.blockers(sched, _NO_DESCRIPTOR, exclusive)
               for index, (lock, exclusive) in table.waiting.items() if index != cur.index)


#: A descriptor no hold has: every live hold of a lock counts against it.
_NO_DESCRIPTOR = -1


def lockf(fd: Any, cmd: int, len: int = 0, start: int = 0, whence: int = 0) -> Any:
    sched = active()
    if sched is None:
        return _real_lockf(fd, cmd, len, start, whence)
    os.fstat(_descriptor(fd))  # a closed descriptor fails as the real call does
    _check_operation(cmd)
    return None  # a POSIX record lock never excludes threads of the same process


#: ``struct flock``'s first field, ``l_type`` (a C short); the rest as Linux lays it out on
#: 64-bit machines: ``l_whence``, padding, ``l_start``, ``l_len``, ``l_pid``.
_FLOCK_TYPE = struct.Struct("h")
_FLOCK = struct.Struct("hh4xqqi4x")
_POSIX_SET = (fcntl.F_SETLK, fcntl.F_SETLKW)
_OFD_SET = tuple(getattr(fcntl, name) for name in ("F_OFD_SETLK", "F_OFD_SETLKW") if hasattr(fcntl, name))
_OFD_GET = getattr(fcntl, "F_OFD_GETLK", None)
_LOCK_COMMANDS = frozenset({*_POSIX_SET, fcntl.F_GETLK, *_OFD_SET, *([_OFD_GET] if _OFD_GET is not None else [])})
_TO_FLOCK = {fcntl.F_RDLCK: fcntl.LOCK_SH, fcntl.F_WRLCK: fcntl.LOCK_EX, fcntl.F_UNLCK: fcntl.LOCK_UN}


def fcntl_(fd: Any, cmd: int, arg: Any = 0) -> Any:
    """``fcntl.fcntl`` during a run: its record locks are the run's (see the module docstring)."""
    sched = active()
    if sched is None or cmd not in _LOCK_COMMANDS or not isinstance(arg, (bytes, bytearray)) or len(arg) < 2:
        return _real_fcntl(fd, cmd, arg)  # not a lock, or refused by the real call as it is
    descriptor = _descriptor(fd)
    os.fstat(descriptor)  # a closed descriptor fails as the real call does
    # The real call copies the argument into a zeroed buffer the size of the struct or more.
    raw = bytes(arg).ljust(_FLOCK.size, b"\0")
    l_type, whence, start, length, _ = _FLOCK.unpack_from(raw)
    if l_type not in _TO_FLOCK:
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
    if cmd in _POSIX_SET:
        return bytes(arg)  # a POSIX record lock never excludes threads of the same process
    if cmd == fcntl.F_GETLK:
        return _FLOCK_TYPE.pack(fcntl.F_UNLCK) + bytes(arg[_FLOCK_TYPE.size:])
    if (whence, start, length) != (os.SEEK_SET, 0, 0):
        sched.fail_uncontrolled(f"fcntl.fcntl({descriptor}, F_OFD_SETLK...) on a byte range ({start}, {length}): "
                                "only whole-file locks are modelled, and a real one would block the process")
    P.before_lock_operation(sched, sys._getframe(1))
    if cmd == _OFD_GET:
        table = _table_of(sched)
        stat = os.fstat(descriptor)
        lock = table.locks.get(("ofd", stat.st_dev, stat.st_ino))
        blockers = [] if lock is None or l_type == fcntl.F_UNLCK else lock.blockers(
            sched, descriptor, l_type == fcntl.F_WRLCK)
        if not blockers:
            return _FLOCK_TYPE.pack(fcntl.F_UNLCK) + bytes(arg[_FLOCK_TYPE.size:])
        found = fcntl.F_WRLCK if any(hold.exclusive for hold in blockers) else fcntl.F_RDLCK
        return _FLOCK.pack(found, os.SEEK_SET, 0, 0, -1)[:len(arg)] + bytes(arg[_FLOCK.size:])
    wait = 0 if cmd == getattr(fcntl, "F_OFD_SETLKW", None) else fcntl.LOCK_NB
    _take(sched, fd, descriptor, _TO_FLOCK[l_type] | wait, "ofd")
    return bytes(arg)


def close(fd: int) -> None:
    """``os.close`` during a run: the descriptor's ``flock`` goes with it."""
    sched = active()
    if sched is not None and _table is not None and _table.sched is sched:
        for lock in _table.locks.values():
            hold = lock.holds.get(fd)
            if hold is not None:
                lock.release(sched, hold, seen=True)
    _real_close(fd)


#: ``(module, attribute, controlled value)`` for :mod:`interleave.patching`.
STATIC: list[tuple[Any, str, Any]] = [(fcntl, "flock", flock), (fcntl, "lockf", lockf), (fcntl, "fcntl", fcntl_),
                                      (os, "close", close)]
#: Names a module may have bound before the run (``from fcntl import flock``).
REBOUND: list[tuple[Any, Any]] = [(_real_flock, flock), (_real_lockf, lockf), (_real_fcntl, fcntl_)]
