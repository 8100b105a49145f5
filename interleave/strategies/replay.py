"""Replay: the default choice everywhere except at the recorded decisions, found by key or by place."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..decisions import Chooser, Decision, DecisionPoint, Option, Plan, Where, options_text
from ..places import Locator, Place, Spot
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


@dataclass(frozen=True)
class Divergence:
    """Where a replay by place left its schedule: the first decision that did not fit."""

    #: The decision's index in the schedule, and how many the schedule has.
    decision: int
    of: int
    #: ``unavailable``: its place was reached and its option could not be taken there;
    #: ``overtaken``: a later decision's place came first; ``unreached``: the run ended first.
    why: str
    expected: Decision
    place: Place
    #: The thread that was where the run left the schedule, and where that was (None at the
    #: run's end, or when it was in no code of the program's).
    thread: int | None = None
    where: Where | None = None


class ReplayByPlace(Strategy):
    """Follows a schedule by its decisions' places (see :mod:`interleave.places`), the default
    everywhere else: the same interleaving on a program edited where no decision was made.

    It never stops the run: a decision that does not fit is passed over (the first one is
    the :attr:`divergence`), and the run goes on as far as the rest of the schedule fits.
    """

    name = "replay"
    label = "replay by place"

    def __init__(self, deviations: Sequence[Decision], places: Sequence[Place]) -> None:
        self.schedule = list(deviations)
        self.places = list(places)
        self.at_place = {(d.key[0], p.text, d.key[2], p.seen): index
                         for index, (d, p) in enumerate(zip(self.schedule, self.places))}
        self.begin_run(0)

    def begin_run(self, run_index: int) -> bool:
        self.locator = Locator()
        self.met = [False] * len(self.schedule)
        self.pending = 0  # the first decision not met yet
        self.first: Divergence | None = None
        return True

    def choose(self, point: DecisionPoint) -> Option:
        spot = self.locator.spot(point)
        index = self.at_place.get((point.key[0], spot.text, point.key[2], spot.seen))
        if index is None:
            return point.default
        if index > self.pending:
            self._diverged(self.pending, "overtaken", point.key[0], spot.where)
        option = self.schedule[index].option
        options = point.options
        if option not in options:
            self._diverged(index, "unavailable", point.key[0], spot.where)
            return point.default
        self.met[index] = True
        while self.pending < len(self.met) and self.met[self.pending]:
            self.pending += 1
        return options[options.index(option)]

    def _diverged(self, index: int, why: str, thread: int | None, where: Where | None) -> None:
        if self.first is None:
            self.first = Divergence(index, len(self.schedule), why, self.schedule[index], self.places[index],
                                    thread, where)

    @property
    def divergence(self) -> Divergence | None:
        """The first decision that did not fit, once the run is over (None: the whole schedule did)."""
        if self.first is None and self.pending < len(self.schedule):
            return Divergence(self.pending, len(self.schedule), "unreached", self.schedule[self.pending],
                              self.places[self.pending])
        return self.first


class Locating:
    """Answers as ``inner`` does, noting where each decision of ``wanted`` was made: its
    place, and its order among them (a token keeps a schedule in the order it was met)."""

    def __init__(self, inner: Chooser, wanted: Iterable[tuple[int, int, int]]) -> None:
        self.inner = inner
        self.wanted = set(wanted)
        self.locator = Locator()
        self.spots: dict[tuple[int, int, int], tuple[int, Spot]] = {}

    def choose(self, point: DecisionPoint) -> Option:
        spot = self.locator.spot(point)
        if point.key in self.wanted:
            self.spots[point.key] = (len(self.spots), spot)
        return self.inner.choose(point)
