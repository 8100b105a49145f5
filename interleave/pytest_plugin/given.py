"""Hypothesis's ``@given`` tests: every generated input is explored, the minimal one shrunk.

Hypothesis is imported only when such a test runs: the plugin's import must not load it.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest

from ..explore import replay
from ..program import BadInput
from .exploration import TestExploration


def relax_settings(test: Any) -> None:
    """Before the test: one input now runs a whole exploration (no deadline), and its
    function-scoped fixtures are made afresh for every schedule (no health check against them)."""
    from hypothesis import HealthCheck, settings

    function = getattr(test, "__func__", test)
    current: Any = getattr(function, "_hypothesis_internal_use_settings", None) or settings.default
    function._hypothesis_internal_use_settings = settings(
        parent=current,
        deadline=None,
        suppress_health_check=set(current.suppress_health_check) | {HealthCheck.function_scoped_fixture},
    )


def run_given_test(session: TestExploration) -> None:
    """Hypothesis calls the test's body once per input; each call explores (or replays) that input."""
    item = session.item
    handle = item.obj.hypothesis
    inner = handle.inner_test
    fixture_names = set(item._fixtureinfo.argnames)
    session.fixtures.release_outside_run()

    def explore_input(*args: Any, **kwargs: Any) -> None:
        fixture_args = fixture_names & set(kwargs)

        def call(funcargs: dict[str, Any]) -> None:
            inner(*args, **{k: funcargs[k] if k in fixture_args else v for k, v in kwargs.items()})

        _explore_input(session, session.program(call))

    handle.inner_test = functools.wraps(inner)(explore_input)  # Hypothesis names the input by it
    failed_with = None
    try:
        item.obj(**{name: item.funcargs[name] for name in item._fixtureinfo.argnames})
    except pytest.fail.Exception as exc:
        # Hypothesis attaches the falsifying input as notes, which a pytrace=False failure hides.
        notes = getattr(exc, "__notes__", None)
        if not notes:
            raise
        headline, _, rest = (exc.msg or "").partition("\n")  # the headline stays first, for -r's summary
        failed_with = "\n".join([headline, "", *notes, rest])
    finally:
        handle.inner_test = inner
        session.merge_coverage()
    if failed_with is not None:
        pytest.fail(failed_with, pytrace=False)
    session.finish()


def _explore_input(session: TestExploration, program: Any) -> None:
    from hypothesis.control import current_build_context

    token = session.budget.replay
    if token is not None:
        try:
            outcome = replay(program, token)
        except BadInput:
            return  # the schedule does not fit this input: nothing to replay for it
        if outcome.failure is not None:
            failure = outcome.failure
            session.fail(failure.kind, failure.message, "replayed the replay token", outcome.trace, failure.details,
                         token)
        return
    # Hypothesis calls again with the minimal input (is_final): only then is the schedule shrunk.
    final = current_build_context().is_final
    session.check_report(session.explore(program, shrink=final))
