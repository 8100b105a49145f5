"""Every verdict is backed by what ran: no "no failure" after zero runs, lost workers or a
FUNC that cannot run; no failure lost to an interrupt or a dead process; nothing left
running after a signal; the same verdict for any number of workers."""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from interleave import explore, replay
from interleave.program import BadInput

RACE = """
import threading

def main():
    box = [0]
    def add():
        value = box[0]
        box[0] = value + 1
    threads = [threading.Thread(target=add) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert box[0] == 2, box[0]

def fixed():
    box = [0]
    lock = threading.Lock()
    def add():
        with lock:
            box[0] += 1
    threads = [threading.Thread(target=add) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
"""

#: Fails in its first random run; each replay takes real time, so shrinking lasts seconds.
SLOW_TO_SHRINK = """
import threading

def heavy():
    return sum(range(100_000))

def main():
    box = [0]
    def work():
        for _ in range(40):
            n = box[0]
            heavy()
            box[0] = n + 1
    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert box[0] == 120, box[0]
"""


def run_cli(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "interleave", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def start_cli(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "interleave", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def token_of(output: str) -> str:
    return output.split("Replay it:\n")[1].split()[3]


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie (one whose new parent does not reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid and alive(int(entry)):
                found.append(int(entry))
    return found


@pytest.fixture
def race(tmp_path: Path) -> Path:
    (tmp_path / "race.py").write_text(RACE)
    return tmp_path


# ------------------------------------------------------------------ no verdict without runs


@pytest.mark.parametrize("workers", ["1", "2"])
def test_zero_runs_is_no_verdict(race, workers):
    # A time limit too short for one run (the command refuses 0 itself, as no budget at all).
    result = run_cli("explore", "race.py::fixed", "--time-limit", "1e-9", "--workers", workers, cwd=race)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "no failure" not in result.stdout
    assert "interleave: error: no verdict: no run completed" in result.stderr
    report = explore(str(race / "race.py") + "::fixed", time_limit=0, workers=int(workers))
    assert report.runs == 0 and report.unbacked() is not None


EVERY_RUN_DIES = """
import ctypes

def main():
    ctypes.CDLL(None)._exit(3)  # the C library's: os._exit only ends the run (as a finding)
"""


def test_a_program_that_kills_every_worker_gets_no_verdict(tmp_path):
    (tmp_path / "dies.py").write_text(EVERY_RUN_DIES)
    result = run_cli("explore", "dies.py", "--workers", "2", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "no failure" not in result.stdout
    assert "worker 0 died (exit code 3)" in result.stdout and "its slots were given up" in result.stdout
    assert "no verdict: the share of workers 0, 1 of the search was not run" in result.stderr
    report = explore(str(tmp_path / "dies.py"), runs=100, workers=2)
    assert report.runs == 0 and report.lost_workers == [0, 1] and report.failure is None
    assert "was not run" in report.unbacked()


def test_a_lost_share_is_no_verdict_even_when_other_runs_passed(tmp_path, monkeypatch):
    import interleave.workers as workers

    (tmp_path / "half.py").write_text(textwrap.dedent("""
        import ctypes, os
        def main():
            if os.environ.get("DIE_IN") == str(os.getpid()):
                ctypes.CDLL(None)._exit(3)  # the process dies: os._exit only ends the run
        """))
    real_main = workers._worker_main

    def dying_in_worker_1(job, shared, position, conn, parent):  # the program dies in worker 1's processes only
        if position == 1:
            os.environ["DIE_IN"] = str(os.getpid())
        real_main(job, shared, position, conn, parent)

    monkeypatch.setattr(workers, "_worker_main", dying_in_worker_1)
    monkeypatch.setattr(workers, "_start_method", lambda program: "fork")  # a spawned worker would not see the patch
    report = explore(str(tmp_path / "half.py"), strategy="random", runs=40, workers=2)
    # Worker 0's slots made the budget's runs (the lost ones' runs were never counted).
    assert report.lost_workers == [1] and report.runs == 40 and report.failure is None
    assert report.unbacked() == ("the share of worker 1 of the search was not run (their processes kept dying); "
                                 "40 runs completed")


# ------------------------------------------------------------------ FUNC that cannot run as a call


@pytest.mark.parametrize("source, kind", [
    ("async def main():\n    assert False\n", "an async def function"),
    ("def main():\n    yield\n    assert False\n", "a generator function"),
    ("async def main():\n    yield\n", "an async generator function"),
])
def test_a_func_that_a_call_does_not_run_is_refused(tmp_path, source, kind):
    (tmp_path / "coro.py").write_text(source)
    result = run_cli("explore", "coro.py", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"interleave: error: coro.py::main is {kind}: calling it runs none of its body")
    assert len(result.stderr.strip().splitlines()) == 1 and "no failure" not in result.stdout


def test_a_callable_coroutine_is_refused_and_a_class_is_not():
    async def racy() -> None:
        pass

    class Job:
        async def __call__(self) -> None:
            pass

    with pytest.raises(BadInput, match="is an async def function"):
        explore(racy, runs=1)
    with pytest.raises(BadInput, match="is an async def function"):
        explore(Job(), runs=1)
    assert explore(Job, runs=1).runs == 1  # calling the class only makes an instance: a plain call


# ------------------------------------------------------------------ files named like standard modules


SHADOWS = ["signal", "random", "queue", "time", "ctypes", "tempfile", "select", "socket", "subprocess"]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_files_named_like_standard_modules_beside_the_target_do_not_replace_them(race, workers):
    for name in SHADOWS:
        (race / f"{name}.py").write_text(f"import os\nos.write(2, b'SHADOWED {name}\\n')\nX = 1\n")
    found = run_cli("explore", "race.py", "--workers", workers, "--shrink-time", "5", cwd=race)
    assert found.returncode == 1, found.stdout + found.stderr
    assert "SHADOWED" not in found.stderr and "died" not in found.stdout
    assert "FAILURE (exception) AssertionError: 1" in found.stdout
    replayed = run_cli("replay", "race.py", token_of(found.stdout), cwd=race)
    assert replayed.returncode == 1 and "SHADOWED" not in replayed.stderr
    # from elsewhere, with the target in a directory of its own
    clean = run_cli("explore", f"{race.name}/race.py::fixed", "--strategy", "dfs", "--workers", workers,
                    cwd=race.parent)
    assert clean.returncode == 0 and "SHADOWED" not in clean.stderr and "exhausted" in clean.stdout


def test_no_standard_module_is_imported_from_the_target_directory(tmp_path):
    """Every standard module name as a file beside the target, in forked and spawned workers."""
    target_dir = tmp_path / "target"
    target_dir.mkdir()
    (target_dir / "race.py").write_text(RACE)
    for name in sys.stdlib_module_names - set(sys.builtin_module_names):
        if not name.startswith("__"):
            (target_dir / f"{name}.py").write_text(
                f"import os\nos.write(2, b'SHADOWED {name}\\n')\nraise ImportError('shadowed {name}')\n")
    script = tmp_path / "spawned.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        import interleave.workers as workers
        from interleave import explore, replay

        if __name__ == "__main__":
            method = sys.argv[1]
            workers._start_method = lambda program: method
            report = explore("race.py", strategy="random", runs=400, seed=1, workers=2, shrink_time=5)
            assert report.failure is not None and not report.worker_deaths, report
            assert replay("race.py", report.failure.replay).failure is not None
            print("ok", method, report.failure.message)
        """))
    for method in ("fork", "spawn"):
        done = subprocess.run([sys.executable, str(script), method], cwd=target_dir, capture_output=True, text=True,
                              timeout=180)
        assert done.returncode == 0 and "SHADOWED" not in done.stderr, done.stderr[-3000:]
        assert done.stdout.startswith(f"ok {method} AssertionError: 1")
    # From the parent directory: with these files in the current directory, `python -m` itself
    # fails on some versions before interleave runs (3.13 imports importlib from there).
    cli = run_cli("explore", "target/race.py", "--workers", "2", "--shrink-time", "5", cwd=tmp_path)
    assert cli.returncode == 1 and "SHADOWED" not in cli.stderr, cli.stderr[-3000:]


def test_a_target_named_like_a_standard_module_is_not_registered_as_it(tmp_path):
    (tmp_path / "signal.py").write_text(RACE)
    result = run_cli("explore", "signal.py", "--workers", "2", "--shrink-time", "5", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "died" not in result.stdout and "FAILURE (exception)" in result.stdout


# ------------------------------------------------------------------ a failure found is never lost


@pytest.mark.parametrize("how, workers", [
    (signal.SIGINT, "1"), (signal.SIGTERM, "1"), (signal.SIGINT, "2"), (signal.SIGTERM, "2"), (signal.SIGHUP, "2"),
    ("kill the shrinking process", "2"),
])
def test_a_failure_being_shrunk_survives_an_interrupt_or_a_dead_shrinker(tmp_path, how, workers):
    (tmp_path / "slow.py").write_text(SLOW_TO_SHRINK)
    process = start_cli("explore", "slow.py", "--strategy", "random", "--workers", workers, "--shrink-time", "120",
                        cwd=tmp_path)
    found = process.stderr.readline()
    assert "run 1 failed (exception) AssertionError" in found and "shrinking it" in found, found
    time.sleep(1.0)  # well into shrinking (about 20 s when left alone)
    if how == "kill the shrinking process":
        [shrinker] = children(process.pid)  # the workers are done: only the shrinking process is left
        os.kill(shrinker, signal.SIGKILL)
        why = "not shrunk (the process shrinking it died: killed by SIGKILL"
    else:
        process.send_signal(how)
        why = "not shrunk (interrupted): "
    out, err = process.communicate(timeout=60)
    assert process.returncode == 1, out + err
    assert "FAILURE (exception) AssertionError" in out and why in out
    assert "Traceback" not in err
    replayed = run_cli("replay", "slow.py", token_of(out), cwd=tmp_path)
    assert replayed.returncode == 1 and "reproduced (exception) AssertionError" in replayed.stdout


STUCK_IN_ITS_FIRST_RUN = """
import pathlib
import re
import threading

def main():
    pathlib.Path("started").touch()
    t = threading.Thread(target=lambda: re.match(r'(a+)+b', 'a' * 40))  # backtracks for ages
    t.start()
    t.join()
"""


def test_a_run_cut_short_by_ctrl_c_is_no_run_and_proves_nothing(tmp_path):
    (tmp_path / "stuck.py").write_text(STUCK_IN_ITS_FIRST_RUN)
    process = start_cli("explore", "stuck.py", "--strategy", "dfs", "--workers", "1", cwd=tmp_path)
    deadline = time.monotonic() + 60
    while not (tmp_path / "started").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # in the regex of run 1, which has made no decision yet
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, out + err
    assert "interrupted; no failure in 0 runs" in err + out
    assert "every schedule" not in err + out and "exhausted" not in err + out


TWO_BUGS = """
import threading

def main():
    box = [0]
    def add(k):
        n = box[0]
        box[0] = n + k
    threads = [threading.Thread(target=add, args=(k,)) for k in (1, 10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if box[0] == 1:
        raise ValueError("the 10 was lost")
    if box[0] == 10:
        raise KeyError("the 1 was lost")
"""


@pytest.mark.parametrize("workers, keep_going", [(1, False), (2, False), (2, True)])
def test_a_failure_is_kept_as_found_when_shrinking_is_interrupted(tmp_path, monkeypatch, workers, keep_going):
    describing = importlib.import_module("interleave.describe")
    (tmp_path / "bugs.py").write_text(TWO_BUGS)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # as a Ctrl-C in the middle of shrinking (forked workers inherit it)

    monkeypatch.setattr(describing, "shrink", interrupted)
    monkeypatch.setattr(importlib.import_module("interleave.workers"), "_start_method", lambda program: "fork")
    seen = []
    report = explore(str(tmp_path / "bugs.py"), strategy="random", runs=300, seed=3, workers=workers,
                     keep_going=keep_going, on_found=seen.append)
    assert report.interrupted and len(report.failures) == (2 if keep_going else 1)
    assert all(f.not_shrunk == "interrupted" and f.shrink_attempts == 0 for f in report.failures)
    assert [f.replay for f in seen[0]] == [f.replay for f in report.failures]
    monkeypatch.undo()
    for failure in report.failures:
        assert replay(str(tmp_path / "bugs.py"), failure.replay).failure.message == failure.message


# ------------------------------------------------------------------ signals stop everything


ENDLESS = """
import os, threading

def main():
    # Tells the test which processes run the program: made through a directory descriptor,
    # which is not put back when the run ends, as the files a run changes by path are.
    here = os.open({directory!r}, os.O_RDONLY)
    try:
        os.mkdir(f"started-{{os.getpid()}}", dir_fd=here)
    except FileExistsError:
        pass
    finally:
        os.close(here)
    box = [0]
    lock = threading.Lock()
    def add():
        with lock:
            box[0] += 1
    threads = [threading.Thread(target=add) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
"""


def _workers_started(directory: Path, count: int) -> list[int]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pids = [int(p.name.split("-")[1]) for p in directory.glob("started-*")]
        if len(pids) >= count:
            return pids
        time.sleep(0.05)
    raise AssertionError("the workers did not start")


@pytest.mark.parametrize("number, workers", [(signal.SIGTERM, 2), (signal.SIGHUP, 2), (signal.SIGINT, 2),
                                             (signal.SIGTERM, 1)])
def test_a_signal_to_the_command_stops_every_worker_and_reports(tmp_path, number, workers):
    (tmp_path / "endless.py").write_text(ENDLESS.format(directory=str(tmp_path)))
    process = start_cli("explore", "endless.py", "--strategy", "random", "--time-limit", "120", "--workers",
                        str(workers), cwd=tmp_path)
    pids = _workers_started(tmp_path, workers)
    assert (process.pid in pids) == (workers == 1)
    time.sleep(0.3)
    process.send_signal(number)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, out + err
    assert "interrupted; no failure in" in out and "died" not in out and "Traceback" not in err
    assert not [pid for pid in pids if alive(pid)]


def test_workers_die_with_a_killed_command(tmp_path):
    (tmp_path / "endless.py").write_text(ENDLESS.format(directory=str(tmp_path)))
    process = start_cli("explore", "endless.py", "--strategy", "random", "--time-limit", "120", "--workers", "2",
                        cwd=tmp_path)
    pids = _workers_started(tmp_path, 2)
    process.kill()
    process.communicate(timeout=60)
    deadline = time.monotonic() + 10
    while [pid for pid in pids if alive(pid)] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in pids if alive(pid)]


# ------------------------------------------------------------------ any number of workers


@pytest.mark.parametrize("strategy", ["dfs", "portfolio"])
def test_more_workers_than_subtrees_give_the_verdict_of_one(race, strategy):
    for func, code in (("fixed", 0), ("main", 1)):
        verdicts = []
        for workers in ("1", "8"):
            result = run_cli("explore", f"race.py::{func}", "--strategy", strategy, "--workers", workers,
                             "--runs", "2000", "--shrink-time", "5", cwd=race)
            assert result.returncode == code, result.stdout + result.stderr
            assert "died" not in result.stdout and "Traceback" not in result.stderr
            verdicts.append([line for line in result.stdout.splitlines() if line.startswith("  every schedule")
                             or line.startswith("  exhausted") or line.startswith("interleave: FAILURE")])
        assert verdicts[0] == verdicts[1] and verdicts[0]


def test_a_complete_share_of_the_enumeration_does_not_stop_a_slot_while_the_program_has_more(race):
    target = str(race / "race.py") + "::fixed"
    one = explore(target, runs=1000, max_preemptions=1)
    many = explore(target, runs=1000, max_preemptions=1, workers=16)  # most shares are dealt no subtree
    assert one.runs == many.runs == 1000 and many.exhausted and not many.complete
    (race / "tiny.py").write_text("import threading\n\ndef main():\n    t = threading.Thread(target=lambda: None)\n"
                                  "    t.start()\n    t.join()\n")
    alone = explore(str(race / "tiny.py"), runs=1000)
    split = [explore(str(race / "tiny.py"), runs=1000, workers=8) for _ in range(2)]
    assert alone.complete and all(s.complete for s in split)  # every share complete: every slot stops
    assert split[0].runs == split[1].runs < 1000 and alone.runs < 1000
