"""Cost of one switch point on this Python version, everything included.

Runs a workload of three threads (about 1,100 line steps per run) again and again, as
exploring does, and divides: steps per second and microseconds per switch point,
including the tracer callback, the scheduler's bookkeeping, the strategy, greenlet
switches, lock hand-offs and each run's setup and teardown.

    python benchmarks/per_step.py [--seconds 2] [--rounds 3] [--json]

Rows (each the fastest of ``--rounds``): line granularity with this version's tracer
(``sys.monitoring`` on 3.12+, ``sys.settrace`` on 3.11) under the random strategy (a
random runnable thread at every decision: a switch at two steps in three) and under the
default choice (no switches); on 3.12+ the random row with ``sys.settrace``, which
interleave falls back to when no monitoring tool id is free; opcode granularity; access
granularity (the default: the code is instrumented, every shared access is a switch
point, no tracer) under the random strategy and the default choice.
``plain_run_us`` is one call of the workload with real threads and no interleave.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import threading
import time
from contextlib import contextmanager, nullcontext
from typing import Any, Iterator

from interleave import strategies, tracing
from interleave.program import load
from interleave.runner import RunConfig, Runner
from interleave.strategies.replay import Replay

THREADS = 3
ITERATIONS = 60


def workload() -> None:
    counter = [0]
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(ITERATIONS):
            with lock:
                counter[0] += 1
            seen = counter[0]
            assert seen >= 1

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counter[0] == THREADS * ITERATIONS


@contextmanager
def settrace_only() -> Iterator[None]:
    """Hold every tool id interleave could take, so it falls back to ``sys.settrace``."""
    for tool in tracing.TOOL_IDS:
        sys.monitoring.use_tool_id(tool, "per_step benchmark")
    try:
        yield
    finally:
        for tool in tracing.TOOL_IDS:
            sys.monitoring.free_tool_id(tool)


def measure(seconds: float, granularity: str, strategy: str) -> dict[str, Any]:
    """Runs the workload again and again for ``seconds``, as :func:`interleave.explore` does.

    ``random``: a random runnable thread at every decision (a switch at most steps);
    ``default``: the default choice everywhere (the decisions are made, threads rarely switch).
    """
    runner = Runner(load(workload), RunConfig(max_pauses=0, granularity=granularity))
    chooser = strategies.make("random", seed=0) if strategy == "random" else Replay([])
    runs = steps = switches = 0
    try:  # closed after: the access runner's instrumentation would outlive it in the next rows
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            chooser.begin_run(runs)
            result = runner.run(chooser)
            chooser.end_run(result)
            if result.failure is not None or result.uncontrolled:
                raise SystemExit(f"the workload failed under interleave: {result.failure or result.uncontrolled}")
            runs += 1
            steps += result.steps
            switches += len(result.deviations)
        elapsed = time.perf_counter() - start
    finally:
        runner.close()
    return {
        "granularity": granularity,
        "strategy": strategy,
        "runs": runs,
        "steps_per_run": round(steps / runs),
        "switches_per_run": round(switches / runs),
        "runs_per_s": round(runs / elapsed, 1),
        "steps_per_s": round(steps / elapsed),
        "us_per_step": round(elapsed / steps * 1e6, 3),
    }


def plain_run_us(repeat: int = 200) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        workload()
        best = min(best, time.perf_counter() - start)
    return round(best * 1e6, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="exploration time per row and round")
    parser.add_argument("--rounds", type=int, default=3, help="measure each row this often, keep the fastest")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()

    native = "sys.monitoring" if sys.version_info >= (3, 12) else "sys.settrace"
    configs = [(native, tracing.LINE, "random"), (native, tracing.LINE, "default")]
    if sys.version_info >= (3, 12):
        configs.append(("sys.settrace", tracing.LINE, "random"))
    configs.append((native, tracing.OPCODE, "random"))
    configs += [("instrumented", tracing.ACCESS, "random"), ("instrumented", tracing.ACCESS, "default")]
    best: dict[tuple[str, str, str], dict[str, Any]] = {}
    for _ in range(max(args.rounds, 1)):  # rounds interleave the rows, so a busy moment hits them alike
        for tracer, granularity, strategy in configs:
            with settrace_only() if tracer == "sys.settrace" and native != tracer else nullcontext():
                row = {"tracer": tracer, **measure(args.seconds, granularity, strategy)}
            key = (tracer, granularity, strategy)
            if key not in best or row["us_per_step"] < best[key]["us_per_step"]:
                best[key] = row
    rows = [best[key] for key in configs]
    result = {"python": platform.python_version(), "plain_run_us": plain_run_us(), "rows": rows}

    if args.json:
        print(json.dumps(result))
        return
    print(f"Python {result['python']}  (plain run of the workload, real threads: {result['plain_run_us']} us)")
    print(f"{'tracer':<15} {'granularity':<11} {'strategy':<8} {'steps/run':>9} {'switches':>8} {'runs/s':>8} "
          f"{'steps/s':>9} {'us/step':>8}")
    for r in rows:
        print(f"{r['tracer']:<15} {r['granularity']:<11} {r['strategy']:<8} {r['steps_per_run']:>9} "
              f"{r['switches_per_run']:>8} {r['runs_per_s']:>8} {r['steps_per_s']:>9} {r['us_per_step']:>8}")

if __name__ == "__main__":
    main()
