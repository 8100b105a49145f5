"""About 1,200 switch points a run: two threads doing long unlocked bookkeeping.

Each worker runs 200 iterations of a read line and a write line on its own slot
(about 600 traced lines per worker, counting the loop line). ``fixed`` is correct under every interleaving.
``main`` adds one shared total updated with an unlocked read-then-write, so a lost
update shows at the end; the window is open on every iteration.
"""
import threading

EXPECTED = "exception"
ITERATIONS = 200


def main():
    slots = [0, 0]
    total = [0]

    def worker(i):
        for _ in range(ITERATIONS):
            n = total[0]
            total[0] = n + 1
        slots[i] = ITERATIONS

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert total[0] == sum(slots), f"lost update: {total[0]} != {sum(slots)}"


def fixed():
    slots = [0, 0]

    def worker(i):
        for _ in range(ITERATIONS):
            n = slots[i]
            slots[i] = n + 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(slots) == 2 * ITERATIONS


if __name__ == "__main__":
    fixed()
