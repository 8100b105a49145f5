"""File locks (``fcntl.flock``, ``fcntl.lockf``, ``fcntl.fcntl``'s record locks, the ``filelock``
package) get the verdict real Python gives, with one worker or several.

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


#: A whole-file ``struct flock`` for ``fcntl.fcntl`` (as Linux lays it out on 64-bit machines).
WHOLE = 'struct.pack("hh4xqqi4x", fcntl.{kind}, os.SEEK_SET, 0, 0, 0)'
RECORD_BUMPS = BUMPS.replace("import fcntl, os, threading, time", "import fcntl, os, struct, threading, time")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_threads_serialised_by_open_file_description_locks_pass(tmp_path: Path, workers: str) -> None:
    """``F_OFD_SETLKW`` locks belong to the open file, as ``flock``'s do: taken for real, the
    second thread's blocked the whole process."""
    source = RECORD_BUMPS.format(
        shared=True, take=f"fcntl.fcntl(f, fcntl.F_OFD_SETLKW, {WHOLE.format(kind='F_WRLCK')})",
        give=f"fcntl.fcntl(f, fcntl.F_OFD_SETLK, {WHOLE.format(kind='F_UNLCK')})")
    write(tmp_path, source)
    done = explore(tmp_path, "--strategy", "dfs", "--workers", workers, "--time-limit", "30")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no failure" in done.stdout and "exhausted" in done.stdout, done.stdout


def test_a_held_open_file_description_lock_refuses_a_non_blocking_try_and_get_lk_reports_it(tmp_path: Path) -> None:
    write(tmp_path, """
        import errno, fcntl, os, struct, threading
        PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ofd.lock")
        seen = []

        def whole(kind):
            return struct.pack("hh4xqqi4x", kind, os.SEEK_SET, 0, 0, 0)

        def main():
            held, ready, done = open(PATH, "w"), threading.Event(), threading.Event()
            fcntl.fcntl(held, fcntl.F_OFD_SETLKW, whole(fcntl.F_WRLCK))

            def other():
                with open(PATH, "w") as f:
                    seen.append(struct.unpack_from("h", fcntl.fcntl(f, fcntl.F_OFD_GETLK, whole(fcntl.F_RDLCK)))[0])
                    try:
                        fcntl.fcntl(f, fcntl.F_OFD_SETLK, whole(fcntl.F_RDLCK))
                    except OSError as exc:
                        seen.append(exc.errno)

            t = threading.Thread(target=other)
            t.start()
            t.join()
            held.close()
            assert seen == [fcntl.F_WRLCK, errno.EAGAIN], seen
        """, main="")
    done = explore(tmp_path, "--strategy", "dfs", "--workers", "1", "--time-limit", "30")
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("take, give", [
    (f"fcntl.fcntl(f, fcntl.F_SETLKW, {WHOLE.format(kind='F_WRLCK')})",
     f"fcntl.fcntl(f, fcntl.F_SETLK, {WHOLE.format(kind='F_UNLCK')})"),
    (f"assert struct.unpack_from('h', fcntl.fcntl(f, fcntl.F_GETLK, {WHOLE.format(kind='F_WRLCK')}))[0] == fcntl.F_UNLCK",
     "pass"),
], ids=["setlkw", "getlk"])
def test_posix_record_locks_of_fcntl_do_not_exclude_threads_as_in_real_python(tmp_path: Path, take: str,
                                                                              give: str) -> None:
    write(tmp_path, RECORD_BUMPS.format(shared=True, take=take, give=give))
    done = explore(tmp_path, "--strategy", "dfs", "--workers", "2")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "AssertionError: 1" in done.stdout, done.stdout


def test_a_byte_range_open_file_description_lock_is_refused_by_name(tmp_path: Path) -> None:
    write(tmp_path, RECORD_BUMPS.format(
        shared=True, take='fcntl.fcntl(f, fcntl.F_OFD_SETLKW, struct.pack("hh4xqqi4x", fcntl.F_WRLCK, 0, 0, 10, 0))',
        give="pass"))
    done = explore(tmp_path, "--workers", "1", "--time-limit", "30")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "F_OFD_SETLK" in done.stdout + done.stderr and "byte range" in done.stdout + done.stderr


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
