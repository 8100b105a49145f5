"""PCT (probabilistic concurrency testing) with bug depth ``d``.

Every thread gets a random priority when it first appears; the highest-priority runnable
thread runs. ``d - 1`` change points, drawn uniformly over the expected number of
decisions ``k``, each drop the running thread's priority below all others. A bug of depth
``d`` is then found by each run with probability at least ``1 / (n * k**(d-1))``
(n threads, k steps). ``k`` is learnt from the runs seen so far.
"""

from __future__ import annotations

from ..decisions import PAUSE, DecisionPoint, FinishedRun, Option, run_thread
from .base import PctFigures, SearchSummary, Strategy
from .random_walk import random_fault, run_rng


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

    def begin_run(self, run_index: int) -> bool:
        self.rng = run_rng(self.seed, run_index, f"pct{self.depth}")
        self.priorities = {}
        self.decisions = 0
        self.lowered = 0
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
        if not point.is_scheduling():
            return random_fault(self.rng, point)
        self.decisions += 1
        while self.change_points and self.change_points[0] <= self.decisions:
            self.change_points.pop(0)
            self.lowered += 1
            self.priorities[run_thread(point.thread)] = self.depth - self.lowered - self.rng.random() * 0.001
        return max(point.options, key=self._priority)

    def end_run(self, result: FinishedRun) -> None:
        self.k = max(self.k, result.decisions)
        self.n = max(self.n, result.threads)

    def summary(self) -> SearchSummary:
        return SearchSummary(pct=(PctFigures(depth=self.depth, threads=self.n, steps_k=self.k),))
