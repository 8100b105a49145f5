"""Shrinking a failing schedule to a 1-minimal one.

A schedule is its list of deviations from the default order. Shrinking replays edited
lists (deviations that no longer fit are skipped) and keeps an edit when the run fails
the same way (same kind, same place). Chunks are removed first (delta debugging), then
single deviations until none can go: removing any one preemption, pause or fault left
makes the failure disappear or change. Each accepted run's own recorded deviations
become the new schedule, so the result always replays exactly.

Removing deviations cannot turn a schedule into a different one that needs fewer
preemptions, so afterwards a bounded enumeration looks for the same failure with fewer
preemptions; whatever it finds is shrunk in turn.

A Ctrl-C stops shrinking with ``KeyboardInterrupt`` (even one a replayed run caught), so the
caller can report the failure as it was found.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .decisions import PAUSE, Decision, DecisionPoint, FinishedRun, Option, Plan, RunThread
from .failures import Failure
from .runner import Runner
from .scheduler import RunResult
from .strategies.base import Strategy
from .strategies.dfs import BoundedDFS
from .strategies.replay import Replay


#: Share of the shrink budget one search for fewer preemptions may take.
SEARCH_SHARE = 0.1


@dataclass
class ShrinkResult:
    deviations: list[Decision]
    result: RunResult
    attempts: int
    minimal: bool  # False when the time budget ran out first


def shrink(runner: Runner, target: Failure, deviations: list[Decision], result: RunResult,
           time_budget: float = 30.0) -> ShrinkResult:
    """Shrink to a 1-minimal schedule, then look for one with fewer preemptions and shrink that."""
    deadline = time.monotonic() + time_budget
    deviations, result, cut = _cut_after_last_progress(runner, target, deviations, result)
    shrunk = _remove_deviations(runner, target, deviations, result, deadline)
    attempts = shrunk.attempts + cut
    while _thread_switches(shrunk.deviations) > 0 and time.monotonic() < deadline:
        # A bounded share of the budget: where schedules are many, the search cannot finish anyway.
        remaining = deadline - time.monotonic()
        search_until = time.monotonic() + min(remaining / 2, max(1.0, SEARCH_SHARE * time_budget))
        found, tried = _search_fewer_preemptions(runner, target, shrunk.deviations, search_until)
        attempts += tried
        if found is None:
            break
        shrunk = _remove_deviations(runner, target, found.deviations, found, deadline)
        attempts += shrunk.attempts
    shrunk.attempts = attempts
    shrunk.minimal = shrunk.minimal and time.monotonic() < deadline
    return shrunk


def _cut_after_last_progress(runner: Runner, target: Failure, deviations: list[Decision],
                             result: RunResult) -> tuple[list[Decision], RunResult, int]:
    """A hang's choices after the program last changed only kept it looping: one replay
    (whatever the budget) without them, kept if it hangs the same way."""
    kept = result.extra.get("progress_deviations")
    if target.kind != "hang" or kept is None or kept >= len(deviations):
        return deviations, result, 0
    run = runner.run(Replay(deviations[:kept], strict=False))
    if target.same_as(run.failure):
        return run.deviations, run, 1
    return deviations, result, 1


def _thread_switches(deviations: list[Decision]) -> int:
    """Preemptions proper: paid switches to another thread (not pauses or faults, which a
    search with fewer preemptions could not keep)."""
    return sum(1 for d in deviations if d.paid and isinstance(d.option, RunThread))


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


def _search_fewer_preemptions(runner: Runner, target: Failure, deviations: list[Decision],
                              until: float) -> tuple[RunResult | None, int]:
    """Enumerate thread choices by increasing preemptions, fewer than the schedule has,
    keeping its pauses and faults, for the same failure."""
    switches = _thread_switches(deviations)
    pauses_and_faults = [d for d in deviations if d.paid and not isinstance(d.option, RunThread)]
    free = [d for d in deviations if not d.paid]
    tried = 0
    # First with the free choices as they are (a small space), then enumerating them too.
    for free_choices in (False, True):
        kept = pauses_and_faults if free_choices else pauses_and_faults + free
        search = _KeepingFaultsAndPauses(kept, switches - 1, free_choices)
        while time.monotonic() < until and search.begin_run(tried):
            run = runner.run_or_raise(search)
            search.end_run(run)
            tried += 1
            if target.same_as(run.failure) and _thread_switches(run.deviations) < switches:
                return run, tried
    return None, tried


def _remove_deviations(runner: Runner, target: Failure, deviations: list[Decision], result: RunResult,
                       deadline: float) -> ShrinkResult:
    best, best_result = list(deviations), result
    attempts = 0

    def attempt(candidate: list[Decision]) -> RunResult | None:
        nonlocal attempts
        attempts += 1
        run = runner.run_or_raise(Replay(candidate, strict=False))
        return run if target.same_as(run.failure) else None

    def out_of_time() -> bool:
        return time.monotonic() > deadline

    # Delta debugging over chunks, from halves down to single deviations.
    chunks = 2
    while len(best) > 1 and not out_of_time():
        size = max(1, -(-len(best) // chunks))
        for start in range(0, len(best), size):
            run = attempt(best[:start] + best[start + size:])
            if run is not None:
                best, best_result = run.deviations, run
                chunks = max(chunks - 1, 2)
                break
            if out_of_time():
                break
        else:
            if size == 1:
                break
            chunks = min(chunks * 2, len(best))
    # 1-minimality: repeat single removals until a full pass removes nothing.
    changed = True
    while changed and not out_of_time():
        changed = False
        for i in range(len(best)):
            run = attempt(best[:i] + best[i + 1:])
            if run is not None:
                best, best_result = run.deviations, run
                changed = True
                break
            if out_of_time():
                break
    return ShrinkResult(best, best_result, attempts, minimal=not out_of_time())
