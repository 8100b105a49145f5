"""Replay: the default choice everywhere except at the recorded deviations."""

from __future__ import annotations

from ..scheduler import Deviation
from .base import Strategy


class ScheduleMismatch(Exception):
    """The recorded schedule does not fit the program as it runs now."""


class Replay(Strategy):
    """Follows a list of deviations.

    ``strict``: a deviation whose option is not available, or that is never reached,
    is an error (the schedule no longer fits). Lenient (for shrinking): such deviations
    are skipped and the default is taken.
    """

    name = "replay"
    label = "replay"

    def __init__(self, deviations: list[Deviation], strict: bool = True) -> None:
        self.plan = {d.key(): d.choice for d in deviations}
        self.strict = strict
        self.used = 0

    def begin_run(self, run_index: int) -> bool:
        self.used = 0
        return True

    def choose(self, sched, options, default, preemptive):
        key = sched.decision_key()
        choice = self.plan.get(key)
        if choice is None:
            return default
        if choice not in options:
            if self.strict:
                raise ScheduleMismatch(
                    f"at step {key[1]} of thread {key[0]} the schedule chooses {choice}, "
                    f"which is not possible there (options {options})"
                )
            return default
        self.used += 1
        return choice

    def all_used(self) -> bool:
        return self.used == len(self.plan)
