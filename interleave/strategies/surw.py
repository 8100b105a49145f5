"""SURW-style weighted walk: every interleaving about equally likely.

A uniform random walk picks the next thread uniformly, so interleavings in which a thread
with many steps left runs in long stretches are exponentially unlikely. Weighting each
runnable thread by the number of steps it still has to take (learnt per thread from the
runs seen so far) makes every interleaving of non-blocking threads equally likely, which
is what the selectively uniform random walk of the research literature is built on. Here
every switch point is an event; pauses and faults keep the random walk's small rates.
"""

from __future__ import annotations

from ..scheduler import JUMP
from .base import Strategy, is_fault_decision
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

    def choose(self, sched, options, default, preemptive):
        rng = self.rng
        if is_fault_decision(options):
            return random_fault(rng, options, default)
        threads = options
        if options[-1] == JUMP:
            if rng.random() < JUMP_PROBABILITY:
                return JUMP
            threads = options[:-1]
        expected = self.expected_steps
        all_threads = sched.threads
        weights = [max(expected.get(t, 1) - all_threads[t].steps, 1) for t in threads]
        pick = rng.random() * sum(weights)
        for thread, weight in zip(threads, weights):
            pick -= weight
            if pick < 0:
                return thread
        return threads[-1]

    def end_run(self, result) -> None:
        for index, steps in enumerate(result.extra.get("thread_steps", ())):
            if steps > self.expected_steps.get(index, 0):
                self.expected_steps[index] = steps
