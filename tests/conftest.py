"""What every test gets: the runners it made are closed after it, and Ctrl-C as at a terminal.

A runner left open keeps its watchdog's thread and its instrumentation into the next test,
whose run then starts from another state: a failure that comes and goes with the order of tests.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import pytest

from interleave.runner import Runner

# A suite started in the background by a shell without job control inherits SIGINT ignored,
# and so would every command it starts: the tests that press Ctrl-C on one would wait for
# nothing. They play a user at a terminal, where Ctrl-C reaches the command (a handler, not
# SIG_IGN, is what an exec resets to the default).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


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
