"""Stress testing with real threads: what a user without a scheduler does today.

Reruns ``PATH::FUNC`` under the real OS scheduler for a fixed time and stops at the first
failure. A failure is an exception from FUNC or from any thread it started (caught with
``threading.excepthook``), or a rerun that does not finish within the watchdog (a
deadlock or a hang: the watchdog is 10 times the longest rerun seen so far, at least one
second, and 10 seconds before any rerun has finished). Threads cannot be killed, so a
process that hit the watchdog reports and exits with ``os._exit``; the benchmark runs
each trial in its own process.

``python benchmarks/stress.py PATH::FUNC --seconds 2 [--switch-interval 1e-6]`` prints one
JSON line: reruns, elapsed seconds, and the first failure (kind, seconds to it) if any.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import types
from typing import Any, Callable


def _load(path: str, func: str) -> Callable[[], Any]:
    """FUNC from a fresh module built from PATH (module state starts clean every rerun)."""
    with open(path) as f:
        code = compile(f.read(), path, "exec")
    module = types.ModuleType(os.path.splitext(os.path.basename(path))[0])
    module.__file__ = path
    sys.modules[module.__name__] = module
    exec(code, module.__dict__)
    return module.__dict__[func]


def stress(path: str, func: str, seconds: float, switch_interval: float | None) -> dict[str, Any]:
    """Rerun until the first failure or ``seconds``; returns the JSON-ready outcome."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    if switch_interval is not None:
        sys.setswitchinterval(switch_interval)
    errors: list[str] = []

    def excepthook(args: threading.ExceptHookArgs) -> None:
        errors.append(f"{args.exc_type.__name__}: {args.exc_value} in {args.thread.name if args.thread else '?'}")

    threading.excepthook = excepthook
    out: dict[str, Any] = {"switch_interval": sys.getswitchinterval(), "reruns": 0}
    longest = 0.0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        target = _load(path, func)
        box: dict[str, float] = {}

        def body() -> None:
            t0 = time.perf_counter()
            try:
                target()
            finally:
                box["took"] = time.perf_counter() - t0

        runner = threading.Thread(target=body, name="stress-rerun", daemon=True)
        watchdog = max(1.0, 10 * longest) if longest else 10.0
        runner.start()
        runner.join(watchdog)
        out["reruns"] += 1
        if runner.is_alive():
            out["failure"] = {"kind": "timeout", "message": f"rerun still running after {watchdog:.1f}s "
                              "(deadlock or hang)", "after_s": time.perf_counter() - started}
            break
        longest = max(longest, box.get("took", 0.0))
        if errors:
            out["failure"] = {"kind": "exception", "message": errors[0][:200],
                              "after_s": time.perf_counter() - started}
            break
    out["elapsed_s"] = time.perf_counter() - started
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", help="PATH::FUNC")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--switch-interval", type=float, default=None,
                        help="sys.setswitchinterval value (default: leave the interpreter's 5 ms)")
    args = parser.parse_args()
    path, _, func = args.target.partition("::")
    out = stress(path, func or "main", args.seconds, args.switch_interval)
    print(json.dumps(out), flush=True)
    os._exit(0)  # a thread stuck in a deadlock must not keep the process alive


if __name__ == "__main__":
    main()
