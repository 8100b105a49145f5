"""Coverage-steered sampling: favour schedules that showed new interleavings.

Interleaving coverage is the set of *switch pairs*: the line where a thread was left and
the line of the thread that ran instead. A run that adds new pairs joins a corpus; later
runs either sample afresh (the SURW-style walk) or take a corpus schedule and keep a
random part of its deviations.

Measured against the plain SURW-style walk (``benchmarks/steering.py``, median runs to the
first failure over 8 seeds): it found the bug that needs 20 consecutive steps sooner, but
several examples later, so it is not in the default portfolio; ``--strategy steer``
selects it.
"""

from __future__ import annotations

from ..decisions import Decision, DecisionPoint, FinishedRun, Option, Plan, RunThread
from .base import Strategy
from .random_walk import run_rng
from .surw import SURW

#: Share of runs that mutate a corpus schedule rather than sample afresh.
MUTATE_SHARE = 0.5


class Steer(Strategy):
    name = "steer"
    label = "steer"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.base = SURW(seed)
        self.rng = run_rng(seed, 0, self.name)
        self.corpus: list[list[Decision]] = []
        self.pairs: set[tuple[int, int]] = set()
        self.run_pairs: set[tuple[int, int]] = set()
        self.plan = Plan(())

    def begin_run(self, run_index: int) -> bool:
        self.base.begin_run(run_index)
        self.rng = run_rng(self.seed, run_index, self.name)
        self.run_pairs = set()
        self.plan = Plan(())
        if self.corpus and self.rng.random() < MUTATE_SHARE:
            parent = self.rng.choice(self.corpus)
            self.plan = Plan([d for d in parent if self.rng.random() < 0.8])
        return True

    def choose(self, point: DecisionPoint) -> Option:
        if self.plan:
            # Replaying a corpus schedule: its other choices stay default.
            choice = self.plan.follow(point) or point.default
        else:
            choice = self.base.choose(point)
        if isinstance(choice, RunThread) and choice.thread != point.thread:
            self.run_pairs.add((_line(point, point.thread), _line(point, choice.thread)))
        return choice

    def end_run(self, result: FinishedRun) -> None:
        self.base.end_run(result)
        if not self.run_pairs <= self.pairs:
            self.pairs |= self.run_pairs
            self.corpus.append(list(result.deviations))


def _line(point: DecisionPoint, thread: int) -> int:
    where = point.where(thread)
    return where[1] if where is not None else -1
