"""Producer/consumer: consumers decide "no more work" by peeking at the queue.

Two consumers loop while `not (done.is_set() and q.empty())` and then call
q.get().  With one item left, both can pass the test; one takes the item and
the other blocks in get() forever (or a consumer passes the test just before
the producer finishes and the other consumer drains the queue): a deadlock.
The twin has the producer put one sentinel per consumer after the items on the
bounded queue; a consumer stops only when it receives a sentinel.
"""
import queue
import threading

EXPECTED = "deadlock"
ITEMS = [1, 2, 3]
CONSUMERS = 2


def main():
    q = queue.Queue(maxsize=1)
    done = threading.Event()
    consumed = []

    def producer():
        for item in ITEMS:
            q.put(item)  # blocks while the queue is full
        done.set()

    def consumer():
        while not (done.is_set() and q.empty()):
            item = q.get()  # BUG: the queue may have been emptied since the test
            consumed.append(item)

    threads = [threading.Thread(target=producer)]
    threads += [threading.Thread(target=consumer) for _ in range(CONSUMERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(consumed) == ITEMS, consumed


def fixed():
    q = queue.Queue(maxsize=1)
    consumed = []

    def producer():
        for item in ITEMS:
            q.put(item)
        for _ in range(CONSUMERS):
            q.put(None)  # one "no more work" sentinel per consumer

    def consumer():
        while True:
            item = q.get()
            if item is None:
                break
            consumed.append(item)

    threads = [threading.Thread(target=producer)]
    threads += [threading.Thread(target=consumer) for _ in range(CONSUMERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(consumed) == ITEMS, consumed


if __name__ == "__main__":
    main()
