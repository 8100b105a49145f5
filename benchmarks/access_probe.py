"""One measuring process for ``access_cost.py``: runs programs under interleave on request.

Started by ``access_cost.py`` with the checkout to measure first on ``PYTHONPATH`` (this
tree, or an older commit's ``interleave/``), it reads one JSON request a line on stdin and
answers one JSON line on stdout. It uses only what every measured version has: ``load``,
``Runner``, ``RunConfig`` and ``strategies.make``.

Request: ``{"target": "PATH::FUNC", "granularity": "line", "strategy": "portfolio",
"seconds": 1.0}``; answer: runs, steps, switches, restarts (a strategy that finished
every schedule starts again with the next seed, as a new exploration would) and elapsed
(the process's CPU time, in seconds).
``{"hello": true}`` answers with the interleave in use.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import interleave
from interleave import strategies
from interleave.program import load
from interleave.runner import RunConfig, Runner


def measure(request: dict[str, Any]) -> dict[str, Any]:
    """Runs the target again and again for ``seconds``, as an exploration in one process does.

    The loop calls nothing of this file: with accesses as the steps, the runner swaps
    instrumented code into the functions of user files already loaded (this one too), and
    the frame running here keeps the code it started with.
    """
    program = load(request["target"])
    runner = Runner(program, RunConfig(granularity=request["granularity"]))
    name, seconds = request["strategy"], request["seconds"]
    seed = 0
    chooser = strategies.make(name, seed=seed)
    runs = steps = switches = restarts = 0
    try:
        chooser.begin_run(0)  # one run before the clock: first imports and caches
        chooser.end_run(runner.run(chooser))
        chooser = strategies.make(name, seed=seed)
        # The process's own CPU time: on a shared or virtual machine, time the process spends
        # waiting for a core (another job, the host's steal) is not the cost of a run.
        start = time.process_time()
        while time.process_time() - start < seconds:
            if not chooser.begin_run(runs):
                seed += 1
                restarts += 1
                chooser = strategies.make(name, seed=seed)
                continue
            result = runner.run(chooser)
            chooser.end_run(result)
            if result.failure is not None or result.uncontrolled:
                return {"error": f"{request['target']} failed: {result.failure or result.uncontrolled}"}
            runs += 1
            steps += result.steps
            switches += len(result.deviations)
        elapsed = time.process_time() - start
    finally:
        close = getattr(runner, "close", None)  # older runners had nothing to undo
        if close is not None:
            close()
    return {"runs": runs, "steps": steps, "switches": switches, "restarts": restarts, "elapsed": elapsed}


def main() -> None:
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("hello"):
            answer: dict[str, Any] = {"interleave": interleave.__file__, "python": sys.version.split()[0]}
        else:
            try:
                answer = measure(request)
            except Exception as exc:  # noqa: BLE001 - the driver prints it beside the row
                answer = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
