"""Locks made before the run are controlled wherever they live; what cannot be controlled
stops the run with its name; and the tool never hangs.

Every exploration here runs in a subprocess with a timeout, so a lock that is not
controlled (which blocks the whole process) fails the test instead of hanging the suite.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 120

#: The target: ``main`` bumps a counter twice under the lock ``get()`` returns, ``racy``
#: without it. The first must come out clean, the second must be found.
TARGET = """
    import threading
    {imports}

    state = {{"n": 0}}

    def _run(locked):
        state["n"] = 0
        def bump():
            if locked:
                with {lock}:
                    v = state["n"]
                    state["n"] = v + 1
            else:
                v = state["n"]
                state["n"] = v + 1
        ts = [threading.Thread(target=bump) for _ in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert state["n"] == 2, state["n"]

    def main():
        _run(True)

    def racy():
        _run(False)
    """

#: Where the lock lives: (the helper module, the target's imports, the expression for the lock).
PLACES = {
    "module global": ("import threading\nLOCK = threading.Lock()\n",
                      "from helper import LOCK", "LOCK"),
    "attribute of an object made at import": (
        "import threading\nclass Registry:\n    def __init__(self):\n        self.lock = threading.Lock()\nREG = Registry()\n",
        "import helper", "helper.REG.lock"),
    "dict value": ("import threading\nclass Registry:\n    def __init__(self):\n"
                   "        self.locks = {'k': threading.Lock()}\nREG = Registry()\n",
                   "from helper import REG", "REG.locks['k']"),
    "list item": ("import threading\nLOCKS = [threading.Lock()]\n", "import helper", "helper.LOCKS[0]"),
    "tuple item": ("import threading\nPAIRS = [('k', (1, threading.Lock()))]\n",
                   "import helper", "helper.PAIRS[0][1][1]"),
    "class attribute": ("import threading\nclass Box:\n    lock = threading.RLock()\n",
                        "from helper import Box", "Box.lock"),
    "closure cell": ("import threading\ndef _make():\n    lock = threading.Lock()\n    return lambda: lock\n"
                     "get_lock = _make()\n", "import helper", "helper.get_lock()"),
    "default argument": ("import threading\ndef get_lock(lock=threading.Lock()):\n    return lock\n",
                         "import helper", "helper.get_lock()"),
    "default argument of a staticmethod": ("import threading\nclass Box:\n    @staticmethod\n"
                                           "    def get(lock=threading.Lock()):\n        return lock\n",
                                           "from helper import Box", "Box.get()"),
    "closure of a property": ("import threading\ndef _make():\n    lock = threading.Lock()\n"
                              "    return property(lambda self: lock)\nclass Box:\n    lock = _make()\n",
                              "from helper import Box", "Box().lock"),
    "condition made at import": ("import threading\nCOND = threading.Condition()\n",
                                 "import helper", "helper.COND"),
}


def explore_both(directory: Path, extra_path: Path | None = None) -> dict:
    """Explore ``target.py::main`` and ``::racy`` in one fresh interpreter; their outcomes."""
    script = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(directory)!r})
        {f"sys.path.insert(0, {str(extra_path)!r})" if extra_path else ""}
        from interleave import explore
        out = {{}}
        for func in ("main", "racy"):
            report = explore({str(directory / "target.py")!r} + "::" + func, runs=300, time_limit=20)
            out[func] = {{"failure": report.failure.message if report.failure else None,
                         "uncontrolled": report.uncontrolled, "runs": report.runs}}
        print(json.dumps(out))
        """)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "0"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=TIMEOUT,
                          cwd=directory, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def check(outcome: dict) -> None:
    main, racy = outcome["main"], outcome["racy"]
    assert main["uncontrolled"] is None and main["failure"] is None and main["runs"] > 1, main
    assert racy["uncontrolled"] is None and racy["failure"] is not None and "AssertionError" in racy["failure"], racy


@pytest.mark.parametrize("place", list(PLACES))
def test_a_lock_made_at_import_is_controlled_wherever_it_lives(tmp_path: Path, place: str) -> None:
    helper, imports, lock = PLACES[place]
    (tmp_path / "helper.py").write_text(helper)
    (tmp_path / "target.py").write_text(textwrap.dedent(TARGET).format(imports=imports, lock=lock))
    check(explore_both(tmp_path))


LIBRARY = """
    from threading import RLock

    _registry_lock = RLock()  # made at the library's import


    def call_locked(callback):
        with _registry_lock:  # held while the user's callback runs
            callback()


    class Guard:
        def __init__(self):
            self._lock = RLock()  # made later, through the name bound at import

        def run(self, callback):
            with self._lock:
                callback()


    GUARD = Guard()
    """


@pytest.mark.parametrize("use", ["fakelib.call_locked", "fakelib.GUARD.run", "fakelib.Guard().run"])
def test_an_installed_librarys_own_locks_are_controlled(tmp_path: Path, use: str) -> None:
    """An uncontrolled RLock held around the user's callback lets both threads in: a false alarm."""
    site = tmp_path / "site-packages"
    (site / "fakelib").mkdir(parents=True)
    (site / "fakelib" / "__init__.py").write_text(textwrap.dedent(LIBRARY))
    target = textwrap.dedent("""
        import threading
        import fakelib

        state = {"n": 0}

        def _run(locked):
            state["n"] = 0
            def work():
                v = state["n"]
                state["n"] = v + 1
            use = USE  # once per run: a Guard() made here is made inside the run
            bump = (lambda: use(work)) if locked else work
            ts = [threading.Thread(target=bump) for _ in range(2)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            assert state["n"] == 2, state["n"]

        def main():
            _run(True)

        def racy():
            _run(False)
        """).replace("USE", use)
    (tmp_path / "target.py").write_text(target)
    check(explore_both(tmp_path, extra_path=site))


LOCAL_LIBRARY = """
    import threading

    _state = threading.local()  # made at the library's import, as many libraries keep per-thread state
    _state.depth = 0  # the importing thread's own


    def enter():
        _state.depth = getattr(_state, "depth", 0) + 1
        return _state.depth


    def leave():
        _state.depth -= 1
    """


@pytest.mark.parametrize("where", ["user module", "installed package"])
def test_a_thread_local_made_at_import_is_each_threads_own(tmp_path: Path, where: str) -> None:
    """A real threading.local belongs to the OS thread, which all of a run's threads share:
    one thread's attribute showed in the other's (a false alarm), and carried into the next run."""
    site = tmp_path / "site-packages"
    home = site if where == "installed package" else tmp_path
    home.mkdir(exist_ok=True)
    (home / "perthread.py").write_text(textwrap.dedent(LOCAL_LIBRARY))
    (tmp_path / "target.py").write_text(textwrap.dedent("""
        import threading
        import perthread

        shared = {"depth": 0}

        def _run(own):
            shared["depth"] = 0
            assert perthread._state.depth == 0  # the main thread's, set at import
            def work():
                if own:
                    assert perthread.enter() == 1, "another thread's depth"
                    shared["last"] = threading.current_thread().name  # a switch point inside
                    perthread.leave()
                else:
                    shared["depth"] += 1
                    assert shared["depth"] == 1, "another thread's depth"
                    shared["depth"] -= 1
            ts = [threading.Thread(target=work) for _ in range(2)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()

        def main():
            _run(True)

        def racy():
            _run(False)
        """))
    outcome = explore_both(tmp_path, extra_path=site)
    main, racy = outcome["main"], outcome["racy"]
    assert main["uncontrolled"] is None and main["failure"] is None and main["runs"] > 1, main
    assert racy["failure"] is not None and "another thread's depth" in racy["failure"], racy


LAZY_LIBRARY = """
    import threading

    _guard = threading.Lock()
    _write_lock = None


    def get_lock():
        global _write_lock
        if _write_lock is None:  # made on first use, so in the first run of a process only
            with _guard:
                _write_lock = threading.RLock()
        return _write_lock
    """


@pytest.mark.parametrize(("func", "workers", "code"), [("main", "2", 1), ("main", "1", 1), ("fixed", "2", 0)])
def test_a_library_that_sets_itself_up_on_first_use_gives_runs_that_repeat(tmp_path: Path, func: str,
                                                                            workers: str, code: int) -> None:
    """The first run in a process took the library's guard, no later run did: a failure found in
    a later run did not replay in a fresh process, and the enumeration saw runs differ."""
    site = tmp_path / "site-packages"
    site.mkdir()
    (site / "lazylib.py").write_text(textwrap.dedent(LAZY_LIBRARY))
    (tmp_path / "target.py").write_text(textwrap.dedent("""
        import threading
        import lazylib

        DONE = {"n": 0}

        def _run(locked):
            DONE["n"] = 0
            def work():
                for _ in range(2):
                    lock = lazylib.get_lock()
                    if locked:
                        with lock:
                            v = DONE["n"]
                            DONE["n"] = v + 1
                    else:
                        v = DONE["n"]
                        DONE["n"] = v + 1
            ts = [threading.Thread(target=work) for _ in range(2)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            assert DONE["n"] == 4, f"lost count: {DONE['n']}"

        def main():
            _run(False)

        def fixed():
            _run(True)
        """))
    env_path = f"{site}{os.pathsep}{ROOT}"
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "interleave", "explore", f"target.py::{func}", "--runs", "300",
                           "--workers", workers], capture_output=True, text=True, timeout=TIMEOUT, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": env_path, "PYTHONHASHSEED": "0"})
    assert done.returncode == code, done.stdout + done.stderr
    assert ("lost count" in done.stdout) == (code == 1), done.stdout
    assert time.monotonic() - started < TIMEOUT


def test_a_session_fixtures_lock_in_a_dict_is_controlled(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_shared="""
        import threading
        import pytest

        @pytest.fixture(scope="session")
        def shared():
            return {"lock": threading.Lock(), "n": [0]}

        def _bump_twice(shared, locked):
            shared["n"][0] = 0
            def bump():
                if locked:
                    with shared["lock"]:
                        v = shared["n"][0]
                        shared["n"][0] = v + 1
                else:
                    v = shared["n"][0]
                    shared["n"][0] = v + 1
            ts = [threading.Thread(target=bump) for _ in range(2)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            assert shared["n"][0] == 2

        @pytest.mark.interleave(runs=200)
        def test_locked(shared):
            _bump_twice(shared, True)

        @pytest.mark.interleave(runs=200)
        def test_racy(shared):
            _bump_twice(shared, False)
        """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=TIMEOUT)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*FAILED*test_racy*"])


# ------------------------------------------------------------------ what cannot be controlled


def cli(directory: Path, *args: str, stdin: int = subprocess.DEVNULL) -> tuple[subprocess.CompletedProcess, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "0"}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "interleave", "explore", *args], capture_output=True, text=True,
                          timeout=TIMEOUT, cwd=directory, env=env, stdin=stdin)
    return done, time.monotonic() - started


USES_LOCK = """
    import threading
    from helper import LOCK

    def main():
        def use():
            with LOCK:
                pass
        ts = [threading.Thread(target=use) for _ in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    """

HELD_OUTSIDE = """
    import threading
    LOCK = threading.Lock()
    _held = threading.Event()
    def _hold():
        with LOCK:
            _held.set()
            threading.Event().wait()
    threading.Thread(target=_hold, daemon=True).start()
    _held.wait()
    """

UNSWAPPABLE = {
    "in a tuple inside a frozenset": ("import threading\nPAIRS = frozenset({('k', threading.Lock())})\n",
                                      "from helper import PAIRS\nLOCK = dict(PAIRS)['k']", "cannot swap"),
    "held by a real thread outside the run": (HELD_OUTSIDE, "from helper import LOCK", "held outside the run"),
}


@pytest.mark.parametrize("case", list(UNSWAPPABLE))
def test_a_lock_that_cannot_be_swapped_stops_the_run_with_one_line_naming_it(tmp_path: Path, case: str) -> None:
    helper, imports, why = UNSWAPPABLE[case]
    (tmp_path / "helper.py").write_text(textwrap.dedent(helper).lstrip())
    (tmp_path / "target.py").write_text(textwrap.dedent(USES_LOCK).replace("from helper import LOCK", imports))
    # Line steps: a real lock's `with` is no switch point where accesses are the steps, so
    # there the threads never meet on it (a known gap of the access model).
    done, elapsed = cli(tmp_path, "target.py", "--time-limit", "30", "--workers", "1", "--granularity", "line")
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "made at helper.py:2" in lines[0] and why in lines[0], lines[0]
    assert re.search(r"blocked on it at target\.py:\d+ `with LOCK:`", lines[0]), lines[0]
    assert elapsed < 30  # stopped at the first block, not by the time limit


def test_a_lock_inside_a_c_object_stops_the_run_at_the_first_block_with_its_name(tmp_path: Path) -> None:
    """A partial of a real lock's acquire: the walk did not see into the partial, and the call
    (no `acquire` by name) was stopped only by the time limit, without naming the lock."""
    (tmp_path / "helper.py").write_text("import functools\nimport threading\n"
                                        "ACQUIRE = functools.partial(threading.Lock().acquire)\n")
    (tmp_path / "target.py").write_text(textwrap.dedent("""
        import threading
        from helper import ACQUIRE

        def main():
            ts = [threading.Thread(target=ACQUIRE) for _ in range(2)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
        """))
    done, elapsed = cli(tmp_path, "target.py", "--time-limit", "30", "--workers", "1", "--granularity", "line")
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "real Lock" in lines[0] and "inside a partial" in lines[0] and "made at helper.py:3" in lines[0], lines[0]
    assert elapsed < 30  # stopped at the first block, not by the time limit


@pytest.mark.parametrize("threads", [1, 2])
def test_a_threading_local_subclass_defined_before_the_run_keeps_attributes_per_thread_of_the_run(
        tmp_path: Path, threads: int) -> None:
    """Its instances keep attributes per OS thread, which a run's threads share: two threads of a
    run saw one thread's attributes (a false alarm), later the run was refused. As real threads
    do, each thread of the run has its own attributes, every thread but the main one starts from
    ``__init__`` run again with the instance's own arguments, and the main thread keeps what
    import set."""
    (tmp_path / "helper.py").write_text(textwrap.dedent("""
        import threading

        class Ctx(threading.local):
            def __init__(self, *, start):
                self.depth = start

        CTX = Ctx(start=5)
        CTX.marker = "set at import"
        """))
    (tmp_path / "target.py").write_text(textwrap.dedent(f"""
        import threading
        from helper import CTX, Ctx

        def main():
            def work():
                assert not hasattr(CTX, "marker")
                for ctx in (CTX, Ctx(start=5)):  # made before the run, and in it
                    ctx.depth += 1
                    assert ctx.depth == 6, ctx.depth
                    ctx.depth -= 1
            ts = [threading.Thread(target=work) for _ in range({threads})]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            assert CTX.marker == "set at import" and CTX.depth == 5
        """))
    done, _ = cli(tmp_path, "target.py", "--strategy", "dfs", "--workers", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no failure" in done.stdout and "exhausted" in done.stdout, done.stdout
    assert "no data race" in done.stdout, done.stdout  # each thread's attributes are its own


BLOCKING = {
    "os.read of a pipe nobody writes": ("", "import os\nR, W = os.pipe()", "os.read(R, 1)"),
    "input() on a stdin nobody writes": ("", "", "input()"),
    "a C call that waits": ("", "import _queue\nQ = _queue.SimpleQueue()", "Q.get()"),
    "a real lock held outside the run": (HELD_OUTSIDE, "from helper import LOCK", "LOCK.acquire()"),
    # Holds the interpreter: no other thread of the process runs until it returns.
    "a regex that backtracks for ages": ("", "import re", "re.match(r'(a+)+b', 'a' * 40)"),
}


@pytest.mark.parametrize(("case", "workers"), [(case, workers) for case in BLOCKING for workers in ("1", "2")
                                               # worker processes read stdin from /dev/null (multiprocessing's doing)
                                               if workers == "1" or "stdin" not in case])
def test_the_time_limit_holds_whatever_the_program_blocks_in(tmp_path: Path, case: str, workers: str) -> None:
    helper, setup, call = BLOCKING[case]
    if helper:
        (tmp_path / "helper.py").write_text(textwrap.dedent(helper).lstrip())
    (tmp_path / "target.py").write_text(f"import threading\n{setup}\n\ndef main():\n    def block():\n        {call}\n"
                                        "    t = threading.Thread(target=block)\n    t.start()\n    t.join()\n")
    reader, writer = os.pipe()  # a stdin that stays open and empty
    try:
        done, elapsed = cli(tmp_path, "target.py", "--time-limit", "3", "--workers", workers, stdin=reader)
    finally:
        os.close(reader)
        os.close(writer)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    # Named by the watchdog (the call that did not return), or refused by name before it blocks.
    named = f"`{call}`" in lines[0] or f"used {call.split('(')[0].replace('R, 1', '')}" in lines[0]
    assert len(lines) == 1 and named and "target.py" in lines[0], done.stderr
    assert elapsed < 3 + 30, elapsed  # the time limit, the watchdog's grace, a loaded machine's slack
