"""Where pytest keeps each exploration setting, and which one wins.

Every setting, its type, default, check and help come from the settings table
(:mod:`interleave.settings`); this module only reads them from pytest's command line
(``--interleave-max-steps``), the ini file (``interleave_max_steps``) and the marker
(``max_steps=``), in that order of precedence after the command line: command line, then
marker, then ini, then the plugin's own defaults, then the table's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

import pytest

from ..schedule import BadToken, Token
from ..settings import OPTIONS, Exploration, Option

MARKER = "interleave"
DEFAULT_RUNS = 1000
#: With ``@given``, the budget is per generated input, so it is smaller by default.
DEFAULT_RUNS_PER_INPUT = 100
#: The plugin's own defaults where they differ from the CLI's (a test runs in one process).
PYTEST_DEFAULTS = {"workers": 1}
MARKER_ARGUMENTS = (*(option.name for option in OPTIONS), "replay")
IniType = Literal["string", "linelist", "bool", "int", "float"]


class BadMarker(Exception):
    """The marker's arguments cannot be used; the message is one line."""


@dataclass(frozen=True)
class Budget:
    """What one test is explored with: command line, then marker, then ini, then defaults."""

    settings: Exploration
    replay: str | None


def add_options(parser: pytest.Parser) -> None:
    """Every setting as a ``--interleave-*`` option and an ini option, plus the plugin's own two."""
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
    group.addoption("--interleave-full", action="store_true",
                    help="print a failure's whole trace: every step, nothing folded or left out")
    for option in OPTIONS:
        parser.addini(option.ini, option.help, type=_ini_type(option), default=None)


def _ini_type(option: Option) -> IniType:
    """Typed where pytest can (8.4 and later), so that TOML's native values work in ``[tool.pytest]``."""
    types: dict[Any, IniType] = {int: "int", float: "float", bool: "bool", list: "linelist", "workers": "int"}
    typed = types.get(option.kind, "string")
    if typed in ("int", "float") and pytest.version_tuple < (8, 4):
        return "string"
    return typed


def marker_line() -> str:
    """The marker's entry in ``pytest --markers``."""
    return (f"{MARKER}({', '.join(f'{name}=None' for name in MARKER_ARGUMENTS)}): "
            "run the test under many thread schedules and report a failing one (interleave)")


def check_configuration(config: pytest.Config) -> None:
    """At startup: every setting given on the command line or in the ini file is valid, and a
    ``--interleave-replay`` token decodes (else one usage error)."""
    for option in OPTIONS:
        _from_command_line(config, option)
        _ini(config, option)
    token = config.getoption("interleave_replay")
    if token:
        try:
            Token.decode(token)
        except BadToken as exc:
            raise pytest.UsageError(f"--interleave-replay: {exc}") from None


def configured(config: pytest.Config) -> Exploration:
    """The settings of a marked test whose marker sets nothing (command line, then ini, then defaults)."""
    return _pick(config, {})


def budget_for(item: pytest.Item, per_input: bool) -> Budget:
    """The settings ``item`` is explored with, and the token it replays instead (if any)."""
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
    settings = _pick(item.config, mark)
    if settings.runs is None and settings.time_limit is None:
        settings = replace(settings, runs=DEFAULT_RUNS_PER_INPUT if per_input else DEFAULT_RUNS)
    return Budget(settings=settings, replay=_first(item.config.getoption("interleave_replay"), replay))


def _pick(config: pytest.Config, mark: Mapping[str, Any]) -> Exploration:
    def value_of(option: Option) -> Any:
        value = _first(_from_command_line(config, option), _marker_value(mark, option), _ini(config, option))
        return PYTEST_DEFAULTS.get(option.name) if value is None else value

    return Exploration.pick(value_of)


def _from_command_line(config: pytest.Config, option: Option) -> Any:
    """The option's value from pytest's command line, checked; None when not given."""
    value = config.getoption(option.pytest_flag.lstrip("-").replace("-", "_"))
    return None if value is None else _checked(value, option, option.pytest_flag)


def _ini(config: pytest.Config, option: Option) -> Any:
    """The option's value from the configuration file, checked; None when not set there."""
    value = config.getini(option.ini)
    return None if value is None or value == "" or value == [] else _checked(value, option, f"ini option {option.ini}")


def _checked(value: Any, option: Option, where: str) -> Any:
    """A value pytest read (text, or a typed ini value), through the table's check."""
    try:
        return option.parse(value) if isinstance(value, str) else option.check(value)
    except ValueError as exc:
        raise pytest.UsageError(f"{where}: {exc}") from None


def _marker_value(mark: Mapping[str, Any], option: Option) -> Any:
    value = mark.get(option.name)
    if value is None:
        return None
    try:
        return option.check(value)
    except ValueError as exc:
        raise BadMarker(f"@pytest.mark.interleave {option.name}={value!r}: {exc}") from None


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)
