"""Dynamic partial-order reduction: source-DPOR with sleep sets.

The algorithm is the source-set one of Abdulla, Aronis, Jonsson and Sagonas, "Optimal
dynamic partial order reduction" (POPL 2014, Algorithm 1), run statelessly: each run
replays the choices on the current path of the search tree and takes the default at
every new decision; after the run, its steps' records are read back and

- every pair of dependent steps of two threads in a race (ordered only by their own
  dependence, with no step between them in happens-before) adds, at the decision before
  the first, a thread that can start the reversed order (an *initial* of the steps that do
  not depend on the first, followed by the second), unless one is already there;
- the threads already explored at a decision sleep in its later alternatives until a
  step dependent with theirs runs; a run that reaches a sleeping thread's step repeats
  an explored order, and nothing after that point is learnt from it.

Dependence (over-approximated where the records cannot tell, which is sound):

- two accesses to the same object and field (or the object as a whole), one a write;
- operations on the same lock: every Condition, Semaphore, Event, Barrier, queue, future
  and ``join`` is built on locks, so their operations are lock operations. A lock's
  acquire races with the previous acquire of another thread (putting it first reverses
  the critical sections); a failed try-acquire with the release after it;
- thread starts with each other (they number the threads); a thread's first step is
  ordered after its start, a join after the joined thread's end (its lock);
- reads of the clock with jumps of the clock, draws of ``random`` with each other;
- a step that noted nothing it touched (a loop's tick, a ``sleep``) is dependent with
  every step, for the sleep sets, since nothing says what it did.

Pauses, faults and draws stay plain choices: every option of theirs is run, as the
bounded enumeration does. With no preemption bound the search is complete for the
program's thread orders, within the pause, fault and draw budgets of a run. It needs the
steps' records (shared accesses as the steps); without them (line or opcode
granularity) every option of every decision is run.

With a preemption bound ``k`` (paid choices as the bounded enumeration counts them:
preemptions, pauses, faults, changed draws), every schedule of at most ``k`` paid
choices is equivalent to one that is run. Pruning DPOR's search by the bound alone loses
schedules: the reversal of a race may need a preemption more than the bound allows at
the decision before the race, while the same order is within the bound if the other
thread is put first where the racing thread was last switched to (Coons, Musuvathi and
McKinley, "Bounded partial-order reduction", OOPSLA 2013; loom does the same). So:

- each race's second thread is added both at the decision before the first step and at
  the decision where the first step's thread was switched to, at each only within the
  bound (a thread that cannot run at a decision: every thread that can, as Flanagan and
  Godefroid's DPOR does);
- a thread sleeps in a later sibling's subtree only where the order it stands for is
  known to be within the bound (see :meth:`DPOR._may_sleep`); there are no source sets (the
  one initial chosen may be over the bound where another is not); a new decision takes
  the free default, so that a deviation costs only what it must.

The search tree is kept; the subtrees still to run are taken cheapest first (the fewest
paid choices on the way: preemptions, pauses, faults, changed draws), then the deepest, so
low-preemption schedules come first, as in the bounded enumeration. The threads whose
subtrees at a decision were begun before an option's sleep in that option's subtree.

Split ``n`` ways (:meth:`DPOR.partition`; the campaign always splits into its 16 slots),
every share runs the search alike, the *common* search, until it has made
``DEAL_RUNS_PER_SHARE * n`` runs and at least ``n`` subtrees still to run are queued (or it
is done); share ``i`` counts its runs ``i, i+n, i+2n...`` of it, and the others' runs of it
are *shared* runs, counted nowhere. Shares searched in one process
(:meth:`DPOR.shares`) run the common search once between them. Then the queued subtrees
are dealt in the order they would be run, modulo ``n``; each share goes on with its own copy
of the tree as the common search left it (its sleep sets, its queued and begun options),
running its dealt subtrees and every subtree its own runs call for that is not queued in
that copy: a race found below a share's subtrees may call for a reversal at a decision of
the common part, which only the shares whose runs pass there can find, so the share that
finds it runs it, even if another share finds it too. So a share's runs depend only on the
common search and its own runs, never on which shares run beside it; what is queued at the
deal is run once, by the share it is dealt to; and every subtree the whole search would run
is run by some share, some of them by more than one (a subtree dealt to another share is not
asleep in this share's later siblings: its first step is not known here). docs/strategies.md
gives the duplicates measured.
"""

from __future__ import annotations

import copy
import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from ..decisions import PAUSE, DecisionPoint, FinishedRun, Option, RunThread, options_text, run_thread
from .base import Enumeration, SearchSummary, Strategy
from .dfs import Nondeterminism

#: Runs the common search makes per share before it is dealt. Its first runs find the
#: reversals at the decisions nearest the root, which every share's runs would find again
#: if dealt before them: dealt after 2 runs, producer_consumer's twin at bound 2 ran 24,679
#: schedules for 11,663; after 32, 14,134 (docs/strategies.md).
DEAL_RUNS_PER_SHARE = 2

#: Kinds of records (see :func:`_events`).
READ, WRITE, ACQUIRE, RELEASE, BLOCK, TRY, TIMED, SPAWN, OUTLIVE, CALL = range(10)
_LOCK_KINDS = {"acquire": ACQUIRE, "release": RELEASE, "block": BLOCK, "try": TRY, "timed": TIMED}
#: Pseudo-objects of the records that are not the program's objects.
_CLOCK, _RANDOM, _THREADS = ("clock",), ("random",), ("threads",)
#: An object first touched after the decision a footprint was taken at: named differently
#: in another run (objects are numbered in the order a run first touches them).
_NEW = ("new",)

#: A footprint item: ("a", object, field, write), ("l", lock) or ("*",) (anything).
Item: TypeAlias = tuple[Any, ...]
Footprint: TypeAlias = frozenset[Item]
_ANYTHING: Footprint = frozenset({("*",)})
Clock: TypeAlias = dict[int, int]


@dataclass(slots=True)
class _Event:
    """One record of a run as a step's part: who, what, and its place in happens-before."""

    thread: int
    seq: int  # the thread's own count of events, from 1
    kind: int
    obj: Any  # an access's object key; a lock's number; a spawned or outlived thread
    field: Any
    node: int | None  # the decision whose chosen step this is part of; None: a step no decision chose
    segment: int  # the decision last made before it (-1: none)
    past: Clock = field(default_factory=dict)  # what happens before it, itself included
    before: Clock = field(default_factory=dict)  # what happened before it in its thread's past
    place: Any = None  # where it is filed for finding what it conflicts with (see _place)


@dataclass(slots=True)
class _Node:
    """A decision on the current path."""

    options: tuple[Option, ...]
    scheduling: bool
    chosen: Option
    backtrack: list[Option]  # to run here (in the order found); the chosen one included
    done: dict[Option, Footprint | None] = field(default_factory=dict)  # run, with their first step's footprint
    footprint: Footprint | None = None  # of the chosen thread's first step here (None: not a thread)
    #: Events of the chosen thread's first step here, and of each done thread's.
    length: int = 0
    lengths: dict[Option, int] = field(default_factory=dict)
    sleep: dict[int, Footprint] = field(default_factory=dict)  # threads asleep on arriving here
    known: tuple[int, int] = (0, 0)  # objects and locks the run had named when it got here
    #: The reading of the records as it stood here, kept while subtrees here are still to run.
    resume: _Resume | None = None
    steps: tuple[int, ...] = ()  # each thread's steps when the run got here
    #: Per option added for a race: the order to follow after it, as (thread, run it until
    #: it has taken this many steps), so that the reversal is what runs next.
    guides: dict[Option, list[tuple[int, int]]] = field(default_factory=dict)
    #: Where it is in the search tree: the decision before it and the option taken there.
    parent: _Node | None = None
    via: Option | None = None
    depth: int = 0
    #: Paid choices (preemptions, pauses, faults, draws) on the way here.
    cost: int = 0
    running: int = 0  # the thread running when the decision was asked
    preemptive: bool = False
    default: Option | None = None
    #: The options run here, in the order their subtrees were begun: the threads begun
    #: before an option sleep in its subtree.
    order: list[Option] = field(default_factory=list)
    queued: set[Option] = field(default_factory=set)
    #: Per thread option run here: whether the thread could go on after its step (a switch
    #: away from it then was paid); unknown is taken as yes.
    continues: dict[Option, bool] = field(default_factory=dict)

    def paid(self, option: Option) -> bool:
        """As :meth:`DecisionPoint.paid`: a preemption, a pause, a fault or a changed draw."""
        if option == self.default:
            return False
        if isinstance(option, RunThread):
            return self.preemptive and option.thread != self.running
        return True


class DPOR(Strategy):
    name = "dpor"
    first_run_in_default_order = True
    label = "dpor"
    needs_accesses = True

    def __init__(self, max_preemptions: int | None = None) -> None:
        #: Paid choices a schedule may make (None: no bound).
        self.bound = max_preemptions
        self.stack: list[_Node] = []
        #: The subtrees to run, cheapest (fewest paid choices) first, then the deepest: low
        #: preemption schedules come first, as in the bounded enumeration, with no bound.
        self.work: list[tuple[int, int, int, _Node, Option]] = []
        self._pushed = 0
        self.depth = 0
        self.done = False
        self.truncated = False
        self.schedules = 0
        #: Decisions of the current path that the run about to start replays (the deepest is
        #: where it deviates); those after are new.
        self._replayed = 0
        #: Threads asleep where the run about to start deviates (they may wake during it:
        #: that is known only when it ends).
        self._drowsy: set[int] = set()
        #: The order the run about to start follows after it deviates (see :attr:`_Node.guides`).
        self._guide: list[tuple[int, int]] = []
        #: Each thread's steps when the last run ended.
        self._final_steps: tuple[int, ...] = ()
        #: Runs ended, skipped ones included (the common search's runs are dealt by this number).
        self.ended = 0
        self.share = (0, 1)
        #: Split: the common search every share runs alike until it can be dealt, run once
        #: by the shares of one process (see the module docstring); None once left.
        self.common: DPOR | None = None
        self.in_common = False  # the run under way is one of the common search's
        self.shared = False  # ... and another share's (see Strategy.shared_run)
        self.own_common = 0  # this share's runs of the common search so far
        #: The common search: stop and deal once this many subtrees are queued (None: never)
        #: and it has ended ``DEAL_RUNS_PER_SHARE`` runs per share.
        self.deal_at: int | None = None
        self.dealt = False  # the common search stopped to be dealt; its queue is the deal

    def partition(self, index: int, count: int) -> None:
        """Explore only share ``index`` of ``count`` (call before the first run; see the module docstring)."""
        if not 0 <= index < count:
            raise ValueError(f"share {index} of {count} does not exist")
        self.share = (index, count)
        if count > 1:
            self.common = DPOR(self.bound)
            self.common.deal_at = count

    def shares(self, count: int, indices: Sequence[int]) -> list[Strategy]:
        out = [DPOR(self.bound) for _ in indices]
        for share, index in zip(out, indices):
            share.partition(index, count)
        for share in out:  # one common search for the shares searched in this process
            share.common = out[0].common
        return list(out)

    def begin_run(self, run_index: int) -> bool:
        self.depth = 0
        self.in_common = self.shared = False
        if self.done:
            return False
        tree = self.common
        if tree is not None and not (tree.done or tree.dealt):
            # Its runs i, i+n, i+2n... are this share's; the others' are replayed, not counted.
            index, count = self.share
            if tree.ended > self.own_common * count + index:  # a run of ours was made without us (skipped)
                self.own_common = -(-(tree.ended - index) // count)
            self.in_common = True
            self.shared = tree.ended < self.own_common * count + index
            tree.begin_run(run_index)
            return True
        self._settle()
        return not self.done

    def shared_run(self) -> bool:
        return self.shared

    def skip_run(self) -> None:
        """Give up the run about to start and the subtree below it (the search is no longer exhaustive)."""
        self.truncated = True
        if self.in_common and self.common is not None:
            self.common.skip_run()  # every share's deal of the subtrees below it is lost
            if not self.shared:
                self.own_common += 1
            return
        self.schedules -= 1
        self.end_run(None)

    def _settle(self) -> None:
        """Once the common search is done or stopped to be dealt, take this share's deal of its queue:
        its live subtrees in the order they would be run, ``index`` modulo ``count``."""
        tree = self.common
        if tree is None or not (tree.done or tree.dealt):
            return
        self.common = None
        self.truncated = self.truncated or tree.truncated
        if tree.done:
            self.done = True
            return
        index, count = self.share
        live = sorted(entry for entry in tree.work if _live(entry[3], entry[4]))
        copies: dict[int, _Node] = {}
        self.work = [(*entry[:3], _copy_path(entry[3], copies), entry[4]) for entry in live[index::count]]
        self._pushed = tree._pushed
        self._next()

    def choose(self, point: DecisionPoint) -> Option:
        if self.in_common and self.common is not None:
            return self.common.choose(point)
        d = self.depth
        self.depth += 1
        if d < len(self.stack):
            choice = self.stack[d].chosen
            if choice not in point.options:
                raise Nondeterminism(f"decision {d}: expected {choice}, got {options_text(point.options)}")
            return choice
        scheduling = point.is_scheduling()
        default = point.default
        guide, steps = self._guide, point.thread_steps
        while guide and (guide[0][0] >= len(steps) or steps[guide[0][0]] >= guide[0][1]):
            del guide[0]
        guided = run_thread(guide[0][0]) if guide and scheduling else None
        if guided is not None and guided in point.options:
            default = guided
        elif scheduling and isinstance(default, RunThread) and default.thread in self._drowsy:
            # Any first choice is as good at a new decision: one not asleep, as far as is known.
            default = next((o for o in point.options if isinstance(o, RunThread)
                            and o.thread not in self._drowsy), default)
        # Pauses, faults and draws are plain choices: each option is run.
        plain = [o for o in point.options if o != default and (not scheduling or o is PAUSE)]
        parent = self.stack[-1] if self.stack else None
        node = _Node(point.options, scheduling, default, [default, *plain], steps=tuple(steps), parent=parent,
                     via=parent.chosen if parent else None, depth=d,
                     cost=parent.cost + parent.paid(parent.chosen) if parent else 0, running=point.thread,
                     preemptive=point.preemptive, default=point.default, order=[default])
        self.stack.append(node)
        return default

    def end_run(self, result: FinishedRun | None) -> None:
        if self.in_common and self.common is not None:
            self.common.end_run(result)
            if not self.shared:
                self.schedules += 1
                self.own_common += 1
            return
        self.schedules += 1
        self.ended += 1
        stack = self.stack
        new_from = self._replayed
        self._guide = []
        if result is not None:
            self._final_steps = tuple(result.extra.get("thread_steps", ()))
            if result.marks and len(result.marks) == len(stack):
                self._learn(result, new_from)
            else:  # nothing says what the steps touched: every option of every new decision is run
                for node in stack[new_from:]:
                    node.backtrack = list(node.options)
        for i, node in enumerate(stack):
            if node.chosen not in node.done:
                node.done[node.chosen] = node.footprint
                node.lengths[node.chosen] = node.length
                after = stack[i + 1] if i + 1 < len(stack) else None
                node.continues[node.chosen] = not (
                    after is not None and after.scheduling and isinstance(node.chosen, RunThread)
                    and (after.running != node.chosen.thread or not after.preemptive))
            for option in node.backtrack:
                if self.bound is not None and node.cost + node.paid(option) > self.bound:
                    continue
                if option not in node.queued and option not in node.order:
                    node.queued.add(option)
                    self._pushed += 1
                    heapq.heappush(self.work, (node.cost + node.paid(option), -node.depth, self._pushed, node, option))
            if node.resume is not None and not any(_live(node, option) for option in node.queued):
                node.resume = None  # no run will start here again (one passing through may keep another)
        if self.deal_at is not None and self.ended >= DEAL_RUNS_PER_SHARE * self.deal_at \
                and sum(_live(n, o) for _, _, _, n, o in self.work) >= self.deal_at:
            self.dealt = True  # the shares take it from here (see _settle)
            return
        self._next()

    def _next(self) -> None:
        """Begin the next subtree of the queue that is still to run; done when there is none."""
        while self.work:
            _, _, _, node, option = heapq.heappop(self.work)
            if not _live(node, option):
                continue
            self._begin(node, option)
            return
        self.stack = []
        self.done = True

    def _begin(self, node: _Node, option: Option) -> None:
        """The next run replays the way to ``node`` and takes ``option`` there."""
        path = [node]
        while path[-1].parent is not None:
            parent = path[-1].parent
            assert parent is not None
            parent.chosen = path[-1].via  # type: ignore[assignment]  # a child's via is set
            parent.footprint, parent.length = parent.done.get(parent.chosen), parent.lengths.get(parent.chosen, 0)
            path.append(parent)
        path.reverse()
        before = list(node.order)
        node.order.append(option)
        node.chosen, node.footprint, node.length = option, None, 0
        self.stack = path
        self._replayed = len(path) - 1
        if self.bound is None:  # bounded, a new decision takes the free default (see the module docstring)
            self._drowsy = set(node.sleep) | {o.thread for o in before if isinstance(o, RunThread)}
            self._guide = list(node.guides.get(option, ()))


    # ------------------------------------------------------------------ learning

    def _learn(self, result: FinishedRun, new_from: int) -> None:
        """Sleep sets along the path, footprints of the new decisions' steps, races found."""
        stack = self.stack
        events, starts, known = _events(result, stack, new_from)
        for node, k in zip(stack, known):
            node.known = k
        # Footprints of each decision's chosen first step, relative to what was named there.
        prints: dict[int, set[Item]] = {}
        lengths: dict[int, int] = {}
        # The replayed decisions' steps were read by the run that first took them.
        unread = next((i for i, node in enumerate(stack)
                       if node.footprint is None and isinstance(node.chosen, RunThread)), len(stack))
        for e in events[starts[unread] if unread < len(starts) else len(events):]:
            if e.node is not None:
                prints.setdefault(e.node, set()).add(_item(e, stack[e.node].known))
                lengths[e.node] = lengths.get(e.node, 0) + 1
        for i, node in enumerate(stack):
            if node.footprint is None and isinstance(node.chosen, RunThread):
                node.footprint = frozenset(prints[i]) if i in prints else _ANYTHING
                node.length = lengths.get(i, 0)
        # Sleep sets, and where the run first ran a sleeping thread's step (nothing is learnt after it).
        end = len(events)
        cut_node = len(stack)
        boundaries = set(starts)
        sleeping: dict[int, tuple[Footprint, tuple[int, int] | None]] = {}
        for i, node in enumerate(stack):
            if i > 0:
                node.sleep = {t: fp for t, (fp, _) in sleeping.items()}
            begun_before = node.order[:node.order.index(node.chosen)] if node.chosen in node.order else []
            for option in begun_before:
                fp = node.done.get(option)
                if isinstance(option, RunThread) and fp is not None and self._may_sleep(node, option):
                    # The thread's next step is the same in this run: named as this run names
                    # things when it runs here later; else as the run that explored it did.
                    later = _next_step(events, boundaries, option.thread, starts[i], node.lengths.get(option, 0))
                    sleeping[option.thread] = (later, None) if later else (fp, node.known)
            if isinstance(node.chosen, RunThread) and node.chosen.thread in sleeping:
                cut_node, end = i, starts[i]
                break
            if node.chosen is PAUSE:
                sleeping.clear()  # the clock jumped: conservatively, every sleeper wakes
            if not sleeping:
                continue  # nothing to wake, and no step can be a sleeper's
            stop = starts[i + 1] if i + 1 < len(stack) else len(events)
            blocked = False
            for j in range(starts[i], stop):
                e = events[j]
                if e.thread in sleeping:
                    blocked = True
                    cut_node, end = i, j
                    break
                for t, (fp, at) in list(sleeping.items()):
                    if _dependent(fp, _item(e, at)):
                        del sleeping[t]
            if blocked:
                break
        del stack[cut_node + 1:]
        last = stack[cut_node] if cut_node < len(stack) else None
        if last is not None and isinstance(last.chosen, RunThread) and last.chosen.thread in sleeping:
            # The default here was a sleeping thread: its order was run; run one that is awake instead.
            node = last
            awake = sorted((o for o in node.options if isinstance(o, RunThread) and o.thread not in sleeping),
                           key=node.paid)
            if awake and not any(o in awake for o in node.backtrack):
                node.backtrack.append(awake[0])
        self._races(events, starts, end, starts[min(new_from, len(starts) - 1)] if starts else 0)

    def _races(self, events: list[_Event], starts: list[int], end: int, new: int) -> None:
        """For each race among the first ``end`` events whose second is at ``new`` or after, a
        thread that starts its reversal (the races within the replayed prefix were found by the
        run that first took it)."""
        stack = self.stack
        # Per place, the last event of each thread and kind there: an earlier one of the same
        # thread happens before it, so it is in no immediate race with a later event.
        by_place: dict[Any, dict[tuple[int, int], int]] = {}
        fields: dict[Any, set[Any]] = {}  # per object, the fields of its places
        step_start: dict[int, int] = {}  # per decision, the first event of the step chosen there
        for j in range(end):
            e2 = events[j]
            place = e2.place
            if place is None:
                continue
            if j < new:
                by_place.setdefault(place, {})[(e2.thread, e2.kind)] = j
                fields.setdefault(place[0], set()).add(place[1])
                continue
            candidates = [i for i in _conflicting(events, by_place, fields, e2) if events[i].thread != e2.thread
                          and e2.before.get(events[i].thread, 0) < events[i].seq]
            by_place.setdefault(place, {})[(e2.thread, e2.kind)] = j
            fields.setdefault(place[0], set()).add(place[1])
            for i in candidates:
                e1 = events[i]
                if self.bound is not None and e1.node is None and 0 <= e1.segment < len(stack):
                    # Only its own thread could run there; the order may be reversed where it was switched to.
                    if not any(events[k].past.get(e1.thread, 0) >= e1.seq for k in candidates if k != i):
                        self._reverse_within_bound(self._switched_to(e1.segment, e1.thread), e2.thread)
                    continue
                if e1.node is None or e1.node >= len(stack):
                    continue  # a step no decision chose: only its own thread could run there
                if any(events[k].past.get(e1.thread, 0) >= e1.seq for k in candidates if k != i):
                    continue  # not an immediate race: a step between them is in one with each
                first = step_start.get(e1.node, -1)
                if first < 0:  # its step's events come after the decision, not always at once
                    first = step_start[e1.node] = next(k for k in range(starts[e1.node], i + 1)
                                                       if events[k].node == e1.node)
                if e2.before.get(e1.thread, 0) >= events[first].seq:
                    continue  # it depends on an earlier part of e1's step (a start): steps are not split
                if self.bound is not None:
                    self._reverse_within_bound(e1.node, e2.thread)
                    self._reverse_within_bound(self._switched_to(e1.node, e1.thread), e2.thread)
                    continue
                node = stack[e1.node]
                threads = [o for o in node.options if isinstance(o, RunThread)]
                mine = next((o for o in threads if o.thread == e2.thread), None)
                if mine is not None and (mine in node.backtrack or e2.thread in node.sleep):
                    continue  # its own thread could go first there, and is run there (or asleep)
                initials = _initials(events, first, j, candidates)
                if any(isinstance(o, RunThread) and o.thread in initials for o in node.backtrack) \
                        or any(t in initials for t in node.sleep):
                    continue  # a thread that starts the reversal is run here, or asleep (its orders were run)
                startable = [o for o in threads if o.thread in initials]
                for option in (startable[:1] if startable else threads):
                    if option not in node.backtrack:
                        node.backtrack.append(option)
                        node.guides[option] = self._guide_for(events, first, j)

    def _may_sleep(self, node: _Node, option: Option) -> bool:
        """Whether ``option``'s thread, run at ``node`` before the option chosen there, may sleep in
        the chosen option's subtree. Unbounded, always. Within a bound, only if a schedule of the
        chosen option's subtree that runs the sleeper's step later costs no less than its
        equivalent with that step moved back here, in the sleeper's subtree, which was run
        within the bound: so when the sleeper costs no more here than the chosen option and
        could not go on after its step (the switch back from it was free). (Allowing a sleeper
        that could go on where it cost one less lost an outcome in tests/test_dpor.py.)"""
        if self.bound is None:
            return True
        return not node.continues.get(option, True) and node.paid(option) <= node.paid(node.chosen)

    def _reverse_within_bound(self, at: int, thread: int) -> None:
        """Run ``thread`` at decision ``at`` (every thread that can, if it cannot), within the bound."""
        node = self.stack[at]
        threads = [o for o in node.options if isinstance(o, RunThread)]
        mine = [o for o in threads if o.thread == thread]
        for option in mine or threads:
            if option not in node.backtrack and node.cost + node.paid(option) <= (self.bound or 0):
                node.backtrack.append(option)

    def _switched_to(self, at: int, thread: int) -> int:
        """The decision, at ``at`` or before, where ``thread`` was last switched to (a switch that no
        decision chose: the first decision after it that chose the thread; none: the first decision)."""
        stack = self.stack
        found = at
        for i in range(at, -1, -1):
            node = stack[i]
            if not node.scheduling:
                continue
            if not isinstance(node.chosen, RunThread) or node.chosen.thread != thread:
                return found
            found = i
            if node.running != thread:
                return i
        return found

    def _guide_for(self, events: list[_Event], i: int, j: int) -> list[tuple[int, int]]:
        """The order of the steps after event ``i`` that do not depend on it, then event ``j``'s
        thread: each thread's steps by the end of the stretch between two decisions its events are in."""
        e1 = events[i]
        stack = self.stack
        guide: list[tuple[int, int]] = []

        def upto(e: _Event) -> int:
            after = e.segment + 1
            steps = stack[after].steps if after < len(stack) else self._final_steps
            return steps[e.thread] if e.thread < len(steps) else 0

        for k in [*range(i + 1, j), j]:
            ev = events[k]
            if k != j and ev.past.get(e1.thread, 0) >= e1.seq:
                continue
            entry = (ev.thread, upto(ev))
            if guide and guide[-1][0] == ev.thread:
                guide[-1] = entry
            else:
                guide.append(entry)
        return guide

    # ------------------------------------------------------------------ summary

    def exhausted(self) -> bool:
        self._settle()
        return self.done and not self.truncated

    def summary(self) -> SearchSummary:
        self._settle()
        bound = -1 if self.bound is None else self.bound
        return SearchSummary(enumeration=Enumeration(
            done=self.done, truncated=self.truncated, completed_bound=bound if self.done else -1, max_bound=bound,
            complete=False, schedules=self.schedules, partial_order=True))


def _live(node: _Node, option: Option) -> bool:
    """Whether a queued subtree is still to run: not begun, and its thread not asleep there."""
    return option not in node.order and not (isinstance(option, RunThread) and option.thread in node.sleep)


def _copy_path(node: _Node, copies: dict[int, _Node]) -> _Node:
    """A share's own copy of ``node`` and the decisions above it (``copies``: those copied so far, by id),
    so that what it learns after the deal changes nothing of another share's."""
    chain: list[_Node] = []
    at: _Node | None = node
    while at is not None and id(at) not in copies:
        chain.append(at)
        at = at.parent
    for old in reversed(chain):
        new = copy.copy(old)
        new.parent = None if old.parent is None else copies[id(old.parent)]
        new.backtrack, new.order = list(old.backtrack), list(old.order)
        new.done, new.lengths, new.sleep = dict(old.done), dict(old.lengths), dict(old.sleep)
        new.continues, new.queued = dict(old.continues), set(old.queued)
        new.guides = {option: list(guide) for option, guide in old.guides.items()}
        copies[id(old)] = new
    return copies[id(node)]


@dataclass(slots=True)
class _Resume:
    """The reading of a run's records (:func:`_events`) as it stood when the run reached a
    decision: every later run that takes the same choices before that decision has the same
    records up to it, so its reading starts from here. Nothing in it is changed after it is
    taken (the reader replaces the clocks and sets it would change)."""

    events: list[_Event]  # a list the reader no longer appends to beyond ``count`` in this run
    count: int
    starts: list[int]
    known: list[tuple[int, int]]
    mark: tuple[int, int]  # the records before the decision: (accesses, syncs)
    objects: int
    seqs: dict[int, int]
    thread_clock: dict[int, Clock]
    written: dict[Any, Clock]
    read: dict[Any, Clock]
    fields: dict[Any, frozenset[Any]]
    lock_clock: dict[int, Clock]
    call_clock: dict[int, Clock]
    chosen: int | None
    node: int | None


def _events(result: FinishedRun, stack: list[_Node],
            replayed: int = 0) -> tuple[list[_Event], list[int], list[tuple[int, int]]]:
    """The run's records as events in the order they happened, with happens-before (vector
    clocks over program order and dependence) and the decision each chosen first step
    belongs to; the index of the first event after each decision; and per decision, the
    objects and locks the run had named by then.

    The run replays the choices of ``stack[:replayed]``: its reading starts from the resume
    that ``stack[replayed]`` keeps, if any; and each decision without one gets one."""
    accesses, syncs, marks = result.accesses, result.syncs, result.marks
    events: list[_Event] = []
    starts: list[int] = []
    known: list[tuple[int, int]] = []
    locks: dict[int, int] = {}
    objects = 0
    seqs: dict[int, int] = {}
    thread_clock: dict[int, Clock] = {}
    written: dict[Any, Clock] = {}  # per (object, field): the last write's past
    read: dict[Any, Clock] = {}  # per (object, field): the reads' pasts since
    fields: dict[Any, frozenset[Any]] = {}  # per object: the fields touched
    lock_clock: dict[int, Clock] = {}
    call_clock: dict[int, Clock] = {}  # per synchronization object: its methods' last call
    # Which decision the records being read belong to: (thread chosen, decision, phase).
    chosen: int | None = None
    node: int | None = None
    a = s = m = 0
    resume = stack[replayed].resume if replayed < len(stack) else None
    if resume is not None and replayed < len(marks) and marks[replayed] == resume.mark:
        events, starts, known = resume.events[:resume.count], resume.starts[:replayed], resume.known[:replayed]
        (a, s), m, objects = resume.mark, replayed, resume.objects
        seqs, thread_clock, written = dict(resume.seqs), dict(resume.thread_clock), dict(resume.written)
        read, fields = dict(resume.read), dict(resume.fields)
        lock_clock, call_clock = dict(resume.lock_clock), dict(resume.call_clock)
        chosen, node = resume.chosen, resume.node
        for _, _, name, ident in syncs[:s]:  # locks are named by id, which differs between runs
            if name in _LOCK_KINDS or name == "call":
                locks.setdefault(ident, len(locks))
    while True:
        while m < len(marks) and marks[m][0] <= a and marks[m][1] <= s:
            if m < len(stack) and stack[m].resume is None:
                stack[m].resume = _Resume(
                    events, len(events), starts, known, marks[m], objects, dict(seqs), dict(thread_clock),
                    dict(written), dict(read), dict(fields), dict(lock_clock), dict(call_clock), chosen, node)
            starts.append(len(events))
            known.append((objects, len(locks)))
            decision = stack[m]
            if decision.scheduling:
                if isinstance(decision.chosen, RunThread):
                    chosen, node = decision.chosen.thread, m
                else:
                    chosen = node = None
            m += 1
        if s < len(syncs) and syncs[s][0] <= a:
            obj: Any
            _, thread, kind_name, obj = syncs[s]
            s += 1
            kind = _LOCK_KINDS.get(kind_name)
            if kind is not None:
                obj = locks.setdefault(obj, len(locks))
                fld: Any = None
            elif kind_name == "spawn":
                kind, fld = SPAWN, None
            elif kind_name == "outlive":
                kind, fld = OUTLIVE, None
            elif kind_name in ("clock", "jump"):
                kind, obj, fld = (READ if kind_name == "clock" else WRITE), _CLOCK, None
            elif kind_name == "draw":
                kind, obj, fld = WRITE, _RANDOM, None
            elif kind_name == "call":
                kind, obj, fld = CALL, locks.setdefault(obj, len(locks)), None
            else:
                continue  # a record that orders nothing
        elif a < len(accesses):
            thread, obj, fld, write, _ = accesses[a]
            a += 1
            kind = WRITE if write else READ
            if isinstance(obj, int):
                objects = max(objects, obj + 1)
        else:
            break
        # The chosen thread's first step: what it does before another thread runs (the lock
        # operations of a stdlib call after an access may be part of the access's step).
        if thread != chosen or node is None:
            at, node = None, None
        else:
            at = node
        seq = seqs[thread] = seqs.get(thread, 0) + 1
        before = thread_clock.get(thread, {})
        past = dict(before)
        if kind == SPAWN:
            _place_write(past, written, read, fields, _THREADS, None)
        elif kind == OUTLIVE:
            _join(past, thread_clock.get(obj))
        elif kind in (READ, WRITE):
            if kind == WRITE:
                _place_write(past, written, read, fields, obj, fld)
            else:
                touched = fields.get(obj, frozenset())
                for f in (touched if fld is None else (fld, None)):
                    _join(past, written.get((obj, f)))
                if fld not in touched:
                    fields[obj] = touched | {fld}
        elif kind == CALL:
            _join(past, call_clock.get(obj))
        else:
            _join(past, lock_clock.get(obj))
        past[thread] = seq
        if kind == READ:
            readers = read.get((obj, fld))
            read[(obj, fld)] = _joined(readers, past) if readers else past
        elif kind == WRITE:
            written[(obj, fld)] = past
        elif kind == SPAWN:
            written[(_THREADS, None)] = past
            spawned = thread_clock.get(obj)
            thread_clock[obj] = _joined(spawned, past) if spawned else past
        elif kind == CALL:
            call_clock[obj] = past
        elif kind != OUTLIVE:
            lock_clock[obj] = past
        thread_clock[thread] = past
        if kind == SPAWN:
            obj = _THREADS
        event = _Event(thread, seq, kind, obj, fld, at, m - 1, past, before)
        event.place = _place(event)
        events.append(event)
    while m < len(marks):  # decisions after the last record
        starts.append(len(events))
        known.append((objects, len(locks)))
        m += 1
    return events, starts, known


def _place_write(past: Clock, written: dict[Any, Clock], read: dict[Any, Clock],
                 fields: dict[Any, frozenset[Any]], obj: Any, fld: Any) -> None:
    """A write is ordered after every earlier access of what it writes."""
    touched = fields.get(obj, frozenset())
    for f in (touched if fld is None else (fld, None)):
        _join(past, written.get((obj, f)))
        _join(past, read.get((obj, f)))
        if fld is None:
            read.pop((obj, f), None)
    read.pop((obj, fld), None)
    if fld not in touched:
        fields[obj] = touched | {fld}


def _joined(clock: Clock, other: Clock) -> Clock:
    """A new clock: the join of two (neither is changed)."""
    out = dict(clock)
    _join(out, other)
    return out


def _join(into: Clock, other: Clock | None) -> None:
    if other:
        for thread, time in other.items():
            if into.get(thread, 0) < time:
                into[thread] = time


def _place(e: _Event) -> Any:
    """Where an event is filed for finding what it conflicts with (None: nowhere)."""
    if e.kind in (READ, WRITE):
        return (e.obj, e.field)
    if e.kind == SPAWN:
        return (_THREADS, None)
    if e.kind in (ACQUIRE, BLOCK, TRY, TIMED, RELEASE):
        return ("lock", e.obj)
    if e.kind == CALL:
        return ("call", e.obj)
    return None


def _conflicting(events: list[_Event], by_place: dict[Any, dict[tuple[int, int], int]],
                 fields: dict[Any, set[Any]], e: _Event) -> list[int]:
    """The earlier events whose order with ``e`` a reversal may change (see the module docstring)."""
    def at(place: Any, *kinds: int) -> list[int]:
        return [i for (_, kind), i in by_place.get(place, {}).items() if kind in kinds]

    if e.kind in (READ, WRITE):
        places = ([(e.obj, f) for f in fields.get(e.obj, ())] if e.field is None
                  else [(e.obj, e.field), (e.obj, None)])
        kinds = (WRITE,) if e.kind == READ else (READ, WRITE)
        return [i for place in places for i in at(place, *kinds)]
    if e.kind == SPAWN:
        return at((_THREADS, None), SPAWN)
    if e.kind in (ACQUIRE, BLOCK, TRY):
        return at(("lock", e.obj), ACQUIRE)
    if e.kind == RELEASE:
        return at(("lock", e.obj), TRY)
    if e.kind == TIMED:
        return at(("lock", e.obj), RELEASE)
    if e.kind == CALL:
        return at(("call", e.obj), CALL)
    return []


def _initials(events: list[_Event], i: int, j: int, candidates: list[int]) -> set[int]:
    """The threads that can start the steps after event ``i`` that do not depend on it,
    followed by event ``j``: the first step of each that nothing among them happens before."""
    e1 = events[i]
    first: dict[int, int] = {}
    initials: set[int] = set()
    for k in range(i + 1, j):
        ev = events[k]
        if ev.past.get(e1.thread, 0) >= e1.seq:
            continue  # depends on e1
        if ev.thread not in first:
            if all(ev.past.get(u, 0) < s for u, s in first.items()):
                initials.add(ev.thread)
            first[ev.thread] = ev.seq
    e2 = events[j]
    if e2.thread not in first:
        past = dict(e2.before)
        for k in candidates:
            if k != i and events[k].past.get(e1.thread, 0) < e1.seq:
                _join(past, events[k].past)
        if all(past.get(u, 0) < s for u, s in first.items()):
            initials.add(e2.thread)
    return initials


def _next_step(events: list[_Event], boundaries: set[int], thread: int, start: int, length: int) -> Footprint:
    """What ``thread``'s first step from event ``start`` on touches: its first ``length``
    events (as many as that step had when it was run first, when it may have been several
    steps) before another thread's or a decision; empty if it does not run again."""
    items: set[Item] = set()
    taken = 0
    for k in range(start, len(events)):
        e = events[k]
        if e.thread == thread:
            items.add(_item(e, None))
            taken += 1
        elif items:
            break
        if items and (k + 1 in boundaries or taken >= length):
            break
    return frozenset(items)


def _item(e: _Event, known: tuple[int, int] | None) -> Item:
    """What an event touched, named so that another run with the same path to the decision
    whose ``known`` counts these are names it the same (None: as this run names it)."""
    if e.kind in (READ, WRITE):
        obj = e.obj
        fld = e.field
        if known is not None:
            obj = _NEW if isinstance(obj, int) and obj >= known[0] else obj
            fld = fld if fld is None or isinstance(fld, (str, int, bool)) else None
        return ("a", obj, fld, e.kind == WRITE)
    if e.kind == SPAWN:
        return ("a", _THREADS, None, True)
    if e.kind == OUTLIVE:
        return ("*",)
    return ("c" if e.kind == CALL else "l", _NEW if known is not None and e.obj >= known[1] else e.obj)


def _dependent(footprint: Footprint, item: Item) -> bool:
    """Whether a step with this footprint may not commute with a step touching ``item``."""
    if item[0] == "*":
        return True
    for mine in footprint:
        if mine[0] == "*":
            return True
        if mine[0] != item[0] or mine[1] != item[1]:
            continue
        if mine[0] in ("l", "c"):
            return True
        if (mine[3] or item[3]) and (mine[2] is None or item[2] is None or mine[2] == item[2]):
            return True
    return False
