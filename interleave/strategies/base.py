"""The one small interface every search strategy implements.

A strategy answers the scheduler's question at each decision ("which of these options
runs next?") and hears how each run ended. Options are thread indices, ``JUMP`` (let
virtual time pass to the next deadline) or, for a fault decision, ``-2 - k`` meaning
"fault option k" (``-2`` is "no fault").
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from ..scheduler import JUMP

if TYPE_CHECKING:
    from ..scheduler import RunResult, Scheduler


def is_fault_decision(options: list[int]) -> bool:
    return options[0] <= -2


def choice_cost(sched: Scheduler, options: list[int], default: int, preemptive: bool, choice: int) -> int:
    """What a choice costs against a preemption bound (the scheduler counts the same way)."""
    if choice == default:
        return 0
    if choice == JUMP or is_fault_decision(options):
        return 1
    return 1 if preemptive and choice != sched.current.index else 0


class Strategy(ABC):
    """Chooses at each decision of a run; sees every run's end."""

    name = "strategy"
    #: Whether run 0 is the default order (no deviation): a later run in that order that
    #: fails then shows the program keeps state from one run to the next.
    first_run_in_default_order = False

    def begin_run(self, run_index: int) -> bool:
        """Prepare run ``run_index``; False when there is nothing left to explore."""
        return True

    @abstractmethod
    def choose(self, sched: Scheduler, options: list[int], default: int, preemptive: bool) -> int:
        ...

    def end_run(self, result: RunResult) -> None:
        """Learn from a finished run."""

    def exhausted(self) -> bool:
        return False

    def summary(self) -> dict[str, Any]:
        """Facts for the report (confidence, bounds, distinct schedules)."""
        return {}
