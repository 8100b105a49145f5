"""What the plugin tells the user: a failure with its trace and the lines that replay it,
notes about the store, and the statistics of tests that passed (``--interleave-stats``)."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from ..explore import Report

#: ``item.user_properties`` keys: pytest carries them to the terminal summary (from xdist workers too).
NOTE = "interleave-note"
STATS = "interleave-stats"


def note(item: pytest.Item, text: str) -> None:
    """A line for the "interleave notes" section at the end of the session."""
    item.user_properties.append((NOTE, f"{item.nodeid}: {text}"))


def failure_text(item: pytest.Item, kind: str, message: str, head: str, trace: str, details: str, token: str,
                 per_input: bool) -> str:
    """The failure as the test's failure message: what failed, its trace, how to replay it."""
    lines = [f"interleave: FAILURE ({kind}) {message}", f"  {head}", "", trace]
    if kind != "hang" and details:
        lines += ["", details]
    lines += ["", "Replay it:", f"  {replay_command(item, token)}",
              "or pin it in the test:",
              f'  @pytest.mark.interleave(replay="{token}")']
    if per_input:
        lines.append("(Hypothesis replays the falsifying input first; "
                     "the schedule is replayed for each input it fits)")
    return "\n".join(lines)


def one_line_summary(report: pytest.TestReport) -> None:
    """Keep a failure's first line for pytest's short summary: on CI and under ``-vv`` pytest
    prints the whole message there, and the trace is already shown above it."""
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        crash.message = crash.message.split("\n", 1)[0]


def replay_command(item: pytest.Item, token: str) -> str:
    """The command that replays ``token``, as the session was started (``pytest``, ``python -m pytest``),
    from the directory it was started in, shell-quoted."""
    config = item.config
    argv = getattr(config, "workerinput", {}).get("mainargv") or sys.argv  # an xdist worker: its controller's
    program = Path(argv[0]) if argv else Path("pytest")
    if program.name == "__main__.py":  # python -m pytest
        python = Path(sys.executable)
        found = shutil.which(python.name)
        shown = python.name if found and Path(found).resolve() == python.resolve() else str(python)
        words = [shown, "-m", "pytest"]
    else:
        words = [program.name if shutil.which(program.name) else str(program)]
    path, sep, rest = item.nodeid.partition("::")
    where = os.path.relpath(config.rootpath / path, config.invocation_params.dir)
    words += [where + sep + rest, f"--interleave-replay={token}"]
    return shlex.join(words)


def stats_line(nodeid: str, reports: list[Report]) -> str:
    """What the passing explorations of one test ran (one per input with ``@given``)."""
    first = reports[0]
    inputs = f"{len(reports)} inputs, " if len(reports) > 1 else ""
    runs = sum(r.runs for r in reports)
    schedules = sum(r.distinct_schedules for r in reports)
    elapsed = sum(r.elapsed_s for r in reports)
    line = (f"{nodeid}: {inputs}{_n(runs, 'run')}, {_n(schedules, 'distinct schedule')}, {elapsed:.2f}s "
            f"[{first.strategy}, seed {first.seed}]")
    if all(r.complete for r in reports):
        return line + "; every schedule was run" + _races_seen(reports)
    if all(r.exhausted and r.partial_order for r in reports):
        bound = max((r.bound for r in reports if r.bound is not None), default=None)
        unbounded = any(r.bound is None for r in reports)
        within = "" if unbounded or bound is None else f" with at most {_n(bound, 'preemption')}"
        return line + f"; every order of conflicting steps{within} was run" + _races_seen(reports)
    bounds = [r.bound for r in reports if r.bound is not None and r.bound >= 0]
    if len(bounds) == len(reports):
        return line + f"; every schedule with at most {_n(min(bounds), 'preemption')} was run" + _races_seen(reports)
    return line + "; schedules sampled, no bound exhausted" + _races_seen(reports)


def _races_seen(reports: list[Report]) -> str:
    """The data races the runs checked for them saw (races off), said with how to see them."""
    places = {p for r in reports for p in r.races.get("places", ())}
    checked = sum(r.races.get("runs_checked", 0) for r in reports)
    if not places:
        return ""
    return (f"; {_n(len(places), 'data race')} seen in the {_n(checked, 'run')} checked for them "
            "(races=True reports them)")


def _n(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"



def terminal_summary(terminalreporter: Any) -> None:
    """The notes of the session's marked tests, and their statistics when asked for."""
    notes = _properties(terminalreporter, NOTE)
    if notes:
        terminalreporter.section("interleave notes")
        for line in notes:
            terminalreporter.write_line(line)
    if terminalreporter.config.getoption("interleave_stats"):
        terminalreporter.section("interleave statistics")
        for line in _properties(terminalreporter, STATS) or ["no marked test passed after exploring"]:
            terminalreporter.write_line(line)


def _properties(terminalreporter: Any, key: str) -> list[Any]:
    """The values of the tests' ``key`` properties, once each (every phase's report carries them all)."""
    found: list[Any] = []
    for reports in terminalreporter.stats.values():
        for report in reports:
            for name, value in getattr(report, "user_properties", ()):
                if name == key and value not in found:
                    found.append(value)
    return found
