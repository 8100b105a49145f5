"""Files a run changes, put back after it: every run starts from the files the first one found.

The runs of a program follow each other in a process and run side by side in worker
processes. A program that keeps state in files (a lock's marker file, a cache, a log) would
have each run see what earlier runs left, or what another worker's run is doing: its runs
would not repeat themselves, and its verdict would depend on the number of workers. So:

* before a run first changes a path (``open`` or ``os.open`` for writing, ``os.remove``,
  ``rename``, ``replace``, ``truncate``, ``link``, ``symlink``, ``mkdir``, ``rmdir``,
  ``shutil.rmtree``, and what is built on them: ``pathlib``, ``shutil``, ``tempfile``), the
  run's :class:`Journal` keeps what was there (a file's bytes and mode, a directory, a link,
  or nothing), and when the run ends every kept path is put back, the last changed first.
  The functions are replaced during runs (:data:`STATIC`), as the patcher replaces others: an
  audit hook would see every event (``sys._getframe`` among them) and cost a run 70% more;
* a run that changes files holds a lock shared by every process exploring the same program
  (a real ``flock`` of a file in the temporary directory) from its first change to its end,
  and once a process has seen its program change files, from the start of each run: no run
  sees another's files half-changed.

Not put back: what is changed through a directory descriptor (``dir_fd``; a tree that
``shutil.rmtree`` removes is kept whole before it goes), through a descriptor opened before
the run, by C code (``sqlite3``, a C extension's own writes), and metadata (times, owners).
A file too large to keep (:data:`MAX_KEPT_BYTES`) stops the run, named.
"""

from __future__ import annotations

import _thread
import builtins
import fcntl
import hashlib
import io
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .scheduler import active

# Taken before any run patches them (interleave.filelocks; a run's threads have idents of their own).
_real_flock = fcntl.flock
_os_thread = _thread.get_ident
_real_open = builtins.open

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

    def keep(self, *paths: Any) -> None:
        """Keeps what each path holds now, before the run first changes it."""
        for raw in paths:
            path = _absolute(raw)
            if path is None or path in self.kept or _special(path):
                continue
            _take_turn(self.key)  # first: another process's run may be changing it now
            before = _before(path)
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
    with _real_open(path, "rb") as f:
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


def _journal() -> Journal | None:
    """The journal of the run this thread is running, if any (another OS thread's files are not the run's)."""
    journal = _current
    return journal if journal is not None and _os_thread() == journal.thread else None


def begin(key: str) -> None:
    """A run of the program ``key`` (its path) starts in this thread."""
    global _current
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


# --------------------------------------------------------------- the functions that change files

_WRITE_MODES = frozenset("wax+")


def _open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
    journal = _journal()
    if journal is not None and isinstance(mode, str) and not _WRITE_MODES.isdisjoint(mode):
        journal.keep(file)
    return _real_open(file, mode, *args, **kwargs)


def _keeping(real: Callable[..., Any], *positions: int, dir_fds: tuple[str, ...] = ("dir_fd",),
             flags: bool = False) -> Callable[..., Any]:
    """``real``, keeping the paths at ``positions`` first (none through a directory descriptor;
    ``flags``: ``os.open``, which changes its path only when opened for writing)."""

    def keeping(*args: Any, **kwargs: Any) -> Any:
        journal = _journal()
        opened = args[1] if len(args) > 1 else kwargs.get("flags")
        if journal is not None and all(kwargs.get(name) is None for name in dir_fds) and (
                not flags or (isinstance(opened, int) and opened & _WRITING)):
            journal.keep(*(args[i] for i in positions if i < len(args)))
        return real(*args, **kwargs)

    keeping.__name__ = keeping.__qualname__ = real.__name__
    keeping.__doc__ = real.__doc__
    return keeping


def _rmtree(path: Any, *args: Any, **kwargs: Any) -> Any:
    journal = _journal()
    if journal is not None and kwargs.get("dir_fd") is None:
        journal.keep(*_tree(path))
    return _real_rmtree(path, *args, **kwargs)


_real_rmtree = shutil.rmtree
_TWO = ("src_dir_fd", "dst_dir_fd")
#: ``(module, attribute, replacement)`` for :mod:`interleave.patching`.
STATIC: list[tuple[Any, str, Any]] = [
    (builtins, "open", _open),
    (io, "open", _open),
    (os, "open", _keeping(os.open, 0, flags=True)),
    (os, "remove", _keeping(os.remove, 0)),
    (os, "unlink", _keeping(os.unlink, 0)),
    (os, "rmdir", _keeping(os.rmdir, 0)),
    (os, "mkdir", _keeping(os.mkdir, 0)),
    (os, "rename", _keeping(os.rename, 0, 1, dir_fds=_TWO)),
    (os, "replace", _keeping(os.replace, 0, 1, dir_fds=_TWO)),
    (os, "link", _keeping(os.link, 1, dir_fds=_TWO)),
    (os, "symlink", _keeping(os.symlink, 1)),
    (os, "truncate", _keeping(os.truncate, 0)),
    (shutil, "rmtree", _rmtree),
]
#: Names a module may have bound before the run (``from os import remove``).
REBOUND: list[tuple[Any, Any]] = [(getattr(module, name), value) for module, name, value in STATIC
                                  if module is not builtins and module is not io]
