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

from .explore import FailureReport, NondeterministicProgram, Report, ReplayOutcome, explore, replay
from .program import BadInput
from .control import annotate, choose, controlled, crash, freeze, set_group, unfreeze
from .races import racy

__version__ = "0.1.0"

__all__ = [
    "explore", "replay", "Report", "FailureReport", "ReplayOutcome", "BadInput", "NondeterministicProgram",
    "annotate", "choose", "controlled", "crash", "freeze", "racy", "set_group", "unfreeze",
    "__version__",
]
