"""Files a run changes are put back after it (interleave/filejournal.py): every run starts
from the files the first one found, with one worker or several.

Before, a run saw what earlier runs had written (a file that grows by a line a run), and two
workers' runs saw each other's files half-changed: a lock made of a marker file at a fixed
path made the program "not repeat itself" with two workers, while one worker passed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from interleave import explore
from interleave import filejournal

ROOT = Path(__file__).resolve().parent.parent


def cli(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "0"}
    return subprocess.run([sys.executable, "-m", "interleave", "explore", "target.py", *args], capture_output=True,
                          text=True, timeout=300, cwd=directory, env=env, stdin=subprocess.DEVNULL)


def write(directory: Path, source: str) -> Path:
    target = directory / "target.py"
    target.write_text(textwrap.dedent(source))
    return target


#: Every run appends a line to a log beside the program, makes a directory tree, rewrites a
#: settings file that was there before it (writes a temporary file, renames it over) and
#: removes a tree that was there before it.
CHANGES = """
    import os, shutil, threading
    HERE = os.path.dirname(os.path.abspath(__file__))

    def work():
        with open(os.path.join(HERE, "log.txt"), "a") as f:
            f.write("run\\n")
        os.makedirs(os.path.join(HERE, "made", "deeper"), exist_ok=True)
        with open(os.path.join(HERE, "made", "deeper", "x"), "w") as f:
            f.write("x")
        with open(os.path.join(HERE, "settings.tmp"), "w") as f:
            f.write("changed")
        os.replace(os.path.join(HERE, "settings.tmp"), os.path.join(HERE, "settings"))
        shutil.rmtree(os.path.join(HERE, "kept"))

    def main():
        with open(os.path.join(HERE, "settings")) as f:
            assert f.read() == "original", "a run found the settings an earlier run changed"
        with open(os.path.join(HERE, "kept", "inner", "data")) as f:
            assert f.read() == "data", "a run found the tree an earlier run removed"
        t = threading.Thread(target=work)
        t.start()
        t.join()
        with open(os.path.join(HERE, "log.txt")) as f:
            assert f.read() == "run\\n", "a run found the lines of the runs before it"
    """


def test_every_run_starts_from_the_files_the_first_found_and_they_are_put_back(tmp_path: Path) -> None:
    write(tmp_path, CHANGES)
    (tmp_path / "settings").write_text("original")
    (tmp_path / "settings").chmod(0o640)
    (tmp_path / "kept" / "inner").mkdir(parents=True)
    (tmp_path / "kept" / "inner" / "data").write_text("data")
    report = explore(str(tmp_path / "target.py"), runs=30, seed=0, workers=1, strategy="random")
    assert report.failure is None, report.failure and report.failure.message
    assert report.runs == 30
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "__pycache__") == ["kept", "settings", "target.py"]
    assert (tmp_path / "kept" / "inner" / "data").read_text() == "data"
    assert (tmp_path / "settings").read_text() == "original"
    assert (tmp_path / "settings").stat().st_mode & 0o777 == 0o640


#: Two threads take turns through a lock made of a marker file (created with O_EXCL, polled
#: with sleeps, removed to unlock), at a fixed path beside the program.
MARKER_LOCK = """
    import os, threading, time
    PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "marker.lock")
    total = 0

    def acquire():
        deadline = time.monotonic() + 2
        while True:
            try:
                os.close(os.open(PATH, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                return
            except FileExistsError:
                if time.monotonic() > deadline:
                    raise TimeoutError(PATH)
                time.sleep(0.05)

    def bump():
        global total
        acquire()
        try:
            v = total
            time.sleep(0.01)
            total = v + 1
        finally:
            {release}

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


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_marker_file_lock_at_a_fixed_path_gets_one_verdict_with_any_workers(tmp_path: Path, workers: str) -> None:
    write(tmp_path, MARKER_LOCK.format(release="os.remove(PATH)"))
    done = cli(tmp_path, "--workers", workers, "--runs", "1500")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("interleave: no failure in 1,500 runs, "), done.stdout
    assert not (tmp_path / "marker.lock").exists()


def test_a_run_that_leaves_the_marker_behind_does_not_lock_out_the_next(tmp_path: Path) -> None:
    """The unlock forgotten: each run's second thread times out (a real failure), but no run
    finds the marker the run before it left."""
    write(tmp_path, MARKER_LOCK.format(release="pass"))
    report = explore(str(tmp_path / "target.py"), runs=5, seed=0, workers=1, shrink_time=0)
    assert report.failure is not None and "TimeoutError" in report.failure.message
    assert report.failure.run == 1
    assert not (tmp_path / "marker.lock").exists()


def test_a_file_too_large_to_keep_stops_the_run_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(filejournal, "MAX_KEPT_BYTES", 10)
    (tmp_path / "big.bin").write_bytes(b"0123456789abcdef")
    write(tmp_path, """
        import os
        def main():
            with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "big.bin"), "wb") as f:
                f.write(b"x")
        """)
    report = explore(str(tmp_path / "target.py"), runs=5, seed=0, workers=1)
    assert report.uncontrolled is not None and "big.bin" in report.uncontrolled, report.uncontrolled
    assert "more than interleave keeps" in report.uncontrolled
    assert (tmp_path / "big.bin").read_bytes() == b"0123456789abcdef"
