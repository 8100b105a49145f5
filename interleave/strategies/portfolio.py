"""The default: no tuning needed. Members take turns run by run.

Bounded enumeration (up to 2 preemptions) finds shallow bugs systematically and, when it
finishes, lets the report say that no schedule within the bound fails; PCT at depths 2
and 3 and the SURW-style weighted walk sample the rest. When the enumeration has covered
every schedule of the program, the exploration stops.

Split ``n`` ways (:meth:`Portfolio.partition`), every fourth share (0, 4, 8...) enumerates
(the enumeration split among them; each enumerates at every turn until its part is done,
then samples) and the others sample, share ``i`` starting with the ``i % 4``-th member:
in the order of the runs' keys the members take turns as unsplit, and the enumeration is
split in fewer, larger parts than ``n``, which end more evenly.

Why these members (measured on examples/ and a bug that needs 20 consecutive steps of one
thread between two of another, see benchmarks/RESULTS.md): the uniform random walk never
found the 20-step bug in 20,000 runs while PCT, SURW and the enumeration found it within
hundreds of runs; SURW found the pause bug and the reentrancy bug sooner than the random
walk; the enumeration is the only member that can say "no schedule within the bound
fails".
"""

from __future__ import annotations

from collections.abc import Sequence

from ..decisions import DecisionPoint, FinishedRun, Option
from .base import SearchSummary, Strategy
from .dfs import BoundedDFS, share_common_tree
from .pct import PCT
from .surw import SURW


class Portfolio(Strategy):
    name = "portfolio"
    first_run_in_default_order = True

    def __init__(self, seed: int = 0, max_preemptions: int = 2) -> None:
        self.dfs = BoundedDFS(max_preemptions)
        self.members: list[Strategy] = [self.dfs, PCT(seed, 2), PCT(seed, 3), SURW(seed)]
        self.current: Strategy = self.dfs
        self.turn = 0
        #: Split: this share enumerates at every turn (until its part is done), or never.
        self.split = False

    def begin_run(self, run_index: int) -> bool:
        if self.dfs.program_complete():  # a share's being complete is not the program's
            return False
        if self.split and self.dfs.begin_run(run_index):
            return self._take(self.dfs)
        turns = self.members[1:] if self.split else self.members
        for _ in range(len(turns)):
            member = turns[self.turn % len(turns)]
            self.turn += 1
            if member.begin_run(run_index):
                return self._take(member)
        return False

    def _take(self, member: Strategy) -> bool:
        self.current = member
        # The scheduler asks at every decision: the member's own method answers, one call less each time.
        self.choose = member.choose  # type: ignore[method-assign]
        return True

    def choose(self, point: DecisionPoint) -> Option:
        return self.current.choose(point)

    def end_run(self, result: FinishedRun) -> None:
        self.current.end_run(result)

    def exhausted(self) -> bool:
        return self.dfs.exhausted()

    def summary(self) -> SearchSummary:
        return SearchSummary(enumeration=self.dfs.summary().enumeration,
                             pct=tuple(p for m in self.members for p in m.summary().pct))

    def partition(self, index: int, count: int) -> None:
        if count == 1:
            return
        if not 0 <= index < count:
            raise ValueError(f"share {index} of {count} does not exist")
        self.split = True
        every = len(self.members)
        if index % every == 0:
            self.dfs.partition(index // every, -(-count // every))  # the samplers split by run index
        else:
            self.dfs = BoundedDFS.dealt_nothing(self.dfs.max_bound)
            self.members[0] = self.dfs
            self.turn = index % every - 1

    def shares(self, count: int, indices: Sequence[int]) -> list[Strategy]:
        out = [p for p in super().shares(count, indices) if isinstance(p, Portfolio)]
        share_common_tree([p.dfs for p in out if p.dfs.common is not None])
        return list(out)

    def shared_run(self) -> bool:
        return self.current.shared_run()

    def skip_run(self) -> None:
        self.current.skip_run()

    def share_complete(self) -> bool:
        # The enumeration's share may be complete while the program's is not: sample on.
        return self.split and self.dfs.complete()

    def member(self) -> int:
        return self.members.index(self.current)

    def member_names(self) -> tuple[str, ...]:
        return tuple(m.label for m in self.members)
