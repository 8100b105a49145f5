"""The scheduler as a whole: real line-by-line interleaving, failure kinds, pre-run objects,
determinism and replay."""

from __future__ import annotations

import textwrap
import threading
import time

import pytest

from interleave import BadInput, explore, replay
from interleave.schedule import Token


def write(tmp_path, name: str, source: str):
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def test_three_threads_interleave_line_by_line():
    """Every thread keeps being traced after switches made inside the tracer."""
    logs: list[list[str]] = []

    def program():
        log: list[str] = []

        def worker(name):
            log.append(name)
            log.append(name)
            log.append(name)
            log.append(name)

        threads = [threading.Thread(target=worker, args=(n,)) for n in "abc"]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        logs.append(log)

    explore(program, strategy="random", runs=200, seed=1)
    assert len(logs) == 200

    def blocks(log: list[str]) -> int:
        return 1 + sum(1 for x, y in zip(log, log[1:]) if x != y)

    # All three threads split into separate stretches: impossible if any thread ran untraced.
    assert any(all(blocks([x for x in log]) >= 6 and log.count(n) == 4 for n in "abc") for log in logs)
    interleaved_per_thread = [
        n for n in "abc" if any(sum(1 for i, x in enumerate(log) if x == n and i and log[i - 1] != n) >= 2 for log in logs)
    ]
    assert interleaved_per_thread == ["a", "b", "c"]


def test_lost_update_is_found_shrunk_to_one_preemption_and_replayed():
    def program():
        box = {"n": 0}

        def add():
            value = box["n"]
            box["n"] = value + 1

        threads = [threading.Thread(target=add) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert box["n"] == 2, box["n"]

    report = explore(program, seed=0, runs=2000)
    failure = report.failure
    assert failure is not None and failure.kind == "exception"
    assert "AssertionError: 1" in failure.message
    assert failure.preemptions == 1
    assert failure.preemptions <= failure.original_preemptions
    assert len(failure.replay) < 120
    again = replay(program, failure.replay)
    assert again.failure is not None and again.failure.message == failure.message
    assert "preemption" in failure.trace and "box[\"n\"] = value + 1" in failure.trace


def test_deadlock_report_names_each_thread_its_line_and_the_holder():
    def program():
        a, b = threading.Lock(), threading.Lock()

        def one():
            with a:
                with b:
                    pass

        def two():
            with b:
                with a:
                    pass

        t1, t2 = threading.Thread(target=one, name="one"), threading.Thread(target=two, name="two")
        t1.start()
        t2.start()
        t1.join()
        t2.join()

    failure = explore(program, seed=0, runs=500).failure
    assert failure is not None and failure.kind == "deadlock"
    assert "one blocked in Lock.acquire" in failure.details
    assert "two blocked in Lock.acquire" in failure.details
    assert "held by two" in failure.details and "held by one" in failure.details
    assert "MainThread blocked in Thread.join" in failure.details
    assert failure.preemptions == 1


def test_a_thread_that_waits_for_a_wakeup_nobody_sends_is_a_deadlock():
    def program():
        event = threading.Event()
        threading.Thread(target=event.wait, name="waiter").start()

    failure = explore(program, runs=5).failure
    assert failure is not None and failure.kind == "deadlock"
    assert "waiter blocked in Event.wait" in failure.details


def test_a_spin_past_the_step_bound_is_a_hang_with_its_looping_lines():
    def program():
        flag = []

        def spin():
            while not flag:
                pass

        t = threading.Thread(target=spin)
        t.start()
        t.join()

    failure = explore(program, runs=3, max_steps=5000).failure
    assert failure is not None and failure.kind == "hang"
    assert "5000 steps" in failure.message
    assert "while not flag" in failure.trace and "lines executed most" in failure.trace


def test_daemon_threads_do_not_keep_a_run_alive():
    def program():
        threading.Thread(target=lambda: threading.Event().wait(), daemon=True).start()

    assert explore(program, runs=5).failure is None


def test_uncontrolled_io_stops_the_run_with_its_name(tmp_path):
    path = write(tmp_path, "sock.py", """
        import socket
        def main():
            socket.socket()
        """)
    report = explore(f"{path}::main", runs=5)
    assert report.failure is None
    assert report.uncontrolled is not None and "socket.socket" in report.uncontrolled and "sock.py:4" in report.uncontrolled


def test_objects_made_before_the_run_are_controlled_and_start_each_run_free(tmp_path):
    """A lock made at import time of a helper module, left held by a failing run."""
    write(tmp_path, "helper_shared.py", """
        import threading
        from time import sleep
        LOCK = threading.Lock()
        """)
    path = write(tmp_path, "uses_helper.py", """
        import threading
        import helper_shared
        runs = []
        def main():
            helper_shared.LOCK.acquire()
            helper_shared.sleep(10)  # bound before any run: still virtual
            t = threading.Thread(target=lambda: helper_shared.LOCK.acquire(timeout=5))
            t.start()
            t.join()
            raise RuntimeError("leaves the lock held")
        """)
    started = time.perf_counter()
    report = explore(f"{path}::main", runs=3, strategy="random")
    assert report.failure is not None and "leaves the lock held" in report.failure.message
    assert report.failure.run == 1
    again = explore(f"{path}::main", runs=3, strategy="random")
    assert again.failure is not None and "leaves the lock held" in again.failure.message
    assert time.perf_counter() - started < 29  # real sleeps would take 2 x (10 + 5) s at least


def test_real_locks_bound_before_the_run_are_swapped_for_controlled_twins(tmp_path, monkeypatch):
    write(tmp_path, "real_lock_module.py", """
        import _thread
        LOCK = _thread.allocate_lock()
        COUNT = [0]
        def work():
            with LOCK:
                value = COUNT[0]
                COUNT[0] = value + 1
        """)
    monkeypatch.syspath_prepend(str(tmp_path))
    import real_lock_module  # noqa: PLC0415 - imported before any run, on purpose

    def program():
        real_lock_module.COUNT[0] = 0
        threads = [threading.Thread(target=real_lock_module.work) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert real_lock_module.COUNT[0] == 2

    report = explore(program, strategy="dfs", runs=2000)
    assert report.failure is None and report.exhausted
    assert type(real_lock_module.LOCK).__module__ == "_thread"


def test_same_seed_same_exploration_and_token():
    def program():
        box = [0]

        def add():
            for _ in range(3):
                v = box[0]
                box[0] = v + 1

        threads = [threading.Thread(target=add) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert box[0] == 9

    first = explore(program, strategy="random", seed=11, runs=300)
    second = explore(program, strategy="random", seed=11, runs=300)
    assert first.failure is not None
    assert (first.failure.run, first.failure.replay, first.failure.trace) == (
        second.failure.run, second.failure.replay, second.failure.trace)


def test_replay_refuses_a_schedule_that_does_not_fit_and_follows_an_edited_program_by_place(tmp_path):
    path = write(tmp_path, "race.py", """
        import threading
        box = [0]
        def add():
            v = box[0]
            box[0] = v + 1
        def main():
            box[0] = 0
            ts = [threading.Thread(target=add) for _ in range(2)]
            for t in ts: t.start()
            for t in ts: t.join()
            assert box[0] == 2
        """)
    token = explore(f"{path}::main", runs=500).failure.replay
    assert replay(f"{path}::main", token).failure is not None
    decoded = Token.decode(token)
    moved = decoded.deviations[0]
    bad = Token(decoded.python, decoded.fingerprint, decoded.config,
                (moved._replace(key=moved.key._replace(thread=moved.key.thread + 7)),), decoded.checksum).encode()
    with pytest.raises(BadInput, match="no longer fits"):
        replay(f"{path}::main", bad)
    path.write_text(path.read_text() + "\n# edited\n")  # not where the schedule decides: followed by place
    edited = replay(f"{path}::main", token)
    assert edited.by_place and edited.failure is not None and edited.changed == [str(path)]
    with pytest.raises(BadInput, match="corrupt"):
        replay(f"{path}::main", token[:-9] + "!")


def test_pauses_let_time_pass_between_a_check_and_a_write():
    """Only a paused thread lets a lease expire between its check and its write."""

    def program():
        lease = {"owner": "a", "until": time.monotonic() + 10}
        writes = []

        def holder():
            if time.monotonic() < lease["until"]:
                writes.append(("a", time.monotonic()))

        def taker():
            time.sleep(10)
            lease["owner"], lease["until"] = "b", time.monotonic() + 10
            writes.append(("b", time.monotonic()))

        threads = [threading.Thread(target=taker), threading.Thread(target=holder)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(at < 10_010 for who, at in writes if who == "a"), writes  # a wrote after its lease

    assert explore(program, max_pauses=0, strategy="dfs", runs=5000).failure is None
    failure = explore(program, seed=0, runs=5000).failure
    assert failure is not None and failure.preemptions == 1
    assert "is held" in failure.trace and "while time passes" in failure.trace


@pytest.mark.parametrize("seed", range(6))
def test_unshrunk_random_schedules_replay_exactly(seed):
    """A thread can decide twice without taking a step (at a line, then blocking on it):
    every decision still has its own key, so a raw failing schedule replays."""

    def program():
        lock = threading.Lock()
        box = [0]

        def worker():
            time.sleep(0)
            with lock:
                value = box[0]
            time.sleep(1)
            box[0] = value + 1

        threads = [threading.Thread(target=worker) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert box[0] == 3

    report = explore(program, strategy="random", seed=seed, runs=3000, shrink_time=0)
    assert report.failure is not None
    assert replay(program, report.failure.replay).failure.message == report.failure.message


def test_shrunk_schedule_is_one_minimal():
    """Removing any single deviation left makes the failure go away or change."""
    from interleave.program import load
    from interleave.runner import RunConfig, Runner
    from interleave.strategies.replay import Replay

    def program():
        box = {"a": 0, "b": 0}

        def bump(key):
            for _ in range(2):
                value = box[key]
                box[key] = value + 1

        threads = [threading.Thread(target=bump, args=(k,)) for k in "aabb"]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert box == {"a": 4, "b": 4}, box

    runner = Runner(load(program), RunConfig())
    for seed in range(3):  # whatever failing schedule the random walk finds first
        failure = explore(program, strategy="random", seed=seed, runs=2000).failure
        assert failure is not None and failure.original_preemptions > failure.preemptions, seed
        deviations = list(Token.decode(failure.replay).deviations)
        original = runner.run(Replay(deviations))
        assert original.failure is not None
        for i in range(len(deviations)):
            result = runner.run(Replay(deviations[:i] + deviations[i + 1:], strict=False))
            assert not original.failure.same_as(result.failure)
    runner.close()


def test_lock_operations_inside_installed_libraries_are_switch_points(tmp_path, monkeypatch):
    """Library code runs without line switch points, but its lock operations are ones."""
    library = tmp_path / "site-packages"
    library.mkdir()
    (library / "racy_library.py").write_text(textwrap.dedent("""
        def increment(box, lock):
            with lock:
                value = box[0]
            with lock:
                box[0] = value + 1
        """))
    monkeypatch.syspath_prepend(str(library))
    import racy_library  # noqa: PLC0415

    def program():
        box, lock = [0], threading.Lock()
        threads = [threading.Thread(target=racy_library.increment, args=(box, lock)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert box[0] == 2

    failure = explore(program, strategy="dfs", runs=2000).failure
    assert failure is not None and failure.preemptions == 1


def test_a_bug_needing_twenty_steps_in_a_row_is_found_by_default_and_shrunk_to_one_preemption():
    from pathlib import Path

    program = Path(__file__).resolve().parent.parent / "benchmarks" / "programs" / "twenty_steps.py"
    random_walk = explore(f"{program}::main", strategy="random", runs=2000, seed=0)
    assert random_walk.failure is None  # ~2**-40 per run
    report = explore(f"{program}::main", runs=2000, seed=0)
    assert report.failure is not None and report.failure.preemptions == 1
    clean = explore(f"{program}::fixed", strategy="dfs", runs=5000)
    assert clean.failure is None and clean.exhausted and clean.bound == 2


def test_a_callable_has_the_same_fingerprint_in_every_process(tmp_path):
    import subprocess
    import sys

    (tmp_path / "fingerprinted.py").write_text(textwrap.dedent("""
        import threading
        def program():
            def inner():
                return [x for x in range(3)]
            threading.Thread(target=inner).start()
        """))
    code = ("import sys; sys.path.insert(0, %r); import fingerprinted; from interleave.program import load; "
            "print(load(fingerprinted.program).fingerprint)" % str(tmp_path))
    prints = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
              for _ in range(2)}
    assert len(prints) == 1


def test_threads_stopped_at_teardown_really_end():
    """Threads still alive when a run ends (daemons, or after a failure) are ended, not kept."""
    from interleave import scheduler

    def program():
        stop = threading.Event()
        threading.Thread(target=stop.wait, daemon=True).start()
        threading.Thread(target=lambda: time.sleep(100), daemon=True).start()

    before = len(scheduler._graveyard)
    main_thread = threading.current_thread()
    assert explore(program, runs=50).failure is None
    assert len(scheduler._graveyard) == before
    # Their unwinding ran as themselves: the real thread's registration is untouched.
    assert threading.current_thread() is main_thread and main_thread in threading.enumerate()


def test_a_thread_started_behind_threading_s_back_is_named_not_passed(tmp_path, monkeypatch):
    """A C extension's thread is invisible to threading; the real ``_thread`` stands in for one."""
    write(tmp_path, "hidden_starter.py", """
        import _thread
        REAL_START = _thread.start_new_thread  # bound before any run: the real one
        """)
    monkeypatch.syspath_prepend(str(tmp_path))
    import hidden_starter  # noqa: PLC0415 - imported before the exploration, on purpose

    def program():
        hidden_starter.REAL_START(time.sleep, (0.5,))

    report = explore(program, runs=3)
    assert report.failure is None
    assert report.uncontrolled is not None and "real OS thread" in report.uncontrolled
    time.sleep(0.6)


def test_timers_due_at_the_same_instant_fire_in_every_order():
    orders: set[str] = set()

    def program():
        fired: list[str] = []
        threads = [threading.Thread(target=lambda n=n: (time.sleep(5), fired.append(n))) for n in "ab"]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        orders.add("".join(fired))

    report = explore(program, strategy="dfs", max_preemptions=0, max_pauses=0, runs=500)
    assert report.failure is None and report.exhausted
    assert orders == {"ab", "ba"}  # with no preemption at all: the order is a free choice
