"""A bug that needs twenty consecutive steps of one thread between two steps of another.

The observer reads the counter twice; the assertion fails only if the writer's whole loop
ran in between. A uniform random walk switches at about every other step, so it finds
this with probability about 2**-40 per run; PCT, the SURW-style walk and the bounded
enumeration need one preemption.
"""

import threading


def main():
    state = {"count": 0}

    def writer():
        for _ in range(20):
            state["count"] += 1

    def observer():
        first = state["count"]
        second = state["count"]
        assert second - first != 20, (first, second)

    threads = [threading.Thread(target=observer), threading.Thread(target=writer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def fixed():
    state = {"count": 0}
    lock = threading.Lock()

    def writer():
        with lock:
            for _ in range(20):
                state["count"] += 1

    def observer():
        with lock:
            first = state["count"]
            second = state["count"]
        assert second - first != 20, (first, second)

    threads = [threading.Thread(target=observer), threading.Thread(target=writer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
