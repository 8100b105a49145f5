"""pytest plugin: ``@pytest.mark.interleave`` runs a test under many thread schedules.

Every schedule calls the test function again under the scheduler, with its
function-scoped fixtures set up afresh inside that run (so locks they create are
controlled ones and no state leaks from one schedule to the next). A failure is shown
with its kind, the shrunk trace and the lines that replay it; failing schedules are kept
under ``<rootdir>/.interleave/pytest/`` and replayed first the next time.

Registered through the ``pytest11`` entry point. This module imports only pytest,
the standard library and the settings table; the engine modules it uses are imported when a marked test runs
(the package's ``__init__`` imports the engine, which patches nothing), and nothing is
patched outside a run.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import os
import shlex
import shutil
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import pytest

from .settings import BY_NAME, OPTIONS, Exploration, NotAvailable, Option, explore_arguments

if TYPE_CHECKING:
    from .explore import Report

MARKER = "interleave"
DEFAULT_RUNS = 1000
#: With ``@given``, the budget is per generated input, so it is smaller by default.
DEFAULT_RUNS_PER_INPUT = 100
#: The plugin's own defaults where they differ from the CLI's (a test runs in one process).
PYTEST_DEFAULTS = {"workers": 1}
#: Kept failing schedules per test; the oldest go first.
KEEP_PER_TEST = 8
MARKER_ARGUMENTS = (*(option.name for option in OPTIONS), "replay")
NOTE = "interleave-note"
STATS = "interleave-stats"


class InterleaveHealthWarning(pytest.PytestWarning):
    """A marked test that interleave had nothing to explore in (no thread, or no step of your code)."""


# ---------------------------------------------------------------- options


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("interleave", "interleave: explore thread schedules of @pytest.mark.interleave tests")
    for option in OPTIONS:
        if option.kind is bool:
            group.addoption(option.pytest_flag, action="store_true", default=None, help=option.help)
        elif option.kind is list:
            group.addoption(option.pytest_flag, action="append", metavar=option.metavar, help=option.help)
        else:
            group.addoption(option.pytest_flag, metavar=option.metavar or option.name.upper(), help=option.help)
    group.addoption("--interleave-replay", metavar="TOKEN",
                    help="run exactly this failing schedule (from a failure report) instead of exploring")
    group.addoption("--interleave-stats", action="store_true",
                    help="after the tests, show what was explored for each marked test that passed")
    for option in OPTIONS:
        parser.addini(option.ini, option.help, type=_ini_type(option), default=None)


def _ini_type(option: Option) -> str:
    """Typed where pytest can (8.4 and later), so that TOML's native values work in ``[tool.pytest]``."""
    typed = {int: "int", float: "float", bool: "bool", list: "linelist", "workers": "int"}.get(option.kind, "string")
    if typed in ("int", "float") and pytest.version_tuple < (8, 4):
        return "string"
    return typed


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"interleave({', '.join(f'{name}=None' for name in MARKER_ARGUMENTS)}): "
        "run the test under many thread schedules and report a failing one (interleave)",
    )
    from .explore import explore

    for option in OPTIONS:
        given = ((option.pytest_flag, _from_command_line(config, option)),
                 (f"ini option {option.ini}", _ini(config, option)))
        for where, value in given:
            if value is not None and value != option.default:
                try:
                    explore_arguments(replace(Exploration(), **{option.name: value}), explore)
                except NotAvailable:
                    raise pytest.UsageError(f"{where}: {option.name} is not available yet") from None
    token = config.getoption("interleave_replay")
    if token:
        from .schedule import BadToken, Token

        try:
            Token.decode(token)
        except BadToken as exc:
            raise pytest.UsageError(f"--interleave-replay: {exc}") from None


def pytest_report_header(config: pytest.Config) -> str:
    seed = _first(_from_command_line(config, BY_NAME["seed"]), _ini(config, BY_NAME["seed"]), BY_NAME["seed"].default)
    strategy = _first(_from_command_line(config, BY_NAME["strategy"]), _ini(config, BY_NAME["strategy"]),
                      BY_NAME["strategy"].default)
    return f"interleave: seed {seed}, strategy {strategy}, failing schedules kept in .interleave/pytest/"


def _from_command_line(config: pytest.Config, option: Option) -> Any:
    """The option's value from pytest's command line, checked; None when not given."""
    value = config.getoption(option.pytest_flag.lstrip("-").replace("-", "_"))
    if value is None:
        return None
    try:
        return option.parse(value) if isinstance(value, str) else option.check(value)
    except ValueError as exc:
        raise pytest.UsageError(f"{option.pytest_flag}: {exc}") from None


def _ini(config: pytest.Config, option: Option) -> Any:
    """The option's value from the configuration file, checked; None when not set there."""
    value = config.getini(option.ini)
    if value is None or value == "" or value == []:
        return None
    try:
        return option.parse(value) if isinstance(value, str) else option.check(value)
    except ValueError as exc:
        raise pytest.UsageError(f"ini option {option.ini}: {exc}") from None


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


@dataclass(frozen=True)
class Budget:
    """What one test is explored with: command line, then marker, then ini, then defaults."""

    settings: Exploration
    replay: str | None


class BadMarker(Exception):
    """The marker's arguments cannot be used; the message is one line."""


def budget_for(item: pytest.Item, per_input: bool) -> Budget:
    marker = item.get_closest_marker(MARKER)
    assert marker is not None
    if marker.args:
        raise BadMarker("@pytest.mark.interleave takes keyword arguments only "
                        f"({', '.join(MARKER_ARGUMENTS)})")
    unknown = sorted(set(marker.kwargs) - set(MARKER_ARGUMENTS))
    if unknown:
        raise BadMarker(f"@pytest.mark.interleave got unknown argument {unknown[0]!r} "
                        f"(expected {', '.join(MARKER_ARGUMENTS)})")
    mark = marker.kwargs
    replay = mark.get("replay")
    if replay is not None and not isinstance(replay, str):
        raise BadMarker(f"@pytest.mark.interleave replay={replay!r}: expected a string")
    config = item.config

    def pick(option: Option) -> Any:
        value = _first(_from_command_line(config, option), _marker_value(mark, option), _ini(config, option))
        return PYTEST_DEFAULTS.get(option.name) if value is None else value

    settings = Exploration.pick(pick)
    if settings.runs is None and settings.time_limit is None:
        settings = replace(settings, runs=DEFAULT_RUNS_PER_INPUT if per_input else DEFAULT_RUNS)
    from .explore import explore

    try:
        explore_arguments(settings, explore)
    except NotAvailable as exc:
        raise BadMarker(f"@pytest.mark.interleave {exc.option.name}=: {exc}") from None
    return Budget(settings=settings, replay=_first(config.getoption("interleave_replay"), replay))


def _marker_value(mark: dict[str, Any], option: Option) -> Any:
    value = mark.get(option.name)
    if value is None:
        return None
    try:
        return option.check(value)
    except ValueError as exc:
        raise BadMarker(f"@pytest.mark.interleave {option.name}={value!r}: {exc}") from None


# ---------------------------------------------------------------- hooks


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """For ``@given`` tests: one input now runs a whole exploration, and fixtures are fresh per schedule."""
    if item.get_closest_marker(MARKER) is None or not _is_hypothesis_test(getattr(item, "obj", None)):
        return
    from hypothesis import HealthCheck, settings

    function = getattr(item.obj, "__func__", item.obj)
    current = getattr(function, "_hypothesis_internal_use_settings", None) or settings.default
    function._hypothesis_internal_use_settings = settings(
        parent=current,
        deadline=None,
        suppress_health_check=set(current.suppress_health_check) | {HealthCheck.function_scoped_fixture},
    )


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if pyfuncitem.get_closest_marker(MARKER) is None:
        return None
    hypothesis_test = _is_hypothesis_test(pyfuncitem.obj)
    try:
        budget = budget_for(pyfuncitem, per_input=hypothesis_test)
    except BadMarker as exc:
        pytest.fail(f"{pyfuncitem.nodeid}: {exc}", pytrace=False)
    session = TestExploration(pyfuncitem, budget)
    if hypothesis_test:
        session.run_hypothesis_test()
    else:
        session.run_plain_test()
    return True


def pytest_terminal_summary(terminalreporter: Any) -> None:
    notes = []
    for reports in terminalreporter.stats.values():
        for report in reports:
            for name, value in getattr(report, "user_properties", ()):
                if name == NOTE and value not in notes:
                    notes.append(value)
    if notes:
        terminalreporter.section("interleave notes")
        for note in notes:
            terminalreporter.write_line(note)
    stats = []
    for reports in terminalreporter.stats.values():
        for report in reports:
            for name, value in getattr(report, "user_properties", ()):
                if name == STATS and value not in stats:  # each phase's report carries the test's properties
                    stats.append(value)
    if terminalreporter.config.getoption("interleave_stats"):
        terminalreporter.section("interleave statistics")
        for line in stats or ["no marked test passed after exploring"]:
            terminalreporter.write_line(line)


@functools.cache
def _test_body_type() -> type:
    """The engine's Program for a marked test, made on first use (the engine loads lazily)."""
    from .program import Program

    class TestBody(Program):
        prepare: Callable[[], Callable[[], Any]]

        def entry(self, instrumented: bool = False) -> Callable[[], Any]:
            """Inside the run, before the body: what happens first in every schedule.

            The test's module (and the code under test) is instrumented by the runner."""
            return self.prepare()

    return TestBody


#: Strategies whose first run is the default order (no deviation from it).
FIRST_RUN_IN_DEFAULT_ORDER = ("portfolio", "dfs")


def _default_order(token: str) -> bool:
    from .schedule import Token

    return not Token.decode(token).deviations


def _is_hypothesis_test(function: Any) -> bool:
    return bool(getattr(function, "is_hypothesis_test", False)) and hasattr(function, "hypothesis")


# ---------------------------------------------------------------- one test


class TestExploration:
    """Explores (or replays) the schedules of one marked test."""

    __test__ = False  # not a test class, whatever pytest's name patterns say

    def __init__(self, item: pytest.Function, budget: Budget) -> None:
        self.item = item
        self.budget = budget
        self.fixtures = FreshFixtures(item)
        self.kept = KeptFailures(Path(str(item.config.rootpath)), self.note)
        self.coverage = CoverageBridge.if_measuring()
        self.outcome: BaseException | None = None  # a skip or xfail raised by the body
        self.health = Health()
        self.passed: list[Report] = []  # explorations without a failure, for --interleave-stats
        self._fingerprint = self.fingerprint()

    # -- the program the engine runs

    def program(self, call: Callable[[dict[str, Any]], Any]) -> Any:
        """The engine's view of the test: in each run, fresh fixtures, then ``call(funcargs)``."""

        def prepare() -> Callable[[], Any]:
            if self.coverage is not None:
                self.coverage.start_run()
            funcargs = self.fixtures.renew()
            return lambda: self._guarded(call, funcargs)

        body = _test_body_type()(display=self.item.nodeid, func_name=self.item.originalname,
                                 fingerprint=self._fingerprint, fingerprinted=str(self.item.path),
                                 shared=tuple(self.fixtures.shared_values()))
        body.prepare = prepare
        return body

    def _guarded(self, call: Callable[[dict[str, Any]], Any], funcargs: dict[str, Any]) -> None:
        try:
            call(funcargs)
        except (pytest.skip.Exception, pytest.xfail.Exception) as exc:
            # Not a failure of the schedule: pytest reports it once exploring is done.
            self.outcome = exc
        finally:
            self.health.observe()

    def fingerprint(self) -> str:
        """Changes when the test's body changes, so schedules of an old version are dropped.

        Decorators are left out: pinning a token with ``@pytest.mark.interleave(replay=...)``
        must not change the test it was made for.
        """
        function = self.item.function
        if _is_hypothesis_test(function):
            function = function.hypothesis.inner_test
        try:
            lines = inspect.getsource(function).splitlines()
        except (OSError, TypeError):
            lines = [self.item.name]
        body = next((i for i, line in enumerate(lines) if line.lstrip().startswith(("def ", "async def "))), 0)
        source = "\n".join(lines[body:])
        return hashlib.sha256(f"{self.item.nodeid}\0{source}".encode()).hexdigest()[:8]

    # -- plain tests

    def run_plain_test(self) -> None:
        test = self.item.obj
        argnames = self.item._fixtureinfo.argnames
        program = self.program(lambda funcargs: test(**{name: funcargs[name] for name in argnames}))
        self.fixtures.release_outside_run()
        try:
            self._replay_then_explore(program)
        finally:
            if self.coverage is not None:
                self.coverage.merge()
        if self.outcome is not None:
            raise self.outcome
        self.passing()

    def passing(self) -> None:
        """The test passed: warn if there was nothing to explore; keep its statistics if asked to."""
        for warning in self.health.warnings(self.item.nodeid):
            self.item.warn(InterleaveHealthWarning(warning))
        if self.passed and self.item.config.getoption("interleave_stats"):
            self.item.user_properties.append((STATS, stats_line(self.item.nodeid, self.passed)))

    def _replay_then_explore(self, program: Any) -> None:
        budget = self.budget
        if budget.replay is not None:
            if self._replay(program, budget.replay, "the replay token"):
                return
        else:
            for path, token in self.kept.tokens(self.item.nodeid):
                self._replay(program, token, f"the kept failure {self.kept.display(path)}", kept=path)
        self._check_report(self._explore(program))

    def _explore(self, program: Any, shrink: bool = True) -> Report:
        from .explore import NondeterministicProgram, explore
        from .program import BadInput

        arguments = explore_arguments(self.budget.settings, explore)
        if not shrink:
            arguments["shrink_time"] = 0.0
        try:
            return explore(program, **arguments)
        except (BadInput, NondeterministicProgram) as exc:
            pytest.fail(f"interleave: {exc}", pytrace=False)

    def _replay(self, program: Any, token: str, what: str, kept: Path | None = None) -> bool:
        """Run one schedule; fail the test if it fails. False (with a note) if it does not fit."""
        from .explore import replay
        from .program import BadInput

        try:
            outcome = replay(program, token)
        except BadInput as exc:
            if kept is not None:
                self.kept.drop(kept)
            self.note(f"{what} no longer fits and was dropped; the test was explored instead ({exc})")
            return False
        changed = f" (with {', '.join(outcome.changed)} changed since it was made)" if outcome.changed else ""
        if outcome.failure is None:
            if kept is None:
                self.note(f"{what} ran without failing ({outcome.steps:,} steps){changed}")
            return True
        failure = outcome.failure
        head = f"replayed {what}: {outcome.preemptions} preemption(s), {outcome.steps:,} steps{changed}"
        self.kept.keep(self.item.nodeid, token)
        pytest.fail(self.failure_text(failure.kind, failure.message, head, outcome.trace, failure.details, token),
                    pytrace=False)

    def _check_report(self, report: Report) -> None:
        if report.interrupted:
            raise KeyboardInterrupt
        if report.uncontrolled is not None:
            pytest.fail(f"interleave cannot explore this test: it used {report.uncontrolled}", pytrace=False)
        if report.nondeterministic is not None:
            pytest.fail(f"interleave: {report.nondeterministic}", pytrace=False)
        failure = report.failure
        if failure is None:
            self.passed.append(report)
            return
        if failure.run > 1 and report.strategy in FIRST_RUN_IN_DEFAULT_ORDER and _default_order(failure.replay):
            pytest.fail(
                f"interleave: the test does not repeat itself: its first run, in the default order, passed, and "
                f"run {failure.run:,}, in that same order, failed ({failure.message}). Something keeps state from "
                f"one call of the test to the next (a module global, a class attribute, a cache): reset it at the "
                f"start of the test or in a function-scoped fixture.", pytrace=False)
        if not _is_hypothesis_test(self.item.obj):
            self.kept.keep(self.item.nodeid, failure.replay)
        head = (f"found in run {failure.run:,} after {failure.elapsed_s:.2f}s [{report.strategy}, seed {report.seed}]; "
                f"shrunk to {failure.preemptions} preemption(s), {failure.steps:,} steps")
        pytest.fail(self.failure_text(failure.kind, failure.message, head, failure.trace, failure.details,
                                      failure.replay), pytrace=False)

    def failure_text(self, kind: str, message: str, head: str, trace: str, details: str, token: str) -> str:
        lines = [f"interleave: FAILURE ({kind}) {message}", f"  {head}", "", trace]
        if kind != "hang" and details:
            lines += ["", details]
        lines += ["", "Replay it:", f"  {replay_command(self.item, token)}",
                  "or pin it in the test (on the marker's line, so no line moves):",
                  f'  @pytest.mark.interleave(replay="{token}")']
        if _is_hypothesis_test(self.item.obj):
            lines.append("(Hypothesis replays the falsifying input first; "
                         "the schedule is replayed for each input it fits)")
        return "\n".join(lines)

    def note(self, text: str) -> None:
        self.item.user_properties.append((NOTE, f"{self.item.nodeid}: {text}"))

    # -- Hypothesis: every generated input is explored

    def run_hypothesis_test(self) -> None:
        handle = self.item.obj.hypothesis
        inner = handle.inner_test
        fixture_names = set(self.item._fixtureinfo.argnames)
        self.fixtures.release_outside_run()

        def explore_input(*args: Any, **kwargs: Any) -> None:
            fixture_args = fixture_names & set(kwargs)

            def call(funcargs: dict[str, Any]) -> None:
                inner(*args, **{k: funcargs[k] if k in fixture_args else v for k, v in kwargs.items()})

            self._explore_input(self.program(call))

        handle.inner_test = functools.wraps(inner)(explore_input)  # Hypothesis names the input by it
        failed_with = None
        try:
            test = self.item.obj
            test(**{name: self.item.funcargs[name] for name in self.item._fixtureinfo.argnames})
        except pytest.fail.Exception as exc:
            # Hypothesis attaches the falsifying input as notes, which a pytrace=False failure hides.
            notes = getattr(exc, "__notes__", None)
            if not notes:
                raise
            headline, _, rest = exc.msg.partition("\n")  # the headline stays first, for -r's summary
            failed_with = "\n".join([headline, "", *notes, rest])
        finally:
            handle.inner_test = inner
            if self.coverage is not None:
                self.coverage.merge()
        if failed_with is not None:
            pytest.fail(failed_with, pytrace=False)
        if self.outcome is not None:
            raise self.outcome
        self.passing()

    def _explore_input(self, program: Any) -> None:
        from hypothesis.control import current_build_context

        from .explore import replay
        from .program import BadInput

        budget = self.budget
        if budget.replay is not None:
            try:
                outcome = replay(program, budget.replay)
            except BadInput:
                return  # the schedule does not fit this input: nothing to replay for it
            if outcome.failure is not None:
                failure = outcome.failure
                pytest.fail(self.failure_text(failure.kind, failure.message, "replayed the replay token",
                                              outcome.trace, failure.details, budget.replay), pytrace=False)
            return
        # Hypothesis calls again with the minimal input (is_final): only then is the schedule shrunk.
        final = current_build_context().is_final
        self._check_report(self._explore(program, shrink=final))


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


class Health:
    """What the runs of one test did, for its health warnings: threads started, and their steps."""

    def __init__(self) -> None:
        self.runs = 0
        self.threads = 0  # most threads a run started besides the test's own
        self.thread_steps = 0  # most steps those threads took in one run

    def observe(self) -> None:
        """At the end of the test body, inside a run."""
        from .scheduler import active

        sched = active()
        if sched is None:
            return
        started = sched.threads[1:]  # the first is the test's own thread
        self.runs += 1
        self.threads = max(self.threads, len(started))
        # Steps in the program's own code (with lines as the steps, every step is one).
        steps = [vt.user_steps if sched.accesses else vt.steps for vt in started]
        self.thread_steps = max(self.thread_steps, sum(steps))

    def warnings(self, nodeid: str) -> list[str]:
        if not self.runs:
            return []  # the runs happened in worker processes
        if not self.threads:
            return [f"{nodeid} started no thread in its runs, so there was nothing to interleave "
                    f"(threads started at import or by a fixture wider than the function are not explored)"]
        if not self.thread_steps:
            return [f"{nodeid}: the threads it started ran no line of your code (installed packages and the "
                    f"standard library run without switch points), so no interleaving of your code was explored"]
        return []


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
    bounds = [r.bound for r in reports]
    if all(b is not None and b >= 0 for b in bounds):
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


# ---------------------------------------------------------------- fixtures


class FreshFixtures:
    """Tears down the test's function-scoped fixtures and sets them up again, once per schedule.

    The first setup (pytest's own, before the test is called) happens outside any run and
    is released before exploring; every run then makes its own inside the run, so locks
    and threads a fixture creates are controlled. The last run's fixtures are torn down by
    pytest as usual. Fixtures of wider scope are shared, as pytest always shares them.
    """

    def __init__(self, item: pytest.Function) -> None:
        self.item = item
        self._stash: dict[Any, Any] = {}

    @property
    def _stash_storage(self) -> dict[Any, Any]:
        return getattr(self.item.stash, "_storage", {})

    def _function_scoped(self) -> list[Any]:
        info = self.item._fixtureinfo
        found = []
        for name in info.names_closure:
            for fixturedef in info.name2fixturedefs.get(name, ()):
                if fixturedef.scope == "function" and fixturedef not in found:
                    found.append(fixturedef)
        return found

    def shared_values(self) -> list[Any]:
        """The values of the test's fixtures of wider scope (made outside any run)."""
        info = self.item._fixtureinfo
        values = []
        for name in info.names_closure:
            fixturedefs = info.name2fixturedefs.get(name, ())
            if fixturedefs and fixturedefs[-1].scope != "function" and fixturedefs[-1].cached_result is not None:
                values.append(fixturedefs[-1].cached_result[0])
        return values

    def release_outside_run(self) -> None:
        # Some teardowns consume what pytest's setup left in the item's stash (tmp_path
        # deletes its entry); each schedule's teardown must find it again.
        self._stash = dict(self._stash_storage)
        self._teardown()

    def renew(self) -> dict[str, Any]:
        """Inside a run: tear down the previous schedule's fixtures, set up new ones, return them."""
        self._teardown()
        self.item._initrequest()
        self.item._request._fillfixtures()
        return self.item.funcargs

    def _teardown(self) -> None:
        for key, value in self._stash.items():
            self._stash_storage.setdefault(key, value)
        # Reverse setup order; finishing a fixture first finishes those that depend on it.
        for fixturedef in reversed(self._function_scoped()):
            if fixturedef.cached_result is not None:
                fixturedef.finish(request=self.item._request)


# ---------------------------------------------------------------- kept failures


class KeptFailures:
    """Failing schedules of each test, one file per token, under ``.interleave/pytest/``.

    One directory per test (named by a hash of its node id) so that xdist workers never
    write the same file; each write is a rename, so a reader never sees half a token.

    The store never decides a test's outcome: an entry that cannot be read, or is not a
    token this interleave reads, is dropped with a note; a symbolic link anywhere in the
    store (a directory or an entry) is never followed, for reading or writing; and a store
    that cannot be written (a read-only checkout) only means the failure is not kept.
    """

    def __init__(self, rootdir: Path, note: Callable[[str], None] = lambda text: None) -> None:
        self.base = rootdir / ".interleave"
        self.root = self.base / "pytest"
        self.rootdir = rootdir
        self.note = note

    def _dir(self, nodeid: str) -> Path:
        return self.root / hashlib.sha256(nodeid.encode()).hexdigest()[:16]

    def _linked(self, directory: Path) -> bool:
        """True (with a note) when a directory of the store is a symbolic link: not followed."""
        for path in (self.base, self.root, directory):
            if path.is_symlink():
                self.note(f"{self.display(path)} is a symbolic link: interleave does not follow it, "
                          f"so no failing schedule is read from it or kept in it")
                return True
        return False

    def tokens(self, nodeid: str) -> list[tuple[Path, str]]:
        """The test's kept tokens, oldest first; unusable entries are dropped with a note."""
        from .schedule import BadToken, Token

        directory = self._dir(nodeid)
        if self._linked(directory) or not directory.is_dir():
            return []
        try:
            entries = [p for p in directory.iterdir() if p.name.endswith(".token")]
        except OSError as exc:
            self.note(f"the kept failures in {self.display(directory)} cannot be listed ({exc.strerror or exc})")
            return []
        found = []
        for path in entries:
            what = f"the kept failure {self.display(path)}"
            if path.is_symlink():
                self.note(f"{what} is a symbolic link: interleave does not follow it; {self._drop_saying(path)}")
                continue
            try:
                text, mtime = _read_no_follow(path)
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not text"
                self.note(f"{what} cannot be read ({reason}); {self._drop_saying(path)}")
                continue
            try:
                Token.decode(text.strip())
            except BadToken as exc:
                self.note(f"{what} is not a replay token this interleave reads ({exc}); {self._drop_saying(path)}")
                continue
            found.append((mtime, path, text.strip()))
        return [(path, token) for _, path, token in sorted(found, key=lambda entry: entry[0])]

    def keep(self, nodeid: str, token: str) -> None:
        directory = self._dir(nodeid)
        if self._linked(directory):
            return
        try:
            directory.mkdir(parents=True, exist_ok=True)
            if not os.path.lexists(self.base / ".gitignore"):
                _write_no_follow(self.base / ".gitignore", "# interleave's kept failing schedules (pytest plugin)\n*\n")
            _write_no_follow(directory / "nodeid", nodeid + "\n")  # for people looking in
            path = directory / (hashlib.sha256(token.encode()).hexdigest()[:16] + ".token")
            _write_no_follow(path, token + "\n")  # newest: an old failure found again moves to the back
            for old, _ in self.tokens(nodeid)[:-KEEP_PER_TEST]:
                self.drop(old)
        except OSError as exc:
            # A read-only checkout still reports the failure; it just is not kept.
            self.note(f"the failing schedule was not kept under {self.display(self.root)} ({exc.strerror or exc})")

    def drop(self, path: Path) -> bool:
        """Remove an entry; False when the store cannot be written (it is passed over again next time)."""
        try:
            path.unlink(missing_ok=True)
        except OSError:
            return False
        return True

    def _drop_saying(self, path: Path) -> str:
        return "it was dropped" if self.drop(path) else "it was passed over (the store cannot be written)"

    def display(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.rootdir))
        except ValueError:
            return str(path)


def _read_no_follow(path: Path) -> tuple[str, float]:
    """A kept entry's text and modification time, refusing a symbolic link put in its place."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as f:
        return f.read(4096).decode("utf-8"), os.fstat(f.fileno()).st_mtime


def _write_no_follow(path: Path, text: str) -> None:
    """Write through a new file renamed into place: a symbolic link at ``path`` is replaced, never followed."""
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o644)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(temporary, path)


# ---------------------------------------------------------------- coverage


class CoverageBridge:
    """Keeps line (and branch) coverage of code run under interleave.

    coverage.py measures through a ``sys.settrace`` tracer (its default before Python
    3.14) that cannot follow interleave's threads: on 3.11 a run replaces it with
    interleave's own tracer, so it sees nothing; on 3.12 and later interleave uses
    ``sys.monitoring`` and coverage's tracer would stay on, mixing up the lines of
    threads that switch in mid-function. So for the length of each run the bridge takes
    coverage's place: it records the lines (or arcs, in branch mode) of the user's code
    that the run executes, per frame, and after the test adds them to the active
    ``coverage.Coverage``'s data, for the files coverage already measures. Files coverage
    has not seen outside the runs (a module first imported inside the test body) are not
    added. Coverage through ``sys.monitoring`` (``COVERAGE_CORE=sysmon``) needs none of
    this: it is left alone.
    """

    def __init__(self, coverage: Any, outside_tracer: Any) -> None:
        self.coverage = coverage
        self.outside_tracer = outside_tracer
        self.arcs = bool(coverage.get_option("run:branch"))
        self.seen: dict[str, set[Any]] = {}
        self._suspended: dict[Any, int] = {}  # generator frame -> its last line when it yielded
        self._recording_only: Callable[..., Any] | None = None

    @classmethod
    def if_measuring(cls) -> CoverageBridge | None:
        """A bridge when coverage.py measures this thread through ``sys.settrace``, else None."""
        tracer = sys.gettrace()
        if tracer is None or "coverage" not in sys.modules:
            return None
        coverage = sys.modules["coverage"].Coverage.current()
        return cls(coverage, tracer) if coverage is not None else None

    def start_run(self) -> None:
        """Inside a run, before the test is called: record in place of coverage's tracer."""
        self._suspended.clear()
        current = sys.gettrace()
        if current is self.outside_tracer or current is self._recording_only:
            # The run left sys.settrace alone (it steps through sys.monitoring): take
            # coverage's place ourselves until the test is over (see :meth:`merge`).
            sys.settrace(self._recorder())
            return
        record = self._frame_recorder

        def on_call(frame: Any, event: str, arg: Any) -> Any:
            local = current(frame, event, arg)
            return None if local is None else record(frame, local)

        sys.settrace(on_call)  # the run puts its own tracer's predecessor back when it ends

    def _recorder(self) -> Callable[..., Any]:
        if self._recording_only is None:
            from .files import is_user_file

            record = self._frame_recorder

            def on_call(frame: Any, event: str, arg: Any) -> Any:
                return record(frame, None) if is_user_file(frame.f_code.co_filename) else None

            self._recording_only = on_call
        return self._recording_only

    def _frame_recorder(self, frame: Any, engine_local: Callable[..., Any] | None) -> Callable[..., Any]:
        code = frame.f_code
        seen = self.seen.setdefault(code.co_filename, set())
        entry = -code.co_firstlineno  # coverage.py's convention for "entering the code object"
        suspendable = bool(code.co_flags & _GENERATOR_FLAGS)
        last = self._suspended.pop(frame, entry) if suspendable else entry
        arcs = self.arcs

        def local(frame: Any, event: str, arg: Any) -> Any:
            nonlocal last
            if event == "line":
                lineno = frame.f_lineno
                seen.add((last, lineno) if arcs else lineno)
                last = lineno
            elif event == "return":
                if suspendable:
                    self._suspended[frame] = last  # it may be resumed: continue from this line
                elif arcs:
                    seen.add((last, entry))
            if engine_local is not None:
                engine_local(frame, event, arg)  # may switch to another thread; comes back here later
            return local

        return local

    def merge(self) -> None:
        """After the test, outside the runs: coverage's tracer back, and what the runs executed added."""
        if sys.gettrace() is self._recording_only:
            sys.settrace(self.outside_tracer)
        self._suspended.clear()
        if not self.seen:
            return
        data = self.coverage.get_data()
        measured = {_canonical(f): f for f in data.measured_files()}
        chosen = {measured[_canonical(f)]: items for f, items in self.seen.items() if _canonical(f) in measured}
        if chosen:
            if self.arcs:
                data.add_arcs(chosen)
            else:
                data.add_lines(chosen)
        self.seen = {}


_GENERATOR_FLAGS = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR


def _canonical(filename: str) -> str:
    return os.path.normcase(os.path.realpath(filename))
