"""The one small interface every search strategy implements.

A strategy answers the scheduler's question at each decision: it sees a
:class:`~interleave.decisions.DecisionPoint` (where the run is, the typed options, the
default, which options are paid) and answers with one of its options; it hears how each
run ended. It never sees the scheduler: strategies depend on :mod:`interleave.decisions` only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from ..decisions import DecisionPoint, FinishedRun, Option


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
    def choose(self, point: DecisionPoint) -> Option:
        ...

    def end_run(self, result: FinishedRun) -> None:  # noqa: B027 - optional: most strategies learn nothing
        """Learn from a finished run."""

    def exhausted(self) -> bool:
        return False

    def summary(self) -> dict[str, Any]:
        """Facts for the report (confidence, bounds, distinct schedules)."""
        return {}
