"""The benchmark programs as ploom scenarios.

ploom schedules only its own operations (``ploom.Thread``, ``ploom.Lock``,
``SharedCell.read``/``write``), so each scenario restates one program with those: a
shared variable becomes a ``SharedCell``, each racy line one cell operation. Programs
without a scenario are listed in :data:`NOT_EXPRESSIBLE` with the reason.
"""

from __future__ import annotations

from typing import Callable

from ploom import Lock, SharedCell, Thread


def _run(*targets: Callable[[], None]) -> None:
    threads = [Thread(target=t) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def lost_update_main() -> None:
    counter = SharedCell(0)

    def worker() -> None:
        for _ in range(2):
            current = counter.read()
            counter.write(current + 1)

    _run(worker, worker)
    assert counter.read() == 4


def lost_update_fixed() -> None:
    counter = SharedCell(0)
    lock = Lock()

    def worker() -> None:
        for _ in range(2):
            with lock:
                current = counter.read()
                counter.write(current + 1)

    _run(worker, worker)
    assert counter.read() == 4


def check_then_act_main() -> None:
    balance = SharedCell(100)

    def withdraw() -> None:
        if balance.read() >= 80:
            balance.write(balance.read() - 80)

    _run(withdraw, withdraw)
    assert balance.read() >= 0


def check_then_act_fixed() -> None:
    balance = SharedCell(100)
    lock = Lock()

    def withdraw() -> None:
        with lock:
            if balance.read() >= 80:
                balance.write(balance.read() - 80)

    _run(withdraw, withdraw)
    assert balance.read() == 20


def _transfers(ordered: bool) -> None:
    a, b = SharedCell(100), SharedCell(100)
    la, lb = Lock(), Lock()

    def ab() -> None:
        with la:
            with lb:
                a.write(a.read() - 10)
                b.write(b.read() + 10)

    def ba() -> None:
        first, second = (la, lb) if ordered else (lb, la)
        with first:
            with second:
                b.write(b.read() - 20)
                a.write(a.read() + 20)

    _run(ab, ba)
    assert (a.read(), b.read()) == (110, 90)


def lock_order_deadlock_main() -> None:
    _transfers(ordered=False)


def lock_order_deadlock_fixed() -> None:
    _transfers(ordered=True)


def two_threads_20_main() -> None:
    box = SharedCell(0)

    def worker() -> None:
        for _ in range(5):
            n = box.read()
            box.write(n + 1)

    _run(worker, worker)
    assert box.read() == 10


def two_threads_20_fixed() -> None:
    slots = [SharedCell(0), SharedCell(0)]

    def worker(i: int) -> Callable[[], None]:
        def body() -> None:
            for _ in range(5):
                n = slots[i].read()
                slots[i].write(n + 1)
        return body

    _run(worker(0), worker(1))
    assert slots[0].read() + slots[1].read() == 10


def long_run_main() -> None:
    total = SharedCell(0)

    def worker() -> None:
        for _ in range(200):
            n = total.read()
            total.write(n + 1)

    _run(worker, worker)
    assert total.read() == 400


def long_run_fixed() -> None:
    slots = [SharedCell(0), SharedCell(0)]

    def worker(i: int) -> Callable[[], None]:
        def body() -> None:
            for _ in range(200):
                n = slots[i].read()
                slots[i].write(n + 1)
        return body

    _run(worker(0), worker(1))
    assert slots[0].read() + slots[1].read() == 400


SCENARIOS: dict[str, dict[str, Callable[[], None]]] = {
    name: {"main": globals()[f"{name}_main"], "fixed": globals()[f"{name}_fixed"]}
    for name in ("lost_update", "check_then_act", "lock_order_deadlock", "two_threads_20", "long_run")
}

_NO_PRIMITIVE = "ploom models only Thread, Lock and SharedCell; the program needs {}"

#: Programs ploom cannot state, and why.
NOT_EXPRESSIBLE: dict[str, str] = {
    "barrier_misuse": _NO_PRIMITIVE.format("a Barrier"),
    "busy_wait": _NO_PRIMITIVE.format("a Condition and time.sleep"),
    "lost_wakeup": _NO_PRIMITIVE.format("a Condition"),
    "needs_pause": _NO_PRIMITIVE.format("time (a lease that expires)"),
    "pool_race": _NO_PRIMITIVE.format("a ThreadPoolExecutor"),
    "producer_consumer": _NO_PRIMITIVE.format("queue.Queue and an Event"),
    "rlock_reentrancy": _NO_PRIMITIVE.format("an RLock for its correct twin"),
    "semaphore_leak": _NO_PRIMITIVE.format("a Semaphore and an Event"),
    "timeout_race": _NO_PRIMITIVE.format("Event.wait with a timeout"),
    "timer_cancel_race": _NO_PRIMITIVE.format("threading.Timer"),
    "torn_read": "no scenario written (it needs only Lock and SharedCell)",
}
