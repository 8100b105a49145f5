"""dpor against the bounded enumeration and frontrun's DPOR, side by side in one run: schedules
and seconds to exhaust each example's correct twin and each target's fixed variant.

    python benchmarks/dpor.py              # about 20 minutes on 2 cores; writes its section of RESULTS.md
    python benchmarks/dpor.py --portfolio  # the portfolio with dpor at bound 2 in place of dfs: first failures

Each program is explored in a fresh interpreter, one worker, with ``dpor`` unbounded, ``dpor`` at
bound 2 and ``dfs`` at bound 2, each under the same time limit; a search that is not done
by then is shown with the runs it made (``not done``). frontrun's DPOR runs the same
programs where an adapter restates them in its shape (benchmarks/peers/frontrun_adapters.py),
in its own venv (benchmarks/peer_tools.py); it has no preemption bound. The section this
writes sits between two markers in RESULTS.md and is replaced on the next run of this script.
"""

from __future__ import annotations

import datetime
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

from interleave import explore, strategies
from interleave.strategies import DPOR, Portfolio

sys.path.insert(0, str(Path(__file__).resolve().parent))

import peer_tools

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
BEGIN, END = "<!-- dpor: begin (benchmarks/dpor.py) -->", "<!-- dpor: end -->"
#: Seconds each search may take on each example and on each target.
LIMIT_S = 10.0
LIMIT_TARGET_S = 60.0
TARGETS = ("final_request_processor", "follower_sync", "nio_throttle", "reconnect_storm", "session_lock")


#: One search in a fresh interpreter, as a user's command runs it: a search made late in one
#: long process ran 30% slower than the same search alone (nio_throttle::fixed, bound 2).
SEARCH = """
import json, sys, time
from interleave import explore
spec, strategy, bound, limit = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), float(sys.argv[4])
started = time.monotonic()
report = explore(spec, strategy=strategy, max_preemptions=bound, runs=10_000_000, time_limit=limit,
                 shrink_time=0, workers=1, seed=0)
print(json.dumps([report.runs, time.monotonic() - started, report.exhausted, report.failure is not None]))
"""


def measure(spec: str, strategy: str, bound: int | None, limit: float) -> tuple[int, float, bool, bool]:
    """Runs, seconds (the search's own, interpreter start left out), exhausted, failed."""
    out = subprocess.run([sys.executable, "-c", SEARCH, spec, strategy, json.dumps(bound), str(limit)],
                         capture_output=True, text=True, check=True, cwd=ROOT, timeout=limit + 120)
    runs, seconds, exhausted, failed = json.loads(out.stdout.splitlines()[-1])
    return runs, seconds, exhausted, failed


def cell(runs: int, seconds: float, exhausted: bool, failed: bool) -> str:
    if failed:
        return f"FAILED after {runs:,} runs"
    return f"{runs:,} in {seconds:.1f} s" + ("" if exhausted else " (not done)")


def frontrun_cell(program: str, limit: float) -> str:
    peer = peer_tools.PEERS["frontrun"]
    why = peer_tools.ensure(peer)
    if why is not None:
        return f"n/a ({why})"
    out = peer_tools.run(peer, [program, "fixed", "--strategy", "dpor", "--time-limit", str(limit)], limit + 60)
    if "unsupported" in out:
        return "n/a"
    if "error" in out:
        return f"error: {out['error'][:80]}"
    if out.get("verdict") == "True":
        return f"{out['runs']:,} in {out['elapsed_s']:.1f} s"
    if out.get("found"):
        return f"FAILED after {out['runs']:,} runs"
    return f"{out['runs']:,} in {out['elapsed_s']:.1f} s (not done: {out.get('inconclusive', '')[:60]})"


class DporPortfolio(Portfolio):
    """The default portfolio with bounded dpor as its enumerating member (for this measurement only)."""

    def __init__(self, seed: int, bound: int) -> None:
        super().__init__(seed, bound)
        self.members[0] = DPOR(bound)

    @property
    def needs_accesses(self) -> bool:  # type: ignore[override]
        return self.current.needs_accesses


def first_failures(out: list[str]) -> None:
    """Runs and seconds to the first failure of each example's bug, 3 seeds, each portfolio."""
    made = strategies.make
    out += ["", "| program | portfolio (dfs) | portfolio with dpor, bound 2 |", "| --- | --- | --- |"]
    for p in sorted((ROOT / "examples").glob("*.py")):
        cells = []
        for variant in ("dfs", "dpor"):
            found = []
            for seed in range(3):
                if variant == "dpor":
                    strategies.make = lambda name, **kw: DporPortfolio(kw.get("seed", 0), 2)
                started = time.monotonic()
                try:
                    report = explore(f"examples/{p.name}::main", runs=3_000, time_limit=20, shrink_time=0, workers=1,
                                     seed=seed)
                finally:
                    strategies.make = made
                seconds = time.monotonic() - started
                failure = report.failure
                found.append(f"run {failure.run:,}, {seconds:.2f} s" if failure is not None
                             else f"not found in {report.runs:,}")
            cells.append("; ".join(found))
        out.append(f"| {p.stem} | {cells[0]} | {cells[1]} |")
        print(out[-1], flush=True)


def main() -> None:
    if "--portfolio" in sys.argv:
        rows: list[str] = []
        first_failures(rows)
        print("\n".join(rows))
        return
    programs = [(p.stem, f"examples/{p.name}::fixed", LIMIT_S) for p in sorted((ROOT / "examples").glob("*.py"))]
    programs += [(name, f"targets/{name}.py::fixed", LIMIT_TARGET_S) for name in TARGETS]
    rows = []
    for name, spec, limit in programs:
        unbounded = measure(spec, "dpor", None, limit)
        bounded = measure(spec, "dpor", 2, limit)
        dfs = measure(spec, "dfs", 2, limit)
        peer = frontrun_cell(name, limit)
        rows.append(f"| `{spec}` | {cell(*unbounded)} | {cell(*bounded)} | {cell(*dfs)} | {peer} |")
        print(rows[-1], flush=True)
    frontrun = peer_tools.PEERS["frontrun"]
    version = peer_tools.installed_version(frontrun) or "not installed"
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = "\n".join([
        BEGIN,
        "## Partial-order reduction: dpor against dfs and frontrun's DPOR",
        "",
        f"`python benchmarks/dpor.py`, {when}, Python {platform.python_version()}, frontrun {version}, one worker, "
        f"each search in a fresh interpreter, one after another on a 2-core machine; at most {LIMIT_S:g} s per "
        f"search per example, {LIMIT_TARGET_S:g} s "
        "per target. Schedules run until the search was exhausted, and the seconds it took (dpor: every order "
        "of conflicting steps, unbounded or with at most 2 preemptions; dfs: every schedule with at most 2 "
        "preemptions; frontrun: its DPOR, which has no bound, on the programs its adapters restate).",
        "",
        "| program | dpor | dpor, bound 2 | dfs, bound 2 | frontrun dpor |",
        "| --- | --- | --- | --- | --- |",
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
    main()
