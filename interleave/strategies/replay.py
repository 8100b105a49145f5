"""Replay: the default choice everywhere except at the recorded decisions."""

from __future__ import annotations

from ..decisions import Decision, DecisionPoint, Option, Plan, options_text
from .base import Strategy


class ScheduleMismatch(Exception):
    """The recorded schedule does not fit the program as it runs now."""


class Replay(Strategy):
    """Follows a schedule (its decisions, by key: see :class:`~interleave.decisions.Plan`).

    ``strict``: a decision whose option is not available, or that is never reached,
    is an error (the schedule no longer fits). Lenient (for shrinking): such decisions
    are skipped and the default is taken.
    """

    name = "replay"
    label = "replay"

    def __init__(self, deviations: list[Decision], strict: bool = True) -> None:
        self.plan = Plan(deviations)
        self.strict = strict
        self.used = 0

    def begin_run(self, run_index: int) -> bool:
        self.used = 0
        return True

    def choose(self, point: DecisionPoint) -> Option:
        planned = self.plan.get(point.key)
        if planned is None:
            return point.default
        choice = self.plan.follow(point)
        if choice is None:
            if self.strict:
                raise ScheduleMismatch(
                    f"at step {point.steps} of thread {point.thread} the schedule chooses {planned}, "
                    f"which is not possible there (options {options_text(point.options)})"
                )
            return point.default
        self.used += 1
        return choice

    def all_used(self) -> bool:
        return self.used == len(self.plan)
