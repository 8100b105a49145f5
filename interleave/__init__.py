"""interleave: find the thread interleaving that breaks your code, shrink it, replay it.

Ordinary ``threading`` code runs under a deterministic scheduler (every thread a
greenlet, time virtual); interleave explores schedules, reports the first failure
(an exception in any thread, a deadlock, a hang) shrunk to a minimal schedule, and gives
a token that replays it exactly.

    >>> from interleave import explore
    >>> report = explore("examples/lost_update.py::main", time_limit=10)
    >>> report.failure.kind
    'exception'
"""

from __future__ import annotations

import os as _os
import sys as _sys

if _sys.argv[:1] == ["-m"] and _sys.path[:1] in ([""], [_os.getcwd()]) \
        and _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__))) != _os.getcwd():
    # ``python -m interleave``: the current directory, which Python puts first on sys.path,
    # is not where interleave lives; a file there named like a standard module (signal.py)
    # would replace it in interleave's own imports. A target's directory is put on the path
    # while the target runs.
    del _sys.path[0]

from .control import annotate, choose, controlled, crash, freeze, set_group, unfreeze
from .explore import Diverged, FailureReport, NondeterministicProgram, ReplayOutcome, Report, explore, replay
from .program import BadInput
from .races import racy

__version__ = "0.1.0"

__all__ = [
    "explore", "replay", "Report", "FailureReport", "ReplayOutcome", "BadInput", "Diverged", "NondeterministicProgram",
    "annotate", "choose", "controlled", "crash", "freeze", "racy", "set_group", "unfreeze",
    "__version__",
]
