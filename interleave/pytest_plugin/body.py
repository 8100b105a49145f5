"""The engine's view of a marked test: a :class:`~interleave.program.Program` whose body
is the test function, called with fixtures made inside each run."""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from typing import Any

import pytest

from ..program import Program


def is_hypothesis_test(function: Any) -> bool:
    """A test Hypothesis's ``@given`` made (each input then explored on its own)."""
    return bool(getattr(function, "is_hypothesis_test", False)) and hasattr(function, "hypothesis")


class TestBody(Program):
    """A test as the engine runs it; ``prepare`` (set by the plugin) is the start of every run."""

    __test__ = False  # not a test class, whatever pytest's name patterns say
    prepare: Callable[[], Callable[[], Any]]

    def entry(self, instrumented: bool = False) -> Callable[[], Any]:
        """Inside the run, before the body: what happens first in every schedule.

        The test's module (and the code under test) is instrumented by the runner."""
        return self.prepare()


def fingerprint(item: pytest.Function) -> str:
    """Changes when the test's body changes, so schedules of an old version are dropped.

    Decorators are left out: pinning a token with ``@pytest.mark.interleave(replay=...)``
    must not change the test it was made for.
    """
    function = item.function
    if is_hypothesis_test(function):
        function = function.hypothesis.inner_test
    try:
        lines = inspect.getsource(function).splitlines()
    except (OSError, TypeError):
        lines = [item.name]
    body = next((i for i, line in enumerate(lines) if line.lstrip().startswith(("def ", "async def "))), 0)
    source = "\n".join(lines[body:])
    return hashlib.sha256(f"{item.nodeid}\0{source}".encode()).hexdigest()[:8]
