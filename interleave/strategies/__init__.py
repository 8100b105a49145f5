"""Search strategies behind one small interface (:class:`Strategy`)."""

from __future__ import annotations

from .base import Enumeration, PctFigures, SearchSummary, Strategy
from .dfs import BoundedDFS, Nondeterminism
from .dpor import DPOR
from .pct import PCT
from .portfolio import Portfolio
from .random_walk import RandomWalk
from .replay import Replay, ScheduleMismatch
from .steer import Steer
from .surw import SURW

#: The enumeration's preemption bound when none is given.
DEFAULT_BOUND = 2

NAMES = ("portfolio", "random", "pct", "surw", "steer", "dfs", "dpor")


def make(name: str, *, seed: int = 0, depth: int = 3, max_preemptions: int | None = None) -> Strategy:
    """Build a strategy by its ``--strategy`` name (``max_preemptions``: None for the
    enumeration's default bound, 2, and no bound for dpor)."""
    if name == "portfolio":
        return Portfolio(seed, DEFAULT_BOUND if max_preemptions is None else max_preemptions)
    if name == "random":
        return RandomWalk(seed)
    if name == "pct":
        return PCT(seed, depth)
    if name == "surw":
        return SURW(seed)
    if name == "steer":
        return Steer(seed)
    if name == "dfs":
        return BoundedDFS(DEFAULT_BOUND if max_preemptions is None else max_preemptions)
    if name == "dpor":
        return DPOR(max_preemptions)
    raise ValueError(f"unknown strategy {name!r} (choose from {', '.join(NAMES)})")


__all__ = ["Strategy", "SearchSummary", "Enumeration", "PctFigures", "BoundedDFS", "DPOR", "PCT", "Portfolio",
           "RandomWalk", "Replay", "ScheduleMismatch", "Nondeterminism", "SURW", "Steer", "make", "NAMES"]
