"""Reentrancy: a method holding a plain Lock calls another that takes it again.

Cache.get() holds the cache lock and, on a miss, loads the value and calls
put(), which takes the same lock.  A warm-up thread puts the key concurrently:
if it gets there first, get() hits and all is well; if get() runs first, it
misses and blocks forever on a lock its own thread holds: a deadlock.
The twin builds the cache on an RLock, which its owner may re-acquire.
"""
import threading

EXPECTED = "deadlock"


def load(key):
    return key.upper()


class Cache:
    def __init__(self, lock):
        self.lock = lock
        self.data = {}

    def put(self, key, value):
        with self.lock:
            self.data[key] = value

    def get(self, key):
        with self.lock:
            if key not in self.data:
                self.put(key, load(key))  # re-acquires self.lock
            return self.data[key]


def _run(lock):
    cache = Cache(lock)
    results = []
    warm = threading.Thread(target=cache.put, args=("k", "K"))
    reader = threading.Thread(target=lambda: results.append(cache.get("k")))
    warm.start()
    reader.start()
    warm.join()
    reader.join()
    assert results == ["K"], results
    assert cache.data == {"k": "K"}


def main():
    _run(threading.Lock())  # BUG: not reentrant; get() -> put() deadlocks on a miss


def fixed():
    _run(threading.RLock())


if __name__ == "__main__":
    main()
