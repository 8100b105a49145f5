"""What every test gets: the runners it made are closed after it.

A runner left open keeps its watchdog's thread and its instrumentation into the next test,
whose run then starts from another state: a failure that comes and goes with the order of tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from interleave.runner import Runner


@pytest.fixture(autouse=True)
def _runners_closed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    made: list[Runner] = []
    make = Runner.__init__

    def making(self: Runner, *args: Any, **kwargs: Any) -> None:
        make(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(Runner, "__init__", making)
    yield
    for runner in made:
        runner.close()
