"""Exploration: run a program under a strategy until a failure or the budget, then report.

A failure is shrunk, replayed once more with a recorder (which also checks that the
program repeats itself), and described with its trace and replay token.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable

from . import strategies
from .failures import Failure
from .linecoverage import LineCollector
from .program import BadInput, Program, load
from .runner import DEFAULT_MAX_STEPS, RunConfig, Runner
from .schedule import PYTHON, Token, steps_checksum
from .scheduler import JUMP, Deviation, RunResult
from .shrink import shrink
from .strategies.dfs import Nondeterminism
from .strategies.replay import Replay, ScheduleMismatch
from .trace import TraceRecorder, render

DEFAULT_RUNS = 10_000
DEFAULT_TIME_LIMIT = 60.0


@dataclass
class FailureReport:
    kind: str
    message: str
    details: str
    run: int
    elapsed_s: float
    replay: str
    steps: int
    preemptions: int
    original_steps: int
    original_preemptions: int
    shrink_attempts: int
    minimal: bool
    trace: str
    thread: str | None = None
    #: The shrunk schedule's paid decisions by kind: ``preemptions`` counts them all.
    switches: int = 0
    pauses: int = 0
    faults: int = 0
    #: The final replay's steps and events (for ``--html``); left out of :meth:`Report.to_json`.
    recorder: TraceRecorder | None = field(default=None, repr=False, compare=False)


@dataclass
class Report:
    """The outcome of an exploration (the CLI's ``--json`` writes these fields)."""

    target: str
    strategy: str
    seed: int
    runs: int = 0
    steps: int = 0
    elapsed_s: float = 0.0
    exhausted: bool = False
    bound: int | None = None
    complete: bool = False
    distinct_schedules: int = 0
    failure: FailureReport | None = None
    interrupted: bool = False
    uncontrolled: str | None = None
    nondeterministic: str | None = None
    confidence: dict[str, Any] = field(default_factory=dict)
    coverage: dict[str, list[int]] | None = None
    workers: int = 1
    #: Every distinct failure (kind and place) with ``keep_going``; else the failure, if any.
    failures: list[FailureReport] = field(default_factory=list)
    #: One line per worker process that died, saying what it was running.
    worker_deaths: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out = asdict(replace(self, failure=None, failures=[]))
        if self.failure is not None:
            out["failure"] = asdict(replace(self.failure, recorder=None))
            del out["failure"]["recorder"]
        out["failures"] = [{k: v for k, v in asdict(replace(f, recorder=None)).items() if k != "recorder"}
                           for f in self.failures]
        return out


@dataclass
class Progress:
    runs: int
    steps: int
    elapsed_s: float


def explore(
    target: str | Callable[[], Any] | Program,
    *,
    runs: int | None = None,
    time_limit: float | None = None,
    seed: int = 0,
    strategy: str = "portfolio",
    depth: int = 3,
    max_preemptions: int = 2,
    max_steps: int | None = None,
    max_pauses: int | None = None,
    max_faults: int | None = None,
    granularity: str = "line",
    shrink_time: float = 30.0,
    on_progress: Callable[[Progress], None] | None = None,
    partition: tuple[int, int] = (0, 1),
    workers: int | str | Any = 1,
    keep_going: bool = False,
    coverage: bool = False,
) -> Report:
    """Explore schedules of ``target`` (``"path.py::func"`` or a callable) for a failure.

    The budget is ``runs`` and/or ``time_limit`` (seconds), whichever ends first; with
    neither, 10,000 runs or 60 seconds. Raises :class:`BadInput` for unusable input.

    ``coverage=True`` collects the lines of the user's code run over all runs into
    ``Report.coverage`` (``{filename: [line, ...]}``).

    ``partition=(i, n)`` explores only worker ``i``'s share of an ``n``-way split: run
    indices ``i, i+n, i+2n...`` for sampling strategies (so seeds never overlap).

    ``workers``: split the search among this many processes, or run it on the Dask
    cluster at this scheduler address (or behind this ``distributed.Client``); see
    :mod:`interleave.workers`. ``keep_going``: do not stop at the first failure; report
    every distinct one.
    """
    program = target if isinstance(target, Program) else load(target)
    if coverage and (workers != 1 or keep_going):
        raise BadInput("coverage is collected in one process: use it with --workers 1")
    if workers != 1 or keep_going:
        from .workers import explore_parallel

        if partition != (0, 1):
            raise BadInput("partition and workers cannot be combined")
        if runs is None and time_limit is None:
            runs, time_limit = DEFAULT_RUNS, DEFAULT_TIME_LIMIT
        return explore_parallel(program, workers=workers, keep_going=keep_going, runs=runs, time_limit=time_limit,
                                seed=seed, strategy=strategy, depth=depth, max_preemptions=max_preemptions,
                                max_steps=max_steps, max_pauses=max_pauses, max_faults=max_faults,
                                granularity=granularity, shrink_time=shrink_time, on_progress=on_progress)
    config = _config(program, max_steps, max_pauses, max_faults, granularity)
    if runs is None and time_limit is None:
        runs, time_limit = DEFAULT_RUNS, DEFAULT_TIME_LIMIT
    try:
        chooser = strategies.make(strategy, seed=seed, depth=depth, max_preemptions=max_preemptions)
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    runner = Runner(program, config)
    report = Report(target=program.display, strategy=strategy, seed=seed)
    collector = LineCollector() if coverage else None
    started = time.monotonic()
    runner.deadline = None if time_limit is None else started + time_limit
    last_progress = started
    seen: set[int] = set()
    found: tuple[int, RunResult] | None = None
    try:
        while runs is None or report.runs < runs:
            elapsed = time.monotonic() - started
            if time_limit is not None and elapsed >= time_limit:
                break
            if not chooser.begin_run(partition[0] + report.runs * partition[1]):
                break
            try:
                result = runner.run(chooser, collector)
            except Nondeterminism as exc:
                report.nondeterministic = f"the program did not repeat itself under the same choices ({exc})"
                break
            chooser.end_run(result)
            report.runs += 1
            report.steps += result.steps
            seen.add(hash(tuple((d.thread, d.steps, d.sub, d.choice) for d in result.deviations)))
            if result.extra.get("interrupted"):
                report.interrupted = True
                break
            if result.uncontrolled is not None:
                report.uncontrolled = result.uncontrolled
                break
            if result.failure is not None:
                found = (report.runs, result)
                break
            if on_progress is not None and time.monotonic() - last_progress > 0.25:
                last_progress = time.monotonic()
                on_progress(Progress(report.runs, report.steps, last_progress - started))
    except KeyboardInterrupt:
        report.interrupted = True
    runner.deadline = None  # shrinking keeps to its own time
    report.elapsed_s = time.monotonic() - started
    report.distinct_schedules = len(seen)
    if collector is not None:
        report.coverage = collector.as_json()
    _summarize_search(report, chooser)
    if found is not None:
        try:
            report.failure = _describe_failure(runner, program, found[0], found[1], report.elapsed_s, shrink_time)
            report.failures = [report.failure]
        except KeyboardInterrupt:
            report.interrupted = True
    runner.close()
    return report


def _config(program: Program, max_steps: int | None, max_pauses: int | None, max_faults: int | None,
            granularity: str) -> RunConfig:
    """Command-line values win; then the target's ``__interleave__`` settings; then defaults."""
    settings = program.config or {}
    return RunConfig(
        max_steps=max_steps if max_steps is not None else int(settings.get("max_steps", DEFAULT_MAX_STEPS)),
        max_pauses=max_pauses if max_pauses is not None else int(settings.get("max_pauses", 2)),
        max_faults=max_faults if max_faults is not None else int(settings.get("max_faults", 2)),
        granularity=granularity,
    )


def _summarize_search(report: Report, chooser: strategies.Strategy) -> None:
    summary = chooser.summary()
    dfs = summary.get("dfs", summary if isinstance(chooser, strategies.BoundedDFS) else None)
    if dfs:
        report.exhausted = chooser.exhausted()
        report.bound = dfs.get("bound")
        report.complete = bool(dfs.get("complete"))
    pct = summary.get("pct") or ([summary] if isinstance(chooser, strategies.PCT) else [])
    report.confidence = confidence_from(pct)


def confidence_from(pct: list[dict[str, Any]]) -> dict[str, Any]:
    """The report's confidence figures from PCT members' summaries."""
    confidence = {}
    for entry in pct:
        p = entry["per_run_probability"]
        needed = math.ceil(math.log(0.01) / math.log1p(-p)) if 0 < p < 1 else 1
        confidence[f"pct_depth_{entry['depth']}"] = {
            "threads": entry["threads"],
            "steps_k": entry["steps_k"],
            "per_run_probability": p,
            "runs_for_99_percent": needed,
        }
    return confidence


def _describe_failure(runner: Runner, program: Program, run_index: int, result: RunResult, elapsed: float,
                      shrink_time: float) -> FailureReport:
    failure = result.failure
    assert failure is not None
    shrunk = shrink(runner, failure, result.deviations, result, shrink_time)
    recorder = TraceRecorder()
    try:
        final = runner.run(Replay(shrunk.deviations, strict=True), recorder)
    except ScheduleMismatch:
        final = None
    if final is None or not failure.same_as(final.failure):
        raise_nondeterministic(failure, final.failure if final is not None else None)
    token = Token(PYTHON, program.fingerprint, runner.config, tuple(shrunk.deviations), steps_checksum(recorder.path()))
    shown = final.failure or failure
    return FailureReport(
        kind=shown.kind,
        message=shown.message,
        details=shown.details,
        run=run_index,
        elapsed_s=elapsed,
        replay=token.encode(),
        steps=final.steps,
        preemptions=final.preemptions,
        original_steps=result.steps,
        original_preemptions=result.preemptions,
        shrink_attempts=shrunk.attempts,
        minimal=shrunk.minimal,
        switches=sum(1 for d in final.deviations if d.cost and d.choice >= 0),
        pauses=sum(1 for d in final.deviations if d.choice == JUMP),
        faults=sum(1 for d in final.deviations if d.cost and d.choice <= -2),
        trace=render(recorder, shown, skip_setup=setup_steps(recorder)),
        thread=shown.thread,
        recorder=recorder,
    )


def setup_steps(recorder: TraceRecorder) -> int:
    for ev in recorder.events:
        if ev.kind == "enter":
            return ev.at_step
    return 0


class NondeterministicProgram(Exception):
    """Replaying the same choices did not give the same run."""


def raise_nondeterministic(expected: Failure, got: Failure | None) -> None:
    seen = got.message if got else "no failure"
    raise NondeterministicProgram(
        f"the program is not deterministic: replaying the failing schedule gave {seen!r} "
        f"instead of {expected.message!r} (hash order, real I/O, randomness or a thread interleave does not control?)"
    )


@dataclass
class ReplayOutcome:
    failure: Failure | None
    trace: str
    steps: int
    preemptions: int
    recorder: TraceRecorder


def replay(target: str | Callable[[], Any] | Program, token: str) -> ReplayOutcome:
    """Run exactly the schedule in ``token``; raises :class:`BadInput` if it does not fit."""
    decoded = Token.decode(token)
    program = target if isinstance(target, Program) else load(target)

    def misfit(reason: str) -> BadInput:
        if decoded.python != PYTHON:  # line events differ between versions: say so, whatever broke
            return BadInput(
                f"this token was made on Python {decoded.python[0]}.{decoded.python[1:]} and does not replay "
                f"the same on {PYTHON[0]}.{PYTHON[1:]}; explore again on this version"
            )
        return BadInput(f"the schedule no longer fits the program: {reason}")

    if decoded.fingerprint != program.fingerprint:
        if decoded.python != PYTHON and program.path is None:
            raise misfit("")  # a function's fingerprint is its bytecode, which each version compiles anew
        raise BadInput(
            f"the replay token was made for another version of {program.display} "
            f"(fingerprint {decoded.fingerprint}, now {program.fingerprint}); explore again"
        )
    runner = Runner(program, decoded.config)
    recorder = TraceRecorder()
    chooser = Replay(list(decoded.deviations), strict=True)
    try:
        result = runner.run(chooser, recorder)
    except ScheduleMismatch as exc:
        raise misfit(str(exc)) from None
    finally:
        runner.close()
    if result.uncontrolled is not None:
        raise BadInput(f"cannot replay: the program used {result.uncontrolled}")
    if not chooser.all_used():
        raise misfit("some of its decisions were never reached")
    if steps_checksum(recorder.path()) != decoded.checksum:
        raise misfit("the replay took a different path (the program changed or is not deterministic)")
    failure = result.failure
    return ReplayOutcome(failure, render(recorder, failure, skip_setup=setup_steps(recorder)),
                         result.steps, result.preemptions, recorder)


__all__ = ["explore", "replay", "Report", "FailureReport", "ReplayOutcome", "Progress", "BadInput",
           "NondeterministicProgram", "Deviation"]
