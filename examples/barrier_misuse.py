"""Barrier misuse: one barrier per round where two are needed.

Each round, every thread publishes its value in its slot, waits at the barrier,
then reads its partner's slot.  With no second barrier, a fast thread goes on to
the next round and overwrites its slot before the slow thread has read the old
value, so the slow thread sees a value from the wrong round.
The twin waits at the barrier a second time after reading, so nobody writes the
next round's value until everybody has read this round's.
"""
import threading

EXPECTED = "exception"
ROUNDS = 2


def main():
    slots = [None, None]
    seen = [[], []]
    barrier = threading.Barrier(2)

    def worker(i):
        for r in range(ROUNDS):
            slots[i] = (i, r)  # publish this round's value
            barrier.wait()  # everybody has published
            seen[i].append(slots[1 - i])
            # BUG: no barrier here; the next round's write can beat the partner's read

    threads = [threading.Thread(target=worker, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in (0, 1):
        assert seen[i] == [(1 - i, r) for r in range(ROUNDS)], f"thread {i} saw {seen[i]}"


def fixed():
    slots = [None, None]
    seen = [[], []]
    barrier = threading.Barrier(2)

    def worker(i):
        for r in range(ROUNDS):
            slots[i] = (i, r)
            barrier.wait()  # everybody has published
            seen[i].append(slots[1 - i])
            barrier.wait()  # everybody has read

    threads = [threading.Thread(target=worker, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in (0, 1):
        assert seen[i] == [(1 - i, r) for r in range(ROUNDS)], f"thread {i} saw {seen[i]}"


if __name__ == "__main__":
    main()
