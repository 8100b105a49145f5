"""Lost update: a read-modify-write on a shared counter without a lock.

Each worker reads the counter into a local and writes back local + 1 on the
next line.  If the other worker reads between those two lines, both write the
same value and one increment disappears, so the final count comes out short.
The twin holds a lock around the read and the write, so each increment is atomic.
"""
import threading

EXPECTED = "exception"
INCREMENTS = 2  # per worker


class Counter:
    def __init__(self):
        self.value = 0


def main():
    counter = Counter()

    def worker():
        for _ in range(INCREMENTS):
            current = counter.value
            counter.value = current + 1  # BUG: the other worker may have written since the read

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counter.value == 2 * INCREMENTS, f"lost update: counter is {counter.value}"


def fixed():
    counter = Counter()
    lock = threading.Lock()

    def worker():
        for _ in range(INCREMENTS):
            with lock:
                current = counter.value
                counter.value = current + 1

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counter.value == 2 * INCREMENTS, f"lost update: counter is {counter.value}"


if __name__ == "__main__":
    main()
