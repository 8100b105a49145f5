"""Runs one program under frontrun (inside the frontrun venv) and prints one JSON line.

``python run_frontrun.py PROGRAM VARIANT --strategy dpor|random --seed N --time-limit S``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import frontrun  # noqa: E402

from frontrun_adapters import CASES, NOT_EXPRESSIBLE  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("program")
    parser.add_argument("variant", choices=["main", "fixed"])
    parser.add_argument("--strategy", default="dpor", choices=["dpor", "random"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-limit", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=100_000)
    args = parser.parse_args()
    out: dict = {"peer": "frontrun", "version": frontrun.__version__, "program": args.program,
                 "variant": args.variant, "strategy": args.strategy, "seed": args.seed}
    case = CASES.get(args.program, {}).get(args.variant)
    if case is None:
        out["unsupported"] = NOT_EXPRESSIBLE.get(args.program, "no adapter for this program")
        print(json.dumps(out))
        return
    kwargs: dict = dict(total_timeout=args.time_limit, deadlock_timeout=2.0)
    if args.strategy == "dpor":
        kwargs.update(max_executions=args.runs, reproduce_on_failure=0)
    else:
        kwargs.update(max_attempts=args.runs, seed=args.seed)
    started = time.perf_counter()
    cpu = time.process_time()  # every thread of this process
    try:
        result = frontrun.explore(case.setup, case.workers, case.invariant, strategy=args.strategy, **kwargs)
    except Exception as exc:  # noqa: BLE001 - reported as the peer's own error
        out["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        out["elapsed_s"] = time.perf_counter() - started
        print(json.dumps(out))
        return
    out["elapsed_s"] = time.perf_counter() - started
    out["cpu_s"] = time.process_time() - cpu
    out["runs"] = int(result.num_explored)
    out["found"] = result.property_holds is False
    out["verdict"] = repr(result.property_holds)
    if result.property_holds is None:
        out["inconclusive"] = str(getattr(result, "inconclusive_reason", ""))[:300]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
