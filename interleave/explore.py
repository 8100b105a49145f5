"""The API: :func:`explore` a program's schedules for a failure, :func:`replay` one.

``explore`` checks its input, makes the campaign's settings (a :class:`~interleave.campaign.Job`)
and runs the campaign in this process (:func:`interleave.campaign.run_here`) or among
worker processes or on a Dask cluster (:mod:`interleave.workers`); either way the same loop
searches and the same code describes what it found (:mod:`interleave.describe`). ``replay``
is :mod:`interleave.replaying`'s.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from . import strategies
from .campaign import SLOTS, Job, run_config, run_here
from .decisions import Decision
from .describe import NondeterministicProgram
from .program import BadInput, Program, load
from .replaying import Diverged, ReplayOutcome, replay
from .report import FailureReport, Progress, Report, ShrinkProgress
from .workers import explore_parallel

DEFAULT_RUNS = 10_000
DEFAULT_TIME_LIMIT = 60.0


def explore(
    target: str | Callable[[], Any] | Program,
    *,
    runs: int | None = None,
    time_limit: float | None = None,
    seed: int = 0,
    strategy: str = "portfolio",
    depth: int = 3,
    max_preemptions: int | None = None,
    max_steps: int | None = None,
    max_pauses: int | None = None,
    max_faults: int | None = None,
    granularity: str = "access",
    include: tuple[str, ...] | list[str] = (),
    shrink_time: float = 30.0,
    on_progress: Callable[[Progress], None] | None = None,
    partition: tuple[int, int] = (0, 1),
    workers: int | str | Any = 1,
    keep_going: bool = False,
    coverage: bool = False,
    on_found: Callable[[list[FailureReport]], None] | None = None,
    races: bool = False,
    on_shrinking: Callable[[ShrinkProgress], None] | None = None,
) -> Report:
    """Explore schedules of ``target`` (``"path.py::func"`` or a callable) for a failure.

    The budget is ``runs`` and/or ``time_limit`` (seconds), whichever ends first; with
    neither, 10,000 runs or 60 seconds. Raises :class:`BadInput` for unusable input.

    ``coverage=True`` collects the lines of the user's code run over all runs (of every
    worker) into ``Report.coverage`` (``{filename: [line, ...]}``).

    ``partition=(i, n)`` explores only worker ``i``'s share of an ``n``-way split: run
    indices ``i, i+n, i+2n...`` for sampling strategies (so seeds never overlap), and its
    deal of the enumeration's subtrees.

    ``workers``: split the search among this many processes, or run it on the Dask
    cluster at this scheduler address (or behind this ``distributed.Client``); see
    :mod:`interleave.workers`. ``include``: installed modules or packages (or paths)
    whose code gets switch points like the user's own. ``keep_going``: do not stop at the
    first failure; report every distinct one. ``on_found``: called with the failures as
    found (replayed, with their tokens), before shrinking starts; ``on_shrinking``: with
    how each shrinking goes (:class:`ShrinkProgress`), now and then and at its end.

    A failure found is reported even when shrinking it is interrupted: as found, with
    ``not_shrunk`` set and ``interrupted`` true. ``races``: a data race
    (see :mod:`interleave.races`) is a failure; without it, some runs are checked for races
    all the same and ``Report.races`` counts what they saw.
    """
    _check_numbers(runs=(runs, 1), max_steps=(max_steps, 1), max_pauses=(max_pauses, 0),
                   max_faults=(max_faults, 0), depth=(depth, 1), max_preemptions=(max_preemptions, 0))
    _check_seconds(time_limit=time_limit, shrink_time=shrink_time)
    program = target if isinstance(target, Program) else load(target)
    if races and granularity != "access":
        raise BadInput("races are found from the shared accesses: use them with --granularity access")
    index, count = partition
    if not 0 <= index < count:
        raise BadInput(f"partition {partition!r}: share {index} of {count} does not exist")
    if partition != (0, 1) and workers != 1:
        raise BadInput("partition and workers cannot be combined")
    if runs is None and time_limit is None:
        runs, time_limit = DEFAULT_RUNS, DEFAULT_TIME_LIMIT
    config = run_config(program, max_steps, max_pauses, max_faults, granularity, tuple(include), races)
    try:
        strategies.make(strategy, seed=seed, depth=depth, max_preemptions=max_preemptions)
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    job = Job(program=program, spec=f"{program.path}::{program.func_name}" if program.path else None,
              fingerprint=program.fingerprint, config=config, strategy=strategy, seed=seed, depth=depth,
              max_preemptions=max_preemptions, own=(index,) if count > 1 else tuple(range(SLOTS)),
              slots=count if count > 1 else SLOTS, runs=runs, time_limit=time_limit,
              keep_going=keep_going, coverage=coverage)
    if workers == 1:
        return run_here(job, program.display, shrink_time, on_progress, on_found, on_shrinking)
    return explore_parallel(job, program.display, workers, shrink_time, on_progress, on_found, on_shrinking)


def _check_numbers(**values: tuple[Any, int]) -> None:
    """Each ``name=(value, least)``: None, or an int (not a bool) of at least ``least``."""
    for name, (value, least) in values.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
            raise BadInput(f"{name.replace('_', ' ')} must be a whole number of at least {least}, not {value!r}")


def _check_seconds(**values: Any) -> None:
    for name, value in values.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or value < 0):
            raise BadInput(f"{name.replace('_', ' ')} must be a finite number of seconds, 0 or more, not {value!r}")


__all__ = ["explore", "replay", "Report", "FailureReport", "ReplayOutcome", "Diverged", "Progress", "ShrinkProgress",
           "BadInput", "NondeterministicProgram", "Decision"]
