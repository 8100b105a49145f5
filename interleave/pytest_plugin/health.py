"""Health warnings: a marked test in which interleave had nothing to explore."""

from __future__ import annotations

import pytest

from ..scheduler import active


class InterleaveHealthWarning(pytest.PytestWarning):
    """A marked test that interleave had nothing to explore in (no thread, or no step of your code)."""


class Health:
    """What the runs of one test did, for its health warnings: threads started, and their steps."""

    def __init__(self) -> None:
        self.runs = 0
        self.threads = 0  # most threads a run started besides the test's own
        self.thread_steps = 0  # most steps those threads took in one run

    def observe(self) -> None:
        """At the end of the test body, inside a run."""
        sched = active()
        if sched is None:
            return
        started = sched.threads[1:]  # the first is the test's own thread
        self.runs += 1
        self.threads = max(self.threads, len(started))
        # Steps in the program's own code (with lines as the steps, every step is one).
        steps = [vt.user_steps if sched.accesses else vt.steps for vt in started]
        self.thread_steps = max(self.thread_steps, sum(steps))

    def warnings(self, nodeid: str) -> list[str]:
        if not self.runs:
            return []  # the runs happened in worker processes
        if not self.threads:
            return [f"{nodeid} started no thread in its runs, so there was nothing to interleave "
                    f"(threads started at import or by a fixture wider than the function are not explored)"]
        if not self.thread_steps:
            return [f"{nodeid}: the threads it started ran no line of your code (installed packages and the "
                    f"standard library run without switch points), so no interleaving of your code was explored"]
        return []
