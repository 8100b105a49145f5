"""SURW-style weighted walk: every interleaving about equally likely.

A uniform random walk picks the next thread uniformly, so interleavings in which a thread
with many steps left runs in long stretches are exponentially unlikely. Weighting each
runnable thread by the number of steps it still has to take (learnt per thread from the
runs seen so far) makes every interleaving of non-blocking threads equally likely, which
is what the selectively uniform random walk of the research literature is built on. Here
every switch point is an event; pauses and faults keep the random walk's small rates.
"""

from __future__ import annotations

from ..decisions import PAUSE, DecisionPoint, FinishedRun, Option
from .base import Strategy
from .random_walk import JUMP_PROBABILITY, random_fault, run_rng


class SURW(Strategy):
    name = "surw"
    label = "surw"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.rng = run_rng(seed, 0, self.name)
        #: Most steps each thread (by creation index) has taken in a run so far.
        self.expected_steps: dict[int, int] = {}

    def begin_run(self, run_index: int) -> bool:
        self.rng = run_rng(self.seed, run_index, self.name)
        return True

    def choose(self, point: DecisionPoint) -> Option:
        rng = self.rng
        if not point.is_scheduling():
            return random_fault(rng, point)
        threads = point.options
        if threads[-1] is PAUSE:
            if rng.random() < JUMP_PROBABILITY:
                return PAUSE
            threads = threads[:-1]
        expected = self.expected_steps
        steps = point.thread_steps
        running, running_steps = point.key[0], point.key[1]
        # Written out (no max, no isinstance, the running thread's steps from the key): this
        # runs at nearly every step of a SURW run.
        weights = []
        total = 0
        for option in threads:
            thread = option.thread  # type: ignore[union-attr]
            left = expected.get(thread, 1) - (running_steps if thread == running else steps[thread])
            if left < 1:
                left = 1
            weights.append(left)
            total += left
        pick = rng.random() * total
        for thread, weight in zip(threads, weights):
            pick -= weight
            if pick < 0:
                return thread
        return threads[-1]

    def end_run(self, result: FinishedRun) -> None:
        for index, steps in enumerate(result.extra.get("thread_steps", ())):
            if steps > self.expected_steps.get(index, 0):
                self.expected_steps[index] = steps
