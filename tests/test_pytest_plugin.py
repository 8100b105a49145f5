"""The pytest plugin, driven through pytester as a user would drive pytest."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from interleave import strategies

pytest_plugins = ["pytester"]

RACY = """
    import threading
    import pytest


    class Counter:
        def __init__(self):
            self.value = 0

        def increment(self):
            current = self.value
            self.value = current + 1


    @pytest.fixture
    def counter():
        return Counter()


    @pytest.mark.interleave
    def test_counter(counter):
        threads = [threading.Thread(target=counter.increment) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert counter.value == 2
"""

# The same test with the bug fixed: the read and the write happen under a lock.
FIXED = RACY.replace(
    """            self.value = 0

        def increment(self):
            current = self.value
            self.value = current + 1""",
    """            self.value = 0
            self.lock = threading.Lock()

        def increment(self):
            with self.lock:
                current = self.value
                self.value = current + 1""",
)

TOKEN = re.compile(r"--interleave-replay=(\S+)")


def kept_tokens(pytester: pytest.Pytester) -> list[Path]:
    return sorted((pytester.path / ".interleave" / "pytest").glob("*/*.token"))


def test_racy_test_fails_with_kind_trace_and_replay_lines(pytester: pytest.Pytester,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # The replay line repeats the invocation: as if `pytest` ran (not an xdist worker of this suite).
    monkeypatch.setattr(sys, "argv", ["pytest"])
    pytester.makepyfile(test_counter=RACY)
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "interleave: FAILURE (exception) AssertionError: assert 1 == 2 in MainThread at test_counter.py:*",
        "*shrunk to 1 preemption(s)*",
        "*>> preemption: Thread-1 (increment) is paused after it reads Counter.value -> 0 (test_counter.py:10); MainThread runs",
        "*XX AssertionError*",
        "Replay it:",
        "  *pytest test_counter.py::test_counter --interleave-replay=4.*",
        '  @pytest.mark.interleave(replay="4.*")',
    ])
    assert "pytest_plugin/" not in result.stdout.str()  # no traceback through interleave itself
    assert len(kept_tokens(pytester)) == 1


def test_correct_test_passes_and_unmarked_tests_are_left_alone(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_counter=FIXED, test_plain="""
        import threading

        def test_real_threads():
            assert type(threading.Lock()).__module__ == "_thread"  # the real lock, not interleave's
            done = []
            t = threading.Thread(target=done.append, args=(1,))
            t.start()
            t.join()
            assert done == [1]
    """)
    result = pytester.runpytest("--strict-markers", "--interleave-runs=200")
    result.assert_outcomes(passed=2)
    assert kept_tokens(pytester) == []


def test_replay_line_and_pinned_marker_fail_again_at_once(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_counter=RACY)
    token = TOKEN.search(pytester.runpytest().stdout.str()).group(1)
    for path in kept_tokens(pytester):
        path.unlink()  # only the replay line may reproduce it here

    replayed = pytester.runpytest("test_counter.py::test_counter", f"--interleave-replay={token}")
    replayed.assert_outcomes(failed=1)
    replayed.stdout.fnmatch_lines(["interleave: FAILURE (exception)*", "  replayed the replay token:*"])

    pinned = RACY.replace("@pytest.mark.interleave\n", f'@pytest.mark.interleave(replay="{token}")\n')
    pytester.makepyfile(test_counter=pinned)
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["  replayed the replay token:*"])

    # Edited to debug it (a print, a message on the assertion), the test replays the same schedule.
    debugged = pinned.replace("assert counter.value == 2",
                              "print('the counter is', counter.value)\n        assert counter.value == 2, 'lost'")
    pytester.makepyfile(test_counter=debugged)
    changed = pytester.runpytest()
    changed.assert_outcomes(failed=1)
    changed.stdout.fnmatch_lines(["interleave: FAILURE (exception) AssertionError: lost*",
                                  "  replayed the replay token:*", "*print('the counter is', counter.value)*"])
    assert "found in run" not in changed.stdout.str()


def test_replay_of_a_fixed_bug_passes_or_explores(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_counter=RACY)
    token = TOKEN.search(pytester.runpytest().stdout.str()).group(1)
    pytester.makepyfile(test_counter=FIXED)
    result = pytester.runpytest(f"--interleave-replay={token}", "--interleave-runs=50")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*interleave notes*", "*the replay token*"])


def test_kept_failure_is_replayed_first_then_confirms_the_fix(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_counter=RACY)
    pytester.runpytest().assert_outcomes(failed=1)
    [kept] = kept_tokens(pytester)

    # One random schedule would hardly fail: the kept schedule, replayed first, does.
    again = pytester.runpytest("--interleave-runs=1", "--interleave-strategy=random")
    again.assert_outcomes(failed=1)
    again.stdout.fnmatch_lines(["  replayed the kept failure .interleave/pytest/*.token:*"])

    # Fixed, the test runs the kept schedule (its decisions found by where they were made) and passes.
    pytester.makepyfile(test_counter=FIXED)
    fixed = pytester.runpytest("--interleave-runs=50")
    fixed.assert_outcomes(passed=1)
    fixed.stdout.fnmatch_lines(["*interleave notes*", "*the kept failure*ran without failing*"])
    assert kept.exists()  # it goes on confirming the fix
    # Broken again, the kept schedule finds it at once.
    pytester.makepyfile(test_counter=RACY)
    broken = pytester.runpytest("--interleave-runs=1", "--interleave-strategy=random")
    broken.assert_outcomes(failed=1)
    broken.stdout.fnmatch_lines(["  replayed the kept failure .interleave/pytest/*.token:*"])


def test_function_fixtures_are_fresh_for_every_schedule(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_fixtures="""
        import threading
        import pytest

        EVENTS = []


        class Account:
            def __init__(self):
                self.balance = 0
                self.lock = threading.Lock()  # made inside the run: a controlled lock

            def deposit(self, amount):
                with self.lock:
                    current = self.balance
                    self.balance = current + amount


        @pytest.fixture
        def account():
            EVENTS.append("setup")
            yield Account()
            EVENTS.append("teardown")


        @pytest.mark.interleave(runs=30, strategy="random")
        def test_deposits(account):
            assert account.balance == 0  # a shared fixture would carry the last schedule's 2
            threads = [threading.Thread(target=account.deposit, args=(1,)) for _ in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert account.balance == 2


        def test_every_setup_was_torn_down():
            # pytest's own setup, then one per schedule; each one torn down.
            assert EVENTS.count("setup") == 31
            assert EVENTS == ["setup", "teardown"] * 31
    """)
    result = pytester.runpytest_subprocess(timeout=60)  # a real lock here would hang, not fail
    result.assert_outcomes(passed=2)


def test_locks_in_objects_made_at_import_are_controlled(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_module_objects="""
        import threading
        import pytest


        class Counter:
            registry_lock = threading.RLock()

            def __init__(self):
                self.value = 0
                self.lock = threading.Lock()

            def increment(self):
                with Counter.registry_lock:
                    with self.lock:
                        current = self.value
                        self.value = current + 1


        counter = Counter()  # made at import: its lock is a real one


        @pytest.mark.interleave(runs=50)
        def test_counter():
            counter.value = 0
            threads = [threading.Thread(target=counter.increment) for _ in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert counter.value == 2


        @pytest.fixture(scope="module")
        def shared_counter():
            return Counter()  # made outside the runs too


        @pytest.mark.interleave(runs=50)
        def test_shared_counter(shared_counter):
            shared_counter.value = 0
            threads = [threading.Thread(target=shared_counter.increment) for _ in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert shared_counter.value == 2


        lock = threading.Lock()
        ready = threading.Condition(lock)  # made at import, on a module-level lock
        state = {"go": False}


        @pytest.mark.interleave(runs=50)
        def test_condition_made_at_import():
            state["go"] = False
            seen = []

            def waiter():
                with ready:
                    while not state["go"]:
                        ready.wait()
                    seen.append(1)

            t = threading.Thread(target=waiter)
            t.start()
            with lock:  # the Condition's own lock: still one lock under interleave
                state["go"] = True
                ready.notify_all()
            t.join()
            assert seen == [1]


        def test_real_locks_are_back(shared_counter):
            assert type(counter.lock).__module__ == type(Counter.registry_lock).__module__ == "_thread"
            assert type(shared_counter.lock).__module__ == type(lock).__module__ == "_thread"
            assert type(ready._lock).__module__ == "_thread"
    """)
    result = pytester.runpytest_subprocess(timeout=60)  # a real lock held across a switch would hang
    result.assert_outcomes(passed=4)


def test_state_kept_between_calls_is_named_not_reported_as_a_race(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_global="""
        import threading
        import pytest

        counter = 0
        lock = threading.Lock()


        def increment():
            global counter
            with lock:
                counter += 1


        @pytest.mark.interleave
        def test_increment():  # correct, but counts on a module global it never resets
            threads = [threading.Thread(target=increment) for _ in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert counter == 2
    """)
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["interleave: the test does not repeat itself: its first run, in the default "
                                 "order, passed, and run 2, in that same order, failed (AssertionError*"])
    assert kept_tokens(pytester) == []


def test_settings_command_line_over_marker_over_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ninterleave_runs = 7\n")
    pytester.makepyfile(test_budget="""
        import pytest

        CALLS = {"ini": 0, "marker": 0}


        @pytest.mark.interleave(strategy="random")
        def test_ini():
            CALLS["ini"] += 1


        @pytest.mark.interleave(runs=3, strategy="random")
        def test_marker():
            CALLS["marker"] += 1


        def test_counts(request):
            expected = int(request.config.getoption("interleave_runs") or 0)
            assert CALLS == {"ini": expected or 7, "marker": expected or 3}
    """)
    pytester.runpytest().assert_outcomes(passed=3)
    pytester.runpytest("--interleave-runs=5").assert_outcomes(passed=3)


def test_bad_marker_argument_is_one_clear_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_bad="""
        import pytest

        @pytest.mark.interleave(run=5)
        def test_it():
            pass
    """)
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*@pytest.mark.interleave got unknown argument 'run' (expected runs, *"])
    assert "Traceback" not in result.stdout.str()


def test_bad_options_are_one_line_usage_errors(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_counter=FIXED)
    for option, line in [("--interleave-replay=not-a-token", "ERROR: --interleave-replay: corrupt replay token*"),
                         ("--interleave-runs=0", "ERROR: --interleave-runs: expected a whole number >= 1, got 0"),
                         ("--interleave-time-limit=nan", "ERROR: --interleave-time-limit: expected a number > 0, got nan"),
                         ("--interleave-strategy=fast", "ERROR: --interleave-strategy: expected one of portfolio, *"),
                         ("--interleave-granularity=word", "ERROR: --interleave-granularity: expected one of access*")]:
        result = pytester.runpytest(option)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([line])
        assert "Traceback" not in result.stderr.str()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_skip_or_xfail_inside_the_body_is_a_skip_or_xfail_with_any_workers(pytester: pytest.Pytester,
                                                                          workers: str) -> None:
    pytester.makepyfile(test_skip="""
        import pytest

        @pytest.mark.interleave(runs=3)
        def test_skipped():
            pytest.skip("not today")

        @pytest.mark.interleave(runs=3)
        def test_xfailed():
            pytest.xfail("known")
    """)
    result = pytester.runpytest(f"--interleave-workers={workers}", "-rsx")
    result.assert_outcomes(skipped=1, xfailed=1)
    result.stdout.fnmatch_lines(["*not today*", "*known*"], consecutive=False)


def test_hypothesis_shows_minimal_input_and_minimal_schedule(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_given="""
        import threading
        import pytest
        from hypothesis import given, settings, strategies as st


        class Counter:
            def __init__(self):
                self.value = 0

            def add(self, n):
                current = self.value
                self.value = current + n


        @pytest.fixture
        def counter():
            return Counter()


        @pytest.mark.interleave(runs=40)
        @settings(max_examples=20, database=None)
        @given(st.integers(0, 1000))
        def test_add(counter, n):
            threads = [threading.Thread(target=counter.add, args=(n,)) for _ in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert counter.value == 2 * n
    """)
    result = pytester.runpytest("-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "interleave: FAILURE (exception) AssertionError: assert 1 == (2 * 1)*",
        "* test_add(",  # Hypothesis's "Falsifying example" (or, in newer versions, "Failing test case")
        "*n=1,",  # 0 cannot fail: 1 is the minimal input
        ")",
        "*shrunk to 1 preemption(s)*",
        "*--interleave-replay=4.*",
    ])


def test_hypothesis_correct_test_passes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_given="""
        import threading
        import pytest
        from hypothesis import given, settings, strategies as st


        @pytest.mark.interleave(runs=10)
        @settings(max_examples=5, database=None)
        @given(st.integers(0, 5))
        def test_add(n):
            lock = threading.Lock()
            box = [0]

            def add():
                with lock:
                    box[0] += n

            threads = [threading.Thread(target=add) for _ in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert box[0] == 2 * n
    """)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_xdist_workers_explore_their_own_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_racy=RACY, test_fixed=FIXED)
    result = pytester.runpytest_subprocess("-n", "2", "--interleave-runs=100", timeout=60)
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["*interleave: FAILURE (exception)*", "*--interleave-replay=4.*"])
    assert len(kept_tokens(pytester)) == 1


def test_coverage_measures_code_run_under_interleave(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(bank="""
        import threading


        class Account:
            def __init__(self):
                self.balance = 0
                self.lock = threading.Lock()

            def deposit(self, amount, twice):
                with self.lock:
                    if twice:
                        amount *= 2
                    self.balance += amount


        def worker(account):
            account.deposit(1, twice=False)
    """, test_bank="""
        import threading
        import pytest
        from bank import Account, worker


        @pytest.mark.interleave(runs=20)
        def test_deposit():
            account = Account()
            threads = [threading.Thread(target=worker, args=(account,)) for _ in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert account.balance == 2
    """)
    # Every line of bank.py but the body of `if twice:` runs, and only inside the runs.
    lines = pytester.runpytest_subprocess("--cov=bank", "--cov-report=term-missing", timeout=60)
    lines.assert_outcomes(passed=1)
    lines.stdout.re_match_lines([r"bank\.py\s+12\s+1\s+92%\s+12$"])
    branches = pytester.runpytest_subprocess("--cov=bank", "--cov-branch", "--cov-report=term-missing", timeout=60)
    branches.assert_outcomes(passed=1)
    branches.stdout.re_match_lines([r"bank\.py\s+12\s+1\s+2\s+1\s+86%\s+12$"])


def test_importing_the_plugin_patches_nothing() -> None:
    code = textwrap.dedent("""
        import _thread, threading, time
        before = (threading._allocate_lock, threading.Lock, time.sleep, time.monotonic, _thread.start_new_thread)
        import interleave.pytest_plugin
        after = (threading._allocate_lock, threading.Lock, time.sleep, time.monotonic, _thread.start_new_thread)
        assert before == after, after
        assert "hypothesis" not in __import__("sys").modules
    """)
    subprocess.run([sys.executable, "-c", code], check=True)


def _store(pytester: pytest.Pytester, nodeid: str) -> Path:
    import hashlib

    return pytester.path / ".interleave" / "pytest" / hashlib.sha256(nodeid.encode()).hexdigest()[:16]


def test_the_store_drops_entries_it_cannot_read_with_a_note(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_counter=FIXED)
    store = _store(pytester, "test_counter.py::test_counter")
    store.mkdir(parents=True)
    (store / "binary.token").write_bytes(b"\xff\xfe\x00 not text")
    (store / "garbage.token").write_text("not-a-token\n")
    (store / "old.token").write_text("1.311.00000000.d.aeaqaaabayaai.3w6t2ua\n")
    result = pytester.runpytest("--interleave-runs=20")
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    assert "binary.token cannot be read (not text); it was dropped" in out
    assert "garbage.token is not a replay token this interleave reads (corrupt replay token" in out
    assert "old.token is not a replay token this interleave reads (this replay token is of an older format" in out
    assert not list(store.glob("*.token"))


def test_the_store_never_follows_a_symbolic_link(pytester: pytest.Pytester, tmp_path_factory) -> None:
    outside = tmp_path_factory.mktemp("outside")
    pytester.makepyfile(test_counter=RACY)
    token = TOKEN.search(pytester.runpytest().stdout.str()).group(1)
    [kept] = kept_tokens(pytester)
    kept.unlink()
    (outside / "elsewhere.token").write_text(token + "\n")
    link = kept.parent / "linked.token"
    link.symlink_to(outside / "elsewhere.token")

    # A linked entry is not read (a kept failure would be replayed first): dropped, the link only.
    result = pytester.runpytest("--interleave-runs=1", "--interleave-strategy=dfs")
    out = result.stdout.str()
    assert "replayed the kept failure" not in out
    assert "linked.token is a symbolic link: interleave does not follow it; it was dropped" in out
    assert not link.is_symlink() and (outside / "elsewhere.token").exists()

    # A linked store directory is neither read nor written through.
    import shutil

    shutil.rmtree(pytester.path / ".interleave")
    (pytester.path / ".interleave").symlink_to(outside, target_is_directory=True)
    found = pytester.runpytest()
    found.assert_outcomes(failed=1)
    assert ".interleave is a symbolic link: interleave does not follow it" in found.stdout.str()
    assert sorted(p.name for p in outside.iterdir()) == ["elsewhere.token"]


READ_ONLY = """
import builtins, errno, io, os

def _refuse(path):
    raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)

def _guard(real, writes):
    def guarded(path, *args, **kwargs):
        named = isinstance(path, (str, bytes, os.PathLike))
        if named and ".interleave" in os.fsdecode(path) and writes(args, kwargs):
            _refuse(path)
        return real(path, *args, **kwargs)
    return guarded

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT
os.open = _guard(os.open, lambda a, k: bool((a[0] if a else k.get("flags", 0)) & _WRITE_FLAGS))
for name in ("mkdir", "replace", "rename", "unlink", "utime", "rmdir"):
    setattr(os, name, _guard(getattr(os, name), lambda a, k: True))
_opener = lambda a, k: any(c in (a[0] if a else k.get("mode", "r")) for c in "wax+")
builtins.open = io.open = _guard(io.open, _opener)
"""


def test_a_read_only_store_never_fails_a_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_fixed=FIXED, test_racy=RACY)
    stale = _store(pytester, "test_fixed.py::test_counter")
    stale.mkdir(parents=True)
    (stale / "stale.token").write_text("1.311.00000000.d.aeaqaaabayaai.3w6t2ua\n")
    pytester.makeconftest(READ_ONLY)  # the store's file system is read-only from here on
    result = pytester.runpytest_subprocess("--interleave-runs=200", timeout=120)
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert "interleave: FAILURE (exception) AssertionError" in out
    assert "stale.token is not a replay token this interleave reads" in out
    assert "it was passed over (the store cannot be written)" in out
    assert "the failing schedule was not kept under .interleave/pytest (Read-only file system)" in out
    assert "pytest_plugin/" not in out and (stale / "stale.token").exists()  # no traceback of ours


ONE_LINE_RACE = """
    import threading
    import pytest


    @pytest.mark.interleave{arguments}
    def test_add():
        box = [0]

        def add():
            box[0] += 1

        threads = [threading.Thread(target=add) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert box[0] == 2
"""


def test_exploration_settings_reach_the_engine_from_the_marker(pytester: pytest.Pytester) -> None:
    # `box[0] += 1` is one line: only a switch point inside it (opcode granularity) shows the race.
    pytester.makepyfile(test_line=ONE_LINE_RACE.format(arguments='(granularity="line", runs=300)'),
                        test_opcode=ONE_LINE_RACE.format(arguments='(granularity="opcode", runs=300, shrink_time=2)'),
                        test_steps="""
                            import pytest

                            @pytest.mark.interleave(max_steps=3, workers=1, max_pauses=0)
                            def test_add():
                                box = [0]
                                while box[0] < 10_000:  # past 100 times its step bound: stopped as a hang
                                    box[0] += 1
                        """,
                        test_surw=FIXED.replace("@pytest.mark.interleave\n",
                                                '@pytest.mark.interleave(strategy="surw", runs=50, depth=2, '
                                                'max_preemptions=1, max_faults=0)\n'))
    result = pytester.runpytest("-rf")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(["FAILED test_opcode.py::test_add - Failed: interleave: FAILURE (exception)*",
                                 "FAILED test_steps.py::test_add - Failed: interleave: FAILURE (hang)*"])


@pytest.mark.parametrize("strategy", strategies.NAMES)
def test_the_marker_takes_every_strategy_the_engine_has(pytester: pytest.Pytester, strategy: str) -> None:
    # The engine's list, not one of the plugin's: a strategy the marker refused, or one that
    # did not reach the engine, shows here as a failure or as another name in the statistics.
    pytester.makepyfile(test_counter=FIXED.replace("@pytest.mark.interleave\n",
                                                   f'@pytest.mark.interleave(strategy="{strategy}", runs=3)\n'))
    result = pytester.runpytest("--interleave-stats", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"test_counter.py::test_counter: * run*, *s ?{strategy}, seed 0?; *"])


def _always_fails() -> None:
    box = []

    def add(x: int) -> None:
        for _ in range(3):
            box.append(x)

    threads = [threading.Thread(target=add, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    raise AssertionError(box)


@pytest.mark.parametrize("strategy", strategies.NAMES)
def test_a_strategy_starts_in_the_default_order_exactly_when_it_says_so(strategy: str) -> None:
    # The plugin names a test that keeps state between calls only after a strategy whose
    # first run is the default order (its run 1 passed in the order that later failed).
    import interleave
    from interleave.schedule import Token

    first_runs = [interleave.explore(_always_fails, strategy=strategy, seed=seed, runs=1, shrink_time=0).failure
                  for seed in range(3)]
    in_default_order = [not Token.decode(failure.replay).deviations for failure in first_runs]
    assert all(in_default_order) if strategies.make(strategy).first_run_in_default_order else not any(in_default_order)


@pytest.mark.parametrize("table", ["[tool.pytest.ini_options]", "[tool.pytest]"])
def test_ini_options_take_native_toml_values(pytester: pytest.Pytester, table: str) -> None:
    if table == "[tool.pytest]" and pytest.version_tuple < (9,):
        pytest.skip("[tool.pytest] is read by pytest 9 and later")
    pytester.makepyprojecttoml(f"""
        {table}
        interleave_runs = 40
        interleave_time_limit = 60
        interleave_seed = 3
        interleave_strategy = "random"
        interleave_granularity = "opcode"
        interleave_max_steps = 100000
        interleave_max_preemptions = 2
        interleave_max_pauses = 1
        interleave_shrink_time = 2.5
        interleave_workers = 1
        interleave_races = false
    """)
    pytester.makepyfile(test_race=ONE_LINE_RACE.format(arguments=""))
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*found in run * ?random, seed 3?*"])
    assert "expects" not in result.stdout.str() + result.stderr.str()


def test_a_bad_ini_value_is_one_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml("[tool.pytest.ini_options]\ninterleave_max_steps = 0\n")
    pytester.makepyfile(test_counter=FIXED)
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: ini option interleave_max_steps: expected a whole number >= 1, got 0"])


def test_stats_show_what_passing_tests_explored(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_counter=FIXED, test_alone="""
        import pytest
        from hypothesis import given, settings, strategies as st

        @pytest.mark.interleave
        def test_alone():
            assert 1 + 1 == 2

        @pytest.mark.interleave(runs=3)
        @settings(max_examples=4, database=None)
        @given(st.integers())
        def test_inputs(n):
            assert n == n
    """)
    result = pytester.runpytest("--interleave-stats", "--interleave-runs=200", "-W", "ignore::pytest.PytestWarning")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines([
        "*interleave statistics*",
        "test_alone.py::test_alone: * runs, 1 distinct schedule, *s ?portfolio, seed 0?; every schedule was run",
        "test_alone.py::test_inputs: * inputs, * runs, * distinct schedules, *; every schedule was run",
        "test_counter.py::test_counter: 200 runs, * distinct schedules, *s ?portfolio, seed 0?; "
        "every schedule with at most * was run",
    ])
    assert "interleave statistics" not in pytester.runpytest("--interleave-runs=20").stdout.str()


# Two tests with nothing to interleave: no thread; threads that run only the standard library.
NOTHING_TO_INTERLEAVE = """
    import threading
    import pytest

    @pytest.mark.interleave(runs=20)
    def test_no_thread():
        assert sum([1, 2]) == 3

    @pytest.mark.interleave(runs=20)
    def test_library_threads_only():
        seen = []
        threads = [threading.Thread(target=seen.append, args=(n,)) for n in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(seen) == [0, 1]
"""
HEALTH_WARNINGS = [
    "*InterleaveHealthWarning: test_health.py::test_no_thread started no thread in its runs*",
    "*InterleaveHealthWarning: test_health.py::test_library_threads_only: the threads it started ran no "
    "line of your code*",
]


def test_health_warnings_for_tests_with_nothing_to_interleave(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_health=textwrap.dedent(NOTHING_TO_INTERLEAVE) + textwrap.dedent("""
        @pytest.mark.interleave(runs=5)
        def test_skipped():
            pytest.skip("not a pass: no health check")
    """), test_counter=FIXED)
    result = pytester.runpytest("--interleave-runs=50")
    result.assert_outcomes(passed=3, skipped=1)
    out = result.stdout.str()
    result.stdout.fnmatch_lines(HEALTH_WARNINGS, consecutive=False)
    assert "test_counter" not in out.split("warnings summary", 1)[1]
    assert "test_skipped" not in out.split("warnings summary", 1)[1]
    quiet = pytester.runpytest("-W", "error::interleave.pytest_plugin.InterleaveHealthWarning", "test_health.py")
    quiet.assert_outcomes(failed=2, skipped=1)  # a health warning can be made an error, like any pytest warning


def test_health_warnings_when_the_runs_are_in_worker_processes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_health=NOTHING_TO_INTERLEAVE)
    result = pytester.runpytest("--interleave-workers=2")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(HEALTH_WARNINGS, consecutive=False)


def test_no_health_warning_with_workers_when_the_threads_run_your_code(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_counter=FIXED)
    result = pytester.runpytest("--interleave-workers=2", "--interleave-runs=50")
    result.assert_outcomes(passed=1)
    assert "InterleaveHealthWarning" not in result.stdout.str()


def test_turning_the_plugin_off_as_the_docs_say(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_counter=FIXED)
    broken = pytester.runpytest_subprocess("-p", "no:interleave", "--strict-markers")
    assert broken.ret == pytest.ExitCode.INTERRUPTED  # the marker is unknown: a collection error
    pytester.makeini("[pytest]\nmarkers =\n    interleave: explored by interleave when its plugin is on\n")
    off = pytester.runpytest_subprocess("-p", "no:interleave", "--strict-markers")
    off.assert_outcomes(passed=1)  # run once, as a plain test
    on = pytester.runpytest("--strict-markers", "--interleave-runs=20", "--interleave-stats")
    on.assert_outcomes(passed=1)
    on.stdout.fnmatch_lines(["test_counter.py::test_counter: 20 runs*"])


def _replay_line(result: pytest.RunResult) -> list[str]:
    line = result.stdout.str().split("Replay it:\n", 1)[1].splitlines()[0]
    return shlex.split(line)


def test_the_replay_line_repeats_the_invocation_and_replays(pytester: pytest.Pytester) -> None:
    tests = pytester.mkdir("my tests")
    (tests / "test_counter.py").write_text(textwrap.dedent(RACY))
    # `python -m pytest` (as runpytest_subprocess starts it) puts the rootdir on sys.path; `pytest` would not.
    found = pytester.runpytest_subprocess("my tests/test_counter.py")
    found.assert_outcomes(failed=1)
    words = _replay_line(found)
    assert words[1:4] == ["-m", "pytest", "my tests/test_counter.py::test_counter"]
    assert words[4].startswith("--interleave-replay=4.")
    for path in kept_tokens(pytester):
        path.unlink()  # only the printed line may reproduce it
    replayed = subprocess.run(words, cwd=pytester.path, capture_output=True, text=True, timeout=300)
    assert replayed.returncode == 1, replayed.stdout + replayed.stderr
    assert "replayed the replay token" in replayed.stdout

    # From a subdirectory, with the console script: the line says so.
    script = Path(sys.executable).with_name("pytest")
    if not script.exists():
        return
    inside = subprocess.run([str(script), "test_counter.py", "-p", "no:cacheprovider"], cwd=tests,
                            capture_output=True, text=True, timeout=300)
    line = inside.stdout.split("Replay it:\n", 1)[1].splitlines()[0]
    words = shlex.split(line)
    assert Path(words[0]).name == "pytest" and words[1] == "test_counter.py::test_counter"
