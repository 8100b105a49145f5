"""Semaphore leak: an early-return path skips the release, so a permit is lost.

Workers take a permit, and return early if shutdown has begun, forgetting to
release it.  Shutdown sets `stop` and then drains (acquires every permit) to
wait for in-flight work.  If `stop` is set after a worker took its permit but
before it checked the flag, that permit never comes back and the drain blocks
forever: a deadlock.
The twin uses `with permits:`, which releases on every path out of the block.
"""
import threading

EXPECTED = "deadlock"
PERMITS = 2


def main():
    permits = threading.Semaphore(PERMITS)
    stop = threading.Event()
    handled, skipped = [], []

    def worker(job):
        permits.acquire()
        if stop.is_set():
            skipped.append(job)
            return  # BUG: leaves without releasing the permit
        handled.append(job)
        permits.release()

    threads = [threading.Thread(target=worker, args=(job,)) for job in (1, 2)]
    for t in threads:
        t.start()
    stop.set()  # begin shutdown
    for _ in range(PERMITS):
        permits.acquire()  # drain: wait for in-flight jobs to return their permits
    for _ in range(PERMITS):
        permits.release()
    for t in threads:
        t.join()
    assert sorted(handled + skipped) == [1, 2]


def fixed():
    permits = threading.Semaphore(PERMITS)
    stop = threading.Event()
    handled, skipped = [], []

    def worker(job):
        with permits:
            if stop.is_set():
                skipped.append(job)
                return
            handled.append(job)

    threads = [threading.Thread(target=worker, args=(job,)) for job in (1, 2)]
    for t in threads:
        t.start()
    stop.set()
    for _ in range(PERMITS):
        permits.acquire()
    for _ in range(PERMITS):
        permits.release()
    for t in threads:
        t.join()
    assert sorted(handled + skipped) == [1, 2]


if __name__ == "__main__":
    main()
