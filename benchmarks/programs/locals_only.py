"""Threads that touch only their own locals: a baseline for what a frame's locals cost.

Three workers each run 100 iterations of two lines of arithmetic on locals, and write one
result into a shared list at the end. Under line granularity every line is a switch point;
under access granularity a worker's only switch points are its loop's ticks, its one
shared write and the thread operations. No ``main``/``fixed`` pair: nothing here can race,
so the benchmark catalog leaves it out; ``benchmarks/access_cost.py`` measures it.
"""
import threading

THREADS = 3
ITERATIONS = 100


def workload():
    results = [0] * THREADS

    def worker(i):
        total = 0
        for k in range(ITERATIONS):
            square = k * k + i
            total = (total + square) % 1_000_003
        results[i] = total

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(results), results


if __name__ == "__main__":
    workload()
