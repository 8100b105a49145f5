"""Every controlled primitive behaves as the real one does, under every explored schedule.

Each program checks stdlib semantics with ``assert``; exploring it (systematically where
the space is small) must find no failure. A broken primitive makes an assert fail (or a
run deadlock), so these tests fail when the semantics drift.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed, wait

import pytest

from interleave import explore


def no_failure(program, **budget) -> None:
    budget.setdefault("runs", 400)
    budget.setdefault("seed", 3)
    budget.setdefault("max_pauses", 0)  # exact timings below assume no thread is held while time passes
    report = explore(program, **budget)
    assert report.failure is None, report.failure.message + "\n" + report.failure.trace
    assert report.uncontrolled is None and report.nondeterministic is None
    assert report.runs > 0


def test_lock_gives_mutual_exclusion_in_every_schedule():
    def program():
        lock = threading.Lock()
        inside = []

        def worker():
            for _ in range(2):
                with lock:
                    inside.append(1)
                    assert len(inside) == 1
                    inside.pop()

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    report = explore(program, strategy="dfs", max_preemptions=2, runs=20_000, seed=0)
    assert report.failure is None
    assert report.exhausted and report.bound == 2


def test_lock_errors_and_timeouts_match_the_stdlib():
    def program():
        lock = threading.Lock()
        with pytest.raises(RuntimeError):
            lock.release()
        assert lock.acquire()
        assert not lock.acquire(blocking=False)
        with pytest.raises(ValueError):
            lock.acquire(False, 1)
        start = time.monotonic()
        assert not lock.acquire(timeout=2.5)
        assert time.monotonic() - start == 2.5
        assert lock.locked()
        released_elsewhere = threading.Thread(target=lock.release)  # any thread may release a Lock
        released_elsewhere.start()
        released_elsewhere.join()
        assert not lock.locked()

    no_failure(program)


def test_rlock_is_reentrant_and_owned():
    def program():
        rlock = threading.RLock()
        with rlock:
            with rlock:
                errors = []

                def stranger():
                    try:
                        rlock.release()
                    except RuntimeError:
                        errors.append("not owner")
                    assert not rlock.acquire(timeout=1)

                t = threading.Thread(target=stranger)
                t.start()
                t.join()
                assert errors == ["not owner"]
        assert rlock.acquire(blocking=False)
        rlock.release()

    no_failure(program)


def test_condition_notify_wakes_exactly_n_waiters():
    def program():
        cond = threading.Condition()
        woken = []
        ready = threading.Semaphore(0)

        def waiter(i):
            with cond:
                ready.release()
                cond.wait()
                woken.append(i)

        threads = [threading.Thread(target=waiter, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for _ in threads:
            ready.acquire()
        with cond:
            cond.notify(1)
        time.sleep(1)
        assert len(woken) == 1
        with cond:
            cond.notify_all()
        for t in threads:
            t.join()
        assert sorted(woken) == [0, 1, 2]

    no_failure(program, runs=300)


def test_condition_wait_for_and_timeouts():
    def program():
        cond = threading.Condition(threading.Lock())
        state = {"n": 0}

        def producer():
            for _ in range(3):
                time.sleep(1)
                with cond:
                    state["n"] += 1
                    cond.notify()

        t = threading.Thread(target=producer)
        start = time.monotonic()
        t.start()
        with cond:
            assert cond.wait_for(lambda: state["n"] == 3, timeout=10)
            assert time.monotonic() - start == 3
            assert not cond.wait_for(lambda: state["n"] == 4, timeout=2)
        t.join()

    no_failure(program)


def test_event_set_clear_and_timeout():
    def program():
        event = threading.Event()
        assert not event.wait(timeout=0.5)
        t = threading.Thread(target=lambda: (time.sleep(2), event.set()))
        t.start()
        assert event.wait()
        assert event.is_set()
        event.clear()
        assert not event.is_set()
        t.join()

    no_failure(program)


def test_semaphores_bound_concurrency_and_bounded_release_raises():
    def program():
        sem = threading.BoundedSemaphore(2)
        holders = []

        def worker():
            with sem:
                holders.append(1)
                assert len(holders) <= 2
                holders.pop()

        threads = [threading.Thread(target=worker) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with pytest.raises(ValueError):
            sem.release()
        plain = threading.Semaphore(0)
        assert not plain.acquire(timeout=1)

    no_failure(program)


def test_barrier_releases_all_parties_and_breaks_on_timeout():
    def program():
        barrier = threading.Barrier(3)
        passed = []

        def party():
            barrier.wait()
            passed.append(1)

        threads = [threading.Thread(target=party) for _ in range(2)]
        for t in threads:
            t.start()
        time.sleep(1)
        assert passed == []
        barrier.wait()
        for t in threads:
            t.join()
        assert len(passed) == 2
        lonely = threading.Barrier(2, timeout=1)
        with pytest.raises(threading.BrokenBarrierError):
            lonely.wait()
        assert lonely.broken

    no_failure(program, runs=200)


def test_timer_fires_after_its_interval_unless_cancelled():
    def program():
        fired = []
        start = time.monotonic()
        timer = threading.Timer(30, lambda: fired.append(time.monotonic() - start))
        timer.start()
        timer.join()
        assert fired == [30]
        cancelled = threading.Timer(5, lambda: fired.append("late"))
        cancelled.start()
        cancelled.cancel()
        cancelled.join()
        assert fired == [30]

    no_failure(program)


@pytest.mark.parametrize(
    "name, expected",
    [("Queue", [1, 2, 3]), ("LifoQueue", [3, 2, 1]), ("PriorityQueue", [1, 2, 3]), ("SimpleQueue", [1, 2, 3])],
)
def test_queues_keep_their_order_and_time_out(name, expected):
    def program():
        q = getattr(queue, name)()  # looked up in the run: queue.SimpleQueue is controlled there
        for item in ([1, 2, 3] if name != "PriorityQueue" else [2, 3, 1]):
            q.put(item)
        assert [q.get() for _ in range(3)] == expected
        start = time.monotonic()
        with pytest.raises(queue.Empty):
            q.get(timeout=4)
        assert time.monotonic() - start == 4
        got = []
        consumer = threading.Thread(target=lambda: got.append(q.get()))
        consumer.start()
        q.put(7)
        consumer.join()
        assert got == [7]

    no_failure(program, runs=100)


def test_bounded_queue_put_timeout_and_join():
    def program():
        q = queue.Queue(maxsize=1)
        q.put("a")
        with pytest.raises(queue.Full):
            q.put("b", timeout=1)
        done = []

        def worker():
            while True:
                item = q.get()
                done.append(item)
                q.task_done()

        threading.Thread(target=worker, daemon=True).start()
        q.put("b")
        q.join()
        assert done == ["a", "b"]

    no_failure(program, runs=200)


def test_thread_pool_executor_submit_map_wait_as_completed():
    def program():
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = [pool.submit(lambda i=i: i * i) for i in range(4)]
            assert sorted(f.result() for f in as_completed(futures)) == [0, 1, 4, 9]
            assert list(pool.map(lambda x: x + 1, range(3))) == [1, 2, 3]
            done, not_done = wait(futures)
            assert len(done) == 4 and not not_done
        slow = ThreadPoolExecutor(max_workers=1)
        future = slow.submit(time.sleep, 10)
        assert not wait([future], timeout=1).done
        slow.shutdown(wait=True)
        assert future.done()

    no_failure(program, runs=150)


def test_thread_pool_without_shutdown_ends_like_the_interpreter_would():
    def program():
        pool = ThreadPoolExecutor(max_workers=2)
        assert pool.submit(lambda: 5).result() == 5

    no_failure(program, runs=100)


def test_thread_local_values_are_per_thread():
    def program():
        local = threading.local()
        local.value = "main"
        seen = []

        def worker(i):
            assert not hasattr(local, "value")
            local.value = i
            time.sleep(0)
            seen.append(local.value == i)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert seen == [True, True]
        assert local.value == "main"

    no_failure(program)


def test_thread_identity_and_lifecycle():
    class Worker(threading.Thread):
        def __init__(self):
            super().__init__(name="worker", daemon=False)
            self.result = None

        def run(self):
            self.result = (threading.current_thread() is self, threading.get_ident() == self.ident)
            time.sleep(5)

    def program():
        assert threading.current_thread() is threading.main_thread()
        w = Worker()
        assert w.ident is None and not w.is_alive()
        w.start()
        assert w.is_alive()
        assert w.name == "worker" and not w.daemon
        assert w in threading.enumerate()
        assert threading.active_count() >= 2
        assert w.ident != threading.get_ident()
        w.join(timeout=1)
        assert w.is_alive()
        w.join()
        assert not w.is_alive()
        assert w.result == (True, True)
        assert w not in threading.enumerate()

    no_failure(program)


def test_clock_functions_agree_and_sleep_costs_nothing():
    def program():
        t0, w0, p0, n0 = time.monotonic(), time.time(), time.perf_counter(), time.monotonic_ns()
        time.sleep(3600)
        assert time.monotonic() - t0 == 3600
        assert time.time() - w0 == 3600
        assert time.perf_counter() - p0 == 3600
        assert time.monotonic_ns() - n0 == 3600 * 10**9
        assert abs(time.time_ns() / 1e9 - time.time()) < 1e-3
        assert time.perf_counter_ns() == time.monotonic_ns()
        with pytest.raises(ValueError):
            time.sleep(-1)

    started = time.perf_counter()
    no_failure(program, runs=5)
    assert time.perf_counter() - started < 3600  # five hours of sleep, had any of it been real


def test_polling_loop_moves_the_clock_and_is_no_hang():
    def program():
        done = []
        threading.Thread(target=lambda: (time.sleep(50), done.append(1))).start()
        polls = 0
        while not done:
            time.sleep(0.1)
            polls += 1
        assert 400 <= polls <= 501

    no_failure(program, runs=50)


def test_outside_a_run_everything_is_the_stdlib():
    real = (threading.Lock, threading.RLock, time.sleep, time.monotonic, threading.get_ident, queue.SimpleQueue)
    hook = threading.excepthook

    real_lock_id = id(real[0])  # (the tuple itself holds the factory in the run: it is swapped there too)

    def program():
        assert id(threading.Lock) != real_lock_id

    no_failure(program, runs=3)
    assert (threading.Lock, threading.RLock, time.sleep, time.monotonic, threading.get_ident, queue.SimpleQueue) == real
    assert threading.excepthook is hook
    assert all(t.ident is not None for t in threading.enumerate())


def test_exploring_leaves_the_process_own_thread_pools_working():
    outside = ThreadPoolExecutor(max_workers=1)
    assert outside.submit(lambda: 1).result() == 1

    def program():
        pool = ThreadPoolExecutor(max_workers=1)
        assert pool.submit(lambda: 2).result() == 2  # left running: stopped as at interpreter exit

    no_failure(program, runs=20)
    assert outside.submit(lambda: 3).result(timeout=5) == 3
    outside.shutdown()


#: interleave's own objects, as a program or a test module may hold them (a Runner, a clock).
HELD_CLOCKS = dict(__import__("interleave.primitives").primitives.CONTROLLED_TIME)
REAL_MONOTONIC = id(time.monotonic)  # an int: what a run swaps, it cannot hold


def test_interleaves_own_objects_held_by_the_program_are_not_swapped():
    def real_behind(clock):
        return clock.__closure__[clock.__code__.co_freevars.index("real")].cell_contents

    def program():
        # The controlled clock falls back on the real one outside a run: swapping that
        # for the controlled one would make it call itself forever.
        assert id(real_behind(HELD_CLOCKS["monotonic"])) == REAL_MONOTONIC

    no_failure(program, runs=2)
