"""Random walk: at every decision, a uniformly random runnable thread."""

from __future__ import annotations

import random

from ..decisions import PAUSE, DecisionPoint, Option
from .base import Strategy

#: Chance of letting time pass at a decision where a timer is pending.
JUMP_PROBABILITY = 0.02
#: Chance of injecting a fault at a fault decision.
FAULT_PROBABILITY = 0.05


def run_rng(seed: int, run_index: int, salt: str) -> random.Random:
    """A generator that depends only on (seed, run, salt): the same in every process."""
    return random.Random(f"{salt}:{seed}:{run_index}")


def random_fault(rng: random.Random, point: DecisionPoint) -> Option:
    """A sampled answer to a fault decision (or a draw): now and then a fault, uniformly
    which one (the default, no fault, is the first option)."""
    return rng.choice(point.options[1:]) if rng.random() < FAULT_PROBABILITY else point.default


class RandomWalk(Strategy):
    name = "random"
    label = "random walk"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.rng = run_rng(seed, 0, self.name)

    def begin_run(self, run_index: int) -> bool:
        self.rng = run_rng(self.seed, run_index, self.name)
        return True

    def choose(self, point: DecisionPoint) -> Option:
        rng = self.rng
        if not point.is_scheduling():
            return random_fault(rng, point)
        options = point.options
        if options[-1] is PAUSE:
            if rng.random() < JUMP_PROBABILITY:
                return PAUSE
            return options[int(rng.random() * (len(options) - 1))]
        return options[int(rng.random() * len(options))]
