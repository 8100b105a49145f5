"""dpor against the bounded enumeration, side by side in one run: schedules and seconds to
exhaust each example's correct twin and ``targets/nio_throttle.py::fixed``.

    python benchmarks/dpor.py            # a few minutes on 2 cores; writes its section of RESULTS.md

Each program is explored in this process, one worker, with ``dpor`` (no bound) and with
``dfs`` at bound 2, each under the same time limit; a search that is not done by then is
shown with the runs it made (``not done``). The section it writes sits between two markers
in RESULTS.md and is replaced on the next run of this script.
"""

from __future__ import annotations

import datetime
import platform
import sys
import time
from pathlib import Path

from interleave import explore

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
BEGIN, END = "<!-- dpor: begin (benchmarks/dpor.py) -->", "<!-- dpor: end -->"
#: Seconds each strategy may take on each program.
LIMIT_S = 8.0
LIMIT_TARGET_S = 60.0


def measure(spec: str, strategy: str, limit: float) -> tuple[int, float, bool, bool]:
    """Runs, seconds, exhausted, failed."""
    started = time.monotonic()
    report = explore(spec, strategy=strategy, max_preemptions=2, runs=1_000_000, time_limit=limit,
                     shrink_time=0, workers=1, seed=0)
    return report.runs, time.monotonic() - started, report.exhausted, report.failure is not None


def cell(runs: int, seconds: float, exhausted: bool, failed: bool) -> str:
    if failed:
        return f"FAILED after {runs:,} runs"
    return f"{runs:,} in {seconds:.1f} s" + ("" if exhausted else " (not done)")


def main() -> None:
    specs = [f"examples/{p.name}::fixed" for p in sorted((ROOT / "examples").glob("*.py"))]
    specs.append("targets/nio_throttle.py::fixed")
    rows = []
    for spec in specs:
        limit = LIMIT_TARGET_S if spec.startswith("targets/") else LIMIT_S
        dpor = measure(spec, "dpor", limit)
        dfs = measure(spec, "dfs", limit)
        rows.append(f"| `{spec}` | {cell(*dpor)} | {cell(*dfs)} |")
        print(rows[-1], flush=True)
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    section = "\n".join([
        BEGIN,
        "## Partial-order reduction: dpor against dfs at bound 2",
        "",
        f"`python benchmarks/dpor.py`, {when}, Python {platform.python_version()}, one worker, one run on a "
        f"shared 2-core machine; at most {LIMIT_S:g} s per strategy per example, {LIMIT_TARGET_S:g} s on the "
        "target. Schedules run until the search was exhausted (dpor: every order of conflicting steps, no "
        "bound; dfs: every schedule with at most 2 preemptions), and the seconds it took.",
        "",
        "| program | dpor | dfs, bound 2 |",
        "| --- | --- | --- |",
        *rows,
        END,
    ])
    text = RESULTS.read_text() if RESULTS.exists() else ""
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + section + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    RESULTS.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
