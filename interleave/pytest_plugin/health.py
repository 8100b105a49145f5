"""Health warnings: a marked test in which interleave had nothing to explore."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from ..report import Report


class InterleaveHealthWarning(pytest.PytestWarning):
    """A marked test that interleave had nothing to explore in (no thread, or no step of your code)."""


def health_warnings(nodeid: str, reports: Sequence[Report]) -> list[str]:
    """The warnings for a test from the reports of its explorations (in any process)."""
    if not any(report.runs for report in reports):
        return []  # nothing was explored: a replay only, or no run completed
    if not max(report.threads_started for report in reports):
        return [f"{nodeid} started no thread in its runs, so there was nothing to interleave "
                f"(threads started at import or by a fixture wider than the function are not explored)"]
    if not max(report.thread_user_steps for report in reports):
        return [f"{nodeid}: the threads it started ran no line of your code (installed packages and the "
                f"standard library run without switch points), so no interleaving of your code was explored"]
    return []
