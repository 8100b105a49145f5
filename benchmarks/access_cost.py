"""What accesses as the steps cost, beside lines as the steps, side by side in one run.

    python benchmarks/access_cost.py [--seconds 1] [--rounds 3] [--before 9aee206] [--json]
    python benchmarks/access_cost.py --quick      # the test suite's check: it runs, rows print

Three columns per program, each measured in a process of its own (``access_probe.py``):

- ``old line``: the commit ``--before`` (9aee206, where lines were the only steps), its
  ``interleave/`` taken out of git into a temporary folder;
- ``new line``: this tree with ``granularity="line"``;
- ``new access``: this tree with the default ``granularity="access"``.

Programs: the per_step workload and ``programs/long_run.py`` (long runs: the cost of one
switch point), every example's correct twin (``examples/*.py::fixed``: runs per second),
and ``programs/locals_only.py`` (threads that touch only locals). Each measurement runs
the program again and again for ``--seconds`` of the probe's CPU time (time spent waiting
for a core is not counted) under ``--strategy`` (default: the
portfolio, the default exploration). Rounds interleave every measurement, so a busy
moment of a shared machine hits the columns alike; the table gives medians over rounds,
and each ratio is the median of the ratios within a round.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

from catalog import ROOT, discover

PROBE = Path(__file__).resolve().parent / "access_probe.py"
BEFORE = "9aee206"
COLUMNS = ("old line", "new line", "new access")
#: Targets of the long runs (the cost of one switch point) and of the locals-only program.
LONG = {"per_step workload": "benchmarks/per_step.py::workload", "long_run": "benchmarks/programs/long_run.py::fixed"}
LOCALS = {"locals_only": "benchmarks/programs/locals_only.py::workload"}
QUICK_TWINS = ("lost_update",)

#: Goals of issue 12 (point 6), as ratios to the old line column.
MAX_STEP_COST_RATIO = 1.5  # µs per step on the long runs, new access / old line
MAX_RUNS_DROP = 1.5  # runs/s on the twins, old line / new access


def programs(quick: bool) -> list[tuple[str, str, str]]:
    """(kind, name, target) for every program measured."""
    twins = [(p.name, p.target("fixed")) for p in discover() if p.group == "example"]
    if quick:
        twins = [t for t in twins if t[0] in QUICK_TWINS]
    rows = [("long", name, target) for name, target in LONG.items()]
    if quick:
        rows = rows[1:]
    rows += [("twin", name, target) for name, target in twins]
    rows += [("locals", name, target) for name, target in LOCALS.items()]
    return rows


def checkout(ref: str) -> Path:
    """``interleave/`` of commit ``ref``, extracted once into a temporary folder."""
    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", ref], check=True, capture_output=True,
                         text=True).stdout.strip()
    folder = Path(tempfile.gettempdir()) / f"interleave-before-{sha}"
    if not (folder / "interleave" / "__init__.py").exists():
        folder.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", sha, "interleave"], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


class Probe:
    """A measuring process with ``path`` first on its ``PYTHONPATH``."""

    def __init__(self, path: Path) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(path), os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen([sys.executable, str(PROBE)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, cwd=ROOT, env=env)
        hello = self.ask({"hello": True})
        used = Path(hello["interleave"]).resolve().parent.parent
        if used != path.resolve():
            raise SystemExit(f"the probe for {path} imported interleave from {used}")

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        stdin: IO[str] = self.proc.stdin  # type: ignore[assignment]
        stdout: IO[str] = self.proc.stdout  # type: ignore[assignment]
        stdin.write(json.dumps(request) + "\n")
        stdin.flush()
        line = stdout.readline()
        if not line:
            raise SystemExit(f"the probe stopped (exit code {self.proc.wait()})")
        return json.loads(line)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def measure(rows: list[tuple[str, str, str]], probes: dict[str, tuple[Probe, str]], strategy: str, seconds: float,
            rounds: int) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Every (program, column) ``rounds`` times, rounds outermost."""
    found: dict[str, dict[str, list[dict[str, Any]]]] = {name: {c: [] for c in probes} for _, name, _ in rows}
    for round_index in range(rounds):
        for _, name, target in rows:
            for column, (probe, granularity) in probes.items():
                answer = probe.ask({"target": target, "granularity": granularity, "strategy": strategy,
                                    "seconds": seconds})
                if "error" in answer:
                    raise SystemExit(f"{name} under {column}: {answer['error']}")
                found[name][column].append(answer)
        print(f"round {round_index + 1}/{rounds} done", file=sys.stderr, flush=True)
    return found


def runs_per_s(m: dict[str, Any]) -> float:
    return m["runs"] / m["elapsed"]


def us_per_step(m: dict[str, Any]) -> float:
    return m["elapsed"] / m["steps"] * 1e6 if m["steps"] else float("nan")


def summarize(rows: list[tuple[str, str, str]], found: dict[str, dict[str, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    table = []
    for kind, name, _ in rows:
        columns = found[name]
        row: dict[str, Any] = {"kind": kind, "program": name}
        for column, ms in columns.items():
            row[column] = {
                "runs_per_s": statistics.median(runs_per_s(m) for m in ms),
                "steps_per_run": statistics.median(m["steps"] / m["runs"] for m in ms),
                "us_per_step": statistics.median(us_per_step(m) for m in ms),
                "us_per_run": statistics.median(m["elapsed"] / m["runs"] * 1e6 for m in ms),
            }
        base = "old line" if "old line" in columns else "new line"
        pairs = list(zip(columns[base], columns["new access"]))
        row["base"] = base
        row["runs_ratio"] = statistics.median(runs_per_s(a) / runs_per_s(b) for b, a in pairs)  # access/line
        row["step_ratio"] = statistics.median(us_per_step(a) / us_per_step(b) for b, a in pairs)
        if "old line" in columns:
            row["line_runs_ratio"] = statistics.median(
                runs_per_s(n) / runs_per_s(o) for o, n in zip(columns["old line"], columns["new line"]))
        table.append(row)
    return table


def verdicts(table: list[dict[str, Any]]) -> list[str]:
    """One line per goal: the figure and whether it is met."""
    lines = []
    longs = [r for r in table if r["kind"] == "long"]
    twins = [r for r in table if r["kind"] == "twin"]
    local = [r for r in table if r["kind"] == "locals"]
    base = table[0]["base"] if table else "old line"
    for r in longs:
        met = r["step_ratio"] <= MAX_STEP_COST_RATIO
        lines.append(f"µs/step on {r['program']}: {r[base]['us_per_step']:.2f} ({base}) -> "
                     f"{r['new access']['us_per_step']:.2f} (new access), x{r['step_ratio']:.2f}: "
                     f"{'met' if met else 'NOT met'} (goal ≤ x{MAX_STEP_COST_RATIO})")
    if twins:
        drops = sorted((1 / r["runs_ratio"], r["program"]) for r in twins)
        worst, median = drops[-1], statistics.median(d for d, _ in drops)
        met = worst[0] <= MAX_RUNS_DROP
        lines.append(f"runs/s on the twins, {base} / new access: median x{median:.2f}, worst x{worst[0]:.2f} "
                     f"({worst[1]}): {'met' if met else 'NOT met'} (goal: drop ≤ x{MAX_RUNS_DROP})")
    for r in local:
        met = r["runs_ratio"] > 1
        lines.append(f"{r['program']}: µs/run {r[base]['us_per_run']:.0f} ({base}) -> "
                     f"{r['new access']['us_per_run']:.0f} (new access), runs/s x{r['runs_ratio']:.2f}: "
                     f"{'met' if met else 'NOT met'} (goal: cheaper than {base})")
    return lines


def markdown(table: list[dict[str, Any]], columns: list[str]) -> str:
    head = ["program"]
    for c in columns:
        head += [f"{c} runs/s", f"{c} steps/run", f"{c} µs/step"]
    head += ["access/line runs/s", "access/line µs/step"]
    if "old line" in columns:
        head += ["new/old line runs/s"]
    out = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in table:
        cells = [r["program"]]
        for c in columns:
            cells += [f"{r[c]['runs_per_s']:,.1f}", f"{r[c]['steps_per_run']:,.0f}", f"{r[c]['us_per_step']:.2f}"]
        cells += [f"{r['runs_ratio']:.2f}", f"{r['step_ratio']:.2f}"]
        if "old line" in columns:
            cells += [f"{r['line_runs_ratio']:.2f}"]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def load_average() -> str:
    try:
        return "/".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="CPU time per measurement (program, column, round)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the table gives medians over them")
    parser.add_argument("--strategy", default="portfolio", help="the exploration strategy (default: portfolio)")
    parser.add_argument("--before", default=BEFORE, help="the commit of the old line column (default: %(default)s)")
    parser.add_argument("--no-before", action="store_true", help="leave out the old line column")
    parser.add_argument("--quick", action="store_true", help="a few programs, short measurements, one round")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rounds = min(args.seconds, 0.1), 1

    rows = programs(args.quick)
    started, load_start = time.time(), load_average()
    probes: dict[str, tuple[Probe, str]] = {}
    try:
        if not args.no_before:
            probes["old line"] = (Probe(checkout(args.before)), "line")
        new = Probe(ROOT)
        probes["new line"] = (new, "line")
        probes["new access"] = (new, "access")
        found = measure(rows, probes, args.strategy, args.seconds, max(args.rounds, 1))
    finally:
        for probe in {id(p): p for p, _ in probes.values()}.values():
            probe.close()
    table = summarize(rows, found)
    columns = list(probes)
    environment = {
        "python": platform.python_version(), "before": None if args.no_before else args.before,
        "strategy": args.strategy, "seconds": args.seconds, "rounds": args.rounds,
        "load_average": {"start": load_start, "end": load_average()}, "took_s": round(time.time() - started, 1),
        "cores": os.cpu_count(),
    }
    if args.json:
        print(json.dumps({"environment": environment, "rows": table, "verdicts": verdicts(table)}))
        return
    print(f"Python {environment['python']}, strategy {args.strategy}, {args.rounds} rounds x {args.seconds} s of CPU per "
          f"measurement, {environment['cores']} cores, load average (1/5/15 min) {load_start} at start, "
          f"{environment['load_average']['end']} at end, took {environment['took_s']} s")
    print()
    print(markdown(table, columns))
    print()
    for line in verdicts(table):
        print(f"- {line}")


if __name__ == "__main__":
    main()
