"""Stress testing with real threads: what a user without a scheduler does today.

Reruns ``PATH::FUNC`` under the real OS scheduler until the first failure or the end of
the trial. A failure is an exception from FUNC or from any thread it started (caught with
``threading.excepthook``), or a rerun still running after the watchdog (a deadlock or a
hang). Programs that really sleep take real time here, so the benchmark first times one
rerun of the correct twin (``--calibrate``) and sets the watchdog and the trial length
from it. Threads cannot be killed, so the process reports and leaves with ``os._exit``;
the benchmark runs each trial in its own process.

``python benchmarks/stress.py PATH::FUNC --seconds 1 --watchdog 1 [--switch-interval 1e-6]``
prints one JSON line: reruns, elapsed seconds, and the first failure (kind, seconds to it).
``python benchmarks/stress.py PATH::fixed --calibrate`` prints the seconds one rerun takes.
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


def _start(target: Callable[[], Any]) -> threading.Thread:
    runner = threading.Thread(target=target, name="stress-rerun", daemon=True)
    runner.start()
    return runner


def calibrate(path: str, func: str, cap: float) -> dict[str, Any]:
    """Seconds one rerun takes (None if it did not end within ``cap``)."""
    target = _load(path, func)
    t0 = time.perf_counter()
    runner = _start(target)
    runner.join(cap)
    return {"rerun_s": None if runner.is_alive() else time.perf_counter() - t0}


def stress(path: str, func: str, seconds: float, watchdog: float, switch_interval: float | None) -> dict[str, Any]:
    """Rerun until the first failure or ``seconds``; returns the JSON-ready outcome.

    A rerun still running when the time is up is given until its watchdog to finish.
    """
    if switch_interval is not None:
        sys.setswitchinterval(switch_interval)
    errors: list[str] = []

    def excepthook(args: threading.ExceptHookArgs) -> None:
        errors.append(f"{args.exc_type.__name__}: {args.exc_value} in {args.thread.name if args.thread else '?'}")

    threading.excepthook = excepthook
    out: dict[str, Any] = {"switch_interval": sys.getswitchinterval(), "watchdog_s": watchdog, "reruns": 0}
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        runner = _start(_load(path, func))
        runner.join(watchdog)
        out["reruns"] += 1
        if runner.is_alive():
            out["failure"] = {"kind": "timeout", "message": f"rerun still running after {watchdog:.1f}s "
                              "(deadlock or hang)", "after_s": time.perf_counter() - started}
            break
        if errors:
            out["failure"] = {"kind": "exception", "message": errors[0][:200],
                              "after_s": time.perf_counter() - started}
            break
    out["elapsed_s"] = time.perf_counter() - started
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", help="PATH::FUNC")
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--watchdog", type=float, default=5.0)
    parser.add_argument("--switch-interval", type=float, default=None,
                        help="sys.setswitchinterval value (default: leave the interpreter's 5 ms)")
    parser.add_argument("--calibrate", action="store_true", help="time one rerun (at most --watchdog seconds)")
    args = parser.parse_args()
    path, _, func = args.target.partition("::")
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    if args.calibrate:
        out = calibrate(path, func or "fixed", args.watchdog)
    else:
        out = stress(path, func or "main", args.seconds, args.watchdog, args.switch_interval)
    print(json.dumps(out), flush=True)
    os._exit(0)  # a thread stuck in a deadlock must not keep the process alive


if __name__ == "__main__":
    main()
