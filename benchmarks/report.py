"""Turns the benchmark's results (see ``run.py``) into ``RESULTS.md``."""

from __future__ import annotations

import math
import statistics
from typing import Any

#: The goals of issue 7, as (key, text).
GOAL_US_PER_STEP = 5.0
GOAL_RUNS_PER_S = 5000.0
GOAL_PEER_FACTOR = 10.0

#: interleave measured again right after the peers, for a same-minutes runs/s ratio.
ADJACENT = "interleave (adjacent)"

PEER_LABELS = ("frontrun dpor", "frontrun random", "interleave-test random", "interleave-test pct", "ploom dfs")


# --------------------------------------------------------------------------- summaries

def ttff_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Median and range of time to first failure over trials; misses count as infinitely slow."""
    tried = [r for r in rows if "skipped" not in r and "unsupported" not in r]
    skipped = sum(r.get("skipped", 0) for r in rows)
    times = sorted(r["ttff_s"] if r.get("found") else math.inf for r in tried)
    found = [t for t in times if t != math.inf]
    return {
        "trials": len(tried),
        "found": len(found),
        "skipped": skipped,
        "median": statistics.median(times + [math.inf] * skipped) if times else None,
        "min": found[0] if found else None,
        "max": found[-1] if found else None,
        "errors": sorted({r["error"] for r in tried if r.get("error")}),
    }


def fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds == math.inf:
        return "not found"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def fmt_ttff(s: dict[str, Any], limit: float | None = None) -> str:
    if not s["trials"]:
        return "-"
    n = s["trials"] + s["skipped"]
    if s["median"] == math.inf:
        text = f"not found ({s['found']}/{n}"
        text += f" in {limit:.3g} s each)" if limit else ")"
        return text
    spread = f" [{fmt_s(s['min'])}–{fmt_s(s['max'])}]" if s["found"] > 1 else ""
    return f"{fmt_s(s['median'])}{spread} ({s['found']}/{n})"


def fmt_rate(x: float | None) -> str:
    if x is None:
        return "-"
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def median_of(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r.get("found") and r.get(key) is not None]
    return statistics.median(values) if values else None


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------- sections

def render(results: dict[str, Any]) -> str:
    env = results["environment"]
    budget = results["budget"]
    names = [p["name"] for p in results["programs"]]
    groups = {p["name"]: p["group"] for p in results["programs"]}
    ours = results["ours"]
    parts = [
        "# Benchmark results",
        "",
        ("**Quick mode**: tiny budgets that only check that the benchmark works; these numbers are not "
         "claims.\n" if env["quick"] else ""),
        f"Command: `{env['command']}`  ",
        f"Date: {env['date_utc']}; took {results['total_s'] / 60:.1f} min  ",
        f"Machine: {env['machine']}; {env['os']}  ",
        f"Load average (1/5/15 min) at start {_load(env.get('load_at_start'))}, at end "
        f"{_load(env.get('load_at_end'))} (other work on a shared machine skews absolute numbers)  ",
        f"Python {env['python']}, interleave {env['interleave']} (commit {env['commit']}), "
        f"greenlet {env['greenlet']}  ",
        _peer_versions(results),
        "",
        "All numbers below come from this one run on this one machine; compare ratios, not absolute times. "
        "Time to first failure (TTFF) is the search time until the first failing run: for interleave, "
        "`FailureReport.elapsed_s` (loading the program once is before it, shrinking after it); for the "
        "peers, the wall time of their exploration call inside their own process (interpreter start and "
        "import excluded); for stress testing, the wall time from the first rerun to the failure. Cells read "
        "`median [fastest–slowest] (found/trials)`; a trial that found nothing counts as infinitely slow in "
        "the median.",
        "",
        f"Budgets: interleave {budget['seeds']} seeds x {budget['ttff_limit']:g} s for TTFF (shrinking "
        f"{budget['shrink_time']:g} s), {budget['fixed_limit']:g} s per correct twin; strategies "
        f"{budget['strategy_seeds']} seeds x {budget['strategy_limit']:g} s; stress {budget['stress_trials']} "
        f"processes x {budget['stress_seconds']:g} s; peers {budget['peer_seeds']} seeds (or "
        f"{budget['peer_repeats']} repeats when the tool has no seed) x {budget['peer_limit']:g} s, "
        f"{budget['peer_fixed_limit']:g} s per correct twin. After {budget['give_up_after']} trials in a row "
        "without a failure the remaining seeds are skipped and count as not found.",
        "",
        _goals(results),
        _ours_main(results, names),
        _ours_fixed(results, names),
        _comparison_ttff(results, names, groups),
        _comparison_runs(results, names),
        _strategies(results, names),
        _peers_limits(results, names),
        _profile(results),
        _per_step(results),
    ]
    return "\n".join(p for p in parts if p is not None) + "\n"


def _load(values: Any) -> str:
    return "/".join(f"{v:.1f}" for v in values) if values else "?"


def _peer_versions(results: dict[str, Any]) -> str:
    tools = results.get("peers", {}).get("tools", {})
    if not tools:
        return "Peers: not measured in this run."
    bits = []
    for name, info in tools.items():
        if info.get("available"):
            bits.append(f"{name} {info['version']} (Python {info['python']})")
        else:
            bits.append(f"{name}: not measured ({info['why']})")
    return "Peers: " + "; ".join(bits) + "  "


def _best_peer_runs(results: dict[str, Any], name: str) -> tuple[str | None, float | None]:
    best: tuple[str | None, float | None] = (None, None)
    for label, row in results.get("peers", {}).get("fixed", {}).get(name, {}).items():
        if label == ADJACENT:
            continue
        rate = _peer_rate(row)
        if rate is not None and (best[1] is None or rate > best[1]):
            best = (label, rate)
    return best


def _ours_rate(results: dict[str, Any], name: str, key: str = "runs_per_s") -> float:
    """interleave's runs per second (``key``: wall or CPU) on ``fixed``, next to the peers' when measured so."""
    adjacent = results.get("peers", {}).get("fixed", {}).get(name, {}).get(ADJACENT)
    return (adjacent or results["ours"]["fixed"][name])[key]


def _peer_cpu_rate(row: dict[str, Any]) -> float | None:
    if _peer_rate(row) is None or not row.get("cpu_s"):
        return None
    return row["runs"] / row["cpu_s"]


def _peer_rate(row: dict[str, Any]) -> float | None:
    if row.get("error") or row.get("unsupported") or not row.get("runs"):
        return None
    if row.get("found") or row.get("inconclusive"):
        return None  # a failure on the correct twin, or a run the tool itself calls inconclusive
    return row["runs"] / max(row.get("explore_elapsed_s", row["elapsed_s"]), 1e-9)


def _best_peer_ttff(results: dict[str, Any], name: str) -> tuple[str | None, dict[str, Any] | None]:
    best: tuple[str | None, dict[str, Any] | None] = (None, None)
    peers = results.get("peers", {})
    for label, rows in peers.get("main", {}).get(name, {}).items():
        if _spurious(peers, name, label):
            continue
        s = ttff_summary(rows)
        if not s["found"]:
            continue
        if best[1] is None or s["median"] < best[1]["median"]:
            best = (label, s)
    return best


def _spurious(peers: dict[str, Any], name: str, label: str) -> bool:
    """The peer also reports a failure on the correct twin: its finding on ``main`` proves nothing."""
    return bool(peers.get("fixed", {}).get(name, {}).get(label, {}).get("found"))


def _goals(results: dict[str, Any]) -> str:
    ours = results["ours"]
    rows = []
    by_strategy = {r["strategy"]: r for r in ours["throughput"].get("long_run", [])}
    if by_strategy:
        cells = ", ".join(f"{s} {r['us_per_step']:.2f}" for s, r in by_strategy.items())
        default = by_strategy["portfolio"]["us_per_step"]
        rows.append([f"≤ {GOAL_US_PER_STEP:g} µs per switch point on long runs (long_run, ~1,230 steps/run, "
                     "correct twin)", f"{cells} µs", _verdict(default <= GOAL_US_PER_STEP, "default portfolio")])
    by_strategy = {r["strategy"]: r for r in ours["throughput"].get("two_threads_20", [])}
    if by_strategy:
        cells = ", ".join(f"{s} {r['runs_per_s']:,.0f}" for s, r in by_strategy.items())
        default = by_strategy["portfolio"]["runs_per_s"]
        steps = by_strategy["portfolio"]["steps_per_run"]
        rows.append([f"≥ {GOAL_RUNS_PER_S:,.0f} runs/s, 2 threads x 10 racing lines (two_threads_20, {steps:.0f} "
                     "traced lines/run in all, correct twin)", f"{cells} runs/s",
                     _verdict(default >= GOAL_RUNS_PER_S, "default portfolio")])
    ratios = []
    for name in ours["fixed"]:
        label, rate = _best_peer_runs(results, name)
        if rate:
            ratios.append((_ours_rate(results, name) / rate, name, label))
    if ratios:
        worst = min(ratios)
        cells = "; ".join(f"{n} {r:.1f}x ({lab})" for r, n, lab in sorted(ratios))
        rows.append([f"runs/s ≥ {GOAL_PEER_FACTOR:g}x the best peer's on the same correct programs", cells,
                     _verdict(worst[0] >= GOAL_PEER_FACTOR, f"worst: {worst[1]} {worst[0]:.1f}x")])
    elif results.get("peers"):
        rows.append(["runs/s ≥ 10x the best peer's", "no peer ran a correct twin", "not measured"])
    comparisons = []
    for name, rows_main in ours["main"].items():
        label, best = _best_peer_ttff(results, name)
        if best is None:
            continue
        mine = ttff_summary(rows_main)
        ratio = mine["median"] / best["median"] if best["median"] else math.inf
        comparisons.append((ratio, name, label))
    if comparisons:
        worse = [c for c in comparisons if c[0] > 1]
        cells = "; ".join(f"{n} {r:.2g}x ({lab})" for r, n, lab in sorted(comparisons, reverse=True))
        rows.append(["TTFF no worse than the best peer's on any program both run (ours/best, < 1 is faster)",
                     cells, _verdict(not worse, f"worse on {len(worse)} of {len(comparisons)}")])
    elif results.get("peers"):
        rows.append(["TTFF no worse than the best peer's", "no peer found a failure", "not measured"])
    if not rows:
        return ""
    return "## Goals: where we stand\n\n" + table(["goal", "measured", "verdict"], rows) + "\n"


def _verdict(ok: bool, detail: str) -> str:
    return f"{'met' if ok else '**not met**'} ({detail})"


def _ours_main(results: dict[str, Any], names: list[str]) -> str:
    ours = results["ours"]
    rows = []
    for name in names:
        trials = ours["main"][name]
        s = ttff_summary(trials)
        found = [r for r in trials if r.get("found")]
        search = [r for r in trials if "runs" in r]
        runs_s = sum(r["runs"] for r in search) / max(sum(r["search_s"] for r in search), 1e-9)
        steps_s = sum(r["steps"] for r in search) / max(sum(r["search_s"] for r in search), 1e-9)
        kinds = sorted({r["kind"] for r in found})
        rows.append([
            name, fmt_ttff(s, results["budget"]["ttff_limit"]), ", ".join(kinds) or "-",
            _fmt_num(median_of(trials, "failing_run")), fmt_rate(runs_s), fmt_rate(steps_s),
            _fmt_num(median_of(trials, "preemptions")), _fmt_num(median_of(trials, "shrunk_steps")),
            _fmt_num(median_of(trials, "original_preemptions")), _fmt_num(median_of(trials, "original_steps")),
            f"{sum(1 for r in found if r.get('minimal'))}/{len(found)}",
            "; ".join(s["errors"]) or "",
        ])
    return ("## interleave on the buggy programs (`main`, default portfolio strategy)\n\n"
            "Failing run: the index of the first failing run. Shrunk/original: preemptions and steps of the "
            "failing schedule after and before shrinking (medians over seeds); minimal: shrinking finished "
            "(1-minimal and no schedule with fewer preemptions found) within its budget.\n\n"
            + table(["program", "TTFF", "kind", "failing run", "runs/s", "steps/s", "shrunk preemptions",
                     "shrunk steps", "original preemptions", "original steps", "minimal", "notes"], rows) + "\n")


def _fmt_num(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:g}" if x < 1000 else f"{x:,.0f}"


def _ours_fixed(results: dict[str, Any], names: list[str]) -> str:
    rows = []
    for name in names:
        r = results["ours"]["fixed"][name]
        if r["complete"]:
            bound = "every schedule (complete)"
        elif r["exhausted"]:
            bound = f"all with ≤ {r['bound']} preemptions"
        elif r["bound"] is not None and r["bound"] >= 0:
            bound = f"≤ {r['bound']} done, next bound not finished"
        else:
            bound = "bound 0 not finished"
        failure = f"**false alarm: {r['failure']}**" if r.get("failure") else ""
        rows.append([name, f"{r['runs']:,}", f"{r['elapsed_s']:.2f}", fmt_rate(r["runs_per_s"]),
                     fmt_rate(r["steps_per_s"]), f"{r['us_per_step']:.2f}", f"{r['steps_per_run']:.0f}", bound,
                     failure or r.get("error", "")])
    text = ("## interleave on the correct twins (`fixed`, default portfolio strategy)\n\n"
            "Bound exhausted: the bounded enumeration inside the portfolio finished every schedule with at most "
            "that many preemptions within the time budget (the portfolio stops early when the enumeration "
            "covered every schedule of the program).\n\n"
            + table(["program", "runs", "seconds", "runs/s", "steps/s", "µs/step", "steps/run",
                     "bound exhausted", "notes"], rows) + "\n")
    tp = results["ours"]["throughput"]
    if tp:
        rows = []
        for name, per in tp.items():
            for r in per:
                rows.append([name, r["strategy"], fmt_rate(r["runs_per_s"]), fmt_rate(r["steps_per_s"]),
                             f"{r['us_per_step']:.2f}", f"{r['steps_per_run']:.0f}",
                             "yes" if r["exhausted"] else "no"])
        text += ("\nThroughput by strategy on the benchmark programs' correct twins:\n\n"
                 + table(["program", "strategy", "runs/s", "steps/s", "µs/step", "steps/run", "exhausted"], rows)
                 + "\n")
    return text


def _comparison_ttff(results: dict[str, Any], names: list[str], groups: dict[str, str]) -> str:
    stress = results.get("stress", {})
    peers = results.get("peers", {})
    labels = [lab for lab in PEER_LABELS if any(lab in peers.get("main", {}).get(n, {}) for n in names)]
    header = ["program", "interleave (portfolio)"]
    if stress:
        header += ["stress, 5 ms switch", "stress, 1 µs switch"]
    header += labels
    rows = []
    for name in names:
        row = [name, fmt_ttff(ttff_summary(results["ours"]["main"][name]))]
        if stress:
            calibration = stress[name]["calibration"]
            for mode in ("default", "1us"):
                row.append(fmt_ttff(ttff_summary(stress[name][mode]), calibration["trial_s"]) if mode in stress[name]
                           else "n/a")
        for label in labels:
            cell_rows = peers.get("main", {}).get(name, {}).get(label)
            row.append(_peer_ttff_cell(peers, name, label, cell_rows))
        rows.append(row)
    note = ("Stress: each trial is a fresh process rerunning `main` with real threads until it fails or its "
            "time is up. One real-thread rerun of the correct twin is timed first: a rerun of `main` still "
            "running after 3x that (at least 1 s) counts as a deadlock/hang found, so a deadlock costs at least "
            "that watchdog; a trial lasts the stress budget or 3 reruns, whichever is longer, and a program whose "
            "reruns take real seconds (it sleeps for real) gets one trial per switch interval. Stress `n/a`: "
            + _stress_skips(stress) + " Peers: a `*` marks a tool that also reports a failure on the correct twin (its "
            "finding proves nothing); `n/a` cells say why a tool cannot run the program (see the last section).")
    return "## Time to first failure: interleave, stress testing and the peers\n\n" + note + "\n\n" + table(
        header, rows) + "\n"


def _stress_skips(stress: dict[str, Any]) -> str:
    skipped = {name: v["calibration"]["why"] for name, v in stress.items() if v["calibration"].get("why")}
    if not skipped:
        return "none."
    return "; ".join(f"{name}: {why}" for name, why in skipped.items()) + "."


def _peer_ttff_cell(peers: dict[str, Any], name: str, label: str, rows: list[dict[str, Any]] | None) -> str:
    if not rows:
        return "-"
    if rows[0].get("unsupported"):
        return "n/a"
    errors = [r for r in rows if r.get("error")]
    if errors and len(errors) == len(rows):
        return "error"
    cell = fmt_ttff(ttff_summary(rows))
    return cell + (" *" if _spurious(peers, name, label) else "")


def _comparison_runs(results: dict[str, Any], names: list[str]) -> str:
    peers = results.get("peers", {})
    if not peers.get("fixed"):
        return "## Runs per second on the correct twins\n\nPeers not measured in this run.\n"
    labels = [lab for lab in PEER_LABELS if any(lab in peers["fixed"].get(n, {}) for n in names)]
    rows = []
    for name in names:
        mine = _ours_rate(results, name)
        row = [name, fmt_rate(results["ours"]["fixed"][name]["runs_per_s"]), fmt_rate(mine)]
        for label in labels:
            r = peers["fixed"].get(name, {}).get(label)
            if r is None:
                row.append("-")
            elif r.get("unsupported"):
                row.append("n/a")
            elif r.get("error"):
                row.append("error")
            elif r.get("found"):
                row.append("false alarm")
            elif r.get("inconclusive"):
                row.append("inconclusive")
            else:
                rate = _peer_rate(r)
                row.append(f"{fmt_rate(rate)}{' (exhausted)' if r.get('exhausted') else ''}" if rate else "-")
        label, best = _best_peer_runs(results, name)
        row.append(f"{mine / best:.1f}x ({label})" if best else "-")
        cpu_rates = [(rate, lab) for lab, r in peers["fixed"].get(name, {}).items()
                     if lab != ADJACENT and (rate := _peer_cpu_rate(r))]
        if cpu_rates and label:
            best_cpu, cpu_label = max(cpu_rates)
            row.append(f"{_ours_rate(results, name, 'runs_per_cpu_s') / best_cpu:.1f}x ({cpu_label})")
        else:
            row.append("-")
        rows.append(row)
    note = ("Runs per second while exploring the correct twin (interleave: default portfolio, measured twice: with "
            "its other numbers, and again just before and just after the peers ran the same program, whose mean "
            "is the figure the ratios use; interleave-test at "
            "line granularity like interleave; frontrun counts its DPOR executions or random attempts; ploom "
            "runs each schedule in a fresh process). A tool that finished its whole (bounded) space early is "
            "marked exhausted: its rate then includes its start-up. The last column divides runs per CPU second "
            "instead (process CPU time, all threads; for ploom also its finished worker processes), which moves "
            "less with other load on a shared machine; the goal is judged on wall-clock runs/s.")
    return ("## Runs per second on the correct twins\n\n" + note + "\n\n"
            + table(["program", "interleave", "interleave (adjacent)", *labels, "ours / best peer",
                     "same, per CPU second"], rows) + "\n")


def _strategies(results: dict[str, Any], names: list[str]) -> str:
    strategies = results["ours"]["strategies"]
    if not strategies:
        return ""
    order = list(next(iter(strategies.values())))  # run.py's order: the default portfolio first
    rows = []
    wins = {s: 0 for s in order}
    misses = {s: 0 for s in order}
    for name in names:
        row = [name]
        medians = {}
        for s in order:
            summary = ttff_summary(strategies[name][s])
            medians[s] = summary["median"]
            misses[s] += (summary["trials"] + summary["skipped"]) - summary["found"]
            cell = fmt_ttff(summary, results["budget"]["strategy_limit"])
            extra = median_of(strategies[name][s], "failing_run")
            row.append(cell + (f", run {extra:g}" if extra is not None else ""))
        best = min(medians.values(), key=lambda m: math.inf if m is None else m)
        for s in order:
            if medians[s] is not None and medians[s] == best and best != math.inf:
                wins[s] += 1
        rows.append(row)
    summary_line = "; ".join(f"{s}: fastest median on {wins[s]}, misses {misses[s]}" for s in order)
    return ("## Strategy comparison (time to first failure on `main`)\n\n"
            f"Each strategy alone, {results['budget']['strategy_seeds']} seeds (dfs is deterministic: one trial), "
            f"{results['budget']['strategy_limit']:g} s per trial. The portfolio column is the TTFF of the "
            "first table (its own budget; shrinking starts after TTFF is taken). `run N` is the median index of "
            "the first failing run.\n\n"
            + table(["program", *order], rows) + f"\n\nSummary: {summary_line}.\n")


def _peers_limits(results: dict[str, Any], names: list[str]) -> str:
    peers = results.get("peers", {})
    if not peers:
        return "## What the peers could not run\n\nPeers not measured in this run.\n"
    lines = ["## What the peers could not run, and why", ""]
    for name, info in peers.get("tools", {}).items():
        if not info.get("available"):
            lines.append(f"- **{name}**: not measured: {info['why']}.")
    seen: dict[tuple[str, str], list[str]] = {}
    for name in names:
        for label, rows in peers.get("main", {}).get(name, {}).items():
            tool = label.split()[0]
            reason = None
            if rows and rows[0].get("unsupported"):
                reason = rows[0]["unsupported"]
            elif rows and all(r.get("error") for r in rows if "skipped" not in r):
                reason = "error: " + rows[0]["error"]
            elif _spurious(peers, name, label):
                fixed = peers["fixed"][name][label]
                reason = "reports a failure on the correct twin too: " + str(fixed.get("failure", ""))[:160]
            elif (peers.get("fixed", {}).get(name, {}).get(label, {}) or {}).get("error"):
                reason = "error on the correct twin: " + peers["fixed"][name][label]["error"]
            else:
                inconclusive = [r.get("inconclusive") for r in rows if r.get("inconclusive")]
                if inconclusive and not any(r.get("found") for r in rows):
                    reason = "inconclusive: " + inconclusive[0][:200]
            if reason:
                seen.setdefault((tool, reason), []).append(f"{name} ({label.split(' ', 1)[1]})")
    for (tool, reason), where in sorted(seen.items()):
        lines.append(f"- **{tool}** on {', '.join(where)}: {reason}")
    return "\n".join(lines) + "\n"


def _profile(results: dict[str, Any]) -> str | None:
    profiles = results.get("profile")
    if not profiles:
        return None
    text = ["## Where the time goes (py-spy sampling, correct twins of the benchmark programs)", ""]
    if profiles.get("why"):
        return "\n".join(text + [f"Not profiled: {profiles['why']}.", ""])
    text += ["Own: samples whose innermost frame is the function; total: samples with the function anywhere on "
             "the stack. py-spy samples from outside the process, so it also sees the tracer's callbacks, "
             "which cProfile cannot.", ""]
    for label, prof in profiles.items():
        if prof.get("error"):
            text += [f"{label}: {prof['error']}", ""]
            continue
        per_step = ""
        if prof["steps"]:
            per_step = f", {prof['steps'] / max(prof['runs'], 1):.0f} steps/run"
        text.append(f"**{label}**: {prof['runs']:,} runs{per_step}, {prof['samples']:,} samples.")
        text.append("")
        own = [[f"`{r['function']}`", f"{100 * r['share']:.1f}%"] for r in prof["own"]]
        total = [[f"`{r['function']}`", f"{100 * r['share']:.1f}%"] for r in prof["total"]]
        rows = [a + b for a, b in zip(own + [["", ""]] * (len(total) - len(own)), total)]
        text.append(table(["function (own)", "own", "function (total)", "total"], rows))
        text.append("")
    return "\n".join(text)


def _per_step(results: dict[str, Any]) -> str | None:
    ps = results.get("per_step") or {}
    if ps.get("missing"):
        return "## Per-step costs\n\n`benchmarks/per_step.py` is not in the tree yet.\n"
    if ps.get("skipped"):
        return f"## Per-step costs\n\n`benchmarks/per_step.py`: {ps['skipped']}.\n"
    if ps.get("error"):
        return f"## Per-step costs\n\n`benchmarks/per_step.py` failed: {ps['error']}\n"
    return "## Per-step costs (`benchmarks/per_step.py`)\n\n```\n" + ps.get("output", "") + "\n```\n"


#: A section written by another command (``access_cost.py``): a new run of this one keeps it.
KEPT_HEADING = "## Shared-access steps: cost"


def kept_section(previous: str) -> str:
    """The kept section of the previous RESULTS.md (it runs to the end of the file), or ""."""
    start = previous.find("\n" + KEPT_HEADING + "\n")
    return "" if start < 0 else previous[start:].rstrip("\n") + "\n"
