"""The exploration settings, one table for every face: the CLI's options, the pytest
marker's arguments, pytest's command-line and ini options, and ``interleave.explore``.

Each :class:`Option` names a setting (its Python name is the marker argument and the
``explore`` parameter; ``--max-steps`` on the CLI, ``--interleave-max-steps`` and
``interleave_max_steps`` for pytest), its type, its default and its help. Values are
checked here, once, for all of them. ``explore`` takes every setting as a parameter of the
same name and default (a test holds the two lists equal).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import tracing
from .strategies import NAMES as STRATEGIES

GRANULARITIES = tracing.GRANULARITIES


@dataclass(frozen=True)
class Option:
    name: str
    #: int, float, bool, str, list (of strings), a tuple of choices, or "workers" (N or an address).
    kind: Any
    #: Used when nothing sets the option; None means "see the help" (decided later, by the engine or the face).
    default: Any
    help: str
    #: The least value a number may take, and whether that bound itself is allowed.
    minimum: float | None = None
    inclusive: bool = True
    metavar: str | None = None

    @property
    def flag(self) -> str:
        """The CLI's option: ``--max-steps``."""
        return "--" + self.name.replace("_", "-")

    @property
    def pytest_flag(self) -> str:
        return "--interleave-" + self.name.replace("_", "-")

    @property
    def ini(self) -> str:
        return "interleave_" + self.name

    def parse(self, text: str) -> Any:
        """A value given as text (the CLI, pytest's command line, an ini file); raises ValueError."""
        text = text.strip()
        if self.kind is list:
            return self.check([line.strip() for line in text.splitlines() if line.strip()])
        if self.kind is bool:
            lowered = text.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"expected true or false, got {text!r}")
        if self.kind == "workers":
            if "://" in text:
                return text
            if not text.isdigit():
                raise ValueError(f"{text!r} is neither a number of workers (1 or more) nor a Dask scheduler address")
        if self.kind in (int, float, "workers"):
            try:
                value = (float if self.kind is float else int)(text)
            except ValueError:
                raise ValueError(f"expected {self._wanted()}, got {text!r}") from None
            return self.check(value)
        return self.check(text)

    def check(self, value: Any) -> Any:
        """A value given as a Python object (a marker argument, a TOML value); raises ValueError."""
        if self.kind is list:
            values = [value] if isinstance(value, (str, os.PathLike)) else value
            if not isinstance(values, (list, tuple)) or not all(isinstance(v, (str, os.PathLike)) for v in values):
                raise ValueError(f"expected {self._wanted()}, got {value!r}")
            return tuple(os.fspath(v) for v in values)
        if isinstance(self.kind, tuple):
            if value not in self.kind:
                raise ValueError(f"expected one of {', '.join(self.kind)}, got {value!r}")
            return value
        if self.kind is bool or self.kind is str:
            if not isinstance(value, self.kind):
                raise ValueError(f"expected {self._wanted()}, got {value!r}")
            return value
        if self.kind == "workers" and isinstance(value, str) and "://" in value:
            return value
        number = (int, float) if self.kind is float else int
        if isinstance(value, bool) or not isinstance(value, number) or not math.isfinite(value) or (
                self.minimum is not None and (value < self.minimum or (value == self.minimum and not self.inclusive))):
            raise ValueError(f"expected {self._wanted()}, got {value!r}")
        return float(value) if self.kind is float else value

    def _wanted(self) -> str:
        if self.kind is list:
            return "a module, package or path, or a list of them"
        if self.kind is bool:
            return "true or false"
        if self.kind is str:
            return "a string"
        what = {int: "a whole number", float: "a number", "workers": "a number of workers"}[self.kind]
        if self.minimum is not None:
            what += f" {'>=' if self.inclusive else '>'} {self.minimum:g}"
        return what


OPTIONS: tuple[Option, ...] = (
    Option("runs", int, None, "Stop after this many runs (default 10,000 with no time limit; under pytest "
           "1000, or 100 per input with @given).", minimum=1, metavar="N"),
    Option("time_limit", float, None,
           "Stop after this many seconds (default 60 with no runs given; under pytest none).",
           minimum=0, inclusive=False, metavar="SECONDS"),
    Option("seed", int, 0, "Makes the whole exploration reproducible.", metavar="N"),
    Option("strategy", STRATEGIES, "portfolio", "portfolio: bounded enumeration, PCT and random walk taking turns; "
           "random: uniform random walk; pct: probabilistic concurrency testing; surw: uniform over interleavings "
           "of the threads' steps; steer: random walk steered to new lines; dfs: every schedule, by increasing "
           "preemptions; dpor: one schedule per order of conflicting steps (partial-order reduction)."),
    Option("depth", int, 3, "PCT bug depth d.", minimum=1, metavar="D"),
    Option("max_preemptions", int, None, "Preemption bound: of the enumeration (dfs, and the portfolio's dfs "
           "share; default 2), and of dpor (default: none).",
           minimum=0, metavar="N"),
    Option("max_steps", int, None, "Steps a run may take without progress (no thread starts or ends, the "
           "program's state stays the same) before it is a hang (default: the program's __interleave__ setting, "
           "else 100,000); a run is stopped at 100 times this.", minimum=1, metavar="N"),
    Option("max_pauses", int, None, "Pauses per run: a runnable thread held while time jumps (default 2).",
           minimum=0, metavar="N"),
    Option("max_faults", int, None, "Faults per run for programs that model them (default 2).", minimum=0,
           metavar="N"),
    Option("granularity", GRANULARITIES, tracing.ACCESS, "Where threads may switch: access, before every shared "
           "access of your code (attributes, items, containers, rebound globals and cells) and every "
           "synchronization; line, at every line of your code; opcode, at every bytecode."),
    Option("include", list, (), "Also give switch points to the code of this installed module or package, or of "
           "the files under this path (may be given more than once).", metavar="MODULE|PATH"),
    Option("races", bool, False, "Report data races (unordered conflicting accesses) as failures."),
    Option("shrink_time", float, 30.0, "Seconds allowed for shrinking a failure.", minimum=0, metavar="SECONDS"),
    Option("workers", "workers", None, "Split the search among N processes (default: one per core; under pytest "
           "1), or run it on the Dask cluster whose scheduler is at ADDRESS, e.g. tcp://host:8786 "
           "(needs the distributed extra).", minimum=1, metavar="N|ADDRESS"),
)

BY_NAME = {option.name: option for option in OPTIONS}


@dataclass(frozen=True)
class Exploration:
    """The settings of one exploration; None where the engine (or the face) decides."""

    runs: int | None = None
    time_limit: float | None = None
    seed: int = 0
    strategy: str = "portfolio"
    depth: int = 3
    max_preemptions: int | None = None
    max_steps: int | None = None
    max_pauses: int | None = None
    max_faults: int | None = None
    granularity: str = tracing.ACCESS
    include: tuple[str, ...] = ()
    races: bool = False
    shrink_time: float = 30.0
    workers: int | str | None = None

    @classmethod
    def pick(cls, value_of: Callable[[Option], Any]) -> Exploration:
        """Each option's value from ``value_of`` (None: not set there), else its default."""
        chosen = {}
        for option in OPTIONS:
            value = value_of(option)
            chosen[option.name] = option.default if value is None else value
        return cls(**chosen)


def explore_arguments(settings: Exploration) -> dict[str, Any]:
    """The keyword arguments for ``explore``: every option set (None leaves explore's own default)."""
    return {option.name: value for option in OPTIONS if (value := getattr(settings, option.name)) is not None}


def default_workers() -> int:
    """One worker per core this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

