"""The text report a person reads: a bounded trace (repeats folded, a long one cut with a
pointer to ``--full`` and ``--html``), every preemption's resumption, a pause credited to the
thread it held, shrinking's progress, a header naming seed, strategy and workers, colours."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from interleave import cli, explore
from interleave.decisions import PAUSE
from interleave.program import load
from interleave.report import ShrinkProgress
from interleave.runner import RunConfig, Runner
from interleave.story import TraceRecorder
from interleave.strategies.base import Strategy
from interleave.strategies.dfs import BoundedDFS
from interleave.trace import TRACE_LIMIT, Row, cut, render

ROOT = Path(__file__).resolve().parent.parent
pytest_plugins = ["pytester"]

# A poll for a flag nobody sets: a hang, whose trace is the same two lines again and again.
POLL_HANG = """
import threading
import time


def main():
    flag = {"set": False}

    def poller():
        while not flag["set"]:
            time.sleep(0.01)

    t = threading.Thread(target=poller)
    t.start()
    t.join()
"""

# A long run that never repeats itself (each sleep is longer than the last), failing at its end.
LONG = """
import threading
import time


def main():
    box = {"n": 0}

    def ticker():
        for i in range(400):
            box["n"] = i
            time.sleep(0.001 * (i + 1))

    t = threading.Thread(target=ticker)
    t.start()
    t.join()
    assert box["n"] == -1, "the ticker ran to its end"
"""

# The first thread's only step is its write: preempted there, it resumes to write and ends
# without a step of its own after it.
LAST_WRITE = """
import threading


def main():
    box = {}

    def first():
        box["a"] = 1

    def second():
        box["b"] = box.get("a")

    a = threading.Thread(target=first)
    b = threading.Thread(target=second)
    a.start()
    b.start()
    a.join()
    b.join()
    assert box["b"] == 1, box
"""

# The sleeper blocks in a sleep while the others can run: a pause may be taken there.
SLEEPER = """
import threading
import time


def main():
    box = {}

    def sleeper():
        time.sleep(1)
        box["slept"] = True

    def worker():
        box["w"] = 1
        box["w"] = 2

    s = threading.Thread(target=sleeper)
    w = threading.Thread(target=worker)
    s.start()
    w.start()
    s.join()
    w.join()
"""


def write(tmp_path: Path, name: str, source: str) -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return str(path)


def cli_run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "interleave", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


# ------------------------------------------------------------------ a bounded trace


def test_a_hangs_trace_folds_its_repeats_into_one_line(tmp_path: Path) -> None:
    report = explore(f"{write(tmp_path, 'poll', POLL_HANG)}::main", runs=5, seed=0, max_steps=300, shrink_time=0)
    failure = report.failure
    assert failure is not None and failure.kind == "hang" and failure.recorder is not None
    whole = render(failure.recorder, full=True).splitlines()
    assert len(whole) > 2 * TRACE_LIMIT  # each poll: a step and a clock jump
    lines = failure.trace.splitlines()
    assert len(lines) < 40
    folds = [line for line in lines if "^^" in line]
    assert len(folds) == 1
    repeated = re.search(r"\^\^ the 2 lines above repeat ([\d,]+) more times \(steps ([\d,]+)-([\d,]+), t=", folds[0])
    assert repeated is not None, folds[0]
    times = int(repeated.group(1).replace(",", ""))
    assert times > 100
    first, last = (int(repeated.group(n).replace(",", "")) for n in (2, 3))
    assert last - first + 1 == times  # one step per poll
    fails_at = next(n for n, line in enumerate(lines) if line.strip().startswith("XX hang"))
    assert lines.index(folds[0]) < fails_at


def test_a_long_trace_is_cut_with_a_pointer_to_full_and_html(tmp_path: Path) -> None:
    report = explore(f"{write(tmp_path, 'long', LONG)}::main", runs=1, seed=0, shrink_time=0)
    failure = report.failure
    assert failure is not None and failure.recorder is not None
    lines = failure.trace.splitlines()
    assert len(lines) <= TRACE_LIMIT
    cuts = [line for line in lines if "lines left out here" in line]
    assert len(cuts) == 1 and "--full" in cuts[0] and "--html" in cuts[0]
    left_out = int(re.search(r"\.\.\. ([\d,]+) lines left out", cuts[0]).group(1).replace(",", ""))
    whole = render(failure.recorder, limit=None).splitlines()  # folded, not cut
    assert len(whole) > 2 * TRACE_LIMIT
    assert len(lines) - 1 + left_out == len(whole)
    assert lines[-1] == whole[-1] and "XX AssertionError: the ticker ran to its end" in lines[-1]


def test_a_cut_keeps_the_rows_the_failure_needs() -> None:
    rows = [Row(f"row {i}", first=i, last=i) for i in range(1000)]
    rows[500].keep = True
    shown = [row.text for row in cut(rows, 200, "MORE")]
    assert len(shown) <= 200
    assert "row 500" in shown and shown[0] == "row 0" and shown[-1] == "row 999"
    gaps = [text for text in shown if "left out" in text]
    assert len(gaps) == 2 and gaps[0].endswith(": MORE") and "MORE" not in gaps[1]  # said once
    assert sum(int(re.search(r"([\d,]+) lines", text).group(1).replace(",", "")) for text in gaps) \
        == 1000 - (len(shown) - 2)


def test_explore_full_prints_the_whole_trace(tmp_path: Path) -> None:
    write(tmp_path, "long", LONG)
    args = ("explore", "long.py", "--runs", "1", "--workers", "1", "--shrink-time", "0")
    cut_short = cli_run(*args, cwd=tmp_path)
    whole = cli_run(*args, "--full", cwd=tmp_path)
    assert cut_short.returncode == whole.returncode == 1, cut_short.stderr
    assert "lines left out here" in cut_short.stdout and "lines left out here" not in whole.stdout
    ticks = re.findall(r"^ +\d+ Thread-1 \(ticker\) ", whole.stdout, flags=re.M)
    steps = {int(m) for m in re.findall(r"^ +(\d+) \S", whole.stdout, flags=re.M)}
    assert len(ticks) == 400 and steps == set(range(1, max(steps) + 1))  # every step, one line each
    assert len(whole.stdout.splitlines()) > 3 * len(cut_short.stdout.splitlines())


# ------------------------------------------------------------------ resumptions and pauses


def _preempted_and_resumed(text: str) -> tuple[list[str], list[tuple[int, str]]]:
    lines = text.splitlines()
    paused = [m.group(1) for m in (re.search(r">> preemption: (.+?) is paused", line) for line in lines) if m]
    resumed = [(n, m.group(1)) for n, m in ((n, re.search(r"<< (.+?) (?:resumes|never resumes)", line))
                                            for n, line in enumerate(lines)) if m]
    return paused, resumed


def test_a_thread_preempted_at_its_last_step_resumes_before_it_ends(tmp_path: Path) -> None:
    failure = explore(f"{write(tmp_path, 'last', LAST_WRITE)}::main", runs=200, seed=0, workers=1).failure
    assert failure is not None
    paused, resumed = _preempted_and_resumed(failure.trace)
    assert paused == ["Thread-1 (first)"]
    lines = failure.trace.splitlines()
    resume_at = next(n for n, name in resumed if name == "Thread-1 (first)")
    ends_at = next(n for n, line in enumerate(lines) if "-- Thread-1 (first) ends" in line)
    fails_at = next(n for n, line in enumerate(lines) if "XX " in line)
    assert resume_at < ends_at < fails_at
    assert "box['a'] = 1" in "\n".join(lines[resume_at:ends_at])  # the resumed write is shown, not summarised


# Preempted before its first step, the worker is still paused when the main thread fails.
NEVER_RESUMED = """
import threading


def main():
    box = {"a": 0}

    def worker():
        box["a"] = 1

    t = threading.Thread(target=worker)
    t.start()
    assert box["a"] == 1, box
    t.join()
"""


def test_a_thread_still_paused_at_the_failure_is_said_never_to_resume(tmp_path: Path) -> None:
    failure = explore(f"{write(tmp_path, 'never', NEVER_RESUMED)}::main", runs=200, seed=0, workers=1).failure
    assert failure is not None
    lines = failure.trace.splitlines()
    assert "preemption: Thread-1 (worker) is paused before its first step" in failure.trace
    never = [n for n, line in enumerate(lines)
             if "<< Thread-1 (worker) never resumes: it is still paused before its first step" in line]
    assert len(never) == 1 and lines[never[0] + 1].strip().startswith("XX AssertionError")


@pytest.mark.parametrize("source, least", [(LAST_WRITE, 4), (SLEEPER, 4), (NEVER_RESUMED, 1)])
def test_every_preemption_of_every_schedule_has_its_resumption(tmp_path: Path, source: str, least: int) -> None:
    runner = Runner(load(f"{write(tmp_path, 'prog', source)}::main"), RunConfig())
    dfs = BoundedDFS(2)
    runs = preempting = 0
    try:
        while dfs.begin_run(runs) and runs < 300:
            recorder = TraceRecorder()
            result = runner.run_or_raise(dfs, (recorder,))
            dfs.end_run(result)
            runs += 1
            text = render(recorder, full=True)
            paused, resumed = _preempted_and_resumed(text)
            preempting += bool(paused)
            for name in paused:
                assert any(who == name for _, who in resumed), (name, text)
            if result.failure is not None and paused:
                fails_at = next(n for n, line in enumerate(text.splitlines()) if "XX " in line)
                assert all(n < fails_at for n, _ in resumed)
    finally:
        runner.close()
    assert preempting >= least  # schedules with a preemption were checked


_CHOOSER = """
class PauseWhenBlocked(Strategy):
    # Takes a pause at the first decision where the running thread cannot go on.

    name = "pause-when-blocked"

    def __init__(self):
        self.taken = None  # (running thread, the thread that would have run)

    def choose(self, point):
        if self.taken is None and PAUSE in point.options and not point.preemptive and not point.yielding:
            self.taken = (point.key[0], point.default.thread)
            return PAUSE
        return point.default
"""
# Compiled under a name that is no file: the code of this file is the user's, and the
# chooser runs inside the run, where the user's code is instrumented.
_namespace: dict[str, Any] = {"Strategy": Strategy, "PAUSE": PAUSE}
exec(compile(_CHOOSER, "<chooser>", "exec"), _namespace)
PauseWhenBlocked = _namespace["PauseWhenBlocked"]


def test_a_pause_is_credited_to_the_thread_it_held(tmp_path: Path) -> None:
    runner = Runner(load(f"{write(tmp_path, 'sleeper', SLEEPER)}::main"), RunConfig())
    chooser = PauseWhenBlocked()
    recorder = TraceRecorder()
    try:
        runner.run_or_raise(chooser, (recorder,))
    finally:
        runner.close()
    assert chooser.taken is not None
    running, held = chooser.taken
    assert running != held
    names = recorder.story().names
    text = render(recorder, full=True)
    pauses = [line for line in text.splitlines() if "~~ pause:" in line]
    assert len(pauses) == 1
    assert f"pause: {names[held]} is held" in pauses[0] and names[running] not in pauses[0]
    # The held thread's next turn is its resumption.
    assert f"<< {names[held]} resumes" in text.split(pauses[0])[1]


# ------------------------------------------------------------------ shrinking's progress


@pytest.mark.parametrize("workers", [1, 2])
def test_shrinking_tells_how_it_goes_and_ends_with_a_summary(workers: int) -> None:
    heard: list[ShrinkProgress] = []
    report = explore(f"{ROOT / 'examples' / 'lost_update.py'}::main", runs=2000, seed=0, workers=workers,
                     on_shrinking=heard.append)
    failure = report.failure
    assert failure is not None and heard
    last = heard[-1]
    assert last.done and sum(p.done for p in heard) == 1
    assert last.replays == failure.shrink_attempts and last.now.switches == failure.switches
    assert last.found.switches == failure.original_preemptions >= last.now.switches
    if workers == 1:  # this seed's first failure in one process needs 8 preemptions (the README's)
        assert last.found.switches > 1 and re.match(rf"shrinking: {last.found.switches} -> 1 ", last.text())
    assert re.fullmatch(r"shrinking: \d+ -> 1 preemption, [\d,]+ replays, \d+\.\d s", last.text()), last.text()


def test_the_shrinking_summary_is_one_line_without_carriage_returns_off_a_terminal() -> None:
    done = cli_run("explore", "examples/lost_update.py", "--workers", "1", cwd=ROOT)
    assert done.returncode == 1
    assert "\r" not in done.stderr
    summaries = [line for line in done.stderr.splitlines() if line.startswith("interleave: shrinking: ")]
    assert len(summaries) == 1 and re.search(r"-> 1 preemption, \d+ replays, \d+\.\d s$", summaries[0])


@pytest.mark.skipif(sys.platform == "win32", reason="a pseudo-terminal")
def test_on_a_terminal_shrinking_shows_on_the_progress_line() -> None:
    import pty

    primary, secondary = pty.openpty()
    try:
        process = subprocess.Popen([sys.executable, "-m", "interleave", "explore", "examples/lost_update.py",
                                    "--workers", "1"], cwd=ROOT, stdout=subprocess.PIPE, stderr=secondary,
                                   env={**os.environ, "PYTHONPATH": str(ROOT)})
        os.close(secondary)
        seen = b""
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the terminal's other end closed
                break
            if not chunk:
                break
            seen += chunk
        process.communicate(timeout=300)
    finally:
        os.close(primary)
    text = seen.decode()
    assert "\r\x1b[Kinterleave: shrinking: " in text  # the summary replaces the progress line
    assert re.search(r"interleave: shrinking: \d+ -> 1 preemption, \d+ replays", text)


# ------------------------------------------------------------------ the header


def test_the_header_names_the_strategy_the_seed_and_the_workers() -> None:
    found = cli_run("explore", "examples/lost_update.py", "--workers", "1", "--seed", "3", "--strategy", "pct",
                    cwd=ROOT)
    assert found.returncode == 1
    assert re.search(r"^  found in run [\d,]+ after [\d.]+s \[pct, seed 3, 1 worker\]; shrunk", found.stdout,
                     flags=re.M), found.stdout
    passed = cli_run("explore", "examples/lost_update.py::fixed", "--workers", "2", "--runs", "20", cwd=ROOT)
    assert passed.returncode == 0
    assert "[portfolio, seed 0, 2 workers]" in passed.stdout.splitlines()[0]


# ------------------------------------------------------------------ colours


def _explore_in_process(color: bool, env: dict[str, str] | None = None) -> str:
    runner = CliRunner()
    result = runner.invoke(cli.cli, ["explore", str(ROOT / "examples" / "lost_update.py"), "--workers", "1",
                                     "--runs", "2000"], color=color, env=env)
    assert result.exit_code == 1, result.output
    return result.stdout


def test_colours_on_a_terminal_none_elsewhere_or_with_no_color() -> None:
    coloured = _explore_in_process(color=True, env={"NO_COLOR": ""})
    assert "\x1b[31m\x1b[1minterleave: FAILURE" in coloured  # the failure, red and bold
    assert re.search(r"\x1b\[\d+mThread-1 \(worker\)\x1b\[0m", coloured)  # a thread's name in its colour
    plain = _explore_in_process(color=False)
    assert "\x1b[" not in plain and "interleave: FAILURE" in plain
    assert "\x1b[" not in _explore_in_process(color=True, env={"NO_COLOR": "1"})
    # Colours or not, the same words.
    assert re.sub(r"\x1b\[[\d;]*m", "", coloured).splitlines()[2:] == plain.splitlines()[2:]


# ------------------------------------------------------------------ the pytest plugin

LONG_TEST = """
import threading
import time

import pytest


@pytest.mark.interleave(runs=1, shrink_time=0)
def test_ticker():
    box = {"n": 0}

    def ticker():
        for i in range(400):
            box["n"] = i
            time.sleep(0.001 * (i + 1))

    t = threading.Thread(target=ticker)
    t.start()
    t.join()
    assert box["n"] == -1, "the ticker ran to its end"
"""


@pytest.mark.parametrize("on_ci", [False, True], ids=["terminal", "CI"])
def test_the_plugins_failure_text_is_cut_the_same_way(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                                     on_ci: bool) -> None:
    # On CI pytest's short summary prints a failure's whole message: it keeps the first line only.
    if on_ci:
        monkeypatch.setenv("CI", "true")
    else:
        monkeypatch.delenv("CI", raising=False)
        monkeypatch.delenv("BUILD_NUMBER", raising=False)
    pytester.makepyfile(test_long=LONG_TEST)
    cut_short = pytester.runpytest("-p", "no:cacheprovider")
    cut_short.assert_outcomes(failed=1)
    text = cut_short.stdout.str()
    cuts = [line for line in text.splitlines() if "lines left out here" in line]
    assert len(cuts) == 1 and cuts[0].endswith(": --interleave-full prints the whole trace"), cuts
    lines = text.splitlines()
    summary = next(at for at, line in enumerate(lines) if line.startswith("FAILED test_long.py::test_ticker - "))
    assert lines[summary + 1].startswith("=====")  # the summary is one line
    trace = text[text.index("interleave: FAILURE"):text.index("XX AssertionError")]
    assert len(trace.splitlines()) <= TRACE_LIMIT + 3
    whole = pytester.runpytest("-p", "no:cacheprovider", "--interleave-full")
    whole.assert_outcomes(failed=1)
    assert "lines left out here" not in whole.stdout.str()
    assert len(re.findall(r"^ +\d+ Thread-1 \(ticker\) ", whole.stdout.str(), flags=re.M)) == 400
