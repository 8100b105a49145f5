"""The store of failing schedules: kept under ``<rootdir>/.interleave/pytest/``, replayed first next time."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from ..output import write_atomically
from ..schedule import BadToken, Token

#: Kept failing schedules per test; the oldest go first.
KEEP_PER_TEST = 8


class KeptFailures:
    """Failing schedules of each test, one file per token, under ``.interleave/pytest/``.

    One directory per test (named by a hash of its node id) so that xdist workers never
    write the same file; each write is a rename, so a reader never sees half a token.

    The store never decides a test's outcome: an entry that cannot be read, or is not a
    token this interleave reads, is dropped with a note; a symbolic link anywhere in the
    store (a directory or an entry) is never followed, for reading or writing; and a store
    that cannot be written (a read-only checkout) only means the failure is not kept.
    """

    def __init__(self, rootdir: Path, note: Callable[[str], None] = lambda text: None) -> None:
        self.base = rootdir / ".interleave"
        self.root = self.base / "pytest"
        self.rootdir = rootdir
        self.note = note

    def _dir(self, nodeid: str) -> Path:
        return self.root / hashlib.sha256(nodeid.encode()).hexdigest()[:16]

    def _linked(self, directory: Path) -> bool:
        """True (with a note) when a directory of the store is a symbolic link: not followed."""
        for path in (self.base, self.root, directory):
            if path.is_symlink():
                self.note(f"{self.display(path)} is a symbolic link: interleave does not follow it, "
                          f"so no failing schedule is read from it or kept in it")
                return True
        return False

    def tokens(self, nodeid: str) -> list[tuple[Path, str]]:
        """The test's kept tokens, oldest first; unusable entries are dropped with a note."""
        directory = self._dir(nodeid)
        if self._linked(directory) or not directory.is_dir():
            return []
        try:
            entries = [p for p in directory.iterdir() if p.name.endswith(".token")]
        except OSError as exc:
            self.note(f"the kept failures in {self.display(directory)} cannot be listed ({exc.strerror or exc})")
            return []
        found = []
        for path in entries:
            what = f"the kept failure {self.display(path)}"
            if path.is_symlink():
                self.note(f"{what} is a symbolic link: interleave does not follow it; {self._drop_saying(path)}")
                continue
            try:
                text, mtime = _read_no_follow(path)
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not text"
                self.note(f"{what} cannot be read ({reason}); {self._drop_saying(path)}")
                continue
            try:
                Token.decode(text.strip())
            except BadToken as exc:
                self.note(f"{what} is not a replay token this interleave reads ({exc}); {self._drop_saying(path)}")
                continue
            found.append((mtime, path, text.strip()))
        return [(path, token) for _, path, token in sorted(found, key=lambda entry: entry[0])]

    def keep(self, nodeid: str, token: str) -> None:
        directory = self._dir(nodeid)
        if self._linked(directory):
            return
        try:
            directory.mkdir(parents=True, exist_ok=True)
            if not os.path.lexists(self.base / ".gitignore"):
                write_atomically(self.base / ".gitignore", "# interleave's kept failing schedules (pytest plugin)\n*\n")
            write_atomically(directory / "nodeid", nodeid + "\n")  # for people looking in
            path = directory / (hashlib.sha256(token.encode()).hexdigest()[:16] + ".token")
            write_atomically(path, token + "\n")  # newest: an old failure found again moves to the back
            for old, _ in self.tokens(nodeid)[:-KEEP_PER_TEST]:
                self.drop(old)
        except OSError as exc:
            # A read-only checkout still reports the failure; it just is not kept.
            self.note(f"the failing schedule was not kept under {self.display(self.root)} ({exc.strerror or exc})")

    def drop(self, path: Path) -> bool:
        """Remove an entry; False when the store cannot be written (it is passed over again next time)."""
        try:
            path.unlink(missing_ok=True)
        except OSError:
            return False
        return True

    def _drop_saying(self, path: Path) -> str:
        return "it was dropped" if self.drop(path) else "it was passed over (the store cannot be written)"

    def display(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.rootdir))
        except ValueError:
            return str(path)


def _read_no_follow(path: Path) -> tuple[str, float]:
    """A kept entry's text and modification time, refusing a symbolic link put in its place."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as f:
        return f.read(4096).decode("utf-8"), os.fstat(f.fileno()).st_mtime
