"""pytest plugin: ``@pytest.mark.interleave`` runs a test under many thread schedules.

Every schedule calls the test function again under the scheduler, with its
function-scoped fixtures set up afresh inside that run (so locks they create are
controlled ones and no state leaks from one schedule to the next). A failure is shown
with its kind, the shrunk trace and the lines that replay it; failing schedules are kept
under ``<rootdir>/.interleave/pytest/`` and replayed first the next time.

Registered through the ``pytest11`` entry point. This module is the hooks only; each
job is a module of its own:

* :mod:`.options`: the settings from pytest's command line, the marker and ini (through
  :mod:`interleave.settings`);
* :mod:`.exploration`: one marked test run under the engine (``explore``, ``replay``);
  :mod:`.body` is the test as the engine's program, :mod:`.fixtures` its fresh fixtures;
* :mod:`.given`: Hypothesis's ``@given`` tests;
* :mod:`.store`: the failing schedules kept between sessions;
* :mod:`.reporting`: failure messages, replay lines, notes and ``--interleave-stats``;
* :mod:`.health`: warnings for a test with nothing to interleave;
* :mod:`.coverage_bridge`: coverage.py's measurement of the code run under interleave.

Importing it loads the engine, which patches nothing: patching is the engine's
(:mod:`interleave.patching`), for the length of each run only. Hypothesis is imported
only when a ``@given`` test runs.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from . import options, reporting
from .body import is_hypothesis_test
from .exploration import TestExploration
from .given import relax_settings, run_given_test
from .health import InterleaveHealthWarning
from .options import DEFAULT_RUNS, DEFAULT_RUNS_PER_INPUT, MARKER, PYTEST_DEFAULTS, BadMarker, budget_for

__all__ = ["DEFAULT_RUNS", "DEFAULT_RUNS_PER_INPUT", "PYTEST_DEFAULTS", "InterleaveHealthWarning"]


def pytest_addoption(parser: pytest.Parser) -> None:
    options.add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", options.marker_line())
    options.check_configuration(config)


def pytest_report_header(config: pytest.Config) -> str:
    settings = options.configured(config)
    return (f"interleave: seed {settings.seed}, strategy {settings.strategy}, "
            "failing schedules kept in .interleave/pytest/")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """For ``@given`` tests: one input now runs a whole exploration, and fixtures are fresh per schedule."""
    if item.get_closest_marker(MARKER) is None:
        return
    test = getattr(item, "obj", None)
    if is_hypothesis_test(test):
        relax_settings(test)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if pyfuncitem.get_closest_marker(MARKER) is None:
        return None
    try:
        budget = budget_for(pyfuncitem, per_input=is_hypothesis_test(pyfuncitem.obj))
    except BadMarker as exc:
        pytest.fail(f"{pyfuncitem.nodeid}: {exc}", pytrace=False)
    session = TestExploration(pyfuncitem, budget)
    if session.per_input:
        run_given_test(session)
    else:
        session.run_plain_test()
    return True


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    if item.get_closest_marker(MARKER) is not None and call.excinfo is not None:
        reporting.one_line_summary(outcome.get_result())


def pytest_terminal_summary(terminalreporter: Any) -> None:
    reporting.terminal_summary(terminalreporter)
