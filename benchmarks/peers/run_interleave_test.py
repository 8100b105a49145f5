"""Runs one program file under interleave-test (inside its venv) and prints one JSON line.

interleave-test takes a zero-argument model that starts ``threading`` threads, joins
them and asserts: exactly the shape of the benchmark programs, so the program's own
``main``/``fixed`` is passed unchanged (a fresh copy of the file is executed for every
call, so no state leaks between calls).

``python run_interleave_test.py PATH VARIANT --strategy random|pct|dfs --seed N --time-limit S``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import types

import interleave_test as it


def load(path: str, func: str) -> object:
    """The function ``func`` of a fresh module built from ``path``."""
    with open(path) as f:
        code = compile(f.read(), path, "exec")
    module = types.ModuleType(os.path.splitext(os.path.basename(path))[0])
    module.__file__ = path
    sys.modules[module.__name__] = module
    exec(code, module.__dict__)
    return module.__dict__[func]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("variant", choices=["main", "fixed"])
    parser.add_argument("--strategy", default="pct", choices=["random", "pct", "dfs"])
    parser.add_argument("--granularity", default="line", choices=["line", "opcode"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-limit", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=100_000)
    args = parser.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.abspath(args.path)))
    out: dict = {"peer": "interleave-test", "version": it.__version__, "strategy": args.strategy,
                 "granularity": args.granularity, "seed": args.seed}
    model = load(args.path, args.variant)
    started = time.perf_counter()
    cpu = time.process_time()  # every thread of this process
    runs = 0
    found: dict | None = None
    exhausted = False
    # interleave-test has a schedule count but no overall time budget: run in slices.
    slice_runs = 20
    try:
        while runs < args.runs and time.perf_counter() - started < args.time_limit and not exhausted:
            n = min(slice_runs, args.runs - runs)
            result = it.explore(model, iterations=n, seed=args.seed * 1_000_003 + runs, strategy=args.strategy,
                                granularity=args.granularity, timeout=5.0, raise_on_failure=False)
            runs += result.schedules_run
            exhausted = result.exhausted
            if result.failure is not None:
                found = {"kind": type(result.failure).__name__, "message": str(result.failure)[:200]}
                break
            if args.strategy == "dfs":
                exhausted = True  # one DFS call enumerates its whole bounded space
            slice_runs = min(slice_runs * 2, 2000)
    except Exception as exc:  # noqa: BLE001 - reported as the peer's own error
        out["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    out["elapsed_s"] = time.perf_counter() - started
    out["cpu_s"] = time.process_time() - cpu
    out["runs"] = runs
    out["found"] = found is not None
    out["exhausted"] = exhausted
    if found:
        out["failure"] = found
    print(json.dumps(out))


if __name__ == "__main__":
    main()
