"""Timeout race: the worker finishes just as the caller's Event.wait(timeout) expires.

The caller waits for the result with a timeout; on timeout it marks the request
cancelled and reports failure.  The worker checks `cancelled` and then charges
the customer.  If the timeout fires between the worker's check and its charge,
the caller reports "timed out" while the charge still goes through.
The twin moves the request from "pending" to exactly one of "done"/"cancelled"
under a lock, and the caller reports whichever state won.
"""
import threading
import time

EXPECTED = "exception"
WORK_TIME = 0.002  # the work takes as long as the caller is willing to wait
TIMEOUT = 0.002


class Request:
    def __init__(self):
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.state = "pending"
        self.cancelled = False


def main():
    req = Request()
    charges = []

    def worker():
        time.sleep(WORK_TIME)
        if not req.cancelled:
            charges.append(10)  # BUG: the caller may have given up since the check
            req.done.set()

    t = threading.Thread(target=worker)
    t.start()
    if req.done.wait(TIMEOUT):
        outcome = "done"
    else:
        req.cancelled = True  # cleanup: the caller tells the user the request failed
        outcome = "timed out"
    t.join()
    if outcome == "timed out":
        assert charges == [], "request reported as timed out, but the customer was charged"
    else:
        assert charges == [10]


def fixed():
    req = Request()
    charges = []

    def worker():
        time.sleep(WORK_TIME)
        with req.lock:
            if req.state == "pending":
                req.state = "done"
                charges.append(10)
        req.done.set()

    t = threading.Thread(target=worker)
    t.start()
    if not req.done.wait(TIMEOUT):
        with req.lock:
            if req.state == "pending":
                req.state = "cancelled"
    with req.lock:
        outcome = "done" if req.state == "done" else "timed out"
    t.join()
    if outcome == "timed out":
        assert charges == [], "request reported as timed out, but the customer was charged"
    else:
        assert charges == [10]


if __name__ == "__main__":
    main()
