"""Where a decision was made in the program's code: what lets a schedule outlive an edit.

A decision's key (thread, steps, sub) names it by how many steps its thread had taken:
exact on the program it was made on, and moved by any edit that adds a step (a debug
print of a shared value, a log call). Its *place* names it by the code instead: a digest
of the code of the line its thread stood on (its tokens, without comment or spacing, with
the function and the file's base name), and how many decision points of that thread and
kind had been at that code before. Comments, blank lines, prints and logging added
elsewhere leave every place as it was, so a replay by place follows the same interleaving
on the edited program. The line's number is kept only to say where the schedule expected
a thread when it no longer fits.

This module sits below the strategies; it knows decision points, not the scheduler.
"""

from __future__ import annotations

import io
import linecache
import os
import tokenize
import zlib
from types import CodeType
from typing import NamedTuple

from .decisions import DecisionPoint, Where
from .files import CodeFacts

#: Bits of a line's digest a token keeps. Two texts that share a digest are counted as one
#: place: their decision points are still told apart by their order.
TEXT_BITS = 20
#: The place of a thread with no code of the program's on its stack (it ended, or is inside
#: a library's thread): told apart by its order alone.
NO_TEXT = 0


class Place(NamedTuple):
    """A decision's place as a token keeps it."""

    #: Digest of the line's source text, its function's name and its file's base name.
    text: int
    #: Decision points of the same thread and kind (the key's ``sub``) at the same text before it.
    seen: int
    #: The line's number when the schedule was made (for messages only).
    line: int
    #: Which file: 0 the program's own (the one its fingerprint covers), k the k-th of the
    #: token's other files in their order there, -1 not known (for messages only).
    file: int


class Spot(NamedTuple):
    """What :class:`Locator` finds at one decision point."""

    text: int
    seen: int
    where: Where | None


def _digest_table(code: CodeType) -> dict[int, int]:
    return {}


#: Per code object, its lines' digests (each worked out once, when first asked).
_digests = CodeFacts(_digest_table)


def line_digest(code: CodeType, line: int) -> int:
    """The digest of line ``line`` of ``code``'s file, with the function and the file's base name."""
    table = _digests(code)
    digest = table.get(line)
    if digest is None:
        filename = code.co_filename
        linecache.checkcache(filename)  # the file may have been edited since it was read
        text = _code_text(linecache.getline(filename, line))
        name = getattr(code, "co_qualname", code.co_name)
        material = f"{os.path.basename(filename)}\0{name}\0{text}".encode()
        digest = table[line] = (zlib.crc32(material) & ((1 << TEXT_BITS) - 1)) or 1  # 0 is NO_TEXT
    return digest


def _code_text(line: str) -> str:
    """A line's code without its comment and spacing (a comment added at its end changes nothing)."""
    try:
        words = [t.string for t in tokenize.generate_tokens(io.StringIO(line).readline)
                 if t.type not in _NOT_CODE]
    except (tokenize.TokenError, SyntaxError):  # a line of a statement that goes on: its text as it is
        return line.strip()
    return " ".join(words)


_NOT_CODE = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
             tokenize.ENDMARKER}


class Locator:
    """The place of each decision point of one run, in the run's order."""

    def __init__(self) -> None:
        self._seen: dict[tuple[int, int, int], int] = {}

    def spot(self, point: DecisionPoint) -> Spot:
        """``point``'s place; each point is asked once, in order (the counts go on)."""
        thread, _, sub = point.key
        where = point.where(thread)
        text = line_digest(*where) if where is not None else NO_TEXT
        counted = (thread, text, sub)
        seen = self._seen.get(counted, 0)
        self._seen[counted] = seen + 1
        return Spot(text, seen, where)
