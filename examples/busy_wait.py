"""Busy wait on a racy counter: a lost update makes the polling loop spin forever.

Workers report completion with an unlocked read-then-write of `finished`; the
main thread polls `while finished < 2: time.sleep(...)`.  If both workers read
`finished` before either writes it, one report is lost, the count stays at 1 and
the poll never ends: a hang (time keeps passing, nothing else happens).
The twin counts under a Condition and the main thread blocks in wait_for()
until both reports are in, with no polling.
"""
import threading
import time

EXPECTED = "hang"
POLL = 0.001


class Progress:
    def __init__(self):
        self.cond = threading.Condition()
        self.finished = 0


def main():
    progress = Progress()
    results = []

    def worker(n):
        results.append(n * n)
        count = progress.finished
        progress.finished = count + 1  # BUG: the other worker may have reported since the read

    threads = [threading.Thread(target=worker, args=(n,)) for n in (2, 3)]
    for t in threads:
        t.start()
    while progress.finished < 2:
        time.sleep(POLL)  # poll until both workers report
    assert sorted(results) == [4, 9]
    for t in threads:
        t.join()


def fixed():
    progress = Progress()
    results = []

    def worker(n):
        results.append(n * n)
        with progress.cond:
            progress.finished += 1
            progress.cond.notify_all()

    threads = [threading.Thread(target=worker, args=(n,)) for n in (2, 3)]
    for t in threads:
        t.start()
    with progress.cond:
        progress.cond.wait_for(lambda: progress.finished == 2)
    assert sorted(results) == [4, 9]
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
