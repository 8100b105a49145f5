"""dpor split among the campaign's slots, side by side with its search whole, in one run.

    python benchmarks/dpor_split.py [--target targets/nio_throttle.py::fixed] [--bound 2] [--workers 2]

The program must be correct: every search runs until it is exhausted. Printed, for dpor's
search whole (one slot, as it ran before it was split), split into the campaign's slots in
one process (``--workers 1``) and in ``--workers`` processes: schedules run, distinct
schedules (the split may run a schedule in two slots), wall seconds and CPU seconds. Then
the split is searched in this process with no campaign around it, all its slots and then
each worker's slots alone: the busiest worker's seconds over all the slots' are the wall
ratio on cores nothing else uses. On a shared machine the parallel campaign's own wall
ratio says how many cores it got; a plain loop split the same way is timed first, as in
workers_speedup.py, to tell.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from workers_speedup import cpu_seconds, loop_ratio  # noqa: E402

from interleave import explore  # noqa: E402
from interleave.campaign import SLOTS, InProcess, Job, SlotResult, run_config, search  # noqa: E402
from interleave.program import load  # noqa: E402


def slots_alone(spec: str, bound: int | None, own: tuple[int, ...], slots: int) -> tuple[list[SlotResult], float]:
    """Slots ``own`` of a ``slots``-way split searched in this process, as one worker searches them; and the seconds."""
    program = load(spec)
    job = Job(program=program, spec=None, fingerprint=program.fingerprint,
              config=run_config(program, None, None, None, "access"), strategy="dpor", seed=0, depth=3,
              max_preemptions=bound, own=own, slots=slots, runs=None, time_limit=None, keep_going=False)
    started = time.perf_counter()
    results = search(job, InProcess(slots=slots, whole=len(own) == slots))
    seconds = time.perf_counter() - started
    if not all(r.exhausted and not r.found for r in results):
        raise SystemExit(f"benchmark needs a correct program that dpor exhausts: {spec}")
    return results, seconds


def campaign(spec: str, bound: int | None, workers: int) -> dict[str, float]:
    (own, children), wall = cpu_seconds(), time.perf_counter()
    report = explore(spec, strategy="dpor", max_preemptions=bound, workers=workers, runs=10**7, time_limit=3600,
                     shrink_time=0, seed=0)
    wall = time.perf_counter() - wall
    if report.failure is not None or not report.exhausted:
        raise SystemExit(f"benchmark needs a correct program that dpor exhausts: {spec}")
    cpu = sum(cpu_seconds()) - own - children
    return {"runs": report.runs, "distinct": report.distinct_schedules, "wall": wall, "cpu": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="targets/nio_throttle.py::fixed")
    parser.add_argument("--bound", type=int, default=2, help="dpor's preemption bound (-1: none)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    os.chdir(ROOT)
    bound = None if args.bound < 0 else args.bound
    print(f"{args.target}, dpor {'unbounded' if bound is None else f'at bound {bound}'}, {os.cpu_count()} cores, "
          f"load average before {os.getloadavg()[0]:.2f}")
    print(f"  a plain loop split among {args.workers} processes: wall ratio {loop_ratio(args.workers, 1):.2f} "
          f"(1/{args.workers} when the cores are free)")
    (whole,), whole_s = slots_alone(args.target, bound, (0,), 1)
    print(f"  {'whole, one slot':>24}: {len(whole.steps):7,} schedules {len(set(whole.schedules)):7,} distinct "
          f"{whole_s:7.1f}s wall")
    rows = {w: campaign(args.target, bound, w) for w in (1, args.workers)}
    for w, row in rows.items():
        name = f"split, {w} worker{'s' if w > 1 else ''}"
        print(f"  {name:>24}: {row['runs']:7,} schedules {row['distinct']:7,} distinct {row['wall']:7.1f}s wall "
              f"{row['cpu']:7.1f}s CPU")
    every, every_s = slots_alone(args.target, bound, tuple(range(SLOTS)), SLOTS)
    print(f"  {'every slot alone':>24}: {sum(len(r.steps) for r in every):7,} schedules {every_s:7.1f}s wall")
    busiest = 0.0
    for w in range(args.workers):
        results, seconds = slots_alone(args.target, bound, tuple(range(w, SLOTS, args.workers)), SLOTS)
        busiest = max(busiest, seconds)
        print(f"  {f'worker {w} of {args.workers} alone':>24}: {sum(len(r.steps) for r in results):7,} schedules "
              f"of its own {seconds:7.1f}s wall")
    one = rows[1]["wall"]
    print(f"  split over whole, 1 worker: {one / whole_s:.2f} wall, {rows[1]['runs'] / len(whole.steps):.3f} schedules")
    print(f"  {args.workers} workers over 1: {rows[args.workers]['wall'] / one:.2f} wall here, "
          f"{busiest / every_s:.2f} on idle cores (the busiest worker's slots alone over every slot alone)")
    print(f"  load average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
