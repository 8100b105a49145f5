"""Exploring in parallel: one search split among worker processes, or the tasks of a Dask cluster.

The search is split into the campaign's fixed number of *slots* (see
:mod:`interleave.campaign`); worker ``w`` of ``n`` runs the campaign's one loop
(:func:`interleave.campaign.search`) over slots ``w, w+n, w+2n...``. This module starts
the processes, gives them a :class:`Control` in shared memory (the stop key, each slot's
count of runs), replaces the ones that die, and hands what they ran to
:func:`interleave.campaign.merge`. How a strategy is split is its own (``Strategy.shares``):
a sampled run draws its choices from (seed, run index); the enumeration deals subtrees,
so the slots' schedules are disjoint and together exactly the schedules of one process
(see BoundedDFS's docstring); dpor deals subtrees too, and its slots together cover every
class one process covers, a few more than once (see DPOR's).

When a slot fails, the others are told to stop at its key, so the same seed gives the same
failure and token with any number of workers. With ``keep_going`` (``--all``) no slot stops
early and every distinct failure (kind and place) is reported.

Workers only search. The chosen failing run is sent back as its deviations and failure;
one process (a child of the calling one) replays it, shrinks it and makes the token, so a
token always replays in one process.

A worker process that dies (a crash, an exit from C code, the kernel's out-of-memory killer) is
reported with the run it was on, and a new process takes over its slots: it redoes their
runs from the start (the dead one's results died with it) and skips the fatal run.

The Dask backend (``workers="tcp://scheduler:8786"`` or a ``distributed.Client``) runs the
workers as Dask tasks; see docs/workers.md.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from multiprocessing.connection import wait
from typing import Any

from . import strategies
from .campaign import (
    NO_LIMIT,
    Campaign,
    Describe,
    Found,
    Job,
    SlotResult,
    as_found_failure,
    key_of,
    merge,
    run_here,
    runs_below,
    search,
)
from .describe import NondeterministicProgram, describe_failures, unreplayed
from .program import BadInput, Program
from .report import INTERRUPTED, PENDING, FailureReport, Progress, Report, ShrinkProgress
from .runner import Runner

#: Times a slot's worker may die and be replaced before the slot is given up.
MAX_RESTARTS = 3
#: Seconds an interrupted campaign waits for the workers to finish their runs under way and
#: send their results (a second Ctrl-C stops waiting); then they are killed.
STOP_GRACE_S = 10.0

#: Seconds past the time limit after which a worker that has not sent its result is killed
#: (its own watchdog stops a stuck run well before; this is for a call that ignores signals).
OVERDUE = 10.0


# ------------------------------------------------------------------ local worker processes


class _Shared:
    """Shared memory of a local campaign: the stop key; per worker the run it is on; per slot its runs and steps."""

    WORKER_FIELDS = 3  # slot, run, member of the run under way
    SLOT_FIELDS = 3  # runs, steps, 1 + the key where its share of the enumeration was complete (0: not)

    def __init__(self, ctx: Any, workers: int, slots: int, whole: bool) -> None:
        self.stop = ctx.RawArray("q", [NO_LIMIT])
        self.lock = ctx.Lock()
        self.workers = ctx.RawArray("q", workers * self.WORKER_FIELDS)
        self.board = ctx.RawArray("q", slots * self.SLOT_FIELDS)
        self.slots = slots
        self.whole = whole  # every slot of the campaign is here (not so in a Dask task)

    def for_worker(self, position: int) -> _WorkerControl:
        return _WorkerControl(self, position)

    def lower(self, key: int) -> None:
        with self.lock:
            if key < self.stop[0]:
                self.stop[0] = key

    def worker(self, position: int) -> tuple[int, int, int]:
        """The slot, run and member worker ``position`` was on."""
        base = position * self.WORKER_FIELDS
        return int(self.workers[base]), int(self.workers[base + 1]), int(self.workers[base + 2])

    def slot(self, slot: int, i: int) -> int:
        return int(self.board[slot * self.SLOT_FIELDS + i])

    def forget(self, slots: tuple[int, ...]) -> None:
        """A worker died: what its slots made died with it (its successor makes it again)."""
        for slot in slots:
            for i in range(self.SLOT_FIELDS):
                self.board[slot * self.SLOT_FIELDS + i] = 0


class _WorkerControl:
    def __init__(self, shared: _Shared, position: int) -> None:
        self.shared = shared
        self.base = position * _Shared.WORKER_FIELDS

    def limit(self) -> int:
        return int(self.shared.stop[0])

    def lower(self, key: int) -> None:
        self.shared.lower(key)

    def running(self, slot: int, run: int, member: int) -> None:
        workers = self.shared.workers
        workers[self.base], workers[self.base + 1], workers[self.base + 2] = slot, run, member

    def counted(self, slot: int, runs: int, steps: int) -> None:
        board = self.shared.board
        board[slot * _Shared.SLOT_FIELDS] = runs
        board[slot * _Shared.SLOT_FIELDS + 1] = steps

    def runs_before(self, key: int) -> int:
        shared = self.shared
        return sum(runs_below(key, slot, shared.slots, shared.slot(slot, 0)) for slot in range(shared.slots))

    def share_complete(self, slot: int, key: int) -> None:
        shared = self.shared
        shared.board[slot * _Shared.SLOT_FIELDS + 2] = key + 1
        ends = [shared.slot(s, 2) for s in range(shared.slots)]
        if shared.whole and all(ends):
            shared.lower(max(ends) - 1)


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
    """Body of a worker process: search, send the results (or the one-line reason it could not)."""
    _as_child(parent)  # it stops at the stop key the parent lowers
    try:
        outcome: list[SlotResult] | str = search(job, shared.for_worker(position))
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


def run_local(jobs: list[Job], method: str, on_progress: Callable[[Progress], None] | None = None,
              poll: Callable[[], int] | None = None) -> Campaign:
    """Run each job (a worker's slots) in its own process (started by ``method``); replace the ones that die.

    ``poll``: called about every 0.25 s, returns a stop key from elsewhere (a Dask campaign).
    """
    ctx = multiprocessing.get_context(method)
    slots = jobs[0].slots
    with _spawn_environment(method):  # making a lock may start multiprocessing's resource tracker
        shared = _Shared(ctx, len(jobs), slots, whole=sum(len(job.own) for job in jobs) == slots)
    started = time.monotonic()
    live: dict[Any, tuple[int, Job, Any]] = {}

    def start(position: int, job: Job) -> None:
        reader, writer = ctx.Pipe(duplex=False)
        process = ctx.Process(  # type: ignore[attr-defined]  # typeshed's BaseContext lacks what every context has
            target=_worker_main, args=(job, shared, position, writer, os.getpid()), daemon=True,
                              name=f"interleave-worker-{position}")
        with _spawn_environment(method):
            process.start()
        writer.close()  # so the reader sees EOF when the worker dies
        live[reader] = (position, job, process)

    results: dict[int, SlotResult] = {}
    deaths: list[str] = []
    lost: list[int] = []
    lost_workers: list[int] = []
    restarts = [0] * len(jobs)
    last_progress = started
    interrupted = False
    stopping_since = 0.0

    time_limit = jobs[0].time_limit if jobs else None
    #: Past this, a worker that has not sent its result is stuck in a call its watchdog could not stop.
    overdue_at = None if time_limit is None else started + time_limit + OVERDUE
    overdue = False

    def collect(reader: Any) -> None:
        """A worker's results, or its death: then report it and start its successor."""
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
            results.update((r.slot, r) for r in outcome)
            return
        slot, run, member = shared.worker(position)
        shared.forget(job.own)
        if overdue:
            deaths.append(_describe_death(job, position, slot, run, member, "stopped: it had not come back from its "
                                          "run by the time limit") + "; its results are lost")
            lost.extend(job.own)
            lost_workers.append(position)
            return
        deaths.append(_describe_death(job, position, slot, run, member, _death_cause(process.exitcode)))
        if interrupted:
            deaths[-1] += "; the campaign was stopping, so no worker took over"
            return
        restarts[position] += 1
        if restarts[position] > MAX_RESTARTS:
            lost.extend(job.own)
            lost_workers.append(position)
            deaths[-1] += f"; its slots were given up after {MAX_RESTARTS} replacements"
            return
        deaths[-1] += "; a new worker took over its slots and skipped that run"
        start(position, _replace(job, slot, run, time.monotonic() - started))

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
                    runs = sum(shared.slot(s, 0) for s in range(slots))
                    steps = sum(shared.slot(s, 1) for s in range(slots))
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
        for position, _, process in live.values():
            process.join(timeout=max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
                deaths.append(f"worker {position} was stopped before it sent its results: its runs are not counted")
    return Campaign([results[s] for s in sorted(results)], deaths, lost, time.monotonic() - started, interrupted,
                    lost_workers=lost_workers)


def _replace(job: Job, slot: int, run: int, elapsed: float) -> Job:
    """The job of a dead worker's successor: skip the fatal run, keep to the campaign's time limit."""
    time_limit = None if job.time_limit is None else max(0.0, job.time_limit - elapsed)
    return replace(job, skip=job.skip | {(slot, run)}, time_limit=time_limit)


def _describe_death(job: Job, position: int, slot: int, run: int, member: int, cause: str) -> str:
    chooser = strategies.make(job.strategy, seed=job.seed, depth=job.depth, max_preemptions=job.max_preemptions)
    what = chooser.member_names()[member]
    if run < 0:
        doing = f"replaying shared enumeration run {-run} of slot {slot} ({what})"
    elif run == 0:
        doing = "starting"
    else:
        doing = f"running run {run} of slot {slot} (key {key_of(slot, run - 1, job.slots)}, {what}, seed {job.seed})"
    return f"worker {position} died ({cause}) while {doing}"


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
    futures = {client.submit(_dask_task, job, name, key=f"{name}-worker-{position}", pure=False): (position, job)
               for position, job in enumerate(jobs)}
    results: list[SlotResult] = []
    deaths: list[str] = []
    lost: list[int] = []
    lost_workers: list[int] = []
    interrupted = False
    # Each task runs its slots in a process of its own; a Dask worker lost all the same loses them.
    try:
        for future in as_completed(list(futures)):
            position, job = futures[future]
            try:
                outcome = future.result()
            except Exception as exc:  # noqa: BLE001 - a lost task is reported, the campaign goes on
                deaths.append(f"worker {position} (a Dask task) was lost: {type(exc).__name__}: {exc}")
                lost.extend(job.own)
                lost_workers.append(position)
                continue
            if isinstance(outcome, str):
                stop.set(0)
                raise BadInput(outcome)
            deaths += [death.replace("worker 0 ", f"worker {position} ", 1) for death in outcome.deaths]
            lost += outcome.lost_slots
            if outcome.lost_workers:
                lost_workers.append(position)
            results += outcome.results
            keys = [f.key for r in outcome.results for f in r.found if not job.keep_going]
            keys += [r.stopped_at for r in outcome.results if r.stopped_at is not None]
            if keys and min(keys) < best:
                best = min(keys)
                stop.set(best)
    except KeyboardInterrupt:
        interrupted = True
        client.cancel(list(futures))
    finally:
        stop.delete()
    results.sort(key=lambda r: r.slot)
    return Campaign(results, deaths, lost, time.monotonic() - started, interrupted, lost_workers=lost_workers)


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
    """One worker per thread of the cluster's workers."""
    return max(1, int(sum(client.nthreads().values())))


# ------------------------------------------------------------------------- merging


def explore_parallel(job: Job, display: str, workers: int | str | Any, shrink_time: float,
                     on_progress: Callable[[Progress], None] | None = None,
                     on_found: Callable[[list[FailureReport]], None] | None = None,
                     on_shrinking: Callable[[ShrinkProgress], None] | None = None) -> Report:
    """The campaign of ``job`` (a whole search) among ``workers`` processes, or on the Dask cluster at that address."""
    if isinstance(workers, str):
        client = dask_client(workers)
        try:
            return _explore(job, display, client, dask_slots(client), shrink_time, on_progress, on_found,
                            on_shrinking)
        finally:
            client.close()
    client = None if isinstance(workers, int) else workers
    slots = dask_slots(client) if client is not None else workers
    return _explore(job, display, client, slots, shrink_time, on_progress, on_found, on_shrinking)


def _explore(whole: Job, display: str, client: Any, workers: int, shrink_time: float,
             on_progress: Callable[[Progress], None] | None,
             on_found: Callable[[list[FailureReport]], None] | None,
             on_shrinking: Callable[[ShrinkProgress], None] | None = None) -> Report:
    if workers < 1:
        raise BadInput(f"--workers must be at least 1 (got {workers})")
    # A worker without a slot, or without a run, would only cost a process.
    workers = min(workers, len(whole.own), whole.runs or workers)
    program = whole.program
    assert program is not None
    if workers == 1 and client is None:
        return run_here(whole, display, shrink_time, on_progress, on_found, on_shrinking)
    # spawn for Dask: this process runs the Dask client's threads (and in tests a whole cluster)
    method = "spawn" if client is not None else _start_method(program)
    if program.code is None and (client is not None or method != "fork"):
        raise BadInput("a callable target runs in worker processes only where they can be forked; "
                       "give it as PATH::FUNC")
    jobs = [replace(whole, program=program if method == "fork" else None, own=whole.own[position::workers])
            for position in range(workers)]
    campaign = run_dask(jobs, client) if client is not None else run_local(jobs, method, on_progress)
    campaign.granularity = whole.config.granularity
    return merge(display, jobs[0], campaign, _describer(jobs[0], shrink_time, method, on_found, on_shrinking),
                 workers=workers)


def describe_here(job: Job, found: list[Found], shrink_time: float | None,
                  on_found: Callable[[list[FailureReport]], None] | None = None,
                  on_shrunk: Callable[[list[FailureReport]], None] | None = None,
                  on_shrinking: Callable[[ShrinkProgress], None] | None = None) -> list[FailureReport]:
    """Replay each failing run in this process, make its token, shrink it (``shrink_time`` None: not)."""
    program = job.load()
    runner = Runner(program, job.config)
    try:
        return describe_failures(runner, program, [as_found_failure(f) for f in found], shrink_time, on_found,
                                 on_shrunk, on_shrinking)
    finally:
        runner.close()


#: Seconds an interrupted campaign waits for the describing process to send the failure as
#: found (one replay of the failing run; it ignores Ctrl-C), before reporting it without a token.
TOKEN_GRACE_S = 10.0


def _describer(job: Job, shrink_time: float, method: str,
               on_found: Callable[[list[FailureReport]], None] | None,
               on_shrinking: Callable[[ShrinkProgress], None] | None = None) -> Describe:
    """Describe failures in a child process (started by ``method``).

    A child, because this process coordinates workers: a run executes the program's exit
    hooks, which shut down every thread pool of the process it runs in (a Dask client's).
    The child sends the failures as found (with their tokens) before it shrinks them, and
    again after each is shrunk: if this process is interrupted or the child dies, the last
    it sent is reported.
    """

    def describe(found: list[Found], interrupted: bool) -> list[FailureReport]:
        ctx = multiprocessing.get_context(method)
        reader, writer = ctx.Pipe(duplex=False)
        child = job if method == "fork" else replace(job, program=None)
        process = ctx.Process(  # type: ignore[attr-defined]  # as in run_local
            target=_describe_main, name="interleave-describe", daemon=True,
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
                    if kind == "shrinking":  # how a shrinking goes: for the progress line only
                        if on_shrinking is not None:
                            on_shrinking(payload)
                        continue
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
            return [unreplayed(as_found_failure(f), why) for f in found]
        for report in latest:
            if report.not_shrunk == PENDING:
                report.not_shrunk = why
        return latest

    return describe


def _describe_main(job: Job, found: list[Found], shrink_time: float | None, conn: Any, parent: int) -> None:
    _as_child(parent)  # the parent decides: on a Ctrl-C it reports what was sent last
    try:
        reports = describe_here(job, found, shrink_time, on_found=lambda reports: conn.send(("found", reports)),
                                on_shrunk=lambda reports: conn.send(("shrunk", reports)),
                                on_shrinking=lambda progress: conn.send(("shrinking", progress)))
        conn.send(("done", reports))
    except (BadInput, NondeterministicProgram) as exc:
        conn.send(("error", exc))
    conn.close()
