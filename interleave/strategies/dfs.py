"""Systematic enumeration with iterative preemption bounding.

Every schedule with 0 preemptions is run, then every one with exactly 1, then 2, up to
``max_preemptions``; each schedule exactly once. Runs are stateless: a run replays the
choices on the current path of the search tree, then takes the default at every new
decision. Alternatives that would exceed the current bound are set aside as the roots of
the next bound's subtrees, so no schedule is run twice across bounds.

Split ``n`` ways (:meth:`BoundedDFS.partition`), every share searches the 0-preemption
tree, as one process would (it is how the 1-preemption roots are found, in the same order
by every share), and counts its runs ``i, i+n, i+2n...`` of it; the runs of it that are
other shares' are *shared* runs, counted nowhere. Shares searched in one process
(:meth:`BoundedDFS.shares`) search that tree once between them. The 1-preemption roots
are dealt by index modulo ``n``; each deeper root belongs to the share whose subtree it was
set aside in. The shares' schedules are therefore disjoint, and together they are exactly
the schedules one unsplit search runs.

Only choices that cost something count against the bound: switching away from a thread
that could go on, letting time pass (a pause), injecting a fault. Choosing who runs when
the current thread blocks or ends is free, and so enumerated in full at every bound.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

from ..decisions import DecisionPoint, FinishedRun, Option, RunThread, options_text
from .base import Enumeration, SearchSummary, Strategy

#: Set-aside subtree roots kept at most; past this a bound can no longer be exhausted.
MAX_PENDING = 200_000


class Nondeterminism(Exception):
    """A replayed prefix met different options: the program does not repeat itself."""


#: The options that lead to a node, as a chain ``(earlier chain, option)``.
Chain: TypeAlias = "tuple[Chain, Option] | None"


class _Node:
    """A decision on the current path: what was chosen, and what is left to try here."""

    __slots__ = ("choice", "cost_after", "alternatives", "before")

    def __init__(self, choice: Option, cost_after: int, alternatives: list[tuple[Option, int]], before: Chain) -> None:
        self.choice = choice
        self.cost_after = cost_after
        self.alternatives = alternatives
        #: The choices that lead here, as a chain ``(earlier chain, choice)``: set-aside
        #: subtree roots share it instead of copying the whole path.
        self.before = before


def _path(chain: Chain) -> tuple[Option, ...]:
    choices = []
    while chain is not None:
        chain, choice = chain
        choices.append(choice)
    return tuple(reversed(choices))


class BoundedDFS(Strategy):
    name = "dfs"
    first_run_in_default_order = True
    label = "enumeration"

    def __init__(self, max_preemptions: int = 2) -> None:
        self.max_bound = max_preemptions
        self.bound = 0
        self.prefix: tuple[Option, ...] = ()
        self.items: list[tuple[Chain, Option]] = []
        self.next_items: list[tuple[Chain, Option]] = []
        self.stack: list[_Node] = []
        self.depth = 0
        self.done = False
        self.beyond_max = False  # some schedule needs more than max_preemptions
        self.truncated = False
        self.completed_bound = -1
        self.schedules = 0
        self.share = (0, 1)
        self.shared = False  # the current run is another share's (see the module docstring)
        #: Split: the 0-preemption tree every share searches, searched once by the shares of
        #: one process; None once this share has left it (or when not split).
        self.common: BoundedDFS | None = None
        self.in_common = False  # the run under way is one of the common tree's
        self.own_common = 0  # this share's runs of the common tree so far
        self.last_bound = max_preemptions  # the common tree stops after bound 0
        #: The common tree was searched and set nothing aside: every share is complete.
        self.every_share_complete = False

    def partition(self, index: int, count: int) -> None:
        """Explore only share ``index`` of ``count`` (call before the first run)."""
        if not 0 <= index < count:
            raise ValueError(f"share {index} of {count} does not exist")
        self.share = (index, count)
        if count > 1:
            self.common = BoundedDFS(self.max_bound)
            self.common.last_bound = 0

    @classmethod
    def dealt_nothing(cls, max_preemptions: int) -> BoundedDFS:
        """A share of a split that was dealt no part of the enumeration: done from the start."""
        share = cls(max_preemptions)
        share.share = (1, 2)  # a share, not the whole search: its being done says nothing of the program
        share.done = True
        share.completed_bound = max_preemptions
        return share

    def shares(self, count: int, indices: Sequence[int]) -> list[Strategy]:
        out = [BoundedDFS(self.max_bound) for _ in indices]
        for share, index in zip(out, indices):
            share.partition(index, count)
        share_common_tree(out)
        return list(out)

    def begin_run(self, run_index: int) -> bool:
        self.depth = 0
        self.shared = self.in_common = False
        if self.done:
            return False
        tree = self.common
        if tree is not None and not tree.done:
            index, count = self.share
            if tree.schedules > self.own_common * count + index:  # a run of ours was made without us (skipped)
                self.own_common = -(-(tree.schedules - index) // count)
            self.in_common = True
            self.shared = tree.schedules < self.own_common * count + index
            tree.begin_run(run_index)
            return True
        self._settle()
        return not self.done

    def _settle(self) -> None:
        """Once the common tree is searched, take this share's deal of its 1-preemption roots."""
        tree = self.common
        if tree is None or not tree.done:
            return
        index, count = self.share
        self.common = None
        self.every_share_complete = tree.complete()
        self.beyond_max = self.beyond_max or tree.beyond_max
        self.truncated = self.truncated or tree.truncated
        self.next_items = tree.next_items[index::count]
        self._next_subtree()

    def skip_run(self) -> None:
        """Give up the run about to start and the subtree below it (the search is no longer exhaustive)."""
        self.truncated = True
        if self.in_common and self.common is not None:
            self.common.truncated = True  # every share's deal of the roots below it is lost
        self.end_run(None)

    def choose(self, point: DecisionPoint) -> Option:
        if self.in_common and self.common is not None:
            return self.common.choose(point)
        d = self.depth
        self.depth += 1
        stack = self.stack
        options = point.options
        if d < len(stack):
            choice = stack[d].choice
            if choice not in options:
                raise Nondeterminism(f"decision {d}: expected {choice}, got {options_text(options)}")
            return choice
        before: Chain
        if stack:
            last = stack[-1]
            cost_before, before = last.cost_after, (last.before, last.choice)
        else:
            cost_before, before = 0, None
        if d < len(self.prefix):
            choice = self.prefix[d]
            if choice not in options:
                raise Nondeterminism(f"decision {d}: expected {choice}, got {options_text(options)}")
            stack.append(_Node(choice, cost_before + point.paid(choice), [], before))
            return choice
        default = point.default
        alternatives = []
        # point.paid(option) written out: this runs at every decision past the prefix.
        preemptive, thread = point.preemptive, point.key[0]
        for option in options:
            if option == default:
                continue
            total = cost_before + (preemptive and option.thread != thread if type(option) is RunThread else True)
            if total <= self.bound:
                alternatives.append((option, total))
            elif total <= self.max_bound:
                if len(self.next_items) < MAX_PENDING:
                    self.next_items.append((before, option))
                else:
                    self.truncated = True
            else:
                self.beyond_max = True
        stack.append(_Node(default, cost_before, alternatives, before))
        return default

    def end_run(self, result: FinishedRun | None) -> None:
        if not self.shared:
            self.schedules += 1
        if self.in_common and self.common is not None:
            self.common.end_run(result)
            if not self.shared:
                self.own_common += 1
            return
        stack = self.stack
        while stack:
            node = stack[-1]
            if node.alternatives:
                node.choice, node.cost_after = node.alternatives.pop(0)
                return
            stack.pop()
        self._next_subtree()

    def _next_subtree(self) -> None:
        while not self.items:  # a share can be dealt no bound-1 root (more shares than roots)
            self.completed_bound = self.bound
            if not self.next_items or self.bound >= min(self.max_bound, self.last_bound):
                self.done = True
                return
            self.bound += 1
            self.items, self.next_items = self.next_items, []
            self.items.reverse()
        before, option = self.items.pop()
        self.prefix = _path(before) + (option,)
        self.stack = []

    def exhausted(self) -> bool:
        self._settle()
        return self.done and not self.truncated

    def complete(self) -> bool:
        """Every schedule of this share was run (no bound was needed)."""
        self._settle()
        return self.done and not self.truncated and not self.beyond_max and not self.next_items

    def program_complete(self) -> bool:
        """Every schedule of the program was run: this share's are, and (split) every other share's."""
        return self.complete() and (self.share[1] == 1 or self.every_share_complete)

    def shared_run(self) -> bool:
        return self.shared

    def summary(self) -> SearchSummary:
        self._settle()
        return SearchSummary(enumeration=Enumeration(
            done=self.done, truncated=self.truncated, completed_bound=self.completed_bound,
            max_bound=self.max_bound, complete=self.complete(), schedules=self.schedules))


def share_common_tree(shares: Sequence[BoundedDFS]) -> None:
    """Shares of one split searched in one process: one search of the common tree serves them all."""
    tree = shares[0].common if shares else None
    for share in shares:
        share.common = tree
