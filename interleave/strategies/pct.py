"""PCT (probabilistic concurrency testing) with bug depth ``d``.

Every thread gets a random priority when it first appears; the highest-priority runnable
thread runs. ``d - 1`` change points, drawn uniformly over the expected number of
decisions ``k``, each drop the running thread's priority below all others. A bug of depth
``d`` is then found by each run with probability at least ``1 / (n * k**(d-1))``
(n threads, k steps). ``k`` is learnt from the runs seen so far.
"""

from __future__ import annotations

from ..decisions import FAULT_SUB, PAUSE, DecisionPoint, FinishedRun, Option, run_thread
from .base import PctFigures, SearchSummary, Strategy
from .random_walk import random_fault, run_rng

#: A promise that lasts as long as the run (no change point is left).
STEADY_TO_THE_END = 1 << 62


class PCT(Strategy):
    name = "pct"

    def __init__(self, seed: int = 0, depth: int = 3) -> None:
        if depth < 1:
            raise ValueError("PCT depth must be at least 1")
        self.seed = seed
        self.depth = depth
        self.label = f"pct d={depth}"
        self.k = 20
        self.n = 2
        self.rng = run_rng(seed, 0, f"pct{depth}")
        self.priorities: dict[Option, float] = {}
        self.change_points: list[int] = []
        self.decisions = 0
        self.lowered = 0
        #: The last scheduling decision's options and answer: the scheduler offers the same
        #: options tuple again and again, and the answer stays until a priority changes.
        self._last_options: tuple[Option, ...] | None = None
        self._last_choice: Option = PAUSE

    def begin_run(self, run_index: int) -> bool:
        self.rng = run_rng(self.seed, run_index, f"pct{self.depth}")
        self.priorities = {}
        self.decisions = 0
        self.lowered = 0
        self._last_options = None
        count = self.depth - 1
        self.change_points = sorted(self.rng.randint(1, max(self.k, count)) for _ in range(count))
        return True

    def _priority(self, option: Option) -> float:
        p = self.priorities.get(option)
        if p is None:
            # A pause (time passing) competes like a thread, but rarely ranks first.
            p = self.rng.random() * (0.2 if option is PAUSE else 1.0) + self.depth
            self.priorities[option] = p
        return p

    def choose(self, point: DecisionPoint) -> Option:
        if point.key[2] >= FAULT_SUB:  # not point.is_scheduling(), written out: this runs at every step
            return random_fault(self.rng, point)
        self.decisions = point.decisions_before + 1
        change_points = self.change_points
        while change_points and change_points[0] <= self.decisions:
            change_points.pop(0)
            self.lowered += 1
            self.priorities[run_thread(point.thread)] = self.depth - self.lowered - self.rng.random() * 0.001
            self._last_options = None
        # Priorities change at change points only: until the next, the same options get the same answer.
        self.steady = change_points[0] - self.decisions - 1 if change_points else STEADY_TO_THE_END
        options = point.options
        if options is self._last_options:
            return self._last_choice
        choice = max(options, key=self._priority)
        self._last_options, self._last_choice = options, choice
        return choice

    def end_run(self, result: FinishedRun) -> None:
        self.k = max(self.k, result.decisions)
        self.n = max(self.n, result.threads)

    def summary(self) -> SearchSummary:
        return SearchSummary(pct=(PctFigures(depth=self.depth, threads=self.n, steps_k=self.k),))
