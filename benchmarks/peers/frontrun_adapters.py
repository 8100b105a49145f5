"""The benchmark programs in frontrun's shape: ``setup()`` state, worker callables, invariant.

frontrun drives a fixed set of worker callables on shared state made by ``setup`` and
checks an invariant once they are all done, so each adapter restates one program's
threads as workers over a small state object. Each entry maps a program name to its
buggy (``main``) and correct (``fixed``) variants. Programs without an entry are listed
in :data:`NOT_EXPRESSIBLE` with the reason.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable


@dataclass
class Case:
    setup: Callable[[], Any]
    workers: list[Callable[[Any], Any]]
    invariant: Callable[[Any], bool]


class State:
    """Attribute bag for the shared state of one execution."""

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)


# -- lost_update: two workers, two unlocked read-then-write increments each

def _lu_setup() -> State:
    return State(value=0, lock=threading.Lock())


def _lu_racy(s: State) -> None:
    for _ in range(2):
        current = s.value
        s.value = current + 1


def _lu_locked(s: State) -> None:
    for _ in range(2):
        with s.lock:
            current = s.value
            s.value = current + 1


# -- check_then_act: two withdrawals of 80 from 100

def _cta_setup() -> State:
    return State(balance=100, lock=threading.Lock())


def _cta_racy(s: State) -> None:
    if s.balance >= 80:
        s.balance = s.balance - 80


def _cta_locked(s: State) -> None:
    with s.lock:
        if s.balance >= 80:
            s.balance = s.balance - 80


# -- lock_order_deadlock: transfer(a, b) and transfer(b, a)

def _lod_setup() -> State:
    return State(a=100, b=100, la=threading.Lock(), lb=threading.Lock())


def _lod_ab(s: State) -> None:
    with s.la:
        with s.lb:
            s.a -= 10
            s.b += 10


def _lod_ba(s: State) -> None:
    with s.lb:
        with s.la:
            s.b -= 20
            s.a += 20


def _lod_ba_ordered(s: State) -> None:
    with s.la:
        with s.lb:
            s.b -= 20
            s.a += 20


# -- torn_read: locked transfers, unlocked two-field audit

def _tr_setup() -> State:
    return State(lock=threading.Lock(), checking=100, savings=0, sums=[])


def _tr_writer(s: State) -> None:
    for _ in range(2):
        with s.lock:
            s.checking -= 10
            s.savings += 10


def _tr_auditor(s: State) -> None:
    for _ in range(2):
        checking = s.checking
        savings = s.savings
        s.sums.append(checking + savings)


def _tr_auditor_locked(s: State) -> None:
    for _ in range(2):
        with s.lock:
            checking = s.checking
            savings = s.savings
        s.sums.append(checking + savings)


# -- lost_wakeup: consumer tests the flag outside the Condition's lock

def _lw_setup() -> State:
    return State(cond=threading.Condition(), ready=False, item=None, received=[])


def _lw_consumer(s: State) -> None:
    if not s.ready:
        with s.cond:
            s.cond.wait()
    s.received.append(s.item)


def _lw_consumer_fixed(s: State) -> None:
    with s.cond:
        while not s.ready:
            s.cond.wait()
    s.received.append(s.item)


def _lw_producer(s: State) -> None:
    with s.cond:
        s.item = "hello"
        s.ready = True
        s.cond.notify()


# -- rlock_reentrancy: get() on a miss calls put(), which takes the same lock

def _rr_setup(reentrant: bool) -> Callable[[], State]:
    # The lock type is looked up at setup time, after frontrun has patched threading.
    return lambda: State(lock=threading.RLock() if reentrant else threading.Lock(), data={}, results=[])


def _rr_put(s: State) -> None:
    with s.lock:
        s.data["k"] = "K"


def _rr_get(s: State) -> None:
    with s.lock:
        if "k" not in s.data:
            with s.lock:
                s.data["k"] = "K"
        s.results.append(s.data["k"])


# -- barrier_misuse: one barrier per round

def _bm_setup() -> State:
    return State(slots=[None, None], seen=[[], []], barrier=threading.Barrier(2))


def _bm_worker(i: int, fixed: bool) -> Callable[[State], None]:
    def worker(s: State) -> None:
        for r in range(2):
            s.slots[i] = (i, r)
            s.barrier.wait()
            s.seen[i].append(s.slots[1 - i])
            if fixed:
                s.barrier.wait()
    return worker


def _bm_ok(s: State) -> bool:
    return all(s.seen[i] == [(1 - i, r) for r in range(2)] for i in (0, 1))


# -- two_threads_20: five unlocked increments per thread, or per-thread slots

def _tt_setup() -> State:
    return State(box=[0], slots=[0, 0])


def _tt_racy(s: State) -> None:
    for _ in range(5):
        n = s.box[0]
        s.box[0] = n + 1


def _tt_slot(i: int) -> Callable[[State], None]:
    def worker(s: State) -> None:
        for _ in range(5):
            n = s.slots[i]
            s.slots[i] = n + 1
    return worker


# -- long_run: 200 iterations per worker

def _lr_setup() -> State:
    return State(total=[0], slots=[0, 0])


def _lr_racy(i: int) -> Callable[[State], None]:
    def worker(s: State) -> None:
        for _ in range(200):
            n = s.total[0]
            s.total[0] = n + 1
        s.slots[i] = 200
    return worker


def _lr_slot(i: int) -> Callable[[State], None]:
    def worker(s: State) -> None:
        for _ in range(200):
            n = s.slots[i]
            s.slots[i] = n + 1
    return worker


CASES: dict[str, dict[str, Case]] = {
    "lost_update": {
        "main": Case(_lu_setup, [_lu_racy, _lu_racy], lambda s: s.value == 4),
        "fixed": Case(_lu_setup, [_lu_locked, _lu_locked], lambda s: s.value == 4),
    },
    "check_then_act": {
        "main": Case(_cta_setup, [_cta_racy, _cta_racy], lambda s: s.balance >= 0),
        "fixed": Case(_cta_setup, [_cta_locked, _cta_locked], lambda s: s.balance == 20),
    },
    "lock_order_deadlock": {
        "main": Case(_lod_setup, [_lod_ab, _lod_ba], lambda s: (s.a, s.b) == (110, 90)),
        "fixed": Case(_lod_setup, [_lod_ab, _lod_ba_ordered], lambda s: (s.a, s.b) == (110, 90)),
    },
    "torn_read": {
        "main": Case(_tr_setup, [_tr_writer, _tr_auditor], lambda s: all(x == 100 for x in s.sums)),
        "fixed": Case(_tr_setup, [_tr_writer, _tr_auditor_locked], lambda s: all(x == 100 for x in s.sums)),
    },
    "lost_wakeup": {
        "main": Case(_lw_setup, [_lw_consumer, _lw_producer], lambda s: s.received == ["hello"]),
        "fixed": Case(_lw_setup, [_lw_consumer_fixed, _lw_producer], lambda s: s.received == ["hello"]),
    },
    "rlock_reentrancy": {
        "main": Case(_rr_setup(reentrant=False), [_rr_put, _rr_get], lambda s: s.results == ["K"]),
        "fixed": Case(_rr_setup(reentrant=True), [_rr_put, _rr_get], lambda s: s.results == ["K"]),
    },
    "barrier_misuse": {
        "main": Case(_bm_setup, [_bm_worker(0, False), _bm_worker(1, False)], _bm_ok),
        "fixed": Case(_bm_setup, [_bm_worker(0, True), _bm_worker(1, True)], _bm_ok),
    },
    "two_threads_20": {
        "main": Case(_tt_setup, [_tt_racy, _tt_racy], lambda s: s.box[0] == 10),
        "fixed": Case(_tt_setup, [_tt_slot(0), _tt_slot(1)], lambda s: sum(s.slots) == 10),
    },
    "long_run": {
        "main": Case(_lr_setup, [_lr_racy(0), _lr_racy(1)], lambda s: s.total[0] == sum(s.slots)),
        "fixed": Case(_lr_setup, [_lr_slot(0), _lr_slot(1)], lambda s: sum(s.slots) == 400),
    },
}

#: Programs frontrun's worker model cannot state faithfully, and why.
NOT_EXPRESSIBLE: dict[str, str] = {
    "busy_wait": "the main thread polls with sleep() while the workers run; frontrun's invariant is only checked after the workers end",
    "needs_pause": "the bug needs a thread paused while the lease's time passes; no adapter written for its explored clock",
    "pool_race": "tasks run on a ThreadPoolExecutor started by the program; frontrun runs its own fixed workers",
    "producer_consumer": "no adapter written (queue.Queue consumers plus a producer that sets a done flag)",
    "semaphore_leak": "the main thread drains the semaphore while workers run; no adapter written",
    "timeout_race": "the bug needs an Event.wait timeout to expire against a worker; no adapter written for its virtual clock",
    "timer_cancel_race": "the program starts a threading.Timer; frontrun runs its own fixed workers",
}
