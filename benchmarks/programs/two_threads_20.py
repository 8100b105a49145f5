"""Two threads, 20 switch points in the racing code: the runs-per-second goal's program.

The main thread starts one worker and then does the worker's job itself, so two threads
each execute 10 traced lines (five reads and five writes). With the main thread's own
setup lines and the module's, a run is about 31 traced lines. In ``main`` every write
stores a value read on the line before, with no lock, so an update can be lost; in
``fixed`` each thread counts in its own slot.
"""
import threading

EXPECTED = "exception"


def main():
    box = [0]

    def worker():
        n = box[0]
        box[0] = n + 1
        n = box[0]
        box[0] = n + 1
        n = box[0]
        box[0] = n + 1
        n = box[0]
        box[0] = n + 1
        n = box[0]
        box[0] = n + 1

    t = threading.Thread(target=worker)
    t.start()
    worker()
    t.join()
    assert box[0] == 10, f"lost update: {box[0]}"


def fixed():
    slots = [0, 0]

    def worker(i):
        n = slots[i]
        slots[i] = n + 1
        n = slots[i]
        slots[i] = n + 1
        n = slots[i]
        slots[i] = n + 1
        n = slots[i]
        slots[i] = n + 1
        n = slots[i]
        slots[i] = n + 1

    t = threading.Thread(target=worker, args=(1,))
    t.start()
    worker(0)
    t.join()
    assert sum(slots) == 10


if __name__ == "__main__":
    fixed()
