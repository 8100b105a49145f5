"""The ``interleave`` command as a user meets it: exit codes, one-line errors, JSON, replay,
the same answer from separate processes, and a clean Ctrl-C."""

from __future__ import annotations

import json
import re
import os
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from interleave.decisions import Decision, Key, run_thread
from interleave.places import Place
from interleave.runner import RunConfig
from interleave.schedule import PYTHON, Token

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


def test_a_failure_replays_with_a_breakpoint_and_prints_added_to_debug_it(race):
    found = run_cli("explore", "race.py", cwd=race)
    token = found.stdout.strip().splitlines()[-1].split()[-1]
    source = (race / "race.py").read_text()
    # In the racing thread, between its read and its write (the lines below move down).
    (race / "race.py").write_text(source.replace(
        "    value = box[0]\n", "    # debugging\n    print('read', box[0])\n    value = box[0]\n    breakpoint()\n"))
    debugged = subprocess.run([sys.executable, "-m", "interleave", "replay", "race.py", token], cwd=race,
                              input="p value\nc\np value\nc\n", capture_output=True, text=True, timeout=120)
    assert debugged.returncode == 1, debugged.stdout + debugged.stderr
    assert debugged.stdout.count("(Pdb) 0") == 2  # both threads read 0: the preemption fell between
    assert "reproduced (exception) AssertionError: 1" in debugged.stdout
    assert "race.py changed since the token was made" in debugged.stdout
    # Where the schedule decides, an edit makes it diverge, and replay says where (exit 2).
    (race / "race.py").write_text(source.replace("    value = box[0]\n    box[0] = value + 1\n",
                                                 "    box[0] += 1\n"))
    diverged = run_cli("replay", "race.py", token, cwd=race)
    assert diverged.returncode == 2
    assert re.fullmatch(r"interleave: error: the program changed since the token was made \(race\.py\) and its "
                        r"schedule no longer fits: diverged at decision 1 of \d+: the schedule expected Thread-1 "
                        r"\(add\) at race\.py:\d+, and the run never came there\n", diverged.stderr)


def test_no_failure_exits_zero_and_says_what_was_covered(race):
    clean = run_cli("explore", "race.py::fixed", "--strategy", "dfs", "--runs", "5000", cwd=race)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "no failure in" in clean.stdout
    assert "schedule" in clean.stdout


def test_two_processes_with_the_same_seed_agree(race):
    outputs = [run_cli("explore", "race.py", "--strategy", "random", "--seed", "5", cwd=race).stdout for _ in range(2)]
    timeless = [re.sub(r"after [\d.]+s", "", out) for out in outputs]
    assert outputs[0] and "[random, seed 5, " in outputs[0] and timeless[0] == timeless[1]


#: A token made for another program: its one decision is at a place race.py does not have.
ELSEWHERE = Token(PYTHON, "00000000", RunConfig(), (Decision(Key(0, 5, 0), run_thread(1), True),), 0,
                  places=(Place(12345, 0, 3, 0),)).encode()


@pytest.mark.parametrize(
    "args, message",
    [
        (["explore", "missing.py"], "no such file: missing.py"),
        (["explore", "race.py::nothing"], "has no function 'nothing'"),
        (["explore", "race.py::needs_args"], "needs arguments (x)"),
        (["explore", "broken.py"], "syntax error in broken.py line 1"),
        (["explore", "bad_import.py"], "error while loading bad_import.py: ModuleNotFoundError"),
        (["replay", "race.py", "not-a-token"], "corrupt replay token"),
        (["replay", "race.py", ELSEWHERE], "no longer fits: diverged at decision 1 of 1"),
        (["replay", "race.py", "1.311.00000000.d.aeaqaaabayaai.3w6t2ua"], "older format (1)"),
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


def test_a_tampered_token_is_refused_in_one_line(race):
    found = run_cli("explore", "race.py", "--json", "report.json", "--workers", "1", cwd=race)
    token = json.loads((race / "report.json").read_text())["failure"]["replay"]
    parts = token.split(".")
    parts[1] = "399"  # claims another Python: the checksum says otherwise
    result = run_cli("replay", "race.py", ".".join(parts), cwd=race)
    assert found.returncode == 1 and result.returncode == 2
    assert result.stderr.strip() == ("interleave: error: corrupt replay token: it does not match its checksum "
                                     "(altered or cut short?)")


def test_replay_names_a_changed_helper_before_the_result(tmp_path):
    (tmp_path / "steps.py").write_text("def add(box):\n    value = box[0]\n    box[0] = value + 1\n")
    (tmp_path / "uses.py").write_text(textwrap.dedent("""
        import threading
        import steps
        def main():
            box = [0]
            threads = [threading.Thread(target=steps.add, args=(box,)) for _ in range(2)]
            for t in threads: t.start()
            for t in threads: t.join()
            assert box[0] == 2  # no message: it would be one more read, when failing only
        """))
    found = run_cli("explore", "uses.py", "--json", "report.json", "--workers", "1", cwd=tmp_path)
    assert found.returncode == 1, found.stderr
    token = json.loads((tmp_path / "report.json").read_text())["failure"]["replay"]
    same = run_cli("replay", "uses.py", token, cwd=tmp_path)
    assert same.returncode == 1 and "since the token was made" not in same.stdout
    (tmp_path / "steps.py").write_text("def add(box):\n    value = box[0]\n    box[0] = value + 2\n")
    edited = run_cli("replay", "uses.py", token, cwd=tmp_path)
    lines = edited.stdout.splitlines()
    assert edited.returncode == 0
    assert lines[0] == "interleave: changed since the token was made: steps.py; replaying the program as it is now"
    assert lines[-1].startswith("interleave: the schedule ran without failing")
    assert lines[-1].endswith("(with steps.py changed since the token was made)")


STATEFUL = """
import threading
import calls

def work(done, i):
    done.append(i)

def main():
    calls.COUNT[0] += 1  # kept from one run to the next: the module is imported once
    done = []
    threads = [threading.Thread(target=work, args=(done, i)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls.COUNT[0] < 3, f"call {calls.COUNT[0]}"
"""


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_failure_that_needs_earlier_runs_is_named_not_reported(tmp_path, workers):
    (tmp_path / "calls.py").write_text("COUNT = [0]\n")
    (tmp_path / "stateful.py").write_text(STATEFUL)
    result = run_cli("explore", "stateful.py", "--workers", workers, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("interleave: error:")]
    assert len(errors) == 1 and result.stderr.strip().splitlines()[-1] == errors[0]
    assert "Traceback" not in result.stderr and "Replay it:" not in result.stdout
    if workers == "1":
        # There the schedule runs without failing, or (its message read one more step) no longer fits.
        assert re.search(r"does not reproduce in a fresh process: replaying its schedule there "
                         r"(ran without failing|was refused)", result.stderr)
    else:  # the process that shrinks is another than the one that searched: it sees it first
        assert "the program is not deterministic" in result.stderr


def test_json_dash_writes_the_report_to_stdout_and_the_text_to_stderr(race):
    result = run_cli("explore", "race.py", "--json", "-", "--workers", "1", cwd=race)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)  # nothing but the JSON on standard output
    assert report["failure"]["kind"] == "exception"
    assert "FAILURE (exception)" in result.stderr and "Replay it:" in result.stderr
    assert not (race / "-").exists()


def test_printed_replay_command_is_shell_quoted_and_runs(tmp_path):
    folder = tmp_path / "my code"
    folder.mkdir()
    (folder / "race.py").write_text(RACE)
    found = run_cli("explore", "my code/race.py", "--workers", "1", cwd=tmp_path)
    assert found.returncode == 1, found.stderr
    command = found.stdout.split("Replay it:\n", 1)[1].strip()
    assert command.startswith("interleave replay 'my code/race.py::main' ")
    words = shlex.split(command)
    replayed = run_cli(*words[1:], cwd=tmp_path)
    assert replayed.returncode == 1, replayed.stderr
    assert "reproduced (exception)" in replayed.stdout


def test_every_help_example_runs():
    """The examples in ``interleave --help`` work as printed, from the repository's root."""
    root = Path(__file__).resolve().parent.parent
    text = run_cli("--help", cwd=root).stdout
    examples = [line.strip() for line in text.split("Examples:", 1)[1].split("\n\n", 1)[0].splitlines()
                if line.strip().startswith("interleave ")]
    assert len(examples) >= 3
    token = None
    for example in examples:
        words = shlex.split(example)
        if "TOKEN" in words:
            assert token is not None, "an explore example must print the token a replay example uses"
            words = [token if word == "TOKEN" else word for word in words]
        result = run_cli(*words[1:], cwd=root, timeout=300)
        assert result.returncode in (0, 1), f"{example}: {result.stderr}"
        assert str(root / "interleave") not in result.stdout + result.stderr  # no traceback through our code
        if "Replay it:" in result.stdout + result.stderr:
            token = shlex.split((result.stdout + result.stderr).split("Replay it:\n", 1)[1].splitlines()[0])[-1]
        if words[1] == "replay":
            assert "reproduced" in result.stdout


@pytest.mark.parametrize("args", [["--time-limit", "nan"], ["--time-limit", "inf"], ["--time-limit", "0"],
                                  ["--runs", "0"], ["--shrink-time", "-1"], ["--workers", "0"],
                                  ["--max-steps", "1.5"]])
def test_numbers_out_of_range_are_usage_errors(race, args):
    result = run_cli("explore", "race.py", *args, cwd=race)
    assert result.returncode == 2
    assert f"Invalid value for '{args[0]}'" in result.stderr
    assert "Traceback" not in result.stderr


def test_ctrl_c_outside_an_exploration_exits_130_quietly(monkeypatch, capsys):
    from interleave import cli

    def interrupted(**kwargs):
        raise KeyboardInterrupt  # as if Ctrl-C came while loading the program or printing

    monkeypatch.setenv("INTERLEAVE_NO_REEXEC", "1")
    monkeypatch.setattr(cli.cli, "main", interrupted)
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 130
    assert capsys.readouterr().err == "interleave: interrupted\n"
