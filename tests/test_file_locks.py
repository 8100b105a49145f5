"""File locks (``fcntl.flock``, ``fcntl.lockf``, the ``filelock`` package) get the verdict real
Python gives, with one worker or several.

Taken for real, a thread's ``flock`` blocked the whole process when another thread of the run
asked for it (the run was refused at the time limit), and between workers exploring at once
a lock at a fixed path made one worker's run wait for another's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: ``bump`` adds one to a counter under an ``flock`` of one file (each thread opens it itself): correct.
#: ``{take}`` takes the lock, ``{give}`` gives it back.
BUMPS = """
    import fcntl, os, threading, time
    PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bump.lock")
    total = 0

    def bump():
        global total
        with open(PATH if {shared} else PATH + threading.current_thread().name, "w") as f:
            {take}
            v = total
            total = v + 1
            {give}
    """


def explore(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "0"}
    return subprocess.run([sys.executable, "-m", "interleave", "explore", "target.py", *args], capture_output=True,
                          text=True, timeout=120, cwd=directory, env=env, stdin=subprocess.DEVNULL)


#: The ``main`` of the programs that define ``bump``: two threads bump, the total must be 2.
TWO_BUMPS = """

    def main():
        global total
        total = 0
        ts = [threading.Thread(target=bump) for _ in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert total == 2, total
    """


def write(directory: Path, source: str, main: str = TWO_BUMPS) -> None:
    (directory / "target.py").write_text(textwrap.dedent(source) + textwrap.dedent(main))


def summary(done: subprocess.CompletedProcess[str]) -> str:
    """The verdict line without its time and worker count (which differ between commands)."""
    first = done.stdout.splitlines()[0]
    return first.split(",")[0] + first.split(",")[1]


@pytest.mark.parametrize("take, give", [
    ("fcntl.flock(f, fcntl.LOCK_EX)", "fcntl.flock(f, fcntl.LOCK_UN)"),
    ("fcntl.flock(f.fileno(), fcntl.LOCK_EX)", "pass  # the file's close releases it"),
    ("fcntl.flock(f, fcntl.LOCK_SH); fcntl.flock(f, fcntl.LOCK_EX)", "pass  # converted, then closed"),
], ids=["unlock", "close", "convert"])
def test_threads_serialised_by_flock_pass_with_one_worker_or_two(tmp_path: Path, take: str, give: str) -> None:
    write(tmp_path, BUMPS.format(shared=True, take=take, give=give))
    one = explore(tmp_path, "--strategy", "dfs", "--workers", "1", "--time-limit", "60")
    two = explore(tmp_path, "--strategy", "dfs", "--workers", "2", "--time-limit", "60")
    for done in (one, two):
        assert done.returncode == 0, done.stdout + done.stderr
        assert "no failure" in done.stdout and "exhausted" in done.stdout, done.stdout
        assert "no data race" in done.stdout, done.stdout  # the flock orders the two bumps
    assert summary(one) == summary(two)


def test_flock_of_different_files_does_not_serialise_and_the_lost_update_is_found(tmp_path: Path) -> None:
    write(tmp_path, BUMPS.format(shared=False, take="fcntl.flock(f, fcntl.LOCK_EX)",
                                 give="fcntl.flock(f, fcntl.LOCK_UN)"))
    done = explore(tmp_path, "--strategy", "dfs", "--workers", "1")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "AssertionError" in done.stdout, done.stdout


def test_lockf_does_not_exclude_threads_of_one_process_as_in_real_python(tmp_path: Path) -> None:
    """POSIX record locks belong to the process: the lost update they do not prevent is found."""
    write(tmp_path, BUMPS.format(shared=True, take="fcntl.lockf(f, fcntl.LOCK_EX)",
                                 give="fcntl.lockf(f, fcntl.LOCK_UN)"))
    done = explore(tmp_path, "--strategy", "dfs", "--workers", "1")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "AssertionError" in done.stdout, done.stdout


def test_a_non_blocking_flock_polled_with_a_timeout_passes(tmp_path: Path) -> None:
    """``LOCK_NB`` fails at once while another thread holds it; polling with sleeps gets it in
    virtual time, long before the program's own timeout."""
    write(tmp_path, """
        import fcntl, os, threading, time
        PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "poll.lock")
        total = 0

        def acquire():
            fd = os.open(PATH, os.O_RDWR | os.O_CREAT, 0o644)
            deadline = time.monotonic() + 1.0
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return fd
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(PATH)
                    time.sleep(0.05)

        def bump():
            global total
            fd = acquire()
            v = total
            time.sleep(0.01)
            total = v + 1
            os.close(fd)  # releases it
        """)
    done = explore(tmp_path, "--strategy", "dfs", "--workers", "1", "--time-limit", "60")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no failure" in done.stdout and "exhausted" in done.stdout, done.stdout


def test_two_flocks_taken_in_opposite_orders_deadlock_and_the_report_names_the_file(tmp_path: Path) -> None:
    write(tmp_path, """
        import fcntl, os, threading
        HERE = os.path.dirname(os.path.abspath(__file__))
        A, B = os.path.join(HERE, "a.lock"), os.path.join(HERE, "b.lock")

        def both(first, second):
            with open(first, "w") as f:
                fcntl.flock(f, fcntl.LOCK_EX)
                with open(second, "w") as g:
                    fcntl.flock(g, fcntl.LOCK_EX)

        def main():
            ts = [threading.Thread(target=both, args=(A, B)), threading.Thread(target=both, args=(B, A))]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
        """, main="")
    done = explore(tmp_path, "--strategy", "dfs", "--workers", "1", "--time-limit", "60")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAILURE (deadlock)" in done.stdout, done.stdout
    assert "blocked in fcntl.flock" in done.stdout and "waits for the file lock on" in done.stdout, done.stdout
    assert "a.lock held by" in done.stdout or "b.lock held by" in done.stdout, done.stdout


def test_the_filelock_package_gets_the_real_verdict_with_one_worker_or_two(tmp_path: Path) -> None:
    """Its lock is an flock polled with ``LOCK_NB``, its state a ``threading.local`` subclass
    made at its import: the program was refused, and its lock would be shared by the workers."""
    pytest.importorskip("filelock")
    source = """
        import os, threading
        from filelock import FileLock
        LOCK = FileLock(os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib.lock"), timeout=5)
        total = 0

        def bump():
            global total
            with {guard}:
                v = total
                total = v + 1
        """
    write(tmp_path, source.format(guard="LOCK"))
    verdicts = []
    for workers in ("1", "2"):
        done = explore(tmp_path, "--workers", workers, "--runs", "400")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "no failure in 400 runs" in done.stdout, done.stdout
        verdicts.append(summary(done))
    assert verdicts[0] == verdicts[1]
    write(tmp_path, source.format(guard="open(os.devnull)"))
    done = explore(tmp_path, "--workers", "2", "--runs", "400")
    assert done.returncode == 1 and "AssertionError" in done.stdout, done.stdout + done.stderr
