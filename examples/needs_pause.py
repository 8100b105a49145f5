"""Expired lease: a holder checks its lease, is paused, and writes after it expired.

Holder A checks `time.monotonic() < lease.expires`, prepares its write, then
writes.  The lock service sleeps until A's lease expires, grants the lease to B,
and B writes.  Interleaving lines alone cannot break this (the clock does not
move while A can run); only a pause of A between its check and its write, while
time passes, lets A's stale write land after B's.
The twin uses fencing tokens: the store rejects a write older than the newest seen.
"""
import threading
import time

EXPECTED = "exception"
LEASE = 0.002


class Lease:
    def __init__(self, token, expires):
        self.token = token
        self.expires = expires


class FencedStore:
    def __init__(self):
        self.lock = threading.Lock()
        self.highest = 0
        self.writes = []

    def write(self, token, who):
        with self.lock:
            if token < self.highest:
                return False  # a stale holder: its lease has been handed on
            self.highest = token
            self.writes.append(who)
            return True


def main():
    writes = []
    lease_a = Lease(1, time.monotonic() + LEASE)  # A holds the lease now

    def holder_a():
        if time.monotonic() < lease_a.expires:
            record = "A"  # prepare the write
            writes.append(record)  # BUG: the lease may have expired since the check

    def lock_service():
        time.sleep(LEASE)  # A's lease has run out: grant a new one to B
        lease_b = Lease(lease_a.token + 1, time.monotonic() + LEASE)
        writes.append("B")  # B writes at once under its fresh lease

    threads = [threading.Thread(target=holder_a), threading.Thread(target=lock_service)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert writes[-1] == "B", f"stale write after the lease moved to B: {writes}"


def fixed():
    store = FencedStore()
    lease_a = Lease(1, time.monotonic() + LEASE)

    def holder_a():
        if time.monotonic() < lease_a.expires:
            record = "A"
            store.write(lease_a.token, record)  # rejected if B's newer token wrote first

    def lock_service():
        time.sleep(LEASE)
        lease_b = Lease(lease_a.token + 1, time.monotonic() + LEASE)
        store.write(lease_b.token, "B")

    threads = [threading.Thread(target=holder_a), threading.Thread(target=lock_service)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.writes[-1] == "B", f"stale write after the lease moved to B: {store.writes}"


if __name__ == "__main__":
    main()
