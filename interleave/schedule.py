"""Schedules as data: the deviations of a run, and the replay token that carries them.

A token is ``1.<python>.<fingerprint>.<config>.<deviations>.<checksum>``:

* ``python``: the minor version it was made on (``311``), since line events differ
  between versions;
* ``fingerprint``: 8 hex digits of the program's source and function name;
* ``config``: ``d`` for the default run configuration, else its compact code;
* ``deviations``: base32 of zigzag varints, four per deviation (thread, step, sub, choice);
* ``checksum``: base32 of a CRC of the run's steps (thread and line per step), so a
  replay that takes another path is detected instead of shown.
"""

from __future__ import annotations

import base64
import binascii
import sys
import zlib
from dataclasses import dataclass

from .program import BadInput
from .runner import RunConfig
from .scheduler import Deviation

VERSION = "1"
PYTHON = f"{sys.version_info[0]}{sys.version_info[1]}"


class BadToken(BadInput):
    """A replay token that cannot be read."""


@dataclass(frozen=True)
class Token:
    python: str
    fingerprint: str
    config: RunConfig
    deviations: tuple[Deviation, ...]
    checksum: int

    def encode(self) -> str:
        config = "d" if self.config == RunConfig() else self.config.code()
        numbers: list[int] = []
        for d in self.deviations:
            numbers += [d.thread, d.steps, d.sub, _zigzag(d.choice)]
        payload = _b32(_varints(numbers)) or "0"
        checksum = _b32(self.checksum.to_bytes(4, "big"))
        return ".".join([VERSION, self.python, self.fingerprint, config, payload, checksum])

    @classmethod
    def decode(cls, text: str) -> Token:
        parts = text.strip().split(".")
        if len(parts) != 6 or parts[0] != VERSION:
            raise BadToken("corrupt replay token: expected 6 dot-separated fields starting with '1.'")
        _, python, fingerprint, config_code, payload, checksum = parts
        try:
            config = RunConfig() if config_code == "d" else RunConfig.from_code(config_code)
            numbers = _read_varints(_unb32(payload)) if payload != "0" else []
            crc = int.from_bytes(_unb32(checksum), "big")
        except (ValueError, IndexError, binascii.Error):
            raise BadToken("corrupt replay token: its fields do not decode") from None
        if len(numbers) % 4 or not python.isdigit() or len(fingerprint) != 8:
            raise BadToken("corrupt replay token: its fields do not decode")
        deviations = tuple(
            Deviation(numbers[i], numbers[i + 1], numbers[i + 2], _unzigzag(numbers[i + 3]), 0)
            for i in range(0, len(numbers), 4)
        )
        return cls(python, fingerprint, config, deviations, crc)


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
