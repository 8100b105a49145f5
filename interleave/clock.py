"""Virtual time: a clock that only moves when the scheduler says so.

Every run starts at the same instant. Time advances only when the scheduler jumps to
the next deadline (all threads blocked, or a pause chosen by the strategy), so
``time.sleep(3600)`` costs nothing and every run sees the same timestamps.
"""

from __future__ import annotations

import heapq
from typing import Any

#: What ``time.monotonic()`` and ``time.perf_counter()`` return when a run starts.
MONOTONIC_START = 10_000.0
#: What ``time.time()`` returns when a run starts (2026-01-01T00:00:00Z).
EPOCH_START = 1_767_225_600.0


class Clock:
    """Virtual monotonic time plus the deadlines of timed waits.

    Deadlines are kept in a heap with lazy deletion: cancelling a timer bumps the
    waiter's generation, and stale heap entries are skipped when they surface.
    """

    __slots__ = ("now", "deadlines", "_seq")

    def __init__(self) -> None:
        self.now = MONOTONIC_START
        #: ``(deadline, sequence, waiter, generation)``, a heap; some entries may be stale, so
        #: an empty list says there is no timer, and :meth:`has_timers` whether there is one.
        self.deadlines: list[tuple[float, int, Any, int]] = []
        self._seq = 0

    def wall(self) -> float:
        return EPOCH_START + (self.now - MONOTONIC_START)

    def add(self, deadline: float, waiter: Any, generation: int) -> None:
        self._seq += 1
        heapq.heappush(self.deadlines, (deadline, self._seq, waiter, generation))

    def _drop_stale(self) -> None:
        heap = self.deadlines
        while heap and heap[0][2].timer_generation != heap[0][3]:
            heapq.heappop(heap)

    def next_deadline(self) -> float | None:
        self._drop_stale()
        return self.deadlines[0][0] if self.deadlines else None

    def has_timers(self) -> bool:
        if not self.deadlines:  # asked at nearly every step, and nearly always empty
            return False
        self._drop_stale()
        return bool(self.deadlines)

    def pending(self) -> list[tuple[float, Any]]:
        """Every live deadline and its waiter, earliest first."""
        return [(deadline, waiter) for deadline, _, waiter, generation in sorted(self.deadlines)
                if waiter.timer_generation == generation]

    def advance_to_next(self) -> list[Any]:
        """Jump to the earliest deadline and return every waiter due then, in timer order."""
        deadline = self.next_deadline()
        if deadline is None:
            return []
        if deadline > self.now:
            self.now = deadline
        due = []
        heap = self.deadlines
        while heap and heap[0][0] <= self.now:
            _, _, waiter, generation = heapq.heappop(heap)
            if waiter.timer_generation == generation:
                due.append(waiter)
        return due
