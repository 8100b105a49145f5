"""The docs tell the truth: samples are what the commands print, the settings are the same
everywhere (CLI, marker, ini, engine, docs), the API page covers the API, links resolve."""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import interleave
from interleave import cli, settings

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
#: What ``interleave explore`` takes besides the exploration settings: the target and what to write.
CLI_ONLY = {"target", "keep_going", "json_path", "html_path", "full", "coverage_text", "coverage_html"}
#: What ``explore`` takes besides the settings: the target and what only a program calling it can pass.
API_ONLY = {"target", "keep_going", "coverage", "on_progress", "on_found", "on_shrinking", "partition"}


def test_samples_are_what_the_commands_print():
    result = subprocess.run([sys.executable, str(ROOT / "docs" / "make_samples.py"), "--check"], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    if result.returncode == 0 and "not compared" in result.stdout:
        pytest.skip(result.stdout.strip())  # traces and tokens are per Python version
    assert result.returncode == 0, "run python docs/make_samples.py to update:\n" + result.stdout + result.stderr


def test_the_cli_takes_every_setting_and_nothing_else():
    command = cli.cli.commands["explore"]
    options = {p.name: p for p in command.params}
    assert set(options) - CLI_ONLY == {o.name for o in settings.OPTIONS}
    for option in settings.OPTIONS:
        assert options[option.name].opts == [option.flag]


def test_the_settings_dataclass_follows_the_table():
    defaults = settings.Exploration()
    assert list(settings.Exploration.__dataclass_fields__) == [o.name for o in settings.OPTIONS]
    for option in settings.OPTIONS:
        assert getattr(defaults, option.name) == option.default, option.name
        if option.default not in (None, ()):
            assert option.check(option.default) == option.default, option.name  # a default passes its own check


def test_defaults_named_in_the_help_are_the_ones_used():
    from interleave import pytest_plugin, runner

    explore = importlib.import_module("interleave.explore")  # the module; the package's `explore` is the function
    helps = {o.name: o.help for o in settings.OPTIONS}
    assert f"default {explore.DEFAULT_RUNS:,} " in helps["runs"]
    assert f"under pytest {pytest_plugin.DEFAULT_RUNS}, or {pytest_plugin.DEFAULT_RUNS_PER_INPUT} per input" \
        in helps["runs"]
    assert f"default {explore.DEFAULT_TIME_LIMIT:g} " in helps["time_limit"]
    assert f"else {runner.DEFAULT_MAX_STEPS:,})" in helps["max_steps"]
    assert f"default {runner.RunConfig().max_pauses})" in helps["max_pauses"]
    assert f"default {runner.RunConfig().max_faults})" in helps["max_faults"]
    assert f"under pytest {pytest_plugin.PYTEST_DEFAULTS['workers']})" in helps["workers"]


def test_the_engine_takes_the_settings_with_the_same_defaults():
    parameters = inspect.signature(interleave.explore).parameters
    assert set(parameters) - API_ONLY == {o.name for o in settings.OPTIONS}, "a setting and explore() disagree"
    for option in settings.OPTIONS:
        if option.default is not None:
            assert parameters[option.name].default == option.default, option.name


def test_marker_ini_and_pytest_options_take_every_setting(pytester: pytest.Pytester) -> None:
    arguments = ", ".join(f"{o.name}={o.default!r}" for o in settings.OPTIONS if o.default is not None)
    pytester.makepyfile(test_all=f"""
        import pytest

        @pytest.mark.interleave({arguments}, runs=5)
        def test_it():
            pass
    """)
    pytester.runpytest("--strict-markers", "-W", "ignore::pytest.PytestWarning").assert_outcomes(passed=1)
    shown = pytester.runpytest("--help").stdout.str()
    for option in settings.OPTIONS:
        assert re.search(rf"^\s+{option.ini} \(", shown, flags=re.M), option.ini
        assert re.search(rf"^\s+{re.escape(option.pytest_flag)}\b", shown, flags=re.M), option.pytest_flag


def test_docs_list_every_setting():
    table = (ROOT / "docs" / "pytest.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \| `(--[\w-]+)` \| (?:`(\w+)`)? ?\|", table, flags=re.M)
    assert [row[0] for row in rows] == [o.name for o in settings.OPTIONS] + ["replay"]
    for (name, flag, ini), option in zip(rows, settings.OPTIONS):
        assert (flag, ini) == (option.pytest_flag, option.ini)
    api = (ROOT / "docs" / "api.md").read_text()
    for name in inspect.signature(interleave.explore).parameters:
        if name != "target":
            assert f"`{name}`" in api, name


def test_the_api_page_covers_the_api_and_its_example_runs():
    api = (ROOT / "docs" / "api.md").read_text()
    for name in interleave.__all__:
        assert re.search(rf"`(interleave\.)?{name}\b", api), name
    for cls in (interleave.Report, interleave.FailureReport):
        for field in cls.__dataclass_fields__:
            assert f"`{field}`" in api, f"{cls.__name__}.{field}"
    example = re.search(r"```python\n(.*?)```", api, flags=re.S).group(1)
    result = subprocess.run([sys.executable, "-c", example], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("exception AssertionError: lost update")


def test_the_setup_is_true():
    readme = (ROOT / "README.md").read_text()
    venv = readme.index("python3 -m venv .venv && . .venv/bin/activate")
    assert venv < readme.index("pip install -e . && interleave explore targets/nio_throttle.py")
    assert venv < readme.index("pip install -e '.[test]' && python -m pytest")
    for doc in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        assert not re.search(r"pip install '?interleave-sct", doc.read_text()), f"{doc.name}: not on PyPI"
    assert "Permission is hereby granted" in (ROOT / "LICENSE").read_text()
    assert 'license = "MIT"' in (ROOT / "pyproject.toml").read_text()


def test_relative_links_in_the_docs_resolve():
    docs = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), ROOT / "examples" / "README.md",
            ROOT / "targets" / "README.md"]
    for doc in docs:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if "://" not in target:
                assert (doc.parent / target).exists(), f"{doc.relative_to(ROOT)} links to missing {target}"


def test_the_cli_help_lists_the_exit_codes():
    text = subprocess.run([sys.executable, "-m", "interleave", "--help"], capture_output=True, text=True,
                          timeout=60).stdout
    codes = re.findall(r"^\s+(\d+)\s{2,}", text.split("Exit codes:", 1)[1], flags=re.M)
    assert codes == [str(cli.EXIT_OK), str(cli.EXIT_FAILURE), str(cli.EXIT_BAD_INPUT), str(cli.EXIT_INTERRUPTED)]
    assert textwrap.dedent("""\
        Exit codes: 0 no failure found (or, for replay, the schedule ran without failing); 1 a""") in \
        (ROOT / "README.md").read_text().replace("- Exit codes", "Exit codes")
