"""The ``interleave`` command as a user meets it: exit codes, one-line errors, JSON, replay,
the same answer from separate processes, and a clean Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

RACE = """
import threading

box = [0]

def add():
    value = box[0]
    box[0] = value + 1

def main():
    box[0] = 0
    threads = [threading.Thread(target=add) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert box[0] == 2, box[0]

def fixed():
    lock = threading.Lock()
    def locked_add():
        with lock:
            add()
    box[0] = 0
    threads = [threading.Thread(target=locked_add) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert box[0] == 2

def needs_args(x):
    pass
"""


def run_cli(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "interleave", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def race(tmp_path: Path) -> Path:
    (tmp_path / "race.py").write_text(RACE)
    return tmp_path


def test_explore_finds_the_race_and_replay_reproduces_it(race):
    found = run_cli("explore", "race.py", "--json", "report.json", cwd=race)
    assert found.returncode == 1, found.stderr
    assert "FAILURE (exception) AssertionError: 1" in found.stdout
    assert "Replay it:" in found.stdout
    report = json.loads((race / "report.json").read_text())
    for key in ("target", "strategy", "seed", "runs", "steps", "elapsed_s", "exhausted", "failure"):
        assert key in report
    for key in ("kind", "message", "run", "elapsed_s", "replay", "steps", "preemptions"):
        assert key in report["failure"]
    assert report["failure"]["preemptions"] == 1
    replayed = run_cli("replay", "race.py", report["failure"]["replay"], cwd=race)
    assert replayed.returncode == 1
    assert "reproduced (exception) AssertionError: 1" in replayed.stdout
    assert "preemption:" in replayed.stdout


def test_no_failure_exits_zero_and_says_what_was_covered(race):
    clean = run_cli("explore", "race.py::fixed", "--strategy", "dfs", "--runs", "5000", cwd=race)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "no failure in" in clean.stdout
    assert "schedule" in clean.stdout


def test_two_processes_with_the_same_seed_agree(race):
    outputs = [run_cli("explore", "race.py", "--strategy", "random", "--seed", "5", cwd=race).stdout for _ in range(2)]
    assert outputs[0] and outputs[0].replace("after 0.", "") .split("s;")[1] == outputs[1].replace("after 0.", "").split("s;")[1]


@pytest.mark.parametrize(
    "args, message",
    [
        (["explore", "missing.py"], "no such file: missing.py"),
        (["explore", "race.py::nothing"], "has no function 'nothing'"),
        (["explore", "race.py::needs_args"], "needs arguments (x)"),
        (["explore", "broken.py"], "syntax error in broken.py line 1"),
        (["explore", "bad_import.py"], "error while loading bad_import.py: ModuleNotFoundError"),
        (["replay", "race.py", "not-a-token"], "corrupt replay token"),
        (["replay", "race.py", "1.311.00000000.d.aeaqaaabayaai.3w6t2ua"], "another version"),
    ],
)
def test_bad_input_is_one_line_and_exit_two(race, args, message):
    (race / "broken.py").write_text("def main(:\n    pass\n")
    (race / "bad_import.py").write_text("import no_such_module_here\ndef main():\n    pass\n")
    result = run_cli(*args, cwd=race)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1


def test_uncontrolled_io_is_named_not_passed(tmp_path):
    (tmp_path / "io.py").write_text(textwrap.dedent("""
        import subprocess
        def main():
            subprocess.run(["true"])
        """))
    result = run_cli("explore", "io.py", cwd=tmp_path)
    assert result.returncode == 2
    assert "subprocess.run" in result.stderr and "io.py:4" in result.stderr
    assert "no failure" not in result.stdout


def test_ctrl_c_stops_cleanly_and_reports_what_was_done(race):
    started = race / "started"
    (race / "endless.py").write_text(textwrap.dedent(f"""
        import threading, os
        def main():
            if not os.path.exists({str(started)!r}):
                open({str(started)!r}, "w").close()  # tells the test the exploration is under way
            box = [0]
            lock = threading.Lock()
            def add():
                with lock:
                    box[0] += 1
            threads = [threading.Thread(target=add) for _ in range(3)]
            for t in threads: t.start()
            for t in threads: t.join()
        """))
    process = subprocess.Popen([sys.executable, "-m", "interleave", "explore", "endless.py", "--strategy",
                                "random", "--time-limit", "120", "--workers", "1"], cwd=race,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err  # no failure found, but no verdict either
    assert "interrupted; no failure in" in out
    assert "Traceback" not in err


def test_help_teaches_the_commands(race):
    result = run_cli("--help", cwd=race)
    assert result.returncode == 0
    assert "explore" in result.stdout and "replay" in result.stdout and "Examples:" in result.stdout
    assert "--time-limit" in run_cli("explore", "--help", cwd=race).stdout


def test_the_hash_seed_is_fixed_for_repeatable_runs(race):
    (race / "seed.py").write_text("import os\ndef main():\n    assert os.environ['PYTHONHASHSEED'] == '0'\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONHASHSEED"}
    result = subprocess.run([sys.executable, "-m", "interleave", "explore", "seed.py", "--runs", "2"], cwd=race,
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_coverage_reports_the_lines_run_over_all_schedules(race):
    result = run_cli("explore", "race.py::fixed", "--runs", "50", "--coverage", "--coverage-html", "cov", cwd=race)
    assert result.returncode == 0, result.stderr
    assert "Line coverage over all explored runs:" in result.stdout
    row = next(line for line in result.stdout.splitlines() if line.startswith("race.py"))
    missing = row.split("%", 1)[1]
    assert "11-17" in missing  # main() was never run while exploring fixed()
    assert (race / "cov" / "index.html").exists()
