"""Line coverage of the program over every explored run (``--coverage``).

The scheduler already sees every executed line of the user's code, so it collects them
itself (coverage.py's own tracer cannot run while interleave's is installed) and hands
them to coverage.py, which knows which lines are statements and writes the text or HTML
report.
"""

from __future__ import annotations

from typing import IO, Any


class LineCollector:
    """An observer that keeps only which lines of the user's files ran."""

    def __init__(self) -> None:
        self.lines: dict[str, set[int]] = {}

    def step(self, sched: Any, thread: Any, frame: Any) -> None:
        filename = frame.f_code.co_filename
        lines = self.lines.get(filename)
        if lines is None:
            lines = self.lines[filename] = set()
        lines.add(frame.f_lineno)

    def event(self, sched: Any, event: Any) -> None:
        """Scheduler events do not matter for coverage."""

    def access(self, sched: Any, site: int, obj: Any, field: Any, write: bool, value: Any) -> None:
        """Nor do the objects an access touched."""

    def as_json(self) -> dict[str, list[int]]:
        return {filename: sorted(lines) for filename, lines in sorted(self.lines.items())}


def write_report(lines: dict[str, list[int]], out: IO[str] | None = None, html_dir: str | None = None) -> float:
    """Report through coverage.py (text to ``out``, HTML into ``html_dir``); the total percent."""
    import coverage

    cov = coverage.Coverage(data_file=None)
    cov.get_data().add_lines({filename: set(numbers) for filename, numbers in lines.items()})
    total = cov.report(file=out, show_missing=True) if out is not None else 0.0
    if html_dir is not None:
        total = cov.html_report(directory=html_dir, title="interleave: lines run over all explored schedules")
    return total
