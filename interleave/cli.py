"""The ``interleave`` command: ``explore`` a program for failing schedules, ``replay`` one.

Exit codes: 0 no failure within the budget; 1 a failure found (or reproduced by replay);
2 bad input, a replay that does not fit, or a program interleave cannot control.
"""

from __future__ import annotations

import json
import math
import os
import sys
from typing import Any

import click
from click.core import ParameterSource

from . import strategies
from .explore import (DEFAULT_RUNS, DEFAULT_TIME_LIMIT, FailureReport, NondeterministicProgram, Progress, Report,
                      explore, replay, setup_steps)
from .html import render_html
from .linecoverage import write_report
from .output import Unwritable, checked_path, write_atomically
from .program import BadInput
from .trace import render

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2


class _Seconds(click.ParamType):
    """A finite number of seconds, 0 or more (``nan`` and ``inf`` are floats, not durations)."""

    name = "seconds"

    def convert(self, value: Any, param: Any, ctx: Any) -> float:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not math.isfinite(seconds) or seconds < 0:
            self.fail(f"{value} is not a finite number of seconds, 0 or more", param, ctx)
        return seconds


def _bad_input(message: str) -> None:
    click.echo(f"interleave: error: {message}", err=True)
    sys.exit(EXIT_BAD_INPUT)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="interleave-sct", prog_name="interleave")
def cli() -> None:
    """Find the thread interleaving that breaks your code.

    interleave runs ordinary threading code under a deterministic scheduler (every
    thread a greenlet, time virtual), explores schedules, and reports the first failure
    (an exception in any thread, a deadlock, a hang) shrunk to a minimal schedule, with
    a token that replays it exactly.

    \b
    Examples:
      interleave explore examples/lost_update.py
      interleave explore targets/nio_throttle.py::fixed --time-limit 30
      interleave replay examples/lost_update.py 1.311.2997fcf7.d.aedaaaaab4aqi.u7vnlqi
    """


@cli.command("explore")
@click.argument("target", metavar="PATH[::FUNC]")
@click.option("--runs", type=click.IntRange(min=1), help=f"Stop after this many runs (default {DEFAULT_RUNS:,} when no --time-limit).")
@click.option("--time-limit", type=_Seconds(), help=f"Stop after this many seconds (default {DEFAULT_TIME_LIMIT:g} when no --runs).")
@click.option("--seed", type=int, default=0, show_default=True, help="Makes the whole exploration reproducible.")
@click.option("--strategy", type=click.Choice(strategies.NAMES), default="portfolio", show_default=True,
              help="portfolio: bounded enumeration, PCT and random walk taking turns; random: uniform random walk; "
                   "pct: probabilistic concurrency testing; dfs: every schedule, by increasing preemptions.")
@click.option("--depth", type=click.IntRange(min=1), default=3, show_default=True, help="PCT bug depth d.")
@click.option("--max-preemptions", type=click.IntRange(min=0), default=2, show_default=True,
              help="Bound for the enumeration (dfs, and the portfolio's dfs share).")
@click.option("--max-steps", type=click.IntRange(min=1), help="Step bound of one run; past it the run is a hang (default 100,000).")
@click.option("--max-pauses", type=click.IntRange(min=0), help="Pauses per run: a runnable thread held while time jumps (default 2).")
@click.option("--max-faults", type=click.IntRange(min=0), help="Faults per run for programs that model them (default 2).")
@click.option("--granularity", type=click.Choice(["line", "opcode"]), default="line", show_default=True,
              help="Switch points at every line of your code, or at every bytecode.")
@click.option("--shrink-time", type=_Seconds(), default=30.0, show_default=True,
              help="Seconds allowed for shrinking a failure.")
@click.option("--workers", callback=lambda ctx, param, value: _workers(value), metavar="N|ADDRESS",
              help="Split the search among N processes (default: one per core), or run it on the Dask cluster "
                   "whose scheduler is at ADDRESS, e.g. tcp://host:8786 (needs the distributed extra).")
@click.option("--all", "keep_going", is_flag=True,
              help="Do not stop at the first failure: go on to the end of the budget and report every distinct one.")
@click.option("--json", "json_path", type=click.Path(), help="Write the report as JSON here.")
@click.option("--html", "html_path", type=click.Path(),
              help="Write the failing run's timeline here (one self-contained HTML file).")
@click.option("--coverage", "coverage_text", is_flag=True, help="Print the line coverage of your code over all explored runs.")
@click.option("--coverage-html", type=click.Path(file_okay=False, writable=True), metavar="DIR",
              help="Write that coverage as an HTML report into DIR.")
def explore_command(target: str, json_path: str | None, html_path: str | None, coverage_text: bool,
                    coverage_html: str | None, **options: Any) -> None:
    """Run PATH's FUNC (default: main) under many schedules until one fails.

    FUNC takes no arguments and is ordinary threading code: it does not import
    interleave. Each run executes the file afresh. A failure is shrunk to a minimal
    schedule, printed as a trace, and given a replay token.
    """
    # Before exploring, and against the directory the command was started in (the program may chdir).
    json_path, html_path = _output_path(json_path, "--json"), _output_path(html_path, "--html")
    coverage_html = os.path.abspath(coverage_html) if coverage_html else None
    progress = _progress_printer() if sys.stderr.isatty() else None
    coverage = coverage_text or bool(coverage_html)
    if coverage and click.get_current_context().get_parameter_source("workers") != ParameterSource.COMMANDLINE:
        options["workers"] = 1  # lines are collected in-process
    try:
        report = explore(target, on_progress=progress, coverage=coverage, **options)
    except BadInput as exc:
        _bad_input(str(exc))
        return
    except NondeterministicProgram as exc:
        _bad_input(str(exc))
        return
    if progress is not None:
        click.echo("\r\033[K", nl=False, err=True)
    _print_report(report)  # first: whatever happens to the files, the report is out
    if report.coverage is not None:
        click.echo("")
        click.echo("Line coverage over all explored runs:")
        write_report(report.coverage, out=sys.stdout if coverage_text else None, html_dir=coverage_html)
        if coverage_html:
            click.echo(f"HTML coverage report: {coverage_html}/index.html")
    if json_path:
        _write(json_path, json.dumps(report.to_json(), indent=2))
    if html_path:
        if report.failure is not None and report.failure.recorder is not None:
            _write(html_path, render_html(report.failure.recorder, report.failure, title=report.target,
                                          token=report.failure.replay))
        else:
            click.echo(f"interleave: no failure, so no timeline was written to {html_path}", err=True)
    if report.uncontrolled is not None:
        _bad_input(f"cannot explore: the program used {report.uncontrolled}; results would not be trustworthy")
    if report.nondeterministic is not None:
        _bad_input(report.nondeterministic)
    sys.exit(EXIT_FAILURE if report.failure is not None else EXIT_OK)


def _output_path(path: str | None, option: str) -> str | None:
    if path is None:
        return None
    try:
        return checked_path(path, option)
    except Unwritable as exc:
        _bad_input(str(exc))
        return None


def _write(path: str, text: str) -> None:
    """Write a report file whole; one line if that fails (the report is printed already)."""
    try:
        write_atomically(path, text)
    except OSError as exc:
        _bad_input(f"could not write {path}: {exc.strerror or exc}")


def _workers(value: str | None) -> int | str:
    if value is None:  # every core this process may use
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if "://" in value:
        return value
    if value.isdigit() and int(value) >= 1:
        return int(value)
    raise click.BadParameter(f"{value!r} is neither a number of workers (1 or more) nor a Dask scheduler address")


def _progress_printer() -> Any:
    def show(p: Progress) -> None:
        rate = p.runs / p.elapsed_s if p.elapsed_s else 0
        click.echo(f"\r\033[Kexploring: {p.runs:,} runs, {p.steps:,} steps, {p.elapsed_s:.1f}s ({rate:,.0f} runs/s)",
                   nl=False, err=True)

    return show


def _print_report(report: Report) -> None:
    workers = f", {report.workers} workers" if report.workers > 1 else ""
    head = f"{report.runs:,} runs, {report.distinct_schedules:,} distinct schedules, {report.elapsed_s:.2f}s " \
           f"[{report.strategy}, seed {report.seed}{workers}]"
    for death in report.worker_deaths:
        click.echo(f"interleave: {death}")
    failure = report.failure
    if failure is None:
        if report.interrupted:
            click.echo(f"interleave: interrupted; no failure in {head}")
        elif report.uncontrolled is None and report.nondeterministic is None:
            click.echo(f"interleave: no failure in {head}")
        else:
            return
        _print_confidence(report)
        return
    if len(report.failures) > 1:
        click.echo(f"interleave: {len(report.failures)} distinct failures in {head}")
    for number, failure in enumerate(report.failures or [failure]):
        if number:
            click.echo("")
        _print_failure(report, failure)


def _print_failure(report: Report, failure: FailureReport) -> None:
    click.echo(f"interleave: FAILURE ({failure.kind}) {failure.message}")
    click.echo(f"  found in run {failure.run:,} after {failure.elapsed_s:.2f}s; shrunk from "
               f"{failure.original_preemptions} preemptions/pauses/faults / {failure.original_steps:,} steps to "
               f"{_decisions(failure)} / {failure.steps:,} steps "
               f"({failure.shrink_attempts} replays{'' if failure.minimal else ', shrink time ran out'})")
    click.echo("")
    click.echo(failure.trace)
    if failure.kind != "hang":
        click.echo("")
        click.echo(failure.details)
    click.echo("")
    click.echo("Replay it:")
    click.echo(f"  interleave replay {report.target} {failure.replay}")


def _print_confidence(report: Report) -> None:
    if report.complete:
        click.echo("  every schedule of the program was run: no schedule fails")
    elif report.exhausted and report.bound is not None:
        click.echo(f"  exhausted: every schedule with at most {_n(report.bound, 'preemption')} was run, none fails")
    elif report.bound is not None and report.bound >= 0:
        click.echo(f"  every schedule with at most {_n(report.bound, 'preemption')} was run, none fails")
    for name, c in report.confidence.items():
        d = name.rsplit("_", 1)[1]
        click.echo(f"  PCT d={d}: each run finds a depth-{d} bug with probability >= 1/(n*k^{int(d) - 1}) = "
                   f"{c['per_run_probability']:.2g} (n={c['threads']}, k={c['steps_k']}); "
                   f"{c['runs_for_99_percent']:,} runs give 99%")


def _decisions(failure: FailureReport) -> str:
    """``1 preemption``, ``1 preemption + 1 pause``, ``1 fault``: what the shrunk schedule needs."""
    parts = [_n(n, word) for n, word in ((failure.switches, "preemption"), (failure.pauses, "pause"),
                                          (failure.faults, "fault")) if n]
    return " + ".join(parts) or "0 preemptions"


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


@cli.command("replay")
@click.argument("target", metavar="PATH[::FUNC]")
@click.argument("token")
@click.option("--html", "html_path", type=click.Path(),
              help="Write the run's timeline here (one self-contained HTML file).")
@click.option("--full", is_flag=True, help="Show every step instead of folding the stretches away from the preemptions.")
def replay_command(target: str, token: str, html_path: str | None, full: bool) -> None:
    """Run exactly the schedule in TOKEN and print its trace.

    Exit 1 when the failure is reproduced, 0 if the schedule ran without failing, 2 if
    the token is corrupt or does not fit the program as it is now.
    """
    html_path = _output_path(html_path, "--html")
    try:
        outcome = replay(target, token)
    except BadInput as exc:
        _bad_input(str(exc))
        return
    click.echo(render(outcome.recorder, outcome.failure, skip_setup=setup_steps(outcome.recorder), full=True) if full
               else outcome.trace)
    if html_path:
        _write(html_path, render_html(outcome.recorder, outcome.failure, title=target, token=token))
    if outcome.failure is None:
        click.echo(f"interleave: the schedule ran without failing ({outcome.steps:,} steps)")
        sys.exit(EXIT_OK)
    if outcome.failure.kind != "hang":
        click.echo("")
        click.echo(outcome.failure.details)
    click.echo(f"interleave: reproduced ({outcome.failure.kind}) {outcome.failure.message}")
    sys.exit(EXIT_FAILURE)


#: What click 8.2 and later raise for a command given no arguments (it shows the help).
_NO_ARGS: type[Exception] = getattr(click.exceptions, "NoArgsIsHelpError", ())  # type: ignore[assignment]


def main() -> None:
    """Console entry point: fixes the hash seed (so runs repeat across processes), then runs."""
    if os.environ.get("PYTHONHASHSEED") != "0" and os.environ.get("INTERLEAVE_NO_REEXEC") != "1":
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable, "-m", "interleave", *sys.argv[1:]])
    try:
        status = cli.main(prog_name="interleave", standalone_mode=False)
    except _NO_ARGS as exc:  # ``interleave`` alone: the help, as click shows it
        exc.show()
        sys.exit(EXIT_BAD_INPUT)
    except click.ClickException as exc:  # a bad option or argument: one line, as all bad input
        _bad_input(exc.format_message())
    except (KeyboardInterrupt, click.exceptions.Abort):  # before or after an exploration, which handles its own
        click.echo("interleave: interrupted", err=True)
        sys.exit(130)
    sys.exit(status if isinstance(status, int) else EXIT_OK)
