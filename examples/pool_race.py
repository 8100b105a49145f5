"""Pool race: ThreadPoolExecutor tasks update a shared dict with get-then-set.

Each task counts the words of its chunk into one shared `counts` dict, reading
`counts.get(word, 0)` on one line and storing `n + 1` on the next.  When two
pool threads interleave on the same word, one store overwrites the other
(last writer wins) and the totals come out short.
The twin shares nothing: each task returns its own dict and the caller merges
the futures' results on its single thread.
"""
from concurrent.futures import ThreadPoolExecutor

EXPECTED = "exception"
CHUNKS = [["a", "b"], ["a"], ["b", "a"]]
EXPECTED_COUNTS = {"a": 3, "b": 2}


def main():
    counts = {}

    def count_chunk(words):
        for word in words:
            n = counts.get(word, 0)
            counts[word] = n + 1  # BUG: another task may have stored a newer count since the read

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(count_chunk, chunk) for chunk in CHUNKS]
        for f in futures:
            f.result()
    assert counts == EXPECTED_COUNTS, f"lost counts: {counts}"


def fixed():
    def count_chunk(words):
        local = {}
        for word in words:
            local[word] = local.get(word, 0) + 1
        return local

    counts = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(count_chunk, chunk) for chunk in CHUNKS]
        for f in futures:
            for word, n in f.result().items():
                counts[word] = counts.get(word, 0) + n
    assert counts == EXPECTED_COUNTS, f"lost counts: {counts}"


if __name__ == "__main__":
    main()
