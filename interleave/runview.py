"""What the modules below the scheduler read of a run: its threads and the running one.

``failures`` (describing a deadlock or a hang) and ``progress`` (snapshots of the program's
state) take the scheduler as these protocols, so that they sit below it and import nothing
of it; :class:`interleave.scheduler.Scheduler` and its ``VThread`` are what they are given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class ThreadView(Protocol):
    """One virtual thread, as read from outside the scheduler."""

    @property
    def index(self) -> int: ...

    @property
    def name(self) -> str: ...

    @property
    def state(self) -> str: ...

    @property
    def frozen(self) -> bool: ...

    @property
    def waiting_on(self) -> Any: ...

    @property
    def greenlet(self) -> Any: ...


class RunView(Protocol):
    """A run in progress, as read from outside the scheduler."""

    @property
    def threads(self) -> Sequence[ThreadView]: ...

    @property
    def current(self) -> ThreadView: ...

    @property
    def max_steps(self) -> int: ...
