"""Runs one program's ploom scenario (inside the ploom venv) and prints one JSON line.

``python run_ploom.py PROGRAM VARIANT --time-limit S [--max-preemptions N]``

ploom enumerates schedules depth-first (no seed), each in a fresh worker process.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ploom  # noqa: E402

from ploom_adapters import NOT_EXPRESSIBLE, SCENARIOS  # noqa: E402


def _cpu() -> float:
    """CPU seconds of this process and of its finished children (ploom's per-schedule workers)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("program")
    parser.add_argument("variant", choices=["main", "fixed"])
    parser.add_argument("--time-limit", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--max-preemptions", type=int, default=None)
    args = parser.parse_args()
    out: dict = {"peer": "ploom", "version": version("ploom"), "program": args.program, "variant": args.variant}
    scenario = SCENARIOS.get(args.program, {}).get(args.variant)
    if scenario is None:
        out["unsupported"] = NOT_EXPRESSIBLE.get(args.program, "no scenario for this program")
        print(json.dumps(out))
        return
    config = ploom.Config(max_executions=args.runs, max_steps=5000, timeout=args.time_limit,
                          max_preemptions=args.max_preemptions, minimize_executions=0, minimize_timeout=0.0)
    started = time.perf_counter()
    cpu = _cpu()
    stats = None
    with tempfile.TemporaryDirectory() as trace_dir:
        try:
            stats = ploom.check(scenario, config=config, trace_dir=Path(trace_dir), on_failure=lambda *a: None)
            out["found"] = False
            out["exhausted"] = True
        except ploom.IncompleteExplorationError as exc:
            out["found"] = False
            out["exhausted"] = False
            stats = getattr(exc, "statistics", None)
        except ploom.ModelCheckError as exc:
            out["elapsed_s"] = time.perf_counter() - started
            out["found"] = True
            out["failure"] = {"kind": type(exc).__name__, "message": str(exc).splitlines()[0][:200]}
            stats = exc.statistics
        except Exception as exc:  # noqa: BLE001 - reported as the peer's own error
            out["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    out.setdefault("elapsed_s", time.perf_counter() - started)
    out["cpu_s"] = _cpu() - cpu
    if stats is not None:
        out["runs"] = stats.executions
        out["steps"] = stats.steps
        out["explore_elapsed_s"] = stats.elapsed
    print(json.dumps(out))


if __name__ == "__main__":
    main()
