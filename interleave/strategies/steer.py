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

import sys

from ..failures import innermost_user_frame
from ..scheduler import JUMP, Deviation
from .base import Strategy, is_fault_decision
from .random_walk import run_rng
from .surw import SURW

#: Share of runs that mutate a corpus schedule rather than sample afresh.
MUTATE_SHARE = 0.5


def _line_of(frame) -> int:
    user = innermost_user_frame(frame)
    return user.f_lineno if user is not None else -1


class Steer(Strategy):
    name = "steer"
    label = "steer"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.base = SURW(seed)
        self.rng = run_rng(seed, 0, self.name)
        self.corpus: list[list[Deviation]] = []
        self.pairs: set[tuple[int, int]] = set()
        self.run_pairs: set[tuple[int, int]] = set()
        self.plan: dict[tuple[int, int, int], int] = {}

    def begin_run(self, run_index: int) -> bool:
        self.base.begin_run(run_index)
        self.rng = run_rng(self.seed, run_index, self.name)
        self.run_pairs = set()
        self.plan = {}
        if self.corpus and self.rng.random() < MUTATE_SHARE:
            parent = self.rng.choice(self.corpus)
            keep = [d for d in parent if self.rng.random() < 0.8]
            self.plan = {d.key(): d.choice for d in keep}
        return True

    def choose(self, sched, options, default, preemptive):
        planned = self.plan.get(sched.decision_key()) if self.plan else None
        if planned is not None and planned in options:
            choice = planned
        elif self.plan:
            choice = default  # replaying a corpus schedule: its other choices stay default
        else:
            choice = self.base.choose(sched, options, default, preemptive)
        if not is_fault_decision(options) and choice not in (JUMP, sched.current.index):
            target = sched.threads[choice].greenlet
            here = _line_of(sys._getframe(1))
            there = _line_of(target.gr_frame) if target is not None and target.gr_frame is not None else -1
            self.run_pairs.add((here, there))
        return choice

    def end_run(self, result) -> None:
        self.base.end_run(result)
        if not self.run_pairs <= self.pairs:
            self.pairs |= self.run_pairs
            self.corpus.append(list(result.deviations))
