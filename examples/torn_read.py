"""Torn read: a two-field invariant is written under a lock but read without it.

The writer moves money between `checking` and `savings` under a lock, so the
sum is always 100 between transfers.  The auditor reads the two fields on
separate lines without the lock; if a transfer runs between its two reads it
sees a half-done transfer and a sum that is not 100.
The twin's auditor takes the same lock, so it only sees whole transfers.
"""
import threading

EXPECTED = "exception"
TOTAL = 100


class Accounts:
    def __init__(self):
        self.lock = threading.Lock()
        self.checking = TOTAL
        self.savings = 0


def main():
    acc = Accounts()
    sums = []

    def writer():
        for _ in range(2):
            with acc.lock:
                acc.checking -= 10
                acc.savings += 10

    def auditor():
        for _ in range(2):
            checking = acc.checking  # BUG: no lock, a transfer may run between the two reads
            savings = acc.savings
            sums.append(checking + savings)

    threads = [threading.Thread(target=writer), threading.Thread(target=auditor)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(s == TOTAL for s in sums), f"auditor saw a torn state: {sums}"


def fixed():
    acc = Accounts()
    sums = []

    def writer():
        for _ in range(2):
            with acc.lock:
                acc.checking -= 10
                acc.savings += 10

    def auditor():
        for _ in range(2):
            with acc.lock:
                checking = acc.checking
                savings = acc.savings
            sums.append(checking + savings)

    threads = [threading.Thread(target=writer), threading.Thread(target=auditor)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(s == TOTAL for s in sums), f"auditor saw a torn state: {sums}"


if __name__ == "__main__":
    main()
