"""Exploring in parallel: one search split among worker processes, or the tasks of a Dask cluster.

How the search is split (each worker is a *slot* ``w`` of ``n``):

* sampling (random walk, PCT, SURW, the portfolio's samplers): slot ``w`` runs the run
  indices ``w, w+n, w+2n...``; a run draws its choices from (seed, run index), so no two
  slots draw the same sample, and together they use the indices one process would;
* enumeration: :meth:`BoundedDFS.partition` deals subtrees, so the slots' schedules are
  disjoint and together exactly the schedules of one process (see its docstring).

Slot ``w``'s ``r``-th run (from 0) has the *key* ``r*n + w``; for sampling that is its run
index. The campaign's failure is the one with the smallest key, whatever finished first:
when a slot fails, the others are told to stop at that key, and every slot runs each key
below it, so the same seed and the same ``n`` give the same failure and token. Counts are
trimmed at the failing key, so they repeat too. With ``keep_going`` (``--all``) no slot
stops early and every distinct failure (kind and place) is reported.

Workers only search. The chosen failing run is sent back as its deviations and failure;
one process (a child of the calling one, or the calling one when it searched alone)
replays it, shrinks it and makes the token, so a token always replays in one process.

A worker process that dies (a crash, an exit from C code, the kernel's out-of-memory killer) is
reported with the run it was on, and a new process takes over its slot: it redoes the
slot's runs from the start (the dead one's results died with it) and skips the fatal run.

The Dask backend (``workers="tcp://scheduler:8786"`` or a ``distributed.Client``) runs the
slots as Dask tasks; see docs/workers.md.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import threading
import time
import uuid
from array import array
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from typing import Any, Callable, Iterator, Protocol

from . import strategies
from .census import Census
from .decisions import Decision, schedule_id
from .explore import (INTERRUPTED, PENDING, FailureReport, FoundFailure, NondeterministicProgram, Progress, Report,
                      RaceCount, _config, apply_census, confidence_from, merge_races, describe_failures, unreplayed)
from .failures import Failure
from .program import BadInput, Program, load
from .runner import RunConfig, Runner
from .strategies.dfs import BoundedDFS, Nondeterminism
from .strategies.portfolio import Portfolio

#: A key no run reaches: "nobody has to stop".
NO_LIMIT = 2**62
#: Times a slot's worker may die and be replaced before the slot is given up.
MAX_RESTARTS = 3
#: The steps of a run that was skipped (it had killed a worker).
SKIPPED = -1
#: Seconds an interrupted campaign waits for the workers to finish their runs under way and
#: send their results (a second Ctrl-C stops waiting); then they are killed.
STOP_GRACE_S = 10.0

#: Seconds past the time limit after which a worker that has not sent its result is killed
#: (its own watchdog stops a stuck run well before; this is for a call that ignores signals).
OVERDUE = 10.0


@dataclass
class Job:
    """Everything a worker needs to search its slot (picklable, except a callable program)."""

    program: Program | None  # set when the worker inherits the program (fork); else loaded from spec
    spec: str | None
    fingerprint: str
    config: RunConfig
    strategy: str
    seed: int
    depth: int
    max_preemptions: int
    slot: int
    slots: int
    runs: int | None
    time_limit: float | None
    keep_going: bool
    skip: frozenset[int] = frozenset()  # runs not to run: r >= 1 the r-th run, -d the d-th shared run


@dataclass
class Found:
    """A failing run as a worker saw it."""

    key: int
    failure: Failure
    deviations: list[Decision]
    elapsed_s: float


@dataclass
class SlotResult:
    """What one slot did: per-run figures (trimmed when merging), failures, how its search ended."""

    slot: int
    steps: array = field(default_factory=lambda: array("q"))  # per run, in order
    schedules: array = field(default_factory=lambda: array("q"))  # hash of each run's deviations
    found: list[Found] = field(default_factory=list)
    stopped_at: int | None = None  # key of an uncontrolled or nondeterministic run
    uncontrolled: str | None = None
    nondeterministic: str | None = None
    interrupted: bool = False
    exhausted: bool = False
    #: Runs made when this slot's share of the portfolio's enumeration was complete (None: not).
    enumerated_at: int | None = None
    dfs: dict[str, Any] | None = None
    pct: list[dict[str, Any]] = field(default_factory=list)
    census: Census | None = None  # slot 0's (see interleave.census)
    races: dict[str, Any] = field(default_factory=dict)  # seen with races off (see explore.RaceCount)


class Control(Protocol):
    """How a searching slot hears when to stop and says what it is doing."""

    def limit(self) -> int:
        """Keys at or above this are not to be run."""

    def lower(self, key: int) -> None:
        """A run with this key failed (or must end the campaign): nobody needs keys above it."""

    def running(self, run: int, member: int) -> None:
        """About to start run ``run`` (``-d``: the d-th shared run) of strategy member ``member``."""

    def progress(self, runs: int, steps: int) -> None:
        """Runs and steps counted so far (for the progress line)."""

    def enumerated(self) -> bool:
        """This slot's share of the enumeration is complete: is every slot's (so no schedule is left)?"""


class Solo:
    """The control of a slot searched alone, in this process."""

    def __init__(self) -> None:
        self.stop = NO_LIMIT

    def limit(self) -> int:
        return self.stop

    def lower(self, key: int) -> None:
        self.stop = min(self.stop, key)

    def running(self, run: int, member: int) -> None:
        pass

    def progress(self, runs: int, steps: int) -> None:
        pass

    def enumerated(self) -> bool:
        return True


def _dfs_of(chooser: strategies.Strategy) -> BoundedDFS | None:
    if isinstance(chooser, BoundedDFS):
        return chooser
    return chooser.dfs if isinstance(chooser, Portfolio) else None


def _member(chooser: strategies.Strategy) -> tuple[int, strategies.Strategy]:
    if isinstance(chooser, Portfolio):
        return chooser.members.index(chooser.current), chooser.current
    return 0, chooser


def member_name(strategy: str, seed: int, depth: int, max_preemptions: int, member: int) -> str:
    """``enumeration``, ``pct d=3``, ``random walk``, ``surw``...: what a slot's run was, for reports."""
    chooser = strategies.make(strategy, seed=seed, depth=depth, max_preemptions=max_preemptions)
    chosen = chooser.members[member] if isinstance(chooser, Portfolio) else chooser
    if isinstance(chosen, BoundedDFS):
        return "enumeration"
    if isinstance(chosen, strategies.PCT):
        return f"pct d={chosen.depth}"
    return "random walk" if isinstance(chosen, strategies.RandomWalk) else chosen.name


def search(job: Job, control: Control) -> SlotResult:
    """Search one slot until its budget, the campaign's stop key, or (unless keep_going) a failure."""
    program = job.program if job.program is not None else load(job.spec)
    if program.fingerprint != job.fingerprint:
        raise BadInput(f"{program.display} differs here from the file the campaign started with; "
                       "every worker must see the same files")
    chooser = strategies.make(job.strategy, seed=job.seed, depth=job.depth, max_preemptions=job.max_preemptions)
    dfs = _dfs_of(chooser)
    if dfs is not None:
        dfs.partition(job.slot, job.slots)
    runner = Runner(program, job.config)
    out = SlotResult(job.slot)
    # A share of the portfolio's enumeration may be complete while the program's is not: the
    # slot samples on until every share is (one process stops when the whole enumeration is).
    shared_enumeration = isinstance(chooser, Portfolio) and job.slots > 1
    seen_places: set[tuple] = set()
    race_count = RaceCount()
    started = time.monotonic()
    runner.deadline = None if job.time_limit is None else started + job.time_limit
    run = shared = 0  # runs of this slot so far; shared (uncounted) enumeration runs so far
    total_steps = 0
    try:
        while job.runs is None or run < job.runs:
            key = run * job.slots + job.slot
            if key >= control.limit():
                break
            if job.time_limit is not None and time.monotonic() - started >= job.time_limit:
                break
            if shared_enumeration and out.enumerated_at is None and dfs.complete():
                out.enumerated_at = run
            if out.enumerated_at is not None and control.enumerated():
                out.exhausted = True
                break
            if not chooser.begin_run(key):
                out.exhausted = True
                break
            member, current = _member(chooser)
            is_shared = current is dfs and dfs.shared
            label = -(shared + 1) if is_shared else run + 1
            control.running(label, member)
            if label in job.skip:
                if current is dfs:
                    dfs.skip_run()
                if is_shared:
                    shared += 1
                else:
                    out.steps.append(SKIPPED)
                    out.schedules.append(0)
                    run += 1
                continue
            counting = not is_shared and race_count.due(run, runner)
            try:
                result = runner.run(chooser, check_races=counting)
            except Nondeterminism as exc:
                out.nondeterministic = f"the program did not repeat itself under the same choices ({exc})"
                out.stopped_at = key
                control.lower(key)
                break
            if result.uncontrolled is not None and is_shared:
                # A shared enumeration run that was cut short has no subtree to deal out.
                out.uncontrolled = result.uncontrolled
                out.stopped_at = key
                control.lower(key)
                break
            chooser.end_run(result)
            if counting:
                race_count.add(result)
            if is_shared:
                shared += 1
            else:
                run += 1
                total_steps += result.steps
                out.steps.append(result.steps)
                out.schedules.append(hash(schedule_id(result.deviations)))
                control.progress(run, total_steps)
            if result.extra.get("interrupted"):
                out.interrupted = True
                break
            if result.uncontrolled is not None:
                out.uncontrolled = result.uncontrolled
                out.stopped_at = key
                control.lower(key)
                break
            if result.failure is not None and not is_shared:
                where = (result.failure.kind, result.failure.place)
                if where not in seen_places:
                    seen_places.add(where)
                    out.found.append(Found(key, result.failure, list(result.deviations),
                                           time.monotonic() - started))
                if not job.keep_going:
                    control.lower(key)
                    break
    except KeyboardInterrupt:
        out.interrupted = True
    runner.close()
    if dfs is not None:
        out.dfs = {"done": dfs.done, "truncated": dfs.truncated, "completed_bound": dfs.completed_bound,
                   "complete": dfs.complete(), "max_bound": dfs.max_bound}
    out.races = race_count.summary()
    summary = chooser.summary()
    out.pct = list(summary.get("pct") or ([summary] if isinstance(chooser, strategies.PCT) else []))
    if job.slot == 0:
        out.census = runner.census
    return out


# ------------------------------------------------------------------ local worker processes


class _Shared:
    """Shared memory of a local campaign: the stop key, and per worker its run, member, runs, steps."""

    FIELDS = 5  # run, member, runs, steps, share of the enumeration complete

    def __init__(self, ctx: Any, slots: int, whole: bool) -> None:
        self.stop = ctx.RawArray("q", [NO_LIMIT])
        self.lock = ctx.Lock()
        self.board = ctx.RawArray("q", slots * self.FIELDS)
        self.slots = slots
        self.whole = whole  # every slot of the campaign is here (not so in a Dask task)

    def for_slot(self, position: int) -> _SlotControl:
        return _SlotControl(self, position)

    def lower(self, key: int) -> None:
        with self.lock:
            if key < self.stop[0]:
                self.stop[0] = key

    def get(self, position: int, i: int) -> int:
        return self.board[position * self.FIELDS + i]


class _SlotControl:
    def __init__(self, shared: _Shared, position: int) -> None:
        self.shared = shared
        self.base = position * _Shared.FIELDS

    def limit(self) -> int:
        return self.shared.stop[0]

    def lower(self, key: int) -> None:
        self.shared.lower(key)

    def running(self, run: int, member: int) -> None:
        board = self.shared.board
        board[self.base] = run
        board[self.base + 1] = member

    def progress(self, runs: int, steps: int) -> None:
        board = self.shared.board
        board[self.base + 2] = runs
        board[self.base + 3] = steps

    def enumerated(self) -> bool:
        shared = self.shared
        shared.board[self.base + 4] = 1
        return shared.whole and all(shared.get(position, 4) for position in range(shared.slots))


def _as_child(parent: int) -> None:
    """Set up a worker (or describing) process: the parent alone decides when it stops.

    Ctrl-C, SIGTERM and SIGHUP are the parent's to act on (it lowers the stop key or kills
    the child); on Linux the child is killed when the parent dies, however it dies, so no
    child outlives it.
    """
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):  # no SIGHUP on Windows
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    if os.environ.pop(_SAFE_PATH_ADDED, None):
        del os.environ["PYTHONSAFEPATH"]  # only for starting this interpreter: the program sees the parent's env
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


#: prctl option: the signal this process gets when its parent dies (linux/prctl.h).
_PR_SET_PDEATHSIG = 1


def _worker_main(job: Job, shared: _Shared, position: int, conn: Any, parent: int) -> None:
    """Body of a worker process: search, send the result (or the one-line reason it could not)."""
    _as_child(parent)  # it stops at the stop key the parent lowers
    try:
        outcome: SlotResult | str = search(job, shared.for_slot(position))
    except BadInput as exc:
        outcome = str(exc)
    conn.send(outcome)
    conn.close()


def _death_cause(exitcode: int | None) -> str:
    if exitcode is None:
        return "vanished"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"killed by {name}" + (" (out of memory?)" if name == "SIGKILL" else "")
    return f"exit code {exitcode}"


def _start_method(program: Program) -> str:
    """fork where it exists and is safe; spawn where a thread of this process could hold a lock.

    A callable target can only be forked (a fresh interpreter could not find it).
    """
    if "fork" not in multiprocessing.get_all_start_methods():
        return "spawn"
    return "fork" if program.code is None or threading.active_count() == 1 else "spawn"


#: Set in a spawned child's environment when only its start needed PYTHONSAFEPATH.
_SAFE_PATH_ADDED = "INTERLEAVE_SAFE_PATH_ADDED"


@contextmanager
def _spawn_environment(method: str) -> Iterator[None]:
    """While spawned interpreters start (workers, and multiprocessing's resource tracker):
    one hash seed for all (0, as the command uses), unless one is set; and no current
    directory on ``sys.path``.

    Otherwise each would draw its own seed, and a schedule that depends on the order of a
    set of strings would differ from worker to worker; and a file in the current directory
    named like a standard module (``signal.py``) would replace it before interleave loads.
    """
    if method != "spawn":
        yield
        return
    added = {name: value for name, value in (("PYTHONHASHSEED", "0"), ("PYTHONSAFEPATH", "1"),
                                             (_SAFE_PATH_ADDED, "1")) if name not in os.environ}
    if "PYTHONSAFEPATH" not in added:
        added.pop(_SAFE_PATH_ADDED, None)
    os.environ.update(added)
    try:
        yield
    finally:
        for name in added:
            del os.environ[name]


@dataclass
class Campaign:
    """What the slots returned, for merging into one report."""

    results: list[SlotResult]
    deaths: list[str]
    lost_slots: list[int]
    elapsed_s: float
    interrupted: bool = False
    granularity: str = "access"


def run_local(jobs: list[Job], method: str, on_progress: Callable[[Progress], None] | None = None,
              poll: Callable[[], int] | None = None) -> Campaign:
    """Run every slot in its own process (started by ``method``); replace the ones that die.

    ``poll``: called about every 0.25 s, returns a stop key from elsewhere (a Dask campaign).
    """
    ctx = multiprocessing.get_context(method)
    with _spawn_environment(method):  # making a lock may start multiprocessing's resource tracker
        shared = _Shared(ctx, len(jobs), whole=len(jobs) == jobs[0].slots)
    started = time.monotonic()
    live: dict[Any, tuple[int, Job, Any]] = {}

    def start(position: int, job: Job) -> None:
        reader, writer = ctx.Pipe(duplex=False)
        process = ctx.Process(target=_worker_main, args=(job, shared, position, writer, os.getpid()), daemon=True,
                              name=f"interleave-worker-{job.slot}")
        with _spawn_environment(method):
            process.start()
        writer.close()  # so the reader sees EOF when the worker dies
        live[reader] = (position, job, process)

    results: dict[int, SlotResult] = {}
    deaths: list[str] = []
    lost: list[int] = []
    restarts = [0] * len(jobs)
    last_progress = started
    interrupted = False
    stopping_since = 0.0

    time_limit = jobs[0].time_limit if jobs else None
    #: Past this, a worker that has not sent its result is stuck in a call its watchdog could not stop.
    overdue_at = None if time_limit is None else started + time_limit + OVERDUE
    overdue = False

    def collect(reader: Any) -> None:
        """A worker's result, or its death: then report it and start its successor."""
        position, job, process = live.pop(reader)
        try:
            outcome = reader.recv()
        except (EOFError, OSError):
            outcome = None
        reader.close()
        process.join()
        if isinstance(outcome, str):
            shared.lower(0)
            raise BadInput(outcome)
        if outcome is not None:
            results[job.slot] = outcome
            return
        run, member = shared.get(position, 0), shared.get(position, 1)
        if overdue:
            deaths.append(_describe_death(job, run, member, "stopped: it had not come back from its run by the time "
                                                            "limit") + "; its results are lost")
            lost.append(job.slot)
            return
        deaths.append(_describe_death(job, run, member, _death_cause(process.exitcode)))
        if interrupted:
            deaths[-1] += "; the campaign was stopping, so no worker took over"
            return
        restarts[position] += 1
        if restarts[position] > MAX_RESTARTS:
            lost.append(job.slot)
            deaths[-1] += f"; slot {job.slot} was given up after {MAX_RESTARTS} replacements"
            return
        deaths[-1] += "; a new worker took over its slot and skipped that run"
        start(position, _replace(job, run, time.monotonic() - started))

    try:
        for position, job in enumerate(jobs):
            start(position, job)
        while live:
            try:
                if poll is not None:
                    shared.lower(poll())
                for reader in wait(list(live), timeout=0.25):
                    collect(reader)
                if overdue_at is not None and not overdue and time.monotonic() > overdue_at:
                    overdue = True
                    shared.lower(0)
                    for _, _, process in live.values():
                        process.kill()
                if on_progress is not None and time.monotonic() - last_progress > 0.25:
                    last_progress = time.monotonic()
                    runs = sum(shared.get(s, 2) for s in range(len(jobs)))
                    steps = sum(shared.get(s, 3) for s in range(len(jobs)))
                    on_progress(Progress(runs, steps, last_progress - started))
            except KeyboardInterrupt:
                if interrupted:  # a second one: stop waiting for the runs under way
                    break
                interrupted = True  # the workers ignore SIGINT: they stop at the stop key and send their results
                stopping_since = time.monotonic()
                shared.lower(0)
            if interrupted and time.monotonic() - stopping_since > STOP_GRACE_S:
                break
    finally:
        shared.lower(0)
        deadline = time.monotonic() + 2.0
        for _, job, process in live.values():
            process.join(timeout=max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
                deaths.append(f"worker {job.slot} was stopped before it sent its results: its runs are not counted")
    return Campaign([results[s] for s in sorted(results)], deaths, lost, time.monotonic() - started, interrupted)


def _replace(job: Job, run: int, elapsed: float) -> Job:
    """The job of a dead worker's successor: skip the fatal run, keep to the campaign's time limit."""
    time_limit = None if job.time_limit is None else max(0.0, job.time_limit - elapsed)
    return Job(**{**job.__dict__, "skip": job.skip | {run}, "time_limit": time_limit})


def _describe_death(job: Job, run: int, member: int, cause: str) -> str:
    what = member_name(job.strategy, job.seed, job.depth, job.max_preemptions, member)
    if run < 0:
        doing = f"replaying shared enumeration run {-run} ({what})"
    elif run == 0:
        doing = "starting"
    else:
        doing = f"running its run {run} (run index {(run - 1) * job.slots + job.slot}, {what}, seed {job.seed})"
    return f"worker {job.slot} died ({cause}) while {doing}"


# ------------------------------------------------------------------------- Dask


def _dask_task(job: Job, variable: str) -> Campaign | str:
    """One slot on a Dask worker, searched in a child process of it.

    A child, because a run executes the program's exit hooks, which would shut down the
    Dask worker's own thread pools; and so a death is caught and replaced as locally.
    The child hears the campaign's stop key, kept in a ``distributed.Variable``.
    """
    from distributed import Variable

    if multiprocessing.current_process().daemon:
        return ("the Dask workers are daemonic processes, which cannot start the process a search runs in: "
                "start them with DASK_DISTRIBUTED__WORKER__DAEMON=False")
    stop = Variable(variable)
    try:
        # spawn: forking a process that runs Dask's threads could copy a lock some thread holds
        return run_local([job], "spawn", poll=lambda: int(stop.get()))
    except BadInput as exc:
        return str(exc)


def run_dask(jobs: list[Job], client: Any) -> Campaign:
    """Run every slot as a task of the Dask cluster behind ``client``."""
    from distributed import Variable, as_completed

    started = time.monotonic()
    name = f"interleave-stop-{uuid.uuid4().hex}"
    stop = Variable(name, client=client)
    stop.set(NO_LIMIT)
    best = NO_LIMIT
    futures = {client.submit(_dask_task, job, name, key=f"{name}-slot-{job.slot}", pure=False): job
               for job in jobs}
    results: list[SlotResult] = []
    deaths: list[str] = []
    lost: list[int] = []
    interrupted = False
    # Each task runs its slot in a process of its own; a Dask worker lost all the same loses its slot.
    try:
        for future in as_completed(list(futures)):
            job = futures[future]
            try:
                outcome = future.result()
            except Exception as exc:  # noqa: BLE001 - a lost task is reported, the campaign goes on
                deaths.append(f"worker {job.slot} (a Dask task) was lost: {type(exc).__name__}: {exc}")
                lost.append(job.slot)
                continue
            if isinstance(outcome, str):
                stop.set(0)
                raise BadInput(outcome)
            deaths += outcome.deaths
            lost += outcome.lost_slots
            if not outcome.results:
                continue
            result = outcome.results[0]
            results.append(result)
            keys = [f.key for f in result.found if not job.keep_going]
            if result.stopped_at is not None:
                keys.append(result.stopped_at)
            if keys and min(keys) < best:
                best = min(keys)
                stop.set(best)
    except KeyboardInterrupt:
        interrupted = True
        client.cancel(list(futures))
    finally:
        stop.delete()
    results.sort(key=lambda r: r.slot)
    return Campaign(results, deaths, lost, time.monotonic() - started, interrupted)


def dask_client(address: str) -> Any:
    """A client of the Dask scheduler at ``address``; BadInput when Dask is missing or unreachable."""
    try:
        from distributed import Client
    except ImportError:
        raise BadInput("running workers on a Dask cluster needs the distributed extra: "
                       "pip install 'interleave-sct[distributed]'") from None
    try:
        return Client(address, timeout=10)
    except (OSError, TimeoutError) as exc:
        raise BadInput(f"cannot reach the Dask scheduler at {address}: {exc}") from None


def dask_slots(client: Any) -> int:
    """One slot per thread of the cluster's workers."""
    return max(1, sum(client.nthreads().values()))


# ------------------------------------------------------------------------- merging


def explore_parallel(program: Program, *, workers: int | str | Any, keep_going: bool, runs: int | None,
                     time_limit: float | None, seed: int, strategy: str, depth: int, max_preemptions: int,
                     max_steps: int | None, max_pauses: int | None, max_faults: int | None, granularity: str,
                     shrink_time: float, on_progress: Callable[[Progress], None] | None,
                     on_found: Callable[[list[FailureReport]], None] | None = None,
                     include: tuple[str, ...] = (), races: bool = False) -> Report:
    """The campaign behind :func:`interleave.explore` when ``workers`` is not 1 or ``keep_going`` is set."""
    config = _config(program, max_steps, max_pauses, max_faults, granularity, include, races)
    try:
        strategies.make(strategy, seed=seed, depth=depth, max_preemptions=max_preemptions)
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    if isinstance(workers, str):
        client = dask_client(workers)
        try:
            return _explore(program, config, client, dask_slots(client), keep_going, runs, time_limit, seed, strategy,
                            depth, max_preemptions, shrink_time, on_progress, on_found)
        finally:
            client.close()
    client = None if isinstance(workers, int) else workers
    slots = dask_slots(client) if client is not None else workers
    return _explore(program, config, client, slots, keep_going, runs, time_limit, seed, strategy, depth,
                    max_preemptions, shrink_time, on_progress, on_found)


def _explore(program: Program, config: RunConfig, client: Any, slots: int, keep_going: bool, runs: int | None,
             time_limit: float | None, seed: int, strategy: str, depth: int, max_preemptions: int,
             shrink_time: float, on_progress: Callable[[Progress], None] | None,
             on_found: Callable[[list[FailureReport]], None] | None) -> Report:
    if slots < 1:
        raise BadInput(f"--workers must be at least 1 (got {slots})")
    if runs is not None:
        slots = min(slots, runs)  # a slot without a run would only cost a process
    # spawn for Dask: this process runs the Dask client's threads (and in tests a whole cluster)
    method = "spawn" if client is not None else _start_method(program)
    if program.code is None and (client is not None or (slots > 1 and method != "fork")):
        raise BadInput("a callable target runs in worker processes only where they can be forked; "
                       "give it as PATH::FUNC")
    jobs = [
        Job(program=program if method == "fork" else None,
            spec=f"{program.path}::{program.func_name}" if program.path else None,
            fingerprint=program.fingerprint, config=config, strategy=strategy, seed=seed, depth=depth,
            max_preemptions=max_preemptions, slot=slot, slots=slots,
            runs=None if runs is None else runs // slots + (1 if slot < runs % slots else 0),
            time_limit=time_limit, keep_going=keep_going)
        for slot in range(slots)
    ]
    if client is not None:
        campaign = run_dask(jobs, client)
        describer = _describer(jobs[0], shrink_time, method, on_found)
    elif slots == 1:
        started = time.monotonic()
        campaign = Campaign([search(jobs[0], Solo())], [], [], 0.0)
        campaign.elapsed_s = time.monotonic() - started
        describer = _describer(jobs[0], shrink_time, None, on_found)
    else:
        campaign = run_local(jobs, method, on_progress)
        describer = _describer(jobs[0], shrink_time, method, on_found)
    campaign.granularity = config.granularity
    return merge(program, campaign, slots, strategy, seed, keep_going, describer)


def merge(program: Program, campaign: Campaign, slots: int, strategy: str, seed: int, keep_going: bool,
          describe: Describe) -> Report:
    """One report from the slots' results: counts trimmed at the failure, failures described by ``describe``."""
    report = Report(target=program.display, strategy=strategy, seed=seed, workers=slots,
                    worker_deaths=list(campaign.deaths), lost_workers=sorted(campaign.lost_slots),
                    granularity=campaign.granularity)
    results = campaign.results
    found = sorted((f for r in results for f in r.found), key=lambda f: f.key)
    ends = [r.stopped_at for r in results if r.stopped_at is not None]
    cut = min([*ends, *([found[0].key] if found and not keep_going else [])], default=NO_LIMIT)
    seen: set[int] = set()
    # Every share of the portfolio's enumeration complete and no failure: what a slot ran
    # after its share was complete (until it heard that every share was) does not count.
    enumerated = (not found and not campaign.lost_slots and len(results) == slots
                  and all(r.enumerated_at is not None for r in results))
    for r in results:
        keep = len(r.steps) if cut == NO_LIMIT else max(0, (cut - r.slot) // slots + 1)
        if enumerated:
            keep = min(keep, r.enumerated_at)
        ran = [i for i in range(min(keep, len(r.steps))) if r.steps[i] != SKIPPED]
        report.runs += len(ran)
        report.steps += sum(r.steps[i] for i in ran)
        seen.update(r.schedules[i] for i in ran)
    report.distinct_schedules = len(seen)
    report.elapsed_s = campaign.elapsed_s
    report.interrupted = campaign.interrupted or any(r.interrupted for r in results)
    first_end = min((r for r in results if r.stopped_at is not None), key=lambda r: r.stopped_at, default=None)
    if first_end is not None:
        # One process would have stopped there: what it would have found after does not count.
        found = [f for f in found if f.key < first_end.stopped_at]
        if keep_going or not found:
            report.uncontrolled, report.nondeterministic = first_end.uncontrolled, first_end.nondeterministic
    _merge_search(report, results, campaign.lost_slots)
    for r in results:
        if r.races:
            report.races = merge_races(report.races, r.races)
    distinct: dict[tuple, Found] = {}
    for f in found:
        distinct.setdefault((f.failure.kind, f.failure.place), f)
    chosen = list(distinct.values()) if keep_going else found[:1]
    if chosen:
        report.failures = describe(chosen, report.interrupted)
        report.interrupted = report.interrupted or any(f.not_shrunk == INTERRUPTED for f in report.failures)
    report.failure = report.failures[0] if report.failures else None
    return report


#: Describes the chosen failures (not shrinking them when the campaign was interrupted).
Describe = Callable[[list[Found], bool], list[FailureReport]]


def describe_here(job: Job, found: list[Found], shrink_time: float | None,
                  on_found: Callable[[list[FailureReport]], None] | None = None,
                  on_shrunk: Callable[[list[FailureReport]], None] | None = None) -> list[FailureReport]:
    """Replay each failing run in this process, make its token, shrink it (``shrink_time`` None: not)."""
    program = job.program if job.program is not None else load(job.spec)
    runner = Runner(program, job.config)
    try:
        return describe_failures(runner, program, [_as_found_failure(f) for f in found], shrink_time, on_found,
                                 on_shrunk)
    finally:
        runner.close()


def _as_found_failure(found: Found) -> FoundFailure:
    return FoundFailure(found.key + 1, found.failure, found.deviations, found.elapsed_s)


#: Seconds an interrupted campaign waits for the describing process to send the failure as
#: found (one replay of the failing run; it ignores Ctrl-C), before reporting it without a token.
TOKEN_GRACE_S = 10.0


def _describer(job: Job, shrink_time: float, method: str | None,
               on_found: Callable[[list[FailureReport]], None] | None) -> Describe:
    """Describe failures in this process (``method`` None) or in a child process.

    A child, when this process coordinates workers: a run executes the program's exit
    hooks, which shut down every thread pool of the process it runs in (a Dask client's).
    The child sends the failures as found (with their tokens) before it shrinks them, and
    again after each is shrunk: if this process is interrupted or the child dies, the last
    it sent is reported.
    """
    if method is None:
        return lambda found, interrupted: describe_here(job, found, None if interrupted else shrink_time, on_found)

    def describe(found: list[Found], interrupted: bool) -> list[FailureReport]:
        ctx = multiprocessing.get_context(method)
        reader, writer = ctx.Pipe(duplex=False)
        child = job if method == "fork" else Job(**{**job.__dict__, "program": None})
        process = ctx.Process(target=_describe_main, name="interleave-describe", daemon=True,
                              args=(child, found, None if interrupted else shrink_time, writer, os.getpid()))
        with _spawn_environment(method):
            process.start()
        writer.close()
        latest: list[FailureReport] | None = None
        try:
            try:
                while True:
                    kind, payload = reader.recv()
                    if kind == "error":
                        raise payload
                    latest = payload
                    if kind == "done":
                        return latest
                    if kind == "found" and on_found is not None:
                        on_found(list(latest))
            except KeyboardInterrupt:
                interrupted = True
                if latest is None and reader.poll(TOKEN_GRACE_S):
                    kind, payload = reader.recv()
                    if kind == "error":
                        raise payload from None
                    latest = payload
        except (EOFError, OSError, KeyboardInterrupt):
            pass  # the child died, or a second Ctrl-C: report what it sent
        finally:
            reader.close()
            if process.is_alive():  # interrupted, or exiting after sending
                process.kill()
            process.join()
        why = INTERRUPTED if interrupted else f"the process shrinking it died: {_death_cause(process.exitcode)}"
        if latest is None:
            return [unreplayed(_as_found_failure(f), why) for f in found]
        for report in latest:
            if report.not_shrunk == PENDING:
                report.not_shrunk = why
        return latest

    return describe


def _describe_main(job: Job, found: list[Found], shrink_time: float | None, conn: Any, parent: int) -> None:
    _as_child(parent)  # the parent decides: on a Ctrl-C it reports what was sent last
    try:
        reports = describe_here(job, found, shrink_time, on_found=lambda reports: conn.send(("found", reports)),
                                on_shrunk=lambda reports: conn.send(("shrunk", reports)))
        conn.send(("done", reports))
    except (BadInput, NondeterministicProgram) as exc:
        conn.send(("error", exc))
    conn.close()


def _merge_search(report: Report, results: list[SlotResult], lost: list[int]) -> None:
    apply_census(report, next((r.census for r in results if r.census is not None), None))
    dfs = [r.dfs for r in results if r.dfs is not None]
    if dfs and report.user_code_ran:
        every = len(dfs) == report.workers and not lost
        done = every and all(d["done"] and not d["truncated"] for d in dfs)
        report.exhausted = done
        report.complete = done and all(d["complete"] for d in dfs)
        if any(d["truncated"] for d in dfs) or not every:
            report.bound = None
        elif done:
            report.bound = max(d["completed_bound"] for d in dfs)
        else:
            # A slot whose share is done has covered every bound; the others, what they finished.
            report.bound = min(d["max_bound"] if d["done"] else d["completed_bound"] for d in dfs)
    by_depth: dict[int, dict[str, Any]] = {}
    for r in results:
        for entry in r.pct:
            seen = by_depth.setdefault(entry["depth"], dict(entry))
            seen["threads"] = max(seen["threads"], entry["threads"])
            seen["steps_k"] = max(seen["steps_k"], entry["steps_k"])
    for entry in by_depth.values():
        entry["per_run_probability"] = 1.0 / (entry["threads"] * entry["steps_k"] ** (entry["depth"] - 1))
    report.confidence = confidence_from(list(by_depth.values()))

