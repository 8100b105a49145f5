"""The replay token that carries a run's schedule (its typed decisions, see :mod:`interleave.decisions`).

A token is ``4.<python>.<fingerprint>.<files>.<config>.<deviations>.<checksum>``:

* ``python``: the minor version it was made on (``311``), since line events differ
  between versions;
* ``fingerprint``: 8 hex digits of the program's source and function name (the target
  file, or a callable's code);
* ``files``: what the run executed besides: 24 bits of a digest (name and content) per
  user file, sorted, base32 (``0`` for none). A replay recomputes them for the files it
  executes and names those whose digest the token does not hold, so a run of an edited
  helper is never taken for a replay of the same program. Names are not in the token
  (they would make it long), only enough to recognise a file that did not change;
* ``config``: ``d`` for the default run configuration, else its compact code;
* ``deviations``: base32 of zigzag varints, eight per decision, in the order the run met
  them: its key (thread, step, sub), its option as :meth:`~interleave.decisions.Decision.code`
  gives it with its cost in the lowest bit (1: paid), and its place
  (:class:`~interleave.places.Place`: the digest of the line's text, the points seen there
  before, the line, the file), so a token reads back as the very schedule it was made from;
* ``checksum``: base32 of 8 bytes: a CRC of the run's steps (thread and line per step),
  so a replay of the same program that takes another path is detected instead of shown
  (a program edited since is replayed by place, where the path may differ); then a CRC of
  everything before it in the token (that first CRC included), so a token with any field
  altered is refused as corrupt before it runs.

Format 3, the one before, had no costs: it is still read (a kept failure stays replayable),
each decision paid where its kind says so and a switch to another thread taken as paid (a
preemption: format 3 cannot tell), and only format 4 is written.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import sys
import zlib
from dataclasses import dataclass

from .decisions import Decision, Key, RunThread, option_from_code
from .places import Place
from .program import BadInput
from .runner import RunConfig

VERSION = "4"
#: The format before, still read: the same fields, without the costs.
COSTLESS_VERSION = "3"
PYTHON = f"{sys.version_info[0]}{sys.version_info[1]}"
#: The place of a decision made where no place was noted (a token made by hand).
UNKNOWN_PLACE = Place(0, 0, 0, -1)
#: Bytes of a file's digest in the token.
FILE_DIGEST_BYTES = 3


class BadToken(BadInput):
    """A replay token that cannot be read."""


@dataclass(frozen=True)
class Token:
    python: str
    fingerprint: str
    config: RunConfig
    deviations: tuple[Decision, ...]
    #: CRC of the run's path (:func:`steps_checksum`).
    checksum: int
    #: Digests of the other user files the run executed (:func:`file_digest`).
    files: frozenset[bytes] = frozenset()
    #: Each decision's place (none known: no place for any).
    places: tuple[Place, ...] = ()

    def __post_init__(self) -> None:
        if self.places and len(self.places) != len(self.deviations):
            raise ValueError("a token has a place for every decision or for none")

    def file_index(self, digest: bytes | None) -> int:
        """A :class:`~interleave.places.Place`'s ``file`` for another user file of the run."""
        ordered = sorted(self.files)
        return ordered.index(digest) + 1 if digest in self.files else -1

    def encode(self) -> str:
        head = ".".join(self._fields()) + "."
        integrity = zlib.crc32(head.encode() + self.checksum.to_bytes(4, "big"))
        return head + _b32(self.checksum.to_bytes(4, "big") + integrity.to_bytes(4, "big"))

    def _fields(self) -> list[str]:
        config = "d" if self.config == RunConfig() else self.config.code()
        numbers: list[int] = []
        places = self.places or (UNKNOWN_PLACE,) * len(self.deviations)
        for d, place in zip(self.deviations, places):
            thread, steps, sub, option = d.code()
            numbers += [thread, steps, sub, _zigzag(option) << 1 | d.paid, place.text, place.seen, place.line,
                        place.file + 1]
        payload = _b32(_varints(numbers)) or "0"
        files = _b32(b"".join(sorted(self.files))) or "0"
        return [VERSION, self.python, self.fingerprint, files, config, payload]

    @classmethod
    def decode(cls, text: str) -> Token:
        parts = text.strip().split(".")
        if parts and parts[0].isdigit() and int(parts[0]) not in (int(VERSION), int(COSTLESS_VERSION)):
            age = "an older" if int(parts[0]) < int(VERSION) else "a newer"
            raise BadToken(f"this replay token is of {age} format ({parts[0]}) than this interleave reads "
                           f"({COSTLESS_VERSION} and {VERSION}); explore again for a new one")
        if len(parts) != 7 or parts[0] not in (VERSION, COSTLESS_VERSION):
            raise BadToken(f"corrupt replay token: expected 7 dot-separated fields starting with '{VERSION}.'")
        version, python, fingerprint, files_field, config_code, payload, checksum = parts
        decision = _decision if version == VERSION else _costless_decision
        try:
            sums = _unb32(checksum)
            if len(sums) != 8:
                raise ValueError("checksum of the wrong length")
            head = text.strip()[: -len(checksum)]
            if zlib.crc32(head.encode() + sums[:4]) != int.from_bytes(sums[4:], "big"):
                raise BadToken("corrupt replay token: it does not match its checksum (altered or cut short?)")
            config = RunConfig() if config_code == "d" else RunConfig.from_code(config_code)
            numbers = _read_varints(_unb32(payload)) if payload != "0" else []
            packed = _unb32(files_field) if files_field != "0" else b""
            if (len(numbers) % 8 or not python.isdigit() or len(fingerprint) != 8
                    or len(packed) % FILE_DIGEST_BYTES):
                raise ValueError("fields of the wrong length")
            deviations = tuple(decision(*numbers[i:i + 4]) for i in range(0, len(numbers), 8))
            places = tuple(Place(text, seen, line, file - 1)
                           for text, seen, line, file in (numbers[i + 4:i + 8] for i in range(0, len(numbers), 8)))
        except (ValueError, IndexError, binascii.Error):
            raise BadToken("corrupt replay token: its fields do not decode") from None
        files = frozenset(packed[i:i + FILE_DIGEST_BYTES] for i in range(0, len(packed), FILE_DIGEST_BYTES))
        token = cls(python, fingerprint, config, deviations, int.from_bytes(sums[:4], "big"), files, places)
        # Another spelling of the same bytes (case, spare bits) is refused; a format-3 token's
        # base32 fields are checked alone, as it is written no more.
        respelled = token.encode() == text.strip() if version == VERSION else all(
            field == "0" or _b32(_unb32(field)) == field for field in (files_field, payload, checksum))
        if not respelled:
            raise BadToken("corrupt replay token: it is not spelled as interleave writes it (altered?)")
        return token


def _decision(thread: int, steps: int, sub: int, code: int) -> Decision:
    key = Key(thread, steps, sub)
    return Decision(key, option_from_code(sub, _unzigzag(code >> 1)), bool(code & 1))


def _costless_decision(thread: int, steps: int, sub: int, code: int) -> Decision:
    """A format-3 decision: paid unless it keeps the running thread (a switch may have been free)."""
    key = Key(thread, steps, sub)
    option = option_from_code(sub, _unzigzag(code))
    return Decision(key, option, not (isinstance(option, RunThread) and option.thread == key.thread))


def file_digest(path: str) -> bytes | None:
    """A user file's digest for the token: its base name and content (None if unreadable).

    The base name, not the path, so a checkout moved elsewhere or replayed from another
    directory still matches.
    """
    try:
        with open(path, "rb") as f:
            content = f.read()
    except OSError:
        return None
    return hashlib.sha256(os.path.basename(path).encode() + b"\0" + content).digest()[:FILE_DIGEST_BYTES]


def steps_checksum(steps: list[tuple[int, int]]) -> int:
    """CRC of (thread, line) per step: equal for two runs that took the same path."""
    crc = 0
    for thread, line in steps:
        crc = zlib.crc32(f"{thread}:{line};".encode(), crc)
    return crc


def _zigzag(n: int) -> int:
    return 2 * n if n >= 0 else -2 * n - 1


def _unzigzag(n: int) -> int:
    return n // 2 if n % 2 == 0 else -(n + 1) // 2


def _varints(numbers: list[int]) -> bytes:
    out = bytearray()
    for n in numbers:
        while True:
            byte = n & 0x7F
            n >>= 7
            if n:
                out.append(byte | 0x80)
            else:
                out.append(byte)
                break
    return bytes(out)


def _read_varints(data: bytes) -> list[int]:
    numbers, value, shift = [], 0, 0
    for byte in data:
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            numbers.append(value)
            value, shift = 0, 0
    if shift:
        raise ValueError("truncated varint")
    return numbers


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode().rstrip("=").lower()


def _unb32(text: str) -> bytes:
    if not text.isalnum():
        raise ValueError("not base32")
    return base64.b32decode(text.upper() + "=" * (-len(text) % 8))
