"""Files the tool writes (the JSON report, the timeline): checked before any work, written whole.

A path is taken relative to where the command was started (the program under test may
change directory), checked by creating a file beside it before exploring (so a path that
cannot be written costs nothing), and written through a temporary file renamed into
place, so a reader never sees half a report and an old one is only replaced by a whole one.
"""

from __future__ import annotations

import os
import tempfile


class Unwritable(Exception):
    """A path the tool cannot write; its message is one line for the user."""


def checked_path(path: str, what: str) -> str:
    """``path`` made absolute, after checking that a file can be written there."""
    absolute = os.path.abspath(path)
    directory = os.path.dirname(absolute)
    if os.path.isdir(absolute):
        raise Unwritable(f"{what} {path}: is a directory")
    if not os.path.isdir(directory):
        raise Unwritable(f"{what} {path}: no such directory {directory}")
    if os.path.exists(absolute) and not os.access(absolute, os.W_OK):
        raise Unwritable(f"{what} {path}: permission denied")
    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".interleave-check-"):
            pass
    except OSError as exc:
        raise Unwritable(f"{what} {path}: cannot write in {directory} ({exc.strerror or exc})") from None
    return absolute


def write_atomically(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory, then rename."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(temporary, _mode_for(path))
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


def _mode_for(path: str) -> int:
    """The mode a plain ``open(path, "w")`` would give: the old file's, or 0o666 less the umask."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask
