"""Speed-up of worker processes: one campaign, a fixed budget of runs, 1 worker then N.

    python benchmarks/workers_speedup.py [--runs 20000] [--workers 2] [--strategy random] [--repeat 3]
                                         [--target benchmarks/programs/two_threads_20.py::fixed]

The program is correct, so every campaign runs its whole budget. The two campaigns take
turns ``--repeat`` times and the best of each is kept. Printed: wall time, runs per
second and CPU seconds (this process plus its worker processes) of each; the wall-time
ratio N/1 (the goal on a 2-core machine: at most 0.6); the coordination overhead, the
extra CPU time the N-worker campaign spends for the same runs; and the CPU critical path
ratio (this process's CPU plus the busiest worker's, over the single campaign's CPU),
which is what the wall ratio comes to on cores nothing else uses. To tell whether the
machine gave this session N cores at all, the same split of a plain Python loop is timed
first (its ratio would be 1/N on idle cores): where the kernel groups a session's
processes for CPU shares (autogroup), a busy machine gives N processes no more CPU than
one, and then no wall ratio means anything.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from interleave import explore  # noqa: E402


def cpu_seconds() -> tuple[float, float]:
    """User+system CPU of this process, and of its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def _spin(iterations: int) -> None:
    for _ in range(iterations):
        pass


def loop_ratio(workers: int, repeat: int, iterations: int = 30_000_000) -> float:
    """Wall time of a loop split among ``workers`` processes over the whole loop in one (best of ``repeat``)."""
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")

    def timed(parts: int) -> float:
        started = time.perf_counter()
        processes = [ctx.Process(target=_spin, args=(iterations // parts,)) for _ in range(parts)]
        for p in processes:
            p.start()
        for p in processes:
            p.join()
        return time.perf_counter() - started

    return min(timed(workers) for _ in range(repeat)) / min(timed(1) for _ in range(repeat))


def campaign(target: str, runs: int, workers: int, strategy: str, seed: int) -> dict[str, float]:
    (own, children), wall = cpu_seconds(), time.perf_counter()
    report = explore(target, runs=runs, workers=workers, strategy=strategy, seed=seed)
    wall = time.perf_counter() - wall
    own, children = cpu_seconds()[0] - own, cpu_seconds()[1] - children
    if report.failure is not None or report.runs != runs:
        raise SystemExit(f"benchmark needs a correct program that runs its whole budget: {report.runs} runs, "
                         f"failure {report.failure and report.failure.message}")
    # With the budget split evenly, the busiest worker uses about children / workers of CPU.
    return {"wall": wall, "cpu": own + children, "runs": report.runs, "path": own + children / workers}


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
    print(f"  a plain loop split among {args.workers} processes: wall ratio {loop_ratio(args.workers, args.repeat):.2f} "
          f"(1/{args.workers} when the cores are free)")
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
    print(f"  CPU critical path {args.workers}/1: {many['path'] / one['path']:.2f} "
          f"(the wall ratio on otherwise idle cores, from CPU times)")
    print(f"  load average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
