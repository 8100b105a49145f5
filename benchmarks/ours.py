"""interleave's own numbers: time to first failure, throughput, shrinking, bounds.

Every function here calls the public :func:`interleave.explore` on one program, in this
process, with the working directory at the repository root. ``python benchmarks/ours.py
PATH::FUNC STRATEGY SECONDS`` prints :func:`throughput` as one JSON line from a fresh
process, the way the peers' drivers run.
"""

from __future__ import annotations

import time
from typing import Any

import json
import sys

from interleave import explore

from catalog import ROOT, Program


def find_failure(program: Program, seed: int, strategy: str, time_limit: float,
                 shrink_time: float) -> dict[str, Any]:
    """One exploration of ``main``: when (seconds, run) the first failure came, and its shrunk size."""
    wall = time.perf_counter()
    report = explore(program.target("main"), time_limit=time_limit, runs=10_000_000, seed=seed,
                     strategy=strategy, shrink_time=shrink_time)
    wall = time.perf_counter() - wall
    row: dict[str, Any] = {"seed": seed, "strategy": strategy, "runs": report.runs, "steps": report.steps,
                           "search_s": report.elapsed_s, "wall_s": wall, "found": report.failure is not None}
    if report.nondeterministic or report.uncontrolled:
        row["error"] = report.nondeterministic or report.uncontrolled
    f = report.failure
    if f is not None:
        row.update(kind=f.kind, ttff_s=f.elapsed_s, failing_run=f.run, preemptions=f.preemptions, shrunk_steps=f.steps,
                   original_preemptions=f.original_preemptions, original_steps=f.original_steps,
                   minimal=f.minimal, shrink_attempts=f.shrink_attempts, message=f.message[:160])
    return row


def throughput(program: Program, variant: str, strategy: str, time_limit: float, seed: int = 0) -> dict[str, Any]:
    return throughput_of(program.target(variant), variant, strategy, time_limit, seed)


def throughput_of(target: str, variant: str, strategy: str, time_limit: float, seed: int = 0) -> dict[str, Any]:
    """Runs and steps per second of exploring ``variant`` for ``time_limit`` seconds (or until exhausted).

    ``cpu_s`` is the process's CPU time over the same exploration: on a shared machine it moves less
    with other people's load than the wall-clock rates do.
    """
    cpu = time.process_time()
    report = explore(target, time_limit=time_limit, runs=10_000_000, seed=seed,
                     strategy=strategy, shrink_time=0.0)
    cpu = time.process_time() - cpu
    elapsed = max(report.elapsed_s, 1e-9)
    row = {"variant": variant, "strategy": strategy, "runs": report.runs, "steps": report.steps,
           "elapsed_s": report.elapsed_s, "cpu_s": cpu, "runs_per_s": report.runs / elapsed,
           "runs_per_cpu_s": report.runs / max(cpu, 1e-9), "steps_per_s": report.steps / elapsed,
           "us_per_step": 1e6 * elapsed / max(report.steps, 1), "steps_per_run": report.steps / max(report.runs, 1),
           "exhausted": report.exhausted, "complete": report.complete, "bound": report.bound,
           "failure": report.failure.message[:160] if report.failure else None}
    if report.nondeterministic or report.uncontrolled:
        row["error"] = report.nondeterministic or report.uncontrolled
    return row


if __name__ == "__main__":
    import os

    os.chdir(ROOT)
    spec, strategy_name, seconds = sys.argv[1:4]
    print(json.dumps(throughput_of(spec, spec.rpartition("::")[2], strategy_name, float(seconds))))
