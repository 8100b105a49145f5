"""Does steering towards new interleavings find bugs sooner? (issue: coverage steering)

Compares the SURW-style walk with the coverage-steered sampler on every example's buggy
``main`` and on a bug that needs 20 consecutive steps of one thread between two steps of
another: median runs to the first failure over several seeds. Run from the repository
root: ``python benchmarks/steering.py [--seeds N]``.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from interleave import explore

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = sorted((ROOT / "examples").glob("*.py")) + [ROOT / "benchmarks" / "programs" / "twenty_steps.py"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3000)
    args = parser.parse_args()
    totals = {"surw": 0.0, "steer": 0.0}
    print(f"{'program':<24} {'surw':>8} {'steer':>8}   (median runs to the first failure, {args.seeds} seeds)")
    for path in PROGRAMS:
        if not path.exists():
            continue
        medians = {}
        for strategy in totals:
            runs = []
            for seed in range(args.seeds):
                report = explore(f"{path}::main", runs=args.runs, strategy=strategy, seed=seed, shrink_time=0)
                runs.append(report.failure.run if report.failure else args.runs)
            medians[strategy] = statistics.median(runs)
            totals[strategy] += medians[strategy]
        print(f"{path.name:<24} {medians['surw']:>8g} {medians['steer']:>8g}")
    print(f"{'total':<24} {totals['surw']:>8g} {totals['steer']:>8g}")


if __name__ == "__main__":
    main()
