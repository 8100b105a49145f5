"""Files a run changes, put back after it: every run starts from the files the first one found.

The runs of a program follow each other in a process and run side by side in worker
processes. A program that keeps state in files (a lock's marker file, a cache, a log) would
have each run see what earlier runs left, or what another worker's run is doing: its runs
would not repeat themselves, and its verdict would depend on the number of workers. So:

* before a run first changes a path (opens it for writing, removes, renames, truncates or
  links it, makes a directory there, connects sqlite to it), the run's :class:`Journal` keeps
  what was there (a file's bytes and mode, a directory, a link, or nothing), and when the run
  ends every kept path is put back, the last changed first;
* a run that changes files holds a lock shared by every process exploring the same program
  (a real ``flock`` of a file in the temporary directory) from its first change to its end,
  and once a process has seen its program change files, from the start of each run: no run
  sees another's files half-changed.

Not put back: what is changed through a directory descriptor (``dir_fd``; a tree that
``shutil.rmtree`` removes is kept whole before it goes; ``os.open``'s audit event does not
say its ``dir_fd``, so a relative path it opens is taken as relative to the working
directory), through a descriptor opened before the run, and metadata (times, owners). A file too large to keep (:data:`MAX_KEPT_BYTES`) stops the run, named.
"""

from __future__ import annotations

import _thread
import fcntl
import hashlib
import os
import shutil
import stat
import sys
import tempfile
from dataclasses import dataclass
from typing import Any

from .scheduler import active

# Taken before any run patches them (interleave.filelocks; a run's threads have idents of their own).
_real_flock = fcntl.flock
_os_thread = _thread.get_ident

#: A file larger than this is not kept: its run stops rather than leave it changed.
MAX_KEPT_BYTES = 64 * 1024 * 1024

_WRITING = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


@dataclass(frozen=True, slots=True)
class _Before:
    """What a path held before the run changed it: ``kind`` is "absent", "file", "dir" or "link"."""

    kind: str
    data: bytes = b""
    mode: int = 0
    target: str = ""


def _absolute(path: Any) -> str | None:
    """The path to keep (None: a descriptor, opened before or noted when it was opened by path;
    or the interpreter's own bytecode cache, which it writes when it imports)."""
    if isinstance(path, int):
        return None
    try:
        absolute = os.path.abspath(os.fsdecode(path))
    except (TypeError, ValueError):
        return None
    return None if os.path.basename(os.path.dirname(absolute)) == "__pycache__" else absolute


def _plain(*dir_fds: Any) -> bool:
    """No directory descriptor given (the audit events say -1 for none)."""
    return all(fd is None or fd == -1 for fd in dir_fds)


def _paths(event: str, args: tuple[Any, ...]) -> list[Any]:
    """The paths an audited operation is about to change (none: it changes nothing it can put back)."""
    if event == "open":
        path, _, flags = args
        return [path] if isinstance(flags, int) and flags & _WRITING else []
    if event in ("os.remove", "os.rmdir"):
        return [args[0]] if _plain(args[1]) else []
    if event == "os.mkdir":
        return [args[0]] if _plain(args[2]) else []
    if event == "os.rename":
        return [args[0], args[1]] if _plain(args[2], args[3]) else []
    if event == "os.link":
        return [args[1]] if _plain(args[2], args[3]) else []
    if event == "os.symlink":
        return [args[1]] if _plain(args[2]) else []
    if event == "os.truncate":
        return [args[0]]
    if event == "shutil.rmtree":
        return _tree(args[0]) if _plain(args[1]) else []
    if event == "sqlite3.connect":
        database = args[0]
        if not isinstance(database, (str, bytes, os.PathLike)) or os.fsdecode(database) in ("", ":memory:"):
            return []
        name = os.fsdecode(database)
        return [name, *(name + suffix for suffix in ("-journal", "-wal", "-shm"))]
    return []


def _tree(top: Any) -> list[str]:
    """A tree about to be removed (through directory descriptors): every directory and file in it."""
    try:
        root = os.fsdecode(top)
    except (TypeError, ValueError):
        return []
    if os.path.islink(root) or not os.path.isdir(root):
        return [root]
    found = []
    for where, dirs, files in os.walk(root):
        found.append(where)
        links = [d for d in dirs if os.path.islink(os.path.join(where, d))]  # os.walk does not enter them
        found += [os.path.join(where, name) for name in files + links]
    return found


class Journal:
    """One run's changed paths, with what each held before."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.thread = _os_thread()  # the run's OS thread: other threads' files are not the run's
        self.kept: dict[str, _Before] = {}
        self.noting = False  # reading a file to keep it is no change of the run's

    def note(self, event: str, args: tuple[Any, ...]) -> None:
        for raw in _paths(event, args):
            path = _absolute(raw)
            if path is None or path in self.kept or _special(path):
                continue
            _take_turn(self.key)  # first: another process's run may be changing it now
            self.noting = True
            try:
                before = _before(path)
            finally:
                self.noting = False
            if before is not None:  # None: it went before it could be read
                self.kept[path] = before

    def undo(self) -> None:
        for path, before in reversed(self.kept.items()):
            try:
                _restore(path, before)
            except OSError:
                pass  # best effort: a path the program made unwritable stays as it is


def _special(path: str) -> bool:
    """A device, a pipe or a socket (``os.devnull``): nothing a run leaves there to put back."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode))


def _before(path: str) -> _Before | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return _Before("absent")
    except OSError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return _Before("link", target=os.readlink(path))
    if stat.S_ISDIR(st.st_mode):
        return _Before("dir")
    if not stat.S_ISREG(st.st_mode):
        return None
    if st.st_size > MAX_KEPT_BYTES:
        sched = active()
        if sched is not None:
            sched.fail_uncontrolled(f"a change of {path} ({st.st_size:,} bytes, more than interleave keeps to "
                                    "put it back after the run)")
        return None
    with open(path, "rb") as f:
        return _Before("file", f.read(), stat.S_IMODE(st.st_mode))


def _restore(path: str, before: _Before) -> None:
    if os.path.lexists(path) and not (before.kind == "dir" and os.path.isdir(path)
                                      and not os.path.islink(path)):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
    if before.kind == "file":
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(before.data)
        os.chmod(path, before.mode)
    elif before.kind == "dir":
        os.makedirs(path, exist_ok=True)
    elif before.kind == "link":
        os.symlink(before.target, path)


# --------------------------------------------------------------- the shared turn

#: Per program: the descriptor of its lock file in this process, opened once.
_turn_files: dict[str, int] = {}
_holding: str | None = None
#: Programs whose runs changed files in this process: their runs take the turn from the start.
_changes_files: set[str] = set()


def _open_turn(key: str) -> None:
    """Opens the program's lock file (before its first run here: ``tempfile`` takes a lock of its own)."""
    if key not in _turn_files:
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        _turn_files[key] = os.open(os.path.join(tempfile.gettempdir(), f"interleave-files-{digest}.lock"),
                                   os.O_RDWR | os.O_CREAT, 0o666)


def _take_turn(key: str) -> None:
    global _holding
    if _holding != key:
        _real_flock(_turn_files[key], fcntl.LOCK_EX)  # a real lock: held by another process's run, it waits for its end
        _holding = key
        _changes_files.add(key)


def _give_turn() -> None:
    global _holding
    if _holding is not None:
        _real_flock(_turn_files[_holding], fcntl.LOCK_UN)
        _holding = None


# --------------------------------------------------------------- the run's journal

_current: Journal | None = None
_hooked = False


def _audit(event: str, args: tuple[Any, ...]) -> None:
    journal = _current
    if journal is not None and not journal.noting and _os_thread() == journal.thread:
        journal.note(event, args)


def begin(key: str) -> None:
    """A run of the program ``key`` (its path) starts in this thread."""
    global _current, _hooked
    if not _hooked:
        sys.addaudithook(_audit)  # an audit hook cannot be removed: outside runs it does nothing
        _hooked = True
    _open_turn(key)
    if key in _changes_files:
        _take_turn(key)
    _current = Journal(key)


def end() -> None:
    """The run ended: what it changed is put back, and the turn goes to the next run."""
    global _current
    journal, _current = _current, None
    try:
        if journal is not None:
            journal.undo()
    finally:
        _give_turn()
