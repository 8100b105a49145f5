"""Speed-up of worker processes: one campaign, a fixed budget of runs, 1 worker then N.

    python benchmarks/workers_speedup.py [--runs 20000] [--workers 2] [--strategy random] [--repeat 3]
                                         [--target benchmarks/programs/two_threads_20.py::fixed]

The program is correct, so every campaign runs its whole budget. The two campaigns take
turns ``--repeat`` times and the best of each is kept. Printed: wall time, runs per
second and CPU seconds (this process plus its worker processes) of each; the wall-time
ratio N/1 (the goal on a 2-core machine: at most 0.6); and the coordination overhead,
the extra CPU time the N-worker campaign spends for the same runs. The machine's load
average is printed too: other processes on the cores spoil the wall ratio (the CPU
overhead less so).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from interleave import explore  # noqa: E402


def cpu_seconds() -> float:
    """User+system CPU of this process and of its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def campaign(target: str, runs: int, workers: int, strategy: str, seed: int) -> dict[str, float]:
    cpu, wall = cpu_seconds(), time.perf_counter()
    report = explore(target, runs=runs, workers=workers, strategy=strategy, seed=seed)
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    if report.failure is not None or report.runs != runs:
        raise SystemExit(f"benchmark needs a correct program that runs its whole budget: {report.runs} runs, "
                         f"failure {report.failure and report.failure.message}")
    return {"wall": wall, "cpu": cpu, "runs": report.runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="benchmarks/programs/two_threads_20.py::fixed")
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--strategy", default="random")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.chdir(ROOT)
    print(f"{args.target}, {args.runs:,} runs, strategy {args.strategy}, {os.cpu_count()} cores, "
          f"load average before {os.getloadavg()[0]:.2f}")
    campaign(args.target, min(args.runs, 200), 1, args.strategy, args.seed)  # warm the caches of this process
    ones, manys = [], []
    for _ in range(args.repeat):
        ones.append(campaign(args.target, args.runs, 1, args.strategy, args.seed))
        manys.append(campaign(args.target, args.runs, args.workers, args.strategy, args.seed))
    one = {key: min(m[key] for m in ones) for key in ones[0]}
    many = {key: min(m[key] for m in manys) for key in manys[0]}
    for name, m in (("1 worker", one), (f"{args.workers} workers", many)):
        print(f"  {name:>10}: {m['wall']:7.2f}s wall, {m['runs'] / m['wall']:8,.0f} runs/s, {m['cpu']:7.2f}s CPU")
    ratio = many["wall"] / one["wall"]
    overhead = many["cpu"] / one["cpu"] - 1
    per_run_us = (many["cpu"] - one["cpu"]) / args.runs * 1e6
    print(f"  wall ratio {args.workers}/1: {ratio:.2f} (goal <= 0.6 for 2 workers on 2 cores)")
    print(f"  coordination overhead: {overhead:+.1%} CPU ({per_run_us:+.1f} us per run)")
    print(f"  load average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
