"""Shrinking a failing schedule, in the manner of a test-case shrinker.

A schedule is its list of deviations from the default order. Shrinking replays edited
lists (deviations that no longer fit are skipped) and keeps an edit only when the run
fails the same way (same kind, same place: :meth:`Failure.same_as`) *and* its recorded
schedule is smaller in one total order, :func:`schedule_order`:

1. paid decisions: preemptions, switches away from a thread that could go on;
2. then the other decisions the run took against the default: pauses (letting time pass),
   faults, draws of ``random`` other than the seeded value (each costs one against the
   search's bound, but a reader asks first how many preemptions a failure needs);
3. then free thread choices (who runs when a thread blocks, yields or ends: they cost
   nothing against any bound);
4. then the run's length in steps;
5. then the deviations themselves, by key and choice (a tiebreak that makes the order total).

Every accepted edit decreases that order, so shrinking cannot go round in circles, and
each accepted run's own recorded deviations become the new schedule, so the result always
replays exactly. Every replay is cached by its schedule (the edited list and the list the
run recorded): the same schedule is never run twice in one shrink.

The edits, repeated until a whole round keeps none:

* removing chunks (delta debugging), then single deviations (the pass goes on from where it
  is after a success rather than starting over), then pairs;
* giving a paid switch to another thread that could run there;
* moving a deviation to a nearby decision of the same thread and kind (a preemption to
  where that thread blocks makes it free; a fault to an earlier or later call), or a
  preemption to a nearby free choice of another thread that gives the same thread the turn,
  with the other deviations, or with only the free ones, or with only the pauses, faults
  and draws;
* with the preemptions dropped, a pause, fault or draw moved together with one free choice.

Removing and moving deviations cannot always turn a schedule into a different one that
needs fewer preemptions, so afterwards a bounded enumeration looks for the same failure
with fewer preemptions; whatever it finds is shrunk in turn. The enumeration is bounded by
the steps it runs (:func:`search_steps`), not by time, so that every machine runs the same
schedules and reports the same shrunk one.

Shrinking stops at the time budget (the result is then not minimal, and says so), or after
:data:`STALL_LIMIT` replays in a row that kept nothing. A Ctrl-C stops it with
:class:`ShrinkInterrupted` (a ``KeyboardInterrupt``, even for one a replayed run caught)
carrying the best schedule so far; a caller that treats it as any ``KeyboardInterrupt``
reports the failure as it was found.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from .decisions import DRAW_SUB, FAULT_SUB, PAUSE, Decision, DecisionPoint, FinishedRun, Key, Option, Plan, RunThread
from .failures import Failure
from .runner import Runner
from .scheduler import RunResult
from .strategies.base import Strategy
from .strategies.dfs import BoundedDFS
from .strategies.replay import Replay

#: Share of the shrink budget one search for fewer preemptions may take (at least a second),
#: counted in steps at :data:`SEARCH_STEPS_PER_SECOND`: a measure every machine counts alike.
SEARCH_SHARE = 0.1
#: Steps a second of the search's share buys (about what a shrinking replay runs a second, at ~10 µs a step).
SEARCH_STEPS_PER_SECOND = 100_000

#: Replays in a row that kept nothing, after which shrinking stops (besides the time budget).
STALL_LIMIT = 500

#: Pairs are removed only from schedules this short (the pairs grow as the square).
PAIR_LIMIT = 16

#: How many decisions of the same thread and kind, on each side, a deviation may move to.
MOVE_REACH = 8
#: Runs whose every decision point is kept for the moves (the others keep where they could
#: pause, fault or draw only).
RECENT_RUNS = 64
#: The same when two deviations move together (the candidates grow as its square).
PAIR_REACH = 4


# ------------------------------------------------------------------ what a deviation is
# The order's three kinds of decision.

def is_paid(d: Decision) -> bool:
    """A preemption: a switch away from a thread that could have gone on."""
    return isinstance(d.option, RunThread) and d.paid


def is_free_switch(d: Decision) -> bool:
    """A thread choice that costs nothing (who runs when the current thread cannot go on)."""
    return isinstance(d.option, RunThread) and not d.paid


def is_injected(d: Decision) -> bool:
    """A pause, a fault or a changed draw: the run was made to differ, not just reordered."""
    return not isinstance(d.option, RunThread)


def _decision_kind(sub: int) -> int:
    """Scheduling decisions, fault decisions and draws are keyed apart (see the scheduler)."""
    return 2 if sub >= DRAW_SUB else 1 if sub >= FAULT_SUB else 0


def _injection_points(points: list[MetPoint]) -> list[MetPoint]:
    """The places where a pause, a fault or a draw could go."""
    return [p for p in points if p.key[2] >= FAULT_SUB or PAUSE in p.options]


def schedule_order(deviations: list[Decision], steps: int) -> tuple[Any, ...]:
    """The key every accepted edit must decrease (see the module docstring)."""
    return (sum(map(is_paid, deviations)), sum(map(is_injected, deviations)), sum(map(is_free_switch, deviations)),
            steps, sorted(d.code() for d in deviations))


def _identity(deviations: list[Decision]) -> tuple[Any, ...]:
    """What a replay depends on: the planned option at each key (costs are recorded, not planned)."""
    return tuple(sorted(d.code() for d in deviations))


# ------------------------------------------------------------------ replays

@dataclass(frozen=True)
class MetPoint:
    """A decision point a run met, as much of it as the edits need (a
    :class:`~interleave.decisions.DecisionPoint` holds views of its run, dead after it)."""

    key: tuple[int, int, int]
    options: tuple[Option, ...]
    default: Option
    preemptive: bool

    def costs(self, option: Option) -> bool:
        """Whether taking ``option`` here is paid (as :meth:`DecisionPoint.paid`)."""
        if option == self.default:
            return False
        return not isinstance(option, RunThread) or (self.preemptive and option.thread != self.key[0])


class _Recording(Strategy):
    """Another chooser, noting every decision point its run meets (what moves and reassignments need)."""

    name = "recording"

    def __init__(self, inner: Strategy) -> None:
        self.inner = inner
        self.points: list[MetPoint] = []

    def begin_run(self, run_index: int) -> bool:
        self.points = []
        return self.inner.begin_run(run_index)

    def choose(self, point: DecisionPoint) -> Option:
        self.points.append(MetPoint(point.key, point.options, point.default, point.preemptive))
        return self.inner.choose(point)

    def end_run(self, result: FinishedRun) -> None:
        self.inner.end_run(result)


#: Replays a schedule leniently: the run it gave and the decision points it met.
ReplayFunction = Callable[[list[Decision]], tuple[RunResult, list[MetPoint]]]


def _replayer(runner: Runner) -> ReplayFunction:
    def replay(deviations: list[Decision]) -> tuple[RunResult, list[MetPoint]]:
        recording = _Recording(Replay(deviations, strict=False))
        run = runner.run_or_raise(recording)
        return run, recording.points
    return replay


@dataclass
class ShrinkResult:
    deviations: list[Decision]
    result: RunResult
    attempts: int
    minimal: bool  # False when the time budget or the stall limit stopped shrinking first


class ShrinkInterrupted(KeyboardInterrupt):
    """A Ctrl-C while shrinking; ``best`` is the smallest failing schedule found until then."""

    def __init__(self, best: ShrinkResult) -> None:
        super().__init__()
        self.best = best


class _Stop(Exception):
    """The time budget or the stall limit is reached."""


# ------------------------------------------------------------------ the shrinker

@dataclass
class Shrinker:
    """The best failing schedule so far and the edits tried on it."""

    replay: ReplayFunction
    target: Failure
    best_run: RunResult
    deadline: float
    stall_limit: int = STALL_LIMIT
    attempts: int = 0
    stalled: int = 0
    #: The order key of each schedule kept, the first one included: strictly decreasing.
    accepted: list[tuple[Any, ...]] = field(default_factory=list)
    #: Every schedule run in this shrink, with the places its run offered a pause, fault or draw
    #: (once one is taken the budget may allow no more, so a move looks at the run without it).
    seen: dict[tuple[Any, ...], list[MetPoint]] = field(default_factory=dict)
    #: All the decision points of the last few runs (a moved preemption may go where its
    #: thread went on only in the run without it).
    recent: dict[tuple[Any, ...], list[MetPoint]] = field(default_factory=dict)
    points: list[MetPoint] | None = None
    #: Told after each replay (how shrinking goes, for a progress line).
    on_replay: Callable[[Shrinker], None] | None = field(default=None, repr=False)
    _indexed: list[MetPoint] | None = field(default=None, repr=False)
    _by_key: dict[tuple[int, int, int], MetPoint] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.accepted.append(self.order(self.best_run))
        self.seen.setdefault(_identity(self.best), [])  # its run is known: no edit brings it back

    @property
    def best(self) -> list[Decision]:
        return self.best_run.deviations

    @staticmethod
    def order(run: RunResult) -> tuple[Any, ...]:
        return schedule_order(run.deviations, run.steps)

    def result(self, minimal: bool) -> ShrinkResult:
        return ShrinkResult(list(self.best), self.best_run, self.attempts, minimal)

    def replayed(self) -> None:
        """One more replay was run (and its run offered)."""
        self.attempts += 1
        if self.on_replay is not None:
            self.on_replay(self)

    def check_budget(self) -> None:
        if time.monotonic() > self.deadline or self.stalled >= self.stall_limit:
            raise _Stop

    def consider(self, candidate: list[Decision], budgeted: bool = True) -> bool:
        """Replay ``candidate`` unless this shrink ran it already; True when it became the best."""
        identity = _identity(candidate)
        if identity in self.seen:
            return False
        if budgeted:
            self.check_budget()
        run, points = self.replay(candidate)
        self.seen[identity] = _injection_points(points)
        self.recent[identity] = points
        while len(self.recent) > RECENT_RUNS:
            del self.recent[next(iter(self.recent))]
        kept = self.offer(run, points)
        if not kept:
            self.stalled += 1
        self.replayed()
        return kept

    def offer(self, run: RunResult, points: list[MetPoint] | None) -> bool:
        """Keep ``run`` if it fails the same way and is smaller than the best."""
        self.seen.setdefault(_identity(run.deviations), _injection_points(points or []))
        if not self.target.same_as(run.failure) or self.order(run) >= self.accepted[-1]:
            return False
        self.best_run, self.points, self.stalled = run, points, 0
        self.accepted.append(self.order(run))
        return True

    def shrink_passes(self) -> bool:
        """Every pass, again and again, until a whole round keeps nothing: True; False when
        the time budget or the stall limit stopped it first."""
        try:
            self.remove_chunks()
            while True:
                before = self.accepted[-1]
                self.remove_each()
                self.remove_pairs()
                self.reassign()
                self.move()
                self.move_pairs()
                if self.accepted[-1] == before:
                    return True
        except _Stop:
            return False

    def remove_chunks(self) -> None:
        """Delta debugging over chunks, from halves down to single deviations."""
        chunks = 2
        while len(self.best) > 1:
            size = max(1, -(-len(self.best) // chunks))
            for start in range(0, len(self.best), size):
                if self.consider(self.best[:start] + self.best[start + size:]):
                    chunks = max(chunks - 1, 2)
                    break
            else:
                if size == 1:
                    return
                chunks = min(chunks * 2, len(self.best))

    def remove_each(self) -> None:
        """Single removals; after a success the pass goes on at the same place."""
        i = 0
        while i < len(self.best):
            if not self.consider(self.best[:i] + self.best[i + 1:]):
                i += 1

    def remove_pairs(self) -> None:
        """Two removals at once (two deviations that only fail together with neither alone)."""
        i = 0
        while i < len(self.best) <= PAIR_LIMIT:
            j = i + 1
            while j < len(self.best):
                if not self.consider(self.best[:i] + self.best[i + 1:j] + self.best[j + 1:]):
                    j += 1
            i += 1

    def decision_points(self) -> list[MetPoint]:
        """The best run's decision points (one replay of it the first time they are needed)."""
        if self.points is None:
            self.check_budget()
            self.points = self.replay(self.best)[1]
            self.seen[_identity(self.best)] = _injection_points(self.points)
            self.replayed()
        return self.points

    def point_at(self, key: tuple[int, int, int]) -> MetPoint | None:
        points = self.decision_points()
        if self._indexed is not points:
            self._indexed, self._by_key = points, {p.key: p for p in points}
        return self._by_key.get(key)

    def reassign(self) -> None:
        """A paid switch given instead to each other thread that could run there."""
        i = 0
        while i < len(self.best):
            d = self.best[i]
            point = self.point_at(d.key) if is_paid(d) else None
            changed = False
            others = [o for o in point.options if isinstance(o, RunThread) and o not in (d.option, point.default)
                      ] if point else []
            for option in others:
                if self.consider(self.best[:i] + [d._replace(option=option)] + self.best[i + 1:]):
                    changed = True
                    break
            if not changed:
                i += 1

    def move(self) -> None:
        """Each deviation moved to a nearby decision of its thread and kind, where its choice
        is possible: free places first, then nearest first. The move is tried first with only
        the pauses, faults and draws left besides it, then with the free choices too, then with
        everything (a fault moved may need none of the preemptions that made its first place
        fail). The places are also those of the run without it, which other removals shift:
        there its thread may go on further, and pauses or faults are offered again (once one
        is taken the budget may allow no more)."""
        i = 0
        while i < len(self.best):
            d = self.best[i]
            others = self.best[:i] + self.best[i + 1:]
            changed = False
            for kept in ([e for e in others if is_injected(e)], [e for e in others if not is_paid(e)], others):
                if is_injected(d) and _identity(kept) not in self.seen and self.consider(kept):
                    changed = True  # removing d and more kept the failure: d is gone
                    break
                places = self._places_for(d, self.points_of(kept))
                for point in places + (self._free_places_elsewhere(d) if is_paid(d) else []):
                    if self.consider(kept + [_moved(d, point)]):
                        changed = True
                        break
                if changed:
                    break
            if not changed:
                i += 1

    def move_pairs(self) -> None:
        """With the preemptions dropped, a pause, fault or draw moved together with one free
        choice: dropping them shifts the steps of other threads, and a free choice the failure
        needs may then belong a few decisions away."""
        if not any(map(is_paid, self.best)):
            return
        for d, e in [(d, e) for d in self.best if is_injected(d) for e in self.best if is_free_switch(e)]:
            rest = [f for f in self.best if not is_paid(f) and f not in (d, e)]
            if _identity(rest) not in self.seen and self.consider(rest):
                return
            for q in self._places_for(d, self.points_of(rest), PAIR_REACH):
                moved = rest + [_moved(d, q)]
                if _identity(moved) not in self.seen and self.consider(moved):
                    return
                for p in self._places_for(e, self.points_of(moved), PAIR_REACH):
                    if self.consider(moved + [_moved(e, p)]):
                        return

    def points_of(self, deviations: list[Decision]) -> list[MetPoint]:
        """The decision points the run of ``deviations`` met, if it was one of the last few
        replayed; else only where it could have paused, faulted or drawn; else none."""
        identity = _identity(deviations)
        return self.recent.get(identity) or self.seen.get(identity, [])

    def _places_for(self, d: Decision, points: list[MetPoint], reach: int = MOVE_REACH) -> list[MetPoint]:
        """Where ``d`` could move: among ``points`` and the best run's, the nearest of its thread and kind."""
        taken = {e.key for e in self.best}
        merged = sorted({p.key: p for p in self.decision_points() + points}.values(), key=lambda p: p.key)
        thread, steps, sub = d.key
        same = [p for p in merged if p.key[0] == thread and _decision_kind(p.key[2]) == _decision_kind(sub)]
        here = next((n for n, p in enumerate(same) if p.key >= d.key), len(same))
        near = same[max(0, here - reach):here + reach + 1]
        fitting = [p for p in near if p.key not in taken and d.option in p.options and d.option != p.default]
        return sorted(fitting, key=lambda p: (p.costs(d.option), abs(p.key[1] - steps), p.key))

    def _free_places_elsewhere(self, d: Decision) -> list[MetPoint]:
        """Where another thread's free choice could give ``d``'s thread the turn instead, the
        nearest to ``d`` in the run first."""
        points = self.decision_points()
        here = next((n for n, p in enumerate(points) if p.key == d.key), None)
        if here is None:
            return []
        free = [(abs(n - here), p) for n, p in enumerate(points)
                if p.key[0] != d.key.thread and not p.preemptive and d.option in p.options and d.option != p.default]
        return [p for _, p in sorted(free, key=lambda pair: pair[0])[:2 * MOVE_REACH]]


def _moved(d: Decision, point: MetPoint) -> Decision:
    """``d`` taken at ``point`` instead (its cost there is the replay's to record)."""
    return Decision(Key(*point.key), d.option, point.costs(d.option))


# ------------------------------------------------------------------ fewer preemptions

def _thread_switches(deviations: list[Decision]) -> int:
    """Preemptions proper (not pauses or faults, which a search with fewer preemptions keeps)."""
    return sum(map(is_paid, deviations))


class _KeepingFaultsAndPauses(Strategy):
    """Enumerates where preemptions go while the schedule's pauses and faults stay as they
    are; free choices (who runs when a thread blocks) are kept too, or enumerated."""

    name = "fewer-preemptions"

    def __init__(self, kept: list[Decision], bound: int, free_choices: bool) -> None:
        self.kept = Plan(kept)
        self.dfs = BoundedDFS(bound)
        self.free_choices = free_choices

    def begin_run(self, run_index: int) -> bool:
        return self.dfs.begin_run(run_index)

    def choose(self, point: DecisionPoint) -> Option:
        planned = self.kept.follow(point)
        if planned is not None:
            return planned
        if not point.is_scheduling() or not (point.preemptive or self.free_choices):
            return point.default
        threads = tuple([o for o in point.options if o is not PAUSE])
        return self.dfs.choose(point._replace(options=threads) if threads else point)

    def end_run(self, result: FinishedRun) -> None:
        self.dfs.end_run(result)


def search_steps(time_budget: float) -> int:
    """The steps one search for fewer preemptions may run, for a shrink budget of ``time_budget`` s."""
    return int(SEARCH_STEPS_PER_SECOND * max(1.0, SEARCH_SHARE * time_budget))


def _search_fewer_preemptions(runner: Runner, shrinker: Shrinker, steps: int) -> bool:
    """Enumerate thread choices by increasing preemptions, fewer than the best schedule has,
    keeping its pauses and faults, for the same failure, for ``steps`` steps at most (or
    until the shrink's deadline); True when one was kept."""
    best = shrinker.best
    switches = _thread_switches(best)
    injected = [d for d in best if is_injected(d)]
    free = [d for d in best if is_free_switch(d)]
    tried = 0
    # First with the free choices as they are (a small space), then enumerating them too.
    for free_choices in (False, True):
        kept = injected if free_choices else injected + free
        search = _Recording(_KeepingFaultsAndPauses(kept, switches - 1, free_choices))
        while steps > 0 and time.monotonic() < shrinker.deadline and search.begin_run(tried):
            run = runner.run_or_raise(search)
            search.end_run(run)
            tried += 1
            steps -= run.steps
            better = shrinker.offer(run, search.points)
            shrinker.replayed()
            if better:
                return True
    return False


def _cut_after_last_progress(shrinker: Shrinker) -> None:
    """A hang's choices after the program last changed only kept it looping: one replay
    (whatever the budget) without them, kept if it hangs the same way."""
    kept = shrinker.best_run.extra.get("progress_deviations")
    if shrinker.target.kind == "hang" and kept is not None and kept < len(shrinker.best):
        shrinker.consider(shrinker.best[:kept], budgeted=False)


def shrink(runner: Runner, target: Failure, deviations: list[Decision], result: RunResult,
           time_budget: float = 30.0, stall_limit: int = STALL_LIMIT,
           on_replay: Callable[[Shrinker], None] | None = None) -> ShrinkResult:
    """Shrink to a schedule no edit makes smaller, then look for one with fewer preemptions and
    shrink that; ``on_replay`` is told after each replay."""
    if result.deviations != deviations:
        result = replace(result, deviations=list(deviations))
    shrinker = Shrinker(_replayer(runner), target, result, time.monotonic() + time_budget, stall_limit,
                        on_replay=on_replay)
    try:
        _cut_after_last_progress(shrinker)
        while shrinker.shrink_passes():
            remaining = shrinker.deadline - time.monotonic()
            if _thread_switches(shrinker.best) == 0 or remaining <= 0:
                return shrinker.result(minimal=remaining > 0)
            # A bounded share of the budget: where schedules are many, the search cannot finish anyway.
            if not _search_fewer_preemptions(runner, shrinker, search_steps(time_budget)):
                return shrinker.result(minimal=time.monotonic() < shrinker.deadline)
        return shrinker.result(minimal=False)
    except KeyboardInterrupt:
        raise ShrinkInterrupted(shrinker.result(minimal=False)) from None
