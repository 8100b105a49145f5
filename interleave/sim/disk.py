"""A disk whose writes survive a crash only once fsynced, and whose fsync may stall.

Two kinds of data, one rule: log records (``append``) and small files (``write``) are
visible to the running process at once, but only what an ``fsync`` covered survives
:meth:`Disk.lose_unsynced` (called when the owning node crashes). A disk made with
``stall > 0`` turns every fsync into a fault decision: option 1 makes it take ``stall``
seconds of virtual time.
"""

from __future__ import annotations

import time
from typing import Any

from ..control import annotate, choose


class Disk:
    """Durable storage of one node; it outlives the node's incarnations."""

    def __init__(self, name: str, stall: float = 0.0) -> None:
        self.name = name
        self.stall = stall
        self._log: list[Any] = []
        self._synced_len = 0
        self._files: dict[str, Any] = {}
        self._synced_files: dict[str, Any] = {}
        self._epoch = 0  # bumped at every crash: a stalled fsync of the dead process is void

    def append(self, record: Any) -> None:
        """Append to the log (lost on a crash unless a later fsync covers it)."""
        self._log.append(record)

    def write(self, key: str, value: Any) -> None:
        """Write a small file (its old value comes back after a crash unless fsynced)."""
        self._files[key] = value

    def read(self, key: str, default: Any = None) -> Any:
        return self._files.get(key, default)

    def log(self) -> list[Any]:
        """The log as the running process sees it (synced and unsynced records)."""
        return list(self._log)

    def synced(self) -> list[Any]:
        """The records that would survive a crash now."""
        return self._log[: self._synced_len]

    def fsync(self) -> None:
        """Make everything written so far durable; may stall (a fault decision)."""
        epoch, length, files = self._epoch, len(self._log), dict(self._files)
        if self.stall > 0 and choose(f"fsync stall on {self.name}"):
            annotate("fsync", stall=self.stall)
            time.sleep(self.stall)
        if epoch != self._epoch:
            return  # the process crashed during the stall: nothing it wrote became durable
        self._synced_len = max(self._synced_len, length)
        self._synced_files = files

    def lose_unsynced(self) -> None:
        """A crash: keep only what fsync made durable."""
        self._epoch += 1
        del self._log[self._synced_len:]
        self._files = dict(self._synced_files)

    def __repr__(self) -> str:
        return f"<Disk {self.name}: {self._synced_len}/{len(self._log)} records synced>"
