"""The ``interleave`` command: ``explore`` a program for failing schedules, ``replay`` one.

Exit codes (listed in ``interleave --help``): 0 no failure within the budget; 1 a failure
found (or reproduced by replay); 2 bad input, a replay that does not fit, a program
interleave cannot control, or no verdict (no run completed, or a share of the search was
not run); 130 stopped by Ctrl-C, SIGTERM or SIGHUP before any failure was found.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from . import settings
from .census import Census
from .describe import setup_steps
from .explore import FailureReport, NondeterministicProgram, Progress, Report, explore, replay
from .fresh import fresh_replay_problem
from .html import render_html
from .linecoverage import write_report
from .output import Unwritable, checked_path, write_atomically
from .program import BadInput
from .report import Cost, Outcome, ShrinkProgress
from .trace import TRACE_LIMIT, render

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2
#: An exploration stopped by Ctrl-C, SIGTERM or SIGHUP before it found a failure.
EXIT_INTERRUPTED = 130


def _bad_input(message: str) -> None:
    click.echo(f"interleave: error: {message}", err=True)
    sys.exit(EXIT_BAD_INPUT)


if TYPE_CHECKING:
    _ParamType = click.ParamType[Any, Any]
else:  # generic in the stubs of recent clicks only; the dependency allows click 8.1
    _ParamType = click.ParamType


class _Setting(_ParamType):
    """A value of one exploration option, checked by the settings table."""

    def __init__(self, option: settings.Option) -> None:
        self.option = option
        self.name = option.metavar or option.name

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return self.option.parse(value) if isinstance(value, str) else self.option.check(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _click_option(option: settings.Option) -> Callable[[Any], Any]:
    if option.kind is bool:
        return click.option(option.flag, option.name, is_flag=True, help=option.help)
    if option.kind is list:
        return click.option(option.flag, option.name, multiple=True, metavar=option.metavar, help=option.help)
    kind = click.Choice(option.kind) if isinstance(option.kind, tuple) else _Setting(option)
    return click.option(option.flag, option.name, type=kind, default=option.default,
                        show_default=option.default is not None, metavar=option.metavar, help=option.help)


def exploration_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Every option of the settings table, in its order."""
    for option in reversed(settings.OPTIONS):
        command = _click_option(option)(command)
    return command


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
      interleave explore targets/nio_throttle.py::fixed --runs 1000 --seed 1
      interleave explore examples/lost_update.py --json - --workers 1
      interleave replay examples/lost_update.py::main TOKEN
    (TOKEN: the replay token explore printed.)

    \b
    Exit codes:
      0    no failure found (explore), or the schedule ran without failing (replay)
      1    a failure found (explore), or reproduced (replay)
      2    bad input: a usage error, a program that cannot be loaded or controlled,
           a replay token that is corrupt or does not fit
      130  interrupted by Ctrl-C before an exploration began or after it ended
           (Ctrl-C during an exploration stops it and reports what it found)
    """


@cli.command("explore")
@click.argument("target", metavar="PATH[::FUNC]")
@exploration_options
@click.option("--all", "keep_going", is_flag=True,
              help="Do not stop at the first failure: go on to the end of the budget and report every distinct one.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, allow_dash=True),
              help="Write the report as JSON here (- for standard output; the text report then goes to "
                   "standard error).")
@click.option("--html", "html_path", type=click.Path(dir_okay=False),
              help="Write the failing run's timeline here (one self-contained HTML file).")
@click.option("--full", is_flag=True,
              help="Print the whole trace: every step, nothing folded or left out (a long one is cut at "
                   f"{TRACE_LIMIT} lines).")
@click.option("--coverage", "coverage_text", is_flag=True,
              help="Print the line coverage of your code over all explored runs.")
@click.option("--coverage-html", type=click.Path(file_okay=False, writable=True), metavar="DIR",
              help="Write that coverage as an HTML report into DIR.")
def explore_command(target: str, keep_going: bool, json_path: str | None, html_path: str | None, full: bool,
                    coverage_text: bool, coverage_html: str | None, **values: Any) -> None:
    """Run PATH's FUNC (default: main) under many schedules until one fails.

    FUNC takes no arguments and is ordinary threading code: it does not import
    interleave. Each run executes the file afresh. A failure is shrunk to a minimal
    schedule, printed as a trace, and given a replay token.

    Exit 0 when no schedule failed, 1 when one did, 2 for bad input.
    """
    # Before exploring, and against the directory the command was started in (the program may chdir).
    json_path, html_path = _output_path(json_path, "--json"), _output_path(html_path, "--html")
    coverage_html = os.path.abspath(coverage_html) if coverage_html else None
    progress = _progress_printer() if sys.stderr.isatty() else None
    coverage = coverage_text or bool(coverage_html)
    if values["workers"] is None:
        values["workers"] = settings.default_workers()
    arguments = settings.explore_arguments(settings.Exploration(**values))
    try:
        with _termination_as_interrupt():
            report = explore(target, on_progress=progress, coverage=coverage, keep_going=keep_going,
                             on_found=_found_printer(values["shrink_time"], progress is not None),
                             on_shrinking=_shrink_printer(values["shrink_time"], progress is not None),
                             **arguments)
    except BadInput as exc:
        _bad_input(str(exc))
        return
    except NondeterministicProgram as exc:
        _bad_input(str(exc))
        return
    if progress is not None:
        click.echo("\r\033[K", nl=False, err=True)
    unrepeated = _not_reproduced_in_fresh_process(target, report)
    if json_path == "-":
        click.echo(json.dumps(report.to_json(), indent=2))
    # First the report (with the JSON on standard output, the text goes to standard error),
    # then the files: whatever happens to them, the report is out.
    with contextlib.redirect_stdout(sys.stderr) if json_path == "-" else contextlib.nullcontext():
        if report.failure is not None or not unrepeated:
            _print_report(report, full)
        if report.coverage is not None:
            click.echo("")
            click.echo("Line coverage over all explored runs:")
            write_report(report.coverage, out=sys.stdout if coverage_text else None, html_dir=coverage_html)
            if coverage_html:
                click.echo(f"HTML coverage report: {coverage_html}/index.html")
    if json_path and json_path != "-":
        _write(json_path, json.dumps(report.to_json(), indent=2))
    if html_path:
        if report.failure is not None and report.failure.recorder is not None:
            _write(html_path, render_html(report.failure.recorder, title=report.target, token=report.failure.replay,
                                          command=_replay_line(report.target, report.failure.replay)))
        else:
            click.echo(f"interleave: no failure, so no timeline was written to {html_path}", err=True)
    for line in unrepeated:
        click.echo(f"interleave: error: {line}", err=True)
    if unrepeated:
        sys.exit(EXIT_BAD_INPUT)
    outcome = report.outcome
    if outcome is Outcome.UNCONTROLLED:
        _bad_input(f"cannot explore: the program used {report.uncontrolled}; results would not be trustworthy")
    elif outcome is Outcome.NONDETERMINISTIC:
        _bad_input(f"{report.nondeterministic}")
    elif outcome in _NO_VERDICT:
        _bad_input(f"no verdict: {report.unbacked()}")
    sys.exit(EXIT_FAILURE if outcome is Outcome.FAILED else EXIT_INTERRUPTED if outcome is Outcome.INTERRUPTED
             else EXIT_OK)


#: Outcomes after which nothing can be said of the program (the reason goes to standard error).
_NO_VERDICT = (Outcome.LOST_WORKERS, Outcome.NO_RUN)


@contextmanager
def _termination_as_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP stop an exploration as Ctrl-C does: workers stopped, what was found reported."""

    def interrupt(number: int, frame: Any) -> Any:
        # As Ctrl-C's own handler would: during a run that one also marks the run as stopped
        # from outside, so the program's code does not take it for a KeyboardInterrupt of its own.
        ctrl_c = signal.getsignal(signal.SIGINT)
        if callable(ctrl_c):
            return ctrl_c(signal.SIGINT, frame)
        raise KeyboardInterrupt

    numbers = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])  # no SIGHUP on Windows
    saved = {number: signal.signal(number, interrupt) for number in numbers}
    try:
        yield
    finally:
        for number, handler in saved.items():
            signal.signal(number, handler)


def _found_printer(shrink_time: float, progress_line: bool) -> Any:
    """Says on stderr that a failure was found, before its shrinking (which can take a while) starts."""

    def show(found: list[FailureReport]) -> None:
        if not shrink_time:
            return
        first = found[0]
        clear = "\r\033[K" if progress_line else ""
        click.echo(f"{clear}interleave: run {first.run:,} failed ({first.kind}) {first.message}; shrinking it "
                   f"(up to {shrink_time:g}s; Ctrl-C reports it as found)", err=True)

    return show


def _shrink_printer(shrink_time: float, progress_line: bool) -> Any:
    """How shrinking goes: on a terminal, on the progress line as it goes; anywhere, one line at its end."""
    if not shrink_time:
        return None

    def show(p: ShrinkProgress) -> None:
        if p.done:
            clear = "\r\033[K" if progress_line else ""
            click.echo(f"{clear}interleave: {p.text()}", err=True)
            if progress_line:  # a replay that records the run for its trace comes next (long for a long run)
                click.echo("recording the shrunk run's trace", nl=False, err=True)
        elif progress_line:
            click.echo(f"\r\033[K{p.text()}", nl=False, err=True)

    return show


def _not_reproduced_in_fresh_process(target: str, report: Report) -> list[str]:
    """One line per failure whose token does not reproduce it in a new process; those
    failures leave the report (a token that fails only after earlier runs helps nobody)."""
    lines = []
    for failure in list(report.failures or ([report.failure] if report.failure else [])):
        problem = fresh_replay_problem(target, failure)
        if problem is None:
            continue
        lines.append(f"the failure found in run {failure.run:,} ({failure.message}) does not reproduce in a fresh "
                     f"process: {problem}. The program depends on state kept from one run to the next (in a "
                     f"module it imports, a class attribute, a cache), or on something interleave does not "
                     f"control: reset such state at the start of the function")
        report.failures = [f for f in report.failures if f is not failure]
    if lines:
        report.failure = report.failures[0] if report.failures else None
    return lines


def _output_path(path: str | None, option: str) -> str | None:
    if path is None or path == "-":  # "-": standard output
        return path
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


def _progress_printer() -> Any:
    def show(p: Progress) -> None:
        rate = p.runs / p.elapsed_s if p.elapsed_s else 0
        click.echo(f"\r\033[Kexploring: {p.runs:,} runs, {p.steps:,} steps, {p.elapsed_s:.1f}s ({rate:,.0f} runs/s)",
                   nl=False, err=True)

    return show


def _how(report: Report) -> str:
    """``[portfolio, seed 0, 2 workers]``: what the found failure depends on besides the program."""
    return f"[{report.strategy}, seed {report.seed}, {_n(report.workers, 'worker')}]"


def _print_report(report: Report, full: bool = False) -> None:
    head = f"{report.runs:,} runs, {report.distinct_schedules:,} distinct schedules, {report.elapsed_s:.2f}s " \
           f"{_how(report)}"
    for death in report.worker_deaths:
        click.echo(f"interleave: {death}")
    failure = report.failure
    if failure is None:
        if report.interrupted:
            click.echo(f"interleave: interrupted; no failure in {head}")
        elif report.outcome in _NO_VERDICT:
            click.echo(f"interleave: no verdict in {head}")  # the reason follows on stderr
            return
        elif report.outcome.verdict:
            click.echo(f"interleave: no failure in {head}")
        else:
            return  # uncontrolled or not deterministic: said on stderr
        _print_time_limited(report)
        _print_races(report)
        _print_confidence(report)
        return
    if len(report.failures) > 1:
        click.echo(f"interleave: {len(report.failures)} distinct failures in {head}")
    for number, shown in enumerate(report.failures or [failure]):
        if number:
            click.echo("")
        _print_failure(report, shown, full)


def _color() -> bool:
    """Colours unless ``NO_COLOR`` is set (https://no-color.org); click leaves them out where
    the output is no terminal."""
    return not os.environ.get("NO_COLOR")


def _trace(failure: FailureReport, full: bool) -> str:
    """The failing run's trace as the command prints it: in colour, or whole with ``--full``."""
    recorder = failure.recorder
    if recorder is None or not (full or _color()):
        return failure.trace
    return render(recorder, skip_setup=setup_steps(recorder), full=full, color=_color())


def _print_failure(report: Report, failure: FailureReport, full: bool = False) -> None:
    headline = f"interleave: FAILURE ({failure.kind}) {failure.message}"
    click.echo(click.style(headline, fg="red", bold=True) if _color() else headline)
    if failure.not_shrunk is None:
        click.echo(f"  found in run {failure.run:,} after {failure.elapsed_s:.2f}s {_how(report)}; shrunk from "
                   f"{failure.original_preemptions} preemptions/pauses/faults / {failure.original_steps:,} steps to "
                   f"{_decisions(failure)} / {failure.steps:,} steps "
                   f"({failure.shrink_attempts} replays"
                   f"{'' if failure.minimal else ', shrink time or stall limit reached'})")
    else:
        click.echo(f"  found in run {failure.run:,} after {failure.elapsed_s:.2f}s {_how(report)}; "
                   f"not shrunk ({failure.not_shrunk}): "
                   f"{_decisions(failure)}" + (f" / {failure.steps:,} steps" if failure.replay else ""))
    _print_time_limited(report)
    if failure.trace:
        click.echo("")
        click.echo(_trace(failure, full))
    if failure.kind != "hang":
        click.echo("")
        click.echo(failure.details)
    click.echo("")
    if not failure.replay:
        click.echo(f"No replay token: the failing run was not replayed ({failure.not_shrunk}); "
                   f"explore again with --seed {report.seed} to find it.")
        return
    click.echo("Replay it:")
    click.echo(f"  {_replay_line(report.target, failure.replay)}")


def _replay_line(target: str, token: str | None) -> str | None:
    """The command that replays ``token``, shell-quoted."""
    return f"interleave replay {shlex.quote(target)} {token}" if token else None


def _print_time_limited(report: Report) -> None:
    """Said when the time limit, not the budget of runs or a failure, decided what was run."""
    if not report.time_limited:
        return
    if report.failure is None:
        click.echo("  the time limit ended the search: how many runs fit in it depends on the machine and the "
                   "workers (--runs N repeats on any machine)")
    else:
        click.echo("  the time limit stopped runs that come before this one: with another machine or number of "
                   "workers another failure may come first (--runs N repeats on any machine)")


def _print_races(report: Report) -> None:
    """What the runs checked for data races saw (races off: they are not failures)."""
    seen = report.races
    if not seen:
        return
    runs = f"{seen['runs_checked']:,} run{'s' if seen['runs_checked'] != 1 else ''}"
    if seen["every"] == 1:
        if not seen["seen"]:
            click.echo(f"  no data race in any of the {runs}")
        return  # with races on, a race seen is the failure
    checked = f"in the {runs} checked for them (every {seen['every']}th)"
    if not seen["seen"]:
        click.echo(f"  no data race {checked}")
        return
    click.echo(f"  {seen['seen']} data race{'s' if seen['seen'] != 1 else ''} (pairs of locations) {checked}; "
               "--races reports them as failures, with traces and replay tokens:")
    for place in seen["places"][:5]:
        click.echo(f"    {place}")
    if len(seen["places"]) > 5:
        click.echo(f"    ... {len(seen['places']) - 5} more")


_SWITCH_POINTS = {
    "access": "switch points at every shared access and synchronization of your code",
    "line": "switch points at every line of your code",
    "opcode": "switch points at every bytecode of your code",
}


def _print_confidence(report: Report) -> None:
    covers = _SWITCH_POINTS.get(report.granularity, report.granularity)
    if not report.user_code_ran:
        click.echo("  no code of yours ran with switch points (installed code only, or a function without a "
                   "source file): nothing was explored; --include names installed code to explore")
    elif report.complete:
        click.echo(f"  every schedule of the program was run ({covers}): no schedule fails")
    elif report.exhausted and report.partial_order:
        within = "" if report.bound is None else f" with at most {_n(report.bound, 'preemption')}"
        # Distinct: a split search may run a schedule in two slots (the line above counts runs).
        click.echo(f"  exhausted: every order of conflicting steps{within} was run: "
                   f"{report.distinct_schedules:,} schedules ({covers}), none fails")
    elif report.exhausted and report.bound is not None:
        click.echo(f"  exhausted: every schedule with at most {_n(report.bound, 'preemption')} was run "
                   f"({covers}), none fails")
    elif report.bound is not None and report.bound >= 0:
        click.echo(f"  every schedule with at most {_n(report.bound, 'preemption')} was run ({covers}), none fails")
    for line in Census(report.uninstrumented).summary():
        click.echo(f"  {line}")
    for name, c in report.confidence.items():
        d = name.rsplit("_", 1)[1]
        click.echo(f"  PCT d={d}: each run finds a depth-{d} bug with probability >= 1/(n*k^{int(d) - 1}) = "
                   f"{c['per_run_probability']:.2g} (n={c['threads']}, k={c['steps_k']}); "
                   f"{c['runs_for_99_percent']:,} runs give 99%")


def _decisions(failure: FailureReport) -> str:
    """``1 preemption``, ``1 preemption + 1 pause``, ``1 fault``: what the shrunk schedule needs."""
    return Cost(failure.switches, failure.pauses, failure.faults, failure.draws).words()


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


@cli.command("replay")
@click.argument("target", metavar="PATH[::FUNC]")
@click.argument("token")
@click.option("--html", "html_path", type=click.Path(),
              help="Write the run's timeline here (one self-contained HTML file).")
@click.option("--full", is_flag=True,
              help="Print the whole trace: every step, nothing folded or left out (a long one is cut at "
                   f"{TRACE_LIMIT} lines).")
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
    changed = ", ".join(outcome.changed)
    against = f" (with {changed} changed since the token was made)" if changed else ""
    if changed:
        click.echo(f"interleave: changed since the token was made: {changed}; replaying the program as it is now")
    click.echo(render(outcome.recorder, skip_setup=setup_steps(outcome.recorder), full=full, color=_color())
               if full or _color() else outcome.trace)
    if html_path:
        _write(html_path, render_html(outcome.recorder, title=target, token=token, command=_replay_line(target, token)))
    if outcome.failure is None:
        click.echo(f"interleave: the schedule ran without failing ({outcome.steps:,} steps){against}")
        sys.exit(EXIT_OK)
    if outcome.failure.kind != "hang":
        click.echo("")
        click.echo(outcome.failure.details)
    click.echo(f"interleave: reproduced ({outcome.failure.kind}) {outcome.failure.message}{against}")
    sys.exit(EXIT_FAILURE)


#: What click 8.2 and later raise for a command given no arguments (it shows the help).
_NO_ARGS: type[click.UsageError] | tuple[()] = getattr(click.exceptions, "NoArgsIsHelpError", ())


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
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(status if isinstance(status, int) else EXIT_OK)
