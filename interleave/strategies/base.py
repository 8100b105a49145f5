"""The one small interface every search strategy implements.

A strategy answers the scheduler's question at each decision: it sees a
:class:`~interleave.decisions.DecisionPoint` (where the run is, the typed options, the
default, which options are paid) and answers with one of its options; it hears how each
run ended. It never sees the scheduler: strategies depend on :mod:`interleave.decisions` only.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from ..decisions import DecisionPoint, FinishedRun, Option


@dataclass(frozen=True)
class Enumeration:
    """Where a bounded enumeration (or one worker's share of it) stands."""

    #: No subtree is left to run.
    done: bool
    #: Some subtree was given up (too many set aside, or a run skipped): not exhaustive.
    truncated: bool
    #: The highest preemption bound whose every schedule was run (-1: none yet).
    completed_bound: int
    max_bound: int
    #: Every schedule of the program was run (no bound was needed).
    complete: bool
    #: Schedules run (a worker's replays of another's runs not counted).
    schedules: int
    #: One schedule per order of conflicting steps (dpor); ``max_bound`` is its preemption
    #: bound (-1: none).
    partial_order: bool = False

    @property
    def exhausted(self) -> bool:
        return self.done and not self.truncated


@dataclass(frozen=True)
class PctFigures:
    """What a PCT member's guarantee rests on: bug depth, most threads and decisions seen."""

    depth: int
    threads: int
    steps_k: int

    @property
    def per_run_probability(self) -> float:
        """Each run finds a bug of this depth with at least this probability."""
        return 1.0 / float(self.threads * self.steps_k ** (self.depth - 1))


@dataclass(frozen=True)
class SearchSummary:
    """What a strategy tells the campaign about its search, for the report."""

    #: The enumeration's figures, when the strategy enumerates (alone or as a member).
    enumeration: Enumeration | None = None
    pct: tuple[PctFigures, ...] = ()


class Strategy(ABC):
    """Chooses at each decision of a run; sees every run's end."""

    name = "strategy"
    #: Whether run 0 is the default order (no deviation): a later run in that order that
    #: fails then shows the program keeps state from one run to the next.
    first_run_in_default_order = False
    #: What a run of this strategy is called in reports (``enumeration``, ``pct d=3``...).
    label = "strategy"
    #: Whether its runs must note what each step touched (see :class:`FinishedRun`).
    needs_accesses = False
    #: A promise, set by :meth:`choose` when it answers with the default where the running
    #: thread could go on: that many of the plain decisions that follow right after (the same
    #: thread could go on, with the same options) would be answered with the default too, so
    #: the scheduler does not ask them (a point is made at nearly every step). 0: ask each.
    steady = 0

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

    def summary(self) -> SearchSummary:
        """Facts for the report (confidence, bounds)."""
        return SearchSummary()

    # How a search is split (see interleave.campaign): into a fixed number of shares, each a
    # sequence of runs that depends on nothing but the seed and the share's own runs, so that
    # which process searches a share (and beside which others) changes nothing. Sampling
    # strategies draw run ``i`` from (seed, i) and need nothing of these; the enumeration
    # and dpor deal out subtrees.

    def partition(self, index: int, count: int) -> None:  # noqa: B027 - only the enumerations deal out shares
        """Explore only share ``index`` of ``count`` (call before the first run)."""

    def shares(self, count: int, indices: Sequence[int]) -> list[Strategy]:
        """Shares ``indices`` of a ``count``-way split of this (unused) strategy, to be searched in one process.

        Each share's runs must be those it would make alone; shares searched side by side may
        share the work they all do alike (the enumeration's 0-preemption tree, dpor's search
        until it is dealt), so that one process pays for it once.
        """
        out = []
        for index in indices:
            share = copy.deepcopy(self)
            share.partition(index, count)
            out.append(share)
        return out

    def shared_run(self) -> bool:
        """The run about to start is another share's, replayed only to find this one's (not counted)."""
        return False

    def skip_run(self) -> None:  # noqa: B027 - only the enumeration keeps count
        """Give up the run about to start (it killed a worker): the search is no longer exhaustive."""

    def share_complete(self) -> bool:
        """This share's part of an enumeration split among several is complete (the others may not be)."""
        return False

    def member(self) -> int:
        """Which of :meth:`member_names` chose the run under way."""
        return 0

    def member_names(self) -> tuple[str, ...]:
        """The labels of the strategies taking turns here (one, unless a portfolio)."""
        return (self.label,)
