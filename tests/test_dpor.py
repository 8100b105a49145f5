"""Dynamic partial-order reduction (``--strategy dpor``): one schedule per equivalence class
of the orders of dependent steps, checked on counts known by hand, and against the bounded
enumeration on every example and target.

The counts, by hand (the main thread's starts and joins order nothing the workers share:
a start is ordered before the child's steps, a join after them):

- threads that each touch only their own object: every order of their steps is equivalent,
  so one class;
- store buffering, ``x = 1; r1 = y`` beside ``y = 1; r2 = x``: the two conflicting pairs
  are (write x, read x) and (write y, read y), each in either order, which is four
  combinations; "read x before write x and read y before write y" is impossible (each
  thread writes before it reads, so one of the writes comes first and the other thread's
  read comes after it): three classes;
- ``n`` threads each doing one increment under one lock: the lock's critical sections are
  ordered, anything inside one is ordered by it, so the classes are the ``n!`` orders of the
  critical sections;
- two threads each doing ``k`` locked increments: the orders of ``2k`` critical sections,
  ``k`` of each thread, keeping each thread's own in order: ``C(2k, k)``, 20 for ``k = 3``.
"""

from __future__ import annotations

import copy
import json
import threading
from math import comb, factorial
from pathlib import Path

import pytest
from click.testing import CliRunner

from interleave import explore
from interleave.campaign import SLOTS, InProcess, Job, run_config, search
from interleave.cli import cli
from interleave.program import load
from interleave.strategies import dpor as dpor_module

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.py"))


class Box:
    def __init__(self) -> None:
        self.n = 0


def independent(threads: int = 3, steps: int = 3):
    def program():
        boxes = [Box() for _ in range(threads)]

        def work(box):
            for _ in range(steps):
                box.n = box.n + 1

        ts = [threading.Thread(target=work, args=(b,)) for b in boxes]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert [b.n for b in boxes] == [steps] * threads
    return program


def shared_box(threads: int = 2):
    """The same threads on one box: its reads and writes conflict."""
    def program():
        box = Box()

        def work():
            box.n = box.n + 1

        ts = [threading.Thread(target=work) for _ in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    return program


class Shared:
    def __init__(self) -> None:
        self.x = 0
        self.y = 0


def store_buffering(outcomes: set[tuple[int, int]] | None = None):
    def program():
        s = Shared()
        out: dict[str, int] = {}

        def left():
            s.x = 1
            out["r1"] = s.y

        def right():
            s.y = 1
            out["r2"] = s.x

        ts = [threading.Thread(target=left), threading.Thread(target=right)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        if outcomes is not None:
            outcomes.add((out["r1"], out["r2"]))
    return program


def locked_counter(threads: int, increments: int = 1):
    def program():
        box = Box()
        lock = threading.Lock()

        def work():
            for _ in range(increments):
                with lock:
                    box.n += 1

        ts = [threading.Thread(target=work) for _ in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert box.n == threads * increments
    return program


def dpor(program, **kwargs):
    kwargs.setdefault("runs", 5_000)
    return explore(program, strategy="dpor", seed=0, shrink_time=0, **kwargs)


def assert_exhausted(report, schedules: int) -> None:
    assert report.failure is None
    assert report.exhausted and report.partial_order and report.bound is None
    assert report.runs == report.distinct_schedules == schedules


def test_independent_threads_run_one_schedule():
    assert_exhausted(dpor(independent()), 1)


def test_threads_on_one_box_run_more_than_one():
    """The same program with the boxes shared is not reduced to one (the reduction sees the conflict)."""
    report = dpor(shared_box())
    assert report.exhausted and report.runs > 1


def test_store_buffering_runs_its_three_classes_and_sees_each_outcome():
    outcomes: set[tuple[int, int]] = set()
    assert_exhausted(dpor(store_buffering(outcomes)), 3)
    # The three classes are the three outcomes a sequentially consistent machine can give.
    assert outcomes == {(0, 1), (1, 0), (1, 1)}


@pytest.mark.parametrize("n", [2, 3])
def test_locked_increments_run_the_lock_orders(n):
    assert_exhausted(dpor(locked_counter(n)), factorial(n))


def test_two_threads_of_three_locked_increments_take_at_most_20_schedules():
    report = dpor(locked_counter(2, 3))
    assert_exhausted(report, comb(6, 3))
    assert report.runs <= 20


def test_the_report_says_every_order_was_run(tmp_path):
    target = tmp_path / "locked.py"
    target.write_text(
        "import threading\n\n"
        "def main():\n"
        "    box = {'n': 0}\n"
        "    lock = threading.Lock()\n"
        "    def work():\n"
        "        with lock:\n"
        "            box['n'] += 1\n"
        "    ts = [threading.Thread(target=work) for _ in range(3)]\n"
        "    for t in ts: t.start()\n"
        "    for t in ts: t.join()\n")
    out = tmp_path / "report.json"
    result = CliRunner().invoke(cli, ["explore", str(target), "--strategy", "dpor", "--workers", "1",
                                      "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "exhausted: every order of conflicting steps was run: 6 schedules" in result.output
    data = json.loads(out.read_text())
    assert data["exhausted"] is True and data["bound"] is None and data["runs"] == 6


def test_a_budget_that_ends_first_is_not_exhaustion():
    report = dpor(locked_counter(3), runs=4)
    assert report.runs == 4 and not report.exhausted


def three_counters(outcomes: set[tuple[int, ...]]):
    """Three threads, each reading one counter and writing another (a ring), and one of them
    a lock around its pair: the values read are the program's outcome, so a schedule lost to
    the reduction can show as an outcome missing."""
    def program():
        s = {"a": 0, "b": 0, "c": 0}
        seen: dict[str, int] = {}
        lock = threading.Lock()

        def ring(name, read, write, locked):
            def work():
                if locked:
                    with lock:
                        seen[name] = s[read]
                else:
                    seen[name] = s[read]
                s[write] = s[write] + 1
            return work

        ts = [threading.Thread(target=ring("p", "a", "b", False)), threading.Thread(target=ring("q", "b", "c", True)),
              threading.Thread(target=ring("r", "c", "a", False))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        outcomes.add((seen["p"], seen["q"], seen["r"], s["a"], s["b"], s["c"]))
    return program


def two_increments(outcomes: set[tuple[int, ...]]):
    """Two threads each adding one to a shared counter twice, unlocked, and noting what they read."""
    def program():
        box = Box()
        seen: list[int] = []

        def work():
            for _ in range(2):
                n = box.n
                seen.append(n)
                box.n = n + 1

        ts = [threading.Thread(target=work) for _ in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        outcomes.add((box.n, *seen))
    return program


# Every program at bounds 0-3 but three_counters at 3: there dfs runs 14,003 schedules (half of
# this test's time) for the 7 outcomes it already sees at bound 2 in 970 (measured), so the
# bound-3 comparison is made on store_buffering and two_increments.
@pytest.mark.parametrize("make, bound", [(make, bound) for make in (store_buffering, three_counters, two_increments)
                                         for bound in (0, 1, 2, 3) if (make, bound) != (three_counters, 3)])
def test_within_a_bound_dpor_reaches_every_outcome_the_enumeration_does(make, bound):
    """Every schedule with at most ``bound`` preemptions is equivalent to one dpor runs at that
    bound: it sees every outcome dfs sees at that bound, in fewer runs."""
    by_dfs: set[tuple[int, ...]] = set()
    by_dpor: set[tuple[int, ...]] = set()
    dfs = explore(make(by_dfs), strategy="dfs", max_preemptions=bound, runs=50_000, shrink_time=0, seed=0)
    report = dpor(make(by_dpor), max_preemptions=bound)
    assert dfs.exhausted and report.exhausted and report.bound == bound
    assert by_dpor == by_dfs
    assert report.runs <= dfs.runs


def test_the_bound_is_kept_and_grows_what_is_run():
    """Bound 0 runs the default order alone; each bound runs at least what the one below did."""
    runs = [dpor(locked_counter(3), max_preemptions=k).runs for k in range(4)]
    assert runs[0] == 1
    assert runs == sorted(runs)
    unbounded = dpor(locked_counter(3))
    assert unbounded.bound is None and unbounded.exhausted


def test_the_report_says_the_bound(tmp_path):
    target = tmp_path / "locked.py"
    target.write_text(
        "import threading\n\n"
        "def main():\n"
        "    box = {'n': 0}\n"
        "    lock = threading.Lock()\n"
        "    def work():\n"
        "        with lock:\n"
        "            box['n'] += 1\n"
        "    ts = [threading.Thread(target=work) for _ in range(2)]\n"
        "    for t in ts: t.start()\n"
        "    for t in ts: t.join()\n")
    out = tmp_path / "report.json"
    result = CliRunner().invoke(cli, ["explore", str(target), "--strategy", "dpor", "--max-preemptions", "1",
                                      "--workers", "1", "--json", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["exhausted"] is True and data["bound"] == 1
    assert (f"exhausted: every order of conflicting steps with at most 1 preemption was run: "
            f"{data['distinct_schedules']} schedules") in result.output


def _kinds(report):
    return {f.kind for f in report.failures}


# Each example's bug, and the targets': what the bounded enumeration finds (at bound 2, within
# 500 runs) dpor finds too. max_steps is lowered so that hangs end quickly (the same for both
# strategies): busy_wait, the one example that hangs, hangs at 1,000 as at 5,000 or 100,000, in
# the same runs (measured: dfs 88 runs, dpor 335 unbounded and 63 at bound 2, at 1,000 and 5,000),
# and no other program's failures change kind at 1,000. Of the targets, only nio_throttle's bug
# is found by dfs within such a budget (measured: final_request_processor, session_lock,
# follower_sync and reconnect_storm show nothing to dfs in 40 s each), so it is the one compared here.
PROGRAMS = [f"{p.relative_to(ROOT)}::main" for p in EXAMPLES] + ["targets/nio_throttle.py::main"]
HANG_STEPS = 1_000
# dpor's budget in runs. nio_throttle's one kind of failure (exception) is first found by dpor's
# search whole in run 27 unbounded and 153 at bound 2, split into the slots in runs 9 and 15
# (measured); dpor never exhausts it, so keep_going took all
# 1,500 runs (about 20 s a case) to find the same kind again. 300 keeps twice the runs it needs.
# producer_consumer's deadlock is found in run 1 at both bounds and dpor never exhausts it (it
# took all 1,500 runs); busy_wait's hang in run 3 unbounded and 5 at bound 2, where dpor took 335
# hanging runs to exhaust it unbounded (measured): 50 runs keep ten times what either needs.
DPOR_RUNS = {"targets/nio_throttle.py::main": 300, "examples/producer_consumer.py::main": 50,
             "examples/busy_wait.py::main": 50}


@pytest.mark.parametrize("bound", [None, 2])  # bounds 0-3 on small programs: the outcome test above
@pytest.mark.parametrize("spec", PROGRAMS)
def test_dpor_finds_every_failure_the_enumeration_finds(spec, bound, monkeypatch):
    """Unbounded, against dfs at bound 2; at bound k, against dfs at bound k (and where dfs ran every
    schedule of the bound, dpor finds nothing it did not: it runs no schedule over the bound)."""
    monkeypatch.chdir(ROOT)
    # Budgets in runs (the time limits are only a backstop for a loaded machine).
    settings = dict(shrink_time=0, keep_going=True, max_steps=HANG_STEPS, seed=0)
    dfs = explore(spec, strategy="dfs", max_preemptions=bound or 2, runs=500, time_limit=120, **settings)
    found = explore(spec, strategy="dpor", max_preemptions=bound, runs=DPOR_RUNS.get(spec, 1_500), time_limit=120,
                    **settings)
    assert _kinds(dfs), f"the enumeration found nothing in {spec}"
    assert _kinds(dfs) <= _kinds(found), (spec, _kinds(dfs), _kinds(found))
    if bound is not None and dfs.exhausted:
        assert _kinds(found) <= _kinds(dfs), (spec, _kinds(dfs), _kinds(found))


# producer_consumer's twin has more orders of its queue operations than a test can run.
TWINS = [pytest.param(spec, marks=pytest.mark.xfail(strict=True, reason=(
             "unbounded, dpor runs 639 orders of the semaphore's operations (735 runs split into the slots); dfs at "
             "bound 2 runs 178 (at bound 3, 1,089)"))) if "semaphore_leak" in spec else spec
         for spec in (f"{p.relative_to(ROOT)}::fixed" for p in EXAMPLES if "producer_consumer" not in p.name)]


@pytest.mark.parametrize("spec", TWINS)
def test_the_correct_twins_are_exhausted_with_no_more_schedules_than_bound_2(spec, monkeypatch):
    monkeypatch.chdir(ROOT)
    report = explore(spec, strategy="dpor", runs=3_000, shrink_time=0, seed=0)
    assert report.failure is None and report.exhausted, spec
    bounded = explore(spec, strategy="dfs", max_preemptions=2, runs=report.runs + 1, shrink_time=0, seed=0)
    # More than dpor's runs were allowed: dfs needs them all, or is not done by then.
    assert bounded.runs >= report.runs, (spec, report.runs, bounded.runs)


def _job(program, bound, own, slots, runs=None, max_steps=None):
    prog = load(program)
    return Job(program=prog, spec=None, fingerprint=prog.fingerprint,
               config=run_config(prog, max_steps, None, None, "access"), strategy="dpor", seed=0, depth=3,
               max_preemptions=bound, own=own, slots=slots, runs=runs, time_limit=None, keep_going=True)


def _unsplit(program, bound, runs, max_steps=None):
    """dpor's search whole, in one slot (a campaign always splits it into its slots): the kinds of
    failure it found, whether it was exhausted and its runs."""
    (result,) = search(_job(program, bound, (0,), 1, runs, max_steps), InProcess(slots=1))
    return {f.failure.kind for f in result.found}, result.exhausted, len(result.steps)


class _Counting(InProcess):
    """Counts the shared runs: runs of other slots', replayed to find the slots' own work."""

    shared = 0

    def running(self, slot: int, run: int, member: int) -> None:
        self.shared += run < 0


def _slots(spec, bound, own=None, control=None):
    """dpor's search split into the campaign's slots, of which ``own`` (every slot if None) are searched here."""
    job = _job(spec, bound, own or tuple(range(SLOTS)), SLOTS)
    return search(job, control or InProcess(slots=SLOTS, whole=own is None))


# pool_race's twin: 138 schedules unbounded and 144 at bound 2, whole or split; split, 38 and 20
# of them are run before the deal (measured).
MANY_CLASSES = "examples/pool_race.py::fixed"


@pytest.mark.parametrize("bound", [None, 2])
def test_the_split_deals_the_search_among_the_slots(bound, monkeypatch):
    monkeypatch.chdir(ROOT)
    results = _slots(MANY_CLASSES, bound)
    ran = [len(r.steps) for r in results]
    assert all(r.exhausted for r in results)
    assert sum(n > 0 for n in ran) >= SLOTS // 2, ran  # not all in slot 0
    assert max(ran) <= sum(ran) // 2, ran
    assert max(ran) - min(ran) > 1, ran  # subtrees were dealt (the common search's runs alone go round the slots)
    assert sum(ran) >= _unsplit(MANY_CLASSES, bound, None)[2]  # no class is lost (some are run twice)


@pytest.mark.parametrize("bound", [None, 2])
def test_a_slots_runs_do_not_depend_on_the_slots_beside_it(bound, monkeypatch):
    """Slots searched alone, or three of the sixteen together, make the runs they make among all of them."""
    monkeypatch.chdir(ROOT)
    every = {r.slot: (list(r.steps), list(r.schedules), r.exhausted) for r in _slots(MANY_CLASSES, bound)}
    for own in [(3,), (0, 5, 10), (15, 1)]:
        for r in _slots(MANY_CLASSES, bound, own):
            assert (list(r.steps), list(r.schedules), r.exhausted) == every[r.slot], (own, r.slot)


@pytest.mark.parametrize("bound", [None, 2])
def test_the_common_search_is_run_once_in_a_process(bound, monkeypatch):
    """Every slot runs the search alike until it is dealt: the slots of one process run it once
    between them, each counting its own runs of it; a process without every slot replays the others'."""
    monkeypatch.chdir(ROOT)
    every = _Counting(slots=SLOTS)
    others = sum(len(r.steps) for r in _slots(MANY_CLASSES, bound, control=every) if r.slot not in (0, 5, 10))
    assert every.shared == 0
    some = _Counting(slots=SLOTS, whole=False)
    _slots(MANY_CLASSES, bound, (0, 5, 10), some)
    assert 0 < some.shared < others  # the other slots' runs of the common search only, each once


@pytest.mark.parametrize("bound", [None, 0, 1, 2])
@pytest.mark.parametrize("make", [store_buffering, three_counters, two_increments, lambda outcomes: locked_counter(4)])
def test_the_split_reaches_every_outcome_of_the_whole_search(make, bound):
    by_whole: set[tuple[int, ...]] = set()
    by_split: set[tuple[int, ...]] = set()
    kinds, exhausted, _ = _unsplit(make(by_whole), bound, 50_000)
    report = dpor(make(by_split), max_preemptions=bound, runs=50_000)
    assert exhausted and report.exhausted and report.bound == bound
    assert by_split == by_whole and _kinds(report) == kinds


@pytest.mark.parametrize("bound", [None, 2])
@pytest.mark.parametrize("spec", PROGRAMS)
def test_the_split_finds_every_failure_the_whole_search_finds(spec, bound, monkeypatch):
    """The campaign's split (its sixteen slots, in one process) against dpor's search whole, in the same runs."""
    monkeypatch.chdir(ROOT)
    runs = DPOR_RUNS.get(spec, 1_500)
    whole, exhausted, _ = _unsplit(spec, bound, runs, max_steps=HANG_STEPS)
    split = explore(spec, strategy="dpor", max_preemptions=bound, runs=runs, time_limit=120, shrink_time=0,
                    keep_going=True, max_steps=HANG_STEPS, seed=0)
    assert whole <= _kinds(split), (spec, whole, _kinds(split))
    assert split.exhausted >= exhausted  # exhausted whole within the runs: the split too


@pytest.mark.parametrize("bound", [None, 2])
@pytest.mark.parametrize("spec", ["examples/lost_update.py::main", "examples/lost_update.py::fixed",
                                  "examples/lock_order_deadlock.py::main", "examples/torn_read.py::fixed"])
def test_two_workers_give_the_verdict_of_one(spec, bound, monkeypatch):
    monkeypatch.chdir(ROOT)
    one = explore(spec, strategy="dpor", max_preemptions=bound, runs=3_000, shrink_time=0, workers=1)
    two = explore(spec, strategy="dpor", max_preemptions=bound, runs=3_000, shrink_time=0, workers=2)
    assert (one.failure is None) == (two.failure is None)
    assert one.exhausted == two.exhausted
    if one.failure is not None:
        assert one.failure.kind == two.failure.kind
    else:
        assert one.runs == two.runs and one.bound == two.bound == bound


def test_the_pytest_statistics_say_every_order_was_run():
    from interleave.pytest_plugin.reporting import stats_line

    line = stats_line("t.py::test", [dpor(locked_counter(2))])
    assert line.endswith("; every order of conflicting steps was run"), line
    assert "2 runs" in line


@pytest.mark.parametrize("spec", ["examples/producer_consumer.py::fixed", "examples/semaphore_leak.py::fixed",
                                  "examples/needs_pause.py::fixed", "examples/barrier_misuse.py::fixed"])
@pytest.mark.parametrize("bound", [None, 2])
def test_a_run_read_from_its_replayed_prefix_reads_as_one_read_whole(spec, bound, monkeypatch):
    """Each run's records are read from where a run with the same choices left off at the
    decision it deviates at; that reading must equal the one made from the first record."""
    monkeypatch.chdir(ROOT)
    read = dpor_module._events
    resumed = []

    def both(result, stack, replayed=0):
        whole = [copy.copy(node) for node in stack]
        for node in whole:
            node.resume = None
        resumed.append(replayed < len(stack) and stack[replayed].resume is not None)
        got = read(result, stack, replayed)
        assert got == read(result, whole, 0), (len(resumed), replayed)
        return got

    monkeypatch.setattr(dpor_module, "_events", both)
    explore(spec, strategy="dpor", max_preemptions=bound, runs=400, shrink_time=0, seed=0, workers=1)
    assert sum(resumed) > len(resumed) // 2, (sum(resumed), len(resumed))  # most runs were resumed
