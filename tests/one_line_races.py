"""One-line races of the shapes Python code has most (and their locked twins), for
tests/test_accesses.py: each is a read and a write inside one line, which only a model
whose steps are shared accesses can interleave."""
import threading
from concurrent.futures import ThreadPoolExecutor

class Stats:
    def __init__(self):
        self.hits = 0
        self.lock = threading.Lock()

def attribute():
    stats = Stats()
    def hit():
        stats.hits += 1
    ts = [threading.Thread(target=hit) for _ in range(2)]
    for t in ts: t.start()
    for t in ts: t.join()
    assert stats.hits == 2, stats.hits

def attribute_locked():
    stats = Stats()
    def hit():
        with stats.lock:
            stats.hits += 1
    ts = [threading.Thread(target=hit) for _ in range(2)]
    for t in ts: t.start()
    for t in ts: t.join()
    assert stats.hits == 2, stats.hits

def subscript():
    counts = {}
    def count(w):
        counts[w] = counts.get(w, 0) + 1
    ts = [threading.Thread(target=count, args=("a",)) for _ in range(2)]
    for t in ts: t.start()
    for t in ts: t.join()
    assert counts["a"] == 2, counts

lock = threading.Lock()
def subscript_locked():
    counts = {}
    def count(w):
        with lock:
            counts[w] = counts.get(w, 0) + 1
    ts = [threading.Thread(target=count, args=("a",)) for _ in range(2)]
    for t in ts: t.start()
    for t in ts: t.join()
    assert counts["a"] == 2, counts

served = 0
def serve():
    global served
    served += 1

def global_pool():
    global served
    served = 0
    with ThreadPoolExecutor(max_workers=2) as pool:
        for _ in range(2):
            pool.submit(serve)
    assert served == 2, served

def serve_locked():
    global served
    with lock:
        served += 1

def global_pool_locked():
    global served
    served = 0
    with ThreadPoolExecutor(max_workers=2) as pool:
        for _ in range(2):
            pool.submit(serve_locked)
    assert served == 2, served

def cell():
    total = 0
    def add(n):
        nonlocal total
        total += n
    ts = [threading.Thread(target=add, args=(1,)) for _ in range(2)]
    for t in ts: t.start()
    for t in ts: t.join()
    assert total == 2, total

def cell_locked():
    total = 0
    def add(n):
        nonlocal total
        with lock:
            total += n
    ts = [threading.Thread(target=add, args=(1,)) for _ in range(2)]
    for t in ts: t.start()
    for t in ts: t.join()
    assert total == 2, total

made = []
def make(k):
    made.append(k)
    return object()

def check_then_act():
    made.clear()
    c = {}
    def get(k):
        return c[k] if k in c else c.setdefault(k, make(k))
    ts = [threading.Thread(target=get, args=("x",)) for _ in range(2)]
    for t in ts: t.start()
    for t in ts: t.join()
    assert len(made) == 1, made

def check_then_act_locked():
    made.clear()
    c = {}
    def get(k):
        with lock:
            return c[k] if k in c else c.setdefault(k, make(k))
    ts = [threading.Thread(target=get, args=("x",)) for _ in range(2)]
    for t in ts: t.start()
    for t in ts: t.join()
    assert len(made) == 1, made


def deque_check_then_pop():
    from collections import deque
    q = deque([1])
    def take():
        if len(q) > 0:
            q.popleft()  # IndexError when the other thread took it after our check
    ts = [threading.Thread(target=take) for _ in range(2)]
    for t in ts: t.start()
    for t in ts: t.join()


def only_locals():
    def crunch():
        total = 0
        for i in range(2000):
            total += i * i
        return total
    ts = [threading.Thread(target=crunch) for _ in range(2)]
    for t in ts: t.start()
    for t in ts: t.join()
