"""The benchmark: interleave against stress testing and the Python peers, in one run.

    python benchmarks/run.py                 # full run (about 10-15 minutes on 2 cores)
    python benchmarks/run.py --peers         # also create/refresh the peers' venvs and measure them
    python benchmarks/run.py --quick         # CI check that the benchmark works (not its speed)

For every program (``examples/``, ``targets/``, ``benchmarks/programs/``) it measures
interleave's time to first failure on ``main`` over several seeds, its search speed and
the shrunk failure's size; on ``fixed``, runs and steps per second and the bound it
exhausted. The same programs run under real-thread stress testing (default switch
interval and 1 µs) and, with ``--peers`` or when their venvs exist, under frontrun,
interleave-test and ploom. A strategy table (random, pct, dfs, portfolio) and a profile
of a long run close the report. Results go to ``RESULTS.md`` and ``results.json`` in
``--out`` (default: ``benchmarks/`` for a full run, a temporary folder for ``--quick``).
Ratios measured in one run on one machine are the claims; absolute times are context.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from interleave import strategies  # noqa: E402

import catalog  # noqa: E402
import ours  # noqa: E402
import peer_tools  # noqa: E402
import report  # noqa: E402
import sampling  # noqa: E402

ROOT = catalog.ROOT
#: Every strategy the engine offers, the default (portfolio) first.
STRATEGIES: tuple[str, ...] = ("portfolio", *(n for n in strategies.NAMES if n != "portfolio"))
QUICK_PROGRAMS = ("lost_update", "two_threads_20")
#: Seconds the correct twin may take under real threads before stress testing gives up on a program.
CALIBRATION_CAP = 20.0


@dataclass(frozen=True)
class Budget:
    """How much each measurement may spend (seconds unless said otherwise)."""

    seeds: int
    ttff_limit: float
    shrink_time: float
    fixed_limit: float
    strategy_seeds: int
    strategy_limit: float
    stress_trials: int
    stress_seconds: float
    peer_seeds: int
    peer_repeats: int
    peer_limit: float
    peer_fixed_limit: float
    profile_limit: float
    give_up_after: int  # consecutive trials without a failure before the remaining seeds are skipped


FULL = Budget(seeds=5, ttff_limit=20, shrink_time=5, fixed_limit=2, strategy_seeds=3, strategy_limit=4,
              stress_trials=5, stress_seconds=1.0, peer_seeds=5, peer_repeats=2, peer_limit=5,
              peer_fixed_limit=2, profile_limit=4, give_up_after=2)
QUICK = Budget(seeds=2, ttff_limit=5, shrink_time=1, fixed_limit=0.3, strategy_seeds=2, strategy_limit=2,
               stress_trials=2, stress_seconds=0.2, peer_seeds=2, peer_repeats=1, peer_limit=2,
               peer_fixed_limit=0.5, profile_limit=0, give_up_after=2)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def trials(count: int, give_up_after: int, one: Callable[[int], dict[str, Any]]) -> list[dict[str, Any]]:
    """``one(i)`` for i in range(count), stopping after ``give_up_after`` misses in a row."""
    rows: list[dict[str, Any]] = []
    misses = 0
    for i in range(count):
        row = one(i)
        rows.append(row)
        misses = 0 if row.get("found") else misses + 1
        if misses >= give_up_after and i + 1 < count:
            rows.append({"skipped": count - i - 1})
            break
    return rows


# --------------------------------------------------------------------------- interleave

def measure_ours_isolated(programs: list[catalog.Program], quick: bool) -> dict[str, Any]:
    """:func:`measure_ours` for each program in a fresh process of its own.

    Runs that leave state behind (threads that would not stop at teardown are kept alive,
    with everything they reference) slow a long-lived process down; a process per program
    keeps one program's leftovers out of the next one's numbers.
    """
    out: dict[str, Any] = {"main": {}, "fixed": {}, "strategies": {}, "throughput": {}}
    for p in programs:
        command = [sys.executable, str(HERE / "run.py"), "--measure-ours", p.name] + (["--quick"] if quick else [])
        proc = subprocess.run(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        one = json.loads(proc.stdout.strip().splitlines()[-1])
        for section, rows in one.items():
            out[section].update(rows)
    return out


def measure_ours(programs: list[catalog.Program], budget: Budget) -> dict[str, Any]:
    out: dict[str, Any] = {"main": {}, "fixed": {}, "strategies": {}, "throughput": {}}
    for p in programs:
        log(f"interleave: {p.name} main x{budget.seeds} seeds")
        out["main"][p.name] = trials(budget.seeds, budget.give_up_after,
                                     lambda s: ours.find_failure(p, s, "portfolio", budget.ttff_limit,
                                                                 budget.shrink_time))
        out["fixed"][p.name] = ours.throughput(p, "fixed", "portfolio", budget.fixed_limit)
    for p in programs:
        log(f"strategies: {p.name}")
        # The portfolio's column is the TTFF measured above (shrinking comes after TTFF, so it does not count).
        table: dict[str, list[dict[str, Any]]] = {"portfolio": out["main"][p.name]}
        for strategy in STRATEGIES[1:]:
            seeds = 1 if strategy == "dfs" else budget.strategy_seeds  # dfs does not use the seed
            table[strategy] = trials(seeds, budget.give_up_after,
                                     lambda s: ours.find_failure(p, s, strategy, budget.strategy_limit, 0.0))
        out["strategies"][p.name] = table
    for p in programs:
        if p.group == "benchmark":
            log(f"throughput by strategy: {p.name}")
            out["throughput"][p.name] = [ours.throughput(p, "fixed", s, budget.fixed_limit) for s in STRATEGIES]
    return out


# --------------------------------------------------------------------------- stress

def measure_stress(programs: list[catalog.Program], budget: Budget) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in programs:
        rerun = _stress_calibrate(p)
        if rerun is None:
            why = (f"the correct twin does not finish within {CALIBRATION_CAP:g} s under real threads, so a "
                   "rerun of main that does not finish proves nothing")
            out[p.name] = {"calibration": {"fixed_rerun_s": None, "why": why}}
            log(f"stress: {p.name} skipped: {why}")
            continue
        # The watchdog: 3x a normal rerun (at least 1 s); a trial lasts long enough for a few reruns.
        watchdog = max(1.0, 3 * rerun)
        seconds = max(budget.stress_seconds, 3 * rerun)
        count = budget.stress_trials if seconds <= 2 * budget.stress_seconds else 1  # slow real-time programs
        out[p.name] = {"calibration": {"fixed_rerun_s": rerun, "watchdog_s": watchdog, "trial_s": seconds}}
        for label, interval in (("default", None), ("1us", 1e-6)):
            log(f"stress ({label}): {p.name} x{count}")
            out[p.name][label] = trials(count, budget.give_up_after,
                                        lambda _i: _stress_trial(p, interval, seconds, watchdog))
    return out


def _stress_json(command: list[str], timeout: float) -> dict[str, Any] | None:
    try:
        proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=timeout)
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, json.JSONDecodeError, IndexError):
        return None


def _stress_calibrate(p: catalog.Program) -> float | None:
    """Seconds one real-thread rerun of the correct twin takes (None: not within the cap)."""
    row = _stress_json([sys.executable, str(HERE / "stress.py"), p.target("fixed"), "--calibrate",
                        "--watchdog", str(CALIBRATION_CAP)], timeout=CALIBRATION_CAP + 60)
    return row.get("rerun_s") if row else None


def _stress_trial(p: catalog.Program, interval: float | None, seconds: float, watchdog: float) -> dict[str, Any]:
    command = [sys.executable, str(HERE / "stress.py"), p.target("main"), "--seconds", str(seconds),
               "--watchdog", str(watchdog)]
    if interval is not None:
        command += ["--switch-interval", str(interval)]
    row = _stress_json(command, timeout=seconds + watchdog + 60)
    if row is None:
        return {"found": False, "error": "the stress process failed"}
    failure = row.get("failure")
    row["found"] = failure is not None
    if failure:
        row["ttff_s"] = failure["after_s"]
        row["kind"] = failure["kind"]
    return row


# --------------------------------------------------------------------------- peers

def _peer_args(peer: str, p: catalog.Program, variant: str) -> list[str]:
    if peer == "interleave-test":
        return [str(p.path), variant]
    return [p.name, variant]


def measure_peers(programs: list[catalog.Program], budget: Budget, create: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"tools": {}, "main": {}, "fixed": {}}
    for name, peer in peer_tools.PEERS.items():
        problem = peer_tools.ensure(peer) if create else (
            None if peer_tools.installed_version(peer) else "venv not created (run with --peers)")
        if problem:
            out["tools"][name] = {"available": False, "why": problem}
            log(f"{name}: not measured: {problem}")
            continue
        out["tools"][name] = {"available": True, "version": peer_tools.installed_version(peer),
                              "python": peer_tools.python_version(peer)}
    configs = [("frontrun", "dpor", False), ("frontrun", "random", True),
               ("interleave-test", "random", True), ("interleave-test", "pct", True), ("ploom", "dfs", False)]
    available = [c for c in configs if out["tools"].get(c[0], {}).get("available")]
    for p in programs:
        out["main"][p.name] = {}
        out["fixed"][p.name] = {}
        if catalog.imports_interleave(p):
            why = ("the program imports interleave itself (its fault/pause hooks or interleave.sim), "
                   "which is not installed in the peers' venvs and which no peer drives")
            for name, strategy, _seeded in available:
                out["main"][p.name][f"{name} {strategy}"] = [{"unsupported": why}]
                out["fixed"][p.name][f"{name} {strategy}"] = {"unsupported": why}
            continue
        before = _fresh_throughput(p, budget.peer_fixed_limit) if available else None
        for name, strategy, seeded in available:
            peer = peer_tools.PEERS[name]
            label = f"{name} {strategy}"
            extra = [] if name == "ploom" else ["--strategy", strategy]
            log(f"{label}: {p.name}")

            def attempt(i: int, variant: str, limit: float) -> dict[str, Any]:
                args = _peer_args(name, p, variant) + extra + ["--time-limit", str(limit)]
                if seeded:
                    args += ["--seed", str(i)]
                row = peer_tools.run(peer, args, timeout=limit + 60)
                row.setdefault("found", False)
                if row.get("found"):
                    row["ttff_s"] = row["elapsed_s"]
                return row

            first = attempt(0, "main", budget.peer_limit)
            if "unsupported" in first:
                out["main"][p.name][label] = [first]
                out["fixed"][p.name][label] = first
                continue
            count = budget.peer_seeds if seeded else budget.peer_repeats
            rest = trials(count - 1, budget.give_up_after,
                          lambda i: attempt(i + 1, "main", budget.peer_limit)) if count > 1 and first.get("found") \
                else []
            out["main"][p.name][label] = [first, *rest]
            out["fixed"][p.name][label] = attempt(0, "fixed", budget.peer_fixed_limit)
        if before is not None:
            # interleave again, just before and just after the peers ran this program, each time in a fresh
            # process like the peers: the runs/s ratio then compares the same minutes of this (possibly
            # shared) machine and processes that start alike.
            after = _fresh_throughput(p, budget.peer_fixed_limit)
            out["fixed"][p.name]["interleave (adjacent)"] = {
                key: (before[key] + after[key]) / 2 for key in ("runs_per_s", "runs_per_cpu_s")}
    return out


def _fresh_throughput(p: catalog.Program, seconds: float) -> dict[str, Any]:
    """interleave's runs/s on ``fixed`` measured in a new process (see ``ours.py``'s ``__main__``)."""
    proc = subprocess.run([sys.executable, str(HERE / "ours.py"), p.target("fixed"), "portfolio", str(seconds)],
                          capture_output=True, text=True, cwd=ROOT, timeout=seconds + 120)
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- profile

def measure_profile(programs: list[catalog.Program], budget: Budget, create: bool) -> dict[str, Any]:
    """Sampling profiles of the benchmark programs' correct twins (needs py-spy, see :mod:`sampling`)."""
    chosen = [p for p in programs if p.group == "benchmark"]
    if not budget.profile_limit or not chosen:
        return {}
    problem = sampling.ensure() if create else (None if sampling.PY_SPY.exists() else
                                                "py-spy not installed (run with --profile)")
    if problem:
        return {"why": problem}
    out = {}
    for p in chosen:
        for strategy in ("portfolio", "pct"):
            log(f"profile: {p.name} fixed, {strategy}")
            out[f"{p.name} {strategy}"] = sampling.profile(p.target("fixed"), strategy, budget.profile_limit, ROOT)
    return out


# --------------------------------------------------------------------------- environment

def environment(argv: list[str], quick: bool) -> dict[str, Any]:
    import greenlet

    import interleave

    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=ROOT).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                    text=True, cwd=ROOT).stdout.strip())
    except OSError:
        commit, dirty = "?", False
    return {
        "command": "python benchmarks/run.py " + " ".join(argv),
        "quick": quick,
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {cpu}",
        "os": platform.platform(),
        "python": platform.python_version(),
        "interleave": interleave.__version__,
        "greenlet": greenlet.__version__,
        "commit": commit + (" (with uncommitted changes)" if dirty else ""),
        "load_at_start": os.getloadavg(),
    }


def per_step_numbers(quick: bool) -> dict[str, Any]:
    """The output of ``benchmarks/per_step.py`` (written separately), if it is there."""
    script = HERE / "per_step.py"
    if not script.exists():
        return {"missing": True}
    if quick:
        return {"skipped": "not run in quick mode"}
    command = [sys.executable, str(script)]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300)
    except subprocess.TimeoutExpired:
        return {"error": "did not finish within 300 s"}
    if proc.returncode != 0:
        return {"error": f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}"}
    return {"output": proc.stdout.strip()}


# --------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny budgets, two programs: checks the benchmark works")
    parser.add_argument("--peers", action="store_true",
                        help="create the peers' venvs if missing (pip install) and measure them")
    parser.add_argument("--no-peers", action="store_true", help="skip the peers even if their venvs exist")
    parser.add_argument("--profile", action="store_true",
                        help="create benchmarks/.venv-profile (pip install py-spy) if missing and profile long runs")
    parser.add_argument("--no-stress", action="store_true", help="skip real-thread stress testing")
    parser.add_argument("--programs", help="comma-separated program names (default: all; --quick: "
                        + ", ".join(QUICK_PROGRAMS) + ")")
    parser.add_argument("--out", type=Path, help="folder for RESULTS.md and results.json")
    parser.add_argument("--measure-ours", metavar="PROGRAM", help=argparse.SUPPRESS)  # one program, JSON to stdout
    args = parser.parse_args(argv)
    budget = QUICK if args.quick else FULL
    os.chdir(ROOT)
    programs = catalog.discover()
    if args.measure_ours:
        print(json.dumps(measure_ours([p for p in programs if p.name == args.measure_ours], budget), default=str))
        return 0
    wanted = args.programs.split(",") if args.programs else (list(QUICK_PROGRAMS) if args.quick else None)
    if wanted is not None:
        unknown = set(wanted) - {p.name for p in programs}
        if unknown:
            parser.error(f"unknown programs: {', '.join(sorted(unknown))}")
        programs = [p for p in programs if p.name in wanted]
    out_dir = args.out or (Path(tempfile.gettempdir()) / "interleave-bench-quick" if args.quick else HERE)
    out_dir.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    results: dict[str, Any] = {"environment": environment(argv, args.quick), "budget": asdict(budget),
                               "programs": [{"name": p.name, "group": p.group, "path": str(p.path.relative_to(ROOT)),
                                             "expected": p.expected} for p in programs]}
    results["ours"] = measure_ours_isolated(programs, args.quick)
    results["stress"] = {} if args.no_stress else measure_stress(programs, budget)
    results["peers"] = {} if args.no_peers else measure_peers(programs, budget, create=args.peers)
    results["profile"] = measure_profile(programs, budget, create=args.profile)
    results["per_step"] = per_step_numbers(args.quick)
    results["total_s"] = time.perf_counter() - started
    results["environment"]["load_at_end"] = os.getloadavg()

    (out_dir / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    target = out_dir / "RESULTS.md"
    kept = report.kept_section(target.read_text() if target.exists() else "")
    target.write_text(report.render(results) + kept)
    log(f"wrote {out_dir / 'RESULTS.md'} and results.json in {results['total_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
