"""Does a failure reproduce in a fresh interpreter, as the user will replay it?

An exploration runs the program again and again in one process. A program that keeps
state from one run to the next (a counter in a module it imports, a cache, a class
attribute) can fail in run 5 only because runs 1 to 4 came first: its token then does not
reproduce the failure for anybody. The command replays each token it prints with
``python -m interleave replay`` in a new process and says so when the failure does not
come back there.
"""

from __future__ import annotations

import os
import subprocess
import sys

from .report import FailureReport

#: Seconds a fresh replay may take: one run, plus starting an interpreter.
TIMEOUT = 120.0


def fresh_replay_problem(target: str, failure: FailureReport, timeout: float = TIMEOUT) -> str | None:
    """None when replaying ``failure``'s token in a new process reproduces it; else what happened there."""
    env = dict(os.environ)
    env.setdefault("PYTHONHASHSEED", "0")  # as the command sets it
    try:
        done = subprocess.run([sys.executable, "-m", "interleave", "replay", target, failure.replay],
                              capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return f"replaying its schedule there took more than {timeout:g}s"
    except KeyboardInterrupt:
        return None  # not checked: what was found is shown as found
    last = (done.stdout.strip().splitlines() or [""])[-1]
    prefix = f"interleave: reproduced ({failure.kind}) "
    if done.returncode == 1 and last.startswith(prefix) and _same_failure(last[len(prefix):], failure.message):
        return None
    if done.returncode == 0:
        return "replaying its schedule there ran without failing"
    if done.returncode == 1:
        return f"replaying its schedule there failed otherwise ({last.removeprefix('interleave: reproduced ')})"
    error = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
    return f"replaying its schedule there was refused ({error.removeprefix('interleave: error: ')})"


def _same_failure(seen: str, expected: str) -> bool:
    """The same failure: for an exception, its type, thread and place (its text may name an
    address, or say where in C a recursion limit was hit); else the same message."""
    if seen.startswith(expected):
        return True

    def shape(message: str) -> tuple[str, str]:
        kind = message.split(":", 1)[0].split(" in ", 1)[0]
        return kind, message.rsplit(" in ", 1)[-1]

    return shape(seen) == shape(expected)
