"""The default: no tuning needed. Members take turns run by run.

Bounded enumeration (up to 2 preemptions) finds shallow bugs systematically and, when it
finishes, lets the report say that no schedule within the bound fails; PCT at depths 2
and 3 and a random walk sample the rest. When the enumeration has covered every schedule
of the program, the exploration stops. The mix was chosen from the measurements in
``benchmarks/``.
"""

from __future__ import annotations

from typing import Any

from .base import Strategy
from .dfs import BoundedDFS
from .pct import PCT
from .random_walk import RandomWalk


class Portfolio(Strategy):
    name = "portfolio"

    def __init__(self, seed: int = 0, max_preemptions: int = 2) -> None:
        self.dfs = BoundedDFS(max_preemptions)
        self.members: list[Strategy] = [self.dfs, PCT(seed, 2), PCT(seed, 3), RandomWalk(seed)]
        self.current: Strategy = self.dfs
        self.turn = 0

    def begin_run(self, run_index: int) -> bool:
        if self.dfs.complete():
            return False
        for _ in range(len(self.members)):
            member = self.members[self.turn % len(self.members)]
            self.turn += 1
            if member.begin_run(run_index):
                self.current = member
                return True
        return False

    def choose(self, sched, options, default, preemptive):
        return self.current.choose(sched, options, default, preemptive)

    def end_run(self, result) -> None:
        self.current.end_run(result)

    def exhausted(self) -> bool:
        return self.dfs.exhausted()

    def summary(self) -> dict[str, Any]:
        return {
            "dfs": self.dfs.summary(),
            "pct": [m.summary() for m in self.members if isinstance(m, PCT)],
        }
